//! The decision: deny by default, forbid wins, fail closed (format doc, "Decision").

use time::OffsetDateTime;

use smallvec::SmallVec;

use super::compile::CompiledRule;
use super::decision::{
    Decision, FieldGrant, Obligations, ReasonCode, RuleRef, UseRestriction, Verdict,
};
use super::index::HotRule;
use super::model::Sensitivity;
use super::request::{ExchangeKind, ExchangeRequest, Grounds, Substance};
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
    /// A legal element is missing or has no valid value.
    Element,
    /// The written justification is missing, too short or without substance.
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
            Check::Element => "element",
            Check::Urgency => "urgency",
        }
    }

    /// The reason a candidate permit failing here gives, with its preference (lower wins).
    pub(crate) fn reason(self) -> (u8, ReasonCode) {
        match self {
            // The candidate that got furthest through its checks (validity, case, consent,
            // elements, justification) gives the reason: it is the one closest to permitting.
            Check::Urgency => (0, ReasonCode::JustificationRequired),
            Check::Element => (1, ReasonCode::ElementMissing),
            Check::Consent => (2, ReasonCode::ConsentRequired),
            Check::Case => (3, ReasonCode::CaseRequired),
            Check::Validity => (4, ReasonCode::OutsideValidity),
            _ => (NO_PERMIT, ReasonCode::NoMatchingPermit),
        }
    }
}

/// The preference of `NO_MATCHING_PERMIT`: any failed condition is a closer reason.
pub(crate) const NO_PERMIT: u8 = 5;

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
            used.case = Some(self.open_case(rule.agreement).ok_or(Check::Case)?);
        }
        if rule.conditions.consent {
            used.consent = Some(
                self.valid_consent(rule.conditions.parental_consent)
                    .ok_or(Check::Consent)?,
            );
        }
        if self.missing_element(&rule.elements).is_some() {
            return Err(Check::Element);
        }
        if let Some(min) = rule.conditions.urgency {
            let words = rule.conditions.min_words.unwrap_or(0);
            if !substantial(
                &Substance::of(self.req.justification.as_deref()),
                min,
                words,
            ) {
                return Err(Check::Urgency);
            }
        }
        Ok(used)
    }

    /// The first legal element (a field index) that the request does not supply with a valid
    /// value: an enum value of the catalogue, or a flag that is `true`.
    pub fn missing_element(&self, elements: &[usize]) -> Option<usize> {
        elements.iter().copied().find(|&fi| {
            let def = &self.set.fields[fi];
            let supplied = self
                .req
                .elements
                .iter()
                .find(|(f, _)| *f == def.id)
                .map(|(_, v)| v.as_str());
            match (supplied, def.ty) {
                (Some(v), super::transform::FieldType::Enum) => !def.values.iter().any(|x| x == v),
                (Some(v), super::transform::FieldType::Flag) => v != "true",
                _ => true,
            }
        })
    }

    /// A case that lets rules of `agreement` through: opened under that agreement and one of its
    /// instruments, open now and not past its end or the agreement's `max_days`, for the
    /// request's purpose or an ancestor of it, with both parties and the subject in it.
    pub fn open_case(&self, agreement: usize) -> Option<usize> {
        let a = &self.set.agreements[agreement];
        let cc = a.case_consultation.as_ref()?;
        let lapse = time::Duration::days(i64::from(cc.max_days));
        let (r, c, now) = (&self.req.requester, &self.req.counterpart, self.now);
        self.grounds.cases.iter().position(|k| {
            k.agreement == a.id
                && cc.instruments.iter().any(|i| i.id == k.instrument)
                && k.opened <= now
                && k.closed.is_none_or(|cl| now < cl)
                && k.ends.is_none_or(|e| now < e)
                && now < k.running_since() + lapse
                && self
                    .set
                    .purpose_ix
                    .get(&k.purpose)
                    .is_some_and(|p| self.set.ancestors[self.purpose].contains(p))
                && k.participants.contains(r)
                && k.participants.contains(c)
                && k.subjects.contains(&self.req.subject)
        })
    }

    /// The holder and the recipient of the exchange, as party indices.
    pub fn holder_and_recipient(&self) -> (usize, usize) {
        match self.req.kind {
            ExchangeKind::Share => (self.requester, self.counterpart),
            _ => (self.counterpart, self.requester),
        }
    }

    /// Whether releasing `field` is a special-category release, and whether it must be reviewed
    /// (a special category to the police always is).
    pub fn sensitivity_of(&self, field: usize) -> (bool, bool) {
        let (holder, recipient) = self.holder_and_recipient();
        let s = self.set.sensitivity[holder * self.set.fields.len() + field];
        (
            s != Sensitivity::Ordinary,
            s == Sensitivity::Special && self.set.police.contains(recipient),
        )
    }

    /// A consent of this subject for this purpose (or one above it) and recipient, valid now and
    /// lawfully given; with `parents`, one that includes a parent's consent for a minor.
    fn valid_consent(&self, parents: bool) -> Option<usize> {
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
                && k.lawfully_given()
                && (!parents || k.includes_parents())
        })
    }
}

/// Whether a justification satisfies an urgency condition: long enough, with enough words, and
/// not a run of one character or one word.
pub(crate) fn substantial(s: &Substance, min_chars: u32, min_words: u32) -> bool {
    s.chars >= min_chars as usize && s.words >= min_words as usize && !s.degenerate
}

/// Grounds and request facts that rule conditions need, each worked out at most once per
/// decision (every rule asks the same question, so the answer is the same).
struct Facts<'c, 'a> {
    ctx: &'c Ctx<'a>,
    /// The decision time in nanoseconds, as the compiled windows store it.
    now: i128,
    /// The case found for the last agreement asked about: (agreement, case).
    case: Option<(u32, Option<usize>)>,
    consent: Option<Option<usize>>,
    /// The same for a rule that requires a parent's consent for a minor.
    consent_with_parents: Option<Option<usize>>,
    justification: Option<Substance>,
    /// The element the last failed element check found missing.
    missing: Option<usize>,
}

impl Facts<'_, '_> {
    /// `Ctx::holds` on the compact form of a rule.
    #[inline]
    fn holds(&mut self, hot: &HotRule, elements: &[usize]) -> Result<Used, Check> {
        if !hot.in_window(self.now) {
            return Err(Check::Validity);
        }
        let ctx = self.ctx;
        let mut used = Used::default();
        if hot.case {
            let case = match self.case {
                Some((a, case)) if a == hot.agreement => case,
                _ => {
                    let case = ctx.open_case(hot.agreement as usize);
                    self.case = Some((hot.agreement, case));
                    case
                }
            };
            used.case = Some(case.ok_or(Check::Case)?);
        }
        if hot.consent {
            let consent = if hot.parental_consent {
                *self
                    .consent_with_parents
                    .get_or_insert_with(|| ctx.valid_consent(true))
            } else {
                *self.consent.get_or_insert_with(|| ctx.valid_consent(false))
            };
            used.consent = Some(consent.ok_or(Check::Consent)?);
        }
        if !elements.is_empty()
            && let Some(fi) = ctx.missing_element(elements)
        {
            self.missing = Some(fi);
            return Err(Check::Element);
        }
        if let Some(min) = hot.urgency {
            let s = *self
                .justification
                .get_or_insert_with(|| Substance::of(ctx.req.justification.as_deref()));
            if !substantial(&s, min, hot.min_words) {
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
            consent_with_parents: None,
            justification: None,
            missing: None,
        };

        // Forbids first: forbid beats permit. A forbid that names a requested field denies, so
        // one that only trims never names a requested field: nothing requested is removed.
        let mut trimmed_by: Vec<RuleRef> = Vec::new();
        let mut denied_by: Vec<RuleRef> = Vec::new();
        for &ri in forbids {
            let ri = ri as usize;
            let hot = &ix.hot[ri];
            if !on_purpose.contains(ri) || facts.holds(hot, ix.elements_of(hot)).is_err() {
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
        let mut best: (u8, ReasonCode) = (NO_PERMIT, ReasonCode::NoMatchingPermit);
        let mut missing: Option<usize> = None;
        for &ri in permits {
            let ri = ri as usize;
            if !on_purpose.contains(ri) {
                continue;
            }
            let hot = &ix.hot[ri];
            match facts.holds(hot, ix.elements_of(hot)) {
                Ok(used) => matching.push((ri, used)),
                Err(check) => {
                    let r = check.reason();
                    if r.0 < best.0 {
                        best = r;
                        missing = facts.missing.filter(|_| check == Check::Element);
                    }
                }
            }
        }
        if matching.is_empty() {
            let mut d = Decision::deny(best.1, self.digest);
            d.missing_element = missing.map(|fi| self.fields[fi].id.clone());
            return d;
        }

        // Grants: the most revealing allowed form, narrowed to the requested form.
        let mut fields = Vec::with_capacity(wanted.len());
        let mut obligations = Obligations::default();
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
                let (special, review) = ctx.sensitivity_of(fi);
                obligations.special_category |= special;
                obligations.review |= review;
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

        let mut use_restriction = None;
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
            obligations.weighing |= hot.weighing;
            if used.case.is_some() {
                UseRestriction::add(
                    &mut use_restriction,
                    self.use_restrictions[hot.agreement as usize].as_ref(),
                );
            }
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
            missing_element: None,
            use_restriction,
        }
    }
}
