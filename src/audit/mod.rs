//! The signed, tamper-evident audit log.
//!
//! An append-only RFC 6962 Merkle tree: entries and stored hashes in append-only files (the hashes
//! file is Go's `golang.org/x/mod/sumdb/tlog` stored-hash layout byte for byte), checkpoints and
//! the gateway's state in sled; C2SP signed-note checkpoints (Ed25519 via ring), receipts in the
//! C2SP `tlog-proof@v1` format, a group-commit writer that commits entries together with the
//! gateway's state changes, search indexes, and full verification. Go's `sumdb/note` and
//! `sumdb/tlog` verify our checkpoints, receipts and proofs unchanged (see `interop/go/`).
//!
//! # Durability
//! An append is acknowledged (its [`Receipt`] returned) only after the batch holding it is
//! durable: its entries, their stored hashes and the batch's commit frame (its signed checkpoint
//! and the callers' state changes, CRC-protected) are appended to the log files, and the four
//! files are synced together. sled, which holds the checkpoints and the gateway's state, is a
//! view of the frames: each frame is applied to it after the sync, and on open the frames it had
//! not yet applied are replayed. A commit counts only if its frame and all its records are whole;
//! anything after the first that is not (a crash half-way) was never acknowledged and is cut off,
//! so the state changes and their entries are durable together or not at all (see [`files`]). A
//! failed write or sync fails every waiter of the batch, and the log refuses appends until
//! reopened. On open, the root recomputed from the stored hashes must equal the last signed
//! checkpoint. The search index is derived data, kept in memory and rebuilt from the entries on
//! open.
//!
//! An append can depend on a store outside the log (the gateway's payload keys, see
//! [`SyncFirst`]): the writer syncs that store before it writes the batch holding the append, so
//! that no frame on disk depends on something a crash could still lose.
//!
//! # Key rotation
//! The origin never changes; keys overlap by dual signing. The keys live in `<data-dir>/keys/`:
//! `audit.key` (current) and, during an overlap, `audit.previous.key`.
//! 1. Stop the gateway and run `ketenpoort audit rotate-key`: the current key becomes the
//!    previous one, a new key is made, and a key-rotation entry is appended and signed by both.
//! 2. Publish the new verifier key (`ketenpoort audit vkey`) next to the old one. While both key
//!    files exist, [`keys::load_signers`] returns both and every checkpoint carries both
//!    signatures, so parties pinning either key keep verifying.
//! 3. When every party pins the new key, run `ketenpoort audit retire-key`. Old checkpoints and
//!    receipts keep verifying against the old verifier key, which auditors keep pinned for them
//!    (`ketenpoort audit verify --vkey OLD --vkey NEW`).

pub mod checkpoint;
pub mod consulted;
pub mod entry;
pub mod error;
pub mod files;
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
pub use log::{AuditConfig, AuditLog, StateChange, SyncFirst};
pub use proof::{Receipt, VerifiedReceipt, verify_receipt, verify_receipt_with};
pub use verify::{VerifyReport, verify_log};
