//! Compiling the model: dense indices, party and purpose bit sets, and the decision index
//! (kind × requester × counterpart → candidate rules), so `decide` never scans every rule.

use std::collections::HashMap;
use std::sync::Arc;

use super::bits::Bits;
use super::decision::{RuleRef, UseRestriction};
use super::diagnostic::{Problem, SourceFile};
use super::idmap::IdMap;
use super::index::DecisionIndex;
use super::load::Model;
use super::model::{Conditions, Effect, ObligationSpec, Selector, Sensitivity, Window};
use super::set::PolicySet;
use super::transform::Transform;

/// The role whose releases of special-category data are always flagged for review.
pub(crate) const POLICE_ROLE: &str = "police";

/// Which counterparts a rule matches.
#[derive(Debug, Clone)]
pub(crate) enum CounterpartSet {
    /// These parties.
    Parties(Bits),
    /// Any party in the requester's organisation.
    SameOrganisation,
}

/// A rule ready for evaluation.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub agreement: usize,
    pub rref: RuleRef,
    pub effect: Effect,
    /// Bit `k` set when the rule matches kind index `k`.
    pub kinds: u8,
    pub requester: Bits,
    pub counterpart: CounterpartSet,
    /// Bit `p` set when a request with purpose `p` matches.
    pub purposes: Bits,
    pub agreement_window: Window,
    pub rule_window: Window,
    pub conditions: Conditions,
    /// The legal elements the conditions require, as field indices in the order written.
    pub elements: Vec<usize>,
    /// (field index, most revealing form), sorted by field.
    pub release: Vec<(usize, Transform)>,
    /// Forbid only: field indices removed; `None` forbids the exchange.
    pub forbidden: Option<Vec<usize>>,
    pub obligations: ObligationSpec,
}

impl CompiledRule {
    /// Whether the rule matches this counterpart for this requester.
    #[inline]
    pub fn matches_counterpart(
        &self,
        set: &PolicySet,
        requester: usize,
        counterpart: usize,
    ) -> bool {
        match &self.counterpart {
            CounterpartSet::Parties(b) => b.contains(counterpart),
            CounterpartSet::SameOrganisation => set.org_mates[requester].contains(counterpart),
        }
    }

    /// The counterparts matched for a given requester.
    pub(crate) fn counterparts_for<'s>(&'s self, set: &'s PolicySet, requester: usize) -> &'s Bits {
        match &self.counterpart {
            CounterpartSet::Parties(b) => b,
            CounterpartSet::SameOrganisation => &set.org_mates[requester],
        }
    }
}

fn party_bits(model: &Model, sel: &Selector) -> Bits {
    let mut b = Bits::new(model.parties.len());
    for (i, p) in model.parties.iter().enumerate() {
        if sel.matches_party(p) {
            b.insert(i);
        }
    }
    b
}

/// Compiles a checked model; fails on forms that cannot be ordered in overlapping permits.
pub(crate) fn compile(model: Model, files: &[SourceFile]) -> Result<PolicySet, Vec<Problem>> {
    let np = model.parties.len();
    let party_ix: IdMap = model
        .parties
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    let org_mates: Vec<Bits> = model
        .parties
        .iter()
        .map(|p| {
            let mut b = Bits::new(np);
            for (j, q) in model.parties.iter().enumerate() {
                if q.organisation == p.organisation {
                    b.insert(j);
                }
            }
            b
        })
        .collect();
    let nu = model.purposes.len();
    let purpose_ix: IdMap = model
        .purposes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    // ancestors[p] = p and every ancestor of p (the tree is checked acyclic at load).
    let ancestors: Vec<Bits> = (0..nu)
        .map(|p| {
            let mut b = Bits::new(nu);
            let mut cur = Some(p);
            let mut guard = 0;
            while let Some(c) = cur {
                b.insert(c);
                guard += 1;
                cur = model.purposes[c]
                    .parent
                    .as_ref()
                    .and_then(|x| purpose_ix.get(x))
                    .filter(|_| guard <= nu);
            }
            b
        })
        .collect();
    let field_ix: IdMap = model
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.clone(), i))
        .collect();

    // Rule refs share one `Arc<str>` per distinct id: a decision clones them, and a few
    // shared reference counts stay in cache where one allocation per rule would not.
    let mut names: HashMap<String, Arc<str>> = HashMap::new();
    let mut intern = |s: &str| -> Arc<str> {
        if let Some(a) = names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        names.insert(s.to_owned(), a.clone());
        a
    };
    let mut rules = Vec::new();
    let mut origins = Vec::new();
    for (ai, a) in model.agreements.iter().enumerate() {
        for (ri, r) in a.rules.iter().enumerate() {
            let mut named = Bits::new(nu);
            for p in &r.purposes {
                if let Some(i) = purpose_ix.get(p) {
                    named.insert(i);
                }
            }
            let mut purposes = Bits::new(nu);
            for (p, anc) in ancestors.iter().enumerate() {
                if r.any_purpose || anc.intersects(&named) {
                    purposes.insert(p);
                }
            }
            rules.push(CompiledRule {
                agreement: ai,
                rref: RuleRef {
                    agreement: intern(&a.id),
                    rule: intern(&r.id),
                    effect: r.effect,
                },
                effect: r.effect,
                kinds: r.kinds.iter().fold(0u8, |m, k| m | (1 << k.index())),
                requester: party_bits(&model, &r.requester),
                counterpart: if r.counterpart.same_organisation {
                    CounterpartSet::SameOrganisation
                } else {
                    CounterpartSet::Parties(party_bits(&model, &r.counterpart))
                },
                purposes,
                agreement_window: a.validity,
                rule_window: r.validity,
                conditions: r.conditions.clone(),
                elements: r
                    .conditions
                    .elements
                    .iter()
                    .filter_map(|f| field_ix.get(f))
                    .collect(),
                release: r
                    .release
                    .iter()
                    .filter_map(|rel| field_ix.get(&rel.field).map(|f| (f, rel.form)))
                    .collect(),
                forbidden: r
                    .forbidden_fields
                    .as_ref()
                    .map(|v| v.iter().filter_map(|f| field_ix.get(f)).collect()),
                obligations: r.obligations,
            });
            origins.push(model.origins[ai][ri].clone());
        }
    }

    // Candidates by kind, requester and counterpart: decide then only tests purpose,
    // validity and conditions.
    let index = DecisionIndex::build(&rules, &org_mates, np, nu, &model.agreements, &model.fields);

    // sensitivity[p * fields + f]: the catalogue's sensitivity of f, raised where party p
    // (as the holder) raises it.
    let nf = model.fields.len();
    let mut sensitivity = Vec::with_capacity(np * nf);
    for p in &model.parties {
        for f in &model.fields {
            let raised = p
                .raised
                .iter()
                .filter(|r| r.covers(&f.id))
                .map(|r| r.to)
                .max()
                .unwrap_or(Sensitivity::Ordinary);
            sensitivity.push(f.sensitivity.max(raised));
        }
    }
    let mut police = Bits::new(np);
    for (i, p) in model.parties.iter().enumerate() {
        if p.roles.iter().any(|r| r == POLICE_ROLE) {
            police.insert(i);
        }
    }
    let use_restrictions = model
        .agreements
        .iter()
        .map(|a| {
            a.case_consultation.as_ref().and_then(|cc| {
                cc.use_restriction.as_ref().map(|t| UseRestriction {
                    agreement: a.id.as_str().into(),
                    text: t.as_str().into(),
                })
            })
        })
        .collect();

    let mut set = PolicySet {
        max_justification: model.max_justification,
        sensitivity,
        police,
        use_restrictions,
        parties: model.parties,
        party_ix,
        org_mates,
        roles: model.roles,
        purposes: model.purposes,
        purpose_ix,
        ancestors,
        legal_bases: model.legal_bases,
        fields: model.fields,
        field_ix,
        agreements: model.agreements,
        rules,
        index,
        digest: [0; 32],
        warnings: Vec::new(),
    };
    set.digest = super::digest::digest(&set);
    let (mut errors, warnings) = overlaps(&set, &origins, files);
    errors.extend(super::lawful::check(&set, &origins, files));
    if !errors.is_empty() {
        return Err(errors);
    }
    set.warnings = warnings;
    Ok(set)
}

/// Whether two rules can match one exchange (kind, requester, counterpart, purpose, time);
/// conditions are ignored because any two can hold together.
pub(crate) fn can_overlap(set: &PolicySet, a: &CompiledRule, b: &CompiledRule) -> bool {
    if a.kinds & b.kinds == 0 || !a.purposes.intersects(&b.purposes) {
        return false;
    }
    let w = a
        .agreement_window
        .intersect(&a.rule_window)
        .intersect(&b.agreement_window)
        .intersect(&b.rule_window);
    if w.is_empty() {
        return false;
    }
    match (&a.counterpart, &b.counterpart) {
        (CounterpartSet::Parties(x), CounterpartSet::Parties(y)) => {
            a.requester.intersects(&b.requester) && x.intersects(y)
        }
        _ => a.requester.iter_and(&b.requester).any(|r| {
            a.counterparts_for(set, r)
                .intersects(b.counterparts_for(set, r))
        }),
    }
}

/// Finds permits that can match one exchange: unorderable forms of one field are errors,
/// a shared field is a warning.
fn overlaps(
    set: &PolicySet,
    origins: &[super::load::Origin],
    files: &[SourceFile],
) -> (Vec<Problem>, Vec<Problem>) {
    let mut by_field: Vec<Vec<(usize, usize)>> = vec![Vec::new(); set.fields.len()];
    for (ri, r) in set.rules.iter().enumerate() {
        if r.effect == Effect::Permit {
            for (k, (f, _)) in r.release.iter().enumerate() {
                by_field[*f].push((ri, k));
            }
        }
    }
    let mut errors = Vec::new();
    let mut shared: Vec<(usize, usize, usize)> = Vec::new();
    for (fi, users) in by_field.iter().enumerate() {
        let ty = set.fields[fi].ty;
        for (x, &(ra, ka)) in users.iter().enumerate() {
            for &(rb, kb) in &users[x + 1..] {
                if !can_overlap(set, &set.rules[ra], &set.rules[rb]) {
                    continue;
                }
                let (fa, fb) = (set.rules[ra].release[ka].1, set.rules[rb].release[kb].1);
                if !ty.comparable(fa, fb) {
                    let o = &origins[rb];
                    let span = o.release_spans.get(kb).cloned().unwrap_or(o.span.clone());
                    errors.push(Problem::at(
                        &files[o.file],
                        span,
                        format!(
                            "`{}` is released as `{fb}` here and as `{fa}` by {}, and the two rules can match the same exchange, but `{fa}` and `{fb}` cannot be ordered",
                            set.fields[fi].id, set.rules[ra].rref
                        ),
                        Some("release the field in one form, or make the rules disjoint (kinds, parties, purposes or validity)".to_owned()),
                    ));
                } else {
                    shared.push((ra, rb, fi));
                }
            }
        }
    }
    shared.sort_unstable();
    let warnings = shared
        .chunk_by(|x, y| (x.0, x.1) == (y.0, y.1))
        .map(|group| {
            let (ra, rb) = (group[0].0, group[0].1);
            let o = &origins[rb];
            let names: Vec<&str> = group.iter().map(|g| set.fields[g.2].id.as_str()).collect();
            Problem::at(
                &files[o.file],
                o.span.start..o.span.start,
                format!(
                    "{} overlaps {}: both can match the same exchange and release {}",
                    set.rules[rb].rref,
                    set.rules[ra].rref,
                    names.join(", ")
                ),
                Some(
                    "the most revealing form of the two applies; check this is intended".to_owned(),
                ),
            )
            .warning()
        })
        .collect();
    (errors, warnings)
}
