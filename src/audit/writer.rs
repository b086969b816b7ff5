//! The group-commit writer, a pipeline of three stages so that the CPU work of one commit overlaps
//! the device wait of the one before:
//!
//! 1. The writer task drains the append queue in batches. Per batch, on its own task, it
//!    appends the entries and their stored hashes to the record files and the commit's frame
//!    (those records, its signed checkpoint and the callers' state changes) to the active
//!    commits file, without syncing; makes the records known to the store (readers still see
//!    only the published size); and computes the receipts.
//! 2. The syncer task takes every batch written so far and syncs the commits file once, which
//!    makes all of them durable.
//! 3. The applier task applies durable batches' frames to sled in order (while the syncer waits
//!    for the next sync), publishes the last checkpoint, and only then answers every waiter
//!    with its receipt.
//!
//! Compaction keeps the commits files small without stopping the pipeline: the writer switches to
//! the other commits file, and once every commit of the old one is applied, a blocking task syncs
//! the record files, flushes sled and empties the old file while commits go on.
//!
//! A failed write or sync fails its batches and closes the log for appends (fail closed); the
//! syncer then fails every batch after it too. On reopen, a commit whose frame is not whole is
//! cut off.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::files::Frame;
use super::hash::{Frontier, Hash, HashReader, Prover, leaf_hash, stored_hash_index};
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
    /// Whether the caller wants the receipt's entry and proof (otherwise only its index).
    pub receipt: bool,
    pub keys: IndexKeys,
    pub changes: Vec<StateChange>,
    /// A second entry written right after this one, in the same commit, so that the two are
    /// durable together or not at all; it gets no receipt of its own (its index is the
    /// receipt's plus one).
    pub companion: Option<Companion>,
    /// Whether the changes depend on the log's [`super::SyncFirst`] store: it is synced before
    /// the batch is written.
    pub sync_first: bool,
    pub reply: oneshot::Sender<Result<Receipt, AuditError>>,
}

/// The second entry of an [`Append`]: encoded, with its index keys.
pub(crate) struct Companion {
    pub entry: Vec<u8>,
    pub keys: IndexKeys,
}

/// Where the outcome of one written entry goes: `None` for a companion, whose outcome is its
/// append's.
type Reply = Option<oneshot::Sender<Result<Receipt, AuditError>>>;

/// What the writer owns between batches.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub frontier: Frontier,
    pub signers: Vec<Signer>,
    pub origin: String,
    pub batch_max: usize,
    pub batch_delay: Duration,
    /// The size past which the active commits file is compacted.
    pub compact_at: u64,
    /// The commits file (0 or 1) the next frame goes to.
    pub active: usize,
    /// Where the next frame goes in each commits file; 0 for an empty one.
    pub commits_end: [u64; 2],
    /// Which commits files are prepared (filled with zeros, see
    /// [`super::files::LogFiles::prepare_commits`]).
    pub prepared: [bool; 2],
    /// The compaction or preparation under way, if any: the commits file it empties or
    /// prepares, and its outcome (whether the file is now prepared).
    pub compacting: Option<(usize, Answer)>,
    /// When the record files were last given to a background sync, and whether it runs.
    pub records_synced_at: std::time::Instant,
    pub records_syncing: Arc<std::sync::atomic::AtomicBool>,
}

/// While commits go on, the record files are synced in the background this often, so that
/// little of them is left for a compaction to sync: one burst of writing to the device delays
/// every commit sync behind it (a compaction syncing 12 MB at once made them wait 15–36 ms).
const SYNC_RECORDS_EVERY: Duration = Duration::from_millis(200);

/// The outcome of a compaction or a preparation: whether the file is now prepared.
pub(crate) type Answer = oneshot::Receiver<Result<bool, AuditError>>;

/// Once the active commits file holds this much and is not prepared (after an open), the
/// writer prepares the other one in the background and switches to it: the log is busy enough
/// for the faster syncs to matter.
const PREPARE_WHEN_BUSY: u64 = 1024 * 1024;

/// The writer also compacts this often when the active commits file holds frames. Frames carry
/// the state changes, payloads awaiting pickup among them; this bounds how long a payload the
/// gateway has deleted (fetched or past retention) lingers in the file.
const COMPACT_EVERY: Duration = Duration::from_secs(30);

/// The data of one batch, moved to a blocking thread for the commit.
struct Pending {
    entry: Vec<u8>,
    receipt: bool,
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
                failed: false,
            }
            .run(syncer_rx),
        );
        let mut closing = false;
        let mut compaction =
            tokio::time::interval_at(tokio::time::Instant::now() + COMPACT_EVERY, COMPACT_EVERY);
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
                        self.maintain(&to_syncer, true).await;
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
            self.commit_batch(batch, &to_syncer).await;
            self.maintain(&to_syncer, false).await;
        }
        // Leave the record files and sled holding every commit, so that the next open has
        // nothing to replay.
        self.finish_compaction().await;
        if self.commits_end[1 - self.active] == 0 {
            self.switch_and_compact(&to_syncer, None).await;
        }
        self.finish_compaction().await;
        drop(to_syncer);
        // Every written batch is answered before the writer counts as finished.
        let _ = syncer.await;
    }

    /// After a batch, or on the timer (`tick`): switches commits files when the active one is
    /// full, or holds frames at a tick; when it is merely unprepared but busy, prepares the
    /// other one first, and switches once that is done. Nothing while a compaction or
    /// preparation is under way, or once the log has failed.
    async fn maintain(&mut self, to_syncer: &mpsc::Sender<ToSyncer>, tick: bool) {
        self.poll_compaction();
        if self.records_synced_at.elapsed() >= SYNC_RECORDS_EVERY
            && !self.records_syncing.swap(true, Ordering::AcqRel)
        {
            self.records_synced_at = std::time::Instant::now();
            let (shared, syncing) = (self.shared.clone(), self.records_syncing.clone());
            tokio::task::spawn_blocking(move || {
                // A failure loses nothing (the frames hold the records); the compaction's own
                // sync of the record files fails too, and closes the log.
                if let Err(e) = shared.store.files().sync_records() {
                    tracing::warn!(error = %e, "audit log: background sync of the record files failed");
                }
                syncing.store(false, Ordering::Release);
            });
        }
        let (active, other) = (self.active, 1 - self.active);
        let end = self.commits_end[active];
        if self.compacting.is_some()
            || end == 0
            || self.commits_end[other] != 0
            || !self.shared.accepting.load(Ordering::Acquire)
        {
            return;
        }
        let full = tick || end > self.compact_at;
        let busy_unprepared = !self.prepared[active] && end > PREPARE_WHEN_BUSY;
        if full || (busy_unprepared && self.prepared[other]) {
            self.switch_and_compact(to_syncer, Some(self.prepare_len()))
                .await;
        } else if busy_unprepared {
            // The other file holds no frames: it is prepared off the pipeline.
            let (done, answer) = oneshot::channel();
            let shared = self.shared.clone();
            let len = self.prepare_len();
            tokio::task::spawn_blocking(move || {
                let prepared = shared.store.files().prepare_commits(other, len);
                let _ = done.send(prepared.map(|()| true));
            });
            self.compacting = Some((other, answer));
        }
    }

    /// How many zero bytes a commits file is prepared with: room for a full file and the frame
    /// that crosses the mark.
    fn prepare_len(&self) -> u64 {
        self.compact_at + self.compact_at.min(1024 * 1024)
    }

    /// Switches to the other commits file (which must be empty) and has the active one
    /// compacted once every commit written before is applied, while commits go on in the
    /// other file; then prepared with `prepare` zero bytes, if given.
    async fn switch_and_compact(
        &mut self,
        to_syncer: &mpsc::Sender<ToSyncer>,
        prepare: Option<u64>,
    ) {
        let file = self.active;
        if self.compacting.is_some() || self.commits_end[file] == 0 {
            return;
        }
        let (done, answer) = oneshot::channel();
        // A prepared file holds frames only up to its end; past it, the zeros of its preparation.
        let dirty = if self.prepared[file] {
            self.commits_end[file]
        } else {
            u64::MAX
        };
        if to_syncer
            .send(ToSyncer::Compact(Compaction {
                file,
                prepare,
                dirty,
                done,
            }))
            .await
            .is_err()
        {
            return;
        }
        self.compacting = Some((file, answer));
        self.prepared[file] = false;
        self.active = 1 - file;
    }

    /// Takes the outcome of the compaction under way, if it has one.
    fn poll_compaction(&mut self) {
        let Some((file, answer)) = &mut self.compacting else {
            return;
        };
        let outcome = match answer.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => return,
            Ok(outcome) => outcome,
            Err(oneshot::error::TryRecvError::Closed) => {
                Err(AuditError::Internal("compaction abandoned"))
            }
        };
        let file = *file;
        self.compacting = None;
        self.compaction_done(file, outcome);
    }

    /// Waits for the compaction under way, if any.
    async fn finish_compaction(&mut self) {
        if let Some((file, answer)) = self.compacting.take() {
            let outcome = answer
                .await
                .unwrap_or(Err(AuditError::Internal("compaction abandoned")));
            self.compaction_done(file, outcome);
        }
    }

    /// A compaction that emptied `file` makes it free for the next switch. One that failed
    /// leaves its frames for the next open, and closes the log for appends: the record files
    /// could not be made durable, and the writer has no empty file to switch to. A failed
    /// preparation closes it too: the disk is failing.
    fn compaction_done(&mut self, file: usize, outcome: Result<bool, AuditError>) {
        match outcome {
            Ok(prepared) => {
                self.commits_end[file] = 0;
                self.prepared[file] = prepared;
            }
            Err(AuditError::NotAccepting) => {}
            Err(e) => {
                self.shared.accepting.store(false, Ordering::Release);
                tracing::error!(error = %e, "audit compaction failed; the log refuses appends until reopened");
            }
        }
    }

    /// Writes one batch on this task, which saves a hand-over to a blocking thread and back per
    /// commit (the writes go to the page cache; the waits for the device are the syncer's), and
    /// hands it to the syncer.
    async fn commit_batch(&mut self, batch: Vec<Append>, to_syncer: &mpsc::Sender<ToSyncer>) {
        let batch = self.sync_first(batch).await;
        if batch.is_empty() {
            return;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut pending = Vec::with_capacity(batch.len());
        for a in batch {
            replies.push(Some(a.reply));
            pending.push(Pending {
                entry: a.entry,
                receipt: a.receipt,
                keys: a.keys,
                changes: a.changes,
            });
            if let Some(companion) = a.companion {
                replies.push(None);
                pending.push(Pending {
                    entry: companion.entry,
                    receipt: false,
                    keys: companion.keys,
                    changes: Vec::new(),
                });
            }
        }
        if !self.shared.accepting.load(Ordering::Acquire) {
            fail_all(replies, || AuditError::NotAccepting);
            return;
        }
        let written =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_batch(pending)))
                .unwrap_or_else(|_| Err(AuditError::CommitFailed("commit panicked".into())));
        match written {
            Ok(written) => {
                let commit = Box::new(Written { replies, ..written });
                if let Err(mpsc::error::SendError(ToSyncer::Commit(commit))) =
                    to_syncer.send(ToSyncer::Commit(commit)).await
                {
                    self.shared.accepting.store(false, Ordering::Release);
                    tracing::error!("audit syncer is gone; the log refuses appends until reopened");
                    fail_all(commit.replies, || {
                        AuditError::CommitFailed("the syncer stopped".into())
                    });
                }
            }
            Err(e) => {
                // Nothing of this batch is known to be written whole; a reopen sorts it out.
                self.shared.accepting.store(false, Ordering::Release);
                tracing::error!(error = %e, "audit commit failed; the log refuses appends until reopened");
                let msg = e.to_string();
                fail_all(replies, || AuditError::CommitFailed(msg.clone()));
            }
        }
    }

    /// Syncs the log's [`super::SyncFirst`] store when an append of `batch` depends on it, before
    /// anything of the batch is written: only then may its frame reach the disk. When the sync
    /// fails, those appends fail (nothing of them is written) and the rest of the batch goes on;
    /// the log itself is sound.
    async fn sync_first(&self, batch: Vec<Append>) -> Vec<Append> {
        if !batch.iter().any(|a| a.sync_first) {
            return batch;
        }
        let Some(store) = self.shared.sync_first.clone() else {
            // `append_after_sync` refuses appends to a log without one.
            return batch;
        };
        // The appends' writes to the store happened before they were queued.
        if !store.is_pending() {
            return batch;
        }
        let began = std::time::Instant::now();
        let synced =
            tokio::task::spawn_blocking(move || store.sync_first().map_err(|e| e.to_string()))
                .await
                .unwrap_or_else(|_| Err("the sync panicked".to_owned()));
        match synced {
            Ok(()) => {
                tracing::debug!(
                    sync_us = began.elapsed().as_micros() as u64,
                    "audit: the store commits depend on is synced"
                );
                batch
            }
            Err(msg) => {
                tracing::error!(error = %msg, "audit: cannot sync the store commits depend on; their appends are refused");
                let (refused, kept): (Vec<Append>, Vec<Append>) =
                    batch.into_iter().partition(|a| a.sync_first);
                for a in refused {
                    let _ = a.reply.send(Err(AuditError::SyncFirst(msg.clone())));
                }
                kept
            }
        }
    }

    /// Writes one batch to the files without syncing, makes its records known to the store, and
    /// computes its receipts, in order. The commit is durable only once the syncer has
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
        let mut records: Vec<(u64, Vec<Hash>)> = Vec::with_capacity(pending.len());
        let data_start = store.data_end();
        let mut data: Vec<u8> = Vec::with_capacity(pending.iter().map(|p| p.entry.len()).sum());
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
            first: first_index,
            data_start,
            data,
            ends,
            hashes: packed,
            checkpoint: signed.clone(),
            changes,
        };
        let encoded = frame.encode();
        #[cfg(test)]
        if self.shared.fail_next_commit.swap(false, Ordering::AcqRel) {
            return Err(AuditError::Storage(sled::Error::Unsupported(
                "injected write failure".into(),
            )));
        }
        let began = std::time::Instant::now();
        let file = self.active;
        store.files().write_records(&frame)?;
        store
            .files()
            .write_frame(file, self.commits_end[file], &encoded)?;
        self.commits_end[file] += encoded.len() as u64;
        let written = began.elapsed();
        self.frontier = frontier;
        let keys: Vec<IndexKeys> = pending
            .iter_mut()
            .map(|p| std::mem::take(&mut p.keys))
            .collect();
        // Known to the store for the next batch's proofs; readers see only the published size.
        store.remember(&frame.ends, &records, &keys)?;

        let reader = Overlay {
            first: stored_hash_index(0, first_index),
            packed: &frame.hashes,
            store,
        };
        let mut receipts = Vec::with_capacity(pending.len());
        let receipts_began = std::time::Instant::now();
        let mut prover = Prover::new(size, &reader);
        let entries = pending.len();
        for (i, p) in pending.into_iter().enumerate() {
            let index = first_index + i as u64;
            if !p.receipt {
                receipts.push(Receipt {
                    index,
                    entry: Vec::new(),
                    proof: String::new(),
                });
                continue;
            }
            let proof = TlogProof {
                extra: None,
                index,
                hashes: prover.prove(index)?,
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
            file,
            size,
            signed,
            changes: frame.changes,
            receipts,
            replies: Vec::new(),
        })
    }
}

/// One batch written to the files, on its way to the syncer.
struct Written {
    /// The commits file its frame went to.
    file: usize,
    /// The tree size after it.
    size: u64,
    /// Its signed checkpoint.
    signed: String,
    /// Its state changes, applied to sled in order before its checkpoint.
    changes: Vec<StateChange>,
    /// The receipts, in the order of `replies`.
    receipts: Vec<Receipt>,
    replies: Vec<Reply>,
}

/// What the writer hands the syncer, in order.
enum ToSyncer {
    /// A written batch to make durable and answer.
    Commit(Box<Written>),
    /// Once every batch before has been applied, a compaction.
    Compact(Compaction),
}

/// A compaction, passed down the pipeline in order: sync the record files, flush sled, empty
/// commits file `file`, and prepare it with `prepare` zero bytes if given; the outcome (whether
/// the file is now prepared) goes to `done`. Frames reach at most `dirty` bytes into the file
/// (`u64::MAX` when not known).
struct Compaction {
    file: usize,
    prepare: Option<u64>,
    dirty: u64,
    done: oneshot::Sender<Result<bool, AuditError>>,
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
fn fail_all(replies: Vec<Reply>, error: impl Fn() -> AuditError) {
    for r in replies.into_iter().flatten() {
        let _ = r.send(Err(error()));
    }
}

/// The second stage: makes written batches durable, several per sync, and hands them on.
struct Syncer {
    shared: Arc<Shared>,
    /// Set by a failed sync: every batch after it fails too.
    failed: bool,
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
                ToSyncer::Compact(compaction) => {
                    if self.failed {
                        // The frames of the failed commits stay for the next open to sort out.
                        let _ = compaction.done.send(Err(AuditError::NotAccepting));
                        continue;
                    }
                    // In order: the applier starts it once it has applied everything before.
                    if let Err(mpsc::error::SendError(ToApplier::Compact(compaction))) =
                        to_applier.send(ToApplier::Compact(compaction)).await
                    {
                        let _ = compaction.done.send(Err(AuditError::NotAccepting));
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

    /// Syncs the commits file (both, around a switch), which makes `commits` durable, or fails
    /// them all.
    async fn make_durable(&mut self, commits: Vec<Written>) -> Option<Vec<Written>> {
        let error = if self.failed {
            AuditError::CommitFailed("an earlier commit failed".into())
        } else {
            let began = std::time::Instant::now();
            #[cfg(test)]
            let injected = self.shared.fail_next_sync.swap(false, Ordering::AcqRel);
            let mut files = [false; 2];
            for c in &commits {
                files[c.file & 1] = true;
            }
            let shared = self.shared.clone();
            let synced = tokio::task::spawn_blocking(move || {
                (0..2)
                    .filter(|f| files[*f])
                    .try_for_each(|f| shared.store.files().sync_commits(f))
            })
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
    /// A compaction, to run once every batch before has been applied.
    Compact(Compaction),
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
                ToApplier::Compact(compaction) => self.compact(compaction),
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
                    self.apply(commits);
                }
            }
        }
    }

    fn apply(&mut self, commits: Vec<Written>) {
        let mut applied = Vec::with_capacity(commits.len());
        let mut answers = Vec::with_capacity(commits.len());
        for c in commits {
            applied.push((c.changes, c.size, c.signed));
            answers.push((c.replies, c.receipts));
        }
        let Some((_, size, signed)) = applied.last() else {
            return;
        };
        let (size, signed) = (*size, signed.clone());
        let done = if self.failed {
            Err(AuditError::CommitFailed("an earlier commit failed".into()))
        } else {
            // On this task: sled applies a commit in memory (about 60 µs for a few dozen
            // exchanges), less than a hand-over to a blocking thread and back costs. Readers
            // see the commits whole: they wait at the gate meanwhile.
            let began = std::time::Instant::now();
            let commits = applied.len();
            let entries: usize = answers.iter().map(|(r, _)| r.len()).sum();
            let tree = self.shared.store.tree();
            let mut gate = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
            let outcome = applied.iter().try_for_each(|(changes, size, signed)| {
                Frame::apply_each(tree, Some(&mut *gate), changes, *size, signed)
            });
            drop(gate);
            outcome.map(|()| {
                self.shared.publish(size, signed);
                tracing::debug!(
                    commits,
                    entries,
                    size,
                    apply_us = began.elapsed().as_micros() as u64,
                    "audit commits applied"
                );
            })
        };
        match done {
            Ok(()) => {
                for (replies, receipts) in answers {
                    for (r, receipt) in replies.into_iter().zip(receipts) {
                        // A caller that gave up still has a durable entry; nothing to undo.
                        if let Some(r) = r {
                            let _ = r.send(Ok(receipt));
                        }
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

    /// Starts the compaction of commits file `file`, every commit of which is applied: on a
    /// blocking task of its own, so that applying goes on meanwhile, it syncs the record files
    /// (which then hold every record of the file durably), flushes sled (which then holds every
    /// commit of it durably), empties the file, and prepares it with `prepare` zero bytes if
    /// given. The outcome goes to `done`.
    fn compact(&self, compaction: Compaction) {
        let Compaction {
            file,
            prepare,
            dirty,
            done,
        } = compaction;
        if self.failed {
            let _ = done.send(Err(AuditError::NotAccepting));
            return;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let began = std::time::Instant::now();
            let outcome = (|| -> Result<u64, AuditError> {
                let files = shared.store.files();
                files.sync_records()?;
                let flushed = shared.store.tree().flush()?;
                match prepare {
                    Some(len) => files.recycle_commits(file, len, dirty)?,
                    None => files.clear_commits(file)?,
                }
                Ok(flushed as u64)
            })();
            if let Ok(flushed) = &outcome {
                tracing::debug!(
                    file,
                    sled_bytes = flushed,
                    took_us = began.elapsed().as_micros() as u64,
                    "audit commits file compacted"
                );
            }
            let _ = done.send(outcome.map(|_| prepare.is_some()));
        });
    }
}

/// Every stored hash of the batch just written (its leaves and the upper-level hashes they
/// completed, in the stored order from `first`), in memory, over the store: a proof then reads
/// from the hashes file only the few level-0 and level-1 hashes left of the batch.
struct Overlay<'a> {
    first: u64,
    packed: &'a [u8],
    store: &'a Store,
}

impl HashReader for Overlay<'_> {
    fn read_hash(&self, index: u64) -> Result<Hash, AuditError> {
        if let Some(at) = index
            .checked_sub(self.first)
            .and_then(|k| usize::try_from(k).ok())
            .and_then(|k| k.checked_mul(32))
            && let Some(bytes) = self.packed.get(at..at + 32)
        {
            let mut h = [0u8; 32];
            h.copy_from_slice(bytes);
            return Ok(h);
        }
        self.store.read_hash(index)
    }
}
