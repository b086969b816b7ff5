//! The append-only files that hold the log's records, beside the sled database that holds its
//! checkpoints and the gateway's state.
//!
//! | file              | content                                                               |
//! |-------------------|-----------------------------------------------------------------------|
//! | `log/entries`     | the entry bytes (the Merkle leaves), back to back                    |
//! | `log/offsets`     | for entry n, the end of its bytes in `entries` (u64 little-endian)   |
//! | `log/hashes`      | the stored hashes in Go tlog's layout: hash k at byte 32·k            |
//!
//! A group commit writes its records past the committed end of each file, syncs the three files,
//! and only then commits its signed checkpoint (with the callers' state changes) to sled. The
//! checkpoint is the commit point: on open, whatever lies past the last checkpoint's size is the
//! remainder of a commit that never finished, and is cut off. Records are never rewritten.
//!
//! Why not sled: sled copies a whole tree node on every insert, which made the entry and hash
//! inserts cost about 100 µs of CPU per append; appending to a file costs a copy of the bytes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::AuditError;
use super::hash::{Hash, stored_hash_count, stored_hash_index};

/// The folder of the record files, inside the log directory.
pub const FILES_DIR: &str = "log";
const ENTRIES: &str = "entries";
const OFFSETS: &str = "offsets";
const HASHES: &str = "hashes";

/// The three record files, open for positioned reads (and writes, for the writer).
#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
    entries: File,
    offsets: File,
    hashes: File,
}

/// What [`LogFiles::load`] found of the committed records.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The end offset of each record found whole, in order.
    pub ends: Vec<u64>,
    /// The first record that is missing or damaged, with what is wrong, if any is.
    pub problem: Option<(u64, String)>,
}

impl LogFiles {
    /// Opens the record files in `<log_dir>/log`. With `create`, missing files are created
    /// (the writer's case); without, a missing file is an error naming it.
    pub fn open(log_dir: &Path, create: bool) -> Result<LogFiles, AuditError> {
        let dir = log_dir.join(FILES_DIR);
        if create {
            std::fs::create_dir_all(&dir).map_err(|e| file_error(&dir, e))?;
        }
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .read(true)
                .write(create)
                .create(create)
                .truncate(false)
                .open(&path)
                .map_err(|e| file_error(&path, e))
        };
        Ok(LogFiles {
            entries: open(ENTRIES)?,
            offsets: open(OFFSETS)?,
            hashes: open(HASHES)?,
            dir,
        })
    }

    /// Whether the record files exist in `log_dir`.
    pub fn exist(log_dir: &Path) -> bool {
        log_dir.join(FILES_DIR).join(OFFSETS).exists()
    }

    /// The path of one of the files, for messages.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads the end offsets of the first `size` records (the committed ones) and checks that
    /// every file holds them whole. Reading stops at the first record that is not whole; that
    /// record is named in [`Loaded::problem`].
    pub fn load(&self, size: u64) -> Result<Loaded, AuditError> {
        let len = |f: &File, name: &str| {
            f.metadata()
                .map(|m| m.len())
                .map_err(|e| file_error(&self.path(name), e))
        };
        let offsets_len = len(&self.offsets, OFFSETS)?;
        let entries_len = len(&self.entries, ENTRIES)?;
        let hashes_len = len(&self.hashes, HASHES)?;
        let whole = size.min(offsets_len / 8);
        let mut loaded = Loaded {
            ends: Vec::with_capacity(usize::try_from(whole).unwrap_or(0)),
            problem: None,
        };
        // Read the offsets in slices of 64 Ki records, not all at once.
        let mut buf = vec![0u8; 8 * 65_536];
        let mut n = 0u64;
        let mut previous = 0u64;
        'read: while n < whole {
            let count = (whole - n).min(65_536);
            let bytes = &mut buf[..usize::try_from(count * 8).unwrap_or(0)];
            self.offsets
                .read_exact_at(bytes, n * 8)
                .map_err(|e| file_error(&self.path(OFFSETS), e))?;
            for chunk in bytes.chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                let end = u64::from_le_bytes(b);
                if end < previous {
                    loaded.problem = Some((n, "its end offset lies before its start".into()));
                    break 'read;
                }
                if end > entries_len {
                    loaded.problem =
                        Some((n, "its bytes are missing from the entries file".into()));
                    break 'read;
                }
                if stored_hash_count(n + 1) * 32 > hashes_len {
                    loaded.problem = Some((n, "its stored hashes are missing".into()));
                    break 'read;
                }
                loaded.ends.push(end);
                previous = end;
                n += 1;
            }
        }
        if loaded.problem.is_none() && whole < size {
            loaded.problem = Some((whole, "its end offset is missing".into()));
        }
        Ok(loaded)
    }

    /// Cuts every file back to the first `size` records, whose end offsets are `ends`: what
    /// lies beyond is what a commit that never reached its checkpoint left behind.
    pub fn truncate(&self, size: u64, ends: &[u64]) -> Result<(), AuditError> {
        let data_end = ends.last().copied().unwrap_or(0);
        for (f, name, at) in [
            (&self.offsets, OFFSETS, size * 8),
            (&self.entries, ENTRIES, data_end),
            (&self.hashes, HASHES, stored_hash_count(size) * 32),
        ] {
            let current = f
                .metadata()
                .map_err(|e| file_error(&self.path(name), e))?
                .len();
            if current > at {
                tracing::warn!(
                    file = name,
                    bytes = current - at,
                    "audit log: cutting off the remainder of an unfinished commit"
                );
                f.set_len(at).map_err(|e| file_error(&self.path(name), e))?;
                f.sync_all().map_err(|e| file_error(&self.path(name), e))?;
            }
        }
        Ok(())
    }

    /// Writes one commit's records, starting at record `first` whose bytes start at
    /// `data_start`, and syncs the files. `data` is the records' bytes back to back, `ends`
    /// their end offsets, `hashes` their stored hashes (32 bytes each, in order).
    pub fn append(
        &self,
        first: u64,
        data_start: u64,
        data: &[u8],
        ends: &[u64],
        hashes: &[u8],
    ) -> Result<(), AuditError> {
        let mut offsets = Vec::with_capacity(ends.len() * 8);
        for end in ends {
            offsets.extend_from_slice(&end.to_le_bytes());
        }
        let hash_at = stored_hash_index(0, first) * 32;
        for (f, name, bytes, at) in [
            (&self.entries, ENTRIES, data, data_start),
            (&self.hashes, HASHES, hashes, hash_at),
            (&self.offsets, OFFSETS, offsets.as_slice(), first * 8),
        ] {
            f.write_all_at(bytes, at)
                .map_err(|e| file_error(&self.path(name), e))?;
        }
        // Data before offsets: a record is reachable only once all three are durable, and
        // only the sled checkpoint written after this makes it part of the log.
        for (f, name) in [
            (&self.entries, ENTRIES),
            (&self.hashes, HASHES),
            (&self.offsets, OFFSETS),
        ] {
            f.sync_data().map_err(|e| file_error(&self.path(name), e))?;
        }
        Ok(())
    }

    /// Reads the bytes in `[start, end)` of the entries file.
    pub fn read_entries(&self, start: u64, end: u64) -> Result<Vec<u8>, AuditError> {
        let len = usize::try_from(end.saturating_sub(start))
            .map_err(|_| AuditError::Internal("entry range exceeds memory"))?;
        let mut buf = vec![0u8; len];
        self.entries
            .read_exact_at(&mut buf, start)
            .map_err(|e| file_error(&self.path(ENTRIES), e))?;
        Ok(buf)
    }

    /// Reads `count` stored hashes from stored index `from` on, packed (32 bytes each).
    pub fn read_hashes(&self, from: u64, count: u64) -> Result<Vec<u8>, AuditError> {
        let len = usize::try_from(count * 32)
            .map_err(|_| AuditError::Internal("hash range exceeds memory"))?;
        let mut buf = vec![0u8; len];
        self.hashes
            .read_exact_at(&mut buf, from * 32)
            .map_err(|e| file_error(&self.path(HASHES), e))?;
        Ok(buf)
    }

    /// Reads one stored hash.
    pub fn read_hash(&self, index: u64) -> Result<Hash, AuditError> {
        let mut h = [0u8; 32];
        self.hashes
            .read_exact_at(&mut h, index * 32)
            .map_err(|e| file_error(&self.path(HASHES), e))?;
        Ok(h)
    }
}

fn file_error(path: &Path, source: std::io::Error) -> AuditError {
    AuditError::File {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes_for(n: u64) -> Vec<u8> {
        // Any bytes will do here: the files do not interpret hashes.
        vec![
            n as u8;
            usize::try_from(32 * (stored_hash_count(n + 1) - stored_hash_count(n))).unwrap()
        ]
    }

    #[test]
    fn records_round_trip_and_an_unfinished_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        files
            .append(
                0,
                0,
                b"aaabb",
                &[3, 5],
                &[hashes_for(0), hashes_for(1)].concat(),
            )
            .unwrap();
        files.append(2, 5, b"cccc", &[9], &hashes_for(2)).unwrap();
        let loaded = files.load(3).unwrap();
        assert_eq!(loaded.ends, vec![3, 5, 9]);
        assert!(loaded.problem.is_none());
        assert_eq!(files.read_entries(3, 5).unwrap(), b"bb");
        assert_eq!(files.read_hash(stored_hash_index(0, 2)).unwrap(), [2u8; 32]);

        // A checkpoint at size 2: record 2 is an unfinished commit's, and goes.
        let loaded = files.load(2).unwrap();
        files.truncate(2, &loaded.ends).unwrap();
        drop(files);
        let files = LogFiles::open(dir.path(), false).unwrap();
        let loaded = files.load(3).unwrap();
        assert_eq!(loaded.ends, vec![3, 5]);
        assert_eq!(loaded.problem.unwrap().0, 2);
    }

    #[test]
    fn damaged_offsets_name_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let hashes: Vec<u8> = (0..4).flat_map(hashes_for).collect();
        files
            .append(0, 0, b"abcdefgh", &[2, 4, 6, 8], &hashes)
            .unwrap();
        // Record 2 ends before it starts.
        files.offsets.write_all_at(&1u64.to_le_bytes(), 16).unwrap();
        assert_eq!(files.load(4).unwrap().problem.unwrap().0, 2);
        // Record 3 ends past the entries file.
        files.offsets.write_all_at(&6u64.to_le_bytes(), 16).unwrap();
        files
            .offsets
            .write_all_at(&99u64.to_le_bytes(), 24)
            .unwrap();
        let loaded = files.load(4).unwrap();
        assert_eq!(loaded.ends, vec![2, 4, 6]);
        assert_eq!(loaded.problem.unwrap().0, 3);
    }

    #[test]
    fn a_reader_does_not_create_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!LogFiles::exist(dir.path()));
        let err = LogFiles::open(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("entries"), "{err}");
    }
}
