//! The group-commit writer: one tokio task drains the append queue in batches and, per batch,
//! appends the entries, their stored hashes and the commit's frame (its signed checkpoint and the
//! callers' state changes) to the log files and syncs them at once, which makes the commit
//! durable; applies the frame to sled; and only then answers every waiter with its receipt. A
//! failed write or sync fails the whole batch and closes the log for appends (fail closed); on
//! reopen, a commit whose frame or records are not whole is cut off.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::files::Frame;
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
                        self = self.compact().await;
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
            self = self.commit_batch(batch).await;
        }
        // Leave sled holding every commit, so that the next open has nothing to replay.
        self.compact().await;
    }

    /// Flushes sled, which then holds every commit durably, and empties the commits file.
    /// Does nothing when the file is empty or the log has failed; a failure here loses nothing
    /// (the frames stay, and are replayed on open), so it is only logged.
    async fn compact(mut self) -> Writer {
        if self.commits_end == 0 || !self.shared.accepting.load(Ordering::Acquire) {
            return self;
        }
        let shared = self.shared.clone();
        let done = tokio::task::spawn_blocking(move || {
            shared.store.tree().flush()?;
            shared.store.files().clear_commits()
        })
        .await;
        match done {
            Ok(Ok(())) => self.commits_end = 0,
            Ok(Err(e)) => tracing::warn!(error = %e, "audit log: could not empty the commits file"),
            Err(_) => tracing::warn!("audit log: emptying the commits file panicked"),
        }
        self
    }

    async fn commit_batch(mut self, batch: Vec<Append>) -> Writer {
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
            for r in replies {
                let _ = r.send(Err(AuditError::NotAccepting));
            }
            return self;
        }
        let shared = self.shared.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let result = self.commit(pending);
            (self, result)
        })
        .await;
        let (writer, result) = match joined {
            Ok(pair) => pair,
            Err(_) => {
                // The commit thread panicked: nothing of this batch is known to be durable.
                shared.accepting.store(false, Ordering::Release);
                tracing::error!("audit commit panicked; the log refuses appends until reopened");
                for r in replies {
                    let _ = r.send(Err(AuditError::CommitFailed("commit panicked".into())));
                }
                // Without the writer state there is nothing left to do; a reopen recovers.
                return Writer::closed(shared);
            }
        };
        match result {
            Ok(receipts) => {
                for (r, receipt) in replies.into_iter().zip(receipts) {
                    // A caller that gave up still has a durable entry; nothing to undo.
                    let _ = r.send(Ok(receipt));
                }
            }
            Err(e) => {
                writer.shared.accepting.store(false, Ordering::Release);
                tracing::error!(error = %e, "audit commit failed; the log refuses appends until reopened");
                let msg = e.to_string();
                for r in replies {
                    let _ = r.send(Err(AuditError::CommitFailed(msg.clone())));
                }
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

    /// Commits one batch durably and returns the receipts, in order. Blocking.
    fn commit(&mut self, mut pending: Vec<Pending>) -> Result<Vec<Receipt>, AuditError> {
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
        let mut batch = sled::Batch::default();
        frame.apply_to(&mut batch);
        let frame = frame.encode();
        #[cfg(test)]
        if self.shared.fail_next_commit.swap(false, Ordering::AcqRel) {
            return Err(AuditError::Storage(sled::Error::Unsupported(
                "injected write failure".into(),
            )));
        }
        // Durable once the records and the frame are synced; sled is their view.
        let began = std::time::Instant::now();
        store.files().append(
            first_index,
            data_start,
            &data,
            &ends,
            &packed,
            self.commits_end,
            &frame,
        )?;
        self.commits_end += frame.len() as u64;
        let synced = began.elapsed();
        store.tree().apply_batch(batch)?;
        let applied = began.elapsed() - synced;
        if self.commits_end > COMPACT_COMMITS_AT {
            store.tree().flush()?;
            store.files().clear_commits()?;
            self.commits_end = 0;
        }
        self.frontier = frontier;
        let keys: Vec<IndexKeys> = pending
            .iter_mut()
            .map(|p| std::mem::take(&mut p.keys))
            .collect();
        store.remember(&ends, &records, &keys)?;
        self.shared.publish(size, signed.clone());

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
            sync_us = synced.as_micros() as u64,
            apply_us = applied.as_micros() as u64,
            receipts_us = receipts_began.elapsed().as_micros() as u64,
            "audit commit"
        );
        Ok(receipts)
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
