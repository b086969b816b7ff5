//! A straightforward reference evaluation (every rule, no index, no caches), kept beside the
//! tuned `decide` so tests can check on generated sets that both give identical decisions.

use time::OffsetDateTime;

use super::decide::{Check, Ctx, NO_PERMIT, Used};
use super::decision::{Decision, FieldGrant, Obligations, ReasonCode, RuleRef, Verdict};
use super::model::Effect;
use super::request::{ExchangeRequest, Grounds};
use super::set::PolicySet;
use super::transform::Transform;

/// Decides by scanning every rule in canonical order with `Ctx::matches` and `Ctx::holds`.
pub(crate) fn decide(
    set: &PolicySet,
    req: &ExchangeRequest,
    grounds: &Grounds,
    now: OffsetDateTime,
) -> Decision {
    let ctx = match Ctx::new(set, req, grounds, now) {
        Ok(c) => c,
        Err(reason) => return Decision::deny(reason, set.digest),
    };
    let mut wanted: Vec<(usize, Option<Transform>)> = Vec::new();
    for f in &req.fields {
        let Some(fi) = set.fields.iter().position(|d| d.id == f.field) else {
            return Decision::deny(ReasonCode::EvaluationError, set.digest);
        };
        if f.form.is_some_and(|t| !set.fields[fi].ty.supports(t)) {
            return Decision::deny(ReasonCode::EvaluationError, set.digest);
        }
        if !wanted.iter().any(|(w, _)| *w == fi) {
            wanted.push((fi, f.form));
        }
    }
    let matching_rules: Vec<usize> = (0..set.rules.len())
        .filter(|&ri| ctx.matches(&set.rules[ri]).is_ok())
        .collect();

    let mut removed: Vec<usize> = Vec::new();
    let mut trimmed_by: Vec<RuleRef> = Vec::new();
    let mut denied_by: Vec<RuleRef> = Vec::new();
    for &ri in &matching_rules {
        let rule = &set.rules[ri];
        if rule.effect != Effect::Forbid || ctx.holds(rule).is_err() {
            continue;
        }
        match &rule.forbidden {
            None => denied_by.push(rule.rref.clone()),
            Some(list) if wanted.iter().any(|(w, _)| list.contains(w)) => {
                denied_by.push(rule.rref.clone())
            }
            Some(list) => {
                removed.extend_from_slice(list);
                trimmed_by.push(rule.rref.clone());
            }
        }
    }
    if !denied_by.is_empty() {
        let mut d = Decision::deny(ReasonCode::Forbidden, set.digest);
        d.matched = denied_by;
        return d;
    }

    let mut matching: Vec<(usize, Used)> = Vec::new();
    let mut best: (u8, ReasonCode) = (NO_PERMIT, ReasonCode::NoMatchingPermit);
    let mut missing = None;
    for &ri in &matching_rules {
        let rule = &set.rules[ri];
        if rule.effect != Effect::Permit {
            continue;
        }
        match ctx.holds(rule) {
            Ok(used) => matching.push((ri, used)),
            Err(check) => {
                let r = check.reason();
                if r.0 < best.0 {
                    best = r;
                    missing = (check == Check::Element)
                        .then(|| ctx.missing_element(&rule.elements))
                        .flatten();
                }
            }
        }
    }
    if matching.is_empty() {
        let mut d = Decision::deny(best.1, set.digest);
        d.missing_element = missing.map(|fi| set.fields[fi].id.clone());
        return d;
    }

    let mut fields = Vec::new();
    let mut obligations = Obligations::default();
    for &(fi, requested) in &wanted {
        if removed.contains(&fi) {
            continue;
        }
        let def = &set.fields[fi];
        let mut allowed: Option<(Transform, usize)> = None;
        for &(ri, _) in &matching {
            let Some(&(_, form)) = set.rules[ri].release.iter().find(|(f, _)| *f == fi) else {
                continue;
            };
            allowed = match allowed {
                None => Some((form, ri)),
                Some((cur, cri)) => match def.ty.at_least(form, cur) {
                    Some(true) if form != cur => Some((form, ri)),
                    Some(_) => Some((cur, cri)),
                    None => return Decision::deny(ReasonCode::EvaluationError, set.digest),
                },
            };
        }
        let Some((form, ri)) = allowed else { continue };
        let form = match requested {
            None => form,
            Some(r) if r == form => form,
            Some(r) => def.ty.meet(r, form, &def.transforms),
        };
        if form != Transform::Drop {
            let (special, review) = ctx.sensitivity_of(fi);
            obligations.special_category |= special;
            obligations.review |= review;
            fields.push(FieldGrant {
                field: def.id.clone(),
                form,
                ty: def.ty,
                rule: set.rules[ri].rref.clone(),
            });
        }
    }
    let mut matched: Vec<RuleRef> = matching
        .iter()
        .map(|(ri, _)| set.rules[*ri].rref.clone())
        .collect();
    if fields.is_empty() {
        let mut d = Decision::deny(ReasonCode::NothingReleasable, set.digest);
        d.matched = matched;
        return d;
    }
    matched.extend(trimmed_by);

    let mut use_restriction = None;
    let mut legal_bases: Vec<String> = Vec::new();
    let mut ground_refs: Vec<String> = Vec::new();
    for (ri, used) in &matching {
        let rule = &set.rules[*ri];
        let o = rule.obligations;
        obligations.retention_days = match (obligations.retention_days, o.retention_days) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        obligations.review |= o.review || rule.conditions.urgency.is_some();
        obligations.notify |= o.notify;
        obligations.weighing |= rule.conditions.holder_weighing;
        if used.case.is_some() {
            super::decision::UseRestriction::add(
                &mut use_restriction,
                set.use_restrictions[rule.agreement].as_ref(),
            );
        }
        for lb in &set.agreements[rule.agreement].legal_basis {
            if !legal_bases.contains(lb) {
                legal_bases.push(lb.clone());
            }
        }
        let refs = used
            .case
            .map(|i| format!("case:{}", grounds.cases[i].id))
            .into_iter()
            .chain(
                used.consent
                    .map(|i| format!("consent:{}", grounds.consents[i].id)),
            );
        for r in refs {
            if !ground_refs.contains(&r) {
                ground_refs.push(r);
            }
        }
    }
    Decision {
        verdict: Verdict::Allow,
        reason: ReasonCode::Permitted,
        matched,
        fields,
        obligations,
        legal_bases,
        ground_refs,
        policy_digest: set.digest,
        missing_element: None,
        use_restriction,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use time::Duration;

    use super::super::generate::{GENERATED_NOW, Rng, generate, sample_requests};
    use super::super::request::FieldRequest;
    use super::super::transform::ALL_TRANSFORMS;
    use super::*;

    /// Variations of a request and its grounds that reach every branch of `decide`: missing
    /// or stale grounds, short justifications, requested forms, duplicate and unknown fields,
    /// unknown parties and purposes, and times outside the generated windows.
    fn variants(
        rng: &mut Rng,
        req: &ExchangeRequest,
        grounds: &Grounds,
    ) -> Vec<(ExchangeRequest, Grounds, OffsetDateTime)> {
        let mut out = vec![(req.clone(), grounds.clone(), GENERATED_NOW)];
        let mut g = grounds.clone();
        match rng.below(4) {
            0 => g.cases.clear(),
            1 => g.consents.clear(),
            2 => {
                g.cases.clear();
                g.consents.clear();
            }
            _ => {
                for c in &mut g.consents {
                    c.revoked = Some(GENERATED_NOW - Duration::days(1));
                }
                for c in &mut g.cases {
                    c.closed = Some(GENERATED_NOW);
                }
            }
        }
        let mut r = req.clone();
        if rng.below(2) == 0 {
            r.justification = Some("  too short  ".to_owned());
        }
        for f in &mut r.fields {
            if rng.below(3) == 0 {
                f.form = Some(ALL_TRANSFORMS[rng.below(ALL_TRANSFORMS.len())]);
            }
        }
        if let Some(f) = r.fields.first().cloned() {
            r.fields.push(FieldRequest {
                field: f.field,
                form: Some(ALL_TRANSFORMS[rng.below(ALL_TRANSFORMS.len())]),
            });
        }
        out.push((r.clone(), g.clone(), GENERATED_NOW));
        let when = [
            time::macros::datetime!(2024-12-31 23:59:59.999999999 UTC),
            time::macros::datetime!(2025-03-01 00:00 UTC),
            time::macros::datetime!(2027-12-31 00:00 UTC),
            time::macros::datetime!(2028-01-01 00:00 UTC),
        ][rng.below(4)];
        out.push((req.clone(), grounds.clone(), when));
        let mut odd = req.clone();
        match rng.below(4) {
            0 => odd.requester = "party-unknown".to_owned(),
            1 => odd.purpose = "purpose-unknown".to_owned(),
            2 => odd.fields.push(FieldRequest {
                field: "f.unknown".to_owned(),
                form: None,
            }),
            _ => odd.justification = None,
        }
        out.push((odd, g, GENERATED_NOW));
        out
    }

    fn compare(set: &PolicySet, cases: &[(ExchangeRequest, Grounds, OffsetDateTime)]) -> usize {
        let mut reasons: HashMap<ReasonCode, usize> = HashMap::new();
        for (i, (req, grounds, now)) in cases.iter().enumerate() {
            let want = decide(set, req, grounds, *now);
            let got = set.decide(req, grounds, *now);
            assert_eq!(got, want, "case {i}: {req:?} at {now}");
            *reasons.entry(got.reason).or_default() += 1;
        }
        reasons.len()
    }

    #[test]
    fn decide_equals_the_reference_on_generated_sets() {
        for (rules, content, seed) in [(1000, 1, 9), (300, 42, 3), (100, 7, 5)] {
            let set = PolicySet::from_sources("generated", generate(rules, content, 0))
                .unwrap_or_else(|e| panic!("{:#?}", e.problems));
            let mut rng = Rng::new(seed);
            let cases: Vec<_> = sample_requests(&set, 400, seed)
                .iter()
                .flat_map(|(r, g)| variants(&mut rng, r, g))
                .collect();
            let reasons = compare(&set, &cases);
            assert!(reasons >= 8, "only {reasons} reason codes reached");
        }
    }

    #[test]
    fn decide_equals_the_reference_on_the_shipped_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = PolicySet::load(&dir).unwrap_or_else(|e| panic!("{:#?}", e.problems));
        let mut rng = Rng::new(11);
        let cases: Vec<_> = super::super::fixture::load_fixtures(&dir.join("tests"))
            .unwrap_or_else(|e| panic!("{e:?}"))
            .iter()
            .flat_map(|c| {
                let mut v = variants(&mut rng, &c.request, &c.grounds);
                v.push((c.request.clone(), c.grounds.clone(), c.now));
                v
            })
            .collect();
        assert!(compare(&set, &cases) >= 6);
    }
}
