//! Properties of the wire edge, on generated request bytes for every Ketenpoort RPC:
//! 1. any bytes, decoded as the RPC's request and checked against its limits, are either
//!    accepted or refused with INVALID_ARGUMENT and small details; never a panic, never another
//!    code;
//! 2. through the real handlers of a running gateway, such bytes either become a request the use
//!    case answers (allowed, refused by policy, not found, ...) or are refused with
//!    INVALID_ARGUMENT, which then changed nothing (the audit log keeps its size); never a panic,
//!    never INTERNAL or UNKNOWN.
//!
//! The bytes are partly random and partly protobuf-shaped: a valid request with generated fields
//! appended, or generated fields alone (varints, strings full of control characters and known ids
//! such as purposes, parties, catalogue fields and a valid subject number, nested messages, long
//! runs of repeated elements, groups), so that many reach the field checks and some get past
//! them to the use cases.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ketenpoort::config::Config;
use ketenpoort::exchange::{Caller, Gateway};
use ketenpoort::grpc::codec::decode_request;
use ketenpoort::grpc::services::Services;
use ketenpoort::grpc::validate;
use ketenpoort::policy::PolicySet;
use ketenpoort::proto::v1 as pb;
use pb::audit_server::Audit;
use pb::exchange_server::Exchange;
use pb::grounds_server::Grounds;
use pb::policies_server::Policies;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tempfile::TempDir;
use time::macros::datetime;
use tonic::{Code, Status};

/// Each RPC, by the name its request message has.
const RPCS: [&str; 26] = [
    "RegisterReference",
    "WithdrawReference",
    "Lookup",
    "RequestContext",
    "ListIncoming",
    "Respond",
    "Decline",
    "GetResult",
    "Share",
    "ListInbox",
    "Acknowledge",
    "OpenCase",
    "CloseCase",
    "RenewCase",
    "RecordConsent",
    "RevokeConsent",
    "GetCheckpoint",
    "GetInclusionProof",
    "GetConsistencyProof",
    "GetEntries",
    "SearchEntries",
    "SubjectReport",
    "ListReviews",
    "RecordReview",
    "Explain",
    "ListAgreements",
];

/// Parties calling: police, a holder, a coordinator, the supervisor.
const PARTIES: [&str; 4] = [
    "pz-gent",
    "caw-oost-vlaanderen",
    "fjc-oost-vlaanderen",
    "coc",
];

fn policy() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        PolicySet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("loads")
    })
}

/// Decodes `bytes` as the request of `RPCS[rpc]` and checks it, as the servers do.
fn check(rpc: usize, bytes: &[u8]) -> Result<(), Status> {
    macro_rules! checked {
        ($($name:literal => $message:ty),* $(,)?) => {
            match RPCS[rpc] {
                $($name => validate::request(&decode_request::<$message>(bytes)?, policy()),)*
                other => panic!("no request type for {other}"),
            }
        };
    }
    checked!(
        "RegisterReference" => pb::RegisterReferenceRequest,
        "WithdrawReference" => pb::WithdrawReferenceRequest,
        "Lookup" => pb::LookupRequest,
        "RequestContext" => pb::RequestContextRequest,
        "ListIncoming" => pb::ListIncomingRequest,
        "Respond" => pb::RespondRequest,
        "Decline" => pb::DeclineRequest,
        "GetResult" => pb::GetResultRequest,
        "Share" => pb::ShareRequest,
        "ListInbox" => pb::ListInboxRequest,
        "Acknowledge" => pb::AcknowledgeRequest,
        "OpenCase" => pb::OpenCaseRequest,
        "CloseCase" => pb::CloseCaseRequest,
        "RenewCase" => pb::RenewCaseRequest,
        "RecordConsent" => pb::RecordConsentRequest,
        "RevokeConsent" => pb::RevokeConsentRequest,
        "GetCheckpoint" => pb::GetCheckpointRequest,
        "GetInclusionProof" => pb::GetInclusionProofRequest,
        "GetConsistencyProof" => pb::GetConsistencyProofRequest,
        "GetEntries" => pb::GetEntriesRequest,
        "SearchEntries" => pb::SearchEntriesRequest,
        "SubjectReport" => pb::SubjectReportRequest,
        "ListReviews" => pb::ListReviewsRequest,
        "RecordReview" => pb::RecordReviewRequest,
        "Explain" => pb::ExplainRequest,
        "ListAgreements" => pb::ListAgreementsRequest,
    )
}

/// Decodes `bytes` as the request of `RPCS[rpc]` and hands it to its handler as `caller`, as the
/// server does once the authenticator has let the call in.
async fn call(services: &Services, caller: Caller, rpc: usize, bytes: &[u8]) -> Result<(), Status> {
    macro_rules! called {
        ($($name:literal => $trait:ident :: $method:ident ($message:ty)),* $(,)?) => {
            match RPCS[rpc] {
                $($name => {
                    let mut request = tonic::Request::new(decode_request::<$message>(bytes)?);
                    request.extensions_mut().insert(caller);
                    $trait::$method(services, request).await.map(|_| ())
                })*
                other => panic!("no handler for {other}"),
            }
        };
    }
    called!(
        "RegisterReference" => Exchange::register_reference(pb::RegisterReferenceRequest),
        "WithdrawReference" => Exchange::withdraw_reference(pb::WithdrawReferenceRequest),
        "Lookup" => Exchange::lookup(pb::LookupRequest),
        "RequestContext" => Exchange::request_context(pb::RequestContextRequest),
        "ListIncoming" => Exchange::list_incoming(pb::ListIncomingRequest),
        "Respond" => Exchange::respond(pb::RespondRequest),
        "Decline" => Exchange::decline(pb::DeclineRequest),
        "GetResult" => Exchange::get_result(pb::GetResultRequest),
        "Share" => Exchange::share(pb::ShareRequest),
        "ListInbox" => Exchange::list_inbox(pb::ListInboxRequest),
        "Acknowledge" => Exchange::acknowledge(pb::AcknowledgeRequest),
        "OpenCase" => Grounds::open_case(pb::OpenCaseRequest),
        "CloseCase" => Grounds::close_case(pb::CloseCaseRequest),
        "RenewCase" => Grounds::renew_case(pb::RenewCaseRequest),
        "RecordConsent" => Grounds::record_consent(pb::RecordConsentRequest),
        "RevokeConsent" => Grounds::revoke_consent(pb::RevokeConsentRequest),
        "GetCheckpoint" => Audit::get_checkpoint(pb::GetCheckpointRequest),
        "GetInclusionProof" => Audit::get_inclusion_proof(pb::GetInclusionProofRequest),
        "GetConsistencyProof" => Audit::get_consistency_proof(pb::GetConsistencyProofRequest),
        "GetEntries" => Audit::get_entries(pb::GetEntriesRequest),
        "SearchEntries" => Audit::search_entries(pb::SearchEntriesRequest),
        "SubjectReport" => Audit::subject_report(pb::SubjectReportRequest),
        "ListReviews" => Audit::list_reviews(pb::ListReviewsRequest),
        "RecordReview" => Audit::record_review(pb::RecordReviewRequest),
        "Explain" => Policies::explain(pb::ExplainRequest),
        "ListAgreements" => Policies::list_agreements(pb::ListAgreementsRequest),
    )
}

/// A varint.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Field `tag` with wire type `wire`.
fn key(tag: u32, wire: u8) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(tag) << 3 | u64::from(wire), &mut out);
    out
}

/// Field `tag` as a length-delimited `payload`.
fn delimited(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = key(tag, 2);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// A string value: ids the policy knows, a valid subject number, text with control characters,
/// or any bytes.
fn token() -> impl Strategy<Value = Vec<u8>> {
    let known = prop_oneof![
        Just("intrafamily-violence"),
        Just("referral-assistance"),
        Just("nosiness"),
        Just("pz-gent"),
        Just("caw-oost-vlaanderen"),
        Just("ocmw-gent"),
        Just("subject.birth_date"),
        Just("subject.address"),
        Just("referral.reason"),
        Just("year"),
        Just("initials"),
        Just("85073003328"),
        Just("lookup"),
        Just("share"),
        Just("casusoverleg-ifg"),
        Just("t-0000000000000000000000000000"),
    ];
    prop_oneof![
        3 => known.prop_map(|s| s.as_bytes().to_vec()),
        2 => "[ -~\u{0}-\u{1f}\u{7f}\u{85}é\u{2028}\u{202e}]{0,24}".prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..24),
    ]
}

/// One protobuf-shaped field, possibly a nested message of such fields.
fn field() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        (1u32..12, any::<u64>()).prop_map(|(tag, n)| {
            let mut out = key(tag, 0);
            varint(n, &mut out);
            out
        }),
        (1u32..12, token()).prop_map(|(tag, s)| delimited(tag, &s)),
        (1u32..12, 0usize..150).prop_map(|(tag, n)| delimited(tag, &[]).repeat(n)),
        (1u32..12, any::<[u8; 4]>()).prop_map(|(tag, b)| [key(tag, 5), b.to_vec()].concat()),
        (1u32..12, 0usize..130)
            .prop_map(|(tag, n)| [key(tag, 3).repeat(n), key(tag, 4).repeat(n)].concat()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        (1u32..12, vec(inner, 0..4)).prop_map(|(tag, parts)| delimited(tag, &parts.concat()))
    })
}

/// A valid request of `RPCS[rpc]`, so that bytes built on it get past the field checks.
fn base(rpc: usize) -> Vec<u8> {
    use prost::Message;
    let subject = || {
        Some(pb::Subject {
            number: "85073003328".into(),
        })
    };
    let ask = |field: &str| pb::FieldRequest {
        field: field.into(),
        form: String::new(),
    };
    let entry = |field: &str, text: &str| pb::FieldEntry {
        field: field.into(),
        value: Some(pb::FieldValue {
            kind: Some(pb::field_value::Kind::Text(text.into())),
        }),
    };
    let ticket = "t-019cf1a2b3c4d5e6f708192a3b".to_owned();
    match RPCS[rpc] {
        "RegisterReference" => pb::RegisterReferenceRequest {
            subject: subject(),
            holder_reference: "dossier 12".into(),
            ground: Some(pb::ReferenceGround {
                ground: Some(pb::reference_ground::Ground::ConsentId(ticket)),
            }),
        }
        .encode_to_vec(),
        "WithdrawReference" => pb::WithdrawReferenceRequest { subject: subject() }.encode_to_vec(),
        "Lookup" => pb::LookupRequest {
            subject: subject(),
            purpose: "intrafamily-violence".into(),
            justification: "Melding van partnergeweld.".into(),
        }
        .encode_to_vec(),
        "RequestContext" => pb::RequestContextRequest {
            subject: subject(),
            holder: "caw-oost-vlaanderen".into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("subject.birth_date"), ask("subject.address")],
            justification: String::new(),
        }
        .encode_to_vec(),
        "Respond" => pb::RespondRequest {
            ticket_id: ticket,
            fields: vec![entry("referral.reason", "housing")],
            weighing: None,
        }
        .encode_to_vec(),
        "Decline" => pb::DeclineRequest {
            ticket_id: ticket,
            reason: pb::DeclineReason::NothingToAdd as i32,
        }
        .encode_to_vec(),
        "GetResult" => pb::GetResultRequest {
            ticket_id: ticket,
            wait: None,
        }
        .encode_to_vec(),
        "Share" => pb::ShareRequest {
            subject: subject(),
            recipient: "ocmw-gent".into(),
            purpose: "referral-assistance".into(),
            fields: vec![entry("referral.reason", "housing")],
            justification: String::new(),
            forms: Vec::new(),
        }
        .encode_to_vec(),
        "Acknowledge" => pb::AcknowledgeRequest { signal_id: ticket }.encode_to_vec(),
        "OpenCase" => pb::OpenCaseRequest {
            case_id: String::new(),
            purpose: "intrafamily-violence".into(),
            participants: vec!["pz-gent".into(), "caw-oost-vlaanderen".into()],
            subjects: vec![pb::Subject {
                number: "85073003328".into(),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }
        .encode_to_vec(),
        "CloseCase" => pb::CloseCaseRequest { case_id: ticket }.encode_to_vec(),
        "RenewCase" => pb::RenewCaseRequest { case_id: ticket }.encode_to_vec(),
        "RecordConsent" => pb::RecordConsentRequest {
            subject: subject(),
            purpose: "referral-assistance".into(),
            recipients: vec!["ocmw-gent".into()],
            evidence: "signed form 2026/0213".into(),
            give_time: None,
            expire_time: Some(prost_types::Timestamp {
                seconds: datetime!(2026-09-15 10:00 UTC).unix_timestamp(),
                nanos: 0,
            }),
            given_by: pb::ConsentGiver::Subject as i32,
            information_version: "folder v3".into(),
            minor: pb::MinorCapacity::Adult as i32,
            parents_also_consented: false,
        }
        .encode_to_vec(),
        "RevokeConsent" => pb::RevokeConsentRequest {
            consent_id: ticket,
            subject: None,
        }
        .encode_to_vec(),
        "SubjectReport" => pb::SubjectReportRequest {
            subject: subject(),
            access_request: "AR-1".into(),
        }
        .encode_to_vec(),
        "RecordReview" => pb::RecordReviewRequest {
            exchange_id: ticket,
            outcome: pb::ReviewOutcome::Justified as i32,
            note: "in orde".into(),
        }
        .encode_to_vec(),
        "Explain" => pb::ExplainRequest {
            kind: "share".into(),
            counterpart: "parket-oost-vlaanderen".into(),
            purpose: "child-abuse".into(),
            subject: subject(),
            ..Default::default()
        }
        .encode_to_vec(),
        _ => Vec::new(),
    }
}

/// An RPC and request bytes for it: a valid request with a few generated fields appended (which
/// replace or add to its own), protobuf-shaped fields alone, or any bytes at all.
fn rpc_and_bytes() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (0..RPCS.len()).prop_flat_map(|rpc| {
        let bytes = prop_oneof![
            3 => vec(field(), 0..3).prop_map(move |extra| [base(rpc), extra.concat()].concat()),
            3 => vec(field(), 0..8).prop_map(|fields| fields.concat()),
            1 => vec(any::<u8>(), 0..96),
        ];
        (Just(rpc), bytes)
    })
}

/// A refusal for bad input: INVALID_ARGUMENT, with small details.
fn assert_bad_input(rpc: usize, status: &Status) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{}: {:?}",
        RPCS[rpc],
        status
    );
    prop_assert!(
        status.details().len() <= 2_048,
        "{}: {:?}",
        RPCS[rpc],
        status
    );
    prop_assert!(status.message().len() <= 320, "{}: {:?}", RPCS[rpc], status);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_are_accepted_or_refused_as_invalid_argument(
        (rpc, bytes) in rpc_and_bytes(),
    ) {
        if let Err(status) = check(rpc, &bytes) {
            assert_bad_input(rpc, &status)?;
        }
    }
}

/// A running gateway's handlers, with the shipped policies and a pinned clock.
struct Running {
    runtime: tokio::runtime::Runtime,
    services: Services,
    gateway: Gateway,
    _dir: TempDir,
}

fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            data_dir: dir.path().join("var"),
            policies: Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
            ..Config::default()
        };
        let prepared = runtime.block_on(async {
            ketenpoort::grpc::prepare(&config, Arc::new(|| datetime!(2026-03-15 10:00 UTC)))
                .expect("gateway prepares")
        });
        let gateway = prepared.setup.gateway.clone();
        Running {
            runtime,
            services: Services::new(gateway.clone()),
            gateway,
            _dir: dir,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn handlers_answer_any_bytes_without_internal_errors_and_bad_input_changes_nothing(
        (rpc, bytes) in rpc_and_bytes(),
        party in 0..PARTIES.len(),
    ) {
        let running = running();
        let caller = Caller {
            party: PARTIES[party].to_owned(),
            actor: "agent-0042".to_owned(),
            trace_id: String::new(),
        };
        let before = running.gateway.log().size();
        let answer = running
            .runtime
            .block_on(call(&running.services, caller, rpc, &bytes));
        let Err(status) = answer else {
            return Ok(());
        };
        prop_assert!(
            !matches!(
                status.code(),
                Code::Internal | Code::Unknown | Code::Unimplemented | Code::DataLoss
            ),
            "{}: {:?}",
            RPCS[rpc],
            status
        );
        if status.code() == Code::InvalidArgument {
            assert_bad_input(rpc, &status)?;
            prop_assert_eq!(
                running.gateway.log().size(),
                before,
                "{}: refused as bad input, yet logged",
                RPCS[rpc]
            );
        }
    }
}
