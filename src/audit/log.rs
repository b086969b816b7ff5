//! The audit log: an append-only RFC 6962 log (records in append-only files, checkpoints and the
//! gateway's state in sled), written by a group-commit writer and read concurrently by anyone
//! holding an [`AuditLog`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpoint;
use super::consulted::ConsultedKey;
use super::error::AuditError;
use super::hash::{Frontier, Hash, leaf_hash, prove_record, prove_tree};
use super::index::{KeyHasher, SearchQuery};
use super::keys::{Signer, Verifier};
use super::note;
use super::proof::{Receipt, TlogProof};
use super::store::{
    CHECKPOINT_PREFIX, MEMORY_PREFIX, MemoryState, STATE_PREFIX, Store, numbered_key,
};
use super::writer::{Append, Companion, Writer};
use crate::proto::v1::AuditEntry;

/// How the log is opened and how the writer batches.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The directory of the log (conventionally `<data-dir>/audit`): the sled database of its
    /// checkpoints and state, and its record files under `log/`.
    pub dir: PathBuf,
    /// The checkpoint origin, the log's permanent identity; also the signing key's name.
    pub origin: String,
    /// The most appends in one group commit (a lookup's two entries are one append).
    pub batch_max: usize,
    /// How long the writer waits for more appends before committing a batch that is not full;
    /// zero commits whatever is queued at once (appends that arrive during a flush still share
    /// the next commit).
    pub batch_delay: Duration,
    /// Capacity of the append queue; a full queue makes `append` wait (back-pressure).
    pub queue_capacity: usize,
    /// The sled page cache, in bytes (sled holds only the checkpoints and the gateway's state).
    pub cache_capacity: u64,
    /// The size past which the writer switches commits files and compacts the old one (syncs
    /// the record files, flushes sled, empties it), in the background.
    pub compact_at: u64,
    /// The gateway's key for consulted-holder commitments (see [`super::consulted`]); without
    /// it, a search by party does not find the lookups that consulted that party.
    pub consulted_key: Option<Arc<ConsultedKey>>,
    /// The store that the appends made with [`AuditLog::append_after_sync`] depend on; the
    /// writer syncs it before it writes their commit.
    pub sync_first: Option<Arc<dyn SyncFirst>>,
}

/// A store outside the log that some commits depend on (the gateway's payload keys, without
/// which the ciphertexts a commit stores are unreadable). The writer makes it durable before it
/// writes a batch holding such a commit, so that no frame reaches the disk, not even by the
/// kernel's own write-back, before what it depends on is there; one sync serves the batch.
pub trait SyncFirst: Send + Sync + std::fmt::Debug {
    /// Whether anything was written to the store that is not yet durable; when not, the writer
    /// skips the sync.
    fn is_pending(&self) -> bool {
        true
    }

    /// Makes every write made to the store before the call durable.
    fn sync_first(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

impl AuditConfig {
    /// The defaults for a log in `dir` with the given origin.
    pub fn new(dir: impl Into<PathBuf>, origin: impl Into<String>) -> AuditConfig {
        AuditConfig {
            dir: dir.into(),
            origin: origin.into(),
            batch_max: 1024,
            batch_delay: Duration::ZERO,
            queue_capacity: 8192,
            cache_capacity: 8 * 1024 * 1024,
            compact_at: 16 * 1024 * 1024,
            consulted_key: None,
            sync_first: None,
        }
    }
}

/// A change to the gateway's own state, committed atomically with an audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The key; must start with `s/`.
    pub key: Vec<u8>,
    /// The new value, or `None` to delete the key.
    pub value: Option<Vec<u8>>,
}

impl StateChange {
    /// Sets `key` to `value`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> StateChange {
        StateChange {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// Deletes `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> StateChange {
        StateChange {
            key: key.into(),
            value: None,
        }
    }
}

/// State shared by the handle and the writer.
pub(crate) struct Shared {
    pub store: Store,
    /// Makes the search keys of an entry, on the appending task.
    keys: KeyHasher,
    /// See [`AuditConfig::sync_first`].
    pub sync_first: Option<Arc<dyn SyncFirst>>,
    pub accepting: AtomicBool,
    /// Unit tests set this to make the next commit fail as a storage error would.
    #[cfg(test)]
    pub fail_next_commit: AtomicBool,
    /// Unit tests set this to make the next sync fail as a device error would.
    #[cfg(test)]
    pub fail_next_sync: AtomicBool,
    size: AtomicU64,
    /// The latest checkpoint's size and signed note, replaced after each durable commit.
    latest: RwLock<(u64, String)>,
    /// Makes each commit's state changes visible at once: the applier holds it for writing
    /// while it applies a commit key by key, and every state read holds it for reading.
    /// (sled's own atomic batch rolls its log buffer twice per batch, each roll a task on
    /// sled's thread pool that wakes all seven of its idle threads: about 14 context switches
    /// per commit. A commit needs no atomicity from sled on disk: its frame is the durable
    /// record, replayed on open past sled's latest checkpoint, which is written last.)
    /// It also holds the memory-only state (see [`super::store::MEMORY_PREFIX`]).
    pub gate: RwLock<MemoryState>,
}

impl Shared {
    /// Makes a durable checkpoint the one readers see.
    pub fn publish(&self, size: u64, signed: String) {
        // A poisoned lock only means a reader panicked; the value is still whole.
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        *latest = (size, signed);
        self.size.store(size, Ordering::Release);
    }

    fn latest(&self) -> (u64, String) {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct Inner {
    shared: Arc<Shared>,
    db: sled::Db,
    tx: mpsc::Sender<Append>,
    verifiers: Vec<Verifier>,
    consulted_key: Option<Arc<ConsultedKey>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    close: Mutex<Option<oneshot::Sender<()>>>,
}

/// A handle on the audit log; cheap to clone, usable from any task.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("size", &self.size())
            .field("accepting", &self.is_accepting())
            .finish()
    }
}

impl AuditLog {
    /// Opens (or creates) the log and starts its writer on the current tokio runtime.
    ///
    /// `signers[0]` is the current key; every signer signs every checkpoint, which is how a key
    /// rotation overlaps. On open, the root recomputed from the stored hashes must equal the
    /// last signed checkpoint, whose signature must verify; otherwise opening fails.
    pub fn open(config: AuditConfig, signers: Vec<Signer>) -> Result<AuditLog, AuditError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| AuditError::Config("AuditLog::open needs a tokio runtime".into()))?;
        if signers.is_empty() {
            return Err(AuditError::Config("at least one signer is needed".into()));
        }
        if let Some(s) = signers.iter().find(|s| s.name() != config.origin) {
            return Err(AuditError::Config(format!(
                "signer {:?} is not named after the origin {:?}",
                s.name(),
                config.origin
            )));
        }
        let db = super::store::open_db(&config.dir, config.cache_capacity)?;
        let store = Store::open(&db, &config.dir, true)?;
        let verifiers: Vec<Verifier> = signers.iter().map(Signer::verifier).collect();
        let (size, signed, frontier) = recover(&store, &config.origin, &signers, &verifiers)?;
        if size > 0 {
            tracing::info!(entries = size, "audit log: building the search index");
        }
        store.build_index(size, config.consulted_key.clone(), &mut |done| {
            if done.is_multiple_of(1 << 20) {
                tracing::info!(done, of = size, "audit log: indexing");
            }
        })?;
        let consulted_key = config.consulted_key.clone();
        let shared = Arc::new(Shared {
            keys: store.key_hasher(),
            store,
            sync_first: config.sync_first.clone(),
            accepting: AtomicBool::new(true),
            #[cfg(test)]
            fail_next_commit: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_sync: AtomicBool::new(false),
            size: AtomicU64::new(size),
            latest: RwLock::new((size, signed)),
            gate: RwLock::new(MemoryState::new()),
        });
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (close_tx, close_rx) = oneshot::channel::<()>();
        let writer = Writer {
            shared: shared.clone(),
            frontier,
            signers,
            origin: config.origin.clone(),
            batch_max: config.batch_max,
            batch_delay: config.batch_delay,
            compact_at: config.compact_at.max(1),
            active: 0,
            commits_end: [0, 0],
            prepared: [false, false],
            compacting: None,
            records_synced_at: std::time::Instant::now(),
            records_syncing: Arc::new(AtomicBool::new(false)),
        };
        let handle = runtime.spawn(writer.run(rx, close_rx));
        Ok(AuditLog {
            inner: Arc::new(Inner {
                shared,
                db,
                tx,
                verifiers,
                consulted_key,
                writer: Mutex::new(Some(handle)),
                close: Mutex::new(Some(close_tx)),
            }),
        })
    }

    /// Appends `entry` together with the caller's state changes, and returns its receipt once
    /// the batch holding both is durable. A full queue makes this wait (back-pressure).
    pub async fn append(
        &self,
        entry: &AuditEntry,
        changes: Vec<StateChange>,
    ) -> Result<Receipt, AuditError> {
        let keys = self.inner.shared.keys.keys_of(entry);
        self.append_keyed(entry, keys, changes, true, None, false)
            .await
    }

    /// Appends as [`AuditLog::append`] does, once the log's [`SyncFirst`] store holds durably
    /// every write made to it before this call: the writer syncs it, once for the whole batch,
    /// before it writes the batch. If that sync fails, nothing of this append is written.
    pub async fn append_after_sync(
        &self,
        entry: &AuditEntry,
        changes: Vec<StateChange>,
    ) -> Result<Receipt, AuditError> {
        if self.inner.shared.sync_first.is_none() {
            return Err(AuditError::Config(
                "append_after_sync needs a log opened with a sync_first store".into(),
            ));
        }
        let keys = self.inner.shared.keys.keys_of(entry);
        self.append_keyed(entry, keys, changes, true, None, true)
            .await
    }

    /// Appends an entry whose `consulted_commitments` and `consulted_sealed` the caller made for
    /// `consulted` with [`AuditLog::consulted_key`], and returns its index once durable. The
    /// search index finds the entry by those parties without opening anything. No receipt is
    /// made: such an entry goes to no party (its holders' auditors read it from the log).
    pub async fn append_consulted(
        &self,
        entry: &AuditEntry,
        consulted: &[String],
        changes: Vec<StateChange>,
    ) -> Result<u64, AuditError> {
        let keys = self.inner.shared.keys.keys_with_consulted(entry, consulted);
        let receipt = self
            .append_keyed(entry, keys, changes, false, None, false)
            .await?;
        Ok(receipt.index)
    }

    /// Appends `entry` as [`AuditLog::append`] does, and right after it, in the same commit,
    /// `consulted_entry` as [`AuditLog::append_consulted`] does: the two are durable together or
    /// not at all. Returns `entry`'s receipt; `consulted_entry` is at the next index.
    pub async fn append_with_consulted(
        &self,
        entry: &AuditEntry,
        changes: Vec<StateChange>,
        consulted_entry: &AuditEntry,
        consulted: &[String],
    ) -> Result<Receipt, AuditError> {
        let keys = self.inner.shared.keys.keys_of(entry);
        let companion = Companion {
            entry: consulted_entry.encode_to_vec(),
            keys: self
                .inner
                .shared
                .keys
                .keys_with_consulted(consulted_entry, consulted),
        };
        self.append_keyed(entry, keys, changes, true, Some(companion), false)
            .await
    }

    /// The key of consulted-holder commitments, if the log was opened with one.
    pub fn consulted_key(&self) -> Option<&ConsultedKey> {
        self.inner.consulted_key.as_deref()
    }

    async fn append_keyed(
        &self,
        entry: &AuditEntry,
        keys: super::index::IndexKeys,
        changes: Vec<StateChange>,
        receipt: bool,
        companion: Option<Companion>,
        sync_first: bool,
    ) -> Result<Receipt, AuditError> {
        if changes.iter().any(|c| !c.key.starts_with(STATE_PREFIX)) {
            return Err(AuditError::BadStateKey);
        }
        if !self.is_accepting() {
            return Err(AuditError::NotAccepting);
        }
        // Encoding and index keys are computed on the caller's task, off the writer.
        let (reply, rx) = oneshot::channel();
        let append = Append {
            entry: entry.encode_to_vec(),
            receipt,
            keys,
            changes,
            companion,
            sync_first,
            reply,
        };
        self.inner
            .tx
            .send(append)
            .await
            .map_err(|_| AuditError::NotAccepting)?;
        rx.await.map_err(|_| AuditError::NotAccepting)?
    }

    /// Stops taking appends, commits what is queued, and waits for the writer to finish, so
    /// that the database can be reopened once every handle is dropped.
    pub async fn shutdown(&self) {
        let close = self
            .inner
            .close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(close) = close {
            let _ = close.send(());
        }
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        self.inner.shared.accepting.store(false, Ordering::Release);
    }

    /// Whether appends are accepted: false after a failed commit (fail closed) or a shutdown.
    pub fn is_accepting(&self) -> bool {
        self.inner.shared.accepting.load(Ordering::Acquire)
    }

    /// The number of durable entries.
    pub fn size(&self) -> u64 {
        self.inner.shared.size.load(Ordering::Acquire)
    }

    /// The latest signed checkpoint, as note text.
    pub fn checkpoint(&self) -> Result<String, AuditError> {
        Ok(self.inner.shared.latest().1)
    }

    /// The signed checkpoint stored for tree size `size`, if a commit ended at that size.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<String>, AuditError> {
        self.inner.shared.store.checkpoint_at(size)
    }

    /// The verifier keys of the signers, current key first, in note format.
    pub fn verifier_keys(&self) -> Vec<String> {
        self.inner.verifiers.iter().map(|v| v.to_string()).collect()
    }

    /// The verifiers of the signers, current key first.
    pub fn verifiers(&self) -> &[Verifier] {
        &self.inner.verifiers
    }

    /// The bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, AuditError> {
        let size = self.size();
        if index >= size {
            return Err(AuditError::OutOfRange { index, size });
        }
        self.inner
            .shared
            .store
            .entry(index)?
            .ok_or_else(|| AuditError::Corrupt {
                index,
                reason: "entry is missing".into(),
            })
    }

    /// Entry `index`, decoded.
    pub fn decoded_entry(&self, index: u64) -> Result<AuditEntry, AuditError> {
        let bytes = self.entry(index)?;
        AuditEntry::decode(bytes.as_slice()).map_err(|source| AuditError::Decode { index, source })
    }

    /// The RFC 6962 leaf hash of entry `index`, read from the stored hashes.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, AuditError> {
        let size = self.size();
        if index >= size {
            return Err(AuditError::OutOfRange { index, size });
        }
        use super::hash::HashReader;
        self.inner
            .shared
            .store
            .read_hash(super::hash::stored_hash_index(0, index))
    }

    /// The inclusion proof of entry `index` in the tree of size `size`.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        let current = self.size();
        if size > current {
            return Err(AuditError::OutOfRange {
                index: size,
                size: current,
            });
        }
        prove_record(size, index, &self.inner.shared.store)
    }

    /// The consistency proof from the tree of size `old` to the tree of size `new`.
    pub fn prove_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        let current = self.size();
        if new > current {
            return Err(AuditError::OutOfRange {
                index: new,
                size: current,
            });
        }
        prove_tree(new, old, &self.inner.shared.store)
    }

    /// A receipt for entry `index` against the latest checkpoint.
    pub fn receipt(&self, index: u64) -> Result<Receipt, AuditError> {
        let (size, signed) = self.inner.shared.latest();
        if index >= size {
            return Err(AuditError::OutOfRange { index, size });
        }
        let entry = self.entry(index)?;
        let proof = TlogProof {
            extra: None,
            index,
            hashes: prove_record(size, index, &self.inner.shared.store)?,
            signed_checkpoint: signed,
        };
        Ok(Receipt {
            index,
            entry,
            proof: proof.format(),
        })
    }

    /// Searches the indexes; see [`SearchQuery`].
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<u64>, AuditError> {
        let mut found = self.inner.shared.store.search(q)?;
        // Index keys of a commit become visible with it; never return past the published size.
        let size = self.size();
        found.retain(|&i| i < size);
        Ok(found)
    }

    /// Reads a gateway state key (under `s/`).
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, AuditError> {
        if !key.starts_with(STATE_PREFIX) {
            return Err(AuditError::BadStateKey);
        }
        let shared = &self.inner.shared;
        let visible = shared.gate.read().unwrap_or_else(|e| e.into_inner());
        if key.starts_with(MEMORY_PREFIX) {
            return Ok(visible.get(key).map(|v| v.to_vec()));
        }
        Ok(shared.store.tree().get(key)?.map(|v| v.to_vec()))
    }

    /// Replaces the memory-only state (see [`super::store::MEMORY_PREFIX`]) by `items`, which
    /// its owner derived from its durable records after the open (a replay leaves it out).
    /// Keys outside the memory prefix are refused.
    pub fn rebuild_memory(
        &self,
        items: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<usize, AuditError> {
        let mut fresh = MemoryState::new();
        for (key, value) in items {
            if !key.starts_with(MEMORY_PREFIX) {
                return Err(AuditError::BadStateKey);
            }
            fresh.insert(key.into_boxed_slice(), value.into_boxed_slice());
        }
        let count = fresh.len();
        *self
            .inner
            .shared
            .gate
            .write()
            .unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(count)
    }

    /// Removes the sled keys under `prefixes` (each under `s/`, none under `s/m/`): derived keys
    /// that an earlier version of the gateway kept in sled and no version reads any more. A
    /// storage migration, not a state change: the records they were derived from stay, and so
    /// does every entry. Flushes sled when it removed any, and returns how many it removed.
    pub fn remove_obsolete_state(&self, prefixes: &[&[u8]]) -> Result<usize, AuditError> {
        if prefixes
            .iter()
            .any(|p| !p.starts_with(STATE_PREFIX) || p.starts_with(MEMORY_PREFIX))
        {
            return Err(AuditError::BadStateKey);
        }
        let tree = self.inner.shared.store.tree();
        let mut removed = 0;
        for prefix in prefixes {
            for key in tree.scan_prefix(prefix).keys() {
                tree.remove(key?)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.inner.db.flush()?;
        }
        Ok(removed)
    }

    /// Iterates the gateway state keys under `prefix` (which must start with `s/`), in order.
    /// Each step sees whole commits only, as a single read does.
    pub fn state_scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), AuditError>> + use<> {
        // Memory-only keys: one at a time, each step after the last key seen, so a caller that
        // stops early (the sweep at the first key not yet due) reads no more.
        let memory = {
            let shared = self.inner.shared.clone();
            let prefix = prefix.to_vec();
            let mut from = (prefix.starts_with(MEMORY_PREFIX))
                .then(|| std::ops::Bound::Included(prefix.clone()));
            std::iter::from_fn(move || {
                let start = from.take()?;
                let visible = shared.gate.read().unwrap_or_else(|e| e.into_inner());
                let (k, v) = visible
                    .range::<[u8], _>((
                        start.as_ref().map(Vec::as_slice),
                        std::ops::Bound::Unbounded,
                    ))
                    .next()
                    .filter(|(k, _)| k.starts_with(&prefix))?;
                from = Some(std::ops::Bound::Excluded(k.to_vec()));
                Some((k.to_vec(), v.to_vec()))
            })
        };
        let iter = if prefix.starts_with(STATE_PREFIX) && !prefix.starts_with(MEMORY_PREFIX) {
            Some(self.inner.shared.store.tree().scan_prefix(prefix))
        } else {
            None
        };
        let refused = !prefix.starts_with(STATE_PREFIX);
        let shared = self.inner.shared.clone();
        let mut iter = iter.into_iter().flatten();
        memory
            .map(Ok)
            .chain(
                std::iter::from_fn(move || {
                    let _visible = shared.gate.read().unwrap_or_else(|e| e.into_inner());
                    iter.next()
                })
                .map(|kv| {
                    kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(AuditError::from)
                }),
            )
            .chain(refused.then_some(Err(AuditError::BadStateKey)))
    }

    /// The stored log, for verification and tests.
    pub fn store(&self) -> &Store {
        &self.inner.shared.store
    }

    /// The sled database, for the gateway's own trees (operational state that needs no audit).
    pub fn db(&self) -> &sled::Db {
        &self.inner.db
    }
}

/// Reads the last signed checkpoint, checks its signature, locates the records it covers (cutting
/// off the remainder of an unfinished commit), and recomputes the root from the stored hashes; a
/// fresh log gets a signed checkpoint of size 0.
fn recover(
    store: &Store,
    origin: &str,
    signers: &[Signer],
    verifiers: &[Verifier],
) -> Result<(u64, String, Frontier), AuditError> {
    let Some((size, signed)) = store.recover()? else {
        // A new log: its first checkpoint, of the empty tree.
        let frontier = Frontier::new();
        let cp = Checkpoint {
            origin: origin.to_owned(),
            size: 0,
            root: frontier.root(),
        };
        let signed = note::sign(&cp.body(), signers)?;
        store
            .tree()
            .insert(numbered_key(CHECKPOINT_PREFIX, 0), signed.as_bytes())?;
        store.tree().flush()?;
        return Ok((0, signed, frontier));
    };
    let cp = Checkpoint::open(&signed, verifiers).map_err(|e| {
        AuditError::CheckpointMismatch(format!(
            "last checkpoint (size {size}) does not verify: {e}"
        ))
    })?;
    if cp.size != size || cp.origin != origin {
        return Err(AuditError::CheckpointMismatch(format!(
            "checkpoint stored for size {size} says origin {:?} size {}, expected origin {origin:?}",
            cp.origin, cp.size
        )));
    }
    let frontier = Frontier::load(size, store)?;
    if frontier.root() != cp.root {
        return Err(AuditError::CheckpointMismatch(format!(
            "the stored hashes give a different root at size {size}; run `ketenpoort audit verify`"
        )));
    }
    if size > 0 {
        let last = size - 1;
        let entry = store.entry(last)?.ok_or_else(|| AuditError::Corrupt {
            index: last,
            reason: "entry is missing".into(),
        })?;
        use super::hash::HashReader;
        if leaf_hash(&entry) != store.read_hash(super::hash::stored_hash_index(0, last))? {
            return Err(AuditError::CheckpointMismatch(format!(
                "entry {last} does not match its stored leaf hash"
            )));
        }
    }
    Ok((size, signed, frontier))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::AuditEvent;

    const ORIGIN: &str = "unit.ketenpoort.test/audit";

    /// A new log under `dir`, with its configuration (changed by `tweak`, kept for reopening)
    /// and its signer.
    /// The state keys under `prefix`, in order.
    fn scan(log: &AuditLog, prefix: &[u8]) -> Vec<Vec<u8>> {
        log.state_scan_prefix(prefix)
            .map(|kv| kv.unwrap().0)
            .collect()
    }

    fn new_log(
        dir: &tempfile::TempDir,
        tweak: impl FnOnce(&mut AuditConfig),
    ) -> (AuditConfig, Signer, AuditLog) {
        let signer = Signer::generate(ORIGIN).unwrap();
        let mut config = AuditConfig::new(dir.path().join("audit"), ORIGIN);
        tweak(&mut config);
        let log = AuditLog::open(config.clone(), vec![signer.clone()]).unwrap();
        (config, signer, log)
    }

    /// An exchange entry with the given exchange id.
    fn exchange(id: String) -> AuditEntry {
        AuditEntry {
            event: AuditEvent::Exchange as i32,
            exchange_id: id,
            ..Default::default()
        }
    }

    /// Appends `n` entries at once, each with state change `s/<i>`, and checks that every one
    /// fails.
    async fn appends_all_fail(log: &AuditLog, e: &AuditEntry, n: usize) {
        let waiters: Vec<_> = (0..n)
            .map(|i| {
                let (log, e) = (log.clone(), e.clone());
                tokio::spawn(async move {
                    log.append(&e, vec![StateChange::put(format!("s/{i}"), b"x".to_vec())])
                        .await
                })
            })
            .collect();
        for w in waiters {
            let r = w.await.unwrap();
            assert!(
                matches!(
                    r,
                    Err(AuditError::CommitFailed(_)) | Err(AuditError::NotAccepting)
                ),
                "{r:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consulted_entry_is_found_by_its_holders_also_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(ConsultedKey::from_bytes(&[5; 32]));
        let (config, signer, log) = new_log(&dir, |c| c.consulted_key = Some(key.clone()));
        let holders = vec!["caw".to_owned(), "cgg".to_owned()];
        let mut e = exchange("l-1".into());
        e.consulted_commitments = key.commitments("l-1", &holders);
        e.consulted_sealed = key.seal("l-1", &holders);
        log.append(&exchange("x-0".into()), vec![]).await.unwrap();
        let index = log.append_consulted(&e, &holders, vec![]).await.unwrap();
        assert_eq!(index, 1);
        assert_eq!(log.size(), 2, "durable when its index is returned");
        let by = |log: &AuditLog, party: &str| {
            log.search(&SearchQuery {
                party: Some(party.into()),
                ..Default::default()
            })
            .unwrap()
        };
        assert_eq!(by(&log, "cgg"), vec![1]);
        assert!(by(&log, "ocmw").is_empty());
        // The entry holds no party id in clear.
        let stored = log.entry(1).unwrap();
        assert!(!stored.windows(3).any(|w| w == b"cgg"));
        log.shutdown().await;
        drop(log);
        // Reopened, the index is rebuilt from the entries: the sealed list is opened again.
        let log = AuditLog::open(config, vec![signer]).unwrap();
        assert_eq!(by(&log, "caw"), vec![1]);
        assert_eq!(by(&log, "cgg"), vec![1]);
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_and_its_consulted_entry_are_committed_together() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(ConsultedKey::from_bytes(&[7; 32]));
        // A batch of at most one append: a pair still goes into one commit.
        let (_config, signer, log) = new_log(&dir, |c| {
            c.consulted_key = Some(key.clone());
            c.batch_max = 1;
        });
        let holders = vec!["caw".to_owned()];
        let mut consulted = exchange("l-7".into());
        consulted.consulted_commitments = key.commitments("l-7", &holders);
        consulted.consulted_sealed = key.seal("l-7", &holders);
        let lookup = exchange("l-7".into());
        let mut waiters = Vec::new();
        for _ in 0..8 {
            let (log, lookup, consulted, holders) = (
                log.clone(),
                lookup.clone(),
                consulted.clone(),
                holders.clone(),
            );
            waiters.push(tokio::spawn(async move {
                log.append_with_consulted(&lookup, vec![], &consulted, &holders)
                    .await
                    .unwrap()
            }));
        }
        let mut indexes = Vec::new();
        for w in waiters {
            let receipt = w.await.unwrap();
            assert_eq!(receipt.entry, lookup.encode_to_vec());
            let verified = crate::audit::verify_receipt(
                &receipt.proof,
                &receipt.entry,
                &signer.verifier_key(),
            )
            .unwrap();
            // The checkpoint of the commit that holds the entry covers its companion too.
            assert!(verified.checkpoint.size >= receipt.index + 2);
            assert_eq!(
                log.entry(receipt.index + 1).unwrap(),
                consulted.encode_to_vec()
            );
            indexes.push(receipt.index);
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..8).map(|i| 2 * i).collect::<Vec<u64>>());
        let found = log
            .search(&SearchQuery {
                party: Some("caw".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(found, indexes.iter().map(|i| i + 1).collect::<Vec<u64>>());
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_only_keys_are_committed_and_read_but_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (config, signer, log) = new_log(&dir, |_| {});
        log.append(
            &exchange("x-1".into()),
            vec![
                StateChange::put(b"s/rec/1".to_vec(), b"r".to_vec()),
                StateChange::put(b"s/m/ix/a/1".to_vec(), Vec::new()),
                StateChange::put(b"s/m/ix/a/2".to_vec(), Vec::new()),
                StateChange::put(b"s/m/ix/b/3".to_vec(), Vec::new()),
            ],
        )
        .await
        .unwrap();
        log.append(
            &exchange("x-2".into()),
            vec![StateChange::delete(b"s/m/ix/a/1".to_vec())],
        )
        .await
        .unwrap();
        assert_eq!(scan(&log, b"s/m/ix/a/"), vec![b"s/m/ix/a/2".to_vec()]);
        assert_eq!(log.state_get(b"s/m/ix/b/3").unwrap(), Some(Vec::new()));
        // Not in sled: a scan of the parent prefix reads sled only.
        assert_eq!(scan(&log, b"s/"), vec![b"s/rec/1".to_vec()]);
        // A scan stops where the caller stops, and sees keys committed between its steps.
        let mut lazy = log.state_scan_prefix(b"s/m/ix/");
        assert_eq!(lazy.next().unwrap().unwrap().0, b"s/m/ix/a/2".to_vec());
        log.append(
            &exchange("x-3".into()),
            vec![StateChange::put(b"s/m/ix/a/9".to_vec(), Vec::new())],
        )
        .await
        .unwrap();
        assert_eq!(lazy.next().unwrap().unwrap().0, b"s/m/ix/a/9".to_vec());
        assert_eq!(lazy.next().unwrap().unwrap().0, b"s/m/ix/b/3".to_vec());
        assert!(lazy.next().is_none());
        log.shutdown().await;
        drop(log);

        // Reopened: the records are there, the memory-only keys are not, until rebuilt.
        let log = AuditLog::open(config, vec![signer]).unwrap();
        assert_eq!(log.state_get(b"s/rec/1").unwrap(), Some(b"r".to_vec()));
        assert!(scan(&log, b"s/m/").is_empty());
        assert!(matches!(
            log.rebuild_memory([(b"s/rec/2".to_vec(), Vec::new())]),
            Err(AuditError::BadStateKey)
        ));
        assert_eq!(
            log.rebuild_memory([(b"s/m/ix/c/4".to_vec(), Vec::new())])
                .unwrap(),
            1
        );
        assert_eq!(scan(&log, b"s/m/"), vec![b"s/m/ix/c/4".to_vec()]);
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn obsolete_state_keys_are_removed_and_stay_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (config, signer, log) = new_log(&dir, |_| {});
        // As an earlier version committed its pending-request index: in sled, with the record.
        log.append(
            &exchange("x-1".into()),
            vec![
                StateChange::put(b"s/rec/1".to_vec(), b"r".to_vec()),
                StateChange::put(b"s/in/caw/t-1".to_vec(), Vec::new()),
                StateChange::put(b"s/ex/00001/t-1".to_vec(), Vec::new()),
            ],
        )
        .await
        .unwrap();
        assert!(matches!(
            log.remove_obsolete_state(&[b"s/m/in/"]),
            Err(AuditError::BadStateKey)
        ));
        assert!(matches!(
            log.remove_obsolete_state(&[b"c/"]),
            Err(AuditError::BadStateKey)
        ));
        assert_eq!(
            log.remove_obsolete_state(&[b"s/in/", b"s/ib/", b"s/ex/"])
                .unwrap(),
            2
        );
        assert_eq!(scan(&log, b"s/"), vec![b"s/rec/1".to_vec()]);
        assert_eq!(log.remove_obsolete_state(&[b"s/in/"]).unwrap(), 0);
        log.shutdown().await;
        drop(log);
        // Reopened, the keys are still gone (the commit's frame is not replayed over the removal),
        // and the record and the entry are still there.
        let log = AuditLog::open(config, vec![signer]).unwrap();
        assert_eq!(scan(&log, b"s/"), vec![b"s/rec/1".to_vec()]);
        assert_eq!(log.size(), 1);
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_its_batch_and_closes_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (config, signer, log) = new_log(&dir, |c| c.batch_delay = Duration::from_millis(50));
        let e = exchange(String::new());
        log.append(&e, vec![]).await.unwrap();
        log.inner
            .shared
            .fail_next_commit
            .store(true, Ordering::Release);
        // Several waiters share the failing batch (the writer waits 50 ms for company).
        appends_all_fail(&log, &e, 5).await;
        assert!(!log.is_accepting());
        assert!(matches!(
            log.append(&e, vec![]).await,
            Err(AuditError::NotAccepting)
        ));
        assert_eq!(log.size(), 1);
        assert_eq!(log.state_get(b"s/0").unwrap(), None);
        log.shutdown().await;
        drop(log);
        // Reopening recovers: the log accepts again and nothing of the failed batch is there.
        let log = AuditLog::open(config, vec![signer]).unwrap();
        assert!(log.is_accepting());
        assert_eq!(log.size(), 1);
        assert_eq!(log.append(&e, vec![]).await.unwrap().index, 1);
        log.shutdown().await;
    }

    #[tokio::test]
    async fn a_failed_sync_fails_every_batch_written_up_to_it_and_closes_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (config, signer, log) = new_log(&dir, |_| {});
        let e = exchange(String::new());
        log.append(&e, vec![]).await.unwrap();
        log.inner
            .shared
            .fail_next_sync
            .store(true, Ordering::Release);
        appends_all_fail(&log, &e, 8).await;
        // Nothing after the failure was published, applied or answered.
        assert!(!log.is_accepting());
        assert_eq!(log.size(), 1);
        for i in 0..8 {
            assert_eq!(log.state_get(format!("s/{i}").as_bytes()).unwrap(), None);
        }
        assert!(matches!(
            log.append(&e, vec![]).await,
            Err(AuditError::NotAccepting)
        ));
        log.shutdown().await;
        drop(log);
        // A commit whose sync failed has an unknown outcome, as in any database: its callers
        // were refused, and if its records reached the disk whole, reopening keeps it, with its
        // state changes, as a valid part of the log.
        let log = AuditLog::open(config, vec![signer.clone()]).unwrap();
        assert!(log.is_accepting());
        let size = log.size();
        assert!((1..=9).contains(&size), "{size}");
        let kept = (0..8)
            .filter(|i| {
                log.state_get(format!("s/{i}").as_bytes())
                    .unwrap()
                    .is_some()
            })
            .count() as u64;
        assert_eq!(kept, size - 1, "every kept entry brought its state change");
        crate::audit::verify_log(log.store(), &[signer.verifier()], &mut |_| {}).unwrap();
        assert_eq!(log.append(&e, vec![]).await.unwrap().index, size);
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_past_the_last_checkpoint_are_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (config, signer, log) = new_log(&dir, |_| {});
        let e = |i: u64| exchange(format!("x-{i}"));
        for i in 0..5 {
            log.append(&e(i), vec![]).await.unwrap();
        }
        // A commit that wrote its records but crashed while writing its frame: the frame is
        // torn, so the commit was never acknowledged.
        let data_end = log.store().data_end();
        let junk = e(99).encode_to_vec();
        let frame = crate::audit::files::Frame {
            first: 5,
            data_start: data_end,
            ends: vec![data_end + junk.len() as u64],
            data: junk,
            hashes: vec![7u8; 32],
            checkpoint: log.checkpoint().unwrap(),
            changes: vec![StateChange::put(b"s/junk".to_vec(), b"x".to_vec())],
        };
        let files = log.store().files();
        files.write_records(&frame).unwrap();
        let bytes = frame.encode();
        files.write_frame(1, 0, &bytes[..bytes.len() - 1]).unwrap();
        log.shutdown().await;
        drop(log);

        let log = AuditLog::open(config, vec![signer.clone()]).unwrap();
        assert_eq!(log.size(), 5);
        let r = log.append(&e(5), vec![]).await.unwrap();
        assert_eq!(r.index, 5);
        assert_eq!(log.decoded_entry(5).unwrap().exchange_id, "x-5");
        let q = SearchQuery {
            exchange_id: Some("x-99".into()),
            ..Default::default()
        };
        assert!(log.search(&q).unwrap().is_empty());
        assert_eq!(log.state_get(b"s/junk").unwrap(), None);
        let report =
            crate::audit::verify_log(log.store(), &[signer.verifier()], &mut |_| {}).unwrap();
        assert_eq!(report.entries, 6);
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_leaves_every_commit_in_sled_and_no_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (config, signer, log) = new_log(&dir, |_| {});
        let e = exchange(String::new());
        let commits = |i: usize| {
            std::fs::metadata(dir.path().join(format!("audit/log/commits.{i}")))
                .unwrap()
                .len()
        };
        for i in 0..3u8 {
            log.append(&e, vec![StateChange::put(vec![b's', b'/', i], vec![i])])
                .await
                .unwrap();
        }
        assert!(commits(0) + commits(1) > 0);
        log.shutdown().await;
        assert_eq!((commits(0), commits(1)), (0, 0));
        drop(log);
        let log = AuditLog::open(config, vec![signer]).unwrap();
        assert_eq!(log.size(), 3);
        assert_eq!(log.state_get(b"s/\x02").unwrap(), Some(vec![2]));
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compactions_switch_commits_files_while_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        // Past 2 KB of frames, switch files: a few commits each.
        let (config, signer, log) = new_log(&dir, |c| c.compact_at = 2048);
        let e = |i: u64| exchange(format!("c-{i}"));
        let mut receipts = Vec::new();
        for round in 0..20u64 {
            // Concurrent appends, so that batches hold several entries.
            let appends = (0..8u64).map(|j| {
                let i = round * 8 + j;
                let key = format!("s/c/{i}").into_bytes();
                let (log, e) = (log.clone(), e(i));
                async move { log.append(&e, vec![StateChange::put(key, vec![1])]).await }
            });
            for r in futures::future::join_all(appends).await {
                receipts.push(r.unwrap());
            }
        }
        // The commits files hold only the last few commits (or none, if the last file is being
        // compacted as we read): the older ones were compacted away.
        let frames = log.store().files().frames().unwrap();
        if let Some(f) = frames.first() {
            assert!(
                f.first > 100,
                "frame from {} still in the commits files",
                f.first
            );
        }
        log.shutdown().await;
        drop(log);
        let log = AuditLog::open(config, vec![signer.clone()]).unwrap();
        assert_eq!(log.size(), 160);
        for r in &receipts {
            assert_eq!(log.entry(r.index).unwrap(), r.entry);
        }
        assert_eq!(log.state_get(b"s/c/159").unwrap(), Some(vec![1]));
        let report =
            crate::audit::verify_log(log.store(), &[signer.verifier()], &mut |_| {}).unwrap();
        assert_eq!(report.entries, 160);
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_sees_one_change_of_a_commit_sees_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let (_config, _signer, log) = new_log(&dir, |_| {});
        let stop = Arc::new(AtomicBool::new(false));
        // Each commit sets s/a and then s/b to its number. A reader that finds s/a at n must
        // then find s/b at n or later: it never sees half a commit.
        let reader = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let get = |k: &[u8]| -> u64 {
                    log.state_get(k)
                        .unwrap()
                        .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()))
                };
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let a = get(b"s/a");
                    let b = get(b"s/b");
                    assert!(
                        b >= a,
                        "s/a at {a} but s/b at {b}: half a commit was visible"
                    );
                    reads += 1;
                }
                reads
            })
        };
        let e = exchange(String::new());
        for n in 1..=300u64 {
            let v = n.to_le_bytes().to_vec();
            log.append(
                &e,
                vec![
                    StateChange::put(b"s/a".to_vec(), v.clone()),
                    StateChange::put(b"s/b".to_vec(), v),
                ],
            )
            .await
            .unwrap();
        }
        stop.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
        log.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_durable_commit_that_sled_never_applied_is_replayed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (config, signer, log) = new_log(&dir, |_| {});
        let e = |i: u64| exchange(format!("r-{i}"));
        for i in 0..3 {
            log.append(&e(i), vec![]).await.unwrap();
        }
        log.shutdown().await;
        // A fourth commit as the writer makes it, with its frame synced to the commits file
        // and the machine gone before sled applied it or the record files were synced: records,
        // stored hashes, signed checkpoint and state change.
        let store = log.store().clone();
        let entry = e(3).encode_to_vec();
        let mut frontier = Frontier::load(3, &store).unwrap();
        let hashes: Vec<u8> = frontier.push(leaf_hash(&entry)).concat();
        let checkpoint = Checkpoint {
            origin: ORIGIN.to_owned(),
            size: 4,
            root: frontier.root(),
        };
        let start = store.data_end();
        let frame = crate::audit::files::Frame {
            first: 3,
            data_start: start,
            ends: vec![start + entry.len() as u64],
            data: entry,
            hashes,
            checkpoint: note::sign(&checkpoint.body(), std::slice::from_ref(&signer)).unwrap(),
            changes: vec![StateChange::put(b"s/replayed".to_vec(), b"yes".to_vec())],
        };
        // Only the frame reached the disk: the record files lost their unsynced writes.
        store.files().write_frame(0, 0, &frame.encode()).unwrap();
        drop((store, log));

        let log = AuditLog::open(config, vec![signer.clone()]).unwrap();
        assert_eq!(log.size(), 4);
        assert_eq!(log.state_get(b"s/replayed").unwrap(), Some(b"yes".to_vec()));
        assert_eq!(log.decoded_entry(3).unwrap().exchange_id, "r-3");
        assert_eq!(
            log.checkpoint_at(4).unwrap(),
            Some(log.checkpoint().unwrap())
        );
        let q = SearchQuery {
            exchange_id: Some("r-3".into()),
            ..Default::default()
        };
        assert_eq!(log.search(&q).unwrap(), vec![3]);
        assert_eq!(log.append(&e(4), vec![]).await.unwrap().index, 4);
        let report =
            crate::audit::verify_log(log.store(), &[signer.verifier()], &mut |_| {}).unwrap();
        assert_eq!(report.entries, 5);
        log.shutdown().await;
    }

    #[test]
    fn open_needs_a_runtime_and_a_matching_signer() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate("a.example/log").unwrap();
        let err = AuditLog::open(
            AuditConfig::new(dir.path(), "a.example/log"),
            vec![signer.clone()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("tokio runtime"));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let err = AuditLog::open(AuditConfig::new(dir.path(), "b.example/log"), vec![signer])
            .unwrap_err();
        assert!(err.to_string().contains("not named after the origin"));
    }
}
