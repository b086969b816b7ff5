//! Properties of the decision engine, checked on generated policy sets:
//! 1. no field is released unless a matching permit names it;
//! 2. a matching forbid always denies;
//! 3. shuffling rules and files changes neither a decision nor the digest;
//! 4. a released form is never more revealing than the permitting rule (or the request) allows.

use std::sync::OnceLock;

use ketenpoort::policy::generate::{GENERATED_NOW, Rng, generate, sample_requests};
use ketenpoort::policy::{
    ALL_TRANSFORMS, Effect, ExchangeRequest, Grounds, PolicySet, ReasonCode, Rule, Verdict,
};
use proptest::prelude::*;

fn set() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        PolicySet::from_sources("generated", generate(300, 42, 0))
            .unwrap_or_else(|e| panic!("{:#?}", e.problems))
    })
}

/// Requests with random requested forms, some unsupported by the field type.
fn requests(seed: u64) -> Vec<(ExchangeRequest, Grounds)> {
    let mut rng = Rng::new(seed ^ 0xF00D);
    let mut reqs = sample_requests(set(), 40, seed);
    for (r, _) in &mut reqs {
        for f in &mut r.fields {
            if rng.below(3) == 0 {
                f.form = Some(ALL_TRANSFORMS[rng.below(ALL_TRANSFORMS.len())]);
            }
        }
    }
    reqs
}

/// A reference matcher written from the format doc, independent of the compiled index.
fn rule_matches(set: &PolicySet, req: &ExchangeRequest, agreement: &str, rule: &Rule) -> bool {
    let (Some(r), Some(c)) = (set.party(&req.requester), set.party(&req.counterpart)) else {
        return false;
    };
    let a = set
        .agreement(agreement)
        .expect("agreement of a rule exists");
    let counterpart_ok = if rule.counterpart.same_organisation {
        r.organisation == c.organisation
    } else {
        rule.counterpart.matches_party(c)
    };
    rule.kinds.contains(&req.kind)
        && rule.requester.matches_party(r)
        && counterpart_ok
        && (rule.any_purpose
            || rule
                .purposes
                .iter()
                .any(|p| set.purpose_within(&req.purpose, p)))
        && a.validity.contains(GENERATED_NOW)
        && rule.validity.contains(GENERATED_NOW)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_field_without_a_matching_permit_that_names_it(seed in any::<u64>()) {
        let set = set();
        for (req, grounds) in requests(seed) {
            let d = set.decide(&req, &grounds, GENERATED_NOW);
            for g in &d.fields {
                let a = set.agreement(&g.rule.agreement).expect("granting agreement exists");
                let rule = a.rules.iter().find(|r| *r.id == *g.rule.rule).expect("granting rule exists");
                prop_assert_eq!(rule.effect, Effect::Permit);
                prop_assert!(rule.release.iter().any(|x| x.field == g.field));
                prop_assert!(rule_matches(set, &req, &a.id, rule));
                prop_assert!(req.fields.iter().any(|f| f.field == g.field));
            }
            if d.verdict == Verdict::Deny {
                prop_assert!(d.fields.is_empty());
            }
        }
    }

    #[test]
    fn a_matching_forbid_always_denies(seed in any::<u64>()) {
        let set = set();
        for (req, grounds) in requests(seed) {
            let d = set.decide(&req, &grounds, GENERATED_NOW);
            if d.reason == ReasonCode::EvaluationError {
                continue;
            }
            for a in set.agreements() {
                for rule in a.rules.iter().filter(|r| r.effect == Effect::Forbid) {
                    if !rule_matches(set, &req, &a.id, rule) {
                        continue;
                    }
                    let hits = match &rule.forbidden_fields {
                        None => true,
                        Some(fs) => req.fields.iter().any(|f| fs.contains(&f.field)),
                    };
                    if hits {
                        prop_assert_eq!(d.verdict, Verdict::Deny);
                        prop_assert_eq!(d.reason, ReasonCode::Forbidden);
                    } else if let Some(fs) = &rule.forbidden_fields {
                        prop_assert!(d.fields.iter().all(|g| !fs.contains(&g.field)));
                    }
                }
            }
        }
    }

    #[test]
    fn released_forms_never_exceed_the_rule_or_the_request(seed in any::<u64>()) {
        let set = set();
        for (req, grounds) in requests(seed) {
            let d = set.decide(&req, &grounds, GENERATED_NOW);
            for g in &d.fields {
                let def = set.field(&g.field).expect("granted field is in the catalogue");
                let a = set.agreement(&g.rule.agreement).expect("agreement exists");
                let rule = a.rules.iter().find(|r| *r.id == *g.rule.rule).expect("rule exists");
                let allowed = rule.release.iter().find(|x| x.field == g.field).expect("named").form;
                prop_assert_eq!(def.ty.at_least(allowed, g.form), Some(true));
                if let Some(asked) = req.fields.iter().find(|f| f.field == g.field).and_then(|f| f.form) {
                    prop_assert_eq!(def.ty.at_least(asked, g.form), Some(true));
                }
                prop_assert!(def.transforms.contains(&g.form));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn shuffling_rules_and_files_changes_nothing(order in any::<u64>(), seed in any::<u64>()) {
        let a = PolicySet::from_sources("a", generate(100, 7, 0)).expect("generated set loads");
        let b = PolicySet::from_sources("b", generate(100, 7, order)).expect("generated set loads");
        prop_assert_eq!(a.digest(), b.digest());
        for (req, grounds) in sample_requests(&a, 100, seed) {
            prop_assert_eq!(
                a.decide(&req, &grounds, GENERATED_NOW),
                b.decide(&req, &grounds, GENERATED_NOW)
            );
        }
    }
}

/// The properties above are only meaningful if the generated requests hit every outcome.
#[test]
fn generated_requests_reach_every_main_outcome() {
    let set = set();
    let mut reasons = std::collections::HashSet::new();
    for (req, grounds) in requests(1).into_iter().chain((2..60).flat_map(requests)) {
        reasons.insert(set.decide(&req, &grounds, GENERATED_NOW).reason);
    }
    for r in [
        ReasonCode::Permitted,
        ReasonCode::Forbidden,
        ReasonCode::NoMatchingPermit,
        ReasonCode::EvaluationError,
    ] {
        assert!(reasons.contains(&r), "{r} never reached: {reasons:?}");
    }
}
