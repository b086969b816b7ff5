//! Where the log lives. The records (entries and stored hashes) and one frame per commit are in
//! append-only files (see [`super::files`]), which are the durable truth; the sled tree `audit`
//! is their materialised view, applied after each commit and replayed from the frames on open:
//!
//! | prefix | key suffix              | value                          |
//! |--------|-------------------------|--------------------------------|
//! | `c/`   | tree size (u64 BE)      | signed checkpoint note         |
//! | `s/`   | the gateway's own keys  | the gateway's own values       |
//!
//! Gateway keys under `s/m/` ([`MEMORY_PREFIX`]) are the exception: they are committed like any
//! other (in the frame, atomically with the entry) but applied to a map in memory, never to
//! sled, and not replayed on open. They are for derived data, such as secondary indexes over
//! the gateway's records, which the gateway rebuilds from those records after opening the log
//! (see `AuditLog::rebuild_memory`): sled inserts cost the most of a commit's apply.
//!
//! The search index is in memory (see [`super::index`]), rebuilt from the entries on open.

use super::error::AuditError;
use std::sync::{Arc, RwLock};

use super::consulted::ConsultedKey;
use super::files::{Frame, LogFiles};
use super::hash::{Hash, HashReader, split_stored_hash_index, stored_hash_count};
use super::index::{KeyHasher, MemIndex, SearchQuery};
use crate::proto::v1::AuditEntry;
use prost::Message;

/// The name of the sled tree that holds the checkpoints and the gateway's state.
pub const LOG_TREE: &[u8] = b"audit";
/// Prefix of signed checkpoints.
pub const CHECKPOINT_PREFIX: &[u8] = b"c/";
/// Prefix of the gateway's state.
pub const STATE_PREFIX: &[u8] = b"s/";
/// Prefix of the gateway's memory-only state (see the module documentation).
pub const MEMORY_PREFIX: &[u8] = b"s/m/";

/// The gateway's memory-only state: key to value, in key order. Boxed slices, not vectors: a
/// pending ticket has two such keys with empty values, and a box is 16 bytes in the tree's node
/// where a vector is 24, while an empty one allocates nothing either way (about 100 bytes less
/// per ticket, measured with 250,000 tickets).
pub type MemoryState = std::collections::BTreeMap<Box<[u8]>, Box<[u8]>>;

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
    files: Arc<LogFiles>,
    /// The end offset in the entries file of each committed entry.
    ends: Arc<RwLock<Vec<u64>>>,
    in_memory: Arc<RwLock<HashLevels>>,
    index: Arc<RwLock<MemIndex>>,
    /// Checkpoints of durable commits that sled has not applied yet, seen by a reader that may
    /// not write (see [`Store::open_dir`]); empty for the writer, which replays them into sled.
    pending: Arc<RwLock<Vec<(u64, String)>>>,
}

impl Store {
    /// Opens the log stored in `dir`, whose sled database is `db`: the checkpoint tree and the
    /// record files. With `writable`, missing record files are created (a new log).
    pub fn open(db: &sled::Db, dir: &std::path::Path, writable: bool) -> Result<Store, AuditError> {
        let tree = db.open_tree(LOG_TREE)?;
        let files = LogFiles::open(dir, writable)?;
        Ok(Store {
            tree,
            files: Arc::new(files),
            ends: Arc::new(RwLock::new(Vec::new())),
            in_memory: Arc::new(RwLock::new(HashLevels::new(MEMORY_LEVEL))),
            index: Arc::new(RwLock::new(MemIndex::new())),
            pending: Arc::new(RwLock::new(Vec::new())),
        })
    }

    /// Opens an existing log directory for reading, without a writer and without writing. Fails
    /// if there is no log there (rather than creating one) or if a running gateway holds it.
    /// Durable commits that sled has not applied yet are taken from their frames; the committed
    /// records (up to the latest checkpoint) are located, as far as they are whole. Hashes are
    /// read from the file on demand and the search index is not built.
    pub fn open_dir(dir: &std::path::Path) -> Result<(sled::Db, Store), AuditError> {
        if !dir.join("conf").exists() || !LogFiles::exist(dir) {
            return Err(AuditError::Config(format!(
                "no audit log at {}",
                dir.display()
            )));
        }
        let db = open_db(dir, 16 * 1024 * 1024)?;
        let store = Store::open(&db, dir, false)?;
        let frames = store.files.frames()?;
        let committed = store.committed_frames(frames, true)?;
        *store.pending.write().unwrap_or_else(|e| e.into_inner()) = committed
            .replay
            .into_iter()
            .map(|f| (f.size(), f.checkpoint))
            .collect();
        let size = store.latest_checkpoint()?.map_or(0, |(s, _)| s);
        let loaded = store.files.load(size)?;
        *store.ends.write().unwrap_or_else(|e| e.into_inner()) = loaded.ends;
        Ok((db, store))
    }

    /// The checkpoint and state tree.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The record files.
    pub fn files(&self) -> &LogFiles {
        &self.files
    }

    /// How many records are located (whole, up to the latest checkpoint when opened).
    pub fn records(&self) -> u64 {
        self.ends.read().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// The byte range of entry `index` in the entries file, if located.
    pub fn entry_range(&self, index: u64) -> Option<(u64, u64)> {
        let ends = self.ends.read().unwrap_or_else(|e| e.into_inner());
        let i = usize::try_from(index).ok()?;
        let end = *ends.get(i)?;
        let start = if i == 0 { 0 } else { ends[i - 1] };
        Some((start, end))
    }

    /// Entries `[lo, hi)`, which must be located, with one file read.
    pub fn read_run(&self, lo: u64, hi: u64) -> Result<EntryRun, AuditError> {
        let not_located = || AuditError::Internal("entry not located");
        let (start, ends) = {
            let all = self.ends.read().unwrap_or_else(|e| e.into_inner());
            let (lo_i, hi_i) = (usize::try_from(lo), usize::try_from(hi));
            let (Ok(lo_i), Ok(hi_i)) = (lo_i, hi_i) else {
                return Err(not_located());
            };
            let ends = all.get(lo_i..hi_i).ok_or_else(not_located)?.to_vec();
            let start = if lo_i == 0 { 0 } else { all[lo_i - 1] };
            (start, ends)
        };
        let end = ends.last().copied().unwrap_or(start);
        Ok(EntryRun {
            first: lo,
            start,
            bytes: self.files.read_entries(start, end)?,
            ends,
        })
    }

    /// The end of the committed bytes in the entries file.
    pub fn data_end(&self) -> u64 {
        self.ends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .copied()
            .unwrap_or(0)
    }

    /// The entry at `index`, if stored.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, AuditError> {
        match self.entry_range(index) {
            None => Ok(None),
            Some((start, end)) => Ok(Some(self.files.read_entries(start, end)?)),
        }
    }

    /// The signed checkpoint of the largest size, with that size.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, AuditError> {
        if let Some(last) = self
            .pending
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last()
        {
            return Ok(Some(last.clone()));
        }
        self.latest_applied_checkpoint()
    }

    /// The latest checkpoint sled has applied.
    fn latest_applied_checkpoint(&self) -> Result<Option<(u64, String)>, AuditError> {
        match self.tree.scan_prefix(CHECKPOINT_PREFIX).next_back() {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv?;
                let size = key_number(&k).ok_or(AuditError::Internal("short checkpoint key"))?;
                Ok(Some((size, checkpoint_text(size, &v)?)))
            }
        }
    }

    /// The signed checkpoint of a commit that ended at tree size `size`, if one did.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<String>, AuditError> {
        if let Some((_, note)) = self
            .pending
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(s, _)| *s == size)
        {
            return Ok(Some(note.clone()));
        }
        match self.tree.get(numbered_key(CHECKPOINT_PREFIX, size))? {
            None => Ok(None),
            Some(v) => Ok(Some(checkpoint_text(size, &v)?)),
        }
    }

    /// Every stored checkpoint (size and note bytes), by size, streamed.
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), AuditError>> + use<> {
        self.checkpoints_in(0, u64::MAX)
    }

    /// The checkpoints for sizes `from..=to`, in order, as [`Store::checkpoints`] gives them.
    pub fn checkpoints_in(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), AuditError>> + use<> {
        let pending: Vec<(u64, String)> = self
            .pending
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let first_pending = pending.first().map_or(u64::MAX, |(s, _)| *s);
        self.tree
            .range(numbered_key(CHECKPOINT_PREFIX, from)..=numbered_key(CHECKPOINT_PREFIX, to))
            .map(|kv| {
                let (k, v) = kv?;
                let size = key_number(&k).ok_or(AuditError::Internal("short checkpoint key"))?;
                Ok((size, v.to_vec()))
            })
            .filter(move |r| !matches!(r, Ok((s, _)) if *s >= first_pending))
            .chain(
                pending
                    .into_iter()
                    .filter(move |(s, _)| (from..=to).contains(s))
                    .map(|(s, n)| Ok((s, n.into_bytes()))),
            )
    }

    /// The durable commits that sled has not applied: the frames of the chain past sled's
    /// latest checkpoint. With `records_whole`, only as far as their records are whole in the
    /// record files (a reader, which writes nothing); without, the caller has written them.
    fn committed_frames(
        &self,
        frames: Vec<super::files::Frame>,
        records_whole: bool,
    ) -> Result<Committed, AuditError> {
        let applied = self.latest_applied_checkpoint()?.map_or(0, |(s, _)| s);
        let whole = if records_whole {
            let newest = frames.last().map_or(0, |f| f.size()).max(applied);
            // Fewer whole records than sled's checkpoint covers is damage; `recover` and
            // `verify` name it.
            self.files.load(newest)?.ends.len() as u64
        } else {
            u64::MAX
        };
        let mut replay = Vec::new();
        for frame in frames {
            if frame.size() <= applied {
                continue;
            }
            if frame.size() > whole {
                break;
            }
            replay.push(frame);
        }
        Ok(Committed { applied, replay })
    }

    /// Brings the record files and sled up to date with the durable commits, then locates the
    /// committed records for the writer. Every frame of the chain has its records written again
    /// (a write the crash lost is redone; the others are the same bytes) and synced; the frames
    /// sled has not applied are replayed into it and sled is flushed; whatever an unfinished
    /// commit left in the record files is cut off, and the commits files are emptied. Loads
    /// the records' hashes into memory. Returns the latest checkpoint.
    pub(crate) fn recover(&self) -> Result<Option<(u64, String)>, AuditError> {
        let frames = self.files.frames()?;
        for frame in &frames {
            self.files.write_records(frame)?;
        }
        if !frames.is_empty() {
            self.files.sync_records()?;
        }
        let committed = self.committed_frames(frames, false)?;
        if !committed.replay.is_empty() {
            tracing::info!(
                commits = committed.replay.len(),
                from = committed.applied,
                "audit log: applying durable commits that the state store had not applied"
            );
            for frame in &committed.replay {
                // Memory-only keys are left out: their owner rebuilds them after the open.
                Frame::apply_each(
                    &self.tree,
                    None,
                    &frame.changes,
                    frame.size(),
                    &frame.checkpoint,
                )?;
            }
        }
        // Every commit is in sled now; make that durable before the frames go.
        self.tree.flush()?;
        let latest = self.latest_applied_checkpoint()?;
        let size = latest.as_ref().map_or(0, |(s, _)| *s);
        let loaded = self.files.load(size)?;
        if let Some((index, reason)) = loaded.problem {
            return Err(AuditError::CheckpointMismatch(format!(
                "the last checkpoint has {size} entries, but record {index} is not whole: {reason}"
            )));
        }
        self.files.truncate(size, &loaded.ends)?;
        for file in 0..2 {
            if self.files.commits_len(file)? > 0 {
                self.files.clear_commits(file)?;
            }
        }
        *self.ends.write().unwrap_or_else(|e| e.into_inner()) = loaded.ends;
        self.load_hashes(size)?;
        Ok(latest)
    }

    /// Loads the stored hashes of the first `size` records into memory, so that proofs need no
    /// file reads; the writer keeps them current with [`Store::remember`].
    fn load_hashes(&self, size: u64) -> Result<(), AuditError> {
        let mut levels = HashLevels::new(MEMORY_LEVEL);
        let total = stored_hash_count(size);
        let mut at = 0u64;
        while at < total {
            let count = (total - at).min(1 << 16);
            let packed = self.files.read_hashes(at, count)?;
            levels.push_packed(at, &packed);
            at += count;
        }
        *self.in_memory.write().unwrap_or_else(|e| e.into_inner()) = levels;
        Ok(())
    }

    /// Builds the search index from the first `size` entries, calling `progress` now and then;
    /// `consulted` opens the lists of the holders that lookups consulted.
    pub(crate) fn build_index(
        &self,
        size: u64,
        consulted: Option<Arc<ConsultedKey>>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), AuditError> {
        let mut index = MemIndex::with_consulted_key(consulted);
        let mut at = 0u64;
        while at < size {
            let upto = size.min(at + 65_536);
            for (i, raw) in self.read_run(at, upto)?.iter() {
                let entry = AuditEntry::decode(raw)
                    .map_err(|source| AuditError::Decode { index: i, source })?;
                index.add_entry(&entry)?;
            }
            at = upto;
            progress(at);
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        Ok(())
    }

    /// The hasher of the search index's keys.
    pub(crate) fn key_hasher(&self) -> KeyHasher {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .hasher()
    }

    /// Makes a written commit's records known: its entries' ends, its stored hashes, its index
    /// keys. The writer calls this before the commit is durable (the next batch's proofs need
    /// them), so readers of a live log bound what they read by the published size.
    pub(crate) fn remember(
        &self,
        ends: &[u64],
        records: &[(u64, Vec<Hash>)],
        keys: &[super::index::IndexKeys],
    ) -> Result<(), AuditError> {
        self.ends
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(ends);
        {
            let mut levels = self.in_memory.write().unwrap_or_else(|e| e.into_inner());
            for (start, hashes) in records {
                levels.push(*start, hashes);
            }
        }
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            index.add(k)?;
        }
        Ok(())
    }

    /// Searches the index; every result is confirmed against its stored entry.
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<u64>, AuditError> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let hasher = index.hasher();
        index.search(q, &mut |i, prefixes| {
            let Some(bytes) = self.entry(i)? else {
                return Ok(false);
            };
            let entry = AuditEntry::decode(bytes.as_slice())
                .map_err(|source| AuditError::Decode { index: i, source })?;
            Ok(hasher.entry_has(&entry, prefixes))
        })
    }
}

/// Consecutive entries read at once (see [`Store::read_run`]).
#[derive(Debug)]
pub struct EntryRun {
    first: u64,
    /// Where `bytes` starts in the entries file.
    start: u64,
    bytes: Vec<u8>,
    /// The end of each entry in the entries file.
    ends: Vec<u64>,
}

impl EntryRun {
    /// Each entry's index and bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let mut from = 0usize;
        self.ends.iter().enumerate().map(move |(i, &end)| {
            // Ends ascend (the files' loader checks), so each slice lies within `bytes`.
            let to = (end - self.start) as usize;
            let raw = &self.bytes[from..to];
            from = to;
            (self.first + i as u64, raw)
        })
    }
}

/// What [`Store::committed_frames`] found.
struct Committed {
    /// The size of sled's latest checkpoint.
    applied: u64,
    /// The durable commits past it, in order.
    replay: Vec<super::files::Frame>,
}

fn checkpoint_text(size: u64, v: &[u8]) -> Result<String, AuditError> {
    String::from_utf8(v.to_vec()).map_err(|_| AuditError::Corrupt {
        index: size,
        reason: "stored checkpoint is not UTF-8".into(),
    })
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
        self.files.read_hash(index)
    }
}

/// Stored hashes from one level up, in memory: `levels[l]` holds the hashes of level `l` for
/// subtrees `0..len`, without gaps (a hash that would leave a gap is not kept, and is then read
/// from the hashes file). Levels 1 and up take 32 bytes per entry (32 MB per million entries).
#[derive(Debug, Clone)]
pub struct HashLevels {
    min_level: u32,
    levels: Vec<Vec<Hash>>,
}

/// The lowest level the log keeps in memory: level 2 and up (16 bytes per entry; level 1 too
/// would be 32). A proof needs one hash of each of levels 0 and 1 at most, read from the hashes
/// file (the page cache); the upper levels, which every proof walks, are in memory. (With all
/// levels in sled, a proof at 1M took 67 µs.)
const MEMORY_LEVEL: u32 = 2;

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
