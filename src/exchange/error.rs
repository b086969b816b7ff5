//! What can go wrong in an exchange use case, in terms the transport maps to status codes.
//!
//! Messages never contain personal data: no subject number, no released value, no justification.

/// One invalid input field, for a `google.rpc.BadRequest` field violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field in the request message, e.g. `subject.number`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The failure of an exchange use case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The input is malformed; nothing was decided or logged.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<Violation>),
    /// The policy refuses; the refusal is logged. `reason` is the policy reason code.
    #[error("refused by policy: {reason}")]
    Denied {
        /// Policy reason code, e.g. `NO_MATCHING_PERMIT`, `FORBIDDEN`.
        reason: String,
    },
    /// A ground the policy requires is missing (`CASE_REQUIRED`, `CONSENT_REQUIRED`), or the
    /// object is in a state that does not allow the operation (`TICKET_NOT_PENDING`).
    #[error("precondition failed: {reason}")]
    Precondition {
        /// Reason code.
        reason: String,
    },
    /// The policy refused an exchange, and the refusal is in the audit log at `audit_index`.
    /// The index lets the caller later prove it was refused; it says nothing about the subject.
    #[error("{}: {reason}", if *.missing_ground { "precondition failed" } else { "refused by policy" })]
    Refused {
        /// Policy reason code, e.g. `NO_MATCHING_PERMIT`, `CASE_REQUIRED`.
        reason: String,
        /// Whether a ground the policy requires is missing (FAILED_PRECONDITION rather than
        /// PERMISSION_DENIED).
        missing_ground: bool,
        /// Index of the refusal's audit entry.
        audit_index: u64,
        /// The legal element an `ELEMENT_MISSING` refusal names (a catalogue field id).
        missing_element: Option<String>,
    },
    /// The caller may not perform this operation at all (e.g. open a case without the role).
    #[error("not allowed: {reason}")]
    NotAllowed {
        /// Reason code, e.g. `ROLE_REQUIRED`.
        reason: String,
    },
    /// The ticket, signal, case or consent does not exist for this caller.
    #[error("{kind} not found")]
    NotFound {
        /// What was looked for: `ticket`, `signal`, `case`, `consent`.
        kind: &'static str,
    },
    /// The audit log cannot be written, so nothing was released or changed.
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
    /// The payload key file cannot be written or synced, so the payload was not stored (never
    /// in clear instead) and nothing was released.
    #[error("payload key file unavailable: {0}")]
    KeysUnavailable(String),
    /// A stored payload cannot be opened: its key is gone or damaged (the key file was lost or
    /// altered), or its ciphertext was altered. `kind` and `id` name the ticket or signal.
    #[error("the payload of {kind} {id} cannot be read: its key is missing or damaged")]
    PayloadUnreadable {
        /// `ticket` or `signal`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// Stored state could not be read or decoded.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ExchangeError {
    /// A single-field invalid argument.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![Violation::new(field, description)])
    }

    /// The machine-readable reason code for `google.rpc.ErrorInfo`.
    pub fn reason_code(&self) -> &str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::Denied { reason }
            | Self::Refused { reason, .. }
            | Self::Precondition { reason }
            | Self::NotAllowed { reason } => reason,
            Self::NotFound { .. } => "NOT_FOUND",
            Self::Unavailable(_) => "AUDIT_UNAVAILABLE",
            Self::KeysUnavailable(_) => "PAYLOAD_KEYS_UNAVAILABLE",
            Self::PayloadUnreadable { .. } => "PAYLOAD_UNREADABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}
