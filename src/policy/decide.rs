//! The decision: deny by default, forbid wins, fail closed (format doc, "Decision").

use time::OffsetDateTime;

use smallvec::SmallVec;

use super::compile::CompiledRule;
use super::decision::{Decision, FieldGrant, Obligations, ReasonCode, RuleRef, Verdict};
use super::index::HotRule;
use super::request::{ExchangeRequest, Grounds};
use super::set::PolicySet;
use super::transform::Transform;

/// The steps a rule is checked in; the first that fails is what `explain` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The exchange kind is not listed.
    Kind,
    /// The requester selector does not match.
    Requester,
    /// The counterpart selector does not match.
    Counterpart,
    /// The purpose is not listed (nor an ancestor of it).
    Purpose,
    /// The decision time is outside the agreement's or the rule's window.
    Validity,
    /// No open case consultation with both parties and the subject.
    Case,
    /// No valid consent for this subject, purpose and recipient.
    Consent,
    /// The written justification is missing or too short.
    Urgency,
}

impl Check {
    /// A lower-case name for traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Kind => "kind",
            Check::Requester => "requester",
            Check::Counterpart => "counterpart",
            Check::Purpose => "purpose",
            Check::Validity => "validity",
            Check::Case => "case",
            Check::Consent => "consent",
            Check::Urgency => "urgency",
        }
    }

    /// The reason a candidate permit failing here gives, with its preference (lower wins).
    fn reason(self) -> (u8, ReasonCode) {
        match self {
            Check::Case => (0, ReasonCode::CaseRequired),
            Check::Consent => (1, ReasonCode::ConsentRequired),
            Check::Urgency => (2, ReasonCode::JustificationRequired),
            Check::Validity => (3, ReasonCode::OutsideValidity),
            _ => (4, ReasonCode::NoMatchingPermit),
        }
    }
}

/// A request resolved against the set: dense indices, so rule checks are bit tests.
pub(crate) struct Ctx<'a> {
    pub set: &'a PolicySet,
    pub req: &'a ExchangeRequest,
    pub grounds: &'a Grounds,
    pub now: OffsetDateTime,
    pub requester: usize,
    pub counterpart: usize,
    pub purpose: usize,
}

/// Which grounds satisfied a rule's conditions (indices into `Grounds`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Used {
    pub case: Option<usize>,
    pub consent: Option<usize>,
}

impl<'a> Ctx<'a> {
    /// Resolves parties and purpose, or gives the denial reason.
    pub fn new(
        set: &'a PolicySet,
        req: &'a ExchangeRequest,
        grounds: &'a Grounds,
        now: OffsetDateTime,
    ) -> Result<Ctx<'a>, ReasonCode> {
        let (Some(requester), Some(counterpart)) = (
            set.party_ix.get(&req.requester),
            set.party_ix.get(&req.counterpart),
        ) else {
            return Err(ReasonCode::UnknownParty);
        };
        let Some(purpose) = set.purpose_ix.get(&req.purpose) else {
            return Err(ReasonCode::UnknownPurpose);
        };
        Ok(Ctx {
            set,
            req,
            grounds,
            now,
            requester,
            counterpart,
            purpose,
        })
    }

    /// The matching keys: kind, requester, counterpart, purpose.
    pub fn matches(&self, rule: &CompiledRule) -> Result<(), Check> {
        if rule.kinds & (1 << self.req.kind.index()) == 0 {
            return Err(Check::Kind);
        }
        if !rule.requester.contains(self.requester) {
            return Err(Check::Requester);
        }
        if !rule.matches_counterpart(self.set, self.requester, self.counterpart) {
            return Err(Check::Counterpart);
        }
        if !rule.purposes.contains(self.purpose) {
            return Err(Check::Purpose);
        }
        Ok(())
    }

    /// Validity and conditions, in the order of the format doc.
    pub fn holds(&self, rule: &CompiledRule) -> Result<Used, Check> {
        if !rule.agreement_window.contains(self.now) || !rule.rule_window.contains(self.now) {
            return Err(Check::Validity);
        }
        let mut used = Used::default();
        if rule.conditions.case {
            used.case = Some(self.open_case().ok_or(Check::Case)?);
        }
        if rule.conditions.consent {
            used.consent = Some(self.valid_consent().ok_or(Check::Consent)?);
        }
        if let Some(min) = rule.conditions.urgency {
            let len = self
                .req
                .justification
                .as_deref()
                .map_or(0, |j| j.trim().chars().count());
            if len < min as usize {
                return Err(Check::Urgency);
            }
        }
        Ok(used)
    }

    fn open_case(&self) -> Option<usize> {
        let (r, c, now) = (&self.req.requester, &self.req.counterpart, self.now);
        self.grounds.cases.iter().position(|k| {
            k.opened <= now
                && k.closed.is_none_or(|cl| now < cl)
                && k.participants.contains(r)
                && k.participants.contains(c)
                && k.subjects.contains(&self.req.subject)
        })
    }

    fn valid_consent(&self) -> Option<usize> {
        let recipient = self.req.recipient();
        let now = self.now;
        self.grounds.consents.iter().position(|k| {
            k.subject == self.req.subject
                && self
                    .set
                    .purpose_ix
                    .get(&k.purpose)
                    .is_some_and(|p| self.set.ancestors[self.purpose].contains(p))
                && k.recipients.iter().any(|x| x == recipient)
                && k.given <= now
                && now < k.expires
                && k.revoked.is_none_or(|rv| now < rv)
        })
    }
}

/// Grounds and request facts that rule conditions need, each worked out at most once per
/// decision (every rule asks the same question, so the answer is the same).
struct Facts<'c, 'a> {
    ctx: &'c Ctx<'a>,
    /// The decision time in nanoseconds, as the compiled windows store it.
    now: i128,
    case: Option<Option<usize>>,
    consent: Option<Option<usize>>,
    justification: Option<usize>,
}

impl Facts<'_, '_> {
    /// `Ctx::holds` on the compact form of a rule.
    #[inline]
    fn holds(&mut self, hot: &HotRule) -> Result<Used, Check> {
        if !hot.in_window(self.now) {
            return Err(Check::Validity);
        }
        let ctx = self.ctx;
        let mut used = Used::default();
        if hot.case {
            let case = *self.case.get_or_insert_with(|| ctx.open_case());
            used.case = Some(case.ok_or(Check::Case)?);
        }
        if hot.consent {
            let consent = *self.consent.get_or_insert_with(|| ctx.valid_consent());
            used.consent = Some(consent.ok_or(Check::Consent)?);
        }
        if let Some(min) = hot.urgency {
            let len = *self.justification.get_or_insert_with(|| {
                ctx.req
                    .justification
                    .as_deref()
                    .map_or(0, |j| j.trim().chars().count())
            });
            if len < min as usize {
                return Err(Check::Urgency);
            }
        }
        Ok(used)
    }
}

/// Adds `prefix` + `id` to `refs` unless already there, allocating only when it is new.
fn push_ground_ref(refs: &mut Vec<String>, prefix: &str, id: &str) {
    if refs.iter().any(|r| r.strip_prefix(prefix) == Some(id)) {
        return;
    }
    let mut r = String::with_capacity(prefix.len() + id.len());
    r.push_str(prefix);
    r.push_str(id);
    refs.push(r);
}

impl PolicySet {
    /// Decides on an exchange at time `now` (an injected clock; the engine never reads the time).
    pub fn decide(
        &self,
        req: &ExchangeRequest,
        grounds: &Grounds,
        now: OffsetDateTime,
    ) -> Decision {
        let ctx = match Ctx::new(self, req, grounds, now) {
            Ok(c) => c,
            Err(reason) => return Decision::deny(reason, self.digest),
        };
        let ix = &self.index;
        // Resolve the requested fields; a malformed request is an evaluation error (fail closed).
        let mut wanted: SmallVec<[(usize, Option<Transform>); 8]> = SmallVec::new();
        for f in &req.fields {
            let Some(fi) = self.field_ix.get(&f.field) else {
                return Decision::deny(ReasonCode::EvaluationError, self.digest);
            };
            if f.form.is_some_and(|t| !ix.field_types[fi].supports(t)) {
                return Decision::deny(ReasonCode::EvaluationError, self.digest);
            }
            if !wanted.iter().any(|(w, _)| *w == fi) {
                wanted.push((fi, f.form));
            }
        }
        let [forbids, permits] = ix.candidates(req.kind.index(), ctx.requester, ctx.counterpart);
        let Some(on_purpose) = ix.purpose(ctx.purpose) else {
            return Decision::deny(ReasonCode::EvaluationError, self.digest);
        };
        let mut facts = Facts {
            ctx: &ctx,
            now: now.unix_timestamp_nanos(),
            case: None,
            consent: None,
            justification: None,
        };

        // Forbids first: forbid beats permit. A forbid that names a requested field denies, so
        // one that only trims never names a requested field: nothing requested is removed.
        let mut trimmed_by: Vec<RuleRef> = Vec::new();
        let mut denied_by: Vec<RuleRef> = Vec::new();
        for &ri in forbids {
            let ri = ri as usize;
            if !on_purpose.contains(ri) || facts.holds(&ix.hot[ri]).is_err() {
                continue;
            }
            let rule = &self.rules[ri];
            match &rule.forbidden {
                Some(list) if !wanted.iter().any(|(w, _)| list.contains(w)) => {
                    trimmed_by.push(rule.rref.clone())
                }
                _ => denied_by.push(rule.rref.clone()),
            }
        }
        if !denied_by.is_empty() {
            let mut d = Decision::deny(ReasonCode::Forbidden, self.digest);
            d.matched = denied_by;
            return d;
        }

        // Matching permits, and the best reason if none matches.
        let mut matching: SmallVec<[(usize, Used); 8]> = SmallVec::new();
        let mut best: (u8, ReasonCode) = (4, ReasonCode::NoMatchingPermit);
        for &ri in permits {
            let ri = ri as usize;
            if !on_purpose.contains(ri) {
                continue;
            }
            match facts.holds(&ix.hot[ri]) {
                Ok(used) => matching.push((ri, used)),
                Err(check) => {
                    let r = check.reason();
                    if r.0 < best.0 {
                        best = r;
                    }
                }
            }
        }
        if matching.is_empty() {
            return Decision::deny(best.1, self.digest);
        }

        // Grants: the most revealing allowed form, narrowed to the requested form.
        let mut fields = Vec::with_capacity(wanted.len());
        for &(fi, requested) in &wanted {
            let ty = ix.field_types[fi];
            let mut allowed: Option<(Transform, usize)> = None;
            for &(ri, _) in &matching {
                let release = ix.releases(&ix.hot[ri]);
                let Ok(k) = release.binary_search_by_key(&fi, |(f, _)| *f) else {
                    continue;
                };
                let form = release[k].1;
                allowed = match allowed {
                    None => Some((form, ri)),
                    Some((cur, cri)) => match ty.at_least(form, cur) {
                        Some(true) if form != cur => Some((form, ri)),
                        Some(_) => Some((cur, cri)),
                        // Rejected at load for rules that can overlap; fail closed if it happens.
                        None => return Decision::deny(ReasonCode::EvaluationError, self.digest),
                    },
                };
            }
            let Some((form, ri)) = allowed else { continue };
            // The allowed form is in the catalogue (checked at load): only a different
            // requested form needs the order.
            let form = match requested {
                None => form,
                Some(r) if r == form => form,
                Some(r) => ty.meet(r, form, &self.fields[fi].transforms),
            };
            if form != Transform::Drop {
                // The id from the map's contiguous key buffer, which stays in cache.
                let field = match self.field_ix.key(fi) {
                    Some(id) => id.to_owned(),
                    None => self.fields[fi].id.clone(),
                };
                fields.push(FieldGrant {
                    field,
                    form,
                    ty,
                    rule: self.rules[ri].rref.clone(),
                });
            }
        }
        let mut matched: Vec<RuleRef> = matching
            .iter()
            .map(|(ri, _)| self.rules[*ri].rref.clone())
            .collect();
        if fields.is_empty() {
            let mut d = Decision::deny(ReasonCode::NothingReleasable, self.digest);
            d.matched = matched;
            return d;
        }
        matched.extend(trimmed_by);

        let mut obligations = Obligations::default();
        let mut bases: SmallVec<[u32; 4]> = SmallVec::new();
        let mut ground_refs: Vec<String> = Vec::new();
        for (ri, used) in &matching {
            let hot = &ix.hot[*ri];
            obligations.retention_days = match (obligations.retention_days, hot.retention_days) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            obligations.review |= hot.review;
            obligations.notify |= hot.notify;
            for &b in ix.bases_of(hot) {
                if !bases.contains(&b) {
                    bases.push(b);
                }
            }
            if let Some(i) = used.case {
                push_ground_ref(&mut ground_refs, "case:", &grounds.cases[i].id);
            }
            if let Some(i) = used.consent {
                push_ground_ref(&mut ground_refs, "consent:", &grounds.consents[i].id);
            }
        }
        Decision {
            verdict: Verdict::Allow,
            reason: ReasonCode::Permitted,
            matched,
            fields,
            obligations,
            legal_bases: bases
                .iter()
                .map(|&b| ix.bases[b as usize].clone())
                .collect(),
            ground_refs,
            policy_digest: self.digest,
        }
    }
}
