//! The payloads of tickets and signals at rest: sealed into one field of their record under a
//! key of the record's own, in the payload key file (see [`super::payload_keys`]), so that
//! destroying the key when the payload is purged leaves every copy the storage keeps unreadable.
//!
//! A record's key is made when the record is, and destroyed once the state change that drops
//! the payload (delivery, acknowledgement, decline, expiry, the end of retention) is durable; an
//! answer is sealed again under the key its ticket already has.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use super::payload_keys::{
    KeySlot, PayloadKeyError, PayloadKeys, PayloadKind, PayloadOwner, Reclaimed,
};
use super::{SignalRecord, Store, StoreError, TicketRecord};
use crate::proto::v1::ReleasedFieldValue;

/// What travels to the other party and is kept only until fetched: the free-text justification
/// and the released fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// The requester's or sender's justification; empty for none.
    #[prost(string, tag = "1")]
    pub justification: String,
    /// The released fields (a ticket has none until it is answered).
    #[prost(message, repeated, tag = "2")]
    pub released: Vec<ReleasedFieldValue>,
}

/// A record that carries a sealed payload: a ticket or a signal.
pub trait SealedRecord {
    /// The kind of record, bound into its ciphertexts.
    const KIND: PayloadKind;
    /// The record's id, bound into its ciphertexts.
    fn id(&self) -> &str;
    /// The slot of its key; 0 for none.
    fn key_slot(&self) -> u32;
    /// Its sealed payload; empty for none.
    fn sealed(&self) -> &[u8];
    /// Stores a sealed payload.
    fn set_sealed(&mut self, key_slot: u32, sealed: Vec<u8>);
    /// Clears the sealed payload and its key's slot.
    fn clear_payload(&mut self);

    /// The record as the owner of its key.
    fn owner(&self) -> PayloadOwner {
        PayloadOwner::new(Self::KIND, self.id())
    }
}

/// Tickets and signals keep their sealed payload in the same two fields.
macro_rules! sealed_record {
    ($record:ty, $kind:expr) => {
        impl SealedRecord for $record {
            const KIND: PayloadKind = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn key_slot(&self) -> u32 {
                self.key_slot
            }
            fn sealed(&self) -> &[u8] {
                &self.sealed
            }
            fn set_sealed(&mut self, key_slot: u32, sealed: Vec<u8>) {
                self.key_slot = key_slot;
                self.sealed = sealed;
            }
            fn clear_payload(&mut self) {
                self.set_sealed(0, Vec::new());
            }
        }
    };
}

sealed_record!(TicketRecord, PayloadKind::Ticket);
sealed_record!(SignalRecord, PayloadKind::Signal);

/// The key of a purged payload, to destroy with [`Store::shred`] once the state change that
/// dropped the payload is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a purged payload's key must be destroyed once the purge is durable"]
pub struct Shred {
    slot: KeySlot,
    owner: PayloadOwner,
}

impl Shred {
    /// The record whose key it is.
    pub fn owner(&self) -> &PayloadOwner {
        &self.owner
    }
}

/// Drops the payload from `record` (the caller then commits the record, or its deletion);
/// returns its key, if it has one, to destroy once that commit is durable.
pub fn purge<R: SealedRecord>(record: &mut R) -> Option<Shred> {
    let shred = KeySlot::from_record(record.key_slot()).map(|slot| Shred {
        slot,
        owner: record.owner(),
    });
    record.clear_payload();
    shred
}

/// The key of `record`'s payload, to destroy once the commit that deletes the record is
/// durable (a deleted record needs no clearing).
pub fn key_of<R: SealedRecord>(record: &R) -> Option<Shred> {
    KeySlot::from_record(record.key_slot()).map(|slot| Shred {
        slot,
        owner: record.owner(),
    })
}

impl Store {
    /// Seals `payload` into `record` under the record's key, making the key first when the
    /// record has none. A key made here is written but not yet durable: commit the record with
    /// [`crate::audit::AuditLog::append_after_sync`], which syncs the key file before it writes
    /// the commit. If the key file cannot be written, nothing is sealed (and nothing may be
    /// stored).
    pub fn seal<R: SealedRecord>(
        &self,
        record: &mut R,
        payload: &Payload,
    ) -> Result<(), StoreError> {
        seal(&self.keys, record, payload)
    }

    /// The payload of `record`, opened; an empty one once purged. A payload whose key is gone or
    /// damaged, or whose ciphertext was altered, is an error ([`StoreError::Unreadable`]),
    /// never an empty or partial payload.
    pub fn payload<R: SealedRecord>(&self, record: &R) -> Result<Payload, StoreError> {
        open(&self.keys, record)
    }

    /// Destroys a purged payload's key (zeroes its slot and syncs the key file). Call it only
    /// once the state change that dropped the payload is durable. Blocking file I/O.
    pub fn shred(&self, shred: &Shred) -> Result<(), StoreError> {
        self.keys.destroy(shred.slot, &shred.owner)?;
        Ok(())
    }

    /// Zeroes every payload key no record names (left by a crash between a key's write and its
    /// record's commit, or between a purge and its key's destruction). `records` are the owners
    /// and key slots of every stored ticket and signal. Run on start, before serving.
    pub fn reclaim_keys(
        &self,
        records: impl IntoIterator<Item = (u32, PayloadOwner)>,
    ) -> Result<Reclaimed, StoreError> {
        let live: HashMap<KeySlot, PayloadOwner> = records
            .into_iter()
            .filter_map(|(n, owner)| KeySlot::from_record(n).map(|slot| (slot, owner)))
            .collect();
        Ok(self.keys.reclaim(&live)?)
    }
}

/// See [`Store::seal`].
fn seal<R: SealedRecord>(
    keys: &Arc<PayloadKeys>,
    record: &mut R,
    payload: &Payload,
) -> Result<(), StoreError> {
    let owner = record.owner();
    let slot = match KeySlot::from_record(record.key_slot()) {
        Some(slot) => slot,
        None => keys.allocate(&owner)?,
    };
    let sealed = keys
        .seal(slot, &owner, &payload.encode_to_vec())
        .map_err(|e| unreadable(e, &owner))?;
    record.set_sealed(slot.number(), sealed);
    Ok(())
}

/// See [`Store::payload`].
fn open<R: SealedRecord>(keys: &PayloadKeys, record: &R) -> Result<Payload, StoreError> {
    let owner = record.owner();
    if record.sealed().is_empty() {
        // A purged payload (or a record that never had one).
        return Ok(Payload::default());
    }
    let slot = KeySlot::from_record(record.key_slot()).ok_or_else(|| StoreError::Unreadable {
        owner: owner.clone(),
    })?;
    let plain = keys
        .open_sealed(slot, &owner, record.sealed())
        .map_err(|e| unreadable(e, &owner))?;
    Payload::decode(plain.as_slice()).map_err(|_| StoreError::Unreadable { owner })
}

/// A key error about `owner`'s payload, as the store reports it.
fn unreadable(error: PayloadKeyError, owner: &PayloadOwner) -> StoreError {
    if error.is_unreadable() {
        StoreError::Unreadable {
            owner: owner.clone(),
        }
    } else {
        StoreError::PayloadKeys(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{FieldValue, field_value::Kind};

    fn released(field: &str, text: &str) -> ReleasedFieldValue {
        ReleasedFieldValue {
            field: field.into(),
            form: "keep".into(),
            value: Some(FieldValue {
                kind: Some(Kind::Text(text.into())),
            }),
        }
    }

    #[test]
    fn a_ticket_keeps_its_key_from_request_to_answer_and_purge_hands_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(PayloadKeys::open(&dir.path().join("payload.keys")).unwrap());
        let mut ticket = TicketRecord {
            id: "t-1".into(),
            ..TicketRecord::default()
        };
        let mut payload = Payload {
            justification: "acute danger".into(),
            released: Vec::new(),
        };
        seal(&keys, &mut ticket, &payload).unwrap();
        let slot = ticket.key_slot;
        assert_ne!(slot, 0);
        assert!(!ticket.sealed.windows(12).any(|w| w == b"acute danger"));
        assert_eq!(open(&keys, &ticket).unwrap(), payload);

        payload
            .released
            .push(released("subject.name", "Marie Peeters"));
        seal(&keys, &mut ticket, &payload).unwrap();
        assert_eq!(ticket.key_slot, slot, "the answer goes under the same key");
        assert_eq!(open(&keys, &ticket).unwrap(), payload);

        // Another record's ciphertext does not open here.
        let mut other = TicketRecord {
            id: "t-2".into(),
            ..TicketRecord::default()
        };
        seal(&keys, &mut other, &Payload::default()).unwrap();
        let mut swapped = ticket.clone();
        swapped.sealed = other.sealed.clone();
        assert!(matches!(
            open(&keys, &swapped),
            Err(StoreError::Unreadable { .. })
        ));

        let shred = purge(&mut ticket).expect("a key to destroy");
        assert_eq!(
            shred.owner(),
            &PayloadOwner::new(PayloadKind::Ticket, "t-1")
        );
        assert!(ticket.sealed.is_empty() && ticket.key_slot == 0);
        assert_eq!(open(&keys, &ticket).unwrap(), Payload::default());
        assert!(keys.destroy(shred.slot, shred.owner()).unwrap());
        assert!(purge(&mut ticket).is_none());
    }
}
