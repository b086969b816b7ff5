//! Black-box tests of bad input over real mutual TLS: a matrix of raw request bytes sent to every
//! Ketenpoort service (invalid UTF-8, control characters, over-long strings, huge repeated fields,
//! nesting past the decoding depth, messages over the size limit, empty and missing messages and
//! fields, unknown purposes, parties and catalogue fields). Every case must be INVALID_ARGUMENT with
//! an `ErrorInfo` reason, a field violation where the field can be known, and small details; and the
//! whole matrix must change nothing: the audit log keeps its size, no ticket, signal or case appears,
//! and a pending ticket that bad answers aimed at stays pending.

mod common;

use common::*;
use futures::stream;
use ketenpoort::proto::v1 as pb;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";
const FJC: &str = "fjc-oost-vlaanderen";
const SUPERVISOR: &str = "coc";

/// The subject of the one real ticket the matrix aims bad answers at.
const SEQ: u32 = 41;

/// A codec that sends the given bytes as the request message and keeps the answer's bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// What a case sends.
enum Body {
    /// One request message of these bytes.
    Bytes(Vec<u8>),
    /// A unary call without any request message.
    Nothing,
}

/// One row of the matrix.
struct Case {
    name: &'static str,
    party: &'static str,
    /// `Service/Method` under `ketenpoort.v1`.
    rpc: &'static str,
    body: Body,
    /// The expected `ErrorInfo.reason`.
    reason: &'static str,
    /// A field violation the answer must name, if the field can be known.
    field: Option<&'static str>,
}

fn case(
    name: &'static str,
    party: &'static str,
    rpc: &'static str,
    message: &impl Message,
    field: &'static str,
) -> Case {
    Case {
        name,
        party,
        rpc,
        body: Body::Bytes(message.encode_to_vec()),
        reason: "INVALID_ARGUMENT",
        field: Some(field),
    }
}

fn raw(
    name: &'static str,
    party: &'static str,
    rpc: &'static str,
    bytes: Vec<u8>,
    reason: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        party,
        rpc,
        body: Body::Bytes(bytes),
        reason,
        field,
    }
}

/// A varint.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Field `tag` as a length-delimited `payload`.
fn delimited(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(tag << 3 | 2), &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// 150 nested groups of unknown field 15: past prost's recursion limit of 100.
fn too_deep() -> Vec<u8> {
    let mut out = vec![(15 << 3) | 3; 150];
    out.extend(vec![(15 << 3) | 4; 150]);
    out
}

/// An unknown field padding a message past 256 KiB.
fn oversized() -> Vec<u8> {
    delimited(15, &vec![b'x'; 300 * 1024])
}

fn subject_of(number: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        number: number.into(),
    })
}

fn lookup(purpose: &str, justification: &str) -> pb::LookupRequest {
    pb::LookupRequest {
        subject: subject(SEQ),
        purpose: purpose.into(),
        justification: justification.into(),
    }
}

fn context(fields: Vec<pb::FieldRequest>) -> pb::RequestContextRequest {
    pb::RequestContextRequest {
        subject: subject(SEQ),
        holder: CAW.into(),
        purpose: "intrafamily-violence".into(),
        fields,
        justification: String::new(),
    }
}

fn respond(ticket: &str, fields: Vec<pb::FieldEntry>) -> pb::RespondRequest {
    pb::RespondRequest {
        ticket_id: ticket.into(),
        fields,
        weighing: None,
    }
}

fn share(fields: Vec<pb::FieldEntry>) -> pb::ShareRequest {
    pb::ShareRequest {
        subject: subject(SEQ),
        recipient: "ocmw-gent".into(),
        purpose: "referral-assistance".into(),
        fields,
        justification: String::new(),
        forms: Vec::new(),
    }
}

fn open_case(participants: Vec<String>, subjects: Vec<pb::Subject>) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        case_id: "bad-input-case".into(),
        purpose: "intrafamily-violence".into(),
        participants,
        subjects,
        agreement: "casusoverleg-ifg".into(),
        instrument: "pk-ovl-fjc-2023-01".into(),
    }
}

fn explain(purpose: &str) -> pb::ExplainRequest {
    pb::ExplainRequest {
        kind: "request".into(),
        counterpart: CAW.into(),
        purpose: purpose.into(),
        ..Default::default()
    }
}

/// The matrix; `ticket` is a real pending ticket held by CAW.
fn matrix(ticket: &str) -> Vec<Case> {
    let ticket = ticket.to_owned();
    let no_fields = vec![pb::FieldRequest::default(); 100_000];
    let no_entries = vec![pb::FieldEntry::default(); 100_000];
    let no_parties = vec![String::new(); 100_000];
    let mut cases = vec![
        // Exchange.Lookup
        raw(
            "subject number not UTF-8",
            POLICE,
            "Exchange/Lookup",
            delimited(1, &delimited(1, b"8507\xff3003328")),
            "INVALID_UTF8",
            Some("subject.number"),
        ),
        raw(
            "purpose not UTF-8",
            POLICE,
            "Exchange/Lookup",
            delimited(2, b"intrafamily\xc0violence"),
            "INVALID_UTF8",
            Some("purpose"),
        ),
        case(
            "justification with a terminal escape",
            POLICE,
            "Exchange/Lookup",
            &lookup("intrafamily-violence", "urgent\u{1b}[2J\u{1b}[Hall clear"),
            "justification",
        ),
        case(
            "justification over the policy's bound",
            POLICE,
            "Exchange/Lookup",
            &lookup("intrafamily-violence", &"woorden ".repeat(501)),
            "justification",
        ),
        case(
            "justification over the wire limit",
            POLICE,
            "Exchange/Lookup",
            &lookup("intrafamily-violence", &"a".repeat(20_000)),
            "justification",
        ),
        raw(
            "justification of 1,000,000 characters",
            POLICE,
            "Exchange/Lookup",
            lookup("intrafamily-violence", &"a".repeat(1_000_000)).encode_to_vec(),
            "MESSAGE_TOO_LARGE",
            None,
        ),
        case(
            "unknown purpose",
            POLICE,
            "Exchange/Lookup",
            &lookup("nosiness", ""),
            "purpose",
        ),
        case(
            "subject number with a bidi override",
            POLICE,
            "Exchange/Lookup",
            &pb::LookupRequest {
                subject: subject_of("85073003328\u{202e}"),
                ..lookup("intrafamily-violence", "")
            },
            "subject.number",
        ),
        raw(
            "empty message",
            POLICE,
            "Exchange/Lookup",
            Vec::new(),
            "INVALID_ARGUMENT",
            Some("subject.number"),
        ),
        Case {
            name: "no message at all",
            party: POLICE,
            rpc: "Exchange/Lookup",
            body: Body::Nothing,
            reason: "MISSING_MESSAGE",
            field: None,
        },
        raw(
            "nested past the decoding depth",
            POLICE,
            "Exchange/Lookup",
            too_deep(),
            "MESSAGE_TOO_DEEP",
            None,
        ),
        raw(
            "over the size limit",
            POLICE,
            "Exchange/Lookup",
            oversized(),
            "MESSAGE_TOO_LARGE",
            None,
        ),
        raw(
            "purpose longer than its bytes",
            POLICE,
            "Exchange/Lookup",
            vec![0x12, 40, b'x'],
            "MALFORMED_MESSAGE",
            Some("purpose"),
        ),
        // Exchange.RegisterReference, WithdrawReference
        case(
            "holder reference with a newline",
            CAW,
            "Exchange/RegisterReference",
            &pb::RegisterReferenceRequest {
                subject: subject(SEQ),
                holder_reference: "file 12\nforged line".into(),
                ground: Some(pb::ReferenceGround {
                    ground: Some(pb::reference_ground::Ground::Agreement(
                        "referentie-opvraging".into(),
                    )),
                }),
            },
            "holder_reference",
        ),
        case(
            "reference without a ground",
            CAW,
            "Exchange/RegisterReference",
            &pb::RegisterReferenceRequest {
                subject: subject(SEQ),
                ..Default::default()
            },
            "ground",
        ),
        case(
            "withdrawal without a subject",
            CAW,
            "Exchange/WithdrawReference",
            &pb::WithdrawReferenceRequest::default(),
            "subject.number",
        ),
        // Exchange.RequestContext
        case(
            "100,000 field requests",
            POLICE,
            "Exchange/RequestContext",
            &context(no_fields.clone()),
            "fields",
        ),
        case(
            "unknown catalogue field",
            POLICE,
            "Exchange/RequestContext",
            &context(vec![ask("subject.shoe_size")]),
            "fields[0].field",
        ),
        case(
            "a form the field's type lacks",
            POLICE,
            "Exchange/RequestContext",
            &context(vec![pb::FieldRequest {
                field: "subject.birth_date".into(),
                form: "initials".into(),
            }]),
            "fields[0].form",
        ),
        case(
            "unknown holder",
            POLICE,
            "Exchange/RequestContext",
            &pb::RequestContextRequest {
                holder: "nsa".into(),
                ..context(vec![ask("subject.birth_date")])
            },
            "holder",
        ),
        case(
            "no fields asked",
            POLICE,
            "Exchange/RequestContext",
            &context(Vec::new()),
            "fields",
        ),
        // Exchange holder side
        case(
            "page token with a control character",
            CAW,
            "Exchange/ListIncoming",
            &pb::ListIncomingRequest {
                page_size: 5,
                page_token: "t-\u{7}".into(),
            },
            "page_token",
        ),
        case(
            "answer with 100,000 fields",
            CAW,
            "Exchange/Respond",
            &respond(&ticket, no_entries.clone()),
            "fields",
        ),
        case(
            "answer whose text hides a carriage return",
            CAW,
            "Exchange/Respond",
            &respond(
                &ticket,
                vec![text("care.involvement", "known\rnothing to see")],
            ),
            "fields[0].value.text",
        ),
        case(
            "answer with an unknown field",
            CAW,
            "Exchange/Respond",
            &respond(&ticket, vec![text("subject.shoe_size", "44")]),
            "fields[0].field",
        ),
        case(
            "weighing over the wire limit",
            CAW,
            "Exchange/Respond",
            &pb::RespondRequest {
                weighing: Some(pb::Weighing {
                    danger: "gevaar ".repeat(3_000),
                    no_other_way: "geen andere weg".into(),
                    proportionality: "evenredig".into(),
                }),
                ..respond(&ticket, Vec::new())
            },
            "weighing.danger",
        ),
        case(
            "decline without a reason",
            CAW,
            "Exchange/Decline",
            &pb::DeclineRequest {
                ticket_id: ticket.clone(),
                reason: 0,
            },
            "reason",
        ),
        case(
            "decline with an undeclared reason",
            CAW,
            "Exchange/Decline",
            &pb::DeclineRequest {
                ticket_id: ticket.clone(),
                reason: 99,
            },
            "reason",
        ),
        // Exchange requester side, push flow
        case(
            "ticket id with a path",
            POLICE,
            "Exchange/GetResult",
            &pb::GetResultRequest {
                ticket_id: "../../t-1".into(),
                wait: None,
            },
            "ticket_id",
        ),
        case(
            "negative wait",
            POLICE,
            "Exchange/GetResult",
            &pb::GetResultRequest {
                ticket_id: ticket.clone(),
                wait: Some(prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                }),
            },
            "wait",
        ),
        case(
            "share of 100,000 fields",
            POLICE,
            "Exchange/Share",
            &share(no_entries.clone()),
            "fields",
        ),
        raw(
            "share of 100,000 filled fields",
            POLICE,
            "Exchange/Share",
            share(vec![text("referral.reason", "housing"); 100_000]).encode_to_vec(),
            "MESSAGE_TOO_LARGE",
            None,
        ),
        case(
            "share to an unknown recipient",
            POLICE,
            "Exchange/Share",
            &pb::ShareRequest {
                recipient: "nobody".into(),
                ..share(vec![text("referral.reason", "housing")])
            },
            "recipient",
        ),
        case(
            "enum value with a NUL",
            POLICE,
            "Exchange/Share",
            &share(vec![value_entry(
                "referral.reason",
                pb::field_value::Kind::EnumValue("housing\0".into()),
            )]),
            "fields[0].value.enum_value",
        ),
        case(
            "street over its length",
            POLICE,
            "Exchange/Share",
            &share(vec![value_entry(
                "subject.address",
                pb::field_value::Kind::Address(pb::Address {
                    street: "Kortrijksesteenweg ".repeat(10),
                    house_number: "12".into(),
                    postcode: "9000".into(),
                    municipality: "Gent".into(),
                }),
            )]),
            "fields[0].value.address.street",
        ),
        case(
            "inbox token over its length",
            CAW,
            "Exchange/ListInbox",
            &pb::ListInboxRequest {
                page_size: 0,
                page_token: "g-".repeat(40),
            },
            "page_token",
        ),
        case(
            "acknowledge nothing",
            CAW,
            "Exchange/Acknowledge",
            &pb::AcknowledgeRequest::default(),
            "signal_id",
        ),
        // Grounds
        case(
            "case with 100,000 participants",
            FJC,
            "Grounds/OpenCase",
            &open_case(no_parties.clone(), vec![pb::Subject::default()]),
            "participants",
        ),
        case(
            "case with 100,000 subjects",
            FJC,
            "Grounds/OpenCase",
            &open_case(
                vec![POLICE.into(), CAW.into()],
                vec![pb::Subject::default(); 100_000],
            ),
            "subjects",
        ),
        case(
            "case for an unknown purpose",
            FJC,
            "Grounds/OpenCase",
            &pb::OpenCaseRequest {
                purpose: "curiosity".into(),
                ..open_case(
                    vec![POLICE.into(), CAW.into()],
                    subject(SEQ).into_iter().collect(),
                )
            },
            "purpose",
        ),
        raw(
            "instrument not UTF-8",
            FJC,
            "Grounds/OpenCase",
            delimited(6, b"pk-\xed\xa0\x80"),
            "INVALID_UTF8",
            Some("instrument"),
        ),
        case(
            "close a case id in capitals",
            FJC,
            "Grounds/CloseCase",
            &pb::CloseCaseRequest {
                case_id: "CASE-1".into(),
            },
            "case_id",
        ),
        case(
            "renew nothing",
            FJC,
            "Grounds/RenewCase",
            &pb::RenewCaseRequest::default(),
            "case_id",
        ),
        case(
            "consent for 100,000 recipients",
            CAW,
            "Grounds/RecordConsent",
            &pb::RecordConsentRequest {
                recipients: no_parties.clone(),
                ..consent_request(SEQ, "referral-assistance", &[])
            },
            "recipients",
        ),
        case(
            "evidence with a NUL",
            CAW,
            "Grounds/RecordConsent",
            &pb::RecordConsentRequest {
                evidence: "form\0 2026/1".into(),
                ..consent_request(SEQ, "referral-assistance", &["ocmw-gent"])
            },
            "evidence",
        ),
        case(
            "expiry that is not a time",
            CAW,
            "Grounds/RecordConsent",
            &pb::RecordConsentRequest {
                expire_time: Some(prost_types::Timestamp {
                    seconds: NOW.unix_timestamp() + 86_400,
                    nanos: -1,
                }),
                ..consent_request(SEQ, "referral-assistance", &["ocmw-gent"])
            },
            "expire_time",
        ),
        case(
            "consent id over its length",
            CAW,
            "Grounds/RevokeConsent",
            &pb::RevokeConsentRequest {
                consent_id: "consent-".repeat(20),
                subject: None,
            },
            "consent_id",
        ),
        // Audit
        raw(
            "checkpoint request of an invalid wire type",
            SUPERVISOR,
            "Audit/GetCheckpoint",
            vec![0x0f],
            "MALFORMED_MESSAGE",
            None,
        ),
        raw(
            "inclusion proof request nested too deep",
            SUPERVISOR,
            "Audit/GetInclusionProof",
            too_deep(),
            "MESSAGE_TOO_DEEP",
            None,
        ),
        raw(
            "tree size as a string",
            SUPERVISOR,
            "Audit/GetConsistencyProof",
            delimited(1, b"12"),
            "MALFORMED_MESSAGE",
            Some("old_size"),
        ),
        raw(
            "entries request over the size limit",
            SUPERVISOR,
            "Audit/GetEntries",
            oversized(),
            "MESSAGE_TOO_LARGE",
            None,
        ),
        case(
            "search for an exchange id with a control character",
            SUPERVISOR,
            "Audit/SearchEntries",
            &pb::SearchEntriesRequest {
                exchange_id: "t-1\u{85}".into(),
                ..Default::default()
            },
            "exchange_id",
        ),
        case(
            "search for an undeclared verdict",
            SUPERVISOR,
            "Audit/SearchEntries",
            &pb::SearchEntriesRequest {
                verdict: 42,
                ..Default::default()
            },
            "verdict",
        ),
        case(
            "report without a subject",
            SUPERVISOR,
            "Audit/SubjectReport",
            &pb::SubjectReportRequest::default(),
            "subject.number",
        ),
        raw(
            "review token not UTF-8",
            SUPERVISOR,
            "Audit/ListReviews",
            delimited(2, b"\x80"),
            "INVALID_UTF8",
            Some("page_token"),
        ),
        case(
            "review note with a bell",
            SUPERVISOR,
            "Audit/RecordReview",
            &pb::RecordReviewRequest {
                exchange_id: ticket.clone(),
                outcome: pb::ReviewOutcome::Justified as i32,
                note: "fine\u{7}".into(),
            },
            "note",
        ),
        // Policies
        case(
            "dry run for an unknown purpose",
            POLICE,
            "Policies/Explain",
            &explain("nosiness"),
            "purpose",
        ),
        case(
            "dry run of an unknown kind",
            POLICE,
            "Policies/Explain",
            &pb::ExplainRequest {
                kind: "gossip".into(),
                ..explain("intrafamily-violence")
            },
            "kind",
        ),
        case(
            "dry run with 100,000 elements",
            POLICE,
            "Policies/Explain",
            &pb::ExplainRequest {
                elements: no_entries,
                ..explain("intrafamily-violence")
            },
            "elements",
        ),
        case(
            "dry run asking an unknown field",
            POLICE,
            "Policies/Explain",
            &pb::ExplainRequest {
                subject: subject(SEQ),
                fields: vec![ask("subject.shoe_size")],
                ..explain("intrafamily-violence")
            },
            "fields[0].field",
        ),
        Case {
            name: "agreements without a message",
            party: POLICE,
            rpc: "Policies/ListAgreements",
            body: Body::Nothing,
            reason: "MISSING_MESSAGE",
            field: None,
        },
        raw(
            "agreements request nested too deep",
            POLICE,
            "Policies/ListAgreements",
            too_deep(),
            "MESSAGE_TOO_DEEP",
            None,
        ),
    ];
    // Control characters are refused, and never echoed in the answer.
    cases.push(case(
        "justification of 10,000 escapes",
        POLICE,
        "Exchange/Lookup",
        &lookup("intrafamily-violence", &"\u{1b}".repeat(10_000)),
        "justification",
    ));
    cases
}

/// Sends one case as `party` and returns the status it got.
async fn send(channel: Channel, case: &Case) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let path: PathAndQuery = format!("/ketenpoort.v1.{}", case.rpc)
        .parse()
        .expect("path");
    let answer = match &case.body {
        Body::Bytes(bytes) => grpc.unary(req(bytes.clone()), path, Raw).await.map(|_| ()),
        Body::Nothing => grpc
            .client_streaming(req(stream::empty::<Vec<u8>>()), path, Raw)
            .await
            .map(|_| ()),
    };
    answer.expect_err(case.name)
}

/// The tree size the supervisor sees in the latest checkpoint.
async fn tree_size(gw: &TestGateway) -> u64 {
    gw.audit(SUPERVISOR)
        .await
        .get_checkpoint(req(pb::GetCheckpointRequest {}))
        .await
        .expect("checkpoint")
        .into_inner()
        .tree_size
}

/// The pending tickets of CAW, and the signals waiting for the parties the matrix shares to.
async fn pending(gw: &TestGateway) -> (Vec<String>, usize) {
    let incoming = gw
        .exchange(CAW)
        .await
        .list_incoming(req(pb::ListIncomingRequest::default()))
        .await
        .expect("incoming")
        .into_inner()
        .requests
        .into_iter()
        .map(|r| r.ticket_id)
        .collect();
    let mut signals = 0;
    for party in ["ocmw-gent", CAW] {
        signals += gw
            .exchange(party)
            .await
            .list_inbox(req(pb::ListInboxRequest::default()))
            .await
            .expect("inbox")
            .into_inner()
            .signals
            .len();
    }
    (incoming, signals)
}

#[tokio::test]
async fn every_bad_input_is_invalid_argument_with_small_details_and_changes_nothing() {
    let gw = TestGateway::start().await;

    // One real pending ticket, so that bad answers aim at something that exists.
    let mut fjc = gw.grounds(FJC).await;
    fjc.open_case(req(pb::OpenCaseRequest {
        case_id: String::new(),
        ..open_case(
            vec![POLICE.into(), CAW.into(), FJC.into()],
            subject(SEQ).into_iter().collect(),
        )
    }))
    .await
    .expect("case opens");
    let ticket = gw
        .exchange(POLICE)
        .await
        .request_context(req(context(vec![
            ask("subject.birth_date"),
            ask("subject.address"),
        ])))
        .await
        .expect("allowed inside the case")
        .into_inner()
        .ticket_id;

    let size = tree_size(&gw).await;
    let log_size = gw.gateway.log().size();
    let before = pending(&gw).await;
    assert_eq!(before, (vec![ticket.clone()], 0));

    let cases = matrix(&ticket);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let services: std::collections::BTreeSet<&str> = cases
        .iter()
        .map(|c| c.rpc.split_once('/').expect("Service/Method").0)
        .collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["Audit", "Exchange", "Grounds", "Policies"]
    );
    let mut channels = std::collections::HashMap::new();
    for case in &cases {
        if !channels.contains_key(case.party) {
            channels.insert(case.party, gw.channel(case.party).await);
        }
        let status = send(channels[case.party].clone(), case).await;
        let what = format!("{} ({}): {status:?}", case.name, case.rpc);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}");
        let details = status.get_error_details();
        let info = details.error_info().unwrap_or_else(|| panic!("{what}"));
        assert_eq!(info.domain, "ketenpoort.eu", "{what}");
        assert_eq!(info.reason, case.reason, "{what}");
        if let Some(field) = case.field {
            let named: Vec<&str> = details
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| v.field.as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert!(named.contains(&field), "{what}: {named:?}");
        }
        // grpc-status-details-bin: the bytes, and their base64 in the header.
        let encoded = status.details().len().div_ceil(3) * 4;
        assert!(encoded < 4 * 1024, "{what}: {encoded} bytes of details");
        assert!(status.message().len() <= 320, "{what}");
        assert!(
            !status.message().contains(&subject_number(SEQ)),
            "{what}: the subject number is echoed"
        );
    }

    assert_eq!(tree_size(&gw).await, size, "no audit entry");
    assert_eq!(gw.gateway.log().size(), log_size, "no audit entry");
    assert_eq!(pending(&gw).await, before, "no ticket or signal appears");
    // The case the matrix tried to open and close under its own id does not exist.
    let status = fjc
        .close_case(req(pb::CloseCaseRequest {
            case_id: "bad-input-case".into(),
        }))
        .await
        .expect_err("never opened");
    assert_eq!(status.code(), Code::NotFound);
    gw.stop().await;
}

#[tokio::test]
async fn a_valid_call_still_passes_the_edge() {
    // The edge refuses only what it must: the same raw path, with a good message, is served.
    let gw = TestGateway::start().await;
    let mut grpc = tonic::client::Grpc::new(gw.channel(POLICE).await);
    grpc.ready().await.expect("ready");
    let answer = grpc
        .unary(
            req(Vec::new()),
            "/ketenpoort.v1.Policies/ListAgreements"
                .parse()
                .expect("path"),
            Raw,
        )
        .await
        .expect("served")
        .into_inner();
    let list = pb::ListAgreementsResponse::decode(answer.as_slice()).expect("decodes");
    assert!(!list.agreements.is_empty());
    gw.stop().await;
}
