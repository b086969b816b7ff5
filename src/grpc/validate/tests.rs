use std::path::Path;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};

use super::*;
use crate::grpc::codec::decode_request;
use crate::grpc::limits::{Class, FIELD_LIMITS, FieldLimit, field_limit};

fn shipped() -> PolicySet {
    PolicySet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("loads")
}

fn subject() -> Option<pb::Subject> {
    Some(pb::Subject {
        number: "85073003328".into(),
    })
}

/// Every violation of `message`, not only the first few.
fn violations<T: Validate>(message: &T, policy: &PolicySet) -> Vec<String> {
    let mut check = Check::new(policy);
    check.keep = usize::MAX;
    message.validate(&mut check);
    check.fields().into_iter().map(str::to_owned).collect()
}

#[test]
fn a_valid_lookup_passes() {
    let policy = shipped();
    let lookup = pb::LookupRequest {
        subject: subject(),
        purpose: "intrafamily-violence".into(),
        justification: "Melding van partnergeweld,\n\tgisteravond.".into(),
    };
    assert!(request(&lookup, &policy).is_ok());
}

#[test]
fn an_unknown_purpose_is_invalid_in_every_rpc_that_takes_one() {
    let policy = shipped();
    let purpose = "nosiness".to_owned();
    let checks = [
        violations(
            &pb::LookupRequest {
                purpose: purpose.clone(),
                ..Default::default()
            },
            &policy,
        ),
        violations(
            &pb::RequestContextRequest {
                purpose: purpose.clone(),
                ..Default::default()
            },
            &policy,
        ),
        violations(
            &pb::ShareRequest {
                purpose: purpose.clone(),
                ..Default::default()
            },
            &policy,
        ),
        violations(
            &pb::OpenCaseRequest {
                purpose: purpose.clone(),
                ..Default::default()
            },
            &policy,
        ),
        violations(
            &pb::RecordConsentRequest {
                purpose: purpose.clone(),
                ..Default::default()
            },
            &policy,
        ),
        violations(
            &pb::ExplainRequest {
                purpose,
                ..Default::default()
            },
            &policy,
        ),
    ];
    for fields in checks {
        assert!(fields.iter().any(|f| f == "purpose"), "{fields:?}");
    }
}

#[test]
fn unknown_catalogue_fields_and_unsupported_forms_are_invalid() {
    let policy = shipped();
    let context = pb::RequestContextRequest {
        subject: subject(),
        holder: "caw-oost-vlaanderen".into(),
        purpose: "intrafamily-violence".into(),
        fields: vec![
            pb::FieldRequest {
                field: "subject.shoe_size".into(),
                form: String::new(),
            },
            pb::FieldRequest {
                field: "subject.birth_date".into(),
                form: "initials".into(),
            },
            pb::FieldRequest {
                field: "subject.birth_date".into(),
                form: "year".into(),
            },
        ],
        justification: String::new(),
    };
    assert_eq!(
        violations(&context, &policy),
        ["fields[0].field", "fields[1].form"]
    );
}

#[test]
fn repeated_fields_are_counted_before_their_elements() {
    let policy = shipped();
    let case = pb::OpenCaseRequest {
        purpose: "intrafamily-violence".into(),
        participants: vec!["\u{7}".to_owned(); 100_000],
        subjects: vec![pb::Subject::default(); 100_000],
        agreement: "casusoverleg-ifg".into(),
        instrument: "x".into(),
        ..Default::default()
    };
    assert_eq!(violations(&case, &policy), ["participants", "subjects"]);
    let status = request(&case, &policy).expect_err("too many");
    assert!(status.details().len() < 1_024);
}

#[test]
fn control_characters_are_refused_except_newline_and_tab_in_free_text() {
    for c in [
        '\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{202e}', '\u{2066}',
    ] {
        assert!(!Class::Line.allows(c), "{c:?}");
        assert!(!Class::Text.allows(c), "{c:?}");
    }
    for c in ['\n', '\t'] {
        assert!(!Class::Line.allows(c));
        assert!(Class::Text.allows(c));
    }
    assert!(!Class::Text.allows('\r'));
    for c in ['é', 'ß', 'ł', '€', 'ق', '\u{200f}'] {
        assert!(Class::Line.allows(c), "{c:?}");
    }
}

#[test]
fn the_policy_bounds_a_justification_below_the_wire_limit() {
    let policy = shipped();
    let max = policy.max_justification();
    assert!(max < limits::JUSTIFICATION.max_chars);
    let lookup = |n: usize| pb::LookupRequest {
        subject: subject(),
        purpose: "intrafamily-violence".into(),
        justification: "é".repeat(n),
    };
    assert!(violations(&lookup(max), &policy).is_empty());
    assert_eq!(violations(&lookup(max + 1), &policy), ["justification"]);
}

/// A string or repeated field of a request, reached from an RPC's input message.
struct Reached {
    /// The RPC, e.g. `Exchange.Lookup`.
    rpc: String,
    /// The input message's name, e.g. `LookupRequest`.
    input: String,
    /// The path from the input message, with `[]` for a repeated field's elements.
    path: String,
    /// `Message.field`, the key of [`FIELD_LIMITS`].
    key: String,
    /// The field's limits.
    limit: &'static FieldLimit,
    /// The messages from the input down to the field's, and the field names, to build one.
    steps: Vec<(MessageDescriptor, String)>,
    /// Whether the field is repeated.
    repeated: bool,
    /// Whether the field (or its elements) are strings.
    string: bool,
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

/// Every string and repeated field of every Ketenpoort RPC's request, in the wire contract's
/// order; panics on one without a limit in [`FIELD_LIMITS`].
fn reached() -> Vec<Reached> {
    fn walk(
        rpc: &str,
        input: &str,
        message: &MessageDescriptor,
        prefix: &str,
        steps: &[(MessageDescriptor, String)],
        out: &mut Vec<Reached>,
    ) {
        for field in message.fields() {
            let key = format!("{}.{}", message.name(), field.name());
            let path = format!("{prefix}{}", field.name());
            let mut here = steps.to_vec();
            here.push((message.clone(), field.name().to_owned()));
            let string = matches!(field.kind(), Kind::String);
            if string || field.is_list() {
                let limit = field_limit(&key)
                    .unwrap_or_else(|| panic!("{key} has no limit in limits::FIELD_LIMITS"));
                out.push(Reached {
                    rpc: rpc.to_owned(),
                    input: input.to_owned(),
                    path: path.clone(),
                    key: key.clone(),
                    limit,
                    steps: here.clone(),
                    repeated: field.is_list(),
                    string,
                });
            }
            if let Kind::Message(inner) = field.kind()
                && inner.package_name() == "ketenpoort.v1"
            {
                let suffix = if field.is_list() { "[]." } else { "." };
                walk(rpc, input, &inner, &format!("{path}{suffix}"), &here, out);
            }
        }
    }
    let pool = pool();
    let mut out = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let rpc = format!("{}.{}", service.name(), method.name());
            let input = method.input();
            walk(&rpc, input.name(), &input, "", &[], &mut out);
        }
    }
    out
}

/// The encoded request whose field `steps` holds `leaf` (a repeated field on the way gets one
/// element; the last one gets `leaf` as all its elements when it is repeated).
fn encoded(steps: &[(MessageDescriptor, String)], leaf: Value) -> Vec<u8> {
    fn build(steps: &[(MessageDescriptor, String)], leaf: Value) -> DynamicMessage {
        let (message, name) = &steps[0];
        let mut dynamic = DynamicMessage::new(message.clone());
        let field = message.get_field_by_name(name).expect("field");
        let value = if steps.len() == 1 {
            leaf
        } else {
            let inner = Value::Message(build(&steps[1..], leaf));
            if field.is_list() {
                Value::List(vec![inner])
            } else {
                inner
            }
        };
        dynamic.set_field(&field, value);
        dynamic
    }
    build(steps, leaf).encode_to_vec()
}

/// The violations of `bytes` decoded as the request `input`, checked against `policy`.
fn decoded_violations(input: &str, bytes: &[u8], policy: &PolicySet) -> Vec<String> {
    macro_rules! by_name {
        ($($message:ident),* $(,)?) => {
            match input {
                $(stringify!($message) => violations(
                    &decode_request::<pb::$message>(bytes).expect("decodes"),
                    policy,
                ),)*
                other => panic!("no validator for {other}"),
            }
        };
    }
    by_name!(
        RegisterReferenceRequest,
        WithdrawReferenceRequest,
        LookupRequest,
        RequestContextRequest,
        ListIncomingRequest,
        RespondRequest,
        DeclineRequest,
        GetResultRequest,
        ShareRequest,
        ListInboxRequest,
        AcknowledgeRequest,
        OpenCaseRequest,
        CloseCaseRequest,
        RenewCaseRequest,
        RecordConsentRequest,
        RevokeConsentRequest,
        GetCheckpointRequest,
        GetInclusionProofRequest,
        GetConsistencyProofRequest,
        GetEntriesRequest,
        SearchEntriesRequest,
        SubjectReportRequest,
        ListReviewsRequest,
        RecordReviewRequest,
        ExplainRequest,
        ListAgreementsRequest,
    )
}

/// The path a violation of `reached` names when the repeated fields on the way hold one element
/// (the elements of the field itself too, for a list of strings).
fn violation_path(reached: &Reached, element: bool) -> String {
    let path = reached.path.replace("[]", "[0]");
    if element { format!("{path}[0]") } else { path }
}

#[test]
fn every_documented_limit_is_enforced_where_the_field_is() {
    let policy = shipped();
    let rows = reached();
    assert!(rows.len() > 60, "{}", rows.len());
    for r in &rows {
        if let Some(max) = r.limit.max_count {
            let element = if r.string {
                Value::String("a".into())
            } else {
                let (message, name) = r.steps.last().expect("a step");
                let field = message.get_field_by_name(name).expect("field");
                let Kind::Message(inner) = field.kind() else {
                    panic!(
                        "{}: a repeated field of neither strings nor messages",
                        r.key
                    );
                };
                Value::Message(DynamicMessage::new(inner))
            };
            let bytes = encoded(&r.steps, Value::List(vec![element; max + 1]));
            let found = decoded_violations(&r.input, &bytes, &policy);
            let path = violation_path(r, false);
            assert!(
                found.contains(&path),
                "{}: {path} not refused in {found:?}",
                r.rpc
            );
        }
        if let Some(text) = r.limit.text {
            let leaf = |s: String| {
                if r.repeated {
                    Value::List(vec![Value::String(s)])
                } else {
                    Value::String(s)
                }
            };
            let path = violation_path(r, r.repeated);
            for value in ["a".repeat(text.max_chars + 1), "a\u{7}".to_owned()] {
                let bytes = encoded(&r.steps, leaf(value));
                let found = decoded_violations(&r.input, &bytes, &policy);
                assert!(
                    found.contains(&path),
                    "{}: {path} not refused in {found:?}",
                    r.rpc
                );
            }
            if r.limit.policy_bound {
                let bytes = encoded(&r.steps, leaf("a".repeat(policy.max_justification() + 1)));
                let found = decoded_violations(&r.input, &bytes, &policy);
                assert!(
                    found.contains(&path),
                    "{}: {path} over the policy bound",
                    r.rpc
                );
            }
        }
    }
}

#[test]
fn every_field_limit_belongs_to_a_request_field() {
    let rows = reached();
    for (key, _) in FIELD_LIMITS {
        assert!(
            rows.iter().any(|r| r.key == *key),
            "{key} is no request field"
        );
    }
}

/// The per-RPC table of docs/wire-limits.md, rendered from the descriptors and the limits.
fn rendered_table() -> String {
    let rows = reached();
    let pool = pool();
    let mut out =
        String::from("| RPC | field | at most | characters | also |\n|---|---|---|---|---|\n");
    for service in pool.services() {
        for method in service.methods() {
            let rpc = format!("{}.{}", service.name(), method.name());
            let mine: Vec<&Reached> = rows.iter().filter(|r| r.rpc == rpc).collect();
            if mine.is_empty() {
                out.push_str(&format!("| `{rpc}` | (none) | | | |\n"));
            }
            for (i, r) in mine.iter().enumerate() {
                let name = if i == 0 {
                    format!("`{rpc}`")
                } else {
                    String::new()
                };
                let mut most = Vec::new();
                if let Some(n) = r.limit.max_count {
                    most.push(format!("{n} items"));
                }
                if let Some(t) = r.limit.text {
                    let each = if r.repeated { " each" } else { "" };
                    let policy = if r.limit.policy_bound {
                        " and `max_justification`"
                    } else {
                        ""
                    };
                    most.push(format!("{} characters{each}{policy}", t.max_chars));
                }
                let class = r.limit.text.map(|t| t.class.name()).unwrap_or_default();
                out.push_str(&format!(
                    "| {name} | `{}` | {} | {class} | {} |\n",
                    r.path,
                    most.join(", "),
                    r.limit.note
                ));
            }
        }
    }
    out
}

#[test]
fn docs_wire_limits_show_the_limits_in_force() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/wire-limits.md"))
            .expect("docs/wire-limits.md");
    let begin = "<!-- rendered from src/grpc/limits.rs: begin -->\n";
    let end = "<!-- rendered from src/grpc/limits.rs: end -->";
    let table = doc
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table)
        .expect("the rendered section's markers");
    let expected = rendered_table();
    assert!(
        table == expected,
        "docs/wire-limits.md is out of date; its table should read:\n{expected}"
    );
}
