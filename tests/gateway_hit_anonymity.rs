//! A hit-only answer does not tell which holder or rule produced it. Two holders that may both be
//! found only as a bare hit, under different rules with different obligations (a mental-health
//! centre whose hits are reviewed and notified, and a child-abuse centre added here whose are
//! not), each know one person; the police look both up. The two answers, and the audit entries
//! inside their receipts, are compared byte by byte once the per-call values (lookup id, subject
//! pseudonym, log index and proof) are set aside.

mod common;

use common::*;
use ketenpoort::proto::v1 as pb;
use prost::Message;

const POLICE: &str = "pz-gent";
const CGG: &str = "cgg-eclips";
const VK: &str = "vk-oost-vlaanderen";

/// A second hit-only agreement, for the child-abuse centre: another rule id, another retention,
/// no review or notification.
const VK_AGREEMENT: &str = r#"id = "referentie-vk"
title = "Referentie-opvraging bij het Vertrouwenscentrum Kindermishandeling, enkel hit"
owner = "vk-oost-vlaanderen"
legal_basis = ["consent"]
valid_from = 2025-09-01
valid_until = 2026-12-31
description = "Enkel of de betrokkene gekend is, met diens toestemming; nooit de dienst of een contactpunt."

[[rule]]
id = "politie-vraagt-vk-enkel-hit"
effect = "permit"
kinds = ["lookup"]
requester = { roles = ["police"] }
counterpart = { parties = ["vk-oost-vlaanderen"] }
purposes = ["protection-integrity"]
description = "Enkel hit / no-hit bij het VK."

[rule.conditions]
consent = true

[[rule.release]]
field = "reference.hit"
form = "keep"

[rule.obligations]
retention_days = 30
"#;

async fn lookup(gw: &TestGateway, seq: u32) -> pb::LookupResponse {
    gw.exchange(POLICE)
        .await
        .lookup(req(pb::LookupRequest {
            subject: subject(seq),
            purpose: "intrafamily-violence".into(),
            justification: String::new(),
        }))
        .await
        .expect("lookup allowed")
        .into_inner()
}

/// The entry with the values every call has its own of set to fixed ones.
fn normalised(entry: &[u8]) -> Vec<u8> {
    let mut entry = pb::AuditEntry::decode(entry).expect("entry decodes");
    assert!(entry.exchange_id.starts_with("l-"));
    entry.exchange_id = "l-x".into();
    assert_eq!(entry.subject_pseudonym.len(), 32);
    entry.subject_pseudonym = vec![0; 32];
    entry.encode_to_vec()
}

#[tokio::test]
async fn hits_of_two_holders_look_the_same_to_the_requester() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    std::fs::write(
        policies.join("agreements").join("referentie-vk.toml"),
        VK_AGREEMENT,
    )
    .expect("write agreement");
    let gw = TestGateway::start_with(move |c| c.policies = policies).await;
    gw.register(CGG, 21).await;
    gw.register(VK, 22).await;

    let at_cgg = lookup(&gw, 21).await;
    let at_vk = lookup(&gw, 22).await;
    assert_eq!(
        at_cgg.hits,
        vec![pb::LookupHit::default()],
        "one anonymous hit"
    );
    assert_eq!(at_cgg.hits, at_vk.hits);

    let cgg_receipt = at_cgg.receipt.clone().expect("receipt");
    let vk_receipt = at_vk.receipt.clone().expect("receipt");
    verify_receipt(&gw, &cgg_receipt);
    verify_receipt(&gw, &vk_receipt);
    assert_eq!(
        cgg_receipt.entry.len(),
        vk_receipt.entry.len(),
        "the receipts' entries differ in size"
    );
    assert_eq!(
        normalised(&cgg_receipt.entry),
        normalised(&vk_receipt.entry),
        "the receipts' entries differ beyond the lookup id and the subject"
    );
    let entry = pb::AuditEntry::decode(cgg_receipt.entry.as_slice()).expect("entry");
    assert!(
        entry.rules.is_empty(),
        "no rule names the holder: {:?}",
        entry.rules
    );
    assert!(entry.obligations.is_none(), "no holder's obligation");
    assert_eq!(
        entry.released_fields,
        vec![pb::ReleasedField {
            field: "reference.hit".into(),
            form: "keep".into()
        }]
    );
    for (receipt, holder) in [(&cgg_receipt, CGG), (&vk_receipt, VK)] {
        for name in [
            holder,
            "politie-vraagt-cgg-enkel-hit",
            "politie-vraagt-vk-enkel-hit",
        ] {
            assert!(
                !receipt
                    .entry
                    .windows(name.len())
                    .any(|w| w == name.as_bytes()),
                "a receipt names {name}"
            );
        }
    }
    // The whole answers, but for the per-call values, are the same bytes.
    let strip = |mut r: pb::LookupResponse| {
        assert_eq!(r.lookup_id.len(), at_cgg.lookup_id.len());
        r.lookup_id.clear();
        r.receipt = None;
        r.encode_to_vec()
    };
    assert_eq!(strip(at_cgg.clone()), strip(at_vk.clone()));

    // Control: the two hits did come from different holders under different rules. The
    // supervisor's view of each lookup's consulted entry opens its holder, and only the CGG's
    // DPO has the lookup in its review queue (the CGG rule asks for review, the VK rule not).
    let size = gw.gateway.log().size();
    let leaves = gw
        .audit("coc")
        .await
        .get_entries(req(pb::GetEntriesRequest {
            start: 0,
            count: u32::try_from(size).expect("small"),
        }))
        .await
        .expect("entries")
        .into_inner()
        .leaves;
    let consulted_of = |lookup_id: &str| -> Vec<String> {
        leaves
            .iter()
            .filter(|l| match &l.content {
                Some(pb::log_leaf::Content::Entry(b)) => pb::AuditEntry::decode(b.as_slice())
                    .is_ok_and(|e| e.operation == "LookupConsulted" && e.exchange_id == lookup_id),
                _ => false,
            })
            .flat_map(|l| l.consulted.iter().map(|d| d.party.clone()))
            .collect()
    };
    assert_eq!(consulted_of(&at_cgg.lookup_id), vec![CGG.to_owned()]);
    assert_eq!(consulted_of(&at_vk.lookup_id), vec![VK.to_owned()]);
    let queue = |dpo: &'static str| {
        let gw = &gw;
        async move {
            gw.audit(dpo)
                .await
                .list_reviews(req(pb::ListReviewsRequest::default()))
                .await
                .expect("reviews")
                .into_inner()
                .items
                .into_iter()
                .map(|i| i.exchange_id)
                .collect::<Vec<_>>()
        }
    };
    assert!(queue("dpo-cgg-eclips").await.contains(&at_cgg.lookup_id));
    assert!(
        !queue("dpo-vk-oost-vlaanderen")
            .await
            .contains(&at_vk.lookup_id)
    );
    gw.stop().await;
}
