//! Black-box tests of the exchange flows over real mutual TLS: the reference directory, the request
//! flow with a 458ter case, the push flow with consent, and receipts that verify offline.

mod common;

use common::*;
use ketenpoort::proto::v1 as pb;
use pb::field_value::Kind;
use prost::Message;
use tonic::Code;

const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";
const OCMW: &str = "ocmw-gent";
const FJC: &str = "fjc-oost-vlaanderen";

/// A lookup of subject `seq` for `purpose`, without justification.
fn lookup_request(seq: u32, purpose: &str) -> tonic::Request<pb::LookupRequest> {
    req(pb::LookupRequest {
        subject: subject(seq),
        purpose: purpose.into(),
        justification: String::new(),
    })
}

#[tokio::test]
async fn lookup_finds_registered_holder_and_hides_absence() {
    let gw = TestGateway::start().await;
    let mut caw = gw.exchange(CAW).await;
    let registered = caw
        .register_reference(req(pb::RegisterReferenceRequest {
            subject: subject(1),
            holder_reference: "dossier-2026-17".into(),
            ground: Some(consent_ground(&gw.findable(CAW, 1).await)),
        }))
        .await
        .expect("register")
        .into_inner();
    assert_eq!(registered.subject_pseudonym.len(), 64);
    verify_receipt(&gw, registered.receipt.as_ref().expect("receipt"));

    let mut police = gw.exchange(POLICE).await;
    let found = police
        .lookup(lookup_request(1, "protection-integrity"))
        .await
        .expect("lookup allowed")
        .into_inner();
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].holder, CAW);
    assert!(!found.hits[0].contact_point.is_empty());
    let receipt = found.receipt.expect("receipt");
    verify_receipt(&gw, &receipt);
    let entry = pb::AuditEntry::decode(receipt.entry.as_slice()).expect("entry decodes");
    assert_eq!(entry.exchange_kind, "lookup");
    assert!(!entry.subject_pseudonym.is_empty());
    // No clear subject number anywhere in the logged entry.
    let number = subject_number(1);
    assert!(
        !receipt
            .entry
            .windows(number.len())
            .any(|w| w == number.as_bytes())
    );

    // Nobody knows subject 2: same shape of answer, just no hits.
    let none = police
        .lookup(lookup_request(2, "protection-integrity"))
        .await
        .expect("lookup allowed")
        .into_inner();
    assert!(none.hits.is_empty());

    // A purpose the policy never allows for lookups is refused whether or not anyone knows the
    // subject, with the same reason.
    let mut reasons = Vec::new();
    for seq in [1, 2] {
        let status = police
            .lookup(lookup_request(seq, "criminal-investigation"))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::PermissionDenied);
        reasons.push(reason(&status));
    }
    assert_eq!(reasons[0], reasons[1]);

    // A withdrawn reference is gone from the next lookup (the directory is cached between
    // changes), and a registration brings it back.
    let lookup_hits = |mut police: pb::exchange_client::ExchangeClient<_>| async move {
        police
            .lookup(lookup_request(1, "protection-integrity"))
            .await
            .expect("lookup allowed")
            .into_inner()
            .hits
            .len()
    };
    let withdrawn = caw
        .withdraw_reference(req(pb::WithdrawReferenceRequest {
            subject: subject(1),
        }))
        .await
        .expect("withdraw")
        .into_inner();
    verify_receipt(&gw, withdrawn.receipt.as_ref().expect("receipt"));
    assert_eq!(lookup_hits(police.clone()).await, 0);
    caw.register_reference(req(pb::RegisterReferenceRequest {
        subject: subject(1),
        holder_reference: "dossier-2026-18".into(),
        ground: Some(consent_ground(&gw.findable(CAW, 1).await)),
    }))
    .await
    .expect("register again");
    assert_eq!(lookup_hits(police.clone()).await, 1);
    gw.stop().await;
}

async fn open_case(gw: &TestGateway, seq: u32) -> String {
    let mut fjc = gw.grounds(FJC).await;
    let opened = fjc
        .open_case(req(pb::OpenCaseRequest {
            case_id: String::new(),
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into(), CAW.into(), FJC.into()],
            subjects: vec![pb::Subject {
                number: subject_number(seq),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect("case opens")
        .into_inner();
    verify_receipt(gw, opened.receipt.as_ref().expect("receipt"));
    opened.case_id
}

fn context_request(seq: u32) -> pb::RequestContextRequest {
    pb::RequestContextRequest {
        subject: subject(seq),
        holder: CAW.into(),
        purpose: "intrafamily-violence".into(),
        fields: vec![ask("subject.birth_date"), ask("subject.address")],
        justification: String::new(),
    }
}

#[tokio::test]
async fn request_flow_needs_a_case_and_releases_only_minimal_fields() {
    let gw = TestGateway::start().await;
    let mut police = gw.exchange(POLICE).await;

    // No case yet: a missing ground is FAILED_PRECONDITION, and it is logged.
    let size_before = gw.gateway.log().size();
    let status = police
        .request_context(req(context_request(3)))
        .await
        .expect_err("no case");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "CASE_REQUIRED");
    assert_eq!(
        gw.gateway.log().size(),
        size_before + 1,
        "refusal is logged"
    );

    open_case(&gw, 3).await;
    let asked = police
        .request_context(req(context_request(3)))
        .await
        .expect("allowed inside the case")
        .into_inner();
    let decision = asked.decision.expect("decision");
    let forms: Vec<(String, String)> = decision
        .fields
        .iter()
        .map(|f| (f.field.clone(), f.form.clone()))
        .collect();
    assert!(forms.contains(&("subject.birth_date".into(), "year".into())));
    assert!(forms.contains(&("subject.address".into(), "municipality".into())));

    // The holder sees it, with the fields it may answer.
    let mut caw = gw.exchange(CAW).await;
    let incoming = caw
        .list_incoming(req(pb::ListIncomingRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let pending = incoming
        .requests
        .iter()
        .find(|r| r.ticket_id == asked.ticket_id)
        .expect("ticket listed for the holder");
    assert_eq!(pending.requester, POLICE);
    assert_eq!(pending.fields.len(), 2);

    // Nothing to fetch yet.
    let early = police
        .get_result(req(pb::GetResultRequest {
            ticket_id: asked.ticket_id.clone(),
            wait: None,
        }))
        .await
        .expect("get result")
        .into_inner();
    assert_eq!(early.state, pb::TicketState::Pending as i32);

    // The holder over-shares: a full date, a full address and a health field.
    let answered = caw
        .respond(req(pb::RespondRequest {
            weighing: None,
            ticket_id: asked.ticket_id.clone(),
            fields: vec![
                value_entry(
                    "subject.birth_date",
                    Kind::Date(pb::Date {
                        year: 1985,
                        month: 7,
                        day: 30,
                    }),
                ),
                value_entry(
                    "subject.address",
                    Kind::Address(pb::Address {
                        street: "Kortrijksesteenweg".into(),
                        house_number: "12".into(),
                        postcode: "9000".into(),
                        municipality: "Gent".into(),
                    }),
                ),
                text("health.diagnosis", "not for the police"),
            ],
        }))
        .await
        .expect("respond")
        .into_inner();
    assert_eq!(
        answered.stripped_fields,
        vec!["health.diagnosis".to_string()]
    );
    let receipt = answered.receipt.expect("receipt");
    verify_receipt(&gw, &receipt);
    let entry = pb::AuditEntry::decode(receipt.entry.as_slice()).expect("decodes");
    assert_eq!(entry.payload_commitment.len(), 32);
    assert!(
        !receipt.entry.windows(4).any(|w| w == b"Gent"),
        "no values in the log"
    );

    // A second answer to the same ticket fails.
    let again = caw
        .respond(req(pb::RespondRequest {
            weighing: None,
            ticket_id: asked.ticket_id.clone(),
            fields: vec![text("subject.name", "x")],
        }))
        .await
        .expect_err("already answered");
    assert_eq!(again.code(), Code::FailedPrecondition);

    let result = police
        .get_result(req(pb::GetResultRequest {
            ticket_id: asked.ticket_id.clone(),
            wait: None,
        }))
        .await
        .expect("result")
        .into_inner();
    assert_eq!(result.state, pb::TicketState::Answered as i32);
    let values: Vec<(String, Option<Kind>)> = result
        .released
        .iter()
        .map(|r| (r.field.clone(), r.value.clone().and_then(|v| v.kind)))
        .collect();
    assert!(values.contains(&("subject.birth_date".into(), Some(Kind::Text("1985".into())))));
    assert!(values.contains(&("subject.address".into(), Some(Kind::Text("Gent".into())))));
    assert_eq!(values.len(), 2);
    assert_eq!(result.commitment_salt.len(), 32);

    // Fetched once: the payload is gone.
    let later = police
        .get_result(req(pb::GetResultRequest {
            ticket_id: asked.ticket_id.clone(),
            wait: None,
        }))
        .await
        .expect("result")
        .into_inner();
    assert_eq!(later.state, pb::TicketState::Delivered as i32);
    assert!(later.released.is_empty());

    // Another party cannot see the ticket at all.
    let mut ocmw = gw.exchange(OCMW).await;
    let status = ocmw
        .get_result(req(pb::GetResultRequest {
            ticket_id: asked.ticket_id.clone(),
            wait: None,
        }))
        .await
        .expect_err("not yours");
    assert_eq!(status.code(), Code::NotFound);
    gw.stop().await;
}

#[tokio::test]
async fn concurrent_responds_on_one_ticket_never_both_succeed() {
    let gw = TestGateway::start().await;
    open_case(&gw, 4).await;
    let mut police = gw.exchange(POLICE).await;
    let ticket = police
        .request_context(req(context_request(4)))
        .await
        .expect("allowed")
        .into_inner()
        .ticket_id;
    let caw = gw.exchange(CAW).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = caw.clone();
        let ticket = ticket.clone();
        tasks.push(tokio::spawn(async move {
            client
                .respond(req(pb::RespondRequest {
                    weighing: None,
                    ticket_id: ticket,
                    fields: vec![text("subject.name", "J. Janssens")],
                }))
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition),
        }
    }
    assert_eq!(ok, 1);
    gw.stop().await;
}

#[tokio::test]
async fn decline_and_waiting_get_result() {
    let gw = TestGateway::start().await;
    open_case(&gw, 5).await;
    let mut police = gw.exchange(POLICE).await;
    let ticket = police
        .request_context(req(context_request(5)))
        .await
        .expect("allowed")
        .into_inner()
        .ticket_id;
    let waiter = {
        let mut police = police.clone();
        let ticket = ticket.clone();
        tokio::spawn(async move {
            police
                .get_result(req(pb::GetResultRequest {
                    ticket_id: ticket,
                    wait: Some(prost_types::Duration {
                        seconds: 20,
                        nanos: 0,
                    }),
                }))
                .await
        })
    };
    let mut caw = gw.exchange(CAW).await;
    let declined = caw
        .decline(req(pb::DeclineRequest {
            ticket_id: ticket.clone(),
            reason: pb::DeclineReason::ProfessionalJudgement as i32,
        }))
        .await
        .expect("decline")
        .into_inner();
    verify_receipt(&gw, declined.receipt.as_ref().expect("receipt"));
    let result = waiter.await.expect("task").expect("result").into_inner();
    assert_eq!(result.state, pb::TicketState::Declined as i32);
    assert_eq!(
        result.decline_reason,
        pb::DeclineReason::ProfessionalJudgement as i32
    );
    gw.stop().await;
}

#[tokio::test]
async fn share_with_consent_reaches_inbox_minimised_until_acknowledged() {
    let gw = TestGateway::start().await;
    let mut police = gw.exchange(POLICE).await;
    let signal = pb::ShareRequest {
        subject: subject(6),
        recipient: OCMW.into(),
        purpose: "referral-assistance".into(),
        fields: vec![
            text("subject.name", "Jan Janssens"),
            value_entry(
                "subject.birth_date",
                Kind::Date(pb::Date {
                    year: 1985,
                    month: 7,
                    day: 30,
                }),
            ),
            value_entry("referral.reason", Kind::EnumValue("housing".into())),
        ],
        justification: String::new(),
        forms: vec![],
    };
    let status = police
        .share(req(signal.clone()))
        .await
        .expect_err("no consent yet");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "CONSENT_REQUIRED");

    let mut grounds = gw.grounds(POLICE).await;
    let consent = grounds
        .record_consent(req(pb::RecordConsentRequest {
            subject: subject(6),
            purpose: "referral-assistance".into(),
            recipients: vec![OCMW.into()],
            evidence: "signed form 2026/0213".into(),
            give_time: None,
            expire_time: Some(prost_types::Timestamp {
                seconds: NOW.unix_timestamp() + 30 * 86_400,
                nanos: 0,
            }),
            given_by: pb::ConsentGiver::Subject as i32,
            information_version: "folder v1".into(),
            minor: pb::MinorCapacity::Adult as i32,
            parents_also_consented: false,
        }))
        .await
        .expect("consent recorded")
        .into_inner();
    let shared = police
        .share(req(signal))
        .await
        .expect("shared with consent")
        .into_inner();
    verify_receipt(&gw, shared.receipt.as_ref().expect("receipt"));

    let mut ocmw = gw.exchange(OCMW).await;
    let inbox = ocmw
        .list_inbox(req(pb::ListInboxRequest::default()))
        .await
        .expect("inbox")
        .into_inner();
    assert_eq!(inbox.signals.len(), 1);
    let got = &inbox.signals[0];
    assert_eq!(got.signal_id, shared.signal_id);
    let birth = got
        .released
        .iter()
        .find(|r| r.field == "subject.birth_date")
        .expect("birth date released");
    assert_eq!(birth.form, "year_month");
    assert_eq!(
        birth.value.clone().and_then(|v| v.kind),
        Some(Kind::Text("1985-07".into()))
    );

    // The sender's inbox is not the recipient's.
    let other = police
        .list_inbox(req(pb::ListInboxRequest::default()))
        .await
        .expect("inbox")
        .into_inner();
    assert!(other.signals.is_empty());

    ocmw.acknowledge(req(pb::AcknowledgeRequest {
        signal_id: shared.signal_id.clone(),
    }))
    .await
    .expect("ack");
    let after = ocmw
        .list_inbox(req(pb::ListInboxRequest::default()))
        .await
        .expect("inbox")
        .into_inner();
    assert!(after.signals.is_empty());

    // After revocation, sharing again is refused.
    grounds
        .revoke_consent(req(pb::RevokeConsentRequest {
            consent_id: consent.consent_id,
            subject: None,
        }))
        .await
        .expect("revoked");
    let status = police
        .share(req(pb::ShareRequest {
            subject: subject(6),
            recipient: OCMW.into(),
            purpose: "referral-assistance".into(),
            fields: vec![text("subject.name", "Jan Janssens")],
            justification: String::new(),
            forms: vec![],
        }))
        .await
        .expect_err("consent revoked");
    assert_eq!(status.code(), Code::FailedPrecondition);
    gw.stop().await;
}

#[tokio::test]
async fn invalid_subject_number_is_a_field_violation_without_the_number() {
    let gw = TestGateway::start().await;
    let mut police = gw.exchange(POLICE).await;
    let bad = "85073003329";
    let status = police
        .lookup(req(pb::LookupRequest {
            subject: Some(pb::Subject { number: bad.into() }),
            purpose: "protection-integrity".into(),
            justification: String::new(),
        }))
        .await
        .expect_err("bad check digits");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(!status.message().contains(bad));
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let violations = &details.bad_request().expect("bad request").field_violations;
    assert_eq!(violations[0].field, "subject.number");
    gw.stop().await;
}

#[tokio::test]
async fn grounds_need_the_right_role_and_owner() {
    let gw = TestGateway::start().await;
    let mut police_grounds = gw.grounds(POLICE).await;
    let status = police_grounds
        .open_case(req(pb::OpenCaseRequest {
            case_id: String::new(),
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into()],
            subjects: vec![pb::Subject {
                number: subject_number(7),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect_err("police cannot open a case");
    assert_eq!(status.code(), Code::PermissionDenied);

    let case_id = open_case(&gw, 7).await;
    let status = police_grounds
        .close_case(req(pb::CloseCaseRequest {
            case_id: case_id.clone(),
        }))
        .await
        .expect_err("only the opener closes");
    assert_eq!(status.code(), Code::NotFound);
    let mut fjc = gw.grounds(FJC).await;
    fjc.close_case(req(pb::CloseCaseRequest { case_id }))
        .await
        .expect("opener closes");

    // With the case closed, the request flow is refused again.
    let mut police = gw.exchange(POLICE).await;
    let status = police
        .request_context(req(context_request(7)))
        .await
        .expect_err("case closed");
    assert_eq!(reason(&status), "CASE_REQUIRED");
    gw.stop().await;
}
