//! Cross-check with Go's reference implementations (golang.org/x/mod/sumdb/note and
//! sumdb/tlog): our checkpoints, receipts, consistency proofs and stored-hash layout must verify
//! unchanged with interop/go/verify.go.
//!
//! Needs `go` and Debian's golang-golang-x-mod-dev (GOPATH mode, /usr/share/gocode). Without
//! them the test says so and passes, unless KETENPOORT_REQUIRE_GO=1 makes it fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ketenpoort::audit::{AuditConfig, AuditLog, Receipt, Signer};
use ketenpoort::proto::v1::{AuditEntry, AuditEvent};

const ORIGIN: &str = "interop.ketenpoort.test/audit";
const GOPATH: &str = "/usr/share/gocode";

fn go_available() -> bool {
    let has_go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let has_xmod = Path::new(GOPATH)
        .join("src/golang.org/x/mod/sumdb/tlog/tlog.go")
        .exists();
    if !(has_go && has_xmod) {
        let msg = "go or golang-golang-x-mod-dev is missing; Go interop check skipped";
        if std::env::var("KETENPOORT_REQUIRE_GO").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("{msg}");
        return false;
    }
    true
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry {
        version: 1,
        event: AuditEvent::Exchange as i32,
        exchange_id: format!("interop-{i}"),
        requester_party: "police-gent".into(),
        ..Default::default()
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

fn run_go(args: &[String]) -> (bool, String) {
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/go/verify.go");
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-build-cache");
    let out = Command::new("go")
        .arg("run")
        .arg(&program)
        .args(args)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOFLAGS", "")
        .env("GOCACHE", &cache)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sumdb_verifies_our_checkpoints_receipts_and_proofs() {
    if !go_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path();
    let old_key = Signer::generate(ORIGIN).unwrap();
    let new_key = Signer::generate(ORIGIN).unwrap();
    let mut config = AuditConfig::new(files.join("audit"), ORIGIN);
    config.batch_max = 7;

    // 0..37 signed by the old key alone, then 37..53 during a rotation overlap (both keys).
    let mut receipts: Vec<Receipt> = Vec::new();
    let mut old_checkpoints = Vec::new();
    let log = AuditLog::open(config.clone(), vec![old_key.clone()]).unwrap();
    let handles: Vec<_> = (0..37u64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(&entry(i), vec![]).await.unwrap() })
        })
        .collect();
    for h in handles {
        receipts.push(h.await.unwrap());
    }
    for size in [1u64, 2, 5, 13, 37] {
        if let Some(cp) = log.checkpoint_at(size).unwrap() {
            old_checkpoints.push(cp);
        }
    }
    old_checkpoints.push(log.checkpoint().unwrap());
    log.shutdown().await;
    drop(log);
    let log = AuditLog::open(config.clone(), vec![new_key.clone(), old_key.clone()]).unwrap();
    for i in 37..53u64 {
        receipts.push(log.append(&entry(i), vec![]).await.unwrap());
    }
    let latest = log.checkpoint().unwrap();
    let size = log.size();
    let mut args = vec![
        "-vkey".to_owned(),
        write(files, "old.vkey", old_key.verifier_key().as_bytes()),
        "-vkey".to_owned(),
        write(files, "new.vkey", new_key.verifier_key().as_bytes()),
        "-checkpoint".to_owned(),
        write(files, "latest.cp", latest.as_bytes()),
    ];
    for r in receipts.iter().step_by(3).chain(receipts.last()) {
        let p = write(files, &format!("r{}.proof", r.index), r.proof.as_bytes());
        let e = write(files, &format!("r{}.entry", r.index), &r.entry);
        args.push("-receipt".into());
        args.push(format!("{p}:{e}"));
    }
    for (i, cp) in old_checkpoints.iter().enumerate() {
        let opened = ketenpoort::audit::Checkpoint::open(cp, &[old_key.verifier()]).unwrap();
        let proof: String = log
            .prove_consistency(opened.size, size)
            .unwrap()
            .iter()
            .map(|h| format!("{}\n", B64.encode(h)))
            .collect();
        let c = write(files, &format!("old{i}.cp"), cp.as_bytes());
        let p = write(files, &format!("old{i}.proof"), proof.as_bytes());
        args.push("-consistency".into());
        args.push(format!("{c}:{p}"));
    }
    let leaves: String = (0..size)
        .map(|i| format!("{}\n", B64.encode(log.entry(i).unwrap())))
        .collect();
    log.shutdown().await;
    drop(log);
    // The hashes file is Go's stored-hash layout itself: stored hash k at byte 32·k.
    let raw = std::fs::read(files.join("audit/log/hashes")).unwrap();
    let stored: String = raw
        .chunks_exact(32)
        .map(|h| format!("{}\n", B64.encode(h)))
        .collect();
    args.push("-leaves".into());
    args.push(write(files, "leaves.txt", leaves.as_bytes()));
    args.push("-stored".into());
    args.push(write(files, "stored.txt", stored.as_bytes()));

    let (ok, out) = run_go(&args);
    assert!(ok, "Go verifier failed:\n{out}");
    assert!(out.contains("ALL OK"), "{out}");
    assert!(
        out.contains(&format!("ok checkpoint {ORIGIN} size {size}")),
        "{out}"
    );

    // The overlap checkpoint verifies under the new key alone, too.
    let only_new = vec![
        "-vkey".to_owned(),
        files.join("new.vkey").to_str().unwrap().to_owned(),
        "-checkpoint".to_owned(),
        files.join("latest.cp").to_str().unwrap().to_owned(),
    ];
    let (ok, out) = run_go(&only_new);
    assert!(ok, "{out}");

    // And Go rejects a tampered entry.
    let last = receipts.last().unwrap();
    let mut bad = last.entry.clone();
    bad[0] ^= 1;
    let e = write(files, "bad.entry", &bad);
    let p = files.join(format!("r{}.proof", last.index));
    let mut tampered = only_new.clone();
    tampered.push("-receipt".into());
    tampered.push(format!("{}:{e}", p.to_str().unwrap()));
    let (ok, out) = run_go(&tampered);
    assert!(!ok, "Go accepted a tampered entry:\n{out}");
    assert!(out.contains("FAIL CheckRecord"), "{out}");
}
