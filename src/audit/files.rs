//! The append-only files that hold the log's records, beside the sled database that holds its
//! checkpoints and the gateway's state.
//!
//! | file              | content                                                               |
//! |-------------------|-----------------------------------------------------------------------|
//! | `log/entries`     | the entry bytes (the Merkle leaves), back to back                    |
//! | `log/offsets`     | for entry n, the end of its bytes in `entries` (u64 little-endian)   |
//! | `log/hashes`      | the stored hashes in Go tlog's layout: hash k at byte 32·k            |
//! | `log/commits`     | one frame per group commit: its size, signed checkpoint, state changes |
//!
//! A group commit appends its records and its commit frame past the end of each file; a sync of
//! the four files at once then makes it durable, and only then is it answered. One sync covers
//! every commit written before it started, so the writer writes the next commit while the last
//! one syncs (see `writer.rs`). The checkpoint and the state changes are then applied to sled,
//! which is a materialised view of the commit frames (flushed in the background and on
//! shutdown). On open, a commit counts only if its frame is whole (length and CRC-32) and every
//! record it covers is whole; anything after the first commit that does not count was never
//! acknowledged, and is cut off. Frames that sled has not yet applied are replayed into it.
//! Records are never rewritten.
//!
//! Why not sled for the records: sled copies a whole tree node on every insert, which made the
//! entry and hash inserts cost about 100 µs of CPU per append; appending to a file costs a copy.
//! Why frames rather than a sled flush per commit: a sync takes about 4 ms on this disk whatever
//! else is synced at the same moment, so one round of concurrent syncs per commit halves the
//! time a caller waits.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::AuditError;
use super::hash::{Hash, stored_hash_count, stored_hash_index};
use super::log::StateChange;
use super::store::{CHECKPOINT_PREFIX, numbered_key};

/// The folder of the record files, inside the log directory.
pub const FILES_DIR: &str = "log";
const ENTRIES: &str = "entries";
const OFFSETS: &str = "offsets";
const HASHES: &str = "hashes";
const COMMITS: &str = "commits";
/// How many files a commit writes (entries, hashes, offsets, commits).
pub const FILE_COUNT: usize = 4;

/// One group commit as its frame records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The tree size after the commit.
    pub size: u64,
    /// The commit's signed checkpoint (of that size).
    pub checkpoint: String,
    /// The callers' state changes, in order.
    pub changes: Vec<StateChange>,
}

impl Frame {
    /// Adds what the commit does to sled, its materialised view: the state changes and the
    /// checkpoint under its size. The writer and a replay on open both apply frames this way.
    pub fn apply_to(&self, batch: &mut sled::Batch) {
        for c in &self.changes {
            match &c.value {
                Some(v) => batch.insert(c.key.as_slice(), v.as_slice()),
                None => batch.remove(c.key.as_slice()),
            }
        }
        batch.insert(
            numbered_key(CHECKPOINT_PREFIX, self.size),
            self.checkpoint.as_bytes(),
        );
    }

    /// The frame's bytes: `u32 LE length ‖ u32 LE CRC-32 ‖ payload`.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(
            16 + self.checkpoint.len()
                + self
                    .changes
                    .iter()
                    .map(|c| 9 + c.key.len() + c.value.as_ref().map_or(0, Vec::len))
                    .sum::<usize>(),
        );
        p.extend_from_slice(&self.size.to_le_bytes());
        put_bytes(&mut p, self.checkpoint.as_bytes());
        p.extend_from_slice(&(self.changes.len() as u32).to_le_bytes());
        for c in &self.changes {
            put_bytes(&mut p, &c.key);
            match &c.value {
                Some(v) => {
                    p.push(1);
                    put_bytes(&mut p, v);
                }
                None => p.push(0),
            }
        }
        let mut out = Vec::with_capacity(8 + p.len());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
        out.extend_from_slice(&p);
        out
    }

    /// Decodes the payload of one frame (after its length and CRC were checked).
    fn decode(p: &[u8]) -> Option<Frame> {
        let mut r = Reader(p);
        let size = r.u64()?;
        let checkpoint = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let n = r.u32()?;
        let mut changes = Vec::with_capacity(n.min(1 << 16) as usize);
        for _ in 0..n {
            let key = r.bytes()?.to_vec();
            let value = match r.take(1)?[0] {
                0 => None,
                1 => Some(r.bytes()?.to_vec()),
                _ => return None,
            };
            changes.push(StateChange { key, value });
        }
        r.0.is_empty().then_some(Frame {
            size,
            checkpoint,
            changes,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// A cursor over a frame's payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// The whole frames of the commits file, in order, each with the file offset where it ends;
/// reading stops at the first torn or damaged frame, or one whose size does not grow.
#[derive(Debug, Default)]
pub struct Frames {
    /// The frames and their end offsets.
    pub frames: Vec<(Frame, u64)>,
}

/// The three record files, open for positioned reads (and writes, for the writer).
#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
    entries: File,
    offsets: File,
    hashes: File,
    commits: File,
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
            commits: open(COMMITS)?,
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

    /// Cuts every file back to the first `size` records, whose end offsets are `ends`, and the
    /// commits file back to `commits_end`: what lies beyond is what a commit that never
    /// completed left behind.
    pub fn truncate(&self, size: u64, ends: &[u64], commits_end: u64) -> Result<(), AuditError> {
        let data_end = ends.last().copied().unwrap_or(0);
        for (f, name, at) in [
            (&self.commits, COMMITS, commits_end),
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

    /// Writes one commit without syncing: its records, starting at record `first` whose bytes
    /// start at `data_start`, and its encoded frame at `frame_at` in the commits file. `data`
    /// is the records' bytes back to back, `ends` their end offsets, `hashes` their stored
    /// hashes (32 bytes each, in order). The commit is durable once every file has had a
    /// [`LogFiles::sync_file`] that started after this returned.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        first: u64,
        data_start: u64,
        data: &[u8],
        ends: &[u64],
        hashes: &[u8],
        frame_at: u64,
        frame: &[u8],
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
            (&self.commits, COMMITS, frame, frame_at),
        ] {
            f.write_all_at(bytes, at)
                .map_err(|e| file_error(&self.path(name), e))?;
        }
        Ok(())
    }

    /// Syncs the data of file `i` of the [`FILE_COUNT`] record files. A commit is durable once
    /// every file has been synced after its write; the writer syncs the files at once, on threads
    /// of its own, since a sync mostly waits for the device and concurrent syncs share that
    /// wait (3 syncs in a row took 12.8 ms here, 3 at once 3.3 ms).
    pub fn sync_file(&self, i: usize) -> Result<(), AuditError> {
        let (f, name) = match i {
            0 => (&self.entries, ENTRIES),
            1 => (&self.hashes, HASHES),
            2 => (&self.offsets, OFFSETS),
            _ => (&self.commits, COMMITS),
        };
        f.sync_data().map_err(|e| file_error(&self.path(name), e))
    }

    /// Empties the commits file, once sled holds every commit durably.
    pub fn clear_commits(&self) -> Result<(), AuditError> {
        let path = self.path(COMMITS);
        self.commits.set_len(0).map_err(|e| file_error(&path, e))?;
        self.commits.sync_all().map_err(|e| file_error(&path, e))
    }

    /// Reads the whole frames of the commits file (see [`Frames`]).
    pub fn frames(&self) -> Result<Frames, AuditError> {
        let path = self.path(COMMITS);
        let len = self
            .commits
            .metadata()
            .map_err(|e| file_error(&path, e))?
            .len();
        let mut bytes = vec![
            0u8;
            usize::try_from(len)
                .map_err(|_| AuditError::Internal("commits file exceeds memory"))?
        ];
        self.commits
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| file_error(&path, e))?;
        let mut out = Frames::default();
        let mut at = 0usize;
        let mut last_size = None;
        while let Some(head) = bytes.get(at..at + 8) {
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
                break;
            };
            if crc32fast::hash(payload) != crc {
                break;
            }
            let Some(frame) = Frame::decode(payload) else {
                break;
            };
            if last_size.is_some_and(|s| frame.size <= s) {
                break;
            }
            last_size = Some(frame.size);
            at += 8 + len;
            out.frames.push((frame, at as u64));
        }
        Ok(out)
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
        let count = stored_hash_count(n + 1) - stored_hash_count(n);
        vec![n as u8; usize::try_from(32 * count).unwrap()]
    }

    fn frame(size: u64) -> Frame {
        Frame {
            size,
            checkpoint: format!("origin\n{size}\nroot\n\n— sig\n"),
            changes: vec![
                StateChange::put(b"s/a".to_vec(), vec![size as u8; 3]),
                StateChange::delete(b"s/b".to_vec()),
            ],
        }
    }

    #[test]
    fn records_round_trip_and_an_unfinished_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let f1 = frame(2).encode();
        let h01 = [hashes_for(0), hashes_for(1)].concat();
        files.write(0, 0, b"aaabb", &[3, 5], &h01, 0, &f1).unwrap();
        let f2 = frame(3).encode();
        let at = f1.len() as u64;
        files
            .write(2, 5, b"cccc", &[9], &hashes_for(2), at, &f2)
            .unwrap();
        let frames = files.frames().unwrap().frames;
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].0, frame(3));
        let loaded = files.load(3).unwrap();
        assert_eq!(loaded.ends, vec![3, 5, 9]);
        assert!(loaded.problem.is_none());
        assert_eq!(files.read_entries(3, 5).unwrap(), b"bb");
        assert_eq!(files.read_hash(stored_hash_index(0, 2)).unwrap(), [2u8; 32]);

        // Only the first commit counts: record 2 and its frame go.
        let loaded = files.load(2).unwrap();
        files.truncate(2, &loaded.ends, at).unwrap();
        drop(files);
        let files = LogFiles::open(dir.path(), false).unwrap();
        let loaded = files.load(3).unwrap();
        assert_eq!(loaded.ends, vec![3, 5]);
        assert_eq!(loaded.problem.unwrap().0, 2);
        assert_eq!(files.frames().unwrap().frames.len(), 1);
    }

    #[test]
    fn a_torn_or_damaged_frame_ends_the_commits() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let (a, b) = (frame(1).encode(), frame(2).encode());
        let at = a.len() as u64;
        files
            .write(0, 0, b"x", &[1], &hashes_for(0), 0, &a)
            .unwrap();
        // A torn second frame: only part of it reached the disk.
        let torn = &b[..b.len() - 3];
        files
            .write(1, 1, b"y", &[2], &hashes_for(1), at, torn)
            .unwrap();
        assert_eq!(files.frames().unwrap().frames.len(), 1);
        // A whole one with a flipped bit.
        let mut bad = b.clone();
        bad[12] ^= 1;
        files
            .write(1, 1, b"y", &[2], &hashes_for(1), at, &bad)
            .unwrap();
        assert_eq!(files.frames().unwrap().frames.len(), 1);
        files
            .write(1, 1, b"y", &[2], &hashes_for(1), at, &b)
            .unwrap();
        let frames = files.frames().unwrap().frames;
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].1, (a.len() + b.len()) as u64);
        // Emptied once sled holds them.
        files.clear_commits().unwrap();
        assert!(files.frames().unwrap().frames.is_empty());
    }

    #[test]
    fn damaged_offsets_name_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let hashes: Vec<u8> = (0..4).flat_map(hashes_for).collect();
        let f = frame(4).encode();
        files
            .write(0, 0, b"abcdefgh", &[2, 4, 6, 8], &hashes, 0, &f)
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
