//! Ketenpoort: a gateway for minimal, policy-checked and audited information exchange
//! between police and their partners in care and welfare.
#![forbid(unsafe_code)]

pub mod client;
pub mod identity;
pub mod proto;
pub mod secret_file;
