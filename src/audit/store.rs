//! The key layout of the audit log's single sled tree. Everything one group commit writes lives
//! in this one tree, because a sled `Batch` is atomic only within one tree:
//!
//! | prefix | key suffix              | value                          |
//! |--------|-------------------------|--------------------------------|
//! | `e/`   | entry index (u64 BE)    | entry bytes (the Merkle leaf)  |
//! | `h/`   | `StoredHashIndex(0, n)` | `StoredHashes(n)`, 32 B each   |
//! | `c/`   | tree size (u64 BE)      | signed checkpoint note         |
//! | `i/`   | field value ‖ first idx | posting list (see `index.rs`)  |
//! | `s/`   | the gateway's own keys  | the gateway's own values       |

use super::error::AuditError;
use std::sync::{Arc, RwLock};

use super::hash::{
    Hash, HashReader, record_of_stored_hash, split_stored_hash_index, stored_hash_index,
};

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

/// Opens the sled database at `dir`. sled releases its file lock lazily (its page cache is freed
/// by epoch-based reclamation), so reopening a log just closed in this process may briefly see
/// the old lock; that case is retried for up to three seconds.
pub fn open_db(dir: &std::path::Path, cache_capacity: u64) -> Result<sled::Db, AuditError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity)
            .open()
        {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(AuditError::InUse {
                        dir: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

/// Read access to the stored log.
#[derive(Clone)]
pub struct Store {
    tree: sled::Tree,
    in_memory: Arc<RwLock<HashLevels>>,
}

impl Store {
    /// Wraps the log tree.
    pub fn new(tree: sled::Tree) -> Store {
        Store {
            tree,
            in_memory: Arc::new(RwLock::new(HashLevels::new(MEMORY_LEVEL))),
        }
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
        let db = open_db(dir, 64 * 1024 * 1024)?;
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

/// The key of the stored hashes written with record `n`: Go's tlog asks a store to write
/// `StoredHashes(n)` starting at `StoredHashIndex(0, n)`, and we keep them as one value there.
pub fn hashes_key(n: u64) -> Vec<u8> {
    numbered_key(HASH_PREFIX, stored_hash_index(0, n))
}

impl HashReader for Store {
    fn read_hash(&self, index: u64) -> Result<Hash, AuditError> {
        // A poisoned lock only means a reader panicked; the levels are still whole.
        if let Some(h) = self
            .in_memory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
        {
            return Ok(h);
        }
        self.read_stored_hash(index)
    }
}

impl Store {
    /// Loads every stored hash into memory (one scan of `h/`), so that proofs need no sled
    /// reads; the writer keeps them current with [`Store::remember`].
    pub fn load_hashes(&self) -> Result<(), AuditError> {
        let mut levels = HashLevels::new(MEMORY_LEVEL);
        for kv in self.tree.scan_prefix(HASH_PREFIX) {
            let (k, v) = kv?;
            let start = key_number(&k).ok_or(AuditError::Internal("short hash key"))?;
            levels.push_packed(start, &v);
        }
        *self.in_memory.write().unwrap_or_else(|e| e.into_inner()) = levels;
        Ok(())
    }

    /// Remembers hashes just made durable: `(start, hashes)` as one record's stored hashes.
    pub fn remember(&self, records: &[(u64, Vec<Hash>)]) {
        let mut levels = self.in_memory.write().unwrap_or_else(|e| e.into_inner());
        for (start, hashes) in records {
            levels.push(*start, hashes);
        }
    }
}

/// Stored hashes from one level up, in memory: `levels[l]` holds the hashes of level `l` for
/// subtrees `0..len`, without gaps (a hash that would leave a gap is not kept, and is then read
/// from sled). All levels take 64 bytes per entry (64 MB per million entries).
#[derive(Debug, Clone)]
pub struct HashLevels {
    min_level: u32,
    levels: Vec<Vec<Hash>>,
}

/// The lowest level the log keeps in memory: all of them. With level 0 in sled, a proof at 1M
/// entries still took 67 µs, as random leaf-hash reads miss sled's page cache.
const MEMORY_LEVEL: u32 = 0;

impl HashLevels {
    /// Empty levels, keeping hashes of `min_level` and up.
    pub fn new(min_level: u32) -> HashLevels {
        HashLevels {
            min_level,
            levels: Vec::new(),
        }
    }

    /// The hash at stored index `index`, if kept.
    pub fn get(&self, index: u64) -> Option<Hash> {
        let (level, n) = split_stored_hash_index(index);
        let n = usize::try_from(n).ok()?;
        self.levels.get(level as usize)?.get(n).copied()
    }

    /// Keeps the stored hashes of one record, which start at stored index `start`.
    pub fn push(&mut self, start: u64, hashes: &[Hash]) {
        for (j, h) in hashes.iter().enumerate() {
            self.keep(start + j as u64, h);
        }
    }

    /// Like [`HashLevels::push`], for hashes packed as a stored value (32 bytes each).
    pub fn push_packed(&mut self, start: u64, packed: &[u8]) {
        for (j, h) in packed.chunks_exact(32).enumerate() {
            if let Ok(h) = <&Hash>::try_from(h) {
                self.keep(start + j as u64, h);
            }
        }
    }

    fn keep(&mut self, index: u64, h: &Hash) {
        let (level, n) = split_stored_hash_index(index);
        if level < self.min_level {
            return;
        }
        let level = level as usize;
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        let at = &mut self.levels[level];
        if at.len() as u64 == n {
            at.push(*h);
        }
    }
}

impl Store {
    /// Reads a stored hash from sled.
    fn read_stored_hash(&self, index: u64) -> Result<Hash, AuditError> {
        let record = record_of_stored_hash(index);
        let offset = usize::try_from(index - stored_hash_index(0, record))
            .map_err(|_| AuditError::Internal("stored hash offset overflow"))?
            * 32;
        let missing = || AuditError::Corrupt {
            index: record,
            reason: format!("stored hash {index} is missing"),
        };
        let v = self.tree.get(hashes_key(record))?.ok_or_else(missing)?;
        v.get(offset..offset + 32)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(missing)
    }
}
