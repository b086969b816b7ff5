//! Maps use-case errors to gRPC status codes with rich error details (`google.rpc.ErrorInfo`,
//! `google.rpc.BadRequest`), as DESIGN.md's wire contract prescribes.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::exchange::{ExchangeError, Violation};
use crate::grpc::limits;

/// The `ErrorInfo.domain` of every Ketenpoort error.
pub const ERROR_DOMAIN: &str = "ketenpoort.eu";

/// The `ErrorInfo.metadata` key holding the audit index of a logged refusal.
pub const AUDIT_INDEX_METADATA: &str = "audit_index";
/// The `ErrorInfo` metadata key naming the legal element an `ELEMENT_MISSING` refusal lacked.
pub const MISSING_ELEMENT_METADATA: &str = "missing_element";

/// A status with an `ErrorInfo` carrying `reason`.
pub fn with_reason(code: Code, message: impl Into<String>, reason: &str) -> Status {
    with_reason_and_metadata(code, message, reason, HashMap::new())
}

fn with_reason_and_metadata(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
    )
}

/// `ErrorInfo.reason` of a request refused because a field breaks its documented limits or
/// meaning (docs/wire-limits.md); the `BadRequest` field violations say which and why.
pub const INVALID_ARGUMENT_REASON: &str = "INVALID_ARGUMENT";
/// The `ErrorInfo.metadata` key holding how many problems the request had, when only the first
/// [`limits::MAX_REPORTED_VIOLATIONS`] are reported.
pub const VIOLATIONS_METADATA: &str = "violations";

/// INVALID_ARGUMENT with one field violation per problem, plus an `ErrorInfo`.
pub fn invalid_argument(violations: &[Violation]) -> Status {
    // The message names the first few; the details list more.
    let message = format!(
        "invalid request: {}",
        violations
            .iter()
            .take(3)
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ")
    );
    bad_input(
        INVALID_ARGUMENT_REASON,
        &message,
        violations,
        violations.len(),
    )
}

/// An INVALID_ARGUMENT refusal of bad input with `reason`, whose details stay small whatever the
/// input: the first [`limits::MAX_REPORTED_VIOLATIONS`] of `total` violations, each field path
/// and description cut to its bound, and the count of all of them in the `ErrorInfo` metadata
/// when some are left out.
///
/// Nothing was decided, logged in the audit log or changed for such a request; it is traced at
/// debug level only, by reason and field path, never with the values.
pub fn bad_input(reason: &str, message: &str, violations: &[Violation], total: usize) -> Status {
    let shown = &violations[..violations.len().min(limits::MAX_REPORTED_VIOLATIONS)];
    let total = total.max(violations.len());
    let mut details = if shown.is_empty() {
        ErrorDetails::new()
    } else {
        ErrorDetails::with_bad_request(
            shown
                .iter()
                .map(|v| {
                    FieldViolation::new(
                        truncate(&v.field, limits::MAX_VIOLATION_FIELD_BYTES),
                        truncate(&v.description, limits::MAX_VIOLATION_DESCRIPTION_BYTES),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut metadata = HashMap::new();
    let mut message = truncate(message, limits::MAX_STATUS_MESSAGE_BYTES);
    if total > shown.len() {
        metadata.insert(VIOLATIONS_METADATA.to_owned(), total.to_string());
        message.push_str(&format!(
            " ({total} problems, the first {} listed)",
            shown.len()
        ));
    }
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    tracing::debug!(
        reason,
        fields = %shown.iter().map(|v| truncate(&v.field, limits::MAX_VIOLATION_FIELD_BYTES)).collect::<Vec<_>>().join(","),
        total,
        "request refused as bad input; nothing changed"
    );
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// `text` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl From<ExchangeError> for Status {
    fn from(error: ExchangeError) -> Self {
        let reason = error.reason_code().to_owned();
        match &error {
            ExchangeError::InvalidArgument(violations) => invalid_argument(violations),
            ExchangeError::Denied { .. } | ExchangeError::NotAllowed { .. } => {
                with_reason(Code::PermissionDenied, error.to_string(), &reason)
            }
            ExchangeError::Refused {
                missing_ground,
                audit_index,
                missing_element,
                ..
            } => {
                let code = if *missing_ground {
                    Code::FailedPrecondition
                } else {
                    Code::PermissionDenied
                };
                // Only where the refusal is logged: enough to prove it, nothing about the subject.
                let mut metadata =
                    HashMap::from([(AUDIT_INDEX_METADATA.to_owned(), audit_index.to_string())]);
                // A catalogue field id: which legal element the exchange lacked.
                if let Some(element) = missing_element {
                    metadata.insert(MISSING_ELEMENT_METADATA.to_owned(), element.clone());
                }
                with_reason_and_metadata(code, error.to_string(), &reason, metadata)
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
            ExchangeError::KeysUnavailable(_) => {
                // The cause names the key file: keep it in the server log only.
                tracing::error!(%error, "payload key file unavailable; nothing stored or released");
                with_reason(
                    Code::Unavailable,
                    "the payload key file cannot be written; nothing was stored or released",
                    &reason,
                )
            }
            ExchangeError::PayloadUnreadable { .. } => {
                tracing::error!(%error, "stored payload unreadable");
                with_reason(Code::DataLoss, error.to_string(), &reason)
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
    fn details_of_many_huge_violations_stay_small() {
        let huge = "x".repeat(100_000);
        let violations: Vec<Violation> = (0..100_000)
            .map(|i| Violation::new(format!("participants[{i}]{huge}"), huge.clone()))
            .take(1_000)
            .collect();
        let status = bad_input(INVALID_ARGUMENT_REASON, &huge, &violations, 100_000);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.details().len() <= 2_048,
            "{}",
            status.details().len()
        );
        assert!(status.message().len() <= 320, "{}", status.message().len());
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request present");
        assert_eq!(bad.field_violations.len(), limits::MAX_REPORTED_VIOLATIONS);
        assert!(
            bad.field_violations[0]
                .field
                .starts_with("participants[0]x")
        );
        let info = details.error_info().expect("error info");
        assert_eq!(
            info.metadata.get(VIOLATIONS_METADATA).map(String::as_str),
            Some("100000")
        );
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("abc", 3), "abc");
        let cut = truncate(&"é".repeat(10), 8);
        assert!(cut.len() <= 8 && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn logged_refusal_carries_its_audit_index() {
        for (missing_ground, code) in [
            (false, Code::PermissionDenied),
            (true, Code::FailedPrecondition),
        ] {
            let status = Status::from(ExchangeError::Refused {
                reason: "CASE_REQUIRED".into(),
                missing_ground,
                audit_index: 41,
                missing_element: None,
            });
            assert_eq!(status.code(), code);
            let details = status.get_error_details();
            let info = details.error_info().expect("error info present");
            assert_eq!(info.reason, "CASE_REQUIRED");
            assert_eq!(
                info.metadata.get(AUDIT_INDEX_METADATA).map(String::as_str),
                Some("41")
            );
            assert_eq!(info.metadata.len(), 1);
        }
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

    #[test]
    fn an_unusable_key_file_is_unavailable_and_hides_its_path() {
        let status = Status::from(ExchangeError::KeysUnavailable(
            "payload key file /var/payload.keys: disk full".into(),
        ));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("/var/payload.keys"));
        let details = status.get_error_details();
        let info = details.error_info().expect("error info present");
        assert_eq!(info.reason, "PAYLOAD_KEYS_UNAVAILABLE");
    }

    #[test]
    fn an_unreadable_payload_is_data_loss_naming_its_record() {
        let status = Status::from(ExchangeError::PayloadUnreadable {
            kind: "signal",
            id: "g-0123".into(),
        });
        assert_eq!(status.code(), Code::DataLoss);
        assert!(status.message().contains("signal g-0123"));
        let details = status.get_error_details();
        let info = details.error_info().expect("error info present");
        assert_eq!(info.reason, "PAYLOAD_UNREADABLE");
    }
}
