//! Full verification of a stored log, without trusting anything it stored: recompute the tree
//! from every entry, compare every stored hash with the recomputed one, check every stored
//! checkpoint's signature and root, and check each checkpoint's consistency with the next.
//! The first bad record is named by its index.

use std::path::Path;

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::hash::{
    Frontier, Hash, HashReader, check_tree, leaf_hash, prove_tree, stored_hash_index,
};
use super::keys::Verifier;
use super::store::{HashLevels, Store};

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The number of entries checked.
    pub entries: u64,
    /// The number of signed checkpoints checked.
    pub checkpoints: u64,
    /// The size and root of the largest checkpoint.
    pub latest: Option<(u64, Hash)>,
}

/// Opens the sled database at `dir` (without starting a writer) and verifies it.
pub fn verify_dir(
    dir: &Path,
    verifiers: &[Verifier],
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    if !dir.exists() {
        return Err(AuditError::Config(format!(
            "no audit log at {}",
            dir.display()
        )));
    }
    let (_db, store) = Store::open_dir(dir)?;
    verify_log(&store, verifiers, progress)
}

/// Entries read and leaf-hashed per worker per round.
#[cfg(not(test))]
const CHUNK: u64 = 16_384;
/// Tiny chunks in unit tests, so that small logs cross chunk and round boundaries.
#[cfg(test)]
const CHUNK: u64 = 4;

/// One entry as a worker read it: its recomputed leaf hash and its stored hashes.
struct Read {
    leaf: Hash,
    /// Where its stored hashes start in the chunk's packed hashes.
    at: usize,
}

/// What a worker read from `[lo, hi)`: the entries up to the first problem, then the problem.
struct ChunkRead {
    items: Vec<Read>,
    /// The stored hashes of the chunk's records, packed.
    hashes: Vec<u8>,
    /// The checkpoints for sizes `lo + 1 ..= hi`, opened (their signatures checked), in order.
    checkpoints: Vec<OpenedCheckpoint>,
    problem: Option<AuditError>,
}

/// A stored checkpoint's size and the checkpoint opened from it, or why either failed.
type OpenedCheckpoint = Result<(u64, Result<Checkpoint, AuditError>), AuditError>;

/// The checkpoints for sizes `from..=to`, opened. Checking a signature costs as much as reading
/// and hashing a few dozen entries, and a log written under light traffic has nearly one
/// checkpoint per entry, so the workers open the checkpoints of their chunks too.
fn open_checkpoints(
    store: &Store,
    verifiers: &[Verifier],
    from: u64,
    to: u64,
) -> Vec<OpenedCheckpoint> {
    store
        .checkpoints_in(from, to)
        .map(|stored| stored.map(|(size, bytes)| (size, open_stored(size, &bytes, verifiers))))
        .collect()
}

/// Reads entries `[lo, hi)` of a log of `total` and their stored hashes, and leaf-hashes them.
/// This is the bulk of the work (file reads and SHA-256 over every entry), so workers run it in
/// parallel over disjoint ranges; everything that needs the order of the whole log is done after.
fn read_chunk(store: &Store, verifiers: &[Verifier], lo: u64, hi: u64, total: u64) -> ChunkRead {
    let mut out = ChunkRead {
        items: Vec::with_capacity(usize::try_from(hi - lo).unwrap_or(0)),
        hashes: Vec::new(),
        checkpoints: open_checkpoints(store, verifiers, lo + 1, hi),
        problem: None,
    };
    // Records past those located whole are missing (or damaged; the store said which).
    let located = store.records().min(total);
    let upto = hi.min(located);
    if lo < upto {
        let read = (|| {
            let run = store.read_run(lo, upto)?;
            let first = stored_hash_index(0, lo);
            let hashes = store
                .files()
                .read_hashes(first, stored_hash_index(0, upto) - first)?;
            Ok::<_, AuditError>((run, first, hashes))
        })();
        let (run, first, hashes) = match read {
            Ok(r) => r,
            Err(e) => {
                out.problem = Some(e);
                return out;
            }
        };
        for (index, raw) in run.iter() {
            out.items.push(Read {
                leaf: leaf_hash(raw),
                at: ((stored_hash_index(0, index) - first) * 32) as usize,
            });
        }
        out.hashes = hashes;
    }
    if upto < hi {
        out.problem = Some(AuditError::Corrupt {
            index: upto,
            reason: "the entry or its stored hashes are missing or damaged".into(),
        });
    }
    out
}

/// Reads the chunks of `[0, total)` on `workers` threads, at most `2 · workers` chunks ahead of
/// the consumer, and hands them to `consume` in index order (with each chunk's first index), so
/// that reading and leaf hashing overlap with the ordered work. Stops at the first error.
fn read_pipelined(
    store: &Store,
    verifiers: &[Verifier],
    total: u64,
    workers: u64,
    consume: &mut dyn FnMut(u64, ChunkRead) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Condvar, Mutex};

    struct Queue {
        ready: BTreeMap<u64, ChunkRead>,
        consumed: u64,
        stop: bool,
    }
    let chunks = total.div_ceil(CHUNK);
    let ahead = 2 * workers.max(1);
    let next = AtomicU64::new(0);
    let queue = Mutex::new(Queue {
        ready: BTreeMap::new(),
        consumed: 0,
        stop: false,
    });
    let changed = Condvar::new();
    // A poisoned lock means a worker panicked while holding it; the queue is still whole.
    let lock = || queue.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= chunks {
                        return;
                    }
                    {
                        let mut q = lock();
                        while c >= q.consumed + ahead && !q.stop {
                            q = changed.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                        if q.stop {
                            return;
                        }
                    }
                    let lo = c * CHUNK;
                    let hi = (lo + CHUNK).min(total);
                    let read = read_chunk(store, verifiers, lo, hi, total);
                    lock().ready.insert(c, read);
                    changed.notify_all();
                }
            });
        }
        let mut result = Ok(());
        for c in 0..chunks {
            let read = {
                let mut q = lock();
                loop {
                    if let Some(r) = q.ready.remove(&c) {
                        q.consumed = c + 1;
                        break r;
                    }
                    q = changed.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            changed.notify_all();
            result = consume(c * CHUNK, read);
            if result.is_err() {
                break;
            }
        }
        lock().stop = true;
        changed.notify_all();
        result
    })
}

/// Verifies the whole stored log; `progress` is called with the number of entries done,
/// every 65,536 entries.
pub fn verify_log(
    store: &Store,
    verifiers: &[Verifier],
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    let mut frontier = Frontier::new();
    let mut roots: Vec<(u64, Hash)> = Vec::new();
    // The recomputed hashes from level 1 up, for the consistency proofs below.
    let mut recomputed = HashLevels::new(1);

    // The root is computed only when a checkpoint is stored at this size: computing it costs up
    // to log2(size) node hashes, too many to spend on every entry.
    let check_checkpoints_at = |checkpoints: &mut std::iter::Peekable<
        std::vec::IntoIter<OpenedCheckpoint>,
    >,
                                size: u64,
                                root: &dyn Fn() -> Hash,
                                roots: &mut Vec<(u64, Hash)>| {
        while let Some(next) =
            checkpoints.next_if(|c| !matches!(c, Ok((cp_size, _)) if *cp_size > size))
        {
            let (cp_size, opened) = next?;
            let cp = opened?;
            if cp.root != root() {
                return Err(AuditError::Corrupt {
                    index: cp_size.saturating_sub(1),
                    reason: format!(
                        "checkpoint {cp_size} root differs from the tree recomputed from the entries"
                    ),
                });
            }
            roots.push((cp_size, cp.root));
        }
        Ok(())
    };

    let mut at_zero = open_checkpoints(store, verifiers, 0, 0)
        .into_iter()
        .peekable();
    check_checkpoints_at(&mut at_zero, 0, &|| frontier.root(), &mut roots)?;
    // Every record up to the latest checkpoint must be there (records past it are the remainder
    // of an unfinished commit, cut off when the log next opens).
    let total = store.latest_checkpoint()?.map_or(0, |(size, _)| size);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get() as u64)
        .clamp(1, 4);
    let mut expected = 0u64;
    let mut wanted: Vec<Hash> = Vec::with_capacity(64);
    read_pipelined(store, verifiers, total, workers, &mut |_lo, chunk| {
        let mut checkpoints = chunk.checkpoints.into_iter().peekable();
        for Read { leaf, at } in chunk.items {
            let index = expected;
            let start = stored_hash_index(0, index);
            frontier.push_into(leaf, &mut wanted);
            let Some(stored) = chunk.hashes.get(at..at + wanted.len() * 32) else {
                return Err(AuditError::Corrupt {
                    index,
                    reason: format!("stored hashes at {start} are missing"),
                });
            };
            for (j, (want, stored)) in wanted.iter().zip(stored.chunks_exact(32)).enumerate() {
                if stored != want {
                    let pos = start + j as u64;
                    let what = if j == 0 {
                        "entry does not match its stored leaf hash".to_owned()
                    } else {
                        format!("stored hash {pos} (level {j}) differs from the recomputed tree")
                    };
                    return Err(AuditError::Corrupt {
                        index,
                        reason: what,
                    });
                }
            }
            recomputed.push(start, &wanted);
            expected += 1;
            check_checkpoints_at(&mut checkpoints, expected, &|| frontier.root(), &mut roots)?;
            if expected.is_multiple_of(65_536) {
                progress(expected);
            }
        }
        match chunk.problem {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    })?;
    progress(expected);
    if let Some(extra) = store.checkpoints_in(expected + 1, u64::MAX).next() {
        let (size, _) = extra?;
        return Err(AuditError::Corrupt {
            index: expected,
            reason: format!("checkpoint for size {size} exists beyond the last entry"),
        });
    }
    // Each checkpoint must be provably a prefix of the next, the way an outside auditor checks;
    // the proofs come from the hashes just recomputed (and checked equal to the stored ones).
    let reader = Recomputed {
        levels: &recomputed,
        store,
    };
    for pair in roots.windows(2) {
        let ((old, old_root), (new, new_root)) = (pair[0], pair[1]);
        let proof = prove_tree(new, old, &reader)?;
        if !check_tree(&proof, new, &new_root, old, &old_root) {
            return Err(AuditError::Corrupt {
                index: old,
                reason: format!("checkpoint {old} is not consistent with checkpoint {new}"),
            });
        }
    }
    Ok(VerifyReport {
        entries: expected,
        checkpoints: roots.len() as u64,
        latest: roots.last().copied(),
    })
}
/// A stored checkpoint, its signature checked and its size matched against the key it is stored
/// under.
fn open_stored(
    cp_size: u64,
    bytes: &[u8],
    verifiers: &[Verifier],
) -> Result<Checkpoint, AuditError> {
    let bad = |reason: String| AuditError::Corrupt {
        index: cp_size.saturating_sub(1),
        reason,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| bad(format!("checkpoint {cp_size} is not UTF-8")))?;
    let cp =
        Checkpoint::open(text, verifiers).map_err(|e| bad(format!("checkpoint {cp_size}: {e}")))?;
    if cp.size != cp_size {
        return Err(bad(format!(
            "checkpoint stored as size {cp_size} says {}",
            cp.size
        )));
    }
    Ok(cp)
}

/// The recomputed upper levels in memory, over the (checked) stored leaf hashes.
struct Recomputed<'a> {
    levels: &'a HashLevels,
    store: &'a Store,
}

impl HashReader for Recomputed<'_> {
    fn read_hash(&self, index: u64) -> Result<Hash, AuditError> {
        match self.levels.get(index) {
            Some(h) => Ok(h),
            None => self.store.read_hash(index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditConfig, AuditLog, Signer};
    use crate::proto::v1::{AuditEntry, AuditEvent};

    fn corrupt_index(store: &Store, verifiers: &[Verifier]) -> u64 {
        match verify_log(store, verifiers, &mut |_| {}) {
            Err(AuditError::Corrupt { index, .. }) => index,
            other => panic!("expected a corrupt index, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damage_is_named_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let origin = "unit.ketenpoort.test/verify";
        let signer = Signer::generate(origin).unwrap();
        let mut config = AuditConfig::new(dir.path().join("audit"), origin);
        config.batch_max = 3;
        let log = AuditLog::open(config, vec![signer.clone()]).unwrap();
        for i in 0..30u64 {
            let e = AuditEntry {
                event: AuditEvent::Exchange as i32,
                exchange_id: format!("v-{i}"),
                ..Default::default()
            };
            log.append(&e, vec![]).await.unwrap();
        }
        log.shutdown().await;
        let dir = dir.path().join("audit");
        let range = |store: &Store, i: u64| store.entry_range(i).unwrap();
        drop(log);
        let verifiers = [signer.verifier()];
        let open = || Store::open_dir(&dir).unwrap();
        let file = |name: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join("log").join(name))
                .unwrap()
        };
        let flip = |name: &str, at: u64| {
            use std::os::unix::fs::FileExt;
            let f = file(name);
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ 1], at).unwrap();
        };
        let (db, store) = open();
        let report = verify_log(&store, &verifiers, &mut |_| {}).unwrap();
        assert_eq!(report.entries, 30);
        // One checkpoint per commit (sequential appends commit alone), and one for size 0.
        assert_eq!(report.checkpoints, 31);
        let (e13, e8) = (range(&store, 13).0 + 2, range(&store, 8).1);
        drop((db, store));

        // A damaged entry in a later round.
        flip("entries", e13);
        let (db, store) = open();
        assert_eq!(corrupt_index(&store, &verifiers), 13);
        drop((db, store));
        flip("entries", e13);

        // A damaged end offset shifts the bytes of its entry (and the next).
        let offsets = file("offsets");
        {
            use std::os::unix::fs::FileExt;
            offsets
                .write_all_at(&(e8 - 1).to_le_bytes(), 8 * 8)
                .unwrap();
        }
        let (db, store) = open();
        assert_eq!(corrupt_index(&store, &verifiers), 8);
        drop((db, store));
        {
            use std::os::unix::fs::FileExt;
            offsets.write_all_at(&e8.to_le_bytes(), 8 * 8).unwrap();
        }

        // A damaged upper-level hash (record 23 completes levels 1-3).
        flip("hashes", (stored_hash_index(0, 23) + 3) * 32);
        let (db, store) = open();
        assert_eq!(corrupt_index(&store, &verifiers), 23);
        drop((db, store));
        flip("hashes", (stored_hash_index(0, 23) + 3) * 32);

        // Missing records: the files end at entry 21.
        offsets.set_len(21 * 8).unwrap();
        let (db, store) = open();
        assert_eq!(corrupt_index(&store, &verifiers), 21);
        drop((db, store));
    }
}
