//! The outcome of a decision.

use std::fmt;

use super::model::Effect;
use super::transform::{FieldType, Transform};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Release the granted fields.
    Allow,
    /// Release nothing.
    Deny,
}

impl Verdict {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// Allowed by at least one permit.
    Permitted,
    /// The requester or counterpart is not a known party.
    UnknownParty,
    /// The purpose is not in the vocabulary.
    UnknownPurpose,
    /// The request could not be evaluated (e.g. an unknown field or unsupported form).
    EvaluationError,
    /// A forbid rule applies.
    Forbidden,
    /// A candidate permit needs an open case consultation.
    CaseRequired,
    /// A candidate permit needs a valid consent.
    ConsentRequired,
    /// A candidate permit needs a longer written justification.
    JustificationRequired,
    /// The candidate permits are outside their validity window.
    OutsideValidity,
    /// No rule matches this kind, requester, counterpart and purpose.
    NoMatchingPermit,
    /// Permits matched but none releases a requested field.
    NothingReleasable,
    /// A candidate permit needs a legal element the exchange does not supply validly.
    ElementMissing,
}

/// Every reason code.
pub const ALL_REASONS: [ReasonCode; 12] = [
    ReasonCode::Permitted,
    ReasonCode::UnknownParty,
    ReasonCode::UnknownPurpose,
    ReasonCode::EvaluationError,
    ReasonCode::Forbidden,
    ReasonCode::CaseRequired,
    ReasonCode::ConsentRequired,
    ReasonCode::JustificationRequired,
    ReasonCode::OutsideValidity,
    ReasonCode::NoMatchingPermit,
    ReasonCode::NothingReleasable,
    ReasonCode::ElementMissing,
];

impl ReasonCode {
    /// The SCREAMING_CASE code used in fixtures, audit entries and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Permitted => "PERMITTED",
            ReasonCode::UnknownParty => "UNKNOWN_PARTY",
            ReasonCode::UnknownPurpose => "UNKNOWN_PURPOSE",
            ReasonCode::EvaluationError => "EVALUATION_ERROR",
            ReasonCode::Forbidden => "FORBIDDEN",
            ReasonCode::CaseRequired => "CASE_REQUIRED",
            ReasonCode::ConsentRequired => "CONSENT_REQUIRED",
            ReasonCode::JustificationRequired => "JUSTIFICATION_REQUIRED",
            ReasonCode::OutsideValidity => "OUTSIDE_VALIDITY",
            ReasonCode::NoMatchingPermit => "NO_MATCHING_PERMIT",
            ReasonCode::NothingReleasable => "NOTHING_RELEASABLE",
            ReasonCode::ElementMissing => "ELEMENT_MISSING",
        }
    }

    /// Parses the SCREAMING_CASE code.
    pub fn parse(s: &str) -> Option<ReasonCode> {
        ALL_REASONS.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the gRPC layer maps this to `FAILED_PRECONDITION` (a missing ground) rather than
    /// `PERMISSION_DENIED`.
    pub fn is_missing_ground(self) -> bool {
        matches!(self, ReasonCode::CaseRequired | ReasonCode::ConsentRequired)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to one rule: `agreement/rule`.
///
/// The ids are shared (`Arc<str>`) because every decision copies the refs of the rules it
/// matched: a reference count is far cheaper than two string allocations on the hot path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// The agreement id.
    pub agreement: std::sync::Arc<str>,
    /// The rule id inside the agreement.
    pub rule: std::sync::Arc<str>,
    /// Permit or forbid.
    pub effect: Effect,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.agreement, self.rule)
    }
}

/// One released field: its form and the permit that allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldGrant {
    /// The catalogue field id.
    pub field: String,
    /// The form it is released in.
    pub form: Transform,
    /// The field's catalogue type, so a projection can drop values of the wrong type.
    pub ty: FieldType,
    /// The permit that allowed this form.
    pub rule: RuleRef,
}

/// Obligations attached to an allowed exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Obligations {
    /// The strictest retention of the matching permits, in days.
    pub retention_days: Option<u32>,
    /// Flag the audit entry for the auditors.
    pub review: bool,
    /// Notify the holder's DPO.
    pub notify: bool,
    /// The holder must write its own weighing when it answers (necessity).
    pub weighing: bool,
    /// A special-category (GDPR art. 9) or judicial (art. 10) field is released, counting the
    /// holder's raised sensitivities.
    pub special_category: bool,
}

/// The use restriction that binds what is released through a case consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseRestriction {
    /// The agreement whose case consultation carried the release (several, comma-separated, when
    /// permits of several agreements matched through their cases).
    pub agreement: std::sync::Arc<str>,
    /// The restriction's text, e.g. art. 458ter §2 Sw. (each agreement's, one after the other).
    pub text: std::sync::Arc<str>,
}

impl UseRestriction {
    /// Adds `other` to the restrictions that bind a release: every one of them binds it.
    pub(crate) fn add(into: &mut Option<UseRestriction>, other: Option<&UseRestriction>) {
        let Some(other) = other else { return };
        match into {
            None => *into = Some(other.clone()),
            Some(current) if current.agreement.split(',').any(|a| a == &*other.agreement) => {}
            Some(current) => {
                *current = UseRestriction {
                    agreement: format!("{},{}", current.agreement, other.agreement).into(),
                    text: format!("{}\n\n{}", current.text, other.text).into(),
                }
            }
        }
    }
}

/// A decision: verdict, reason and, for an allow, what is released and under which obligations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The reason code.
    pub reason: ReasonCode,
    /// The rules that decided: the matching permits, or the forbids that denied.
    pub matched: Vec<RuleRef>,
    /// The released fields (empty on deny).
    pub fields: Vec<FieldGrant>,
    /// Obligations (default on deny).
    pub obligations: Obligations,
    /// The legal bases of the matching permits' agreements.
    pub legal_bases: Vec<String>,
    /// Grounds used: `case:<id>`, `consent:<id>`.
    pub ground_refs: Vec<String>,
    /// The digest of the policy set that decided.
    pub policy_digest: [u8; 32],
    /// The legal element an `ELEMENT_MISSING` refusal names.
    pub missing_element: Option<String>,
    /// The use restriction of the case consultation the release went through, if any.
    pub use_restriction: Option<UseRestriction>,
}

impl Decision {
    /// Whether the verdict is allow.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// The grant for `field`, if released.
    pub fn grant(&self, field: &str) -> Option<&FieldGrant> {
        self.fields.iter().find(|g| g.field == field)
    }

    /// A denial that carries nothing but the reason.
    pub(crate) fn deny(reason: ReasonCode, digest: [u8; 32]) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason,
            matched: Vec::new(),
            fields: Vec::new(),
            obligations: Obligations::default(),
            legal_bases: Vec::new(),
            ground_refs: Vec::new(),
            policy_digest: digest,
            missing_element: None,
            use_restriction: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UseRestriction;

    fn restriction(agreement: &str, text: &str) -> UseRestriction {
        UseRestriction {
            agreement: agreement.into(),
            text: text.into(),
        }
    }

    #[test]
    fn every_case_consultations_restriction_binds_the_release_once() {
        let mut r = None;
        UseRestriction::add(&mut r, None);
        assert_eq!(r, None);
        UseRestriction::add(&mut r, Some(&restriction("ifg", "a")));
        UseRestriction::add(&mut r, Some(&restriction("vh", "b")));
        UseRestriction::add(&mut r, Some(&restriction("ifg", "a")));
        assert_eq!(r, Some(restriction("ifg,vh", "a\n\nb")));
    }
}
