//! The tonic adapters: mutual TLS, authentication, status mapping, conversions and the services.
//!
//! Everything here is thin: it turns wire messages into use-case calls on [`crate::exchange`] and
//! their results back into wire messages.

pub mod status;
pub mod tls;
