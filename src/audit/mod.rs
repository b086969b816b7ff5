//! The signed, tamper-evident audit log.
//!
//! An append-only RFC 6962 Merkle tree in sled, with stored hashes in the layout of Go's
//! `golang.org/x/mod/sumdb/tlog`, C2SP signed-note checkpoints (Ed25519 via ring), receipts in the
//! C2SP `tlog-proof@v1` format, a group-commit writer that commits entries together with the
//! gateway's state changes, search indexes, and full verification. Go's `sumdb/note` and
//! `sumdb/tlog` verify our checkpoints, receipts and proofs unchanged.

pub mod checkpoint;
pub mod entry;
pub mod error;
pub mod hash;
pub mod index;
pub mod keys;
pub mod log;
pub mod note;
pub mod proof;
pub mod store;
pub mod verify;
mod writer;

pub use checkpoint::Checkpoint;
pub use error::AuditError;
pub use hash::Hash;
pub use index::SearchQuery;
pub use keys::{Signer, Verifier};
pub use log::{AuditConfig, AuditLog, StateChange};
pub use proof::{Receipt, VerifiedReceipt, verify_receipt, verify_receipt_with};
pub use verify::{VerifyReport, verify_log};
