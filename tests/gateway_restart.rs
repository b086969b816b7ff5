//! A graceful restart on the same data directory keeps all state: references, pending tickets,
//! inbox signals, and the audit log, whose new checkpoint extends the old one and still proves
//! every receipt given before the restart.

mod common;

use common::*;
use ketenpoort::audit::{Checkpoint, Verifier, hash};
use ketenpoort::proto::v1 as pb;
use tonic::Code;

const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";
const OCMW: &str = "ocmw-gent";
const FJC: &str = "fjc-oost-vlaanderen";
const SUPERVISOR: &str = "coc";

/// The verified checkpoint the log publishes now, with its raw text.
async fn checkpoint(gw: &TestGateway) -> (Checkpoint, String) {
    let cp = gw
        .audit(SUPERVISOR)
        .await
        .get_checkpoint(req(pb::GetCheckpointRequest {}))
        .await
        .expect("checkpoint")
        .into_inner();
    let verifier = Verifier::parse(&cp.verifier_keys[0]).expect("verifier key");
    let opened = Checkpoint::open(&cp.checkpoint, &[verifier]).expect("signed by the log");
    assert_eq!(opened.size, cp.tree_size);
    (opened, cp.checkpoint)
}

fn hashes(raw: &[Vec<u8>]) -> Vec<hash::Hash> {
    raw.iter()
        .map(|h| h.as_slice().try_into().expect("32-byte hash"))
        .collect()
}

/// Everything done before the restart.
struct Before {
    ticket_id: String,
    signal_id: String,
    receipts: Vec<pb::Receipt>,
}

async fn populate(gw: &TestGateway) -> Before {
    let mut receipts = Vec::new();
    let mut caw = gw.exchange(CAW).await;
    let registered = caw
        .register_reference(req(pb::RegisterReferenceRequest {
            subject: subject(21),
            holder_reference: "dossier-restart".into(),
            ground: Some(consent_ground(&gw.findable(CAW, 21).await)),
        }))
        .await
        .expect("register")
        .into_inner();
    receipts.extend(registered.receipt);
    let opened = gw
        .grounds(FJC)
        .await
        .open_case(req(pb::OpenCaseRequest {
            case_id: String::new(),
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into(), CAW.into(), FJC.into()],
            subjects: vec![pb::Subject {
                number: subject_number(21),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect("case opens")
        .into_inner();
    receipts.extend(opened.receipt);
    let consent = gw
        .grounds(POLICE)
        .await
        .record_consent(req(pb::RecordConsentRequest {
            subject: subject(22),
            purpose: "referral-assistance".into(),
            recipients: vec![OCMW.into()],
            evidence: "signed form 2026/0300".into(),
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
    receipts.extend(consent.receipt);
    let mut police = gw.exchange(POLICE).await;
    let asked = police
        .request_context(req(pb::RequestContextRequest {
            subject: subject(21),
            holder: CAW.into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("subject.birth_date"), ask("subject.address")],
            justification: String::new(),
        }))
        .await
        .expect("request inside the case")
        .into_inner();
    receipts.extend(asked.receipt);
    let shared = police
        .share(req(pb::ShareRequest {
            subject: subject(22),
            recipient: OCMW.into(),
            purpose: "referral-assistance".into(),
            fields: vec![text("subject.name", "Jan Janssens")],
            justification: String::new(),
            forms: vec![],
        }))
        .await
        .expect("share with consent")
        .into_inner();
    receipts.extend(shared.receipt);
    assert_eq!(receipts.len(), 5, "every step gave a receipt");
    Before {
        ticket_id: asked.ticket_id,
        signal_id: shared.signal_id,
        receipts,
    }
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_all_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("var");
    let data_for_first = data.clone();
    let first = TestGateway::start_with(move |c| c.data_dir = data_for_first).await;
    let before = populate(&first).await;
    let (old_checkpoint, _) = checkpoint(&first).await;
    let old_size = first.gateway.log().size();
    assert_eq!(old_checkpoint.size, old_size);
    let old_key = first.gateway.log().verifier_keys()[0].clone();
    first.stop().await;

    // The audit log reopens once sled has let go of its lock (the audit store retries).
    let data_for_second = data.clone();
    let second = TestGateway::start_with(move |c| c.data_dir = data_for_second).await;
    assert_eq!(second.data, data);
    assert_eq!(
        second.gateway.log().verifier_keys()[0],
        old_key,
        "same signing key"
    );
    assert!(
        second.gateway.log().size() >= old_size,
        "the log kept its entries"
    );

    // The reference directory still knows the holder.
    let found = second
        .exchange(POLICE)
        .await
        .lookup(req(pb::LookupRequest {
            subject: subject(21),
            purpose: "protection-integrity".into(),
            justification: String::new(),
        }))
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].holder, CAW);

    // The ticket is still pending for its holder, and can be answered.
    let mut caw = second.exchange(CAW).await;
    let incoming = caw
        .list_incoming(req(pb::ListIncomingRequest::default()))
        .await
        .expect("incoming")
        .into_inner();
    assert!(
        incoming
            .requests
            .iter()
            .any(|r| r.ticket_id == before.ticket_id && r.requester == POLICE)
    );
    let answered = caw
        .respond(req(pb::RespondRequest {
            weighing: None,
            ticket_id: before.ticket_id.clone(),
            fields: vec![value_entry(
                "subject.birth_date",
                pb::field_value::Kind::Date(pb::Date {
                    year: 1985,
                    month: 7,
                    day: 30,
                }),
            )],
        }))
        .await
        .expect("respond after restart")
        .into_inner();
    verify_receipt(&second, answered.receipt.as_ref().expect("receipt"));
    let again = caw
        .respond(req(pb::RespondRequest {
            weighing: None,
            ticket_id: before.ticket_id.clone(),
            fields: vec![text("subject.name", "x")],
        }))
        .await
        .expect_err("answered once");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // The signal is still in the recipient's inbox.
    let inbox = second
        .exchange(OCMW)
        .await
        .list_inbox(req(pb::ListInboxRequest::default()))
        .await
        .expect("inbox")
        .into_inner();
    assert!(
        inbox
            .signals
            .iter()
            .any(|s| s.signal_id == before.signal_id)
    );

    // The log continues: the new checkpoint is larger and consistent with the old one.
    let (new_checkpoint, _) = checkpoint(&second).await;
    assert!(new_checkpoint.size > old_checkpoint.size);
    let mut audit = second.audit(SUPERVISOR).await;
    let consistency = audit
        .get_consistency_proof(req(pb::GetConsistencyProofRequest {
            old_size: old_checkpoint.size,
            new_size: new_checkpoint.size,
        }))
        .await
        .expect("consistency proof")
        .into_inner();
    assert_eq!(consistency.new_size, new_checkpoint.size);
    assert!(hash::check_tree(
        &hashes(&consistency.hashes),
        new_checkpoint.size,
        &new_checkpoint.root,
        old_checkpoint.size,
        &old_checkpoint.root,
    ));

    // Every receipt from before still verifies offline, and is included in the new tree.
    for receipt in &before.receipts {
        verify_receipt(&second, receipt);
        let proof = audit
            .get_inclusion_proof(req(pb::GetInclusionProofRequest {
                index: receipt.index,
                tree_size: new_checkpoint.size,
            }))
            .await
            .expect("inclusion proof")
            .into_inner();
        assert!(
            hash::check_record(
                &hashes(&proof.hashes),
                new_checkpoint.size,
                &new_checkpoint.root,
                receipt.index,
                &hash::leaf_hash(&receipt.entry),
            ),
            "receipt {} is in the new tree",
            receipt.index
        );
    }
    second.stop().await;
}
