//! The append-only files that hold the log's records, beside the sled database that holds its
//! checkpoints and the gateway's state.
//!
//! | file                 | content                                                            |
//! |----------------------|--------------------------------------------------------------------|
//! | `log/entries`        | the entry bytes (the Merkle leaves), back to back                  |
//! | `log/offsets`        | for entry n, the end of its bytes in `entries` (u64 little-endian) |
//! | `log/hashes`         | the stored hashes in Go tlog's layout: hash k at byte 32·k         |
//! | `log/commits.{0,1}`  | the write-ahead log: one frame per group commit                    |
//!
//! A group commit's frame holds everything the commit does: its records (entry bytes, end
//! offsets, stored hashes), its signed checkpoint and the callers' state changes. The writer
//! writes the records to the three record files and the frame to the active commits file, then
//! syncs **only the commits file**: that one sync makes the commit durable, and only then is it
//! answered. One sync covers every commit written before it started, so the writer writes the
//! next commit while the last one syncs (see `writer.rs`). The checkpoint and the state changes
//! are then applied to sled, a materialised view of the frames.
//!
//! The record files are synced in the background by a compaction: the writer switches to the
//! other commits file, and once every frame of the old one is applied, the record files are
//! synced, sled is flushed, and the old file is emptied. Records covered by no frame are
//! therefore always durable in the record files.
//!
//! On open, the whole frames of both commits files (length and CRC-32) form one chain in record
//! order, up to the first torn, damaged or missing one. Their records are written again to the
//! record files (the same bytes, wherever an unsynced write was lost) and synced, the frames
//! sled has not applied are replayed into it, and anything in the record files after the chain
//! was never acknowledged, and is cut off.
//!
//! Why not sled for the records: sled copies a whole tree node on every insert, which made the
//! entry and hash inserts cost about 100 µs of CPU per append; appending to a file costs a copy.
//! Why one synced file per commit rather than four: a sync of one 40 KB append took 0.3 ms on
//! this disk, syncing four files at once 1.0 ms, and the callers of a commit wait for it.

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
/// The two commits files; the writer appends to one while the other is compacted.
const COMMITS: [&str; 2] = ["commits.0", "commits.1"];
/// Bytes of a frame's header in a commits file: its length and its CRC-32, each a u32 LE.
const FRAME_HEADER: usize = 8;

/// One group commit as its frame records it: its records and what it does to sled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The index of its first record.
    pub first: u64,
    /// Where its first record's bytes start in the entries file.
    pub data_start: u64,
    /// Its records' bytes, back to back.
    pub data: Vec<u8>,
    /// Its records' end offsets in the entries file, in order.
    pub ends: Vec<u64>,
    /// Its records' stored hashes, packed (32 bytes each, in stored-hash order).
    pub hashes: Vec<u8>,
    /// The commit's signed checkpoint, of size `first + ends.len()`.
    pub checkpoint: String,
    /// The callers' state changes, in order.
    pub changes: Vec<StateChange>,
}

impl Frame {
    /// The tree size after the commit.
    pub fn size(&self) -> u64 {
        self.first + self.ends.len() as u64
    }

    /// Applies what a commit does to sled, its materialised view: the state changes key by key,
    /// in order, then the checkpoint under its size. The writer's applier (which makes the
    /// commit visible at once by a gate of its own) and a replay on open both apply commits
    /// this way. No sled batch: the frame is the commit's durable record, and the checkpoint
    /// goes last, so a checkpoint sled recovers after a crash means every change before it is
    /// there too (sled recovers a prefix of its writes); the frames after it are replayed.
    ///
    /// Changes to memory-only keys (see [`super::store::MEMORY_PREFIX`]) go to `memory`, or
    /// nowhere when it is `None` (a replay on open: their owner rebuilds them).
    pub fn apply_each(
        tree: &sled::Tree,
        mut memory: Option<&mut super::store::MemoryState>,
        changes: &[StateChange],
        size: u64,
        checkpoint: &str,
    ) -> Result<(), AuditError> {
        for c in changes {
            if c.key.starts_with(super::store::MEMORY_PREFIX) {
                if let Some(memory) = memory.as_deref_mut() {
                    match &c.value {
                        Some(v) => memory.insert(c.key.as_slice().into(), v.as_slice().into()),
                        None => memory.remove(c.key.as_slice()),
                    };
                }
                continue;
            }
            match &c.value {
                Some(v) => tree.insert(c.key.as_slice(), v.as_slice())?,
                None => tree.remove(c.key.as_slice())?,
            };
        }
        tree.insert(numbered_key(CHECKPOINT_PREFIX, size), checkpoint.as_bytes())?;
        Ok(())
    }

    /// The frame's bytes: `u32 LE length ‖ u32 LE CRC-32 ‖ payload`.
    pub fn encode(&self) -> Vec<u8> {
        let payload_len = 40
            + self.data.len()
            + 8 * self.ends.len()
            + self.hashes.len()
            + self.checkpoint.len()
            + self
                .changes
                .iter()
                .map(|c| 9 + c.key.len() + c.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        let mut out = Vec::with_capacity(8 + payload_len);
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.data_start.to_le_bytes());
        out.extend_from_slice(&(self.ends.len() as u32).to_le_bytes());
        for end in &self.ends {
            out.extend_from_slice(&end.to_le_bytes());
        }
        put_bytes(&mut out, &self.data);
        put_bytes(&mut out, &self.hashes);
        put_bytes(&mut out, self.checkpoint.as_bytes());
        out.extend_from_slice(&(self.changes.len() as u32).to_le_bytes());
        for c in &self.changes {
            put_bytes(&mut out, &c.key);
            match &c.value {
                Some(v) => {
                    out.push(1);
                    put_bytes(&mut out, v);
                }
                None => out.push(0),
            }
        }
        let len = (out.len() - 8) as u32;
        let crc = crc32fast::hash(&out[8..]);
        out[..4].copy_from_slice(&len.to_le_bytes());
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the payload of one frame (after its length and CRC were checked), and checks
    /// that its parts agree: ends that ascend and close on its data, as many stored hashes as
    /// its records have.
    fn decode(p: &[u8]) -> Option<Frame> {
        let mut r = Reader(p);
        let first = r.u64()?;
        let data_start = r.u64()?;
        let count = r.u32()? as usize;
        let mut ends = Vec::with_capacity(count.min(p.len() / 8));
        let mut previous = data_start;
        for _ in 0..count {
            let end = r.u64()?;
            if end < previous {
                return None;
            }
            ends.push(end);
            previous = end;
        }
        let data = r.bytes()?.to_vec();
        let hashes = r.bytes()?.to_vec();
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
        let size = first.checked_add(count as u64)?;
        let hash_count = stored_hash_count(size) - stored_hash_count(first);
        let agrees = r.0.is_empty()
            && count > 0
            && previous == data_start.checked_add(data.len() as u64)?
            && hashes.len() as u64 == 32 * hash_count;
        agrees.then_some(Frame {
            first,
            data_start,
            data,
            ends,
            hashes,
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

/// The record files and the two commits files, open for positioned reads (and writes, for the
/// writer).
#[derive(Debug)]
pub struct LogFiles {
    dir: PathBuf,
    entries: File,
    offsets: File,
    hashes: File,
    commits: [File; 2],
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
            commits: [open(COMMITS[0])?, open(COMMITS[1])?],
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

    /// Cuts the record files back to the first `size` records, whose end offsets are `ends`:
    /// what lies beyond is what a commit that never completed left behind.
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

    /// Writes a frame's records to the record files, without syncing: the writer for every
    /// commit, and a recovery for every frame it finds (the same bytes again).
    pub fn write_records(&self, frame: &Frame) -> Result<(), AuditError> {
        let mut offsets = Vec::with_capacity(frame.ends.len() * 8);
        for end in &frame.ends {
            offsets.extend_from_slice(&end.to_le_bytes());
        }
        let hash_at = stored_hash_index(0, frame.first) * 32;
        for (f, name, bytes, at) in [
            (
                &self.entries,
                ENTRIES,
                frame.data.as_slice(),
                frame.data_start,
            ),
            (&self.hashes, HASHES, frame.hashes.as_slice(), hash_at),
            (&self.offsets, OFFSETS, offsets.as_slice(), frame.first * 8),
        ] {
            f.write_all_at(bytes, at)
                .map_err(|e| file_error(&self.path(name), e))?;
        }
        Ok(())
    }

    /// Writes an encoded frame at `at` in commits file `file` (0 or 1), without syncing. The
    /// commit is durable once [`LogFiles::sync_commits`] of that file, started after this
    /// returned, has returned.
    pub fn write_frame(&self, file: usize, at: u64, frame: &[u8]) -> Result<(), AuditError> {
        self.commits[file & 1]
            .write_all_at(frame, at)
            .map_err(|e| file_error(&self.path(COMMITS[file & 1]), e))
    }

    /// Syncs the data of commits file `file`.
    pub fn sync_commits(&self, file: usize) -> Result<(), AuditError> {
        self.commits[file & 1]
            .sync_data()
            .map_err(|e| file_error(&self.path(COMMITS[file & 1]), e))
    }

    /// Syncs the three record files, which then hold every record written so far durably.
    pub fn sync_records(&self) -> Result<(), AuditError> {
        for (f, name) in [
            (&self.entries, ENTRIES),
            (&self.hashes, HASHES),
            (&self.offsets, OFFSETS),
        ] {
            f.sync_data().map_err(|e| file_error(&self.path(name), e))?;
        }
        Ok(())
    }

    /// Empties commits file `file`, once the record files and sled hold its every commit
    /// durably.
    pub fn clear_commits(&self, file: usize) -> Result<(), AuditError> {
        let path = self.path(COMMITS[file & 1]);
        let f = &self.commits[file & 1];
        f.set_len(0).map_err(|e| file_error(&path, e))?;
        f.sync_all().map_err(|e| file_error(&path, e))
    }

    /// The bytes in commits file `file`.
    pub fn commits_len(&self, file: usize) -> Result<u64, AuditError> {
        self.commits[file & 1]
            .metadata()
            .map(|m| m.len())
            .map_err(|e| file_error(&self.path(COMMITS[file & 1]), e))
    }

    /// Fills commits file `file`, which must be empty, with `len` zero bytes and syncs it. A
    /// frame written over them later needs no change to the file's size or blocks, so its sync
    /// writes only the data (0.2 ms here, against 0.45 ms for an append while the record files
    /// are written). Readers stop at the zeros: a zero header is no frame.
    pub fn prepare_commits(&self, file: usize, len: u64) -> Result<(), AuditError> {
        let path = self.path(COMMITS[file & 1]);
        let f = &self.commits[file & 1];
        write_zeros(f, &path, 0, len)?;
        f.sync_all().map_err(|e| file_error(&path, e))
    }

    /// Empties commits file `file` in place, once the record files and sled hold its every
    /// commit durably, and leaves it prepared with at least `len` zero bytes, as
    /// [`LogFiles::prepare_commits`] does. Only its first `dirty` bytes can hold frames (the rest
    /// is zeros already, from an earlier preparation); `u64::MAX` when that is not known.
    ///
    /// The first frame's header is zeroed and synced on its own first: from then on the file
    /// reads as empty, whatever a crash leaves of the rest (a damaged run of old frames read as
    /// the start of the chain would end it before the other file's frames). Then the frames are
    /// zeroed a megabyte at a time. Unlike emptying by truncation, this frees no blocks (and
    /// allocates none unless the file is shorter than `len`): the commit syncs of the other file
    /// meanwhile do not wait for a journal commit, and frames written here later still sync
    /// without a change of size.
    pub fn recycle_commits(&self, file: usize, len: u64, dirty: u64) -> Result<(), AuditError> {
        let path = self.path(COMMITS[file & 1]);
        let f = &self.commits[file & 1];
        let current = self.commits_len(file)?;
        if current < FRAME_HEADER as u64 {
            // Nothing that could be a frame: as for a new file.
            self.clear_commits(file)?;
            return self.prepare_commits(file, len);
        }
        f.write_all_at(&[0u8; FRAME_HEADER], 0)
            .map_err(|e| file_error(&path, e))?;
        f.sync_data().map_err(|e| file_error(&path, e))?;
        // The old frames, as far as they may reach; then the extension to `len`, if any.
        write_zeros(f, &path, FRAME_HEADER as u64, dirty.min(current))?;
        write_zeros(f, &path, current, len)?;
        if current < len {
            f.sync_all().map_err(|e| file_error(&path, e))?;
        }
        Ok(())
    }

    /// The whole frames of one commits file, in order: reading stops at the first torn or
    /// damaged frame, or at the zeros of a prepared file. Frame by frame, so that a large
    /// prepared file is not read whole.
    fn file_frames(&self, file: usize) -> Result<Vec<Frame>, AuditError> {
        let path = self.path(COMMITS[file & 1]);
        let f = &self.commits[file & 1];
        let len = self.commits_len(file)?;
        let mut out = Vec::new();
        let mut at = 0u64;
        let mut head = [0u8; 8];
        while at + 8 <= len {
            // A read past the end is a torn frame (or a file emptied meanwhile): the end.
            match f.read_exact_at(&mut head, at) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                r => r.map_err(|e| file_error(&path, e))?,
            }
            let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as u64;
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if n == 0 || at + 8 + n > len {
                break;
            }
            let mut payload = vec![0u8; n as usize];
            match f.read_exact_at(&mut payload, at + 8) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                r => r.map_err(|e| file_error(&path, e))?,
            }
            if crc32fast::hash(&payload) != crc {
                break;
            }
            let Some(frame) = Frame::decode(&payload) else {
                break;
            };
            at += 8 + n;
            out.push(frame);
        }
        Ok(out)
    }

    /// The whole frames of both commits files as one chain in record order: each frame starts
    /// where the one before ends. The chain ends at the first frame that does not follow on
    /// (what lies after a torn or damaged frame is not part of it).
    pub fn frames(&self) -> Result<Vec<Frame>, AuditError> {
        let mut all = self.file_frames(0)?;
        all.extend(self.file_frames(1)?);
        all.sort_by_key(|f| f.first);
        let mut chain: Vec<Frame> = Vec::with_capacity(all.len());
        for frame in all {
            if chain.last().is_some_and(|last| {
                last.size() != frame.first || last.ends.last() != Some(&frame.data_start)
            }) {
                break;
            }
            chain.push(frame);
        }
        Ok(chain)
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

/// Writes zeros over `[from, to)` of `f` a megabyte at a time, each synced, so that the commit
/// syncs meanwhile never queue behind more than a megabyte of zeros on the device.
fn write_zeros(f: &File, path: &Path, from: u64, to: u64) -> Result<(), AuditError> {
    let zeros = vec![0u8; (1 << 20).min(to.saturating_sub(from)) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at)
            .map_err(|e| file_error(path, e))?;
        f.sync_data().map_err(|e| file_error(path, e))?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of records `first..first + lens.len()` whose bytes start at `data_start`, with
    /// made-up hashes (the files do not interpret them) and one state change.
    fn frame(first: u64, data_start: u64, lens: &[u64]) -> Frame {
        let mut ends = Vec::new();
        let mut end = data_start;
        for l in lens {
            end += l;
            ends.push(end);
        }
        let size = first + lens.len() as u64;
        let hashes =
            vec![first as u8; 32 * (stored_hash_count(size) - stored_hash_count(first)) as usize];
        Frame {
            first,
            data_start,
            data: vec![b'a' + first as u8; (end - data_start) as usize],
            ends,
            hashes,
            checkpoint: format!("origin\n{size}\nroot\n\n— sig\n"),
            changes: vec![
                StateChange::put(b"s/a".to_vec(), vec![size as u8; 3]),
                StateChange::delete(b"s/b".to_vec()),
            ],
        }
    }

    fn commit(files: &LogFiles, file: usize, at: u64, f: &Frame) -> u64 {
        files.write_records(f).unwrap();
        let bytes = f.encode();
        files.write_frame(file, at, &bytes).unwrap();
        at + bytes.len() as u64
    }

    #[test]
    fn frames_round_trip_and_an_unfinished_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let (f1, f2) = (frame(0, 0, &[3, 2]), frame(2, 5, &[4]));
        let at = commit(&files, 0, 0, &f1);
        commit(&files, 0, at, &f2);
        let frames = files.frames().unwrap();
        assert_eq!(frames, vec![f1.clone(), f2.clone()]);
        assert_eq!(frames[1].size(), 3);
        let loaded = files.load(3).unwrap();
        assert_eq!(loaded.ends, vec![3, 5, 9]);
        assert!(loaded.problem.is_none());
        assert_eq!(files.read_entries(3, 5).unwrap(), b"aa");
        assert_eq!(files.read_hash(stored_hash_index(0, 2)).unwrap(), [2u8; 32]);

        // Only the first commit counts: record 2 goes.
        let loaded = files.load(2).unwrap();
        files.truncate(2, &loaded.ends).unwrap();
        drop(files);
        let files = LogFiles::open(dir.path(), false).unwrap();
        let loaded = files.load(3).unwrap();
        assert_eq!(loaded.ends, vec![3, 5]);
        assert_eq!(loaded.problem.unwrap().0, 2);
    }

    #[test]
    fn a_torn_or_damaged_frame_ends_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let (a, b) = (frame(0, 0, &[1]).encode(), frame(1, 1, &[1]).encode());
        let at = a.len() as u64;
        files.write_frame(0, 0, &a).unwrap();
        // A torn second frame: only part of it reached the disk.
        files.write_frame(0, at, &b[..b.len() - 3]).unwrap();
        assert_eq!(files.frames().unwrap().len(), 1);
        // A whole one with a flipped bit.
        let mut bad = b.clone();
        bad[12] ^= 1;
        files.write_frame(0, at, &bad).unwrap();
        assert_eq!(files.frames().unwrap().len(), 1);
        files.write_frame(0, at, &b).unwrap();
        assert_eq!(files.frames().unwrap().len(), 2);
        // Emptied once the record files and sled hold them.
        files.sync_records().unwrap();
        files.clear_commits(0).unwrap();
        assert!(files.frames().unwrap().is_empty());
        assert_eq!(files.commits_len(0).unwrap(), 0);
    }

    #[test]
    fn the_two_commits_files_form_one_chain_in_record_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let (f0, f1, f2, f3) = (
            frame(0, 0, &[2, 2]),
            frame(2, 4, &[1]),
            frame(3, 5, &[3]),
            frame(4, 8, &[1, 1]),
        );
        // The writer switched files after f1; f3 follows f2 in the second file.
        let at = commit(&files, 0, 0, &f0);
        commit(&files, 0, at, &f1);
        let at = commit(&files, 1, 0, &f2);
        commit(&files, 1, at, &f3);
        assert_eq!(
            files.frames().unwrap(),
            vec![f0, f1.clone(), f2.clone(), f3]
        );
        // Once the first file is emptied, the chain starts in the second.
        files.clear_commits(0).unwrap();
        assert_eq!(files.frames().unwrap()[0], f2);
        // A frame that does not follow on ends the chain: here f2 is missing.
        files.clear_commits(1).unwrap();
        commit(&files, 0, 0, &f1);
        commit(&files, 1, 0, &frame(4, 8, &[1]));
        assert_eq!(files.frames().unwrap(), vec![f1]);
    }

    #[test]
    fn frames_written_over_a_prepared_file_are_read_up_to_its_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        files.prepare_commits(1, 3 << 20).unwrap();
        assert_eq!(files.commits_len(1).unwrap(), 3 << 20);
        assert!(files.frames().unwrap().is_empty());
        let (f0, f1) = (frame(0, 0, &[2]), frame(1, 2, &[5, 5]));
        let at = commit(&files, 1, 0, &f0);
        commit(&files, 1, at, &f1);
        assert_eq!(files.frames().unwrap(), vec![f0, f1]);
        assert_eq!(files.commits_len(1).unwrap(), 3 << 20);
    }

    #[test]
    fn a_recycled_file_reads_empty_keeps_its_blocks_and_takes_new_frames() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        let len = 3u64 << 20;
        let (f0, f1, f2) = (frame(0, 0, &[2]), frame(1, 2, &[5, 5]), frame(3, 12, &[1]));
        // An unprepared file that took frames by appending: zeroed, then extended to `len`.
        let at = commit(&files, 0, 0, &f0);
        let end = commit(&files, 0, at, &f1);
        files.recycle_commits(0, len, u64::MAX).unwrap();
        assert!(files.frames().unwrap().is_empty());
        assert_eq!(files.commits_len(0).unwrap(), len);
        let mut old = vec![1u8; end as usize];
        files.commits[0].read_exact_at(&mut old, 0).unwrap();
        assert!(old.iter().all(|b| *b == 0), "the old frames are erased");

        // A prepared file with frames up to `end`: only those bytes are zeroed, the length stays.
        let at = commit(&files, 0, 0, &f0);
        let end = commit(&files, 0, at, &f1);
        files.recycle_commits(0, len, end).unwrap();
        assert!(files.frames().unwrap().is_empty());
        assert_eq!(files.commits_len(0).unwrap(), len);
        files.commits[0].read_exact_at(&mut old, 0).unwrap();
        assert!(old.iter().all(|b| *b == 0));

        // A crash right after the first header was zeroed: the rest of the old frames is
        // still there, and yet the file reads as empty.
        let at = commit(&files, 0, 0, &f0);
        commit(&files, 0, at, &f1);
        files.commits[0].write_all_at(&[0u8; 8], 0).unwrap();
        assert!(files.frames().unwrap().is_empty());

        // New frames written over a recycled file are read up to the zeros after them.
        files.recycle_commits(0, len, u64::MAX).unwrap();
        let at = commit(&files, 0, 0, &f1);
        commit(&files, 0, at, &f2);
        assert_eq!(files.frames().unwrap(), vec![f1, f2]);
    }

    #[test]
    fn a_frame_whose_parts_disagree_is_not_whole() {
        let mut f = frame(3, 10, &[2, 2]);
        f.hashes.pop();
        let bytes = f.encode();
        assert!(Frame::decode(&bytes[8..]).is_none());
        let mut f = frame(3, 10, &[2, 2]);
        f.data.push(0);
        assert!(Frame::decode(&f.encode()[8..]).is_none());
        let f = frame(3, 10, &[2, 2]);
        assert_eq!(Frame::decode(&f.encode()[8..]), Some(f));
    }

    #[test]
    fn damaged_offsets_name_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), true).unwrap();
        commit(&files, 0, 0, &frame(0, 0, &[2, 2, 2, 2]));
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
