//! Group commit with a leader, in three stages, so that the CPU work of the next commit overlaps
//! the device wait of the one before, and no commit waits for a task to be scheduled:
//!
//! 1. **Write.** An append goes into the committer's queue. If no commit is under way, the
//!    appending caller leads: on its own task, right away, it writes every queued append as one
//!    batch: the entries and their stored hashes to the record files, and the commit's frame
//!    (those records, its signed checkpoint and the callers' state changes) to the active
//!    commits file, without syncing. It makes the records known to the store (readers still see
//!    only the published size), computes the receipts, and hands the batch to a blocking thread.
//! 2. **Sync.** That thread syncs the commits file, which makes the batch durable, and passes it
//!    to the applier. Appends that arrived during the sync wait in the queue; the thread writes
//!    them as the next batch and syncs again, until the queue is empty. So one sync is in flight
//!    at a time, each batch holds what arrived during the sync before it, and a new batch is
//!    written the moment its sync can start.
//! 3. **Apply.** The applier task applies durable batches' frames to sled in order, publishes
//!    the last checkpoint, and only then answers every waiter with its receipt.
//!
//! (A writer task fed by a channel, as before, was woken only after the wave of caller tasks
//! that the last commit's answers released: its first append waited about 2 ms to be taken,
//! every caller ended up in one commit, and the CPUs idled during each sync.)
//!
//! Compaction keeps the commits files small without stopping the pipeline: the writer switches to
//! the other commits file, and once every commit of the old one is applied, a blocking task syncs
//! the record files, flushes sled and empties the old file while commits go on.
//!
//! A failed write or sync fails its batch and closes the log for appends (fail closed); every
//! append after it fails too. On reopen, a commit whose frame is not whole is cut off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::files::Frame;
use super::hash::{
    Frontier, Hash, HashReader, Prover, leaf_hash, split_stored_hash_index, stored_hash_index,
};
use super::index::IndexKeys;
use super::keys::Signer;
use super::log::{Shared, StateChange};
use super::note;
use super::proof::{Receipt, TlogProof};
use super::store::Store;

/// One append: the encoded entry, its index keys without the index, and the caller's state
/// changes.
pub(crate) struct Pending {
    pub entry: Vec<u8>,
    /// Whether the caller wants the receipt's entry and proof (otherwise only its index).
    pub receipt: bool,
    pub keys: IndexKeys,
    pub changes: Vec<StateChange>,
}

/// A queued append, and where to send its outcome.
struct Append {
    pending: Pending,
    reply: oneshot::Sender<Result<Receipt, AuditError>>,
}

/// The appends waiting for the next batch, and who writes it.
#[derive(Default)]
struct Queue {
    appends: Vec<Append>,
    /// A commit is under way (written, syncing, or the next one being written), or the
    /// maintenance timer or shutdown holds the writer: whoever set it writes what is queued
    /// before clearing it.
    busy: bool,
    /// Set by shutdown: new appends are refused; the queued ones are still committed.
    closed: bool,
}

/// The group committer, shared by every handle on the log.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    queue: Mutex<Queue>,
    /// Taken only by whoever set `busy`; a lock only to share it between threads.
    writer: Mutex<Writer>,
    batch_max: usize,
    /// Bounds the appends in flight (queued, being committed or answered); more wait.
    slots: Semaphore,
    /// The permits `slots` started with.
    slots_max: usize,
    to_applier: mpsc::UnboundedSender<ToApplier>,
    /// Notified whenever `busy` is cleared.
    idle: Notify,
    /// To the syncing thread: a written batch to make durable (see [`sync_thread`]). Taken by
    /// shutdown, which ends the thread.
    to_sync: Mutex<Option<std::sync::mpsc::Sender<Written>>>,
    /// Set by the maintenance timer: the next write switches commits files if the active one
    /// holds frames.
    tick: AtomicBool,
}

/// What the committer needs to start.
pub(crate) struct CommitterConfig {
    pub batch_max: usize,
    pub queue_capacity: usize,
}

/// The running committer's tasks, for shutdown.
pub(crate) struct Tasks {
    applier: tokio::task::JoinHandle<()>,
    timer: tokio::task::JoinHandle<()>,
    sync: std::thread::JoinHandle<()>,
}

impl Committer {
    /// Starts the applier and the maintenance timer on `runtime`.
    pub fn start(
        writer: Writer,
        config: CommitterConfig,
        runtime: &tokio::runtime::Handle,
    ) -> (Arc<Committer>, Tasks) {
        let (to_applier, applier_rx) = mpsc::unbounded_channel();
        let (to_sync, sync_rx) = std::sync::mpsc::channel();
        let shared = writer.shared.clone();
        let slots_max = config
            .queue_capacity
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let committer = Arc::new(Committer {
            shared: shared.clone(),
            queue: Mutex::new(Queue::default()),
            writer: Mutex::new(writer),
            batch_max: config.batch_max.max(1),
            slots: Semaphore::new(slots_max),
            slots_max,
            to_applier,
            idle: Notify::new(),
            to_sync: Mutex::new(Some(to_sync)),
            tick: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&committer);
        let sync = std::thread::Builder::new()
            .name("audit-sync".into())
            .spawn(move || sync_thread(weak, sync_rx))
            .expect("the audit log's syncing thread starts");
        let applier = runtime.spawn(
            Applier {
                shared,
                failed: false,
            }
            .run(applier_rx),
        );
        let timer = runtime.spawn(maintenance_timer(Arc::downgrade(&committer)));
        (
            committer,
            Tasks {
                applier,
                timer,
                sync,
            },
        )
    }

    /// Commits `appends` in order, in one batch when the batch limit allows, and waits for
    /// their outcomes: each one's receipt once durable. Leads the commit if none is under way.
    /// A full pipeline makes this wait (back-pressure).
    pub async fn commit(&self, appends: Vec<Pending>) -> Vec<Result<Receipt, AuditError>> {
        let n = appends.len();
        let slots = u32::try_from(n.min(self.slots_max)).unwrap_or(u32::MAX);
        let Ok(_slots) = self.slots.acquire_many(slots).await else {
            return (0..n).map(|_| Err(AuditError::NotAccepting)).collect();
        };
        let mut outcomes = Vec::with_capacity(n);
        let batch = {
            let mut q = lock(&self.queue);
            if q.closed {
                return (0..n).map(|_| Err(AuditError::NotAccepting)).collect();
            }
            for pending in appends {
                let (reply, rx) = oneshot::channel();
                q.appends.push(Append { pending, reply });
                outcomes.push(rx);
            }
            if q.busy {
                None
            } else {
                q.busy = true;
                Some(self.take(&mut q))
            }
        };
        if let Some(batch) = batch {
            self.lead(batch);
        }
        let mut results = Vec::with_capacity(n);
        for rx in outcomes {
            results.push(rx.await.unwrap_or(Err(AuditError::NotAccepting)));
        }
        results
    }

    /// Takes the next batch from the queue: at most `batch_max` appends, in order.
    fn take(&self, q: &mut Queue) -> Vec<Append> {
        if q.appends.len() <= self.batch_max {
            std::mem::take(&mut q.appends)
        } else {
            let rest = q.appends.split_off(self.batch_max);
            std::mem::replace(&mut q.appends, rest)
        }
    }

    /// With `busy` set by the caller: writes `batch` and starts its sync on a blocking thread.
    fn lead(&self, batch: Vec<Append>) {
        let written = match self.write(batch) {
            Some(w) => Some(w),
            None => self.next_written(),
        };
        if let Some(written) = written {
            self.to_sync(written);
        }
    }

    /// Writes `batch` (possibly empty: then only the writer's upkeep runs). `None` if nothing
    /// was written, its waiters having been answered with the failure.
    fn write(&self, batch: Vec<Append>) -> Option<Written> {
        let mut writer = lock(&self.writer);
        let written = if batch.is_empty() {
            None
        } else {
            writer.commit_batch(batch)
        };
        let tick = self.tick.swap(false, Ordering::AcqRel);
        let compaction = writer.maintain(tick);
        match (written, compaction) {
            (Some(mut w), compaction) => {
                w.then_compact = compaction;
                Some(w)
            }
            (None, Some(compaction)) => {
                // Nothing is in flight (the caller holds `busy` and nothing was written):
                // every batch before was handed to the applier already.
                self.send_compaction(compaction);
                None
            }
            (None, None) => None,
        }
    }

    /// Writes the queued appends, or, with none queued, clears `busy`. Loops past batches whose
    /// write failed (their waiters are answered).
    fn next_written(&self) -> Option<Written> {
        loop {
            let batch = {
                let mut q = lock(&self.queue);
                if q.appends.is_empty() {
                    q.busy = false;
                    drop(q);
                    self.idle.notify_waiters();
                    return None;
                }
                self.take(&mut q)
            };
            if let Some(w) = self.write(batch) {
                return Some(w);
            }
        }
    }

    /// Hands `written` to the syncing thread; if it is gone (the log is shut down), fails it.
    fn to_sync(&self, written: Written) {
        let sent = match &*lock(&self.to_sync) {
            Some(tx) => tx.send(written).map_err(|e| e.0),
            None => Err(written),
        };
        if let Err(written) = sent {
            fail_all(written.replies, || AuditError::NotAccepting);
            if let Some(c) = written.then_compact {
                let _ = c.done.send(Err(AuditError::NotAccepting));
            }
            self.next_written_failing();
        }
    }

    /// With the syncing thread gone: fails whatever is queued and clears `busy`.
    fn next_written_failing(&self) {
        let appends = {
            let mut q = lock(&self.queue);
            q.busy = false;
            std::mem::take(&mut q.appends)
        };
        self.idle.notify_waiters();
        fail_all(appends.into_iter().map(|a| a.reply).collect(), || {
            AuditError::NotAccepting
        });
    }

    /// On the syncing thread: makes `written` durable, hands it to the applier, and goes on
    /// with the batches queued meanwhile until the queue is empty.
    fn sync_until_idle(&self, mut written: Written) {
        loop {
            let synced =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.sync(written.file)))
                    .unwrap_or_else(|_| Err(AuditError::CommitFailed("sync panicked".into())));
            match synced {
                Ok(()) => {
                    let compaction = written.then_compact.take();
                    let _ = self.to_applier.send(ToApplier::Apply(Box::new(written)));
                    if let Some(compaction) = compaction {
                        self.send_compaction(compaction);
                    }
                }
                Err(e) => {
                    self.shared.accepting.store(false, Ordering::Release);
                    tracing::error!(error = %e, "audit sync failed; the log refuses appends until reopened");
                    let msg = e.to_string();
                    fail_all(written.replies, || AuditError::CommitFailed(msg.clone()));
                    if let Some(c) = written.then_compact {
                        // The old file's frames stay for the next open to sort out.
                        let _ = c.done.send(Err(AuditError::NotAccepting));
                    }
                }
            }
            match self.next_written() {
                Some(w) => written = w,
                None => return,
            }
        }
    }

    /// Syncs commits file `file`.
    fn sync(&self, file: usize) -> Result<(), AuditError> {
        let began = std::time::Instant::now();
        #[cfg(test)]
        if self.shared.fail_next_sync.swap(false, Ordering::AcqRel) {
            return Err(AuditError::Storage(sled::Error::Unsupported(
                "injected sync failure".into(),
            )));
        }
        self.shared.store.files().sync_commits(file)?;
        tracing::debug!(
            sync_us = began.elapsed().as_micros() as u64,
            "audit commit synced"
        );
        Ok(())
    }

    /// Hands a compaction to the applier, which starts it once every batch before is applied.
    fn send_compaction(&self, compaction: Compaction) {
        if let Err(mpsc::error::SendError(ToApplier::Compact(c))) =
            self.to_applier.send(ToApplier::Compact(compaction))
        {
            let _ = c.done.send(Err(AuditError::NotAccepting));
        }
    }

    /// Sets `busy`, waiting for a commit under way to finish; `false` if the queue is closed
    /// and `closing` is not set.
    pub(crate) async fn hold(&self, closing: bool) -> bool {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let mut q = lock(&self.queue);
                if q.closed && !closing {
                    return false;
                }
                if !q.busy {
                    q.busy = true;
                    return true;
                }
            }
            idle.await;
        }
    }

    /// How many appends wait in the queue.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        lock(&self.queue).appends.len()
    }

    /// Whether a shutdown has closed the queue.
    #[cfg(test)]
    pub fn closed(&self) -> bool {
        lock(&self.queue).closed
    }

    /// Releases `busy` set by [`Committer::hold`]: commits whatever was queued meanwhile.
    pub(crate) fn release(&self) {
        if let Some(written) = self.next_written() {
            self.to_sync(written);
        }
    }

    /// The maintenance timer's turn: the writer's upkeep with a tick, now if no commit is under
    /// way, else by the next write.
    fn tick(&self) {
        self.tick.store(true, Ordering::Release);
        {
            let mut q = lock(&self.queue);
            if q.busy || q.closed {
                return;
            }
            q.busy = true;
        }
        let _ = self.write(Vec::new());
        self.release();
    }

    /// Refuses new appends, commits the queued ones, waits for every commit and the compaction
    /// under way, and leaves the record files and sled holding every commit, so that the next
    /// open has nothing to replay. Then stops the applier and the timer.
    pub async fn close(&self, tasks: Tasks) {
        lock(&self.queue).closed = true;
        tasks.timer.abort();
        self.hold(true).await;
        self.finish_compaction().await;
        let compaction = {
            let mut writer = lock(&self.writer);
            let other = 1 - writer.active;
            if writer.commits_end[other] == 0 {
                writer.switch_and_compact(None)
            } else {
                None
            }
        };
        if let Some(compaction) = compaction {
            self.send_compaction(compaction);
        }
        self.finish_compaction().await;
        let _ = self.to_applier.send(ToApplier::Stop);
        let _ = tasks.applier.await;
        lock(&self.to_sync).take();
        let _ = tokio::task::spawn_blocking(move || tasks.sync.join()).await;
        self.next_written_failing();
    }

    /// Waits for the compaction under way, if any (with `busy` held).
    async fn finish_compaction(&self) {
        let compacting = lock(&self.writer).compacting.take();
        if let Some((file, answer)) = compacting {
            let outcome = answer
                .await
                .unwrap_or(Err(AuditError::Internal("compaction abandoned")));
            lock(&self.writer).compaction_done(file, outcome);
        }
    }
}

/// Locks `m`; a poisoned lock only means a holder panicked, and what it guards stays whole (a
/// failed write closes the log).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The syncing thread: makes each written batch durable and goes on with the batches queued
/// meanwhile (see [`Committer::sync_until_idle`]). A thread of its own, not a tokio task, so
/// that the end of a sync is not queued behind the tasks that the last answers woke.
fn sync_thread(committer: Weak<Committer>, rx: std::sync::mpsc::Receiver<Written>) {
    for written in rx {
        match committer.upgrade() {
            Some(c) => c.sync_until_idle(written),
            None => return,
        }
    }
}

/// Gives the committer its maintenance turn every [`COMPACT_EVERY`], while it exists.
async fn maintenance_timer(committer: Weak<Committer>) {
    let mut every =
        tokio::time::interval_at(tokio::time::Instant::now() + COMPACT_EVERY, COMPACT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match committer.upgrade() {
            Some(c) => c.tick(),
            None => return,
        }
    }
}

/// What the writer owns between batches.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub runtime: tokio::runtime::Handle,
    pub frontier: Frontier,
    pub signers: Vec<Signer>,
    pub origin: String,
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
    pub records_syncing: Arc<AtomicBool>,
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

impl Writer {
    /// After a batch, or on the timer (`tick`): switches commits files when the active one is
    /// full, or holds frames at a tick; when it is merely unprepared but busy, prepares the
    /// other one first, and switches once that is done. Nothing while a compaction or
    /// preparation is under way, or once the log has failed. Returns the compaction to pass
    /// down the pipeline after the batch just written, if it switched.
    fn maintain(&mut self, tick: bool) -> Option<Compaction> {
        self.poll_compaction();
        if self.records_synced_at.elapsed() >= SYNC_RECORDS_EVERY
            && !self.records_syncing.swap(true, Ordering::AcqRel)
        {
            self.records_synced_at = std::time::Instant::now();
            let (shared, syncing) = (self.shared.clone(), self.records_syncing.clone());
            self.runtime.spawn_blocking(move || {
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
            return None;
        }
        let full = tick || end > self.compact_at;
        let busy_unprepared = !self.prepared[active] && end > PREPARE_WHEN_BUSY;
        if full || (busy_unprepared && self.prepared[other]) {
            return self.switch_and_compact(Some(self.prepare_len()));
        }
        if busy_unprepared {
            // The other file holds no frames: it is prepared off the pipeline.
            let (done, answer) = oneshot::channel();
            let shared = self.shared.clone();
            let len = self.prepare_len();
            self.runtime.spawn_blocking(move || {
                let prepared = shared.store.files().prepare_commits(other, len);
                let _ = done.send(prepared.map(|()| true));
            });
            self.compacting = Some((other, answer));
        }
        None
    }

    /// How many zero bytes a commits file is prepared with: room for a full file and the frame
    /// that crosses the mark.
    fn prepare_len(&self) -> u64 {
        self.compact_at + self.compact_at.min(1024 * 1024)
    }

    /// Switches to the other commits file (which must be empty) and returns the compaction of
    /// the active one, to run once every commit written before is applied, while commits go on
    /// in the other file; then prepared with `prepare` zero bytes, if given.
    fn switch_and_compact(&mut self, prepare: Option<u64>) -> Option<Compaction> {
        let file = self.active;
        if self.compacting.is_some() || self.commits_end[file] == 0 {
            return None;
        }
        let (done, answer) = oneshot::channel();
        self.compacting = Some((file, answer));
        self.prepared[file] = false;
        self.active = 1 - file;
        Some(Compaction {
            file,
            prepare,
            done,
        })
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

    /// Writes one batch (the writes go to the page cache; the waits for the device are the
    /// syncing thread's). `None` if it failed: its waiters are answered, and the log is closed
    /// for appends.
    fn commit_batch(&mut self, batch: Vec<Append>) -> Option<Written> {
        let mut replies = Vec::with_capacity(batch.len());
        let mut pending = Vec::with_capacity(batch.len());
        for a in batch {
            replies.push(a.reply);
            pending.push(a.pending);
        }
        if !self.shared.accepting.load(Ordering::Acquire) {
            fail_all(replies, || AuditError::NotAccepting);
            return None;
        }
        let written =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_batch(pending)))
                .unwrap_or_else(|_| Err(AuditError::CommitFailed("commit panicked".into())));
        match written {
            Ok(written) => Some(Written { replies, ..written }),
            Err(e) => {
                // Nothing of this batch is known to be written whole; a reopen sorts it out.
                self.shared.accepting.store(false, Ordering::Release);
                tracing::error!(error = %e, "audit commit failed; the log refuses appends until reopened");
                let msg = e.to_string();
                fail_all(replies, || AuditError::CommitFailed(msg.clone()));
                None
            }
        }
    }

    /// Writes one batch to the files without syncing, makes its records known to the store, and
    /// computes its receipts, in order. The commit is durable only once its
    /// commits file is synced after this returns.
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
            first: first_index,
            leaves: &leaves,
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
            then_compact: None,
        })
    }
}

/// One batch written to the files, on its way to the syncing thread and the applier.
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
    replies: Vec<oneshot::Sender<Result<Receipt, AuditError>>>,
    /// The compaction of the commits file this batch was the last of, if the writer switched
    /// files after it: it goes to the applier right after the batch.
    then_compact: Option<Compaction>,
}

/// A compaction, passed down the pipeline in order: sync the record files, flush sled, empty
/// commits file `file`, and prepare it with `prepare` zero bytes if given; the outcome (whether
/// the file is now prepared) goes to `done`.
struct Compaction {
    file: usize,
    prepare: Option<u64>,
    done: oneshot::Sender<Result<bool, AuditError>>,
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

/// What the syncing thread hands the applier, in order.
enum ToApplier {
    /// A durable batch to apply to sled, publish and answer.
    Apply(Box<Written>),
    /// A compaction, to run once every batch before has been applied.
    Compact(Compaction),
    /// Shutdown: everything before is handled.
    Stop,
}

/// The third stage: applies durable batches to sled in order, publishes the last checkpoint, and
/// answers the callers. It works while the next batch syncs.
struct Applier {
    shared: Arc<Shared>,
    /// Set by a failed apply: every batch after it fails too.
    failed: bool,
}

impl Applier {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ToApplier>) {
        let mut held = None;
        loop {
            let item = match held.take() {
                Some(item) => item,
                None => match rx.recv().await {
                    Some(item) => item,
                    None => return,
                },
            };
            match item {
                ToApplier::Stop => return,
                ToApplier::Compact(compaction) => self.compact(compaction),
                ToApplier::Apply(first) => {
                    let mut commits = vec![*first];
                    loop {
                        match rx.try_recv() {
                            Ok(ToApplier::Apply(more)) => commits.push(*more),
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

    /// Starts the compaction of commits file `file`, every commit of which is applied: on a
    /// blocking task of its own, so that applying goes on meanwhile, it syncs the record files
    /// (which then hold every record of the file durably), flushes sled (which then holds every
    /// commit of it durably), empties the file, and prepares it with `prepare` zero bytes if
    /// given. The outcome goes to `done`.
    fn compact(&self, compaction: Compaction) {
        let Compaction {
            file,
            prepare,
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
                files.clear_commits(file)?;
                if let Some(len) = prepare {
                    files.prepare_commits(file, len)?;
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
