//! kill -9 crash test: a child `ketenpoort audit soak` appends under load and prints every
//! receipt it got; we SIGKILL it at random moments, reopen the log, and check that every printed
//! (acknowledged) receipt is still in the log, consistent with the new checkpoint, and that
//! `ketenpoort audit verify` passes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::collections::HashMap;

use ketenpoort::audit::hash::{check_record, check_tree, leaf_hash};
use ketenpoort::audit::keys::load_signers;
use ketenpoort::audit::proof::TlogProof;
use ketenpoort::audit::{AuditConfig, AuditLog, Checkpoint, Receipt, SearchQuery, Verifier};
use ketenpoort::proto::v1::AuditEntry;
use prost::Message;

const BIN: &str = env!("CARGO_BIN_EXE_ketenpoort");
const ORIGIN: &str = "soak.ketenpoort.test/audit";
const CYCLES: usize = 12;

/// A small xorshift generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs the soak child until it has printed `want` receipts, then SIGKILLs it; returns every
/// complete receipt line it printed.
fn soak_and_kill(data_dir: &Path, want: usize) -> Vec<Receipt> {
    let mut child = Command::new(BIN)
        .args(["audit", "soak", "--writers", "8", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => panic!("soak child printed {} of {want} receipts: {e}", lines.len()),
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
        .into_iter()
        // A line cut by the kill has no newline and was never complete output.
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
            Receipt {
                index: v["index"].as_u64().unwrap(),
                entry: B64.decode(v["entry"].as_str().unwrap()).unwrap(),
                proof: v["proof"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

#[test]
fn acknowledged_receipts_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut acknowledged: Vec<Receipt> = Vec::new();
    for cycle in 0..CYCLES {
        // Sometimes kill right after start, sometimes deep into a run.
        let want = match rng.next() % 4 {
            0 => 1,
            _ => 1 + (rng.next() % 250) as usize,
        };
        let got = soak_and_kill(data, want);
        assert!(got.len() >= want, "cycle {cycle}");
        acknowledged.extend(got);

        let signers = load_signers(&data.join("keys"), ORIGIN).unwrap();
        let vkey = signers[0].verifier_key();
        rt.block_on(async {
            let log = AuditLog::open(AuditConfig::new(data.join("audit"), ORIGIN), signers)
                .unwrap_or_else(|e| panic!("cycle {cycle}: reopen after kill -9 failed: {e}"));
            let now = Checkpoint::open(&log.checkpoint().unwrap(), log.verifiers()).unwrap();
            let verifier = Verifier::parse(&vkey).unwrap();
            // Receipts share checkpoints: check each signed checkpoint and its consistency once.
            let mut seen: HashMap<String, Checkpoint> = HashMap::new();
            for r in &acknowledged {
                let parsed = TlogProof::parse(&r.proof).unwrap();
                let cp = match seen.get(&parsed.signed_checkpoint) {
                    Some(cp) => cp.clone(),
                    None => {
                        let cp = Checkpoint::open(
                            &parsed.signed_checkpoint,
                            std::slice::from_ref(&verifier),
                        )
                        .unwrap();
                        assert!(
                            cp.size <= now.size,
                            "cycle {cycle}: checkpoint {} lost",
                            cp.size
                        );
                        let proof = log.prove_consistency(cp.size, now.size).unwrap();
                        assert!(
                            check_tree(&proof, now.size, &now.root, cp.size, &cp.root),
                            "cycle {cycle}: checkpoint {} is not a prefix of {}",
                            cp.size,
                            now.size
                        );
                        seen.insert(parsed.signed_checkpoint.clone(), cp.clone());
                        cp
                    }
                };
                assert_eq!(parsed.index, r.index);
                assert!(
                    check_record(
                        &parsed.hashes,
                        cp.size,
                        &cp.root,
                        r.index,
                        &leaf_hash(&r.entry)
                    ),
                    "cycle {cycle}: receipt {} does not verify",
                    r.index
                );
                assert_eq!(log.entry(r.index).unwrap(), r.entry, "cycle {cycle}");
            }
            // Each acknowledged entry's state change is there, and every state change that is
            // there has its entry: they committed together (replayed from the commit frames
            // when the state store had not applied them before the kill).
            for r in &acknowledged {
                let id = AuditEntry::decode(r.entry.as_slice()).unwrap().exchange_id;
                let key = format!("s/soak/{id}");
                assert_eq!(
                    log.state_get(key.as_bytes()).unwrap(),
                    Some(id.clone().into_bytes()),
                    "cycle {cycle}: the state change of entry {} is lost",
                    r.index
                );
            }
            for kv in log.state_scan_prefix(b"s/soak/") {
                let (_, id) = kv.unwrap();
                let id = String::from_utf8(id).unwrap();
                let q = SearchQuery {
                    exchange_id: Some(id.clone()),
                    ..Default::default()
                };
                assert_eq!(
                    log.search(&q).unwrap().len(),
                    1,
                    "cycle {cycle}: state of {id} committed without its entry"
                );
            }
            // Fresh receipts against the new checkpoint verify too.
            for r in acknowledged.iter().rev().take(50) {
                log.receipt(r.index).unwrap().verify(&vkey).unwrap();
            }
            log.shutdown().await;
        });
        let out = Command::new(BIN)
            .args(["audit", "verify", "--data-dir"])
            .arg(data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cycle {cycle}: audit verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut indexes: Vec<u64> = acknowledged.iter().map(|r| r.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(
        indexes.len(),
        acknowledged.len(),
        "an index was acknowledged twice"
    );
}
