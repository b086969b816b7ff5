//! Full verification of a stored log, without trusting anything it stored: recompute the tree
//! from every entry, compare every stored hash with the recomputed one, check every stored
//! checkpoint's signature and root, and check each checkpoint's consistency with the next.
//! The first bad record is named by its index.

use std::path::Path;

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::hash::{Frontier, Hash, check_tree, leaf_hash, prove_tree, stored_hash_index};
use super::keys::Verifier;
use super::store::{CHECKPOINT_PREFIX, ENTRY_PREFIX, HASH_PREFIX, Store, key_number};

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
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024)
        .open()?;
    let store = Store::open(&db)?;
    verify_log(&store, verifiers, progress)
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
    let mut hashes = tree.scan_prefix(HASH_PREFIX);
    let mut frontier = Frontier::new();
    let mut roots: Vec<(u64, Hash)> = Vec::new();

    let mut check_checkpoints_at = |size: u64, root: Hash, roots: &mut Vec<(u64, Hash)>| {
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
            if cp.root != root {
                return Err(bad(format!(
                    "checkpoint {cp_size} root differs from the tree recomputed from the entries"
                )));
            }
            roots.push((cp_size, cp.root));
        }
        Ok(())
    };

    check_checkpoints_at(0, frontier.root(), &mut roots)?;
    let mut expected = 0u64;
    for kv in tree.scan_prefix(ENTRY_PREFIX) {
        let (k, entry) = kv?;
        let index = key_number(&k).ok_or(AuditError::Internal("short entry key"))?;
        if index != expected {
            return Err(AuditError::Corrupt {
                index: expected,
                reason: "entry is missing".into(),
            });
        }
        let start = stored_hash_index(0, index);
        let wanted = frontier.push(leaf_hash(&entry));
        let missing = || AuditError::Corrupt {
            index,
            reason: format!("stored hashes at {start} are missing"),
        };
        let (hk, hv) = hashes.next().ok_or_else(missing)??;
        if key_number(&hk) != Some(start) || hv.len() != wanted.len() * 32 {
            return Err(missing());
        }
        for (j, (want, stored)) in wanted.iter().zip(hv.chunks_exact(32)).enumerate() {
            let pos = start + j as u64;
            if stored != want {
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
        expected += 1;
        check_checkpoints_at(expected, frontier.root(), &mut roots)?;
        if expected.is_multiple_of(65_536) {
            progress(expected);
        }
    }
    progress(expected);
    if let Some(extra) = hashes.next() {
        let (hk, _) = extra?;
        return Err(AuditError::Corrupt {
            index: expected,
            reason: format!(
                "stored hash {} exists beyond the last entry",
                key_number(&hk).unwrap_or(0)
            ),
        });
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
    // Each checkpoint must be provably a prefix of the next, the way an outside auditor checks.
    for pair in roots.windows(2) {
        let ((old, old_root), (new, new_root)) = (pair[0], pair[1]);
        let proof = prove_tree(new, old, store)?;
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
