//! The role × RPC refusal matrix over real mutual TLS: one party per role calls every RPC it must not
//! use and is refused with the code the gateway defines for it, and no data comes back. One server
//! serves the whole table.

mod common;

use common::*;
use ketenpoort::proto::v1 as pb;
use prost::Message;
use tonic::Code;

const POLICE: &str = "pz-gent";
const SOCIAL: &str = "caw-oost-vlaanderen";
const CARE: &str = "cgg-eclips";
const PROSECUTOR: &str = "parket-oost-vlaanderen";
const COORDINATOR: &str = "fjc-oost-vlaanderen";
const AUDITOR: &str = "dpo-pz-gent";
const SUPERVISOR: &str = "coc";

/// The subject every call is about.
const SEQ: u32 = 11;
/// The holder's dossier reference: must never come back to a refused caller.
const DOSSIER: &str = "dossier-matrix-11";

/// One forbidden call.
#[derive(Debug, Clone)]
enum Call {
    /// Open a case on the subject.
    OpenCase,
    /// Look the subject up, for a purpose lookups allow.
    Lookup,
    /// Ask the social service for context inside the case.
    RequestContext,
    /// Share case fields with the social service inside the case.
    ShareCase,
    /// Share the elements of a 458bis report with the police.
    Share458bisToPolice,
    /// Answer the police's ticket, which is addressed to the social service.
    Respond,
    /// Decline that ticket.
    Decline,
    /// Fetch that ticket's result, which belongs to the police.
    GetResult,
    /// Acknowledge the signal sent to the social service.
    Acknowledge,
    /// Close the case opened by the coordinator.
    CloseCase,
    /// List a review queue: only DPOs and the supervisor review.
    ListReviews,
    /// Record a review of the ticket: only DPOs and the supervisor review.
    RecordReview,
}

/// What the gateway must answer.
struct Expect {
    code: Code,
    reason: &'static str,
}

const DENIED: Expect = Expect {
    code: Code::PermissionDenied,
    reason: "NO_MATCHING_PERMIT",
};
const FORBIDDEN: Expect = Expect {
    code: Code::PermissionDenied,
    reason: "FORBIDDEN",
};
const ROLE_REQUIRED: Expect = Expect {
    code: Code::PermissionDenied,
    reason: "ROLE_REQUIRED",
};
/// The parket takes part in Veilig Huis consultations: without such a case, a case is missing.
const CASE_REQUIRED: Expect = Expect {
    code: Code::FailedPrecondition,
    reason: "CASE_REQUIRED",
};
/// Only the agreement's openers may open one of its cases; the refusal is logged.
const OPENER_NOT_ALLOWED: Expect = Expect {
    code: Code::PermissionDenied,
    reason: "OPENER_NOT_ALLOWED",
};
const NOT_FOUND: Expect = Expect {
    code: Code::NotFound,
    reason: "NOT_FOUND",
};

/// State the calls refer to.
struct Fixture {
    case_id: String,
    ticket_id: String,
    signal_id: String,
}

async fn setup(gw: &TestGateway) -> Fixture {
    gw.exchange(SOCIAL)
        .await
        .register_reference(req(pb::RegisterReferenceRequest {
            subject: subject(SEQ),
            holder_reference: DOSSIER.into(),
            ground: Some(consent_ground(&gw.findable(SOCIAL, SEQ).await)),
        }))
        .await
        .expect("register");
    let case_id = gw
        .grounds(COORDINATOR)
        .await
        .open_case(req(pb::OpenCaseRequest {
            case_id: String::new(),
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into(), SOCIAL.into(), COORDINATOR.into()],
            subjects: vec![pb::Subject {
                number: subject_number(SEQ),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect("case opens")
        .into_inner()
        .case_id;
    let mut police = gw.exchange(POLICE).await;
    let ticket_id = police
        .request_context(req(context_request()))
        .await
        .expect("police may ask inside the case")
        .into_inner()
        .ticket_id;
    let signal_id = police
        .share(req(case_share(SOCIAL)))
        .await
        .expect("police may share inside the case")
        .into_inner()
        .signal_id;
    Fixture {
        case_id,
        ticket_id,
        signal_id,
    }
}

fn context_request() -> pb::RequestContextRequest {
    pb::RequestContextRequest {
        subject: subject(SEQ),
        holder: SOCIAL.into(),
        purpose: "intrafamily-violence".into(),
        fields: vec![ask("subject.birth_date"), ask("subject.address")],
        justification: String::new(),
    }
}

fn case_share(recipient: &str) -> pb::ShareRequest {
    pb::ShareRequest {
        subject: subject(SEQ),
        recipient: recipient.into(),
        purpose: "intrafamily-violence".into(),
        fields: vec![text("subject.name", "Jan Janssens")],
        justification: String::new(),
        forms: vec![],
    }
}

/// Makes `call` as `party`; an `Ok` carries the encoded response, which must never happen here.
async fn make(
    gw: &TestGateway,
    party: &str,
    call: &Call,
    fx: &Fixture,
) -> Result<Vec<u8>, tonic::Status> {
    match call {
        Call::OpenCase => gw
            .grounds(party)
            .await
            .open_case(req(pb::OpenCaseRequest {
                case_id: String::new(),
                purpose: "intrafamily-violence".into(),
                participants: vec![POLICE.into(), SOCIAL.into(), party.into()],
                subjects: vec![pb::Subject {
                    number: subject_number(SEQ),
                }],
                agreement: "casusoverleg-ifg".into(),
                instrument: "pk-ovl-fjc-2023-01".into(),
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::Lookup => gw
            .exchange(party)
            .await
            .lookup(req(pb::LookupRequest {
                subject: subject(SEQ),
                purpose: "protection-integrity".into(),
                justification: String::new(),
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::RequestContext => gw
            .exchange(party)
            .await
            .request_context(req(context_request()))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::ShareCase => gw
            .exchange(party)
            .await
            .share(req(case_share(SOCIAL)))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::Share458bisToPolice => gw
            .exchange(party)
            .await
            .share(req(pb::ShareRequest {
                subject: subject(SEQ),
                recipient: POLICE.into(),
                purpose: "protection-integrity".into(),
                fields: vec![
                    text("signal.offence_category", "intrafamily-violence"),
                    text("signal.justification", &"m".repeat(120)),
                ],
                justification: "w".repeat(120),
                forms: vec![],
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::Respond => gw
            .exchange(party)
            .await
            .respond(req(pb::RespondRequest {
                weighing: None,
                ticket_id: fx.ticket_id.clone(),
                fields: vec![text("subject.name", "Jan Janssens")],
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::Decline => gw
            .exchange(party)
            .await
            .decline(req(pb::DeclineRequest {
                ticket_id: fx.ticket_id.clone(),
                reason: 1,
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::GetResult => gw
            .exchange(party)
            .await
            .get_result(req(pb::GetResultRequest {
                ticket_id: fx.ticket_id.clone(),
                wait: None,
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::Acknowledge => gw
            .exchange(party)
            .await
            .acknowledge(req(pb::AcknowledgeRequest {
                signal_id: fx.signal_id.clone(),
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::CloseCase => gw
            .grounds(party)
            .await
            .close_case(req(pb::CloseCaseRequest {
                case_id: fx.case_id.clone(),
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::ListReviews => gw
            .audit(party)
            .await
            .list_reviews(req(pb::ListReviewsRequest::default()))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
        Call::RecordReview => gw
            .audit(party)
            .await
            .record_review(req(pb::RecordReviewRequest {
                exchange_id: fx.ticket_id.clone(),
                outcome: pb::ReviewOutcome::Justified as i32,
                note: String::new(),
            }))
            .await
            .map(|r| r.get_ref().encode_to_vec()),
    }
}

/// The matrix: per role, every call it must not make and the answer it gets.
fn table() -> Vec<(&'static str, Call, Expect)> {
    use Call::*;
    vec![
        // Police: cannot open cases, cannot touch tickets or signals addressed to others, and
        // cannot close someone else's case.
        (POLICE, OpenCase, OPENER_NOT_ALLOWED),
        (POLICE, Respond, NOT_FOUND),
        (POLICE, Decline, NOT_FOUND),
        (POLICE, Acknowledge, NOT_FOUND),
        (POLICE, ListReviews, ROLE_REQUIRED),
        (POLICE, RecordReview, ROLE_REQUIRED),
        // Social service: no lookups, no one else's result, no cases.
        (SOCIAL, Lookup, DENIED),
        (SOCIAL, GetResult, NOT_FOUND),
        (SOCIAL, OpenCase, OPENER_NOT_ALLOWED),
        (SOCIAL, ListReviews, ROLE_REQUIRED),
        // Care provider: never a 458bis report to the police; not a party to this ticket or case.
        (CARE, Share458bisToPolice, FORBIDDEN),
        (CARE, OpenCase, OPENER_NOT_ALLOWED),
        (CARE, Lookup, DENIED),
        (CARE, Respond, NOT_FOUND),
        (CARE, GetResult, NOT_FOUND),
        (CARE, Acknowledge, NOT_FOUND),
        // Prosecutor: receives reports, asks nothing through the gateway.
        (PROSECUTOR, Lookup, DENIED),
        (PROSECUTOR, RequestContext, CASE_REQUIRED),
        (PROSECUTOR, ShareCase, CASE_REQUIRED),
        (PROSECUTOR, Respond, NOT_FOUND),
        // Coordinator: directs the case but does not look up or answer for others.
        (COORDINATOR, Lookup, DENIED),
        (COORDINATOR, Respond, NOT_FOUND),
        (COORDINATOR, GetResult, NOT_FOUND),
        (COORDINATOR, Acknowledge, NOT_FOUND),
        (COORDINATOR, RecordReview, ROLE_REQUIRED),
        // Auditor: reads the log, exchanges nothing.
        (AUDITOR, Share458bisToPolice, DENIED),
        (AUDITOR, ShareCase, DENIED),
        (AUDITOR, RequestContext, DENIED),
        (AUDITOR, Lookup, DENIED),
        (AUDITOR, OpenCase, OPENER_NOT_ALLOWED),
        (AUDITOR, Respond, NOT_FOUND),
        (AUDITOR, CloseCase, NOT_FOUND),
        // A DPO reviews only what is in its own queue; another's ticket is not found.
        (AUDITOR, RecordReview, NOT_FOUND),
        // Supervisor: sees the whole log, exchanges nothing.
        (SUPERVISOR, ShareCase, DENIED),
        (SUPERVISOR, RequestContext, DENIED),
        (SUPERVISOR, Lookup, DENIED),
        (SUPERVISOR, OpenCase, OPENER_NOT_ALLOWED),
        (SUPERVISOR, Decline, NOT_FOUND),
    ]
}

#[tokio::test]
async fn every_role_is_refused_every_rpc_it_must_not_use() {
    let gw = TestGateway::start().await;
    let fx = setup(&gw).await;
    let number = subject_number(SEQ);
    let mut failures = Vec::new();
    for (party, call, expect) in table() {
        let size_before = gw.gateway.log().size();
        match make(&gw, party, &call, &fx).await {
            Ok(body) => failures.push(format!(
                "{party} {call:?}: allowed, {} bytes came back",
                body.len()
            )),
            Err(status) => {
                let got = reason(&status);
                if status.code() != expect.code || got != expect.reason {
                    failures.push(format!(
                        "{party} {call:?}: got {:?}/{got}, want {:?}/{}",
                        status.code(),
                        expect.code,
                        expect.reason
                    ));
                }
                // No data in the refusal: no subject number, dossier, or released value.
                let leaked = [number.as_str(), DOSSIER, "Jan Janssens"].iter().any(|s| {
                    status.message().contains(s)
                        || status.details().windows(s.len()).any(|w| w == s.as_bytes())
                });
                if leaked {
                    failures.push(format!("{party} {call:?}: the refusal carries data"));
                }
                // Policy refusals are logged; nothing else changes the log.
                let logged = gw.gateway.log().size() - size_before;
                let want =
                    u64::from(expect.code != Code::NotFound && expect.reason != "ROLE_REQUIRED");
                if logged != want {
                    failures.push(format!(
                        "{party} {call:?}: {logged} entries appended, want {want}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix failures:\n{}",
        failures.join("\n")
    );

    // The ticket and signal are untouched by all of that.
    let pending = gw
        .exchange(SOCIAL)
        .await
        .list_incoming(req(pb::ListIncomingRequest::default()))
        .await
        .expect("holder lists")
        .into_inner();
    assert!(pending.requests.iter().any(|r| r.ticket_id == fx.ticket_id));
    gw.stop().await;
}

/// A party that is not an auditor gets leaf hashes only for entries between other parties; an
/// auditor sees its own organisation's entries and hashes for the rest.
#[tokio::test]
async fn audit_reads_outside_scope_return_leaf_hashes_only() {
    let gw = TestGateway::start().await;
    setup(&gw).await;
    let size = u32::try_from(gw.gateway.log().size()).expect("small log");
    let contents = |leaves: &[pb::LogLeaf]| -> (Vec<pb::AuditEntry>, usize) {
        let mut entries = Vec::new();
        let mut hashes = 0;
        for leaf in leaves {
            match &leaf.content {
                Some(pb::log_leaf::Content::Entry(bytes)) => {
                    entries.push(pb::AuditEntry::decode(bytes.as_slice()).expect("decodes"))
                }
                Some(pb::log_leaf::Content::LeafHash(h)) => {
                    assert_eq!(h.len(), 32);
                    hashes += 1;
                }
                None => panic!("empty leaf {}", leaf.index),
            }
        }
        (entries, hashes)
    };
    for party in [CARE, PROSECUTOR, SOCIAL, POLICE, COORDINATOR] {
        let leaves = gw
            .audit(party)
            .await
            .get_entries(req(pb::GetEntriesRequest {
                start: 0,
                count: size,
            }))
            .await
            .expect("anyone may read the range")
            .into_inner()
            .leaves;
        assert_eq!(
            leaves.len(),
            size as usize,
            "{party}: every position answered"
        );
        let (entries, hashes) = contents(&leaves);
        assert_eq!(entries.len(), 0, "{party}: not an auditor, sees no entry");
        assert_eq!(hashes, size as usize, "{party}: hashes only");
    }
    let leaves = gw
        .audit(AUDITOR)
        .await
        .get_entries(req(pb::GetEntriesRequest {
            start: 0,
            count: size,
        }))
        .await
        .expect("auditor reads")
        .into_inner()
        .leaves;
    let (entries, hashes) = contents(&leaves);
    assert!(!entries.is_empty(), "the auditor sees its organisation");
    assert!(hashes > 0, "and hashes for the rest");
    for entry in &entries {
        let parties = [
            entry.requester_party.as_str(),
            entry.counterpart_party.as_str(),
        ];
        assert!(
            parties.contains(&POLICE) || parties.iter().all(|p| p.is_empty()),
            "entry outside the auditor's scope shown: {parties:?}"
        );
    }
    gw.stop().await;
}
