//! The decision index, laid out for the cache: candidate rules per (kind, requester,
//! counterpart) in one flat array with forbids before permits, purpose membership as one bit
//! row per purpose, and the per-rule checks (validity, conditions) in a compact contiguous
//! table. A decision then reads a handful of cache lines instead of a few per candidate rule.

use time::OffsetDateTime;

use super::bits::Bits;
use super::compile::{CompiledRule, CounterpartSet};
use super::model::{Agreement, Effect, FieldDef};
use super::request::ALL_KINDS;
use super::transform::{FieldType, Transform};

/// What `decide` reads of a candidate once its purpose matches: its checks and, for a
/// matching permit, what it grants, so a decision never touches the full `CompiledRule`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HotRule {
    /// The first instant inside both the agreement's and the rule's window (nanoseconds).
    pub from: i128,
    /// The first instant after either window (nanoseconds).
    pub until: i128,
    /// The minimum justification length, if the rule has an urgency condition.
    pub urgency: Option<u32>,
    /// The minimum number of words of the justification.
    pub min_words: u32,
    /// The rule's agreement (index), which a case must have been opened under.
    pub agreement: u32,
    /// The holder must write a weighing when it answers.
    pub weighing: bool,
    /// Needs an open case consultation.
    pub case: bool,
    /// Needs a valid consent.
    pub consent: bool,
    /// That consent must include a parent's for a minor.
    pub parental_consent: bool,
    /// Flags the audit entry: the rule's `review` obligation, or any urgency condition.
    pub review: bool,
    /// Notifies the holder's DPO.
    pub notify: bool,
    /// The retention obligation in days.
    pub retention_days: Option<u32>,
    /// The rule's releases: a range of `DecisionIndex::releases`.
    releases: [u32; 2],
    /// Its agreement's legal bases: a range of `DecisionIndex::basis_refs`.
    bases: [u32; 2],
    /// Its legal elements: a range of `DecisionIndex::elements`.
    elements: [u32; 2],
}

impl HotRule {
    fn new(
        rule: &CompiledRule,
        releases: [u32; 2],
        bases: [u32; 2],
        elements: [u32; 2],
    ) -> HotRule {
        let w = rule.agreement_window.intersect(&rule.rule_window);
        HotRule {
            from: w
                .from
                .map_or(i128::MIN, OffsetDateTime::unix_timestamp_nanos),
            until: w
                .until
                .map_or(i128::MAX, OffsetDateTime::unix_timestamp_nanos),
            urgency: rule.conditions.urgency,
            min_words: rule.conditions.min_words.unwrap_or(0),
            agreement: rule.agreement as u32,
            weighing: rule.conditions.holder_weighing,
            case: rule.conditions.case,
            consent: rule.conditions.consent,
            parental_consent: rule.conditions.parental_consent,
            review: rule.obligations.review || rule.conditions.urgency.is_some(),
            notify: rule.obligations.notify,
            retention_days: rule.obligations.retention_days,
            releases,
            bases,
            elements,
        }
    }

    /// Whether `now` (nanoseconds) lies in both windows: the same as checking each `Window`.
    #[inline]
    pub fn in_window(&self, now: i128) -> bool {
        self.from <= now && now < self.until
    }
}

/// Candidates and per-rule facts for `decide`.
#[derive(Debug, Clone, Default)]
pub(crate) struct DecisionIndex {
    parties: usize,
    /// Per cell: where its forbids start and where its permits start; the next cell's first
    /// value ends its permits (a sentinel cell closes the last one).
    bounds: Vec<[u32; 2]>,
    /// Rule indices, cell after cell, each cell's forbids then permits in canonical order.
    rules: Vec<u32>,
    /// `by_purpose[p]`: the rules a request with purpose `p` matches on purpose.
    by_purpose: Vec<Bits>,
    /// Per rule, in canonical order.
    pub hot: Vec<HotRule>,
    /// Every rule's (field index, most revealing form), rule after rule, each sorted by field.
    releases: Vec<(usize, Transform)>,
    /// Per catalogue field: its type (read for every requested field).
    pub field_types: Vec<FieldType>,
    /// Every distinct legal basis id that an agreement names.
    pub bases: Vec<String>,
    /// Agreement after agreement, its legal bases as indices into `bases`, in its order.
    basis_refs: Vec<u32>,
    /// Rule after rule, its legal elements as field indices, in the order written.
    elements: Vec<usize>,
}

impl DecisionIndex {
    /// Builds the index; `org_mates[p]` are the parties of `p`'s organisation.
    pub fn build(
        rules: &[CompiledRule],
        org_mates: &[Bits],
        parties: usize,
        purposes: usize,
        agreements: &[Agreement],
        fields: &[FieldDef],
    ) -> DecisionIndex {
        let cells = ALL_KINDS.len() * parties * parties;
        let mut lists: Vec<[Vec<u32>; 2]> = vec![[Vec::new(), Vec::new()]; cells];
        for (ri, r) in rules.iter().enumerate() {
            let side = usize::from(r.effect == Effect::Permit);
            for k in ALL_KINDS {
                if r.kinds & (1 << k.index()) == 0 {
                    continue;
                }
                for p in r.requester.iter() {
                    let counterparts = match &r.counterpart {
                        CounterpartSet::Parties(b) => b,
                        CounterpartSet::SameOrganisation => &org_mates[p],
                    };
                    for c in counterparts.iter() {
                        lists[(k.index() * parties + p) * parties + c][side].push(ri as u32);
                    }
                }
            }
        }
        let mut bounds = Vec::with_capacity(cells + 1);
        let mut flat = Vec::new();
        for [forbids, permits] in lists {
            let start = flat.len() as u32;
            flat.extend_from_slice(&forbids);
            bounds.push([start, flat.len() as u32]);
            flat.extend_from_slice(&permits);
        }
        bounds.push([flat.len() as u32; 2]);
        let by_purpose = (0..purposes)
            .map(|p| {
                let mut b = Bits::new(rules.len());
                for (ri, r) in rules.iter().enumerate() {
                    if r.purposes.contains(p) {
                        b.insert(ri);
                    }
                }
                b
            })
            .collect();
        let mut bases: Vec<String> = Vec::new();
        let mut basis_refs: Vec<u32> = Vec::new();
        let mut agreement_bases: Vec<[u32; 2]> = Vec::with_capacity(agreements.len());
        for a in agreements {
            let start = basis_refs.len() as u32;
            for lb in &a.legal_basis {
                let i = match bases.iter().position(|b| b == lb) {
                    Some(i) => i,
                    None => {
                        bases.push(lb.clone());
                        bases.len() - 1
                    }
                };
                basis_refs.push(i as u32);
            }
            agreement_bases.push([start, basis_refs.len() as u32]);
        }
        let mut releases = Vec::new();
        let mut elements = Vec::new();
        let hot = rules
            .iter()
            .map(|r| {
                let start = releases.len() as u32;
                releases.extend_from_slice(&r.release);
                let e = elements.len() as u32;
                elements.extend_from_slice(&r.elements);
                let b = agreement_bases.get(r.agreement).copied().unwrap_or([0, 0]);
                HotRule::new(
                    r,
                    [start, releases.len() as u32],
                    b,
                    [e, elements.len() as u32],
                )
            })
            .collect();
        DecisionIndex {
            parties,
            bounds,
            rules: flat,
            by_purpose,
            hot,
            releases,
            field_types: fields.iter().map(|f| f.ty).collect(),
            bases,
            basis_refs,
            elements,
        }
    }

    /// A rule's legal elements, as field indices.
    #[inline]
    pub fn elements_of(&self, rule: &HotRule) -> &[usize] {
        let [start, end] = rule.elements;
        self.elements
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }

    /// A rule's releases, sorted by field.
    #[inline]
    pub fn releases(&self, rule: &HotRule) -> &[(usize, Transform)] {
        let [start, end] = rule.releases;
        self.releases
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }

    /// A rule's agreement's legal bases, as indices into `bases`.
    #[inline]
    pub fn bases_of(&self, rule: &HotRule) -> &[u32] {
        let [start, end] = rule.bases;
        self.basis_refs
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }

    /// The candidate forbids and permits for a cell (any purpose), in canonical order.
    #[inline]
    pub fn candidates(&self, kind: usize, requester: usize, counterpart: usize) -> [&[u32]; 2] {
        let cell = (kind * self.parties + requester) * self.parties + counterpart;
        match (self.bounds.get(cell), self.bounds.get(cell + 1)) {
            (Some(&[start, split]), Some(&[end, _])) => [
                self.rules
                    .get(start as usize..split as usize)
                    .unwrap_or(&[]),
                self.rules.get(split as usize..end as usize).unwrap_or(&[]),
            ],
            _ => [&[], &[]],
        }
    }

    /// The rules a purpose matches (an empty set for an out-of-range purpose).
    #[inline]
    pub fn purpose(&self, purpose: usize) -> Option<&Bits> {
        self.by_purpose.get(purpose)
    }
}

/// Whether a window (as `decide` stores it) agrees with `Window::contains`; used by tests.
#[cfg(test)]
fn agrees(a: super::model::Window, b: super::model::Window, now: OffsetDateTime) -> bool {
    let w = a.intersect(&b);
    let hot = HotRule {
        from: w
            .from
            .map_or(i128::MIN, OffsetDateTime::unix_timestamp_nanos),
        until: w
            .until
            .map_or(i128::MAX, OffsetDateTime::unix_timestamp_nanos),
        urgency: None,
        min_words: 0,
        agreement: 0,
        weighing: false,
        case: false,
        consent: false,
        parental_consent: false,
        review: false,
        notify: false,
        retention_days: None,
        releases: [0, 0],
        bases: [0, 0],
        elements: [0, 0],
    };
    hot.in_window(now.unix_timestamp_nanos()) == (a.contains(now) && b.contains(now))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::super::model::Window;
    use super::*;

    #[test]
    fn combined_windows_match_both_windows_at_their_edges() {
        let t = [
            datetime!(2025-01-01 00:00 UTC),
            datetime!(2025-01-01 00:00:00.000000001 UTC),
            datetime!(2025-06-01 02:00 +02:00),
            datetime!(2026-01-01 00:00 UTC),
        ];
        let mut windows = vec![Window::default()];
        for &a in &t {
            windows.push(Window {
                from: Some(a),
                until: None,
            });
            windows.push(Window {
                from: None,
                until: Some(a),
            });
            for &b in &t {
                windows.push(Window {
                    from: Some(a),
                    until: Some(b),
                });
            }
        }
        let probes = t
            .iter()
            .flat_map(|&x| [x - time::Duration::nanoseconds(1), x]);
        for now in probes {
            for &a in &windows {
                for &b in &windows {
                    assert!(agrees(a, b, now), "{a:?} {b:?} at {now}");
                }
            }
        }
    }
}
