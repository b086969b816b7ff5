//! The DPO trace: every rule, the first check that failed for it, and the decision.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::decide::{Check, Ctx};
use super::decision::{Decision, RuleRef};
use super::model::Effect;
use super::request::{ExchangeRequest, Grounds};
use super::set::PolicySet;

/// What happened to one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// The rule.
    pub rule: RuleRef,
    /// The first check that failed, or `None` when the rule matched and its conditions held.
    pub failed: Option<Check>,
    /// A human explanation of the failure (ids only, never personal data).
    pub detail: String,
}

/// A decision with its trace, for a DPO or a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The request summary: `kind requester → counterpart for purpose`.
    pub summary: String,
    /// The decision time.
    pub now: OffsetDateTime,
    /// One trace per rule, in canonical order; empty when the request names an unknown party or purpose.
    pub rules: Vec<RuleTrace>,
    /// The decision, exactly as `decide` gives it.
    pub decision: Decision,
}

impl PolicySet {
    /// Decides and explains: every rule with the first check that failed for it.
    pub fn explain(
        &self,
        req: &ExchangeRequest,
        grounds: &Grounds,
        now: OffsetDateTime,
    ) -> Explanation {
        let decision = self.decide(req, grounds, now);
        let summary = format!(
            "{} {} → {} for {}",
            req.kind, req.requester, req.counterpart, req.purpose
        );
        let mut rules = Vec::new();
        if let Ok(ctx) = Ctx::new(self, req, grounds, now) {
            for rule in &self.rules {
                let failed = ctx.matches(rule).err().or_else(|| ctx.holds(rule).err());
                let detail = match failed {
                    None => self.applies(rule),
                    Some(c) => self.detail(c, rule, req, now),
                };
                rules.push(RuleTrace {
                    rule: rule.rref.clone(),
                    failed,
                    detail,
                });
            }
        }
        Explanation {
            summary,
            now,
            rules,
            decision,
        }
    }

    /// What a rule that matched and whose conditions hold does.
    fn applies(&self, rule: &super::compile::CompiledRule) -> String {
        let a = &self.agreements[rule.agreement];
        let forbidden = a
            .rules
            .iter()
            .find(|r| *r.id == *rule.rref.rule)
            .and_then(|r| r.forbidden_fields.clone());
        match (rule.effect, forbidden) {
            (Effect::Permit, _) => "matches; all conditions hold".to_owned(),
            (Effect::Forbid, None) => "applies: the exchange is forbidden".to_owned(),
            (Effect::Forbid, Some(f)) => format!(
                "applies: removes [{}]; asking for one of them is refused",
                f.join(", ")
            ),
        }
    }

    fn detail(
        &self,
        check: Check,
        rule: &super::compile::CompiledRule,
        req: &ExchangeRequest,
        now: OffsetDateTime,
    ) -> String {
        let a = &self.agreements[rule.agreement];
        let r = a.rules.iter().find(|r| *r.id == *rule.rref.rule);
        match (check, r) {
            (Check::Kind, Some(r)) => format!(
                "kind `{}` not in [{}]",
                req.kind,
                r.kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (Check::Requester, Some(r)) => {
                format!(
                    "requester `{}` not matched by {}",
                    req.requester,
                    show_selector(&r.requester)
                )
            }
            (Check::Counterpart, Some(r)) => format!(
                "counterpart `{}` not matched by {}",
                req.counterpart,
                show_selector(&r.counterpart)
            ),
            (Check::Purpose, Some(r)) => format!(
                "purpose `{}` not within [{}]",
                req.purpose,
                r.purposes.join(", ")
            ),
            (Check::Validity, _) => {
                let which = if rule.agreement_window.contains(now) {
                    ("rule", rule.rule_window)
                } else {
                    ("agreement", rule.agreement_window)
                };
                format!(
                    "{} is outside the {}'s window [{}, {})",
                    show_time(Some(now)),
                    which.0,
                    show_time(which.1.from),
                    show_time(which.1.until)
                )
            }
            (Check::Case, _) => format!(
                "no case consultation of agreement `{}` that is open now, not past its end, for this purpose or one above it, with both parties and this subject",
                a.id
            ),
            (Check::Element, _) => {
                let missing = Ctx::new(self, req, &Grounds::default(), now)
                    .ok()
                    .and_then(|ctx| ctx.missing_element(&rule.elements))
                    .map_or("?", |fi| self.fields[fi].id.as_str());
                format!("the legal element `{missing}` is missing or has no valid value")
            }
            (Check::Consent, _) => {
                "no valid consent of this subject for this purpose and recipient".to_owned()
            }
            (Check::Urgency, _) => match rule.conditions.min_words {
                Some(w) => format!(
                    "the written justification is shorter than {} characters or {w} words, or has no substance",
                    rule.conditions.urgency.unwrap_or(0)
                ),
                None => format!(
                    "the written justification is shorter than {} characters, or has no substance",
                    rule.conditions.urgency.unwrap_or(0)
                ),
            },
            (c, None) => format!("{} does not match", c.as_str()),
        }
    }
}

fn show_time(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "∞".to_owned())
}

fn show_selector(s: &super::model::Selector) -> String {
    if s.any {
        return "any party".to_owned();
    }
    if s.same_organisation {
        return "the requester's organisation".to_owned();
    }
    let mut parts = Vec::new();
    if !s.parties.is_empty() {
        parts.push(format!("parties [{}]", s.parties.join(", ")));
    }
    if !s.roles.is_empty() {
        parts.push(format!("roles [{}]", s.roles.join(", ")));
    }
    parts.join(" or ")
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "request: {} at {}",
            self.summary,
            show_time(Some(self.now))
        )?;
        if self.rules.is_empty() {
            writeln!(f, "no rule evaluated: {}", self.decision.reason)?;
        }
        for t in &self.rules {
            let effect = match t.rule.effect {
                Effect::Permit => "permit",
                Effect::Forbid => "forbid",
            };
            match t.failed {
                None => writeln!(f, "  ✓ {effect} {}: {}", t.rule, t.detail)?,
                Some(c) => writeln!(f, "  ✗ {effect} {}: {}: {}", t.rule, c.as_str(), t.detail)?,
            }
        }
        let d = &self.decision;
        writeln!(f, "decision: {} ({})", d.verdict.as_str(), d.reason)?;
        for g in &d.fields {
            writeln!(f, "  release {} as {} (by {})", g.field, g.form, g.rule)?;
        }
        if d.is_allowed() {
            let o = &d.obligations;
            writeln!(
                f,
                "  obligations: retention_days={} review={} notify={}",
                o.retention_days
                    .map_or("none".to_owned(), |r| r.to_string()),
                o.review,
                o.notify
            )?;
            writeln!(f, "  legal bases: {}", d.legal_bases.join(", "))?;
            if !d.ground_refs.is_empty() {
                writeln!(f, "  grounds: {}", d.ground_refs.join(", "))?;
            }
        }
        write!(f, "policy digest: {}", hex::encode(d.policy_digest))
    }
}
