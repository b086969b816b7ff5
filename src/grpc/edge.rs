//! tonic's own refusals of a request's framing, said the way Ketenpoort says bad input: a message
//! over [`limits::MAX_REQUEST_BYTES`] (tonic: OUT_OF_RANGE), a call without a message, a message
//! cut short, or a compressed-flag without an encoding (tonic: INTERNAL) become INVALID_ARGUMENT
//! with an `ErrorInfo` reason.
//!
//! tonic refuses these before any handler or codec runs, and answers trailers-only (the status
//! in the response headers), so the rewrite looks at the headers of refused calls only. It
//! recognises tonic's refusals by their code and wording: OUT_OF_RANGE is never an answer of
//! ours (see the status mapping), and the INTERNAL ones carry tonic's fixed messages, which the
//! black-box tests pin (tests/gateway_bad_input.rs).

use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};

use crate::grpc::limits;
use crate::grpc::status::bad_input;

/// `ErrorInfo.reason` of a request message over the size limit.
pub const MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";
/// `ErrorInfo.reason` of a unary call that carries no request message.
pub const MISSING_MESSAGE: &str = "MISSING_MESSAGE";

/// One of the Ketenpoort services, with tonic's framing refusals rewritten.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
}

impl<S> Edge<S> {
    /// `inner` (a generated server) with the rewrite.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for Edge<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Edge<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(match Status::from_header_map(response.headers()) {
                Some(status) => match framing_refusal(&status) {
                    Some(ours) => ours.into_http(),
                    None => response,
                },
                None => response,
            })
        })
    }
}

/// Our answer to `status` when it is one of tonic's refusals of a request's framing.
pub fn framing_refusal(status: &Status) -> Option<Status> {
    let message = status.message();
    let (reason, text) = match status.code() {
        Code::OutOfRange => (
            MESSAGE_TOO_LARGE,
            format!(
                "the request message is larger than {} bytes",
                limits::MAX_REQUEST_BYTES
            ),
        ),
        Code::Internal if message == "Missing request message." => (
            MISSING_MESSAGE,
            "the call carries no request message".to_owned(),
        ),
        Code::Internal if message == "Unexpected EOF decoding stream." => (
            crate::grpc::codec::MALFORMED_MESSAGE,
            "the request message ends before its length".to_owned(),
        ),
        Code::Internal if message.starts_with("protocol error: received message with") => (
            crate::grpc::codec::MALFORMED_MESSAGE,
            "the request message's compression flag is not valid (no compression is accepted)"
                .to_owned(),
        ),
        _ => return None,
    };
    Some(bad_input(reason, &text, &[], 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn tonic_framing_refusals_become_invalid_argument() {
        for (status, reason) in [
            (
                Status::out_of_range(
                    "Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes",
                ),
                MESSAGE_TOO_LARGE,
            ),
            (
                Status::internal("Missing request message."),
                MISSING_MESSAGE,
            ),
            (
                Status::internal("Unexpected EOF decoding stream."),
                crate::grpc::codec::MALFORMED_MESSAGE,
            ),
        ] {
            let ours = framing_refusal(&status).expect("rewritten");
            assert_eq!(ours.code(), Code::InvalidArgument);
            let details = ours.get_error_details();
            assert_eq!(details.error_info().expect("error info").reason, reason);
        }
    }

    #[test]
    fn other_answers_stay_as_they_are() {
        for status in [
            Status::internal("internal error"),
            Status::permission_denied("refused by policy"),
            Status::resource_exhausted("rate limit exceeded for this party"),
        ] {
            assert!(framing_refusal(&status).is_none(), "{status:?}");
        }
    }
}
