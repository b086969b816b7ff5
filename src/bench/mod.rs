//! The end-to-end benchmark behind `ketenpoort bench`: the gateway's exchanges against a bare tonic
//! mutual-TLS echo measured in the same run, on the same cores, with the same callers.
//!
//! - [`echo`]: the baseline server, behind the gateway's own TLS acceptor.
//! - [`load`]: the load driver (bounded in time and count) and its latency statistics.
//! - [`scenario`]: starting both servers, preparing data and measuring each target.
//! - [`prefill`]: filling the gateway's audit log first, to measure with a log of realistic size.

pub mod echo;
pub mod load;
pub mod prefill;
pub mod scenario;

pub use load::{LoadReport, LoadSettings, drive};
pub use scenario::{BenchError, BenchReport, BenchSettings, run};
