//! One slot of the payload key file: its layout, and the record a key belongs to.
//!
//! | bytes    | content                                              |
//! |----------|------------------------------------------------------|
//! | 0        | 1: bound, 2: spare                                   |
//! | 1        | the owner's kind: `t` ticket, `g` signal; 0 if spare |
//! | 2        | the length of the owner's id                         |
//! | 4..68    | the owner's id, zero-padded                          |
//! | 68..100  | the key                                              |
//! | 100..104 | CRC-32 of bytes 0..100, little-endian                |
//!
//! Slot 0 is the header instead: [`MAGIC`], the format version and the slot length.

use std::fmt;

/// Bytes of one slot.
pub const SLOT_LEN: usize = 128;
/// The header's first bytes.
pub const MAGIC: &[u8; 8] = b"KPPAYKEY";
/// The format version in the header.
const VERSION: u32 = 1;
/// The first byte of a slot holding a key bound to its owner, and of one holding a spare key.
pub(super) const BOUND: u8 = 1;
pub(super) const SPARE: u8 = 2;
/// The longest owner id a slot holds.
pub(super) const MAX_ID: usize = 64;
pub(super) const KEY_LEN: usize = 32;
const ID_AT: usize = 4;
pub(super) const KEY_AT: usize = ID_AT + MAX_ID;
pub(super) const CRC_AT: usize = KEY_AT + KEY_LEN;
/// The domain label of the associated data, which binds a ciphertext to its owner.
const AAD_DOMAIN: &[u8] = b"ketenpoort/payload/v1";

/// What kind of record a payload belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// A request ticket (its justification and, once answered, the released fields).
    Ticket,
    /// A pushed signal.
    Signal,
}

impl PayloadKind {
    fn tag(self) -> u8 {
        match self {
            PayloadKind::Ticket => b't',
            PayloadKind::Signal => b'g',
        }
    }

    fn from_tag(tag: u8) -> Option<PayloadKind> {
        match tag {
            b't' => Some(PayloadKind::Ticket),
            b'g' => Some(PayloadKind::Signal),
            _ => None,
        }
    }

    /// The kind's name, as errors say it.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Ticket => "ticket",
            PayloadKind::Signal => "signal",
        }
    }
}

/// The record a payload key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayloadOwner {
    /// Its kind.
    pub kind: PayloadKind,
    /// Its id.
    pub id: String,
}

impl PayloadOwner {
    /// The owner of `kind` with `id`.
    pub fn new(kind: PayloadKind, id: impl Into<String>) -> PayloadOwner {
        PayloadOwner {
            kind,
            id: id.into(),
        }
    }

    /// The associated data of its ciphertexts.
    pub(super) fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 3 + self.id.len());
        aad.extend_from_slice(AAD_DOMAIN);
        aad.push(0);
        aad.push(self.kind.tag());
        aad.push(0);
        aad.extend_from_slice(self.id.as_bytes());
        aad
    }
}

impl fmt::Display for PayloadOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.id)
    }
}

/// The number of a slot that holds (or held) a key; never 0, the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySlot(pub(super) u32);

impl KeySlot {
    /// The slot a record names, if it names one (0 is none).
    pub fn from_record(number: u32) -> Option<KeySlot> {
        (number != 0).then_some(KeySlot(number))
    }

    /// Its number, as a record stores it.
    pub fn number(self) -> u32 {
        self.0
    }

    pub(super) fn offset(self) -> u64 {
        u64::from(self.0) * SLOT_LEN as u64
    }
}

/// What a slot holds.
pub(super) enum SlotContent {
    Free,
    Key(PayloadOwner, [u8; KEY_LEN]),
    Spare([u8; KEY_LEN]),
    Damaged,
}

/// The header slot.
pub(super) fn header() -> [u8; SLOT_LEN] {
    let mut h = [0u8; SLOT_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SLOT_LEN as u32).to_le_bytes());
    h
}

/// A slot of `state` ([`BOUND`] or [`SPARE`]) holding `key`, for `owner` if bound (whose id
/// fits, which the caller checked).
pub(super) fn encode_slot(
    state: u8,
    owner: Option<&PayloadOwner>,
    key: &[u8; KEY_LEN],
) -> [u8; SLOT_LEN] {
    let mut s = [0u8; SLOT_LEN];
    s[0] = state;
    if let Some(owner) = owner {
        s[1] = owner.kind.tag();
        s[2] = owner.id.len() as u8;
        s[ID_AT..ID_AT + owner.id.len()].copy_from_slice(owner.id.as_bytes());
    }
    s[KEY_AT..CRC_AT].copy_from_slice(key);
    let crc = crc32fast::hash(&s[..CRC_AT]);
    s[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    s
}

pub(super) fn decode_slot(s: &[u8; SLOT_LEN]) -> SlotContent {
    if s.iter().all(|b| *b == 0) {
        return SlotContent::Free;
    }
    let crc = u32::from_le_bytes([s[CRC_AT], s[CRC_AT + 1], s[CRC_AT + 2], s[CRC_AT + 3]]);
    if crc != crc32fast::hash(&s[..CRC_AT]) {
        return SlotContent::Damaged;
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&s[KEY_AT..CRC_AT]);
    let id_len = usize::from(s[2]);
    let id = s
        .get(ID_AT..ID_AT + id_len)
        .filter(|_| id_len <= MAX_ID)
        .and_then(|id| std::str::from_utf8(id).ok());
    match (s[0], PayloadKind::from_tag(s[1]), id) {
        (BOUND, Some(kind), Some(id)) => SlotContent::Key(PayloadOwner::new(kind, id), key),
        (SPARE, None, Some("")) if s[1] == 0 => SlotContent::Spare(key),
        _ => {
            key.fill(0);
            SlotContent::Damaged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_decode_as_they_were_encoded_and_a_changed_byte_is_caught() {
        let owner = PayloadOwner::new(PayloadKind::Signal, "g-0190a3f2c4d55e6f7a8b9c0d");
        let key = [7u8; KEY_LEN];
        let bound = encode_slot(BOUND, Some(&owner), &key);
        assert!(matches!(decode_slot(&bound), SlotContent::Key(o, k) if o == owner && k == key));
        let spare = encode_slot(SPARE, None, &key);
        assert!(matches!(decode_slot(&spare), SlotContent::Spare(k) if k == key));
        assert!(matches!(decode_slot(&[0; SLOT_LEN]), SlotContent::Free));
        for at in [0, 1, 2, 10, KEY_AT, CRC_AT] {
            let mut changed = bound;
            changed[at] ^= 0x10;
            assert!(
                matches!(decode_slot(&changed), SlotContent::Damaged),
                "byte {at}"
            );
        }
        assert_ne!(
            owner.aad(),
            PayloadOwner::new(PayloadKind::Ticket, &owner.id).aad()
        );
    }
}
