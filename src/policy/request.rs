//! What is asked (the exchange request) and the dynamic facts rules refer to (grounds).

use std::fmt;

use time::OffsetDateTime;

use super::transform::Transform;

/// The kind of exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExchangeKind {
    /// Who knows this subject: hit/no-hit, holder, contact point.
    Lookup,
    /// Ask a holder for case context.
    Request,
    /// Push a signal or referral to a recipient.
    Share,
    /// An auditor reading the log.
    Audit,
}

/// Every exchange kind, in index order.
pub const ALL_KINDS: [ExchangeKind; 4] = [
    ExchangeKind::Lookup,
    ExchangeKind::Request,
    ExchangeKind::Share,
    ExchangeKind::Audit,
];

impl ExchangeKind {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Lookup => "lookup",
            ExchangeKind::Request => "request",
            ExchangeKind::Share => "share",
            ExchangeKind::Audit => "audit",
        }
    }

    /// Parses the policy spelling.
    pub fn parse(s: &str) -> Option<ExchangeKind> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == s)
    }

    /// A dense index for tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One requested field, optionally in a less revealing form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequest {
    /// The catalogue field id.
    pub field: String,
    /// The requested form; `None` asks for whatever the policy allows.
    pub form: Option<Transform>,
}

impl FieldRequest {
    /// Parses `field` or `field:form`.
    pub fn parse(s: &str) -> Result<FieldRequest, super::transform::UnknownTransform> {
        match s.split_once(':') {
            Some((field, form)) => Ok(FieldRequest {
                field: field.to_owned(),
                form: Some(form.parse()?),
            }),
            None => Ok(FieldRequest {
                field: s.to_owned(),
                form: None,
            }),
        }
    }
}

/// A hypothetical or real exchange to decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The kind of exchange.
    pub kind: ExchangeKind,
    /// The calling party.
    pub requester: String,
    /// The holder asked, or the recipient of a share.
    pub counterpart: String,
    /// The purpose id.
    pub purpose: String,
    /// An opaque subject key (e.g. a hex pseudonym), matched against grounds.
    pub subject: String,
    /// The requested fields.
    pub fields: Vec<FieldRequest>,
    /// A written justification (for urgency conditions).
    pub justification: Option<String>,
}

impl ExchangeRequest {
    /// The party that receives the data: the requester, except for `share`.
    pub fn recipient(&self) -> &str {
        match self.kind {
            ExchangeKind::Share => &self.counterpart,
            _ => &self.requester,
        }
    }
}

/// An open (or closed) 458ter case consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseGround {
    /// The case id.
    pub id: String,
    /// Participating party ids.
    pub participants: Vec<String>,
    /// Subject keys in the case.
    pub subjects: Vec<String>,
    /// The case purpose id.
    pub purpose: String,
    /// When it was opened (inclusive).
    pub opened: OffsetDateTime,
    /// When it was closed (exclusive), if closed.
    pub closed: Option<OffsetDateTime>,
}

/// A consent of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGround {
    /// The consent id.
    pub id: String,
    /// The subject key.
    pub subject: String,
    /// The purpose consented to (covers its descendants).
    pub purpose: String,
    /// Recipient party ids.
    pub recipients: Vec<String>,
    /// When it was given (inclusive).
    pub given: OffsetDateTime,
    /// The first instant it no longer holds (exclusive).
    pub expires: OffsetDateTime,
    /// When it was revoked, if it was (it no longer holds from then on).
    pub revoked: Option<OffsetDateTime>,
    /// A reference to the evidence, e.g. a signed form number.
    pub evidence: String,
}

/// The grounds known for one exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grounds {
    /// Case consultations.
    pub cases: Vec<CaseGround>,
    /// Consents.
    pub consents: Vec<ConsentGround>,
}
