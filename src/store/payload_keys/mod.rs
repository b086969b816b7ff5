//! The payload keys: one AES-256-GCM key per ticket or signal, in a file of its own, so that a
//! payload can be destroyed for good by destroying its key (crypto-shredding).
//!
//! Why a file apart from the state: deleting a value from sled does not erase it (sled keeps old
//! versions of a value in its segments until it happens to rewrite them), and the log's commits
//! files carry each state change until they are recycled. A payload sealed under a key that only
//! this file holds is unreadable in all of those copies once the key is gone. For the same reason
//! no key ever goes through the audit log or sled.
//!
//! The file is a row of fixed-size slots of [`SLOT_LEN`] bytes (see [`slot`] for the layout).
//! Slot 0 is the header. Every other slot is free (all zeros), holds a spare key, or holds one
//! key bound to its owner.
//!
//! A key must be durable before the commit that stores its first ciphertext. Syncing the file for
//! every new key would put a sync in front of every such commit, so spare keys are made ahead, in
//! the background, a few hundred at a time with one sync ([`SPARES`]). Handing one out rewrites
//! its slot in place with the owner's name and the same key; that write need not be durable
//! before the commit, since the key already is: a crash that loses it leaves a spare that a
//! record names, and [`PayloadKeys::reclaim`] binds it to that record again on start. (A slot is
//! written whole or not at all: it lies inside one disk sector, and either version of it holds the
//! key.) Only when no spare is ready is a fresh key written, and the commit waits for it to be
//! synced, in the audit log's group commit.
//!
//! A record names its slot; the slot names its record, so a key is never used for a record it
//! was not made for (after the file was lost and slots were handed out again, say), and on start
//! the slots no record names are found and zeroed ([`PayloadKeys::reclaim`]): those a crash left
//! between a key's write and the commit of its record, or between a purge and its key's
//! destruction.
//!
//! Destroying a key overwrites its slot in place with zeros and syncs the file. That erases the
//! key on a file system that writes in place to a disk that does too. It is **not guaranteed** on
//! a copy-on-write file system (btrfs, ZFS, a snapshotting volume), nor on an SSD or other flash
//! device, whose translation layer writes the new zeros elsewhere and erases the old block only
//! when it reuses it; nor does it reach backups of the file. Put the data directory on a file
//! system that overwrites in place, or on an encrypted volume whose key is managed apart, and
//! keep this file out of backups that outlive the retention of the payloads.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

mod slot;

use slot::{BOUND, KEY_LEN, MAX_ID, SPARE, SlotContent, decode_slot, encode_slot, header};
pub use slot::{KeySlot, MAGIC, PayloadKind, PayloadOwner, SLOT_LEN};

/// Slots added when every slot is taken.
const GROW_SLOTS: u32 = 1024;
/// Spare keys kept ready; more are made when fewer than half are left.
pub const SPARES: usize = 256;
/// The first byte of a sealed payload: its format.
const SEALED_V1: u8 = 1;

/// Why a payload key could not be made, used or destroyed. Messages name the file, slots and
/// owners, never a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadKeyError {
    /// The key file could not be read, written or synced.
    #[error("payload key file {path}: {source}")]
    File {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The file is not a payload key file this version reads.
    #[error("{path} is not a payload key file: {reason}")]
    NotAKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The slot holds no key for this owner: the key was destroyed, or the file was lost.
    #[error("payload key slot {slot} holds no key for {owner}")]
    Missing {
        /// The slot.
        slot: u32,
        /// The record whose key was looked for.
        owner: PayloadOwner,
    },
    /// The slot does not check (its CRC): the file was damaged or altered.
    #[error("payload key slot {slot} is damaged")]
    Damaged {
        /// The slot.
        slot: u32,
    },
    /// The sealed payload does not open with its owner's key: it was altered, or it belongs to
    /// another record.
    #[error("the sealed payload of {owner} does not open with its key")]
    Unopenable {
        /// The record.
        owner: PayloadOwner,
    },
    /// The owner's id does not fit a slot.
    #[error("a record id of {0} bytes does not fit a payload key slot")]
    IdTooLong(usize),
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
}

impl PayloadKeyError {
    /// Whether the payload concerned is unreadable (as opposed to the file being unusable).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            PayloadKeyError::Missing { .. }
                | PayloadKeyError::Damaged { .. }
                | PayloadKeyError::Unopenable { .. }
        )
    }
}

/// What [`PayloadKeys::reclaim`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Slots zeroed because no record names them.
    pub orphans: usize,
    /// Records whose slot holds no intact key for them: their payloads are unreadable.
    pub missing: usize,
}

/// The free slots, the spare keys and the file's length in slots (the header included).
struct Slots {
    len: u32,
    /// Free slot numbers; the next one handed out is the last.
    free: Vec<u32>,
    /// Slots holding durable spare keys; the next one handed out is the last.
    spares: Vec<u32>,
    /// Whether spare keys are being made.
    refilling: bool,
}

/// The payload key file, opened. Shared by every task; each call is a few positioned reads or
/// writes of one slot. Keys are read from the file for each use and not kept in memory.
pub struct PayloadKeys {
    path: PathBuf,
    file: File,
    slots: Mutex<Slots>,
    random: SystemRandom,
    /// Writes made and writes known durable, so that a sync with nothing to do does nothing.
    written: AtomicU64,
    synced: AtomicU64,
}

impl fmt::Debug for PayloadKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadKeys")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PayloadKeys {
    /// Opens the key file at `path`, creating it (mode 0600) when it does not exist. A file that
    /// other users can read, or whose header is not ours, is refused. A damaged slot is kept as
    /// it is (the payload it belonged to is unreadable) and not handed out again.
    pub fn open(path: &Path) -> Result<PayloadKeys, PayloadKeyError> {
        let file_err = |source| PayloadKeyError::File {
            path: path.to_owned(),
            source,
        };
        let not_ours = |reason| PayloadKeyError::NotAKeyFile {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(file_err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(file_err)?;
        let meta = file.metadata().map_err(file_err)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(file_err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "mode {:o}; a key file must be readable by its owner only (chmod 600)",
                    meta.permissions().mode() & 0o777
                ),
            )));
        }
        if meta.len() == 0 {
            // New (or created by a start that crashed before its header was written).
            file.write_all_at(&header(), 0).map_err(file_err)?;
            file.sync_all().map_err(file_err)?;
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(file_err)?;
            }
        } else {
            let mut head = [0u8; SLOT_LEN];
            file.read_exact_at(&mut head, 0)
                .map_err(|_| not_ours("it is shorter than its header"))?;
            if head != header() {
                return Err(not_ours("its header is not a version 1 payload key header"));
            }
        }
        // A partial slot at the end (only a truncation makes one) counts as lost.
        let whole = file.metadata().map_err(file_err)?.len() / SLOT_LEN as u64;
        let len = u32::try_from(whole).map_err(|_| not_ours("it holds too many slots"))?;
        let keys = PayloadKeys {
            path: path.to_owned(),
            file,
            slots: Mutex::new(Slots {
                len,
                free: Vec::new(),
                spares: Vec::new(),
                refilling: false,
            }),
            random: SystemRandom::new(),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        };
        let (mut free, mut spares) = (Vec::new(), Vec::new());
        keys.scan(len, |slot, content| match content {
            SlotContent::Free => free.push(slot.0),
            // On disk when it was read: durable.
            SlotContent::Spare(_) => spares.push(slot.0),
            SlotContent::Key(..) | SlotContent::Damaged => {}
        })?;
        free.reverse();
        let mut slots = keys.lock();
        slots.free = free;
        slots.spares = spares;
        drop(slots);
        Ok(keys)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives `owner` a key of its own, in a slot the owner's record then names: a spare key,
    /// which is durable already, or, when none is ready, a fresh one, written but not synced. The
    /// commit that stores the first ciphertext under it must therefore wait for
    /// [`PayloadKeys::sync`] (the audit log does so in its group commit, and the sync does
    /// nothing when every key handed out was a spare). Starts making spares when few are left.
    pub fn allocate(self: &Arc<Self>, owner: &PayloadOwner) -> Result<KeySlot, PayloadKeyError> {
        if owner.id.len() > MAX_ID {
            return Err(PayloadKeyError::IdTooLong(owner.id.len()));
        }
        let mut slots = self.lock();
        let mut found = None;
        while let Some(n) = slots.spares.pop() {
            // A spare altered since it was made is left alone, like any damaged slot.
            if let SlotContent::Spare(mut key) = self.read_slot(KeySlot(n))? {
                let bound = self.write_slot(KeySlot(n), &encode_slot(BOUND, Some(owner), &key));
                key.fill(0);
                if let Err(e) = bound {
                    slots.spares.push(n);
                    return Err(e);
                }
                found = Some(KeySlot(n));
                break;
            }
        }
        let slot = match found {
            Some(slot) => slot,
            None => {
                let slot = self.fresh(&mut slots, owner)?;
                self.written.fetch_add(1, Ordering::AcqRel);
                slot
            }
        };
        let refill = !slots.refilling && slots.spares.len() < SPARES / 2;
        slots.refilling |= refill;
        drop(slots);
        if refill {
            let keys = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || keys.refill())),
                Err(_) => keys.refill(),
            }
        }
        Ok(slot)
    }

    /// Writes a fresh key for `owner` to a free slot (not synced).
    fn fresh(&self, slots: &mut Slots, owner: &PayloadOwner) -> Result<KeySlot, PayloadKeyError> {
        let mut key = self.new_key()?;
        let bytes = encode_slot(BOUND, Some(owner), &key);
        key.fill(0);
        let number = match slots.free.pop() {
            Some(n) => n,
            None => self.grow(slots)?,
        };
        let slot = KeySlot(number);
        if let Err(e) = self.write_slot(slot, &bytes) {
            slots.free.push(number);
            return Err(e);
        }
        Ok(slot)
    }

    /// Makes spare keys up to [`SPARES`]: writes them to free slots, syncs the file, and only
    /// then offers them. Blocking file I/O, off the callers' path. A failure is logged: until
    /// spares can be made again, new keys are fresh ones, synced with their commits.
    fn refill(&self) {
        let mut taken = Vec::new();
        let made = (|| -> Result<(), PayloadKeyError> {
            {
                let mut slots = self.lock();
                let want = SPARES.saturating_sub(slots.spares.len());
                while taken.len() < want {
                    let n = match slots.free.pop() {
                        Some(n) => n,
                        None => self.grow(&mut slots)?,
                    };
                    taken.push(n);
                }
            }
            for &n in &taken {
                let mut key = self.new_key()?;
                let written = self.write_slot(KeySlot(n), &encode_slot(SPARE, None, &key));
                key.fill(0);
                written?;
            }
            let target = self.written.load(Ordering::Acquire);
            self.file.sync_data().map_err(|e| self.file_err(e))?;
            self.synced.fetch_max(target, Ordering::AcqRel);
            Ok(())
        })();
        let mut slots = self.lock();
        slots.refilling = false;
        match made {
            Ok(()) => slots.spares.extend(taken),
            Err(error) => {
                // A slot half made is overwritten whole when it is handed out.
                slots.free.extend(taken);
                drop(slots);
                tracing::warn!(%error, "payload keys: cannot make spare keys; new keys are synced with their commits");
            }
        }
    }

    /// A new random key.
    fn new_key(&self) -> Result<[u8; KEY_LEN], PayloadKeyError> {
        let mut key = [0u8; KEY_LEN];
        self.random
            .fill(&mut key)
            .map_err(|_| PayloadKeyError::Random)?;
        Ok(key)
    }

    fn write_slot(&self, slot: KeySlot, bytes: &[u8; SLOT_LEN]) -> Result<(), PayloadKeyError> {
        self.file
            .write_all_at(bytes, slot.offset())
            .map_err(|e| self.file_err(e))
    }

    /// Whether a key was written that is not yet known durable.
    pub fn is_pending(&self) -> bool {
        self.synced.load(Ordering::Acquire) < self.written.load(Ordering::Acquire)
    }

    /// Makes every key written so far durable; does nothing when nothing was written since the
    /// last sync.
    pub fn sync(&self) -> Result<(), PayloadKeyError> {
        let target = self.written.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| self.file_err(e))?;
        self.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Seals `plaintext` for `owner` under the key in `slot`: a format byte, a random nonce,
    /// and the AES-256-GCM ciphertext with its tag, over associated data naming the owner.
    pub fn seal(
        &self,
        slot: KeySlot,
        owner: &PayloadOwner,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, PayloadKeyError> {
        let key = self.key(slot, owner)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| PayloadKeyError::Random)?;
        let mut sealed =
            Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        sealed.push(SEALED_V1);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(owner.aad()),
            &mut body,
        )
        .map_err(|_| PayloadKeyError::Unopenable {
            owner: owner.clone(),
        })?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// Opens what [`PayloadKeys::seal`] made for `owner` under the key in `slot`.
    pub fn open_sealed(
        &self,
        slot: KeySlot,
        owner: &PayloadOwner,
        sealed: &[u8],
    ) -> Result<Vec<u8>, PayloadKeyError> {
        let key = self.key(slot, owner)?;
        let unopenable = || PayloadKeyError::Unopenable {
            owner: owner.clone(),
        };
        let (format, rest) = sealed.split_first().ok_or_else(unopenable)?;
        if *format != SEALED_V1 || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(unopenable());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unopenable())?;
        let mut body = body.to_vec();
        let len = key
            .open_in_place(nonce, Aad::from(owner.aad()), &mut body)
            .map_err(|_| unopenable())?
            .len();
        body.truncate(len);
        Ok(body)
    }

    /// Destroys `owner`'s key in `slot`: overwrites the slot with zeros, syncs the file and
    /// frees the slot. Call it only once the state change that drops the last ciphertext under
    /// the key is durable. A slot that holds another owner's key is left alone (the file was
    /// lost and the slot handed out again); a damaged one is zeroed. Returns whether it zeroed.
    pub fn destroy(&self, slot: KeySlot, owner: &PayloadOwner) -> Result<bool, PayloadKeyError> {
        let slots = self.lock();
        if slot.0 == 0 || slot.0 >= slots.len {
            return Ok(false);
        }
        match self.read_slot(slot)? {
            SlotContent::Key(held, _) if held == *owner => {}
            SlotContent::Damaged => {}
            SlotContent::Free | SlotContent::Key(..) | SlotContent::Spare(_) => return Ok(false),
        }
        self.zero(slot)?;
        drop(slots);
        self.sync()?;
        self.lock().free.push(slot.0);
        Ok(true)
    }

    /// Zeroes every slot whose key no record needs: `live` maps each slot a record names to that
    /// record. A spare that a record names was handed out before a crash lost its binding: it is
    /// bound again. Run on start, before any key is made. Syncs when it changed any slot.
    pub fn reclaim(
        &self,
        live: &HashMap<KeySlot, PayloadOwner>,
    ) -> Result<Reclaimed, PayloadKeyError> {
        let mut slots = self.lock();
        let mut orphans = Vec::new();
        let mut rebind = Vec::new();
        let mut intact = 0;
        self.scan(slots.len, |slot, content| {
            match (content, live.get(&slot)) {
                (SlotContent::Free, _) | (SlotContent::Spare(_), None) => {}
                (SlotContent::Key(held, _), Some(owner)) if held == *owner => intact += 1,
                (SlotContent::Spare(key), Some(owner)) => rebind.push((slot, owner, key)),
                // Unreadable, but its record still names it: zeroed when the record is purged.
                (SlotContent::Damaged, Some(_)) => {}
                _ => orphans.push(slot),
            }
        })?;
        for (slot, owner, mut key) in rebind {
            let bound = self.write_slot(slot, &encode_slot(BOUND, Some(owner), &key));
            key.fill(0);
            bound?;
            slots.spares.retain(|n| *n != slot.0);
            self.written.fetch_add(1, Ordering::AcqRel);
            intact += 1;
        }
        for slot in &orphans {
            self.zero(*slot)?;
            slots.free.push(slot.0);
        }
        drop(slots);
        let found = Reclaimed {
            orphans: orphans.len(),
            missing: live.len() - intact,
        };
        self.sync()?;
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A poisoned lock only means a caller panicked between two whole slot writes.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_err(&self, source: io::Error) -> PayloadKeyError {
        PayloadKeyError::File {
            path: self.path.clone(),
            source,
        }
    }

    /// Adds [`GROW_SLOTS`] free slots and returns the first, which the caller takes. The new
    /// slots are written as zeros rather than left as a hole, so that the file system allocates
    /// their blocks once (in the next sync): a key written later overwrites allocated blocks, and
    /// its sync changes no metadata, which on ext4 keeps it out of the journal.
    fn grow(&self, slots: &mut Slots) -> Result<u32, PayloadKeyError> {
        let len = slots
            .len
            .checked_add(GROW_SLOTS)
            .ok_or_else(|| self.file_err(io::Error::other("the key file is full")))?;
        let zeros = vec![0u8; GROW_SLOTS as usize * SLOT_LEN];
        self.file
            .write_all_at(&zeros, KeySlot(slots.len).offset())
            .map_err(|e| self.file_err(e))?;
        let first = slots.len.max(1);
        slots.free.extend((first + 1..len).rev());
        slots.len = len;
        Ok(first)
    }

    fn zero(&self, slot: KeySlot) -> Result<(), PayloadKeyError> {
        self.file
            .write_all_at(&[0u8; SLOT_LEN], slot.offset())
            .map_err(|e| self.file_err(e))?;
        self.written.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Calls `each` with every slot after the header, of the first `len`, in order; reads the
    /// file in large pieces.
    fn scan(
        &self,
        len: u32,
        mut each: impl FnMut(KeySlot, SlotContent),
    ) -> Result<(), PayloadKeyError> {
        const PER_READ: u32 = 512;
        let mut buf = vec![0u8; PER_READ as usize * SLOT_LEN];
        let mut first = 1;
        while first < len {
            let count = PER_READ.min(len - first);
            let piece = &mut buf[..count as usize * SLOT_LEN];
            self.file
                .read_exact_at(piece, KeySlot(first).offset())
                .map_err(|e| self.file_err(e))?;
            for (i, bytes) in piece.chunks_exact(SLOT_LEN).enumerate() {
                let mut slot = [0u8; SLOT_LEN];
                slot.copy_from_slice(bytes);
                each(KeySlot(first + i as u32), decode_slot(&slot));
                slot.fill(0);
            }
            first += count;
        }
        buf.fill(0);
        Ok(())
    }

    fn read_slot(&self, slot: KeySlot) -> Result<SlotContent, PayloadKeyError> {
        let mut bytes = [0u8; SLOT_LEN];
        match self.file.read_exact_at(&mut bytes, slot.offset()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(SlotContent::Free),
            Err(e) => return Err(self.file_err(e)),
        }
        let content = decode_slot(&bytes);
        bytes.fill(0);
        Ok(content)
    }

    /// The key in `slot`, if it is `owner`'s.
    fn key(&self, slot: KeySlot, owner: &PayloadOwner) -> Result<LessSafeKey, PayloadKeyError> {
        match self.read_slot(slot)? {
            SlotContent::Key(held, mut key) if held == *owner => {
                let unbound = UnboundKey::new(&AES_256_GCM, &key);
                key.fill(0);
                unbound
                    .map(LessSafeKey::new)
                    .map_err(|_| PayloadKeyError::Damaged { slot: slot.0 })
            }
            SlotContent::Damaged => Err(PayloadKeyError::Damaged { slot: slot.0 }),
            SlotContent::Free | SlotContent::Key(..) | SlotContent::Spare(_) => {
                Err(PayloadKeyError::Missing {
                    slot: slot.0,
                    owner: owner.clone(),
                })
            }
        }
    }
}

impl crate::audit::SyncFirst for PayloadKeys {
    fn is_pending(&self) -> bool {
        PayloadKeys::is_pending(self)
    }

    fn sync_first(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.sync()?)
    }
}

#[cfg(test)]
mod tests {
    use super::slot::{CRC_AT, KEY_AT};
    use super::*;

    fn ticket(id: &str) -> PayloadOwner {
        PayloadOwner::new(PayloadKind::Ticket, id)
    }

    fn raw(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    fn slot_bytes(path: &Path, slot: KeySlot) -> Vec<u8> {
        let at = slot.offset() as usize;
        raw(path)[at..at + SLOT_LEN].to_vec()
    }

    #[test]
    fn a_new_file_is_owner_only_and_a_key_seals_and_opens_for_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let owner = ticket("t-1");
        let slot = keys.allocate(&owner).unwrap();
        assert_ne!(slot.number(), 0, "slot 0 is the header");
        keys.sync().unwrap();
        let sealed = keys.seal(slot, &owner, b"acute danger").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"acute danger"));
        assert_eq!(
            keys.open_sealed(slot, &owner, &sealed).unwrap(),
            b"acute danger"
        );

        // Another record, or the other kind with the same id, cannot use the key.
        let signal = PayloadOwner::new(PayloadKind::Signal, "t-1");
        assert!(matches!(
            keys.open_sealed(slot, &signal, &sealed),
            Err(PayloadKeyError::Missing { .. })
        ));
        // A ciphertext moved to another record with its own key does not open there.
        let other = ticket("t-2");
        let other_slot = keys.allocate(&other).unwrap();
        assert!(matches!(
            keys.open_sealed(other_slot, &other, &sealed),
            Err(PayloadKeyError::Unopenable { .. })
        ));
        // A flipped ciphertext byte is caught.
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            keys.open_sealed(slot, &owner, &altered),
            Err(PayloadKeyError::Unopenable { .. })
        ));
    }

    #[test]
    fn keys_survive_a_reopen_and_their_slots_are_not_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        let owner = ticket("t-1");
        let (slot, sealed) = {
            let keys = Arc::new(PayloadKeys::open(&path).unwrap());
            let slot = keys.allocate(&owner).unwrap();
            keys.sync().unwrap();
            (slot, keys.seal(slot, &owner, b"pending").unwrap())
        };
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        assert_eq!(keys.open_sealed(slot, &owner, &sealed).unwrap(), b"pending");
        let next = keys.allocate(&ticket("t-2")).unwrap();
        assert_ne!(next, slot);
    }

    #[test]
    fn destroy_zeroes_the_slot_on_disk_and_the_payload_stays_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        let owner = ticket("t-1");
        let slot = keys.allocate(&owner).unwrap();
        let sealed = keys.seal(slot, &owner, b"kept until fetched").unwrap();
        keys.sync().unwrap();
        let before = slot_bytes(&path, slot);
        assert_eq!(before[0], 1);
        let key = before[KEY_AT..CRC_AT].to_vec();

        // Another owner cannot destroy it.
        assert!(!keys.destroy(slot, &ticket("t-2")).unwrap());
        assert_eq!(slot_bytes(&path, slot), before);

        assert!(keys.destroy(slot, &owner).unwrap());
        assert!(slot_bytes(&path, slot).iter().all(|b| *b == 0));
        assert!(!raw(&path).windows(KEY_LEN).any(|w| w == key.as_slice()));
        assert!(matches!(
            keys.open_sealed(slot, &owner, &sealed),
            Err(PayloadKeyError::Missing { .. })
        ));
        assert!(!keys.destroy(slot, &owner).unwrap(), "already gone");
        // Reopened, the payload stays closed, and the slot is free for a new key.
        drop(keys);
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        assert!(keys.open_sealed(slot, &owner, &sealed).is_err());
        assert!(
            (0..4 * SPARES).any(|i| keys.allocate(&ticket(&format!("t-{i}"))).unwrap() == slot),
            "the slot is handed out again"
        );
    }

    #[test]
    fn reclaim_zeroes_the_slots_no_record_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        let live_owner = ticket("t-live");
        let live = keys.allocate(&live_owner).unwrap();
        let orphan = keys.allocate(&ticket("t-crashed")).unwrap();
        // A slot a record names, but which holds another record's key.
        let stolen = keys.allocate(&ticket("t-other")).unwrap();
        keys.sync().unwrap();
        let sealed = keys.seal(live, &live_owner, b"pending").unwrap();
        let missing_owner = PayloadOwner::new(PayloadKind::Signal, "g-lost");
        let names = HashMap::from([
            (live, live_owner.clone()),
            (stolen, missing_owner.clone()),
            (
                KeySlot(9_999),
                PayloadOwner::new(PayloadKind::Signal, "g-gone"),
            ),
        ]);
        let found = keys.reclaim(&names).unwrap();
        assert_eq!(
            found,
            Reclaimed {
                orphans: 2,
                missing: 2
            }
        );
        assert!(slot_bytes(&path, orphan).iter().all(|b| *b == 0));
        assert!(slot_bytes(&path, stolen).iter().all(|b| *b == 0));
        assert_eq!(
            keys.open_sealed(live, &live_owner, &sealed).unwrap(),
            b"pending"
        );
        // Nothing more to reclaim the second time.
        assert_eq!(keys.reclaim(&names).unwrap().orphans, 0);
    }

    #[test]
    fn a_damaged_slot_is_an_error_and_is_not_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        let owner = ticket("t-1");
        let (slot, sealed) = {
            let keys = Arc::new(PayloadKeys::open(&path).unwrap());
            let slot = keys.allocate(&owner).unwrap();
            keys.sync().unwrap();
            (slot, keys.seal(slot, &owner, b"pending").unwrap())
        };
        let mut bytes = raw(&path);
        bytes[slot.offset() as usize + KEY_AT] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        assert!(matches!(
            keys.open_sealed(slot, &owner, &sealed),
            Err(PayloadKeyError::Damaged { .. })
        ));
        assert_ne!(keys.allocate(&ticket("t-2")).unwrap(), slot);
        // Purging its record zeroes it.
        assert!(keys.destroy(slot, &owner).unwrap());
        assert!(slot_bytes(&path, slot).iter().all(|b| *b == 0));
    }

    #[test]
    fn a_file_that_is_not_a_key_file_or_is_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        drop(PayloadKeys::open(&path).unwrap());
        let mut bytes = raw(&path);
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            PayloadKeys::open(&path),
            Err(PayloadKeyError::NotAKeyFile { .. })
        ));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            PayloadKeys::open(&path),
            Err(PayloadKeyError::NotAKeyFile { .. })
        ));

        let open = dir.path().join("open.keys");
        drop(PayloadKeys::open(&open).unwrap());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = PayloadKeys::open(&open).unwrap_err();
        assert!(matches!(err, PayloadKeyError::File { .. }), "{err}");
    }

    #[test]
    fn the_file_grows_when_every_slot_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        let mut seen = std::collections::HashSet::new();
        for i in 0..GROW_SLOTS + 3 {
            assert!(seen.insert(keys.allocate(&ticket(&format!("t-{i}"))).unwrap()));
        }
        keys.sync().unwrap();
        assert!(raw(&path).len() > (GROW_SLOTS as usize + 1) * SLOT_LEN);
        assert_eq!(raw(&path).len() % SLOT_LEN, 0);
        assert!(matches!(
            keys.allocate(&ticket(&"x".repeat(MAX_ID + 1))),
            Err(PayloadKeyError::IdTooLong(_))
        ));
    }

    #[test]
    fn spare_keys_are_durable_before_they_are_handed_out_and_a_lost_binding_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload.keys");
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        // No spare yet: a fresh key, which a commit must wait for; without a runtime the spares
        // are made at once, and their sync covers it.
        keys.allocate(&ticket("t-0")).unwrap();
        assert!(!keys.is_pending());
        assert_eq!(keys.lock().spares.len(), SPARES);
        let owner = ticket("t-1");
        let slot = keys.allocate(&owner).unwrap();
        assert!(
            !keys.is_pending(),
            "a spare needs no sync before its commit"
        );
        assert_eq!(slot_bytes(&path, slot)[0], BOUND);
        let sealed = keys.seal(slot, &owner, b"pending").unwrap();

        // A crash lost the binding: the slot holds the spare it was.
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&slot_bytes(&path, slot)[KEY_AT..CRC_AT]);
        let mut bytes = raw(&path);
        let at = slot.offset() as usize;
        bytes[at..at + SLOT_LEN].copy_from_slice(&encode_slot(SPARE, None, &key));
        std::fs::write(&path, &bytes).unwrap();
        drop(keys);
        let keys = Arc::new(PayloadKeys::open(&path).unwrap());
        assert!(matches!(
            keys.open_sealed(slot, &owner, &sealed),
            Err(PayloadKeyError::Missing { .. })
        ));
        let found = keys
            .reclaim(&HashMap::from([(slot, owner.clone())]))
            .unwrap();
        assert_eq!(
            found,
            Reclaimed {
                orphans: 1,
                missing: 0
            },
            "t-0 is gone"
        );
        assert_eq!(keys.open_sealed(slot, &owner, &sealed).unwrap(), b"pending");
        assert!(!keys.lock().spares.contains(&slot.number()));
        // The other spares are still spares, not orphans.
        assert_eq!(keys.lock().spares.len(), SPARES - 1);
    }
}
