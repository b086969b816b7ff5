//! Load-time checks of what the law requires of a set as a whole: special categories rest on a
//! legal basis that allows them, and an agreement's minimisation ceilings hold across its rules.
//!
//! Both are checked once, when the set loads, so that no decision can ever release what they
//! exclude: a set that breaks them does not load.

use super::bits::Bits;
use super::compile::{CompiledRule, CounterpartSet};
use super::diagnostic::{Problem, SourceFile};
use super::load::Origin;
use super::model::{Effect, Sensitivity};
use super::request::ExchangeKind;
use super::set::PolicySet;
use super::transform::Transform;

/// Every problem of the set's lawfulness checks.
pub(crate) fn check(set: &PolicySet, origins: &[Origin], files: &[SourceFile]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (ri, rule) in set.rules.iter().enumerate() {
        if rule.effect != Effect::Permit {
            continue;
        }
        special_categories(set, rule, &origins[ri], files, &mut problems);
        ceilings(set, rule, &origins[ri], files, &mut problems);
    }
    problems
}

fn kinds_of(rule: &CompiledRule) -> impl Iterator<Item = ExchangeKind> + '_ {
    super::request::ALL_KINDS
        .into_iter()
        .filter(|k| rule.kinds & (1 << k.index()) != 0)
}

/// Every counterpart the rule can match, over all its requesters.
fn counterparts(set: &PolicySet, rule: &CompiledRule) -> Bits {
    match &rule.counterpart {
        CounterpartSet::Parties(b) => b.clone(),
        CounterpartSet::SameOrganisation => {
            let mut all = Bits::new(set.parties.len());
            for r in rule.requester.iter() {
                for c in rule.counterparts_for(set, r).iter() {
                    all.insert(c);
                }
            }
            all
        }
    }
}

/// Which side of an exchange a set of parties is taken from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Who holds the data: the holder asked (lookup, request), the sender (share), or the party
    /// an audited entry names (audit), as a decision counts them.
    Holder,
    /// Who receives it: the requester (lookup, request, audit) or the counterpart (share).
    Recipient,
}

/// Every party a rule's exchanges can have on `side`, over all its kinds.
fn parties_on(set: &PolicySet, rule: &CompiledRule, side: Side) -> Bits {
    let mut out = Bits::new(set.parties.len());
    for k in kinds_of(rule) {
        // The requester holds what it shares, and receives what it asks for.
        let requester_side = (k == ExchangeKind::Share) == (side == Side::Holder);
        let parties = if requester_side {
            rule.requester.clone()
        } else {
            counterparts(set, rule)
        };
        for p in parties.iter() {
            out.insert(p);
        }
    }
    out
}

fn at(origin: &Origin, k: usize) -> std::ops::Range<usize> {
    origin
        .release_spans
        .get(k)
        .cloned()
        .unwrap_or(origin.span.clone())
}

/// A permit that releases a special-category or judicial field (in any form but `drop`, since
/// even whether a value exists is health data at a health holder) must rest on a legal basis
/// that allows that category.
fn special_categories(
    set: &PolicySet,
    rule: &CompiledRule,
    origin: &Origin,
    files: &[SourceFile],
    problems: &mut Vec<Problem>,
) {
    let agreement = &set.agreements[rule.agreement];
    let allowed = |s: Sensitivity| {
        agreement
            .legal_basis
            .iter()
            .any(|b| set.legal_basis(b).is_some_and(|lb| lb.allows.contains(&s)))
    };
    let holders = parties_on(set, rule, Side::Holder);
    let nf = set.fields.len();
    for (k, &(fi, form)) in rule.release.iter().enumerate() {
        if form == Transform::Drop {
            continue;
        }
        let field = &set.fields[fi];
        // Each holder on its own: a category that one holder raises the field to needs its own
        // allowing basis, whatever another holder raises it to.
        let unlawful = std::iter::once((field.sensitivity, None))
            .chain(
                holders
                    .iter()
                    .map(|h| (set.sensitivity[h * nf + fi], Some(h))),
            )
            .find(|(s, _)| *s != Sensitivity::Ordinary && !allowed(*s));
        let Some((worst, raised_by)) = unlawful else {
            continue;
        };
        let raised_by = raised_by.filter(|_| worst != field.sensitivity);
        let (category, article) = match worst {
            Sensitivity::Judicial => ("judicial data", "art. 10"),
            _ => ("a special category", "art. 9(2)"),
        };
        let why = match raised_by {
            Some(h) => format!(
                " at `{}` (raise_sensitivity in parties.toml)",
                set.parties[h].id
            ),
            None => String::new(),
        };
        problems.push(Problem::at(
            &files[origin.file],
            at(origin, k),
            format!(
                "{} releases `{}`, which is {category}{why}, but no legal basis of agreement `{}` allows {}",
                rule.rref,
                field.id,
                agreement.id,
                worst.as_str()
            ),
            Some(format!(
                "rest the agreement on a legal basis with allows = [\"{}\"] in vocabulary.toml (a GDPR {article} ground), or do not release the field",
                worst.as_str()
            )),
        ));
    }
}

/// No rule of an agreement releases a field to a recipient above the agreement's ceiling for it.
fn ceilings(
    set: &PolicySet,
    rule: &CompiledRule,
    origin: &Origin,
    files: &[SourceFile],
    problems: &mut Vec<Problem>,
) {
    let agreement = &set.agreements[rule.agreement];
    if agreement.ceilings.is_empty() {
        return;
    }
    let recipients = parties_on(set, rule, Side::Recipient);
    for ceiling in &agreement.ceilings {
        let Some(fi) = set.field_ix.get(&ceiling.field) else {
            continue;
        };
        let Some(k) = rule.release.iter().position(|(f, _)| *f == fi) else {
            continue;
        };
        let form = rule.release[k].1;
        if set.fields[fi].ty.at_least(ceiling.form, form) == Some(true) {
            continue;
        }
        let Some(bound) = recipients
            .iter()
            .find(|&p| ceiling.recipient.matches_party(&set.parties[p]))
        else {
            continue;
        };
        problems.push(Problem::at(
            &files[origin.file],
            at(origin, k),
            format!(
                "{} releases `{}` as `{form}` to `{}`, above the agreement's ceiling `{}` for that recipient",
                rule.rref, ceiling.field, set.parties[bound].id, ceiling.form
            ),
            Some(format!(
                "release it as `{}` or less to such recipients, or narrow the rule's parties",
                ceiling.form
            )),
        ));
    }
}
