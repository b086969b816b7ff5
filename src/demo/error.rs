//! Why the demo stopped: the gateway could not start, a call failed in transport, or a step came
//! out differently from the story (an allowed step refused, or a refused step allowed).

use crate::audit::AuditError;
use crate::client::ClientError;
use crate::grpc::{LaunchError, ServeError};

/// Why the demo did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The gateway could not be prepared (policies, keys, audit log, PKI).
    #[error("the gateway could not start: {0}")]
    Launch(#[from] LaunchError),
    /// The server could not listen or stopped with an error.
    #[error("the server failed: {0}")]
    Serve(#[from] ServeError),
    /// A party's client could not connect over mutual TLS.
    #[error("a client could not connect: {0}")]
    Connect(#[from] ClientError),
    /// A step of the story came out differently than the agreements say it must.
    #[error("step {step:?}: expected {expected}, got {got}")]
    Unexpected {
        /// The step, as printed in the story.
        step: String,
        /// What the agreements make of this step.
        expected: String,
        /// What the gateway answered.
        got: String,
    },
    /// A receipt, checkpoint or proof did not verify offline.
    #[error("audit verification failed at {what}: {source}")]
    Verify {
        /// What was being verified.
        what: String,
        /// Why it failed.
        #[source]
        source: AuditError,
    },
    /// The story could not be printed.
    #[error("cannot write the story: {0}")]
    Output(#[from] std::io::Error),
}

impl DemoError {
    /// A step whose outcome differs from the story.
    pub(crate) fn unexpected(
        step: &str,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Self::Unexpected {
            step: step.to_owned(),
            expected: expected.into(),
            got: got.into(),
        }
    }
}
