//! `ketenpoort pki init|issue` as a user runs them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use ketenpoort::identity::{DevPki, party_id_from_cert_der};

const PARTIES: &str = r#"
[[party]]
id = "pz-gent"
name = "Politiezone Gent"
roles = ["police"]
organisation = "pz-gent"
contact_point = "Cel Intrafamiliaal Geweld"

[[party]]
id = "caw-oost-vlaanderen"
name = "CAW Oost-Vlaanderen"
roles = ["care-provider"]
organisation = "caw-oost-vlaanderen"
contact_point = "Onthaal"
"#;

fn ketenpoort(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn pki_init_then_issue_then_force() {
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    std::fs::create_dir(cwd.join("policies")).unwrap();
    std::fs::write(cwd.join("policies/parties.toml"), PARTIES).unwrap();

    // Defaults: --dir pki, --policies policies, relative to the working directory.
    let out = ketenpoort(&["pki", "init"], cwd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("pz-gent") && stdout.contains("caw-oost-vlaanderen"),
        "{stdout}"
    );
    assert!(stdout.contains("ca.pem"), "{stdout}");
    let pki = cwd.join("pki");
    let key_mode = std::fs::metadata(pki.join("parties/pz-gent.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let ca_before = std::fs::read(pki.join("ca.pem")).unwrap();

    let out = ketenpoort(&["pki", "init"], cwd);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(pki.join("ca.pem")).unwrap(), ca_before);

    let out = ketenpoort(&["pki", "issue", "--party", "coc"], cwd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let opened = DevPki::open(&pki).unwrap();
    let coc = opened.party("coc").unwrap().cert_der().unwrap();
    assert_eq!(party_id_from_cert_der(&coc).unwrap(), "coc");

    let out = ketenpoort(&["pki", "issue", "--party", "coc"], cwd);
    assert!(
        !out.status.success(),
        "a second certificate must not overwrite the first"
    );
    let out = ketenpoort(&["pki", "issue", "--party", "Not A Party"], cwd);
    assert!(!out.status.success());

    // A broken parties file makes --force refuse before it removes anything.
    std::fs::write(
        cwd.join("policies/parties.toml"),
        "[[party]]\nid = \"Bad Id\"\n",
    )
    .unwrap();
    let out = ketenpoort(&["pki", "init", "--force"], cwd);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(pki.join("ca.pem")).unwrap(), ca_before);

    std::fs::write(cwd.join("policies/parties.toml"), PARTIES).unwrap();
    let out = ketenpoort(&["pki", "init", "--force"], cwd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(pki.join("ca.pem")).unwrap(), ca_before);
    assert!(
        !pki.join("parties/coc.pem").exists(),
        "--force starts afresh"
    );
    assert!(pki.join("parties/pz-gent.pem").exists());
}

#[test]
fn pki_init_takes_explicit_directories_and_reports_a_missing_parties_file() {
    let work = tempfile::tempdir().unwrap();
    let policies = work.path().join("pol");
    std::fs::create_dir(&policies).unwrap();
    let dir = work.path().join("out/pki");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "pki".to_owned(),
            "init".to_owned(),
            "--dir".to_owned(),
            dir.display().to_string(),
            "--policies".to_owned(),
            policies.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let run = |extra: &[&'static str]| {
        Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
            .args(args(extra))
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("parties.toml"),
        "{}",
        text(&out.stderr)
    );
    assert!(!DevPki::exists(&dir));

    std::fs::write(policies.join("parties.toml"), PARTIES).unwrap();
    let out = run(&["--server-name", "gateway.test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("gateway.test"));
    assert!(
        DevPki::open(&dir)
            .unwrap()
            .party("caw-oost-vlaanderen")
            .is_ok()
    );
}
