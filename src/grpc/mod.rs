//! The tonic adapters: mutual TLS, authentication, status mapping, the services and the server.
//!
//! Everything here is thin: it authenticates, refuses bad input at the wire edge (codec, edge,
//! limits, validate), turns a call into a use-case call on [`crate::exchange::Gateway`], and maps
//! the result back.

pub mod auth;
pub mod coalesce;
pub mod codec;
pub mod edge;
pub mod launch;
pub mod limits;
pub mod server;
pub mod services;
pub mod status;
pub mod tls;
pub mod validate;

pub use auth::{ACTOR_METADATA, Authenticator, TRACE_METADATA};
pub use launch::{LaunchError, Prepared, prepare, record_policy_load, reload_policies};
pub use server::{ServeError, ServerSetup, bind, serve};
