//! A failed call as JSON: the gRPC code, the message and the rich error details the gateway
//! attaches (`google.rpc.ErrorInfo` reason and `google.rpc.BadRequest` field violations), so
//! scripts can branch on the reason code instead of parsing messages.

use serde_json::{Map, Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The canonical upper-case name of a gRPC status code, as in `google.rpc.Code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The status as a JSON object: `code`, `code_number`, `message`, and when present `error_info`
/// (`reason`, `domain`, `metadata`), `bad_request` (`field_violations`) and
/// `precondition_failure` (`violations`).
pub fn status_to_json(status: &Status) -> Value {
    let mut out = Map::new();
    out.insert("code".into(), json!(code_name(status.code())));
    out.insert("code_number".into(), json!(i32::from(status.code())));
    out.insert("message".into(), json!(status.message()));
    let details = status.get_error_details();
    if let Some(info) = details.error_info() {
        out.insert(
            "error_info".into(),
            json!({
                "reason": info.reason,
                "domain": info.domain,
                "metadata": info.metadata,
            }),
        );
    }
    if let Some(bad) = details.bad_request() {
        let violations: Vec<Value> = bad
            .field_violations
            .iter()
            .map(|v| json!({ "field": v.field, "description": v.description }))
            .collect();
        out.insert(
            "bad_request".into(),
            json!({ "field_violations": violations }),
        );
    }
    if let Some(failure) = details.precondition_failure() {
        let violations: Vec<Value> = failure
            .violations
            .iter()
            .map(
                |v| json!({ "type": v.r#type, "subject": v.subject, "description": v.description }),
            )
            .collect();
        out.insert(
            "precondition_failure".into(),
            json!({ "violations": violations }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::{ErrorDetails, FieldViolation};

    use super::*;

    #[test]
    fn plain_status_has_code_and_message_only() {
        let json = status_to_json(&Status::not_found("no such ticket"));
        assert_eq!(
            json,
            json!({"code": "NOT_FOUND", "code_number": 5, "message": "no such ticket"})
        );
    }

    #[test]
    fn rich_details_are_decoded() {
        let mut details = ErrorDetails::with_bad_request(vec![FieldViolation::new(
            "subject.number",
            "bad check digits",
        )]);
        details.set_error_info("INVALID_ARGUMENT", "ketenpoort.eu", HashMap::new());
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "subject.number: bad check digits",
            details,
        );
        // Through the wire form, as a client receives it.
        let mut headers = tonic::codegen::http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        let received = Status::from_header_map(&headers).unwrap();
        let json = status_to_json(&received);
        assert_eq!(json["code"], "INVALID_ARGUMENT");
        assert_eq!(json["error_info"]["reason"], "INVALID_ARGUMENT");
        assert_eq!(json["error_info"]["domain"], "ketenpoort.eu");
        assert_eq!(
            json["bad_request"]["field_violations"][0]["field"],
            "subject.number"
        );
    }
}
