//! A lookup must not reveal who a sensitive holder is: when the policy releases only the hit (a
//! mental-health centre), the answer carries one anonymous hit, last, whatever the number of such holders.

mod common;

use common::*;
use ketenpoort::proto::v1 as pb;

const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";
const CGG: &str = "cgg-eclips";
const OCMW: &str = "ocmw-gent";

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

#[tokio::test]
async fn hit_only_holder_stays_anonymous() {
    let gw = TestGateway::start().await;
    gw.register(CAW, 1).await;
    gw.register(CGG, 1).await;
    gw.register(OCMW, 1).await;
    gw.register(CGG, 2).await;

    let both = lookup(&gw, 1).await;
    assert_eq!(
        both.hits.len(),
        3,
        "the CAW and OCMW by name, one anonymous hit"
    );
    assert!(
        both.hits
            .iter()
            .any(|h| h.holder == CAW && !h.contact_point.is_empty())
    );
    let anonymous: Vec<_> = both.hits.iter().filter(|h| h.holder.is_empty()).collect();
    assert_eq!(anonymous.len(), 1);
    // Its place does not hint at the holder's id either (holders sort by id: caw < cgg < ocmw):
    // the anonymous hit comes last.
    assert!(both.hits[2].holder.is_empty());
    assert!(anonymous[0].holder_name.is_empty() && anonymous[0].contact_point.is_empty());

    // Nothing in the answer names the CGG, not even in the receipt's audit entry bytes.
    let cgg_only = lookup(&gw, 2).await;
    assert_eq!(cgg_only.hits, vec![pb::LookupHit::default()]);
    let text = format!("{:?}", cgg_only.hits);
    assert!(!text.contains(CGG) && !text.contains("Eclips"), "{text}");
    let entry = cgg_only.receipt.expect("receipt").entry;
    assert!(
        !entry.windows(CGG.len()).any(|w| w == CGG.as_bytes()),
        "the caller's receipt names the hit-only holder"
    );
    gw.stop().await;
}
