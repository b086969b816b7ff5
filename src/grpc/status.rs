//! Maps use-case errors to gRPC status codes with rich error details (`google.rpc.ErrorInfo`,
//! `google.rpc.BadRequest`), as DESIGN.md's wire contract prescribes.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::exchange::{ExchangeError, Violation};

/// The `ErrorInfo.domain` of every Ketenpoort error.
pub const ERROR_DOMAIN: &str = "ketenpoort.eu";

/// A status with an `ErrorInfo` carrying `reason`.
pub fn with_reason(code: Code, message: impl Into<String>, reason: &str) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
    )
}

/// INVALID_ARGUMENT with one field violation per problem, plus an `ErrorInfo`.
pub fn invalid_argument(violations: &[Violation]) -> Status {
    let mut details = ErrorDetails::with_bad_request(
        violations
            .iter()
            .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect::<Vec<_>>(),
    );
    details.set_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, HashMap::new());
    let message = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    Status::with_error_details(Code::InvalidArgument, message, details)
}

impl From<ExchangeError> for Status {
    fn from(error: ExchangeError) -> Self {
        let reason = error.reason_code().to_owned();
        match &error {
            ExchangeError::InvalidArgument(violations) => invalid_argument(violations),
            ExchangeError::Denied { .. } | ExchangeError::NotAllowed { .. } => {
                with_reason(Code::PermissionDenied, error.to_string(), &reason)
            }
            ExchangeError::Precondition { .. } => {
                with_reason(Code::FailedPrecondition, error.to_string(), &reason)
            }
            ExchangeError::NotFound { .. } => {
                with_reason(Code::NotFound, error.to_string(), &reason)
            }
            ExchangeError::Unavailable(_) => {
                // The cause may name files or internals: keep it in the server log only.
                tracing::error!(%error, "audit log unavailable; nothing released");
                with_reason(
                    Code::Unavailable,
                    "the audit log cannot be written; nothing was released",
                    &reason,
                )
            }
            ExchangeError::Internal(_) => {
                tracing::error!(%error, "internal error");
                with_reason(Code::Internal, "internal error", &reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_carries_reason_in_error_info() {
        let status = Status::from(ExchangeError::Denied {
            reason: "NO_MATCHING_PERMIT".into(),
        });
        assert_eq!(status.code(), Code::PermissionDenied);
        let details = status.get_error_details();
        let info = details.error_info().expect("error info present");
        assert_eq!(info.reason, "NO_MATCHING_PERMIT");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn invalid_argument_lists_field_violations() {
        let status = Status::from(ExchangeError::InvalidArgument(vec![
            Violation::new("subject.number", "bad check digits"),
            Violation::new("purpose", "unknown purpose"),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request present");
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["subject.number", "purpose"]);
    }

    #[test]
    fn missing_ground_is_failed_precondition() {
        let status = Status::from(ExchangeError::Precondition {
            reason: "CONSENT_REQUIRED".into(),
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
    }

    #[test]
    fn unavailable_hides_internal_cause() {
        let status = Status::from(ExchangeError::Unavailable("/var/secret/path".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("/var/secret"));
    }
}
