//! The group-commit writer, a pipeline of three stages so that the CPU work of one commit overlaps
//! the device wait of the one before:
//!
//! 1. The writer task drains the append queue in batches. Per batch, on a blocking thread, it
//!    appends the entries, their stored hashes and the commit's frame (its signed checkpoint and
//!    the callers' state changes) to the log files without syncing, makes the records known to
//!    the store (readers still see only the published size), and computes the receipts.
//! 2. The syncer task takes every batch written so far and syncs the four files once, which makes
//!    all of them durable.
//! 3. The applier task applies durable batches' frames to sled in order (while the syncer waits
//!    for the next sync), publishes the last checkpoint, and only then answers every waiter
//!    with its receipt.
//!
//! A failed write or sync fails its batches and closes the log for appends (fail closed); the
//! syncer then fails every batch after it too. On reopen, a commit whose frame or records are not
//! whole is cut off.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::files::{FILE_COUNT, Frame};
use super::hash::{
    Frontier, Hash, HashReader, leaf_hash, prove_record, split_stored_hash_index, stored_hash_index,
};
use super::index::IndexKeys;
use super::keys::Signer;
use super::log::{Shared, StateChange};
use super::note;
use super::proof::{Receipt, TlogProof};
use super::store::Store;

/// One queued append: the encoded entry, its index keys without the index, the caller's state
/// changes, and where to send the outcome.
pub(crate) struct Append {
    pub entry: Vec<u8>,
    pub keys: IndexKeys,
    pub changes: Vec<StateChange>,
    pub reply: oneshot::Sender<Result<Receipt, AuditError>>,
}

/// What the writer owns between batches.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub frontier: Frontier,
    pub signers: Vec<Signer>,
    pub origin: String,
    pub batch_max: usize,
    pub batch_delay: Duration,
    /// Where the next commit frame goes in the commits file.
    pub commits_end: u64,
}

/// When the commits file has grown past this, the writer flushes sled (which then holds every
/// commit durably) and empties the file.
const COMPACT_COMMITS_AT: u64 = 16 * 1024 * 1024;

/// The writer also empties the commits file this often when it holds frames. Frames carry the
/// state changes, payloads awaiting pickup among them; this bounds how long a payload the
/// gateway has deleted (fetched or past retention) lingers in the file.
const COMPACT_EVERY: Duration = Duration::from_secs(30);

/// The data of one batch, moved to a blocking thread for the commit.
struct Pending {
    entry: Vec<u8>,
    keys: IndexKeys,
    changes: Vec<StateChange>,
}

impl Writer {
    /// Runs until every sender is gone or the queue is closed and drained.
    /// On `close` (or when its sender is dropped) the queue is closed and then drained.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Append>, mut close: oneshot::Receiver<()>) {
        let batch_max = self.batch_max.max(1);
        let (to_syncer, syncer_rx) = mpsc::channel(SYNC_QUEUE);
        let syncer = tokio::spawn(
            Syncer {
                shared: self.shared.clone(),
                files: Arc::new(FileSyncers::start(self.shared.clone())),
                failed: false,
            }
            .run(syncer_rx),
        );
        let mut closing = false;
        let mut compaction = tokio::time::interval(COMPACT_EVERY);
        compaction.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = if closing {
                rx.recv().await
            } else {
                tokio::select! {
                    a = rx.recv() => a,
                    _ = &mut close => {
                        closing = true;
                        rx.close();
                        continue;
                    }
                    _ = compaction.tick() => {
                        self.compact(&to_syncer).await;
                        continue;
                    }
                }
            };
            let Some(first) = next else { break };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.batch_delay;
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if self.batch_delay.is_zero() {
                            break;
                        }
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(a)) => batch.push(a),
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            self = self.commit_batch(batch, &to_syncer).await;
            if self.commits_end > COMPACT_COMMITS_AT {
                self.compact(&to_syncer).await;
            }
        }
        // Leave sled holding every commit, so that the next open has nothing to replay.
        self.compact(&to_syncer).await;
        drop(to_syncer);
        // Every written batch is answered before the writer counts as finished.
        let _ = syncer.await;
    }

    /// Has the syncer flush sled, once it has applied every commit written so far, and empty
    /// the commits file. Nothing is written meanwhile: the writer waits for the answer.
    /// Does nothing when the file is empty or the log has failed; a failure here loses nothing
    /// (the frames stay, and are replayed on open), so it is only logged.
    async fn compact(&mut self, to_syncer: &mpsc::Sender<ToSyncer>) {
        if self.commits_end == 0 || !self.shared.accepting.load(Ordering::Acquire) {
            return;
        }
        let (done, answer) = oneshot::channel();
        if to_syncer.send(ToSyncer::Compact(done)).await.is_err() {
            return;
        }
        match answer.await {
            Ok(Ok(())) => self.commits_end = 0,
            Ok(Err(e)) => tracing::warn!(error = %e, "audit log: could not empty the commits file"),
            Err(_) => tracing::warn!("audit log: emptying the commits file was abandoned"),
        }
    }

    async fn commit_batch(self, batch: Vec<Append>, to_syncer: &mpsc::Sender<ToSyncer>) -> Writer {
        let mut replies = Vec::with_capacity(batch.len());
        let mut pending = Vec::with_capacity(batch.len());
        for a in batch {
            replies.push(a.reply);
            pending.push(Pending {
                entry: a.entry,
                keys: a.keys,
                changes: a.changes,
            });
        }
        if !self.shared.accepting.load(Ordering::Acquire) {
            fail_all(replies, || AuditError::NotAccepting);
            return self;
        }
        let shared = self.shared.clone();
        let mut writer = self;
        let joined = tokio::task::spawn_blocking(move || {
            let result = writer.write_batch(pending);
            (writer, result)
        })
        .await;
        let (writer, result) = match joined {
            Ok(pair) => pair,
            Err(_) => {
                // The write thread panicked: nothing of this batch is known to be written.
                shared.accepting.store(false, Ordering::Release);
                tracing::error!("audit commit panicked; the log refuses appends until reopened");
                fail_all(replies, || {
                    AuditError::CommitFailed("commit panicked".into())
                });
                // Without the writer state there is nothing left to do; a reopen recovers.
                return Writer::closed(shared);
            }
        };
        match result {
            Ok(written) => {
                let commit = Box::new(Written { replies, ..written });
                if let Err(mpsc::error::SendError(ToSyncer::Commit(commit))) =
                    to_syncer.send(ToSyncer::Commit(commit)).await
                {
                    writer.shared.accepting.store(false, Ordering::Release);
                    tracing::error!("audit syncer is gone; the log refuses appends until reopened");
                    fail_all(commit.replies, || {
                        AuditError::CommitFailed("the syncer stopped".into())
                    });
                }
            }
            Err(e) => {
                writer.shared.accepting.store(false, Ordering::Release);
                tracing::error!(error = %e, "audit commit failed; the log refuses appends until reopened");
                let msg = e.to_string();
                fail_all(replies, || AuditError::CommitFailed(msg.clone()));
            }
        }
        writer
    }

    /// A writer that only refuses; used after its state was lost.
    fn closed(shared: Arc<Shared>) -> Writer {
        Writer {
            shared,
            frontier: Frontier::new(),
            signers: Vec::new(),
            origin: String::new(),
            batch_max: 1,
            batch_delay: Duration::ZERO,
            commits_end: 0,
        }
    }

    /// Writes one batch to the files without syncing, makes its records known to the store, and
    /// computes its receipts, in order. Blocking. The commit is durable only once the syncer has
    /// synced the files after this returns.
    fn write_batch(&mut self, mut pending: Vec<Pending>) -> Result<Written, AuditError> {
        let store = &self.shared.store;
        let mut frontier = self.frontier.clone();
        let first_index = frontier.size();
        if first_index + pending.len() as u64 > u64::from(u32::MAX) {
            return Err(AuditError::Config(
                "the log holds at most 2^32 entries; start a new log".into(),
            ));
        }
        // Proofs for this batch read its leaf hashes from here; the upper levels are in the
        // store's memory once remembered.
        let mut leaves: Vec<Hash> = Vec::with_capacity(pending.len());
        let mut records: Vec<(u64, Vec<Hash>)> = Vec::with_capacity(pending.len());
        let data_start = store.data_end();
        let mut data = Vec::with_capacity(pending.iter().map(|p| p.entry.len()).sum());
        let mut ends = Vec::with_capacity(pending.len());
        let mut packed = Vec::with_capacity(pending.len() * 2 * 32);
        let mut changes = Vec::new();
        for (i, p) in pending.iter_mut().enumerate() {
            let index = first_index + i as u64;
            let start = stored_hash_index(0, index);
            let hashes = frontier.push(leaf_hash(&p.entry));
            for h in &hashes {
                packed.extend_from_slice(h);
            }
            data.extend_from_slice(&p.entry);
            ends.push(data_start + data.len() as u64);
            leaves.push(hashes[0]);
            records.push((start, hashes));
            changes.append(&mut p.changes);
        }
        let size = frontier.size();
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: frontier.root(),
        };
        let signed = note::sign(&checkpoint.body(), &self.signers)?;
        let frame = Frame {
            size,
            checkpoint: signed.clone(),
            changes,
        };
        // sled gets exactly what the frame records, as on a replay.
        let mut sled_batch = sled::Batch::default();
        frame.apply_to(&mut sled_batch);
        let frame = frame.encode();
        #[cfg(test)]
        if self.shared.fail_next_commit.swap(false, Ordering::AcqRel) {
            return Err(AuditError::Storage(sled::Error::Unsupported(
                "injected write failure".into(),
            )));
        }
        let began = std::time::Instant::now();
        store.files().write(
            first_index,
            data_start,
            &data,
            &ends,
            &packed,
            self.commits_end,
            &frame,
        )?;
        self.commits_end += frame.len() as u64;
        let written = began.elapsed();
        self.frontier = frontier;
        let keys: Vec<IndexKeys> = pending
            .iter_mut()
            .map(|p| std::mem::take(&mut p.keys))
            .collect();
        // Known to the store for the next batch's proofs; readers see only the published size.
        store.remember(&ends, &records, &keys)?;

        let reader = Overlay {
            first: first_index,
            leaves: &leaves,
            store,
        };
        let mut receipts = Vec::with_capacity(pending.len());
        let receipts_began = std::time::Instant::now();
        let entries = pending.len();
        for (i, p) in pending.into_iter().enumerate() {
            let index = first_index + i as u64;
            let proof = TlogProof {
                extra: None,
                index,
                hashes: prove_record(size, index, &reader)?,
                signed_checkpoint: signed.clone(),
            };
            receipts.push(Receipt {
                index,
                entry: p.entry,
                proof: proof.format(),
            });
        }
        tracing::debug!(
            entries,
            size,
            write_us = written.as_micros() as u64,
            receipts_us = receipts_began.elapsed().as_micros() as u64,
            "audit commit written"
        );
        Ok(Written {
            size,
            signed,
            sled: sled_batch,
            receipts,
            replies: Vec::new(),
        })
    }
}

/// One batch written to the files, on its way to the syncer.
struct Written {
    /// The tree size after it.
    size: u64,
    /// Its signed checkpoint.
    signed: String,
    /// What it does to sled.
    sled: sled::Batch,
    /// The receipts, in the order of `replies`.
    receipts: Vec<Receipt>,
    replies: Vec<oneshot::Sender<Result<Receipt, AuditError>>>,
}

/// What the writer hands the syncer, in order.
enum ToSyncer {
    /// A written batch to make durable and answer.
    Commit(Box<Written>),
    /// Flush sled, once every batch before has been applied, and empty the commits file.
    Compact(oneshot::Sender<Result<(), AuditError>>),
}

/// Written batches the syncer may hold before the writer waits: the bound on the pipeline.
const SYNC_QUEUE: usize = 16;

/// The item a stage put back (`held`), else the next one from its queue; `None` once the queue
/// is closed and empty.
async fn next_item<T>(held: &mut Option<T>, rx: &mut mpsc::Receiver<T>) -> Option<T> {
    match held.take() {
        Some(item) => Some(item),
        None => rx.recv().await,
    }
}

/// Answers every waiter with an error.
fn fail_all(
    replies: Vec<oneshot::Sender<Result<Receipt, AuditError>>>,
    error: impl Fn() -> AuditError,
) {
    for r in replies {
        let _ = r.send(Err(error()));
    }
}

/// The second stage: makes written batches durable, several per sync, and hands them on.
struct Syncer {
    shared: Arc<Shared>,
    files: Arc<FileSyncers>,
    /// Set by a failed sync: every batch after it fails too.
    failed: bool,
}

/// Threads kept for syncing the record files at once: one per file but the first, which the
/// calling thread syncs. Kept rather than spawned per sync (hundreds of syncs a second), and
/// apart from the runtime's blocking pool, whose threads allocate for the other stages.
struct FileSyncers {
    shared: Arc<Shared>,
    workers: Vec<std::sync::mpsc::Sender<std::sync::mpsc::SyncSender<Result<(), AuditError>>>>,
}

impl FileSyncers {
    fn start(shared: Arc<Shared>) -> FileSyncers {
        let workers = (1..FILE_COUNT)
            .filter_map(|i| {
                let (tx, rx) = std::sync::mpsc::channel::<
                    std::sync::mpsc::SyncSender<Result<(), AuditError>>,
                >();
                let shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("audit-sync-{i}"))
                    .spawn(move || {
                        // Ends when the syncer drops its sender.
                        while let Ok(done) = rx.recv() {
                            let _ = done.send(shared.store.files().sync_file(i));
                        }
                    });
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        // Fewer threads only make syncs run one after another.
                        tracing::warn!(error = %e, "audit log: no thread for syncing file {i}");
                        None
                    }
                }
            })
            .collect();
        FileSyncers { shared, workers }
    }

    /// Syncs every record file, on the kept threads and this one at once. Blocking.
    fn sync_all(&self) -> Result<(), AuditError> {
        let files = self.shared.store.files();
        let (done, results) = std::sync::mpsc::sync_channel(FILE_COUNT);
        let mut handed = [false; FILE_COUNT];
        for (worker, file) in self.workers.iter().zip(1..FILE_COUNT) {
            handed[file] = worker.send(done.clone()).is_ok();
        }
        drop(done);
        let mut synced = files.sync_file(0);
        // A file whose thread is missing is synced here, after the others were started.
        for (file, handed) in handed.iter().enumerate().skip(1) {
            if !handed {
                synced = synced.and(files.sync_file(file));
            }
        }
        let expected = handed.iter().filter(|h| **h).count();
        for _ in 0..expected {
            let result = results
                .recv()
                .unwrap_or(Err(AuditError::Internal("a file sync thread stopped")));
            synced = synced.and(result);
        }
        synced
    }
}

impl Syncer {
    async fn run(mut self, mut rx: mpsc::Receiver<ToSyncer>) {
        let (to_applier, applier_rx) = mpsc::channel(SYNC_QUEUE);
        let applier = tokio::spawn(
            Applier {
                shared: self.shared.clone(),
                failed: false,
            }
            .run(applier_rx),
        );
        let mut held = None;
        while let Some(item) = next_item(&mut held, &mut rx).await {
            match item {
                ToSyncer::Compact(done) => {
                    if self.failed {
                        // The frames of the failed commits stay for the next open to sort out.
                        let _ = done.send(Err(AuditError::NotAccepting));
                        continue;
                    }
                    // In order: the applier answers once it has applied everything before.
                    if let Err(mpsc::error::SendError(ToApplier::Compact(done))) =
                        to_applier.send(ToApplier::Compact(done)).await
                    {
                        let _ = done.send(Err(AuditError::NotAccepting));
                    }
                }
                ToSyncer::Commit(first) => {
                    // Every batch already written shares this one sync.
                    let mut commits = vec![*first];
                    loop {
                        match rx.try_recv() {
                            Ok(ToSyncer::Commit(next)) => commits.push(*next),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if let Some(durable) = self.make_durable(commits).await
                        && let Err(mpsc::error::SendError(ToApplier::Apply(lost))) =
                            to_applier.send(ToApplier::Apply(durable)).await
                    {
                        for c in lost {
                            fail_all(c.replies, || {
                                AuditError::CommitFailed("the applier stopped".into())
                            });
                        }
                    }
                }
            }
        }
        drop(to_applier);
        let _ = applier.await;
    }

    /// Syncs the files, which makes `commits` durable, or fails them all.
    async fn make_durable(&mut self, commits: Vec<Written>) -> Option<Vec<Written>> {
        let error = if self.failed {
            AuditError::CommitFailed("an earlier commit failed".into())
        } else {
            let began = std::time::Instant::now();
            #[cfg(test)]
            let injected = self.shared.fail_next_sync.swap(false, Ordering::AcqRel);
            let files = self.files.clone();
            let synced = tokio::task::spawn_blocking(move || files.sync_all())
                .await
                .unwrap_or_else(|_| Err(AuditError::CommitFailed("sync panicked".into())));
            #[cfg(test)]
            let synced = if injected {
                Err(AuditError::Storage(sled::Error::Unsupported(
                    "injected sync failure".into(),
                )))
            } else {
                synced
            };
            match synced {
                Ok(()) => {
                    tracing::debug!(
                        commits = commits.len(),
                        sync_us = began.elapsed().as_micros() as u64,
                        "audit commits synced"
                    );
                    return Some(commits);
                }
                Err(e) => {
                    self.failed = true;
                    self.shared.accepting.store(false, Ordering::Release);
                    tracing::error!(error = %e, "audit sync failed; the log refuses appends until reopened");
                    AuditError::CommitFailed(e.to_string())
                }
            }
        };
        let msg = error.to_string();
        for c in commits {
            fail_all(c.replies, || AuditError::CommitFailed(msg.clone()));
        }
        None
    }
}

/// What the syncer hands the applier, in order.
enum ToApplier {
    /// Durable batches to apply to sled, publish and answer.
    Apply(Vec<Written>),
    /// Flush sled and empty the commits file.
    Compact(oneshot::Sender<Result<(), AuditError>>),
}

/// The third stage: applies durable batches to sled in order, publishes the last checkpoint, and
/// answers the callers. It works while the syncer waits for the next sync.
struct Applier {
    shared: Arc<Shared>,
    /// Set by a failed apply: every batch after it fails too.
    failed: bool,
}

impl Applier {
    async fn run(mut self, mut rx: mpsc::Receiver<ToApplier>) {
        let mut held = None;
        while let Some(item) = next_item(&mut held, &mut rx).await {
            match item {
                ToApplier::Compact(done) => {
                    let _ = done.send(self.compact().await);
                }
                ToApplier::Apply(mut commits) => {
                    loop {
                        match rx.try_recv() {
                            Ok(ToApplier::Apply(more)) => commits.extend(more),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.apply(commits).await;
                }
            }
        }
    }

    async fn apply(&mut self, commits: Vec<Written>) {
        let mut batches = Vec::with_capacity(commits.len());
        let mut answers = Vec::with_capacity(commits.len());
        let mut last = None;
        for c in commits {
            batches.push(c.sled);
            answers.push((c.replies, c.receipts));
            last = Some((c.size, c.signed));
        }
        let Some((size, signed)) = last else { return };
        let done = if self.failed {
            Err(AuditError::CommitFailed("an earlier commit failed".into()))
        } else {
            let shared = self.shared.clone();
            let entries: usize = answers.iter().map(|(r, _)| r.len()).sum();
            tokio::task::spawn_blocking(move || -> Result<(), AuditError> {
                let began = std::time::Instant::now();
                let commits = batches.len();
                for b in batches {
                    shared.store.tree().apply_batch(b)?;
                }
                shared.publish(size, signed);
                tracing::debug!(
                    commits,
                    entries,
                    size,
                    apply_us = began.elapsed().as_micros() as u64,
                    "audit commits applied"
                );
                Ok(())
            })
            .await
            .unwrap_or_else(|_| Err(AuditError::CommitFailed("apply panicked".into())))
        };
        match done {
            Ok(()) => {
                for (replies, receipts) in answers {
                    for (r, receipt) in replies.into_iter().zip(receipts) {
                        // A caller that gave up still has a durable entry; nothing to undo.
                        let _ = r.send(Ok(receipt));
                    }
                }
            }
            Err(e) => {
                if !self.failed {
                    self.failed = true;
                    self.shared.accepting.store(false, Ordering::Release);
                    tracing::error!(error = %e, "audit apply failed; the log refuses appends until reopened");
                }
                let msg = e.to_string();
                for (replies, _) in answers {
                    fail_all(replies, || AuditError::CommitFailed(msg.clone()));
                }
            }
        }
    }

    /// Flushes sled, which then holds every commit durably, and empties the commits file.
    async fn compact(&self) -> Result<(), AuditError> {
        if self.failed {
            return Err(AuditError::NotAccepting);
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let began = std::time::Instant::now();
            let flushed = shared.store.tree().flush()?;
            shared.store.files().clear_commits()?;
            tracing::debug!(
                sled_bytes = flushed,
                took_us = began.elapsed().as_micros() as u64,
                "audit commits file emptied"
            );
            Ok(())
        })
        .await
        .unwrap_or_else(|_| Err(AuditError::Internal("emptying the commits file panicked")))
    }
}

/// The leaf hashes of the batch just written, in memory, over the store.
struct Overlay<'a> {
    first: u64,
    leaves: &'a [Hash],
    store: &'a Store,
}

impl HashReader for Overlay<'_> {
    fn read_hash(&self, index: u64) -> Result<Hash, AuditError> {
        if let (0, n) = split_stored_hash_index(index)
            && let Some(h) = n
                .checked_sub(self.first)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| self.leaves.get(i))
        {
            return Ok(*h);
        }
        self.store.read_hash(index)
    }
}
