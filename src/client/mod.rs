//! Client side of the wire contract: a mutual-TLS connector and a generic (reflection-based)
//! caller for every RPC.
//!
//! - [`tls`]: a party's client identity (from a dev PKI directory or PEM paths) and a tonic
//!   [`tonic::transport::Channel`] built on it with rustls and the ring provider.
//! - [`connector`]: the gateway address plus the dev PKI: a channel for any party.
//! - [`actor`]: an interceptor that names the actor on every call of a generated client.
//! - [`dynamic`]: the descriptor pool of every callable service, a [`tonic::codec::Codec`] for
//!   [`prost_reflect::DynamicMessage`] and a unary call with the actor metadata.
//! - [`error_json`]: a failed call as JSON, with its rich error details.
//! - [`template`]: a JSON skeleton of a request, for `ketenpoort call --list`.
//!
//! The CLI (`ketenpoort call`), the benchmark, the demo and black-box tests all use this module, so
//! a client is written once.

pub mod actor;
pub mod connector;
pub mod dynamic;
pub mod error_json;
pub mod template;
pub mod tls;

pub use actor::{ActorError, ActorInterceptor};
pub use connector::Connector;
pub use dynamic::{
    ACTOR_METADATA, CallContext, DynamicCodec, RpcCatalog, TRACE_METADATA, call_unary,
    message_from_json, message_to_json, message_to_json_text, rpc_path,
};
pub use error_json::status_to_json;
pub use template::json_template;
pub use tls::{ClientError, ClientTls, connect, connect_lazy, endpoint};
