//! The `ketenpoort policy …` commands, run as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

use ketenpoort::policy::PolicySet;

const MINI: &str = "tests/data/policy-mini";

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ketenpoort")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_passes_a_clean_set_and_warns_on_overlap() {
    let o = run(&["policy", "check", MINI]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("overlaps"), "{t}");
    assert!(t.contains("ok, 6 agreements"), "{t}");
}

#[test]
fn check_fails_with_located_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for sub in ["", "agreements"] {
        std::fs::create_dir_all(tmp.path().join(sub)).expect("mkdir");
    }
    for f in [
        "parties.toml",
        "vocabulary.toml",
        "catalogue.toml",
        "agreements/lookup.toml",
    ] {
        std::fs::copy(Path::new(MINI).join(f), tmp.path().join(f)).expect("copy");
    }
    let lookup = tmp.path().join("agreements/lookup.toml");
    let t = std::fs::read_to_string(&lookup).expect("read");
    std::fs::write(&lookup, t.replace("reference.hit", "reference.hits")).expect("write");
    let o = run(&["policy", "check", tmp.path().to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("lookup.toml:16:9: unknown field"),
        "{}",
        text(&o)
    );
}

#[test]
fn test_reports_counts_and_diffs() {
    let o = run(&["policy", "test", MINI]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).trim_end().ends_with("20 passed, 0 failed"),
        "{}",
        text(&o)
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir") {
            let e = e.expect("entry");
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
    };
    let root = Path::new(MINI);
    copy(root, tmp.path());
    copy(&root.join("agreements"), &tmp.path().join("agreements"));
    copy(&root.join("tests"), &tmp.path().join("tests"));
    let other = tmp.path().join("tests/other.toml");
    let t = std::fs::read_to_string(&other).expect("read");
    std::fs::write(
        &other,
        t.replacen("reason = \"UNKNOWN_PARTY\"", "reason = \"FORBIDDEN\"", 1),
    )
    .expect("write");
    let o = run(&["policy", "test", tmp.path().to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("FAIL unknown party"), "{t}");
    assert!(t.contains("reason:   - FORBIDDEN + UNKNOWN_PARTY"), "{t}");
    assert!(t.trim_end().ends_with("19 passed, 1 failed"), "{t}");
}

#[test]
fn explain_prints_the_trace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let req = tmp.path().join("req.toml");
    std::fs::write(
        &req,
        "[[case]]\n[case.request]\nkind = \"lookup\"\nrequester = \"pz-gent\"\ncounterpart = \"cgg-eclips\"\npurpose = \"intrafamily-violence\"\nsubject = \"s1\"\nfields = [\"reference.hit\"]\n",
    )
    .expect("write");
    let o = run(&[
        "policy",
        "explain",
        "--request",
        req.to_str().expect("utf-8 path"),
        "--at",
        "2026-03-15T10:00:00Z",
        "--policies",
        MINI,
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("✓ permit lookup/police-lookup"), "{t}");
    assert!(t.contains("decision: allow (PERMITTED)"), "{t}");
    assert!(t.contains("release reference.hit as keep"), "{t}");
}

#[test]
fn digest_matches_the_library() {
    let o = run(&["policy", "digest", MINI]);
    let set = PolicySet::load(Path::new(MINI)).expect("mini set loads");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), set.digest_hex());
}

#[test]
fn diff_of_a_set_with_itself_is_empty() {
    let o = run(&["policy", "diff", MINI, MINI, "--at", "2026-03-15T10:00:00Z"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("every ground assumed satisfied"), "{t}");
    assert!(t.contains("0 change(s)"), "{t}");
}
