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
        text(&o).trim_end().ends_with("24 passed, 0 failed"),
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
    assert!(t.trim_end().ends_with("23 passed, 1 failed"), "{t}");
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

/// Runs `policy explain` on a request file with the given text, at a fixed time.
fn explain(request: &str, at: Option<&str>) -> (bool, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let req = tmp.path().join("req.toml");
    std::fs::write(&req, request).expect("write");
    let mut args = vec![
        "policy",
        "explain",
        "--request",
        req.to_str().expect("utf-8 path"),
        "--policies",
        MINI,
    ];
    if let Some(at) = at {
        args.extend(["--at", at]);
    }
    let o = run(&args);
    (o.status.success(), text(&o))
}

const REQUEST: &str = "[[case]]\n[case.request]\nkind = \"lookup\"\nrequester = \"pz-gent\"\ncounterpart = \"cgg-eclips\"\npurpose = \"intrafamily-violence\"\nsubject = \"s1\"\nfields = [\"reference.hit\"]\n";

#[test]
fn explain_diagnostics_point_into_the_request_file_as_written() {
    // A bad value on line 3: the CLI used to insert `name` and `now` lines, shifting it.
    let (ok, t) = explain(
        &REQUEST.replace("\"lookup\"", "\"lookupx\""),
        Some("2026-03-15T10:00:00Z"),
    );
    assert!(!ok, "{t}");
    assert!(
        t.contains("req.toml:3:8: unknown exchange kind `lookupx`"),
        "{t}"
    );

    // A syntax error at the end of the file: reported inside the 8 lines the user wrote,
    // never in text the CLI appended.
    let (ok, t) = explain(
        &REQUEST.replace("[\"reference.hit\"]", "[\"reference.hit\""),
        None,
    );
    assert!(!ok, "{t}");
    assert!(
        t.contains("req.toml:8:26: TOML syntax: unclosed array"),
        "{t}"
    );
    assert!(
        !t.contains("case.expect") && !t.contains("decision ="),
        "{t}"
    );

    // No [[case]] table at all: the user's own key is named, nothing appended is shown.
    let (ok, t) = explain(
        &REQUEST.replace("[[case]]\n[case.request]", "[request]"),
        None,
    );
    assert!(!ok, "{t}");
    assert!(t.contains("req.toml:1:2: unknown key `request`"), "{t}");
    assert!(
        !t.contains("case.expect") && !t.contains("must be an array"),
        "{t}"
    );
}

#[test]
fn explain_uses_the_files_now_without_at() {
    let (ok, t) = explain(
        &REQUEST.replace("[[case]]\n", "[[case]]\nnow = 2026-03-15T10:00:00Z\n"),
        None,
    );
    assert!(ok, "{t}");
    assert!(t.contains("at 2026-03-15T10:00:00Z"), "{t}");
    assert!(t.contains("decision: allow (PERMITTED)"), "{t}");
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
