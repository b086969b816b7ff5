//! Black-box tests of `ketenpoort demo`: the binary plays the whole story over mutual TLS, prints
//! the decisive lines, never prints a national register number, keeps a data directory that
//! `ketenpoort audit verify` accepts, and exits 1 when a step comes out differently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ketenpoort::identity::subject::check_digits;

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn ketenpoort(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

fn demo(extra: &[&str], policies: &Path, cwd: &Path) -> Output {
    let policies = policies.to_str().expect("utf-8 path");
    let mut args = vec!["demo", "--policies", policies];
    args.extend_from_slice(extra);
    ketenpoort(&args, cwd)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The lines of `stdout` that start (after indentation) with `label`.
fn lines_with<'a>(stdout: &'a str, label: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(label))
        .collect()
}

/// The synthetic national register numbers of the story's people, built as the demo builds them.
fn story_numbers() -> Vec<String> {
    [
        (910_412_146, false),
        (881_103_127, false),
        (170_921_084, true),
        (40_209_233, true),
    ]
    .iter()
    .map(|&(first_nine, born_2000)| {
        format!("{first_nine:09}{:02}", check_digits(first_nine, born_2000))
    })
    .collect()
}

#[test]
fn the_story_plays_end_to_end_and_the_auditor_verifies_it() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let out = demo(&[], &policies(), cwd.path());
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        text(&out.stderr)
    );

    // Act 1: the CGG shows as a bare hit.
    assert!(stdout.contains("(anonymous)           hit only: no holder, no contact point"));
    // Act 2: the over-shared diagnosis is stripped, the address and birth date coarsened.
    let stripped = lines_with(&stdout, "stripped");
    assert!(
        stripped.iter().any(|l| l.contains("health.diagnosis")),
        "{stripped:?}"
    );
    let police_see = stdout.split("GetResult").nth(1).expect("a GetResult step");
    assert!(police_see.contains("subject.address                  municipality  \"Gent\""));
    assert!(police_see.contains("subject.birth_date               year          \"1991\""));
    assert!(!police_see.contains("post-traumatic"));
    // Act 3: the referral arrives without the address.
    assert!(stdout.contains("subject.birth_date               year_month    \"1991-04\""));
    assert!(stripped.iter().any(|l| l.contains("subject.address")));
    // Acts 4-6: the refusals, with codes and reasons.
    assert_eq!(
        lines_with(&stdout, "decision    REFUSED PERMISSION_DENIED FORBIDDEN").len(),
        2
    );
    assert_eq!(
        lines_with(
            &stdout,
            "decision    REFUSED FAILED_PRECONDITION CASE_REQUIRED"
        )
        .len(),
        1
    );
    assert_eq!(
        lines_with(
            &stdout,
            "decision    REFUSED PERMISSION_DENIED JUSTIFICATION_REQUIRED"
        )
        .len(),
        1
    );
    assert!(stdout.contains("retention 7 days, flagged for review, holder's DPO notified"));
    // Act 6: necessity is the holder's call, answered only with its own written weighing.
    assert_eq!(
        lines_with(&stdout, "decision    REFUSED INVALID_ARGUMENT").len(),
        1
    );
    assert!(stdout.contains("necessity: an answer must carry the CAW's own written weighing"));
    // Act 7: the CAW's DPO reviews it against the signed commitments, and her queue empties.
    assert!(stdout.contains("both texts open the salted commitments in the signed entries"));
    assert!(stdout.contains("RecordReview"));
    assert!(stdout.contains("0 item(s) left; the review is entry #"));
    // Act 7: the auditor's checks.
    assert!(stdout.contains("signature valid"));
    assert!(stdout.contains("root matches the checkpoint"));
    assert!(stdout.contains("as leaf hashes only; root recomputed"));
    assert!(stdout.contains("first checkpoint (size 1) -> last"));
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("demo complete: "))
        .expect("summary line");
    assert!(
        summary.contains(" exchanges, 5 refused, log size "),
        "{summary}"
    );
    assert!(summary.ends_with("receipts verified"), "{summary}");

    // Subjects appear only as pseudonyms.
    assert!(stdout.contains("psn:"));
    for number in story_numbers() {
        assert!(!stdout.contains(&number), "a national number was printed");
        assert!(!text(&out.stderr).contains(&number));
    }
    // Without --keep nothing is left in the working directory.
    assert_eq!(std::fs::read_dir(cwd.path()).expect("cwd").count(), 0);
}

#[test]
fn a_kept_data_dir_verifies_and_is_not_reused() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let kept = cwd.path().join("kept");
    let kept_arg = kept.to_str().expect("utf-8 path");
    let out = demo(&["--keep", kept_arg], &policies(), cwd.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains(&format!("ketenpoort audit verify --data-dir {kept_arg}")));
    assert!(stdout.contains("ketenpoort serve --config"));

    let verify = ketenpoort(&["audit", "verify", "--data-dir", kept_arg], cwd.path());
    assert!(
        verify.status.success(),
        "audit verify refused the kept log: {}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let config = ketenpoort::config::Config::load(&kept.join("ketenpoort.toml"), true)
        .expect("the written config loads");
    assert_eq!(config.data_dir, kept);
    assert!(
        kept.join("pki")
            .join("parties")
            .join("pz-gent.pem")
            .exists()
    );

    // A second run into the same directory is refused before anything starts.
    let again = demo(&["--keep", kept_arg], &policies(), cwd.path());
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("not empty"));
}

#[test]
fn a_step_that_comes_out_differently_fails_the_demo() {
    // Without the network-wide health forbid, the police's request for a diagnosis inside the
    // case is no longer refused: the demo must notice and exit 1.
    let dir = tempfile::tempdir().expect("temp dir");
    let changed = dir.path().join("policies");
    copy_dir(&policies(), &changed);
    std::fs::remove_file(
        changed
            .join("agreements")
            .join("verbod-gezondheid-politie.toml"),
    )
    .expect("remove the forbid");
    let out = demo(&[], &changed, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("demo FAILED"), "{stderr}");
    assert!(stderr.contains("for health data"), "{stderr}");
    assert!(stderr.contains("expected refused with PERMISSION_DENIED FORBIDDEN, got an answer"));
    assert!(!text(&out.stdout).contains("demo complete"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
