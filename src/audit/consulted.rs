//! Which holders a lookup consulted, committed so that each holder's auditor sees its own name
//! and nothing of the others' (selective disclosure by salted hashes, as in SD-JWT).
//!
//! A `LookupConsulted` entry lists one commitment per consulted holder:
//! `SHA-256("ketenpoort/consulted/v1" ‖ 0x00 ‖ salt ‖ party id)`, where
//! `salt = HMAC-SHA-256(key, "salt" ‖ 0x00 ‖ exchange id ‖ 0x00 ‖ party id)[..16]` under a key
//! only the gateway holds. The list is sorted and padded with `HMAC(key, "pad" ‖ …)` values to a
//! multiple of [`PAD_TO`], which look like commitments to anyone without the key. The gateway
//! gives a holder's auditor its own salt with the entry; the auditor recomputes the commitment and
//! finds it in the entry, whose leaf hash its receipt or the tree proves. Another holder's
//! commitment cannot be tested without that holder's salt, so the auditor does not learn who
//! else knows the subject (naming them in clear, as before, showed every consulted holder's
//! auditor the others).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, RwLock};

use ring::{digest, hmac};

use crate::proto::v1::AuditEntry;

/// The domain label of consulted-holder commitments.
pub const CONSULTED_DOMAIN: &[u8] = b"ketenpoort/consulted/v1";
/// Bytes of a commitment's salt.
pub const SALT_LEN: usize = 16;
/// The commitments of one entry are padded to a multiple of this many.
pub const PAD_TO: usize = 4;

/// The commitment to `party` under `salt`; anyone can compute it.
pub fn commitment(salt: &[u8], party: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(CONSULTED_DOMAIN);
    ctx.update(&[0]);
    ctx.update(salt);
    ctx.update(party.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Whether `entry` commits to `party` having been consulted, given that party's salt: the check
/// an auditor makes offline.
pub fn discloses(entry: &AuditEntry, party: &str, salt: &[u8]) -> bool {
    salt.len() == SALT_LEN && {
        let c = commitment(salt, party);
        entry
            .consulted_commitments
            .iter()
            .any(|x| x.as_slice() == c.as_slice())
    }
}

/// The gateway's key for the salts. `Debug` never shows it.
pub struct ConsultedKey {
    key: hmac::Key,
}

impl fmt::Debug for ConsultedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsultedKey([redacted])")
    }
}

impl ConsultedKey {
    /// A key from 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> ConsultedKey {
        ConsultedKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    fn mac(&self, label: &[u8], exchange_id: &str, tail: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(label);
        ctx.update(&[0]);
        ctx.update(exchange_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(tail);
        ctx.sign()
    }

    /// The salt of `party`'s commitment in the entry of `exchange_id`.
    pub fn salt(&self, exchange_id: &str, party: &str) -> [u8; SALT_LEN] {
        let mut out = [0u8; SALT_LEN];
        out.copy_from_slice(&self.mac(b"salt", exchange_id, party.as_bytes()).as_ref()[..SALT_LEN]);
        out
    }

    /// The commitments of an entry for `exchange_id` that consulted `parties`: one per distinct
    /// party, padded, sorted.
    pub fn commitments(&self, exchange_id: &str, parties: &[String]) -> Vec<Vec<u8>> {
        let distinct: BTreeSet<&str> = parties.iter().map(String::as_str).collect();
        let mut out: Vec<Vec<u8>> = distinct
            .iter()
            .map(|p| commitment(&self.salt(exchange_id, p), p).to_vec())
            .collect();
        let padded = out.len().max(1).div_ceil(PAD_TO) * PAD_TO;
        let mut n = 0u64;
        while out.len() < padded {
            out.push(
                self.mac(b"pad", exchange_id, &n.to_be_bytes())
                    .as_ref()
                    .to_vec(),
            );
            n += 1;
        }
        out.sort();
        out
    }

    /// `party`'s salt if `entry` commits to it having been consulted.
    pub fn disclose(&self, entry: &AuditEntry, party: &str) -> Option<[u8; SALT_LEN]> {
        if entry.consulted_commitments.is_empty() {
            return None;
        }
        let salt = self.salt(&entry.exchange_id, party);
        discloses(entry, party, &salt).then_some(salt)
    }
}

/// Opens consulted commitments for the search index, against every party the log has named so
/// far as requester or counterpart (a holder registers its references, in entries that name it,
/// before any lookup can consult it).
#[derive(Debug)]
pub struct Opener {
    key: Arc<ConsultedKey>,
    named: RwLock<BTreeSet<String>>,
}

impl Opener {
    /// An opener with no party named yet.
    pub fn new(key: Arc<ConsultedKey>) -> Opener {
        Opener {
            key,
            named: RwLock::new(BTreeSet::new()),
        }
    }

    /// The key.
    pub fn key(&self) -> &ConsultedKey {
        &self.key
    }

    /// Remembers the parties `entry` names.
    pub fn learn(&self, entry: &AuditEntry) {
        let names = [&entry.requester_party, &entry.counterpart_party];
        let known = {
            let named = self.named.read().unwrap_or_else(|e| e.into_inner());
            names.iter().all(|p| p.is_empty() || named.contains(*p))
        };
        if !known {
            let mut named = self.named.write().unwrap_or_else(|e| e.into_inner());
            for p in names {
                if !p.is_empty() && !named.contains(p) {
                    named.insert(p.clone());
                }
            }
        }
    }

    /// The named parties `entry` commits to having consulted.
    pub fn open(&self, entry: &AuditEntry) -> Vec<String> {
        if entry.consulted_commitments.is_empty() {
            return Vec::new();
        }
        let named = self.named.read().unwrap_or_else(|e| e.into_inner());
        named
            .iter()
            .filter(|p| self.key.disclose(entry, p).is_some())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ConsultedKey {
        ConsultedKey::from_bytes(&[b; 32])
    }

    fn entry(key: &ConsultedKey, parties: &[&str]) -> AuditEntry {
        let parties: Vec<String> = parties.iter().map(|p| (*p).to_owned()).collect();
        AuditEntry {
            exchange_id: "l-1".into(),
            consulted_commitments: key.commitments("l-1", &parties),
            ..Default::default()
        }
    }

    #[test]
    fn each_consulted_party_opens_only_its_own_commitment() {
        let k = key(7);
        let e = entry(&k, &["caw", "cgg"]);
        assert_eq!(e.consulted_commitments.len(), PAD_TO);
        let caw = k.disclose(&e, "caw").expect("caw was consulted");
        assert!(discloses(&e, "caw", &caw));
        // caw's salt opens nothing else: it cannot test for cgg or anyone.
        assert!(!discloses(&e, "cgg", &caw));
        assert!(k.disclose(&e, "ocmw").is_none());
        // A salt for the same party under another exchange id, or another key, does not open.
        assert!(!discloses(&e, "caw", &k.salt("l-2", "caw")));
        assert!(!discloses(&e, "caw", &key(8).salt("l-1", "caw")));
        assert!(!discloses(&e, "caw", &caw[..8]));
    }

    #[test]
    fn commitments_are_sorted_deduplicated_and_padded() {
        let k = key(1);
        let none = entry(&k, &[]);
        assert_eq!(none.consulted_commitments.len(), PAD_TO);
        let five = entry(&k, &["a", "b", "c", "d", "e", "a"]);
        assert_eq!(five.consulted_commitments.len(), 2 * PAD_TO);
        let mut sorted = five.consulted_commitments.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, five.consulted_commitments);
        // The same parties in another order give the same list.
        assert_eq!(
            entry(&k, &["e", "d", "c", "b", "a"]).consulted_commitments,
            five.consulted_commitments
        );
    }

    #[test]
    fn the_opener_finds_named_parties_only() {
        let k = key(3);
        let e = entry(&k, &["caw", "cgg"]);
        let opener = Opener::new(Arc::new(key(3)));
        assert!(opener.open(&e).is_empty());
        opener.learn(&AuditEntry {
            counterpart_party: "cgg".into(),
            ..Default::default()
        });
        opener.learn(&AuditEntry {
            requester_party: "pz".into(),
            counterpart_party: "caw".into(),
            ..Default::default()
        });
        assert_eq!(opener.open(&e), vec!["caw".to_owned(), "cgg".to_owned()]);
        assert!(format!("{:?}", k).contains("redacted"));
    }
}
