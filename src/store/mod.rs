//! Operational state (references, tickets, inboxes, cases, consents) under the sled prefix `s/`.
//!
//! State lives in the audit log's own tree so that a state change and the audit entry that
//! records it are committed in one atomic, durable write (see `audit::AuditLog::append`). This
//! module only names the keys, encodes records and reads them back; it never writes directly.
//! The payloads the records carry are sealed under keys that live apart, in the payload key file
//! ([`payload_keys`]), which this module alone writes.

pub mod payload;
pub mod payload_keys;
pub mod records;

use std::sync::Arc;

use prost::Message;

use crate::audit::{AuditError, AuditLog, StateChange};

pub use payload::{Payload, SealedRecord, Shred};
pub use payload_keys::{PayloadKeyError, PayloadKeys, PayloadKind, PayloadOwner, Reclaimed};

pub use records::{
    AskedField, CaseRecord, ConsentRecord, NecessityRecord, ReferenceRecord, ReviewQueueRecord,
    ReviewRecord, SignalRecord, TicketRecord,
};

/// Why stored state could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The audit log's storage failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A stored record does not decode (the key is shown; keys hold no personal data).
    #[error("stored record under {0} does not decode")]
    Decode(String),
    /// The payload key file cannot be used: nothing can be sealed (and so nothing stored).
    #[error(transparent)]
    PayloadKeys(#[from] PayloadKeyError),
    /// A record's payload cannot be opened: its key was destroyed, lost or damaged, or the
    /// ciphertext was altered.
    #[error(
        "the payload of {owner} cannot be read: its key is missing or damaged, or the ciphertext was altered"
    )]
    Unreadable {
        /// The record.
        owner: PayloadOwner,
    },
}

/// Key of a holder's reference to a subject.
pub fn reference_key(subject: &str, holder: &str) -> Vec<u8> {
    format!("s/ref/{subject}/{holder}").into_bytes()
}
/// Prefix of all references to a subject.
pub fn references_prefix(subject: &str) -> Vec<u8> {
    format!("s/ref/{subject}/").into_bytes()
}
/// Key of a ticket.
pub fn ticket_key(id: &str) -> Vec<u8> {
    format!("s/tk/{id}").into_bytes()
}
/// Key of a holder's pending-request index entry. Like every secondary index over the records,
/// it is memory-only (under `s/m/`, see `audit::store::MEMORY_PREFIX`): committed with the
/// record it points to, rebuilt from the records on start (see `Gateway::rebuild_indexes`).
pub fn incoming_key(holder: &str, id: &str) -> Vec<u8> {
    format!("s/m/in/{holder}/{id}").into_bytes()
}
/// Prefix of a holder's pending requests.
pub fn incoming_prefix(holder: &str) -> Vec<u8> {
    format!("s/m/in/{holder}/").into_bytes()
}
/// Key of a signal.
pub fn signal_key(id: &str) -> Vec<u8> {
    format!("s/sg/{id}").into_bytes()
}
/// Key of a recipient's inbox index entry.
pub fn inbox_key(recipient: &str, id: &str) -> Vec<u8> {
    format!("s/m/ib/{recipient}/{id}").into_bytes()
}
/// Prefix of a recipient's inbox.
pub fn inbox_prefix(recipient: &str) -> Vec<u8> {
    format!("s/m/ib/{recipient}/").into_bytes()
}
/// Key of a case.
pub fn case_key(id: &str) -> Vec<u8> {
    format!("s/case/{id}").into_bytes()
}
/// Key of a case's subject index entry.
pub fn case_subject_key(subject: &str, id: &str) -> Vec<u8> {
    format!("s/cs/{subject}/{id}").into_bytes()
}
/// Prefix of the cases about a subject.
pub fn case_subject_prefix(subject: &str) -> Vec<u8> {
    format!("s/cs/{subject}/").into_bytes()
}
/// Key of a consent.
pub fn consent_key(id: &str) -> Vec<u8> {
    format!("s/cn/{id}").into_bytes()
}
/// Key of a consent's subject index entry.
pub fn consent_subject_key(subject: &str, id: &str) -> Vec<u8> {
    format!("s/ns/{subject}/{id}").into_bytes()
}
/// Prefix of the consents of a subject.
pub fn consent_subject_prefix(subject: &str) -> Vec<u8> {
    format!("s/ns/{subject}/").into_bytes()
}
/// Key of a flagged exchange in a reviewer's queue.
pub fn review_queue_key(reviewer: &str, exchange_id: &str) -> Vec<u8> {
    format!("s/rq/{reviewer}/{exchange_id}").into_bytes()
}
/// Prefix of a reviewer's queue.
pub fn review_queue_prefix(reviewer: &str) -> Vec<u8> {
    format!("s/rq/{reviewer}/").into_bytes()
}
/// Key of a review a reviewer recorded.
pub fn review_done_key(reviewer: &str, exchange_id: &str) -> Vec<u8> {
    format!("s/rd/{reviewer}/{exchange_id}").into_bytes()
}
/// Prefix of a reviewer's recorded reviews.
pub fn review_done_prefix(reviewer: &str) -> Vec<u8> {
    format!("s/rd/{reviewer}/").into_bytes()
}
/// Key of the texts of a necessity exchange.
pub fn necessity_key(exchange_id: &str) -> Vec<u8> {
    format!("s/nt/{exchange_id}").into_bytes()
}
/// Prefixes of sled keys that earlier versions wrote and this one neither writes nor reads: the
/// pending-request, inbox and expiry indexes, which are memory-only now (under `s/m/`). The
/// gateway removes them on start (see `Gateway::rebuild_indexes`).
pub const OBSOLETE_PREFIXES: &[&[u8]] = &[b"s/in/", b"s/ib/", b"s/ex/"];
/// Prefix of all tickets.
pub const TICKETS_PREFIX: &[u8] = b"s/tk/";
/// Prefix of all signals.
pub const SIGNALS_PREFIX: &[u8] = b"s/sg/";

/// A state change that writes `record` under `key`.
pub fn put<M: Message>(key: Vec<u8>, record: &M) -> StateChange {
    StateChange {
        key,
        value: Some(record.encode_to_vec()),
    }
}

/// A state change that writes an empty marker (index entries).
pub fn mark(key: Vec<u8>) -> StateChange {
    StateChange {
        key,
        value: Some(Vec::new()),
    }
}

/// A state change that deletes `key`.
pub fn delete(key: Vec<u8>) -> StateChange {
    StateChange { key, value: None }
}

/// Read access to the state kept in the audit log's tree, and the seals of its payloads.
#[derive(Clone)]
pub struct Store {
    log: AuditLog,
    keys: Arc<PayloadKeys>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// State reads through `log`; payloads sealed under keys in `keys` (which `log` must have
    /// as its [`crate::audit::AuditConfig::sync_first`] store).
    pub fn new(log: AuditLog, keys: Arc<PayloadKeys>) -> Self {
        Self { log, keys }
    }

    /// The record under `key`, if any.
    pub fn get<M: Message + Default>(&self, key: &[u8]) -> Result<Option<M>, StoreError> {
        match self.log.state_get(key)? {
            None => Ok(None),
            Some(bytes) => M::decode(bytes.as_slice())
                .map(Some)
                .map_err(|_| StoreError::Decode(String::from_utf8_lossy(key).into_owned())),
        }
    }

    /// The last key segments (ids) under `prefix`, in key order.
    pub fn ids_under(&self, prefix: &[u8]) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        for item in self.log.state_scan_prefix(prefix) {
            let (key, _) = item?;
            ids.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(ids)
    }

    /// Every record under `prefix`, in key order.
    pub fn scan<M: Message + Default>(&self, prefix: &[u8]) -> Result<Vec<M>, StoreError> {
        let mut records = Vec::new();
        for item in self.log.state_scan_prefix(prefix) {
            let (key, value) = item?;
            records.push(
                M::decode(value.as_slice())
                    .map_err(|_| StoreError::Decode(String::from_utf8_lossy(&key).into_owned()))?,
            );
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_state_prefix() {
        for key in [
            reference_key("ab", "caw"),
            ticket_key("t1"),
            incoming_key("caw", "t1"),
            signal_key("g1"),
            inbox_key("ocmw", "g1"),
            case_key("c1"),
            case_subject_key("ab", "c1"),
            consent_key("n1"),
            consent_subject_key("ab", "n1"),
        ] {
            assert!(key.starts_with(b"s/"));
        }
        assert!(reference_key("ab", "caw").starts_with(&references_prefix("ab")));
        assert!(!reference_key("abc", "caw").starts_with(&references_prefix("ab")));
    }

    #[test]
    fn records_round_trip() {
        let ticket = TicketRecord {
            id: "t1".into(),
            state: 1,
            grants: vec![crate::proto::v1::FieldGrant {
                field: "subject.birth_date".into(),
                form: "year".into(),
                rule: Some(crate::proto::v1::RuleRef {
                    agreement: "a".into(),
                    rule: "r".into(),
                    effect: "permit".into(),
                }),
            }],
            ..Default::default()
        };
        let change = put(ticket_key("t1"), &ticket);
        let bytes = change.value.expect("put has a value");
        assert_eq!(
            TicketRecord::decode(bytes.as_slice()).expect("decodes"),
            ticket
        );
    }
}
