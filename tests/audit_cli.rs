//! The `ketenpoort audit` commands, end to end on a small log made by the hidden soak command.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ketenpoort");

fn audit(data: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("audit")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn inspect_prove_verify_and_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let soak = audit(data, &["soak", "--count", "40", "--writers", "4"]);
    assert_eq!(text(&soak).lines().count(), 40);

    let checkpoint = text(&audit(data, &["checkpoint"]));
    assert!(
        checkpoint.starts_with("soak.ketenpoort.test/audit\n40\n"),
        "{checkpoint}"
    );
    let vkey = text(&audit(data, &["vkey"])).trim().to_owned();
    assert!(vkey.starts_with("soak.ketenpoort.test/audit+"));

    // A proof and the raw entry verify offline; another entry's bytes do not.
    let proof = text(&audit(data, &["prove", "--index", "11"]));
    assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nindex 11\n"));
    assert!(proof.ends_with(&checkpoint));
    let entry = audit(data, &["entry", "--index", "11", "--raw"]).stdout;
    let other = audit(data, &["entry", "--index", "12", "--raw"]).stdout;
    std::fs::write(data.join("p.txt"), &proof).unwrap();
    std::fs::write(data.join("e.bin"), &entry).unwrap();
    std::fs::write(data.join("o.bin"), &other).unwrap();
    let check = |entry_file: &str| {
        Command::new(BIN)
            .args(["audit", "verify-receipt"])
            .arg(data.join("p.txt"))
            .args(["--vkey", &vkey, "--entry"])
            .arg(data.join(entry_file))
            .output()
            .unwrap()
    };
    let ok = check("e.bin");
    assert!(ok.status.success());
    assert!(text(&ok).contains("entry 11"), "{}", text(&ok));
    assert!(!check("o.bin").status.success());

    let json = text(&audit(data, &["entry", "--index", "11", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["event"], "AUDIT_EVENT_EXCHANGE");
    let consistency = text(&audit(data, &["consistency", "--old", "7"]));
    assert!(!consistency.is_empty());
    assert!(consistency.lines().all(|l| l.len() == 44));

    // Rotate: the rotation entry is signed by both keys; after retiring, verify still passes
    // over checkpoints signed by the old key alone, the overlap, and the new key alone.
    let rotated = text(&audit(data, &["rotate-key"]));
    assert!(rotated.contains("entry 40"), "{rotated}");
    let vkeys = text(&audit(data, &["vkey"]));
    assert_eq!(vkeys.lines().count(), 2);
    assert_ne!(vkeys.lines().next().unwrap(), vkey);
    let dual = text(&audit(data, &["checkpoint"]));
    assert_eq!(dual.matches('\u{2014}').count(), 2);
    audit(data, &["retire-key"]);
    audit(data, &["soak", "--count", "5", "--writers", "1"]);
    let verified = text(&audit(data, &["verify"]));
    assert!(verified.starts_with("ok: 46 entries"), "{verified}");
    let rotation = text(&audit(data, &["entry", "--index", "40"]));
    assert!(rotation.contains("AUDIT_EVENT_KEY_ROTATION"));

    // Pinning only the new key is not enough for the old checkpoints.
    let new_only = Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--vkey",
            vkeys.lines().next().unwrap(),
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    assert!(!new_only.status.success());
}
