//! Load diagnostics: each kind of mistake is reported at file:line:column, all at once.

use std::path::{Path, PathBuf};

use ketenpoort::policy::{LoadError, PolicySet};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy file");
        }
    }
}

/// Copies the mini set, applies text edits, and loads it.
fn load_with(edits: &[(&str, &str, &str)]) -> (Result<PolicySet, LoadError>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().join("p");
    copy_dir(Path::new("tests/data/policy-mini"), &dir);
    for (file, from, to) in edits {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{from} not in {file}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    }
    (PolicySet::load(&dir), tmp)
}

/// The problems as `relative/file:line:col: message` lines.
fn problems(edits: &[(&str, &str, &str)]) -> Vec<String> {
    let (r, tmp) = load_with(edits);
    let prefix = format!("{}/", tmp.path().join("p").display());
    match r {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| p.to_string().replace(&prefix, ""))
            .collect(),
    }
}

fn assert_one(edits: &[(&str, &str, &str)], location: &str, needle: &str) {
    let ps = problems(edits);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert!(ps[0].starts_with(location), "{ps:#?}");
    assert!(ps[0].contains(needle), "{ps:#?}");
}

#[test]
fn the_mini_set_loads_clean() {
    assert!(problems(&[]).is_empty());
}

#[test]
fn unknown_key() {
    assert_one(
        &[(
            "parties.toml",
            "name = \"CGG Eclips\"",
            "name = \"CGG Eclips\"\ncolour = \"red\"",
        )],
        "parties.toml:21:1",
        "unknown field `colour`",
    );
}

#[test]
fn unknown_field_in_a_release_list() {
    assert_one(
        &[(
            "agreements/referral.toml",
            "field = \"subject.address\"",
            "field = \"subject.adres\"",
        )],
        "agreements/referral.toml:24:9",
        "unknown field `subject.adres` in release list",
    );
}

#[test]
fn unknown_party_role_purpose_and_legal_basis_all_at_once() {
    let ps = problems(&[
        (
            "agreements/lookup.toml",
            "owner = \"pz-gent\"",
            "owner = \"pz-nergens\"",
        ),
        (
            "agreements/lookup.toml",
            "roles = [\"police\"]",
            "roles = [\"polis\"]",
        ),
        (
            "agreements/lookup.toml",
            "[\"protection-integrity\"]",
            "[\"nosiness\"]",
        ),
        ("agreements/health.toml", "[\"sw-458ter\"]", "[\"sw-999\"]"),
    ]);
    assert_eq!(ps.len(), 4, "{ps:#?}");
    assert!(ps[0].starts_with("agreements/health.toml:4:16: unknown legal basis `sw-999`"));
    assert!(ps[1].starts_with("agreements/lookup.toml:3:9: unknown party `pz-nergens`"));
    assert!(ps[2].starts_with("agreements/lookup.toml:11:24: unknown role `polis`"));
    assert!(ps[3].starts_with("agreements/lookup.toml:13:13: unknown purpose `nosiness`"));
}

#[test]
fn transform_the_type_does_not_allow() {
    assert_one(
        &[(
            "agreements/casusoverleg.toml",
            "form = \"year\"",
            "form = \"initials\"",
        )],
        "agreements/casusoverleg.toml:21:8",
        "is a date, which cannot be released as `initials`",
    );
}

#[test]
fn malformed_date() {
    assert_one(
        &[(
            "agreements/lookup.toml",
            "valid_from = 2025-01-01",
            "valid_from = \"1 Jan 2025\"",
        )],
        "agreements/lookup.toml:5:14",
        "datetime",
    );
    assert_one(
        &[(
            "agreements/lookup.toml",
            "valid_from = 2025-01-01",
            "valid_from = 2025-02-30",
        )],
        "agreements/lookup.toml:5:",
        "TOML syntax",
    );
}

#[test]
fn duplicate_ids() {
    assert_one(
        &[(
            "vocabulary.toml",
            "title = \"Supervisory body\"",
            "title = \"Supervisory body\"\n\n[[role]]\nid = \"police\"\ntitle = \"again\"",
        )],
        "vocabulary.toml:26:6",
        "duplicate role id `police`",
    );
}

#[test]
fn unorderable_forms_in_rules_that_can_match_one_exchange() {
    let extra = "\n[[rule]]\nid = \"names\"\neffect = \"permit\"\nkinds = [\"request\"]\nrequester = { roles = [\"police\"] }\ncounterpart = { roles = [\"social-service\"] }\npurposes = [\"protection-integrity\"]\n\n[[rule.release]]\nfield = \"subject.name\"\nform = \"pseudonym\"\n";
    let ps = problems(&[(
        "agreements/lookup.toml",
        "form = \"keep\"",
        &format!("form = \"keep\"\n{extra}"),
    )]);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert!(ps[0].contains("cannot be ordered"), "{ps:#?}");
    assert!(
        ps[0].contains("casusoverleg/police-asks-caw-more"),
        "{ps:#?}"
    );
    // The same rule for another purpose cannot match the same exchange: no error.
    let disjoint = extra.replace("protection-integrity", "referral-assistance");
    let ps = problems(&[(
        "agreements/lookup.toml",
        "form = \"keep\"",
        &format!("form = \"keep\"\n{disjoint}"),
    )]);
    assert!(ps.is_empty(), "{ps:#?}");
}

#[test]
fn a_purpose_cycle_and_an_empty_selector() {
    let ps = problems(&[
        (
            "vocabulary.toml",
            "id = \"protection-integrity\"",
            "id = \"protection-integrity\"\nparent = \"intrafamily-violence\"",
        ),
        (
            "agreements/lookup.toml",
            "requester = { roles = [\"police\"] }",
            "requester = { roles = [] }",
        ),
    ]);
    assert!(ps.iter().any(|p| p.contains("cycle")), "{ps:#?}");
    assert!(
        ps.iter().any(|p| p.contains("must not be empty")),
        "{ps:#?}"
    );
}

#[test]
fn diagnostics_render_with_source_and_hint() {
    let (r, _tmp) = load_with(&[(
        "agreements/referral.toml",
        "field = \"subject.address\"",
        "field = \"subject.adres\"",
    )]);
    let e = r.expect_err("the set must not load");
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, &e)
        .expect("render");
    assert!(out.contains("subject.adres"), "{out}");
    assert!(out.contains("catalogue.toml"), "{out}");
}

#[test]
fn a_special_or_judicial_release_needs_a_legal_basis_that_allows_it() {
    assert_one(
        &[(
            "vocabulary.toml",
            "allows = [\"special\", \"judicial\"]\n",
            "",
        )],
        "agreements/signal-458bis.toml:19:9",
        "releases `signal.justification`, which is judicial data, but no legal basis of agreement `signal-458bis` allows judicial",
    );
}

#[test]
fn a_holder_raised_sensitivity_counts_for_the_legal_basis() {
    let raise = (
        "parties.toml",
        "contact_point = \"Secretariaat, Gent\"",
        "contact_point = \"Secretariaat, Gent\"\nraise_sensitivity = [{ fields = [\"reference.*\"], to = \"special\" }]",
    );
    // On a basis that allows special categories, the raised hit loads.
    assert!(problems(&[raise]).is_empty());
    assert_one(
        &[
            raise,
            ("agreements/lookup.toml", "[\"sw-458ter\"]", "[\"consent\"]"),
        ],
        "agreements/lookup.toml:16:9",
        "which is a special category at `cgg-eclips` (raise_sensitivity in parties.toml)",
    );
    assert_one(
        &[(
            "parties.toml",
            "contact_point = \"Secretariaat, Gent\"",
            "contact_point = \"Secretariaat, Gent\"\nraise_sensitivity = [{ fields = [\"nothing.*\"], to = \"special\" }]",
        )],
        "parties.toml:24:34",
        "`nothing.*` names no field of the catalogue",
    );
}

#[test]
fn a_ceiling_binds_every_rule_of_its_agreement() {
    let ceiling = "\n[[ceiling]]\nrecipient = { parties = [\"pz-gent\"] }\nfield = \"subject.birth_date\"\nform = \"year\"\n";
    assert_one(
        &[(
            "agreements/casusoverleg.toml",
            "reference = \"PK-OV/2025/01\"\n",
            &format!("reference = \"PK-OV/2025/01\"\n{ceiling}"),
        )],
        "agreements/casusoverleg.toml:51:9",
        "casusoverleg/police-asks-caw-more releases `subject.birth_date` as `year_month` to `pz-gent`, above the agreement's ceiling `year`",
    );
}

#[test]
fn a_case_rule_needs_the_agreements_case_consultation_with_an_instrument() {
    let block = std::fs::read_to_string("tests/data/policy-mini/agreements/casusoverleg.toml")
        .expect("read");
    let start = block.find("[case_consultation]").expect("the block");
    assert_one(
        &[("agreements/casusoverleg.toml", &block[start..], "")],
        "agreements/casusoverleg.toml:8:1",
        "rule `police-asks-care` needs a case, but the agreement has no [case_consultation]",
    );
    assert_one(
        &[(
            "agreements/casusoverleg.toml",
            "kind = \"prosecutor-authorisation\"",
            "kind = \"gentlemens-agreement\"",
        )],
        "agreements/casusoverleg.toml:69:8",
        "unknown instrument kind `gentlemens-agreement`",
    );
}

#[test]
fn each_holders_raised_category_needs_its_own_allowing_basis() {
    // CAW raises the field to special, the CGG to judicial; the basis allows judicial only. The
    // CGG's judicial release is lawful, the CAW's special one is not.
    assert_one(
        &[
            (
                "vocabulary.toml",
                "allows = [\"special\", \"judicial\"]",
                "allows = [\"judicial\"]",
            ),
            (
                "parties.toml",
                "contact_point = \"Onthaal, Gent\"",
                "contact_point = \"Onthaal, Gent\"\nraise_sensitivity = [{ fields = [\"safety.children\"], to = \"special\" }]",
            ),
            (
                "parties.toml",
                "contact_point = \"Secretariaat, Gent\"",
                "contact_point = \"Secretariaat, Gent\"\nraise_sensitivity = [{ fields = [\"safety.children\"], to = \"judicial\" }]",
            ),
        ],
        "agreements/signal-458bis.toml:23:9",
        "which is a special category at `caw-ov`",
    );
}

#[test]
fn elements_and_a_weighing_only_on_the_kind_that_can_supply_them() {
    assert_one(
        &[(
            "agreements/signal-458bis.toml",
            "urgency = { min_justification = 40 }",
            "urgency = { min_justification = 40 }\nholder_weighing = true",
        )],
        "agreements/signal-458bis.toml:8:6",
        "a holder writes its weighing when it answers a request",
    );
    assert_one(
        &[(
            "agreements/casusoverleg.toml",
            "[rule.conditions]\ncase = true\n",
            "[rule.conditions]\ncase = true\nelements = [\"care.involvement\"]\n",
        )],
        "agreements/casusoverleg.toml:9:6",
        "legal elements are supplied with a share",
    );
}
