//! Black-box tests of what the audit log must show to whom: the holders a lookup consulted (to
//! their own auditors only), every subject of a case (in each subject's report), and the audit
//! index of a logged refusal (to the refused caller).

mod common;

use common::*;
use ketenpoort::proto::v1 as pb;
use prost::Message;
use tonic_types::StatusExt;

const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";
const CGG: &str = "cgg-eclips";

/// Every leaf of the log as `party` may see it: the entry, or `None` for a leaf hash.
async fn visible_entries(gw: &TestGateway, party: &str) -> Vec<Option<pb::AuditEntry>> {
    let count = u32::try_from(gw.gateway.log().size()).expect("small log");
    gw.audit(party)
        .await
        .get_entries(req(pb::GetEntriesRequest { start: 0, count }))
        .await
        .expect("entries")
        .into_inner()
        .leaves
        .into_iter()
        .map(|leaf| match leaf.content {
            Some(pb::log_leaf::Content::Entry(bytes)) => {
                Some(pb::AuditEntry::decode(bytes.as_slice()).expect("decodes"))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_holders_auditor_sees_the_lookups_that_hit_its_references() {
    // A data directory of the test's own, for the restart at the end.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("var");
    let first_data = data.clone();
    let gw = TestGateway::start_with(move |c| c.data_dir = first_data).await;
    gw.register(CAW, 41).await;
    gw.register(CGG, 41).await;
    let answer = gw
        .exchange(POLICE)
        .await
        .lookup(req(pb::LookupRequest {
            subject: subject(41),
            purpose: "intrafamily-violence".into(),
            justification: String::new(),
        }))
        .await
        .expect("lookup allowed")
        .into_inner();
    // The answer is as before: the CAW by name, the mental-health centre as an anonymous hit,
    // and the caller's receipt does not name the centre.
    assert_eq!(answer.hits.len(), 2);
    assert_eq!(answer.hits[0].holder, CAW);
    assert_eq!(answer.hits[1], pb::LookupHit::default());
    let receipt = answer.receipt.expect("receipt");
    assert!(
        !receipt
            .entry
            .windows(CGG.len())
            .any(|w| w == CGG.as_bytes())
    );
    verify_receipt(&gw, &receipt);

    // Each holder's DPO finds the lookup by searching for its own party, with who asked, and is
    // shown that its own party was consulted: nothing about the other holder.
    for (dpo, own) in [("dpo-cgg-eclips", CGG), ("dpo-caw-oost-vlaanderen", CAW)] {
        let consulted = consulted_lookups(&gw, dpo, own).await;
        assert_eq!(consulted.len(), 1, "{dpo} sees the lookup");
        let (entry, shown) = &consulted[0];
        assert_eq!(entry.exchange_id, answer.lookup_id);
        assert!(entry.requester_party.is_empty());
        assert_eq!(entry.detail, format!("requester={POLICE}"));
        assert_eq!(
            shown,
            &vec![own.to_owned()],
            "{dpo} is shown its own party only"
        );
        // Two holders, padded: the count says no more than "at most four".
        assert_eq!(entry.consulted_commitments.len(), 4);
        let other = if own == CGG { CAW } else { CGG };
        assert!(
            !serde_json_text(entry).contains(other),
            "{dpo}'s copy of the entry does not name {other}"
        );
    }

    // An unrelated DPO, and the requester's own DPO, get only its leaf hash.
    for outsider in ["dpo-ocj-oost-vlaanderen", "dpo-pz-gent"] {
        let seen = visible_entries(&gw, outsider).await;
        assert!(
            seen.iter()
                .flatten()
                .all(|e| e.operation != "LookupConsulted"),
            "{outsider} must not see which holders were consulted"
        );
    }
    // The supervisor sees both entries of the lookup, with both openings.
    let all = visible_entries(&gw, "coc").await;
    let of_lookup = all
        .iter()
        .flatten()
        .filter(|e| e.exchange_id == answer.lookup_id)
        .count();
    assert_eq!(of_lookup, 2);
    let supervised = consulted_lookups(&gw, "coc", CGG).await;
    assert_eq!(supervised.len(), 1);
    assert_eq!(supervised[0].1, vec![CAW.to_owned(), CGG.to_owned()]);

    // After a restart the search index, rebuilt from the entries, opens the commitments again.
    gw.stop().await;
    let gw = TestGateway::start_with(move |c| c.data_dir = data).await;
    let consulted = consulted_lookups(&gw, "dpo-cgg-eclips", CGG).await;
    assert_eq!(consulted.len(), 1, "found again after the restart");
    assert_eq!(consulted[0].1, vec![CGG.to_owned()]);
    gw.stop().await;
}

/// The JSON form of an entry, to look for a party id anywhere in it.
fn serde_json_text(entry: &pb::AuditEntry) -> String {
    ketenpoort::audit::entry::to_json(entry).to_string()
}

/// The `LookupConsulted` entries that a search for `party` shows `reader`, each with the
/// consulted parties it was shown, every opening checked against the entry's commitments and
/// the entry checked against the log's leaf hash.
async fn consulted_lookups(
    gw: &TestGateway,
    reader: &str,
    party: &str,
) -> Vec<(pb::AuditEntry, Vec<String>)> {
    let found = gw
        .audit(reader)
        .await
        .search_entries(req(pb::SearchEntriesRequest {
            party: party.into(),
            ..Default::default()
        }))
        .await
        .expect("search")
        .into_inner();
    let mut out = Vec::new();
    for leaf in found.entries {
        let Some(pb::log_leaf::Content::Entry(bytes)) = &leaf.content else {
            continue;
        };
        assert_eq!(
            ketenpoort::audit::hash::leaf_hash(bytes),
            gw.gateway.log().leaf_hash(leaf.index).expect("leaf"),
            "the entry shown is the one in the tree"
        );
        let entry = pb::AuditEntry::decode(bytes.as_slice()).expect("decodes");
        if entry.operation != "LookupConsulted" {
            continue;
        }
        let shown = leaf
            .consulted
            .iter()
            .map(|d| {
                assert!(
                    ketenpoort::audit::consulted::discloses(&entry, &d.party, &d.salt),
                    "the opening for {} matches a commitment",
                    d.party
                );
                d.party.clone()
            })
            .collect();
        out.push((entry, shown));
    }
    out
}

#[tokio::test]
async fn every_subject_of_a_case_sees_its_opening_in_the_subject_report() {
    let gw = TestGateway::start().await;
    let opened = gw
        .grounds("fjc-oost-vlaanderen")
        .await
        .open_case(req(pb::OpenCaseRequest {
            case_id: "ifg-2026-042".into(),
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into(), CAW.into()],
            subjects: vec![
                pb::Subject {
                    number: subject_number(51),
                },
                pb::Subject {
                    number: subject_number(52),
                },
            ],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect("case")
        .into_inner();
    let opening = opened.receipt.expect("receipt").index;
    for seq in [51, 52] {
        let report = gw
            .audit("coc")
            .await
            .subject_report(req(pb::SubjectReportRequest {
                subject: subject(seq),
                access_request: format!("AR-{seq}"),
            }))
            .await
            .expect("report")
            .into_inner();
        let line = report
            .lines
            .iter()
            .find(|l| l.index == opening)
            .unwrap_or_else(|| panic!("subject {seq}'s report misses the case opening"));
        let entry = line.entry.as_ref().expect("entry");
        assert_eq!(entry.operation, "OpenCase");
        assert_eq!(entry.subject_pseudonyms.len(), 2);
        let own = hex::decode(&report.subject_pseudonym).expect("hex pseudonym");
        assert!(entry.subject_pseudonyms.contains(&own));
    }
    // A subject outside the case does not get it.
    let other = gw
        .audit("coc")
        .await
        .subject_report(req(pb::SubjectReportRequest {
            subject: subject(53),
            access_request: "AR-53".into(),
        }))
        .await
        .expect("report")
        .into_inner();
    assert!(other.lines.iter().all(|l| l.index != opening));
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_caller_gets_the_audit_index_of_its_refusal() {
    let gw = TestGateway::start().await;
    // No case consultation: the policy requires one.
    let status = gw
        .exchange(POLICE)
        .await
        .request_context(req(pb::RequestContextRequest {
            subject: subject(61),
            holder: CAW.into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("subject.birth_date")],
            justification: String::new(),
        }))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let details = status.get_error_details();
    let info = details.error_info().expect("error info");
    assert_eq!(info.reason, "CASE_REQUIRED");
    assert_eq!(info.metadata.len(), 1, "the index and nothing else");
    let index: u64 = info.metadata["audit_index"].parse().expect("a number");
    let entry = pb::AuditEntry::decode(gw.gateway.log().entry(index).expect("entry").as_slice())
        .expect("decodes");
    assert_eq!(entry.operation, "RequestContext");
    assert_eq!(entry.requester_party, POLICE);
    assert_eq!(entry.verdict, pb::Verdict::Deny as i32);
    assert_eq!(entry.reason_code, "CASE_REQUIRED");
    assert!(
        !status.message().contains(&subject_number(61)),
        "nothing about the subject"
    );

    // The caller can prove the refusal: its DPO sees the entry at that index.
    let seen = visible_entries(&gw, "dpo-pz-gent").await;
    let shown = seen[usize::try_from(index).expect("small")]
        .as_ref()
        .expect("in the requester's DPO's scope");
    assert_eq!(shown, &entry);

    // An error that is not a logged refusal carries no index.
    let invalid = gw
        .exchange(POLICE)
        .await
        .request_context(req(pb::RequestContextRequest {
            subject: subject(61),
            holder: String::new(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("subject.birth_date")],
            justification: String::new(),
        }))
        .await
        .expect_err("invalid");
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    let details = invalid.get_error_details();
    assert!(
        details
            .error_info()
            .is_none_or(|i| !i.metadata.contains_key("audit_index"))
    );
    gw.stop().await;
}
