//! The decision: deny by default, forbid wins, fail closed (format doc, "Decision").

use time::OffsetDateTime;

use super::compile::CompiledRule;
use super::decision::{Decision, FieldGrant, Obligations, ReasonCode, RuleRef, Verdict};
use super::model::Effect;
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
        let (Some(&requester), Some(&counterpart)) = (
            set.party_ix.get(&req.requester),
            set.party_ix.get(&req.counterpart),
        ) else {
            return Err(ReasonCode::UnknownParty);
        };
        let Some(&purpose) = set.purpose_ix.get(&req.purpose) else {
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
                    .is_some_and(|&p| self.set.ancestors[self.purpose].contains(p))
                && k.recipients.iter().any(|x| x == recipient)
                && k.given <= now
                && now < k.expires
                && k.revoked.is_none_or(|rv| now < rv)
        })
    }
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
        // Resolve the requested fields; a malformed request is an evaluation error (fail closed).
        let mut wanted: Vec<(usize, Option<Transform>)> = Vec::with_capacity(req.fields.len());
        for f in &req.fields {
            let Some(&fi) = self.field_ix.get(&f.field) else {
                return Decision::deny(ReasonCode::EvaluationError, self.digest);
            };
            if f.form.is_some_and(|t| !self.fields[fi].ty.supports(t)) {
                return Decision::deny(ReasonCode::EvaluationError, self.digest);
            }
            if !wanted.iter().any(|(w, _)| *w == fi) {
                wanted.push((fi, f.form));
            }
        }
        let np = self.parties.len();
        let candidates = &self.index[req.kind.index() * np + ctx.requester];

        // Forbids first: forbid beats permit.
        let mut removed: Vec<usize> = Vec::new();
        let mut trimmed_by: Vec<RuleRef> = Vec::new();
        let mut denied_by: Vec<RuleRef> = Vec::new();
        for &ri in candidates {
            let rule = &self.rules[ri as usize];
            if rule.effect != Effect::Forbid
                || !rule.matches_counterpart(self, ctx.requester, ctx.counterpart)
                || !rule.purposes.contains(ctx.purpose)
                || ctx.holds(rule).is_err()
            {
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
            let mut d = Decision::deny(ReasonCode::Forbidden, self.digest);
            d.matched = denied_by;
            return d;
        }

        // Matching permits, and the best reason if none matches.
        let mut matching: Vec<(usize, Used)> = Vec::new();
        let mut best: (u8, ReasonCode) = (4, ReasonCode::NoMatchingPermit);
        for &ri in candidates {
            let rule = &self.rules[ri as usize];
            if rule.effect != Effect::Permit
                || !rule.matches_counterpart(self, ctx.requester, ctx.counterpart)
                || !rule.purposes.contains(ctx.purpose)
            {
                continue;
            }
            match ctx.holds(rule) {
                Ok(used) => matching.push((ri as usize, used)),
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
            if removed.contains(&fi) {
                continue;
            }
            let def = &self.fields[fi];
            let mut allowed: Option<(Transform, usize)> = None;
            for &(ri, _) in &matching {
                let rule = &self.rules[ri];
                let Ok(k) = rule.release.binary_search_by_key(&fi, |(f, _)| *f) else {
                    continue;
                };
                let form = rule.release[k].1;
                allowed = match allowed {
                    None => Some((form, ri)),
                    Some((cur, cri)) => match def.ty.at_least(form, cur) {
                        Some(true) if form != cur => Some((form, ri)),
                        Some(_) => Some((cur, cri)),
                        // Rejected at load for rules that can overlap; fail closed if it happens.
                        None => return Decision::deny(ReasonCode::EvaluationError, self.digest),
                    },
                };
            }
            let Some((form, ri)) = allowed else { continue };
            let form = def
                .ty
                .meet(requested.unwrap_or(form), form, &def.transforms);
            if form != Transform::Drop {
                fields.push(FieldGrant {
                    field: def.id.clone(),
                    form,
                    ty: def.ty,
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
        let mut legal_bases: Vec<String> = Vec::new();
        let mut ground_refs: Vec<String> = Vec::new();
        for (ri, used) in &matching {
            let rule = &self.rules[*ri];
            let o = rule.obligations;
            obligations.retention_days = match (obligations.retention_days, o.retention_days) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            obligations.review |= o.review || rule.conditions.urgency.is_some();
            obligations.notify |= o.notify;
            for lb in &self.agreements[rule.agreement].legal_basis {
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
            policy_digest: self.digest,
        }
    }
}
