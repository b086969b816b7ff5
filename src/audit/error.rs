//! The errors of the audit log.

use std::path::PathBuf;

/// Everything that can go wrong in the audit log. Messages name indexes, sizes and keys, never
/// the content of an entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The storage engine failed.
    #[error("audit storage: {0}")]
    Storage(#[from] sled::Error),
    /// Another process (usually a running gateway) holds the log open.
    #[error(
        "the audit log in {} is in use by another process (a running `ketenpoort serve`?): \
         stop it, or work on a copy of the data directory, or read the log through the Audit RPCs",
        dir.display()
    )]
    InUse {
        /// The log directory.
        dir: PathBuf,
    },
    /// A record file of the log could not be read or written.
    #[error("audit log file {path}: {source}")]
    File {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key file or directory could not be read or written.
    #[error("audit key file {path}: {source}")]
    KeyFile {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key (signer or verifier) is malformed.
    #[error("malformed key: {0}")]
    BadKey(String),
    /// A signed note or checkpoint is malformed or does not verify.
    #[error("note: {0}")]
    BadNote(String),
    /// A proof or receipt is malformed or does not verify.
    #[error("proof: {0}")]
    BadProof(String),
    /// An index or size beyond the tree.
    #[error("index {index} is out of range for a tree of size {size}")]
    OutOfRange {
        /// The index or size asked for.
        index: u64,
        /// The size of the tree.
        size: u64,
    },
    /// A stored record is missing or corrupt: the log has been damaged or tampered with.
    #[error("audit log is corrupt at index {index}: {reason}")]
    Corrupt {
        /// The first record index found to be bad.
        index: u64,
        /// What is wrong, without entry content.
        reason: String,
    },
    /// The stored hashes do not recompute to the last signed checkpoint.
    #[error("audit log does not match its last signed checkpoint: {0}")]
    CheckpointMismatch(String),
    /// The log refuses appends: an earlier commit failed, or it is shutting down.
    #[error("audit log is not accepting appends (an earlier write failed; reopen the log)")]
    NotAccepting,
    /// The commit of this append's batch failed; nothing of it is acknowledged.
    #[error("audit commit failed: {0}")]
    CommitFailed(String),
    /// The store this append depends on (see [`super::SyncFirst`]) could not be synced, so
    /// nothing of the append was written.
    #[error("cannot make what this commit depends on durable: {0}")]
    SyncFirst(String),
    /// A state change used a key outside the gateway's `s/` prefix.
    #[error("state keys must start with \"s/\"")]
    BadStateKey,
    /// The caller's configuration cannot work.
    #[error("audit configuration: {0}")]
    Config(String),
    /// A stored entry could not be decoded.
    #[error("audit entry {index} does not decode: {source}")]
    Decode {
        /// The entry index.
        index: u64,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// A broken internal invariant; a bug.
    #[error("audit internal error: {0}")]
    Internal(&'static str),
}
