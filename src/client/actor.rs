//! Naming the actor on typed (generated) clients: an interceptor that puts `ketenpoort-actor` (and
//! optionally `ketenpoort-trace-id`) on every call, e.g.
//! `ExchangeClient::with_interceptor(channel, ActorInterceptor::new("agent-0042")?)`.

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::dynamic::{ACTOR_METADATA, TRACE_METADATA};

/// Why an actor or trace id cannot be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// Metadata values must be printable ASCII.
    #[error("{0} must be printable ASCII")]
    NotAscii(&'static str),
}

/// Adds the actor (and trace id) metadata to every request.
#[derive(Debug, Clone)]
pub struct ActorInterceptor {
    actor: AsciiMetadataValue,
    trace_id: Option<AsciiMetadataValue>,
}

impl ActorInterceptor {
    /// An interceptor naming `actor` on every call.
    pub fn new(actor: &str) -> Result<Self, ActorError> {
        Ok(Self {
            actor: ascii(actor, ACTOR_METADATA)?,
            trace_id: None,
        })
    }

    /// Also sends `trace_id` on every call.
    pub fn with_trace_id(mut self, trace_id: &str) -> Result<Self, ActorError> {
        self.trace_id = Some(ascii(trace_id, TRACE_METADATA)?);
        Ok(self)
    }
}

fn ascii(value: &str, key: &'static str) -> Result<AsciiMetadataValue, ActorError> {
    AsciiMetadataValue::try_from(value).map_err(|_| ActorError::NotAscii(key))
}

impl Interceptor for ActorInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert(ACTOR_METADATA, self.actor.clone());
        if let Some(trace_id) = &self.trace_id {
            metadata.insert(TRACE_METADATA, trace_id.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_actor_and_trace_id() {
        let mut interceptor = ActorInterceptor::new("agent-0042")
            .unwrap()
            .with_trace_id("trace-1")
            .unwrap();
        let request = interceptor.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get(ACTOR_METADATA).unwrap(),
            "agent-0042"
        );
        assert_eq!(request.metadata().get(TRACE_METADATA).unwrap(), "trace-1");
    }

    #[test]
    fn refuses_non_ascii() {
        assert!(ActorInterceptor::new("agent\n").is_err());
    }
}
