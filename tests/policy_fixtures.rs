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
