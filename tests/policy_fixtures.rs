//! Runs the policy fixtures inside `cargo test`: the engine's mini set, and the shipped set.

use std::path::Path;

use ketenpoort::policy::{PolicySet, load_fixtures};

fn run(dir: &Path) -> (usize, Vec<String>) {
    let set = PolicySet::load(dir).unwrap_or_else(|e| panic!("{e}: {:#?}", e.problems));
    let cases =
        load_fixtures(&dir.join("tests")).unwrap_or_else(|e| panic!("{e}: {:#?}", e.problems));
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(diff) = c.check(&set) {
            failures.push(format!("{} ({}):\n{diff}", c.name, c.location));
        }
    }
    (cases.len(), failures)
}

#[test]
fn mini_set_fixtures_all_pass() {
    let (n, failures) = run(Path::new("tests/data/policy-mini"));
    assert!(n >= 15, "only {n} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_policy_set_fixtures_all_pass() {
    let (n, failures) = run(Path::new("policies"));
    assert!(n >= 60, "only {n} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_policy_set_loads_without_warnings_and_has_a_stable_digest() {
    let a = PolicySet::load(Path::new("policies")).expect("shipped set loads");
    let b = PolicySet::load(Path::new("policies")).expect("shipped set loads");
    assert_eq!(a.digest(), b.digest());
    assert!(a.agreements().count() >= 7);
}
