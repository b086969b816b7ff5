//! Ketenpoort: a gateway for minimal, policy-checked and audited information exchange
//! between police and their partners in care and welfare.
#![forbid(unsafe_code)]

pub mod audit;
pub mod bench;
pub mod client;
pub mod config;
pub mod demo;
pub mod exchange;
pub mod grpc;
pub mod identity;
pub mod policy;
pub mod proto;
pub mod release;
pub mod secret_file;
pub mod store;
