//! Black-box tests of the audit service: scope per auditor (entries in scope, leaf hashes for the
//! rest), the supervisor's full view, logged reads, proofs that verify, and the subject report.

mod common;

use common::*;
use ketenpoort::audit::{Checkpoint, Verifier, hash};
use ketenpoort::proto::v1 as pb;
use prost::Message;

/// Some traffic: a consent to be findable and a reference on it by CAW, a lookup by the police (two entries: the lookup and the
/// holders it consulted), a case opened by the FJC.
async fn traffic(gw: &TestGateway) {
    let mut caw = gw.exchange("caw-oost-vlaanderen").await;
    caw.register_reference(req(pb::RegisterReferenceRequest {
        subject: subject(11),
        holder_reference: String::new(),
        ground: Some(consent_ground(
            &gw.findable("caw-oost-vlaanderen", 11).await,
        )),
    }))
    .await
    .expect("register");
    let mut police = gw.exchange("pz-gent").await;
    police
        .lookup(req(pb::LookupRequest {
            subject: subject(11),
            purpose: "protection-integrity".into(),
            justification: String::new(),
        }))
        .await
        .expect("lookup");
    let mut fjc = gw.grounds("fjc-oost-vlaanderen").await;
    fjc.open_case(req(pb::OpenCaseRequest {
        case_id: "ifg-2026-001".into(),
        purpose: "intrafamily-violence".into(),
        participants: vec!["pz-gent".into(), "caw-oost-vlaanderen".into()],
        subjects: vec![pb::Subject {
            number: subject_number(11),
        }],
        agreement: "casusoverleg-ifg".into(),
        instrument: "pk-ovl-fjc-2023-01".into(),
    }))
    .await
    .expect("case");
}

async fn all_leaves(gw: &TestGateway, party: &str, count: u32) -> Vec<pb::LogLeaf> {
    let mut audit = gw.audit(party).await;
    audit
        .get_entries(req(pb::GetEntriesRequest { start: 0, count }))
        .await
        .expect("entries")
        .into_inner()
        .leaves
}

#[tokio::test]
async fn auditor_sees_own_organisation_and_hashes_for_the_rest() {
    let gw = TestGateway::start().await;
    traffic(&gw).await;
    let size = u32::try_from(gw.gateway.log().size()).expect("small log");
    assert_eq!(size, 5);

    let supervisor = all_leaves(&gw, "coc", size).await;
    let dpo = all_leaves(&gw, "dpo-pz-gent", size).await;
    assert_eq!(supervisor.len(), 5);
    assert_eq!(dpo.len(), 5);
    let mut shown = 0;
    for (full, scoped) in supervisor.iter().zip(&dpo) {
        let Some(pb::log_leaf::Content::Entry(bytes)) = &full.content else {
            panic!("the supervisor sees every entry");
        };
        let entry = pb::AuditEntry::decode(bytes.as_slice()).expect("decodes");
        let names_police =
            entry.requester_party == "pz-gent" || entry.counterpart_party == "pz-gent";
        match &scoped.content {
            Some(pb::log_leaf::Content::Entry(b)) => {
                assert!(
                    names_police,
                    "{} is out of the DPO's scope",
                    entry.operation
                );
                assert_eq!(b, bytes);
                shown += 1;
            }
            Some(pb::log_leaf::Content::LeafHash(h)) => {
                assert!(!names_police, "{} should be visible", entry.operation);
                assert_eq!(h.as_slice(), hash::leaf_hash(bytes).as_slice());
            }
            None => panic!("empty leaf"),
        }
    }
    assert_eq!(
        shown, 1,
        "only the police lookup names pz-gent (the consulted-holders entry does not)"
    );

    // Both reads were logged as audit accesses.
    assert_eq!(gw.gateway.log().size(), u64::from(size) + 2);
    let last = pb::AuditEntry::decode(
        gw.gateway
            .log()
            .entry(u64::from(size) + 1)
            .expect("entry")
            .as_slice(),
    )
    .expect("decodes");
    assert_eq!(last.event, pb::AuditEvent::AuditAccess as i32);
    assert_eq!(last.requester_party, "dpo-pz-gent");
    gw.stop().await;
}

#[tokio::test]
async fn checkpoint_and_proofs_verify() {
    let gw = TestGateway::start().await;
    traffic(&gw).await;
    let mut audit = gw.audit("coc").await;
    let cp = audit
        .get_checkpoint(req(pb::GetCheckpointRequest {}))
        .await
        .expect("checkpoint")
        .into_inner();
    let verifier = Verifier::parse(&cp.verifier_keys[0]).expect("vkey");
    let checkpoint = Checkpoint::open(&cp.checkpoint, &[verifier]).expect("signed by the log");
    assert_eq!(checkpoint.size, cp.tree_size);
    assert_eq!(cp.tree_size, 5);

    let proof = audit
        .get_inclusion_proof(req(pb::GetInclusionProofRequest {
            index: 1,
            tree_size: 0,
        }))
        .await
        .expect("inclusion")
        .into_inner();
    let hashes: Vec<hash::Hash> = proof
        .hashes
        .iter()
        .map(|h| h.as_slice().try_into().expect("32 bytes"))
        .collect();
    let leaf: hash::Hash = proof.leaf_hash.as_slice().try_into().expect("32 bytes");
    assert!(hash::check_record(&hashes, 5, &checkpoint.root, 1, &leaf));

    let consistency = audit
        .get_consistency_proof(req(pb::GetConsistencyProofRequest {
            old_size: 1,
            new_size: 5,
        }))
        .await
        .expect("consistency")
        .into_inner();
    assert!(!consistency.hashes.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn subject_report_and_search_are_scoped() {
    let gw = TestGateway::start().await;
    traffic(&gw).await;
    let mut coc = gw.audit("coc").await;
    let report = coc
        .subject_report(req(pb::SubjectReportRequest {
            subject: subject(11),
            access_request: "AR-11".into(),
        }))
        .await
        .expect("report")
        .into_inner();
    let operations: Vec<&str> = report
        .lines
        .iter()
        .filter_map(|l| l.entry.as_ref())
        .map(|e| e.operation.as_str())
        .collect();
    assert!(operations.contains(&"RegisterReference"));
    assert!(operations.contains(&"Lookup"));

    let mut dpo = gw.audit("dpo-pz-gent").await;
    let scoped = dpo
        .subject_report(req(pb::SubjectReportRequest {
            subject: subject(11),
            access_request: "AR-11".into(),
        }))
        .await
        .expect("report")
        .into_inner();
    assert!(
        scoped.lines.iter().all(|l| l
            .entry
            .as_ref()
            .is_some_and(|e| e.operation != "RegisterReference")),
        "the CAW registration is outside the DPO's scope"
    );
    assert!(scoped.lines.iter().all(|l| {
        l.entry
            .as_ref()
            .is_some_and(|e| e.requester_party == "pz-gent" || e.counterpart_party == "pz-gent")
    }));

    let found = coc
        .search_entries(req(pb::SearchEntriesRequest {
            party: "caw-oost-vlaanderen".into(),
            ..Default::default()
        }))
        .await
        .expect("search")
        .into_inner();
    assert!(!found.entries.is_empty());
    for leaf in &found.entries {
        let Some(pb::log_leaf::Content::Entry(bytes)) = &leaf.content else {
            panic!("search returns entries in scope only");
        };
        let entry = pb::AuditEntry::decode(bytes.as_slice()).expect("decodes");
        assert!(
            entry.requester_party == "caw-oost-vlaanderen"
                || entry.counterpart_party == "caw-oost-vlaanderen"
                || leaf
                    .consulted
                    .iter()
                    .any(|d| d.party == "caw-oost-vlaanderen"
                        && ketenpoort::audit::consulted::discloses(&entry, &d.party, &d.salt))
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn explain_gives_the_trace_without_releasing() {
    let gw = TestGateway::start().await;
    let mut policies = gw.policies("pz-gent").await;
    let size = gw.gateway.log().size();
    let explained = policies
        .explain(req(pb::ExplainRequest {
            kind: "request".into(),
            counterpart: "caw-oost-vlaanderen".into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("subject.birth_date")],
            ..Default::default()
        }))
        .await
        .expect("explain")
        .into_inner();
    let decision = explained.decision.expect("decision");
    assert_eq!(decision.reason_code, "CASE_REQUIRED");
    assert!(!explained.trace.is_empty());
    assert_eq!(
        gw.gateway.log().size(),
        size,
        "a dry run without subject is not logged"
    );
    gw.stop().await;
}
