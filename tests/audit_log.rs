//! Black-box tests of the audit log: appends, receipts, state changes, search, reopen, and the
//! start-up check.

use ketenpoort::audit::{
    AuditConfig, AuditError, AuditLog, Checkpoint, SearchQuery, Signer, StateChange, verify_receipt,
};
use ketenpoort::proto::v1::{AuditEntry, AuditEvent, RuleRef, Verdict};

const ORIGIN: &str = "test.ketenpoort.example/audit";

fn entry(i: u64, party: &str, verdict: Verdict) -> AuditEntry {
    AuditEntry {
        version: 1,
        time: Some(prost_types::Timestamp {
            seconds: 1_700_000_000 + i as i64,
            nanos: 0,
        }),
        event: AuditEvent::Exchange as i32,
        exchange_id: format!("x-{i}"),
        requester_party: party.into(),
        counterpart_party: "ocmw-gent".into(),
        subject_pseudonym: vec![(i % 3) as u8; 32],
        rules: vec![RuleRef {
            agreement: format!("agreement-{}", i % 2),
            rule: "r1".into(),
            effect: "permit".into(),
        }],
        verdict: verdict as i32,
        ..Default::default()
    }
}

fn config(dir: &std::path::Path) -> AuditConfig {
    AuditConfig::new(dir.join("audit"), ORIGIN)
}

#[tokio::test]
async fn appends_return_receipts_that_verify_and_state_commits_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate(ORIGIN).unwrap();
    let log = AuditLog::open(config(dir.path()), vec![signer.clone()]).unwrap();
    assert_eq!(log.size(), 0);
    let cp0 = Checkpoint::open(&log.checkpoint().unwrap(), &[signer.verifier()]).unwrap();
    assert_eq!(cp0.size, 0);

    let mut receipts = Vec::new();
    for i in 0..10u64 {
        let change = StateChange::put(format!("s/ticket/{i}"), vec![i as u8]);
        let r = log
            .append(&entry(i, "police-gent", Verdict::Allow), vec![change])
            .await
            .unwrap();
        assert_eq!(r.index, i);
        let v = r.verify(&signer.verifier_key()).unwrap();
        assert_eq!(v.checkpoint.size, i + 1);
        receipts.push(r);
    }
    assert_eq!(log.size(), 10);
    assert_eq!(log.state_get(b"s/ticket/3").unwrap(), Some(vec![3]));
    let all: Vec<_> = log
        .state_scan_prefix(b"s/ticket/")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all.len(), 10);
    assert!(matches!(
        log.state_get(b"e/x"),
        Err(AuditError::BadStateKey)
    ));
    let bad = log
        .append(
            &entry(99, "p", Verdict::Allow),
            vec![StateChange::delete("x/1")],
        )
        .await;
    assert!(matches!(bad, Err(AuditError::BadStateKey)));

    // A fresh receipt against the latest checkpoint, and entry bytes that match.
    let r = log.receipt(2).unwrap();
    assert_eq!(r.entry, receipts[2].entry);
    let v = verify_receipt(&r.proof, &r.entry, &signer.verifier_key()).unwrap();
    assert_eq!(v.checkpoint.size, 10);
    assert_eq!(log.entry(2).unwrap(), receipts[2].entry);

    // Deleting state commits with an entry too.
    log.append(
        &entry(10, "police-gent", Verdict::Deny),
        vec![StateChange::delete("s/ticket/3")],
    )
    .await
    .unwrap();
    assert_eq!(log.state_get(b"s/ticket/3").unwrap(), None);
    log.shutdown().await;
    assert!(!log.is_accepting());
}

#[tokio::test]
async fn search_ands_filters_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate(ORIGIN).unwrap();
    let log = AuditLog::open(config(dir.path()), vec![signer]).unwrap();
    for i in 0..30u64 {
        let party = if i % 2 == 0 {
            "police-gent"
        } else {
            "caw-oost"
        };
        let verdict = if i % 5 == 0 {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        log.append(&entry(i, party, verdict), vec![]).await.unwrap();
    }
    let q = |f: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery::default();
        f(&mut q);
        log.search(&q).unwrap()
    };
    let police: Vec<u64> = (0..30).filter(|i| i % 2 == 0).collect();
    assert_eq!(q(&|q| q.party = Some("police-gent".into())), police);
    assert_eq!(q(&|q| q.party = Some("ocmw-gent".into())).len(), 30);
    assert_eq!(
        q(&|q| {
            q.party = Some("police-gent".into());
            q.verdict = Some(Verdict::Deny);
        }),
        vec![0, 10, 20]
    );
    assert_eq!(q(&|q| q.exchange_id = Some("x-7".into())), vec![7]);
    assert_eq!(
        q(&|q| {
            q.subject_pseudonym = Some(vec![1; 32]);
            q.agreement = Some("agreement-0".into());
        }),
        vec![4, 10, 16, 22, 28]
    );
    assert_eq!(
        q(&|q| {
            q.time_from = Some(1_700_000_005);
            q.time_until = Some(1_700_000_008);
        }),
        vec![5, 6, 7]
    );
    assert_eq!(
        q(&|q| {
            q.verdict = Some(Verdict::Allow);
            q.time_from = Some(1_700_000_020);
        }),
        vec![21, 22, 23, 24, 26, 27, 28, 29]
    );
    // Pages of 4, resumed with the last index.
    let first = q(&|q| {
        q.party = Some("police-gent".into());
        q.limit = 4;
    });
    assert_eq!(first, vec![0, 2, 4, 6]);
    let second = q(&|q| {
        q.party = Some("police-gent".into());
        q.limit = 4;
        q.after = Some(6);
    });
    assert_eq!(second, vec![8, 10, 12, 14]);
    assert_eq!(q(&|q| q.after = Some(27)), vec![28, 29]);
    assert!(q(&|q| q.party = Some("nobody".into())).is_empty());
}

#[tokio::test]
async fn reopen_continues_and_proofs_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate(ORIGIN).unwrap();
    let log = AuditLog::open(config(dir.path()), vec![signer.clone()]).unwrap();
    for i in 0..5u64 {
        log.append(&entry(i, "p", Verdict::Allow), vec![])
            .await
            .unwrap();
    }
    let old = Checkpoint::open(&log.checkpoint().unwrap(), &[signer.verifier()]).unwrap();
    log.shutdown().await;
    drop(log);

    let log = AuditLog::open(config(dir.path()), vec![signer.clone()]).unwrap();
    assert_eq!(log.size(), 5);
    for i in 5..13u64 {
        log.append(&entry(i, "p", Verdict::Allow), vec![])
            .await
            .unwrap();
    }
    let new = Checkpoint::open(&log.checkpoint().unwrap(), &[signer.verifier()]).unwrap();
    let proof = log.prove_consistency(old.size, new.size).unwrap();
    assert!(ketenpoort::audit::hash::check_tree(
        &proof, new.size, &new.root, old.size, &old.root
    ));
    let inclusion = log.prove_inclusion(3, 13).unwrap();
    let leaf = log.leaf_hash(3).unwrap();
    assert_eq!(
        leaf,
        ketenpoort::audit::hash::leaf_hash(&log.entry(3).unwrap())
    );
    assert!(ketenpoort::audit::hash::check_record(
        &inclusion, 13, &new.root, 3, &leaf
    ));
    assert!(log.prove_inclusion(3, 14).is_err());
    log.shutdown().await;
}

#[tokio::test]
async fn open_refuses_a_log_signed_by_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate(ORIGIN).unwrap();
    let log = AuditLog::open(config(dir.path()), vec![signer]).unwrap();
    log.append(&entry(0, "p", Verdict::Allow), vec![])
        .await
        .unwrap();
    log.shutdown().await;
    drop(log);
    let stranger = Signer::generate(ORIGIN).unwrap();
    let err = AuditLog::open(config(dir.path()), vec![stranger]).unwrap_err();
    assert!(matches!(err, AuditError::CheckpointMismatch(_)), "{err}");
}

#[tokio::test]
async fn rotation_signs_with_both_keys_and_old_receipts_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let old_key = Signer::generate(ORIGIN).unwrap();
    let log = AuditLog::open(config(dir.path()), vec![old_key.clone()]).unwrap();
    let before = log
        .append(&entry(0, "p", Verdict::Allow), vec![])
        .await
        .unwrap();
    log.shutdown().await;
    drop(log);

    let new_key = Signer::generate(ORIGIN).unwrap();
    let log = AuditLog::open(config(dir.path()), vec![new_key.clone(), old_key.clone()]).unwrap();
    assert_eq!(log.verifier_keys()[0], new_key.verifier_key());
    let during = log
        .append(&entry(1, "p", Verdict::Allow), vec![])
        .await
        .unwrap();
    // Both the old and the new pinned key accept a checkpoint of the overlap.
    during.verify(&old_key.verifier_key()).unwrap();
    during.verify(&new_key.verifier_key()).unwrap();
    before.verify(&old_key.verifier_key()).unwrap();
    log.shutdown().await;
    drop(log);

    // After the overlap the old key is retired; the log opens with the new key alone.
    let log = AuditLog::open(config(dir.path()), vec![new_key.clone()]).unwrap();
    let after = log
        .append(&entry(2, "p", Verdict::Allow), vec![])
        .await
        .unwrap();
    after.verify(&new_key.verifier_key()).unwrap();
    assert!(after.verify(&old_key.verifier_key()).is_err());
    log.shutdown().await;
}

/// Brute force over every entry, for comparison with the indexes.
fn brute_force(log: &AuditLog, q: &SearchQuery) -> Vec<u64> {
    let mut out = Vec::new();
    for i in q.after.map_or(0, |a| a + 1)..log.size() {
        let e = log.decoded_entry(i).unwrap();
        let t = e.time.as_ref().map_or(0, |t| t.seconds);
        let ok = q
            .party
            .as_ref()
            .is_none_or(|p| &e.requester_party == p || &e.counterpart_party == p)
            && q.subject_pseudonym
                .as_ref()
                .is_none_or(|s| &e.subject_pseudonym == s)
            && q.exchange_id.as_ref().is_none_or(|x| &e.exchange_id == x)
            && q.agreement
                .as_ref()
                .is_none_or(|a| e.rules.iter().any(|r| &r.agreement == a))
            && q.verdict.is_none_or(|v| e.verdict == v as i32)
            && q.event.is_none_or(|v| e.event == v as i32)
            && q.time_from.is_none_or(|f| t >= f)
            && q.time_until.is_none_or(|u| t < u);
        if ok {
            out.push(i);
        }
        if out.len() == q.limit {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_over_batched_commits_matches_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate(ORIGIN).unwrap();
    let mut cfg = config(dir.path());
    // Make the writer gather many appends per commit, so posting lists hold many indexes.
    cfg.batch_delay = std::time::Duration::from_millis(5);
    let log = AuditLog::open(cfg, vec![signer]).unwrap();
    let tasks: Vec<_> = (0..240u64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let party = ["police-gent", "caw-oost", "ocmw-gent"][(i % 3) as usize];
                let verdict = if i % 4 == 0 {
                    Verdict::Deny
                } else {
                    Verdict::Allow
                };
                let mut e = entry(i % 37, party, verdict);
                if i % 5 == 0 {
                    e.event = AuditEvent::Grounds as i32;
                }
                log.append(&e, vec![]).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut queries = Vec::new();
    for party in [None, Some("police-gent"), Some("ocmw-gent")] {
        for verdict in [None, Some(Verdict::Deny)] {
            for time in [None, Some((1_700_000_003, 1_700_000_020))] {
                for event in [None, Some(AuditEvent::Grounds)] {
                    queries.push(SearchQuery {
                        party: party.map(str::to_owned),
                        verdict,
                        event,
                        time_from: time.map(|t| t.0),
                        time_until: time.map(|t| t.1),
                        limit: 1000,
                        ..Default::default()
                    });
                }
            }
        }
    }
    queries.push(SearchQuery {
        subject_pseudonym: Some(vec![2; 32]),
        agreement: Some("agreement-1".into()),
        limit: 1000,
        ..Default::default()
    });
    queries.push(SearchQuery {
        exchange_id: Some("x-5".into()),
        limit: 1000,
        ..Default::default()
    });
    for q in &queries {
        let want = brute_force(&log, q);
        assert_eq!(log.search(q).unwrap(), want, "{q:?}");
        // Paging by 7 with the resume token gives the same list.
        let mut paged = Vec::new();
        let mut page = SearchQuery {
            limit: 7,
            ..q.clone()
        };
        loop {
            let got = log.search(&page).unwrap();
            assert_eq!(got, brute_force(&log, &page), "{page:?}");
            let Some(&last) = got.last() else { break };
            paged.extend(got);
            page.after = Some(last);
        }
        assert_eq!(paged, want, "{q:?}");
    }
    log.shutdown().await;
}

/// A store that appends depend on: counts its syncs, can be made to fail, and notes whether the
/// log's files already held the bytes `watch` names when it was synced.
#[derive(Debug)]
struct DependedOn {
    log_dir: std::path::PathBuf,
    watch: std::sync::Mutex<Vec<u8>>,
    syncs: std::sync::atomic::AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    written_before_sync: std::sync::atomic::AtomicBool,
}

impl ketenpoort::audit::SyncFirst for DependedOn {
    fn sync_first(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.syncs.fetch_add(1, SeqCst);
        let watch = self.watch.lock().unwrap().clone();
        let mut todo = vec![self.log_dir.clone()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    todo.push(path);
                } else if std::fs::read(&path)?
                    .windows(watch.len())
                    .any(|w| w == watch.as_slice())
                {
                    self.written_before_sync.store(true, SeqCst);
                }
            }
        }
        if self.fail.load(SeqCst) {
            return Err("injected sync failure".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_depends_on_a_store_is_written_only_after_the_store_is_synced() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(DependedOn {
        log_dir: dir.path().join("audit"),
        watch: std::sync::Mutex::new(b"s/depends/1".to_vec()),
        syncs: Default::default(),
        fail: Default::default(),
        written_before_sync: Default::default(),
    });
    let mut depending = config(dir.path());
    depending.sync_first = Some(store.clone());
    let log = AuditLog::open(depending, vec![Signer::generate(ORIGIN).unwrap()]).unwrap();

    log.append_after_sync(
        &entry(1, "police-gent", Verdict::Allow),
        vec![StateChange::put("s/depends/1", b"sealed".to_vec())],
    )
    .await
    .unwrap();
    assert_eq!(store.syncs.load(SeqCst), 1);
    assert!(
        !store.written_before_sync.load(SeqCst),
        "nothing of the commit is written before the store it depends on is synced"
    );
    assert_eq!(
        log.state_get(b"s/depends/1").unwrap(),
        Some(b"sealed".to_vec())
    );

    // An append that does not depend on it does not sync it.
    log.append(&entry(2, "police-gent", Verdict::Allow), vec![])
        .await
        .unwrap();
    assert_eq!(store.syncs.load(SeqCst), 1);

    // When the sync fails, nothing of the dependent append is committed; the log goes on.
    store.fail.store(true, SeqCst);
    *store.watch.lock().unwrap() = b"s/depends/3".to_vec();
    let refused = log
        .append_after_sync(
            &entry(3, "police-gent", Verdict::Allow),
            vec![StateChange::put("s/depends/3", b"sealed".to_vec())],
        )
        .await;
    assert!(
        matches!(refused, Err(AuditError::SyncFirst(_))),
        "{refused:?}"
    );
    assert_eq!(log.size(), 2);
    assert_eq!(log.state_get(b"s/depends/3").unwrap(), None);
    assert!(log.is_accepting());
    log.append(&entry(4, "police-gent", Verdict::Allow), vec![])
        .await
        .unwrap();
    assert_eq!(log.size(), 3);
    log.shutdown().await;

    // A log without such a store refuses dependent appends.
    let other = tempfile::tempdir().unwrap();
    let log = AuditLog::open(
        config(other.path()),
        vec![Signer::generate(ORIGIN).unwrap()],
    )
    .unwrap();
    let refused = log
        .append_after_sync(&entry(5, "police-gent", Verdict::Allow), vec![])
        .await;
    assert!(matches!(refused, Err(AuditError::Config(_))), "{refused:?}");
    log.shutdown().await;
}
