//! Properties of the decision engine, checked on generated policy sets:
//! 1. no field is released unless a matching permit names it;
//! 2. a matching forbid always denies;
//! 3. shuffling rules and files changes neither a decision nor the digest;
//! 4. a released form is never more revealing than the permitting rule (or the request) allows;
//! 5. no permit matches through a case whose purpose is neither the request's purpose nor above
//!    it (generated set and shipped set);
//! 6. no special-category or judicial field is released under an agreement none of whose legal
//!    bases allows that category, counting the holder's raised sensitivities (shipped set: the
//!    generated sets have only ordinary fields).

use std::path::Path;
use std::sync::OnceLock;

use ketenpoort::policy::generate::{GENERATED_NOW, Rng, generate, sample_requests};
use ketenpoort::policy::{
    ALL_KINDS, ALL_TRANSFORMS, Decision, Effect, ExchangeKind, ExchangeRequest, FieldRequest,
    FieldType, Fixture, Grounds, PolicySet, ReasonCode, Rule, Sensitivity, Verdict, load_fixtures,
    satisfied_grounds,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use time::OffsetDateTime;

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

/// The shipped policy set (`policies/`).
fn shipped() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        PolicySet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .unwrap_or_else(|e| panic!("{:#?}", e.problems))
    })
}

/// The shipped fixtures (`policies/tests/`).
fn shipped_fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        load_fixtures(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tests"))
            .unwrap_or_else(|e| panic!("{:#?}", e.problems))
    })
}

/// A justification that satisfies every urgency condition of the shipped set (length, words,
/// substance).
const JUSTIFICATION: &str = "Ernstig en dreigend gevaar: de moeder meldt dat haar partner gisteren met een mes \
     dreigde, de kinderen zijn thuis, wij kunnen haar niet zelf beschermen en er is geen andere weg meer.";

/// Every legal element the set knows, with a valid value (an enum's first value, a flag `true`).
fn all_elements(set: &PolicySet) -> Vec<(String, String)> {
    set.fields()
        .filter_map(|f| match f.ty {
            FieldType::Enum => Some((f.id.clone(), f.values.first()?.clone())),
            FieldType::Flag => Some((f.id.clone(), "true".to_owned())),
            _ => None,
        })
        .collect()
}

/// Requests on the shipped set, each with its grounds and decision time: every fixture as
/// written, every fixture once more with its requester, counterpart or kind changed at random
/// (its grounds extended with grounds that satisfy every condition for the changed parties),
/// and requests aimed at random rules with satisfied grounds.
fn shipped_requests(seed: u64) -> Vec<(ExchangeRequest, Grounds, OffsetDateTime)> {
    let set = shipped();
    let mut rng = Rng::new(seed ^ 0x5EED);
    let parties: Vec<&str> = set.parties().map(|p| p.id.as_str()).collect();
    let fields: Vec<&str> = set.fields().map(|f| f.id.as_str()).collect();
    let mut out = Vec::new();
    for f in shipped_fixtures() {
        out.push((f.request.clone(), f.grounds.clone(), f.now));
        let mut v = f.request.clone();
        match rng.below(4) {
            0 => v.requester = parties[rng.below(parties.len())].to_owned(),
            1 => v.counterpart = parties[rng.below(parties.len())].to_owned(),
            2 => v.kind = ALL_KINDS[rng.below(ALL_KINDS.len())],
            _ => v.fields.push(FieldRequest {
                field: fields[rng.below(fields.len())].to_owned(),
                form: None,
            }),
        }
        if rng.below(2) == 0 {
            v.justification = Some(JUSTIFICATION.to_owned());
            v.elements = all_elements(set);
        }
        let mut grounds = f.grounds.clone();
        let extra = satisfied_grounds(set, &v, f.now);
        grounds.cases.extend(extra.cases);
        grounds.consents.extend(extra.consents);
        out.push((v, grounds, f.now));
    }
    for (mut req, grounds) in sample_requests(set, 60, seed) {
        req.justification = Some(JUSTIFICATION.to_owned());
        out.push((req, grounds, GENERATED_NOW));
    }
    out
}

/// The matched permits of a decision that have the `case` condition.
fn case_rules_matched(set: &PolicySet, d: &Decision) -> Vec<String> {
    d.matched
        .iter()
        .filter(|r| r.effect == Effect::Permit)
        .filter(|r| {
            set.agreement(&r.agreement)
                .and_then(|a| a.rules.iter().find(|x| *x.id == *r.rule))
                .expect("a matched rule exists")
                .conditions
                .case
        })
        .map(|r| r.to_string())
        .collect()
}

/// Property 5 on one request: with every case ground's purpose rewritten to a purpose that is
/// neither the request's purpose nor an ancestor of it (a sibling, a descendant or another
/// branch), no permit with the `case` condition matches and no case is used as a ground.
fn no_case_outside_the_purpose(
    set: &PolicySet,
    req: &ExchangeRequest,
    grounds: &Grounds,
    now: OffsetDateTime,
    rng: &mut Rng,
) -> Result<(), TestCaseError> {
    let outside: Vec<&str> = set
        .purposes()
        .map(|p| p.id.as_str())
        .filter(|p| !set.purpose_within(&req.purpose, p))
        .collect();
    if outside.is_empty() || grounds.cases.is_empty() {
        return Ok(());
    }
    let mut grounds = grounds.clone();
    for case in &mut grounds.cases {
        case.purpose = outside[rng.below(outside.len())].to_owned();
    }
    let d = set.decide(req, &grounds, now);
    let through_case = case_rules_matched(set, &d);
    prop_assert!(
        through_case.is_empty(),
        "{:?} matched for purpose {} through cases for {:?}",
        through_case,
        req.purpose,
        grounds.cases.iter().map(|c| &c.purpose).collect::<Vec<_>>()
    );
    prop_assert!(d.ground_refs.iter().all(|g| !g.starts_with("case:")));
    Ok(())
}

/// What property 6 met in one decision: (special grants, judicial grants, raised grants).
type Met = (usize, usize, usize);

/// Property 6 on one request: every special or judicial field granted (its sensitivity at the
/// holder: the counterpart of a lookup or request, the sender of a share) is granted by a rule
/// whose agreement has a legal basis that allows that category; the decision flags the special
/// category, and a special field released to the police is always reviewed.
fn special_rests_on_an_allowing_basis(
    set: &PolicySet,
    req: &ExchangeRequest,
    grounds: &Grounds,
    now: OffsetDateTime,
) -> Result<Met, TestCaseError> {
    let d = set.decide(req, grounds, now);
    let mut met = (0, 0, 0);
    if !d.is_allowed() {
        return Ok(met);
    }
    let holder = match req.kind {
        ExchangeKind::Share => Some(req.requester.as_str()),
        ExchangeKind::Lookup | ExchangeKind::Request => Some(req.counterpart.as_str()),
        // An audit read releases the gateway's own log, which no party holds.
        ExchangeKind::Audit => None,
    };
    let police = set
        .party(req.recipient())
        .is_some_and(|p| p.roles.iter().any(|r| r == "police"));
    for g in &d.fields {
        let catalogue = set
            .field(&g.field)
            .expect("granted field is in the catalogue");
        let s = match holder {
            Some(h) => set
                .sensitivity_at(h, &g.field)
                .expect("known holder and field"),
            None => catalogue.sensitivity,
        };
        prop_assert!(s >= catalogue.sensitivity);
        if s == Sensitivity::Ordinary {
            continue;
        }
        let a = set
            .agreement(&g.rule.agreement)
            .expect("granting agreement exists");
        prop_assert!(
            a.legal_basis
                .iter()
                .any(|b| set.legal_basis(b).is_some_and(|lb| lb.allows.contains(&s))),
            "{} releases {} ({}) at {:?} to {}, but no legal basis of {} ({:?}) allows it",
            g.rule,
            g.field,
            s.as_str(),
            holder,
            req.recipient(),
            a.id,
            a.legal_basis
        );
        prop_assert!(d.obligations.special_category);
        if s == Sensitivity::Special && police {
            prop_assert!(
                d.obligations.review,
                "special data to the police unreviewed"
            );
        }
        match s {
            Sensitivity::Special => met.0 += 1,
            _ => met.1 += 1,
        }
        if s > catalogue.sensitivity {
            met.2 += 1;
        }
    }
    Ok(met)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn no_permit_matches_through_a_case_outside_the_purpose(seed in any::<u64>()) {
        let mut rng = Rng::new(seed ^ 0xCA5E);
        let generated = set();
        for (req, grounds) in requests(seed) {
            no_case_outside_the_purpose(generated, &req, &grounds, GENERATED_NOW, &mut rng)?;
        }
        let shipped = shipped();
        for (req, grounds, now) in shipped_requests(seed) {
            no_case_outside_the_purpose(shipped, &req, &grounds, now, &mut rng)?;
        }
    }

    #[test]
    fn no_special_or_judicial_release_without_an_allowing_basis(seed in any::<u64>()) {
        let set = shipped();
        for (req, grounds, now) in shipped_requests(seed) {
            special_rests_on_an_allowing_basis(set, &req, &grounds, now)?;
        }
    }
}

/// Properties 5 and 6 are only meaningful if their requests reach what they guard: permits that
/// match through a case (with the case's purpose left as it is), and special, judicial and
/// raised-sensitivity releases.
#[test]
fn case_and_special_properties_are_not_vacuous() {
    let generated = set();
    let through_case = (1..20)
        .flat_map(requests)
        .filter(|(r, g)| {
            !case_rules_matched(generated, &generated.decide(r, g, GENERATED_NOW)).is_empty()
        })
        .count();
    assert!(through_case > 0, "no generated request matched a case rule");

    let shipped = shipped();
    let requests: Vec<_> = (1..4).flat_map(shipped_requests).collect();
    let through_case = requests
        .iter()
        .filter(|(r, g, now)| !case_rules_matched(shipped, &shipped.decide(r, g, *now)).is_empty())
        .count();
    assert!(through_case > 0, "no shipped request matched a case rule");

    let mut total = (0, 0, 0);
    for (r, g, now) in &requests {
        let met = special_rests_on_an_allowing_basis(shipped, r, g, *now)
            .unwrap_or_else(|e| panic!("{e}"));
        total = (total.0 + met.0, total.1 + met.1, total.2 + met.2);
    }
    let (special, judicial, raised) = total;
    assert!(special > 0, "no special-category release reached");
    assert!(judicial > 0, "no judicial release reached");
    assert!(raised > 0, "no release of a raised sensitivity reached");
}
