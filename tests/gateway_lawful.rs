//! Lawful by construction, over mutual TLS: case consultations bound to their agreement and
//! instrument, the holder's written weighing under necessity, review queues, references found
//! only where their ground reaches, consent with who gave it, and revocation by a recipient.

mod common;

use common::*;
use ketenpoort::exchange::{text_commitment, weighing_text};
use ketenpoort::proto::v1 as pb;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

const POLICE: &str = "pz-gent";
const POLICE_AALST: &str = "pz-aalst";
const CAW: &str = "caw-oost-vlaanderen";
const OCMW: &str = "ocmw-gent";
const CGG: &str = "cgg-eclips";
const FJC: &str = "fjc-oost-vlaanderen";
const LIVC: &str = "livc-gent";
const DPO_CAW: &str = "dpo-caw-oost-vlaanderen";
const DPO_CGG: &str = "dpo-cgg-eclips";
const DPO_POLICE: &str = "dpo-pz-gent";
const DPO_OCMW: &str = "dpo-ocmw-gent";
const SUPERVISOR: &str = "coc";
const IFG: &str = "casusoverleg-ifg";
const IFG_INSTRUMENT: &str = "pk-ovl-fjc-2023-01";

const JUSTIFICATION: &str = "Vermiste jongere van 19 met suïcidale uitlatingen, sinds gisteren \
     zonder medicatie weg; zijn gsm staat uit en zijn familie weet niet waar hij is.";

fn case_request(
    agreement: &str,
    instrument: &str,
    purpose: &str,
    participants: &[&str],
    seq: u32,
) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        case_id: String::new(),
        purpose: purpose.into(),
        participants: participants.iter().map(|p| (*p).to_owned()).collect(),
        subjects: vec![pb::Subject {
            number: subject_number(seq),
        }],
        agreement: agreement.into(),
        instrument: instrument.into(),
    }
}

fn entry_of(receipt: Option<&pb::Receipt>) -> pb::AuditEntry {
    pb::AuditEntry::decode(receipt.expect("receipt").entry.as_slice()).expect("entry decodes")
}

fn weighing() -> pb::Weighing {
    pb::Weighing {
        danger: "Suïcidale uitlatingen en een nacht buiten bij vriesweer: levensgevaar.".into(),
        no_other_way: "De politie zocht al via zijn gsm en bij familie; enkel wij kennen zijn \
                       vaste plekken."
            .into(),
        proportionality: "Enkel zijn telefoonnummer en onze begeleider, niets uit zijn dossier."
            .into(),
    }
}

async fn lookup_holders(gw: &TestGateway, party: &str, seq: u32, purpose: &str) -> Vec<String> {
    gw.exchange(party)
        .await
        .lookup(req(pb::LookupRequest {
            subject: subject(seq),
            purpose: purpose.into(),
            justification: String::new(),
        }))
        .await
        .expect("lookup")
        .into_inner()
        .hits
        .into_iter()
        .map(|h| h.holder)
        .collect()
}

#[tokio::test]
async fn open_case_is_bound_to_an_instrument_and_opener_the_agreement_names() {
    let gw = TestGateway::start().await;
    let mut fjc = gw.grounds(FJC).await;
    let size = gw.gateway.log().size();

    // Without an instrument: bad input, nothing logged.
    let status = fjc
        .open_case(req(case_request(
            IFG,
            "",
            "intrafamily-violence",
            &[POLICE, CAW],
            1,
        )))
        .await
        .expect_err("no instrument");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("instrument"), "{status:?}");
    assert_eq!(gw.gateway.log().size(), size);

    // An instrument the agreement does not name, an opener it does not name, a purpose outside
    // its consultations: each refused, and the refusal logged.
    let refusals = [
        (
            FJC,
            IFG,
            "pk-ovl-eigen-initiatief",
            "intrafamily-violence",
            "INSTRUMENT_NOT_IN_AGREEMENT",
        ),
        (
            LIVC,
            IFG,
            IFG_INSTRUMENT,
            "intrafamily-violence",
            "OPENER_NOT_ALLOWED",
        ),
        (
            FJC,
            IFG,
            IFG_INSTRUMENT,
            "prevention-terrorism",
            "PURPOSE_NOT_IN_AGREEMENT",
        ),
    ];
    for (opener, agreement, instrument, purpose, why) in refusals {
        let before = gw.gateway.log().size();
        let status = gw
            .grounds(opener)
            .await
            .open_case(req(case_request(
                agreement,
                instrument,
                purpose,
                &[POLICE, CAW],
                1,
            )))
            .await
            .expect_err(why);
        assert_eq!(status.code(), Code::PermissionDenied, "{why}");
        assert_eq!(reason(&status), why);
        assert_eq!(gw.gateway.log().size(), before + 1, "{why} is logged");
    }

    // Rightly opened: it ends after the agreement's max_days.
    let opened = fjc
        .open_case(req(case_request(
            IFG,
            IFG_INSTRUMENT,
            "intrafamily-violence",
            &[POLICE, CAW],
            1,
        )))
        .await
        .expect("opened")
        .into_inner();
    assert_eq!(
        opened.end_time.expect("end time").seconds,
        NOW.unix_timestamp() + 365 * 86_400
    );
    // Only its opener renews it (for max_days from now); a closed case is not renewed.
    let renew = || pb::RenewCaseRequest {
        case_id: opened.case_id.clone(),
    };
    let status = gw
        .grounds(LIVC)
        .await
        .renew_case(req(renew()))
        .await
        .expect_err("not its case");
    assert_eq!(status.code(), Code::NotFound);
    let renewed = fjc
        .renew_case(req(renew()))
        .await
        .expect("renewed")
        .into_inner();
    assert_eq!(
        renewed.end_time.expect("end time").seconds,
        NOW.unix_timestamp() + 365 * 86_400
    );
    assert_eq!(entry_of(renewed.receipt.as_ref()).operation, "RenewCase");
    fjc.close_case(req(pb::CloseCaseRequest {
        case_id: opened.case_id.clone(),
    }))
    .await
    .expect("closed");
    let status = fjc
        .renew_case(req(renew()))
        .await
        .expect_err("closed cases are not renewed");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "CASE_CLOSED");

    // A terrorism-prevention case (LIVC-R) never unlocks an intrafamily-violence exchange.
    gw.grounds(LIVC)
        .await
        .open_case(req(case_request(
            "livc-r",
            "wet-livc-r-2018",
            "prevention-terrorism",
            &[POLICE, OCMW, LIVC],
            2,
        )))
        .await
        .expect("LIVC-R case");
    let status = gw
        .exchange(POLICE)
        .await
        .request_context(req(pb::RequestContextRequest {
            subject: subject(2),
            holder: OCMW.into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("safety.risk_level")],
            justification: String::new(),
        }))
        .await
        .expect_err("another consultation's case opens nothing here");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "CASE_REQUIRED");
    gw.stop().await;
}

#[tokio::test]
async fn necessity_needs_the_holders_weighing_and_its_texts_reach_only_the_holders_dpo_and_the_supervisor()
 {
    let gw = TestGateway::start().await;
    let mut police = gw.exchange(POLICE).await;
    let asked = police
        .request_context(req(pb::RequestContextRequest {
            subject: subject(3),
            holder: CAW.into(),
            purpose: "missing-vulnerable-person".into(),
            fields: vec![ask("subject.phone"), ask("care.counsellor_contact")],
            justification: JUSTIFICATION.into(),
        }))
        .await
        .expect("asked")
        .into_inner();
    let ticket = asked.ticket_id.clone();
    let asked_entry = entry_of(asked.receipt.as_ref());
    assert_eq!(asked_entry.justification_commitment.len(), 32);
    assert!(
        asked_entry
            .obligations
            .as_ref()
            .expect("obligations")
            .weighing
    );
    // The justification is committed to, never written in clear.
    assert!(
        !String::from_utf8_lossy(&asked.receipt.as_ref().expect("r").entry).contains("suïcidale")
    );

    let mut caw = gw.exchange(CAW).await;
    let pending = |list: &pb::ListIncomingResponse| {
        list.requests
            .iter()
            .find(|r| r.ticket_id == ticket)
            .cloned()
    };
    let incoming = caw
        .list_incoming(req(pb::ListIncomingRequest::default()))
        .await
        .expect("incoming")
        .into_inner();
    assert!(pending(&incoming).expect("listed").weighing_required);

    let answer = |w: Option<pb::Weighing>| pb::RespondRequest {
        ticket_id: ticket.clone(),
        fields: vec![
            text("subject.phone", "0486 55 21 09"),
            text("care.counsellor_contact", "CAW crisispermanentie"),
        ],
        weighing: w,
    };
    // Without a weighing, or with one without substance: refused, nothing changes.
    let size = gw.gateway.log().size();
    for (w, field) in [
        (None, "weighing"),
        (
            Some(pb::Weighing {
                danger: "x".repeat(40),
                ..weighing()
            }),
            "weighing.danger",
        ),
    ] {
        let status = caw.respond(req(answer(w))).await.expect_err("no weighing");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{status:?}");
    }
    assert_eq!(gw.gateway.log().size(), size);
    let still = caw
        .list_incoming(req(pb::ListIncomingRequest::default()))
        .await
        .expect("incoming")
        .into_inner();
    assert!(pending(&still).is_some(), "the ticket is still pending");

    let answered = caw
        .respond(req(answer(Some(weighing()))))
        .await
        .expect("answered")
        .into_inner();
    let answer_entry = entry_of(answered.receipt.as_ref());
    assert_eq!(answer_entry.weighing_commitment.len(), 32);

    // The holder's DPO and the supervisor get the texts, which open the signed commitments.
    for reviewer in [DPO_CAW, SUPERVISOR] {
        let queue = gw
            .audit(reviewer)
            .await
            .list_reviews(req(pb::ListReviewsRequest::default()))
            .await
            .expect("queue")
            .into_inner();
        let item = queue
            .items
            .iter()
            .find(|i| i.exchange_id == ticket)
            .unwrap_or_else(|| panic!("{reviewer} has the exchange in its queue"));
        assert!(
            item.reasons.iter().any(|r| r == "necessity"),
            "{:?}",
            item.reasons
        );
        assert_eq!(item.justification, JUSTIFICATION);
        let w = item.weighing.as_ref().expect("weighing");
        assert_eq!(w, &weighing());
        assert_eq!(
            text_commitment(&item.justification_salt, item.justification.as_bytes()).as_slice(),
            asked_entry.justification_commitment.as_slice()
        );
        assert_eq!(
            text_commitment(&item.weighing_salt, &weighing_text(w)).as_slice(),
            answer_entry.weighing_commitment.as_slice()
        );
        assert!(item.entries.len() >= 2, "the exchange's entries in scope");
    }
    // Nobody else: the requester's own DPO has no such item, and a police party cannot ask.
    let theirs = gw
        .audit(DPO_POLICE)
        .await
        .list_reviews(req(pb::ListReviewsRequest::default()))
        .await
        .expect("queue")
        .into_inner();
    assert!(theirs.items.iter().all(|i| i.exchange_id != ticket));
    let status = gw
        .audit(POLICE)
        .await
        .list_reviews(req(pb::ListReviewsRequest::default()))
        .await
        .expect_err("police review nothing");
    assert_eq!(status.code(), Code::PermissionDenied);

    // The CAW's DPO records a review: an audit entry, and its queue empties.
    let mut dpo = gw.audit(DPO_CAW).await;
    let reviewed = dpo
        .record_review(req(pb::RecordReviewRequest {
            exchange_id: ticket.clone(),
            outcome: pb::ReviewOutcome::Justified as i32,
            note: "Noodtoestand terecht; vrijgave beperkt.".into(),
        }))
        .await
        .expect("reviewed")
        .into_inner();
    let review = entry_of(reviewed.receipt.as_ref());
    assert_eq!(review.event, pb::AuditEvent::Review as i32);
    assert_eq!(review.exchange_id, ticket);
    assert_eq!(review.requester_party, DPO_CAW);
    assert_eq!(review.review_outcome, pb::ReviewOutcome::Justified as i32);
    assert_eq!(
        review.payload_commitment.len(),
        32,
        "the note is committed to"
    );
    let after = dpo
        .list_reviews(req(pb::ListReviewsRequest::default()))
        .await
        .expect("queue")
        .into_inner();
    assert!(after.items.iter().all(|i| i.exchange_id != ticket));
    let again = dpo
        .record_review(req(pb::RecordReviewRequest {
            exchange_id: ticket.clone(),
            outcome: pb::ReviewOutcome::Unjustified as i32,
            note: String::new(),
        }))
        .await
        .expect_err("reviewed once");
    assert_eq!(again.code(), Code::NotFound);
    // The supervisor's own queue is its own.
    let coc = gw
        .audit(SUPERVISOR)
        .await
        .list_reviews(req(pb::ListReviewsRequest::default()))
        .await
        .expect("queue")
        .into_inner();
    assert!(coc.items.iter().any(|i| i.exchange_id == ticket));
    // Another DPO cannot review what is not in its queue.
    let status = gw
        .audit(DPO_OCMW)
        .await
        .record_review(req(pb::RecordReviewRequest {
            exchange_id: ticket.clone(),
            outcome: pb::ReviewOutcome::Unjustified as i32,
            note: String::new(),
        }))
        .await
        .expect_err("not in its queue");
    assert_eq!(status.code(), Code::NotFound);

    // Search by review state: the reviewed exchange is found as reviewed, not as pending.
    let search = |state: pb::ReviewState| pb::SearchEntriesRequest {
        review_state: state as i32,
        ..Default::default()
    };
    let reviewed_entries = dpo
        .search_entries(req(search(pb::ReviewState::Reviewed)))
        .await
        .expect("search")
        .into_inner()
        .entries;
    assert!(!reviewed_entries.is_empty());
    for leaf in &reviewed_entries {
        let Some(pb::log_leaf::Content::Entry(bytes)) = &leaf.content else {
            panic!("entries in scope come whole");
        };
        assert_eq!(
            pb::AuditEntry::decode(bytes.as_slice())
                .expect("entry")
                .exchange_id,
            ticket
        );
    }
    let pending_entries = dpo
        .search_entries(req(search(pb::ReviewState::Pending)))
        .await
        .expect("search")
        .into_inner()
        .entries;
    assert!(
        pending_entries.is_empty(),
        "nothing else is pending for the CAW's DPO"
    );

    // The log with the review in it verifies.
    let (_keep, data) = gw.stop_keeping_data().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .expect("audit verify runs");
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_special_category_release_to_the_police_is_flagged_for_the_holders_dpo() {
    let gw = TestGateway::start().await;
    gw.grounds(FJC)
        .await
        .open_case(req(case_request(
            IFG,
            IFG_INSTRUMENT,
            "intrafamily-violence",
            &[POLICE, CGG],
            4,
        )))
        .await
        .expect("case");
    let asked = gw
        .exchange(POLICE)
        .await
        .request_context(req(pb::RequestContextRequest {
            subject: subject(4),
            holder: CGG.into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("care.risk_assessment")],
            justification: String::new(),
        }))
        .await
        .expect("asked")
        .into_inner();
    let o = asked
        .decision
        .and_then(|d| d.obligations)
        .expect("obligations");
    assert!(o.special_category && o.review, "{o:?}");
    let queue = gw
        .audit(DPO_CGG)
        .await
        .list_reviews(req(pb::ListReviewsRequest::default()))
        .await
        .expect("queue")
        .into_inner();
    let item = queue
        .items
        .iter()
        .find(|i| i.exchange_id == asked.ticket_id)
        .expect("in the CGG DPO's queue");
    assert!(item.reasons.iter().any(|r| r == "special-category"));
    assert!(item.justification.is_empty(), "no necessity texts here");
    gw.stop().await;
}

#[tokio::test]
async fn a_release_through_a_case_carries_the_use_restriction() {
    let gw = TestGateway::start().await;
    gw.grounds(FJC)
        .await
        .open_case(req(case_request(
            IFG,
            IFG_INSTRUMENT,
            "intrafamily-violence",
            &[POLICE, CAW],
            5,
        )))
        .await
        .expect("case");
    let mut police = gw.exchange(POLICE).await;
    let asked = police
        .request_context(req(pb::RequestContextRequest {
            subject: subject(5),
            holder: CAW.into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("safety.risk_level")],
            justification: String::new(),
        }))
        .await
        .expect("asked")
        .into_inner();
    assert_eq!(entry_of(asked.receipt.as_ref()).use_restriction, IFG);
    let answered = gw
        .exchange(CAW)
        .await
        .respond(req(pb::RespondRequest {
            ticket_id: asked.ticket_id.clone(),
            fields: vec![value_entry(
                "safety.risk_level",
                pb::field_value::Kind::EnumValue("high".into()),
            )],
            weighing: None,
        }))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(entry_of(answered.receipt.as_ref()).use_restriction, IFG);
    let result = police
        .get_result(req(pb::GetResultRequest {
            ticket_id: asked.ticket_id,
            wait: None,
        }))
        .await
        .expect("result")
        .into_inner();
    assert_eq!(result.released.len(), 1);
    assert!(
        result.use_restriction.contains("458ter §2"),
        "{}",
        result.use_restriction
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_reference_is_found_only_where_its_ground_reaches() {
    let gw = TestGateway::start().await;
    let mut caw = gw.exchange(CAW).await;

    // No ground, a ground that does not exist, another subject's consent: nothing registered.
    let register = |seq: u32, ground: Option<pb::ReferenceGround>| pb::RegisterReferenceRequest {
        subject: subject(seq),
        holder_reference: String::new(),
        ground,
    };
    let status = caw
        .register_reference(req(register(6, None)))
        .await
        .expect_err("no ground");
    assert_eq!(status.code(), Code::InvalidArgument);
    let other = gw.findable(CAW, 7).await;
    for ground in ["consent-0000000000000000", other.as_str()] {
        let status = caw
            .register_reference(req(register(6, Some(consent_ground(ground)))))
            .await
            .expect_err("not a ground for this subject");
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason(&status), "REFERENCE_GROUND_INVALID");
    }

    // Findable by pz-aalst only: pz-gent does not find it.
    let consent = gw
        .grounds(CAW)
        .await
        .record_consent(req(consent_request(
            6,
            "protection-integrity",
            &[POLICE_AALST],
        )))
        .await
        .expect("consent")
        .into_inner()
        .consent_id;
    caw.register_reference(req(register(6, Some(consent_ground(&consent)))))
        .await
        .expect("registered");
    assert_eq!(
        lookup_holders(&gw, POLICE_AALST, 6, "intrafamily-violence").await,
        [CAW]
    );
    assert!(
        lookup_holders(&gw, POLICE, 6, "intrafamily-violence")
            .await
            .is_empty()
    );

    // On a case: found by its participants, for its purpose and below, while it is open.
    let case = gw
        .grounds(FJC)
        .await
        .open_case(req(case_request(
            IFG,
            IFG_INSTRUMENT,
            "intrafamily-violence",
            &[POLICE, OCMW, FJC],
            8,
        )))
        .await
        .expect("case")
        .into_inner()
        .case_id;
    gw.exchange(OCMW)
        .await
        .register_reference(req(pb::RegisterReferenceRequest {
            subject: subject(8),
            holder_reference: String::new(),
            ground: Some(pb::ReferenceGround {
                ground: Some(pb::reference_ground::Ground::CaseId(case.clone())),
            }),
        }))
        .await
        .expect("registered on the case");
    assert_eq!(
        lookup_holders(&gw, POLICE, 8, "intrafamily-violence").await,
        [OCMW]
    );
    assert!(
        lookup_holders(&gw, POLICE, 8, "missing-vulnerable-person")
            .await
            .is_empty(),
        "the case's purpose does not cover another purpose"
    );
    assert!(
        lookup_holders(&gw, POLICE, 8, "referral-assistance")
            .await
            .is_empty(),
        "a referral lookup needs the subject's consent"
    );
    assert!(
        lookup_holders(&gw, POLICE_AALST, 8, "intrafamily-violence")
            .await
            .is_empty(),
        "not a participant"
    );

    // A referral lookup finds a reference registered on a consent for that purpose.
    let referral = gw
        .grounds(CAW)
        .await
        .record_consent(req(consent_request(9, "referral-assistance", &[POLICE])))
        .await
        .expect("consent")
        .into_inner()
        .consent_id;
    caw.register_reference(req(register(9, Some(consent_ground(&referral)))))
        .await
        .expect("registered");
    assert_eq!(
        lookup_holders(&gw, POLICE, 9, "referral-assistance").await,
        [CAW]
    );
    gw.stop().await;
}

#[tokio::test]
async fn consent_records_who_gave_it_and_a_recipient_or_the_subject_can_revoke_it() {
    let gw = TestGateway::start().await;
    let mut grounds = gw.grounds(POLICE).await;

    let unlawful = [
        (
            pb::ConsentGiver::Subject,
            pb::MinorCapacity::NotCapable,
            "given_by",
        ),
        (
            pb::ConsentGiver::Parent,
            pb::MinorCapacity::Adult,
            "given_by",
        ),
        (
            pb::ConsentGiver::Parent,
            pb::MinorCapacity::PresumedCapable,
            "given_by",
        ),
        (
            pb::ConsentGiver::Unspecified,
            pb::MinorCapacity::Adult,
            "given_by",
        ),
        (
            pb::ConsentGiver::Subject,
            pb::MinorCapacity::Unspecified,
            "minor",
        ),
    ];
    let size = gw.gateway.log().size();
    for (giver, minor, field) in unlawful {
        let mut request = consent_request(10, "referral-assistance", &[OCMW]);
        request.given_by = giver as i32;
        request.minor = minor as i32;
        let status = grounds
            .record_consent(req(request))
            .await
            .expect_err("not lawfully given");
        assert_eq!(status.code(), Code::InvalidArgument, "{giver:?} {minor:?}");
        assert!(status.message().contains(field), "{status:?}");
    }
    let mut request = consent_request(10, "referral-assistance", &[OCMW]);
    request.parents_also_consented = true;
    let status = grounds
        .record_consent(req(request))
        .await
        .expect_err("parents beside an adult's consent");
    assert!(
        status.message().contains("parents_also_consented"),
        "{status:?}"
    );
    let mut request = consent_request(10, "referral-assistance", &[OCMW]);
    request.information_version = "  ".into();
    let status = grounds
        .record_consent(req(request))
        .await
        .expect_err("informed of what?");
    assert!(status.message().contains("information_version"));
    assert_eq!(gw.gateway.log().size(), size, "bad input changes nothing");

    // A minor who cannot consent alone, with a parent's consent: the referral goes.
    let mut request = consent_request(10, "referral-assistance", &[OCMW]);
    request.given_by = pb::ConsentGiver::Parent as i32;
    request.minor = pb::MinorCapacity::NotCapable as i32;
    let consent = grounds
        .record_consent(req(request))
        .await
        .expect("parent's consent")
        .into_inner()
        .consent_id;
    let share = || pb::ShareRequest {
        subject: subject(10),
        recipient: OCMW.into(),
        purpose: "referral-assistance".into(),
        fields: vec![text("subject.name", "Jan Janssens")],
        justification: String::new(),
        forms: vec![],
    };
    let mut police = gw.exchange(POLICE).await;
    police.share(req(share())).await.expect("referred");

    // The recipient revokes it; the next referral is refused.
    let revoked = gw
        .grounds(OCMW)
        .await
        .revoke_consent(req(pb::RevokeConsentRequest {
            consent_id: consent.clone(),
            subject: None,
        }))
        .await
        .expect("a recipient revokes")
        .into_inner();
    let entry = entry_of(revoked.receipt.as_ref());
    assert_eq!(entry.requester_party, OCMW);
    assert_eq!(
        entry.counterpart_party, POLICE,
        "the recorder sees it in its scope"
    );
    let status = police
        .share(req(share()))
        .await
        .expect_err("consent revoked");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "CONSENT_REQUIRED");

    // Any party on the subject's behalf (naming the subject); without it, or for another
    // subject, the consent is not found.
    let second = grounds
        .record_consent(req(consent_request(11, "referral-assistance", &[OCMW])))
        .await
        .expect("consent")
        .into_inner()
        .consent_id;
    let mut caw = gw.grounds(CAW).await;
    for wrong in [None, subject(12)] {
        let status = caw
            .revoke_consent(req(pb::RevokeConsentRequest {
                consent_id: second.clone(),
                subject: wrong,
            }))
            .await
            .expect_err("not its consent");
        assert_eq!(status.code(), Code::NotFound);
    }
    caw.revoke_consent(req(pb::RevokeConsentRequest {
        consent_id: second,
        subject: subject(11),
    }))
    .await
    .expect("revoked on the subject's behalf");
    gw.stop().await;
}

#[tokio::test]
async fn a_dry_run_of_a_458bis_signal_names_the_missing_legal_element() {
    let gw = TestGateway::start().await;
    let mut policies = gw.policies("ocj-oost-vlaanderen").await;
    let all = vec![
        value_entry(
            "signal.offence_category",
            pb::field_value::Kind::EnumValue("sexual-integrity".into()),
        ),
        value_entry(
            "signal.vulnerability_ground",
            pb::field_value::Kind::EnumValue("minor".into()),
        ),
        value_entry(
            "signal.danger_branch",
            pb::field_value::Kind::EnumValue("imminent-danger-victim".into()),
        ),
        value_entry(
            "signal.holder_cannot_protect",
            pb::field_value::Kind::Flag(true),
        ),
    ];
    let explain = |elements: Vec<pb::FieldEntry>| pb::ExplainRequest {
        kind: "share".into(),
        counterpart: "parket-oost-vlaanderen".into(),
        purpose: "child-abuse".into(),
        fields: vec![ask("signal.offence_category")],
        justification: "Het kind (6) vertelt over misbruik door een huisgenoot; de moeder kan het \
                        niet beschermen en weigert elke hulp, opvang is vandaag niet mogelijk."
            .into(),
        elements,
        ..Default::default()
    };
    let decision = |r: pb::ExplainResponse| r.decision.expect("decision").reason_code;
    let allowed = policies
        .explain(req(explain(all.clone())))
        .await
        .expect("explain")
        .into_inner();
    assert_eq!(decision(allowed), "PERMITTED");
    let mut without_statement = all.clone();
    without_statement.pop();
    let refused = policies
        .explain(req(explain(without_statement)))
        .await
        .expect("explain")
        .into_inner();
    assert!(
        refused
            .trace
            .contains("the legal element `signal.holder_cannot_protect` is missing"),
        "{}",
        refused.trace
    );
    assert_eq!(decision(refused), "ELEMENT_MISSING");

    // The real signal without that statement is refused, naming the element (a field id only).
    let mut fields = all;
    fields.pop();
    fields.push(text(
        "signal.justification",
        "Het kind vertelt over misbruik.",
    ));
    let status = gw
        .exchange("ocj-oost-vlaanderen")
        .await
        .share(req(pb::ShareRequest {
            subject: subject(13),
            recipient: "parket-oost-vlaanderen".into(),
            purpose: "child-abuse".into(),
            fields,
            justification: explain(Vec::new()).justification,
            forms: vec![],
        }))
        .await
        .expect_err("an element is missing");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ELEMENT_MISSING");
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("error info");
    assert_eq!(
        info.metadata.get("missing_element").map(String::as_str),
        Some("signal.holder_cannot_protect")
    );
    gw.stop().await;
}
