//! Tamper test: a byte flipped in a stored entry, a stored hash or a checkpoint makes
//! verification name the damaged index, and `ketenpoort audit verify` exit non-zero.

use std::path::Path;
use std::process::Command;

use ketenpoort::audit::hash::stored_hash_index;
use ketenpoort::audit::keys::load_signers;
use ketenpoort::audit::store::{CHECKPOINT_PREFIX, ENTRY_PREFIX, HASH_PREFIX, Store, numbered_key};
use ketenpoort::audit::verify::verify_dir;
use ketenpoort::audit::{AuditConfig, AuditError, AuditLog, Verifier};
use ketenpoort::proto::v1::{AuditEntry, AuditEvent};

const BIN: &str = env!("CARGO_BIN_EXE_ketenpoort");
const ORIGIN: &str = "tamper.ketenpoort.test/audit";

/// Builds a log of 50 entries under `<data>/audit`, keys under `<data>/keys`.
fn build(data: &Path) -> Vec<Verifier> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let signers = load_signers(&data.join("keys"), ORIGIN).unwrap();
    let verifiers = signers.iter().map(|s| s.verifier()).collect();
    rt.block_on(async {
        let mut config = AuditConfig::new(data.join("audit"), ORIGIN);
        config.batch_max = 4;
        let log = AuditLog::open(config, signers).unwrap();
        for i in 0..50u64 {
            let e = AuditEntry {
                version: 1,
                event: AuditEvent::Exchange as i32,
                exchange_id: format!("t-{i}"),
                ..Default::default()
            };
            log.append(&e, vec![]).await.unwrap();
        }
        log.shutdown().await;
    });
    verifiers
}

/// Flips one bit of the value at `key`; returns the original value.
fn flip(data: &Path, key: &[u8]) -> Vec<u8> {
    let (db, store) = Store::open_dir(&data.join("audit")).unwrap();
    let old = store.tree().get(key).unwrap().unwrap().to_vec();
    let mut bad = old.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    store.tree().insert(key, bad).unwrap();
    db.flush().unwrap();
    old
}

fn restore(data: &Path, key: &[u8], value: Vec<u8>) {
    let (db, store) = Store::open_dir(&data.join("audit")).unwrap();
    store.tree().insert(key, value).unwrap();
    db.flush().unwrap();
}

fn bad_index(data: &Path, verifiers: &[Verifier]) -> u64 {
    match verify_dir(&data.join("audit"), verifiers, &mut |_| {}) {
        Err(AuditError::Corrupt { index, .. }) => index,
        other => panic!("expected a corrupt index, got {other:?}"),
    }
}

fn cli_verify(data: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flipped_bytes_are_found_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let verifiers = build(data);
    let report = verify_dir(&data.join("audit"), &verifiers, &mut |_| {}).unwrap();
    assert_eq!(report.entries, 50);
    assert!(cli_verify(data).0);

    // An entry.
    let key = numbered_key(ENTRY_PREFIX, 17);
    let old = flip(data, &key);
    assert_eq!(bad_index(data, &verifiers), 17);
    let (ok, stderr) = cli_verify(data);
    assert!(!ok);
    assert!(stderr.contains("index 17"), "{stderr}");
    restore(data, &key, old);
    assert!(cli_verify(data).0);

    // A stored leaf hash, and an interior hash (level 1, written with record 21).
    for (pos, record) in [
        (stored_hash_index(0, 30), 30),
        (stored_hash_index(1, 10), 21),
    ] {
        let key = numbered_key(HASH_PREFIX, pos);
        let old = flip(data, &key);
        assert_eq!(bad_index(data, &verifiers), record);
        let (ok, stderr) = cli_verify(data);
        assert!(!ok);
        assert!(stderr.contains(&format!("index {record}")), "{stderr}");
        restore(data, &key, old);
    }

    // A checkpoint's signature (the checkpoint of size 8 covers indexes up to 7).
    let key = numbered_key(CHECKPOINT_PREFIX, 8);
    let (db, store) = Store::open_dir(&data.join("audit")).unwrap();
    let note = String::from_utf8(store.tree().get(&key).unwrap().unwrap().to_vec()).unwrap();
    let forged = note.replace("\n8\n", "\n9\n");
    store.tree().insert(&key, forged.as_bytes()).unwrap();
    db.flush().unwrap();
    drop((db, store));
    assert_eq!(bad_index(data, &verifiers), 7);
    restore(data, &key, note.into_bytes());
    assert!(cli_verify(data).0);
}

#[test]
fn open_refuses_a_log_whose_hashes_no_longer_match_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    build(data);
    // The root of the first 32 records is part of the tree of size 50 that open recomputes.
    flip(data, &numbered_key(HASH_PREFIX, stored_hash_index(5, 0)));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let signers = load_signers(&data.join("keys"), ORIGIN).unwrap();
        let err =
            AuditLog::open(AuditConfig::new(data.join("audit"), ORIGIN), signers).unwrap_err();
        assert!(matches!(err, AuditError::CheckpointMismatch(_)), "{err}");
        assert!(err.to_string().contains("different root"), "{err}");
    });
}
