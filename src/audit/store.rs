//! The key layout of the audit log's single sled tree. Everything one group commit writes lives
//! in this one tree, because a sled `Batch` is atomic only within one tree:
//!
//! | prefix | key suffix              | value                          |
//! |--------|-------------------------|--------------------------------|
//! | `e/`   | entry index (u64 BE)    | entry bytes (the Merkle leaf)  |
//! | `h/`   | stored-hash index (BE)  | 32-byte hash, Go tlog layout   |
//! | `c/`   | tree size (u64 BE)      | signed checkpoint note         |
//! | `i/`   | see `index.rs`          | empty                          |
//! | `s/`   | the gateway's own keys  | the gateway's own values       |

use super::error::AuditError;
use super::hash::{Hash, HashReader};

/// The name of the sled tree that holds the whole log.
pub const LOG_TREE: &[u8] = b"audit";
/// Prefix of entries.
pub const ENTRY_PREFIX: &[u8] = b"e/";
/// Prefix of stored hashes.
pub const HASH_PREFIX: &[u8] = b"h/";
/// Prefix of signed checkpoints.
pub const CHECKPOINT_PREFIX: &[u8] = b"c/";
/// Prefix of search-index keys.
pub const INDEX_PREFIX: &[u8] = b"i/";
/// Prefix of the gateway's state.
pub const STATE_PREFIX: &[u8] = b"s/";

/// `prefix ‖ n (big-endian)`, so keys sort by number.
pub fn numbered_key(prefix: &[u8], n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The number at the end of a numbered key.
pub fn key_number(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Read access to the stored log.
#[derive(Clone)]
pub struct Store {
    tree: sled::Tree,
}

impl Store {
    /// Wraps the log tree.
    pub fn new(tree: sled::Tree) -> Store {
        Store { tree }
    }

    /// Opens the log tree of an already opened sled database.
    pub fn open(db: &sled::Db) -> Result<Store, AuditError> {
        Ok(Store::new(db.open_tree(LOG_TREE)?))
    }

    /// Opens an existing log directory for reading, without a writer. Fails if there is no log
    /// there (rather than creating one) or if a running gateway holds it.
    pub fn open_dir(dir: &std::path::Path) -> Result<(sled::Db, Store), AuditError> {
        if !dir.join("conf").exists() {
            return Err(AuditError::Config(format!(
                "no audit log at {}",
                dir.display()
            )));
        }
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        let store = Store::open(&db)?;
        Ok((db, store))
    }

    /// The underlying tree.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The entry at `index`, if stored.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(self
            .tree
            .get(numbered_key(ENTRY_PREFIX, index))?
            .map(|v| v.to_vec()))
    }

    /// The signed checkpoint of the largest size, with that size.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, AuditError> {
        match self.tree.scan_prefix(CHECKPOINT_PREFIX).next_back() {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv?;
                let size = key_number(&k).ok_or(AuditError::Internal("short checkpoint key"))?;
                let note = String::from_utf8(v.to_vec()).map_err(|_| AuditError::Corrupt {
                    index: size,
                    reason: "stored checkpoint is not UTF-8".into(),
                })?;
                Ok(Some((size, note)))
            }
        }
    }

    /// The index of the last stored entry, if any.
    pub fn last_entry_index(&self) -> Result<Option<u64>, AuditError> {
        match self.tree.scan_prefix(ENTRY_PREFIX).next_back() {
            None => Ok(None),
            Some(kv) => Ok(key_number(&kv?.0)),
        }
    }
}

impl HashReader for Store {
    fn read_hash(&self, index: u64) -> Result<Hash, AuditError> {
        let v = self
            .tree
            .get(numbered_key(HASH_PREFIX, index))?
            .ok_or_else(|| AuditError::Corrupt {
                index: super::hash::record_of_stored_hash(index),
                reason: format!("stored hash {index} is missing"),
            })?;
        v.as_ref().try_into().map_err(|_| AuditError::Corrupt {
            index: super::hash::record_of_stored_hash(index),
            reason: format!("stored hash {index} is not 32 bytes"),
        })
    }
}
