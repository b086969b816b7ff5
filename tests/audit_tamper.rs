//! Tamper test: a byte flipped in a stored entry, a stored hash or a checkpoint makes
//! verification name the damaged index, and `ketenpoort audit verify` exit non-zero.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ketenpoort::audit::hash::stored_hash_index;
use ketenpoort::audit::keys::load_signers;
use ketenpoort::audit::store::{CHECKPOINT_PREFIX, Store, numbered_key};
use ketenpoort::audit::verify::verify_log;
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

/// Opens the log directory, waiting (with a deadline) for the previous handle's background
/// threads to release sled's file lock.
fn open_store(data: &Path) -> (sled::Db, Store) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open_dir(&data.join("audit")) {
            Ok(pair) => return pair,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the log lock: {e}");
                std::thread::yield_now();
            }
            Err(e) => panic!("cannot reopen the log: {e}"),
        }
    }
}

/// Flips one bit of the byte at `offset` of a record file (`entries`, `offsets`, `hashes`);
/// flipping it again restores it.
fn flip_file(data: &Path, file: &str, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(data.join("audit/log").join(file))
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], offset).unwrap();
    f.sync_all().unwrap();
}

fn restore(data: &Path, key: &[u8], value: Vec<u8>) {
    let (db, store) = open_store(data);
    store.tree().insert(key, value).unwrap();
    db.flush().unwrap();
}

fn bad_index(data: &Path, verifiers: &[Verifier]) -> u64 {
    let (_db, store) = open_store(data);
    match verify_log(&store, verifiers, &mut |_| {}) {
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
    let report = {
        let (_db, store) = open_store(data);
        verify_log(&store, &verifiers, &mut |_| {}).unwrap()
    };
    assert_eq!(report.entries, 50);
    assert!(cli_verify(data).0);

    // An entry.
    let middle = {
        let (_db, store) = open_store(data);
        let (start, end) = store.entry_range(17).unwrap();
        (start + end) / 2
    };
    flip_file(data, "entries", middle);
    assert_eq!(bad_index(data, &verifiers), 17);
    let (ok, stderr) = cli_verify(data);
    assert!(!ok);
    assert!(stderr.contains("index 17"), "{stderr}");
    flip_file(data, "entries", middle);
    assert!(cli_verify(data).0);

    // An entry's end offset: its bytes (and the next entry's) no longer hash right.
    flip_file(data, "offsets", 12 * 8);
    assert_eq!(bad_index(data, &verifiers), 12);
    assert!(!cli_verify(data).0);
    flip_file(data, "offsets", 12 * 8);

    // A stored leaf hash, and an interior hash (level 1, written with record 21).
    for (pos, record) in [
        (stored_hash_index(0, 30), 30),
        (stored_hash_index(1, 10), 21),
    ] {
        flip_file(data, "hashes", pos * 32 + 5);
        assert_eq!(bad_index(data, &verifiers), record);
        let (ok, stderr) = cli_verify(data);
        assert!(!ok);
        assert!(stderr.contains(&format!("index {record}")), "{stderr}");
        flip_file(data, "hashes", pos * 32 + 5);
    }

    // A checkpoint's signature (the checkpoint of size 8 covers indexes up to 7).
    let key = numbered_key(CHECKPOINT_PREFIX, 8);
    let (db, store) = open_store(data);
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
    // It is the last of the six hashes written with record 31.
    flip_file(data, "hashes", (stored_hash_index(0, 31) + 5) * 32 + 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let signers = load_signers(&data.join("keys"), ORIGIN).unwrap();
        let err =
            AuditLog::open(AuditConfig::new(data.join("audit"), ORIGIN), signers).unwrap_err();
        assert!(matches!(err, AuditError::CheckpointMismatch(_)), "{err}");
        assert!(err.to_string().contains("different root"), "{err}");
    });
}
