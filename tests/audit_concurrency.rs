//! Concurrency test: many writers append at once; every receipt is valid, indexes are dense,
//! and state changes land with their entries.

use std::collections::HashSet;

use ketenpoort::audit::verify::verify_dir;
use ketenpoort::audit::{AuditConfig, AuditLog, Signer, StateChange};
use ketenpoort::proto::v1::{AuditEntry, AuditEvent};

const ORIGIN: &str = "concurrency.ketenpoort.test/audit";
const WRITERS: u64 = 16;
const PER_WRITER: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_get_valid_receipts_and_dense_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = Signer::generate(ORIGIN).unwrap();
    let mut config = AuditConfig::new(tmp.path().join("audit"), ORIGIN);
    // A small queue exercises back-pressure; a small batch many commits.
    config.queue_capacity = 8;
    config.batch_max = 32;
    let log = AuditLog::open(config, vec![signer.clone()]).unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for n in 0..PER_WRITER {
                let e = AuditEntry {
                    version: 1,
                    event: AuditEvent::Exchange as i32,
                    exchange_id: format!("w{w}-{n}"),
                    requester_party: format!("party-{w}"),
                    ..Default::default()
                };
                let change = StateChange::put(format!("s/w{w}/{n}"), b"done".to_vec());
                receipts.push((
                    e.exchange_id.clone(),
                    log.append(&e, vec![change]).await.unwrap(),
                ));
            }
            receipts
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = WRITERS * PER_WRITER;
    assert_eq!(log.size(), total);
    let indexes: HashSet<u64> = all.iter().map(|(_, r)| r.index).collect();
    assert_eq!(indexes, (0..total).collect::<HashSet<_>>());
    let vkey = signer.verifier_key();
    for (exchange_id, r) in &all {
        r.verify(&vkey).unwrap();
        let stored = log.decoded_entry(r.index).unwrap();
        assert_eq!(&stored.exchange_id, exchange_id);
        assert_eq!(log.entry(r.index).unwrap(), r.entry);
    }
    for w in 0..WRITERS {
        let n = log.state_scan_prefix(format!("s/w{w}/").as_bytes()).count() as u64;
        assert_eq!(n, PER_WRITER);
        let q = ketenpoort::audit::SearchQuery {
            party: Some(format!("party-{w}")),
            limit: 1000,
            ..Default::default()
        };
        assert_eq!(log.search(&q).unwrap().len() as u64, PER_WRITER);
    }
    log.shutdown().await;
    drop(log);
    let report = verify_dir(&tmp.path().join("audit"), &[signer.verifier()], &mut |_| {}).unwrap();
    assert_eq!(report.entries, total);
}
