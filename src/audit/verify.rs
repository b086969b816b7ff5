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
use super::store::{
    CHECKPOINT_PREFIX, ENTRY_PREFIX, HASH_PREFIX, HashLevels, Store, hashes_key, key_number,
    numbered_key,
};

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
    let db = super::store::open_db(dir, 64 * 1024 * 1024)?;
    let store = Store::open(&db)?;
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
    stored: sled::IVec,
}

/// What a worker read from `[lo, hi)`: the entries up to the first problem, then the problem.
struct ChunkRead {
    items: Vec<Read>,
    problem: Option<AuditError>,
}

/// Reads entries `[lo, hi)` of a log of `total` and their stored hashes, and leaf-hashes them. This is the
/// bulk of the work (sled scans and SHA-256 over every entry), so workers run it in parallel
/// over disjoint ranges; everything that needs the order of the whole log is done after.
fn read_chunk(store: &Store, lo: u64, hi: u64, total: u64) -> ChunkRead {
    let tree = store.tree();
    let mut items = Vec::with_capacity(usize::try_from(hi - lo).unwrap_or(0));
    let mut entries = tree.range(numbered_key(ENTRY_PREFIX, lo)..numbered_key(ENTRY_PREFIX, hi));
    let mut hashes = tree.range(hashes_key(lo)..hashes_key(hi));
    let mut read = |index: u64| -> Result<Read, AuditError> {
        let missing_entry = || AuditError::Corrupt {
            index,
            reason: "entry is missing".into(),
        };
        let (k, entry) = entries.next().ok_or_else(missing_entry)??;
        if key_number(&k) != Some(index) {
            return Err(missing_entry());
        }
        let start = stored_hash_index(0, index);
        let missing = || AuditError::Corrupt {
            index,
            reason: format!("stored hashes at {start} are missing"),
        };
        let (hk, stored) = hashes.next().ok_or_else(missing)??;
        if key_number(&hk) != Some(start) {
            return Err(missing());
        }
        Ok(Read {
            leaf: leaf_hash(&entry),
            stored,
        })
    };
    for index in lo..hi {
        match read(index) {
            Ok(r) => items.push(r),
            Err(e) => {
                return ChunkRead {
                    items,
                    problem: Some(e),
                };
            }
        }
    }
    // A stored-hash key between the last record's and the next one's start is out of place.
    let problem = match hashes.next() {
        None => None,
        Some(Err(e)) => Some(e.into()),
        Some(Ok((hk, _))) => Some(AuditError::Corrupt {
            index: hi,
            reason: if hi == total {
                format!(
                    "stored hash {} exists beyond the last entry",
                    key_number(&hk).unwrap_or(0)
                )
            } else {
                format!("stored hashes at {} are missing", stored_hash_index(0, hi))
            },
        }),
    };
    ChunkRead { items, problem }
}

/// Reads `[lo, hi)` of a log of `total` with `workers` threads, one chunk each, in index order.
fn read_round(store: &Store, lo: u64, hi: u64, total: u64, workers: u64) -> Vec<ChunkRead> {
    if workers <= 1 || hi - lo <= CHUNK {
        return vec![read_chunk(store, lo, hi, total)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let a = (lo + w * CHUNK).min(hi);
                let b = (a + CHUNK).min(hi);
                s.spawn(move || read_chunk(store, a, b, total))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| ChunkRead {
                    items: Vec::new(),
                    problem: Some(AuditError::Internal("verify worker panicked")),
                })
            })
            .collect()
    })
}

/// Verifies the whole stored log; `progress` is called with the number of entries done,
/// every 65,536 entries.
pub fn verify_log(
    store: &Store,
    verifiers: &[Verifier],
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    let tree = store.tree();
    let mut checkpoints = tree.scan_prefix(CHECKPOINT_PREFIX).peekable();
    let mut frontier = Frontier::new();
    let mut roots: Vec<(u64, Hash)> = Vec::new();
    // The recomputed hashes from level 1 up, for the consistency proofs below.
    let mut recomputed = HashLevels::new(1);

    // The root is computed only when a checkpoint is stored at this size: computing it costs up
    // to log2(size) node hashes, too many to spend on every entry.
    let mut check_checkpoints_at =
        |size: u64, root: &dyn Fn() -> Hash, roots: &mut Vec<(u64, Hash)>| {
            while let Some(next) = checkpoints.peek() {
                let (k, v) = match next {
                    Ok(kv) => kv.clone(),
                    Err(e) => return Err(AuditError::Storage(e.clone())),
                };
                let cp_size = key_number(&k).ok_or(AuditError::Internal("short checkpoint key"))?;
                if cp_size > size {
                    break;
                }
                checkpoints.next();
                let bad = |reason: String| AuditError::Corrupt {
                    index: cp_size.saturating_sub(1),
                    reason,
                };
                let text = std::str::from_utf8(&v)
                    .map_err(|_| bad(format!("checkpoint {cp_size} is not UTF-8")))?;
                let cp = Checkpoint::open(text, verifiers)
                    .map_err(|e| bad(format!("checkpoint {cp_size}: {e}")))?;
                if cp.size != cp_size {
                    return Err(bad(format!(
                        "checkpoint stored as size {cp_size} says {}",
                        cp.size
                    )));
                }
                if cp.root != root() {
                    return Err(bad(format!(
                        "checkpoint {cp_size} root differs from the tree recomputed from the entries"
                    )));
                }
                roots.push((cp_size, cp.root));
            }
            Ok(())
        };

    check_checkpoints_at(0, &|| frontier.root(), &mut roots)?;
    let total = store.last_entry_index()?.map_or(0, |last| last + 1);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get() as u64)
        .clamp(1, 4);
    let mut expected = 0u64;
    while expected < total {
        let round_end = total.min(expected + workers * CHUNK);
        for chunk in read_round(store, expected, round_end, total, workers) {
            for Read { leaf, stored } in chunk.items {
                let index = expected;
                let start = stored_hash_index(0, index);
                let wanted = frontier.push(leaf);
                if stored.len() != wanted.len() * 32 {
                    return Err(AuditError::Corrupt {
                        index,
                        reason: format!("stored hashes at {start} are missing"),
                    });
                }
                for (j, (want, stored)) in wanted.iter().zip(stored.chunks_exact(32)).enumerate() {
                    if stored != want {
                        let pos = start + j as u64;
                        let what = if j == 0 {
                            "entry does not match its stored leaf hash".to_owned()
                        } else {
                            format!(
                                "stored hash {pos} (level {j}) differs from the recomputed tree"
                            )
                        };
                        return Err(AuditError::Corrupt {
                            index,
                            reason: what,
                        });
                    }
                }
                recomputed.push(start, &wanted);
                expected += 1;
                check_checkpoints_at(expected, &|| frontier.root(), &mut roots)?;
                if expected.is_multiple_of(65_536) {
                    progress(expected);
                }
            }
            if let Some(problem) = chunk.problem {
                return Err(problem);
            }
        }
    }
    progress(expected);
    if let Some(extra) = tree.range(hashes_key(expected)..).next() {
        let (hk, _) = extra?;
        if hk.starts_with(HASH_PREFIX) {
            return Err(AuditError::Corrupt {
                index: expected,
                reason: format!(
                    "stored hash {} exists beyond the last entry",
                    key_number(&hk).unwrap_or(0)
                ),
            });
        }
    }
    if let Some(extra) = checkpoints.next() {
        let (k, _) = extra?;
        return Err(AuditError::Corrupt {
            index: expected,
            reason: format!(
                "checkpoint for size {} exists beyond the last entry",
                key_number(&k).unwrap_or(0)
            ),
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
        let store = Store::open(log.db()).unwrap();
        let tree = store.tree();
        let verifiers = [signer.verifier()];
        let report = verify_log(&store, &verifiers, &mut |_| {}).unwrap();
        assert_eq!(report.entries, 30);
        // One checkpoint per commit (sequential appends commit alone), and one for size 0.
        assert_eq!(report.checkpoints, 31);

        // A damaged entry in a later round.
        let key = numbered_key(ENTRY_PREFIX, 13);
        let old = tree.get(&key).unwrap().unwrap();
        tree.insert(&key, b"forged".to_vec()).unwrap();
        assert_eq!(corrupt_index(&store, &verifiers), 13);
        tree.insert(&key, old).unwrap();

        // A stray stored-hash key at the end of a chunk is found at the next entry.
        let stray = numbered_key(HASH_PREFIX, stored_hash_index(0, 7) + 1);
        tree.insert(&stray, vec![0u8; 32]).unwrap();
        assert_eq!(corrupt_index(&store, &verifiers), 8);
        tree.remove(&stray).unwrap();

        // A missing entry.
        let key = numbered_key(ENTRY_PREFIX, 21);
        let old = tree.remove(&key).unwrap().unwrap();
        assert_eq!(corrupt_index(&store, &verifiers), 21);
        tree.insert(&key, old).unwrap();

        // A damaged upper-level hash (record 23 completes levels 1-3).
        let key = hashes_key(23);
        let mut bad = tree.get(&key).unwrap().unwrap().to_vec();
        bad[3 * 32] ^= 1;
        tree.insert(&key, bad).unwrap();
        assert_eq!(corrupt_index(&store, &verifiers), 23);
    }
}
