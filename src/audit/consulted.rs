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
//!
//! The gateway's own search index must find the entry by each consulted party, also when it is
//! rebuilt from the log on open. Trying every party against the commitments would cost a MAC
//! and a hash per party per lookup, so the entry also carries the list sealed for the gateway
//! alone (`consulted_sealed`): AES-256-GCM under a key derived from the same secret, with the
//! exchange id as associated data and a synthetic nonce (a MAC of the exchange id and the list,
//! so a nonce never repeats for another list), the list padded to a multiple of [`SEAL_PAD`]
//! bytes. Opening it costs one decryption, and each party it names is checked against the
//! commitments before it is indexed.

use ring::{aead, digest, hmac};
use std::collections::BTreeSet;
use std::fmt;

use crate::proto::v1::AuditEntry;

/// The domain label of consulted-holder commitments.
pub const CONSULTED_DOMAIN: &[u8] = b"ketenpoort/consulted/v1";
/// Bytes of a commitment's salt.
pub const SALT_LEN: usize = 16;
/// The commitments of one entry are padded to a multiple of this many.
pub const PAD_TO: usize = 4;
/// The sealed list's plaintext is padded to a multiple of this many bytes.
pub const SEAL_PAD: usize = 64;
/// Bytes of the sealed list's nonce, which leads it.
const NONCE_LEN: usize = 12;

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

/// The gateway's key for the salts and the sealed list. `Debug` never shows it.
pub struct ConsultedKey {
    key: hmac::Key,
    seal: aead::LessSafeKey,
}

impl fmt::Debug for ConsultedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsultedKey([redacted])")
    }
}

impl ConsultedKey {
    /// A key from 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> ConsultedKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let derived = hmac::sign(&key, b"ketenpoort/consulted/seal/v1");
        // A 32-byte key is what AES-256-GCM takes; `new` fails on no other length.
        let seal = aead::UnboundKey::new(&aead::AES_256_GCM, derived.as_ref())
            .map(aead::LessSafeKey::new)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key"));
        ConsultedKey { key, seal }
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

    /// `parties` sealed for the gateway alone, for the entry of `exchange_id`.
    pub fn seal(&self, exchange_id: &str, parties: &[String]) -> Vec<u8> {
        let distinct: BTreeSet<&str> = parties.iter().map(String::as_str).collect();
        let mut plain = Vec::with_capacity(SEAL_PAD);
        for p in distinct {
            plain.extend_from_slice(p.as_bytes());
            plain.push(b'\n');
        }
        let padded = plain.len().max(1).div_ceil(SEAL_PAD) * SEAL_PAD;
        plain.resize(padded, 0);
        let tag = self.mac(b"nonce", exchange_id, &plain);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&tag.as_ref()[..NONCE_LEN]);
        let mut out = nonce.to_vec();
        // Sealing fails only past AES-GCM's length limit (64 GiB); the list is bytes long.
        self.seal
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(exchange_id.as_bytes()),
                &mut plain,
            )
            .unwrap_or_else(|_| unreachable!("a party list is far below AES-GCM's limit"));
        out.extend_from_slice(&plain);
        out
    }

    /// The consulted parties of `entry`: its sealed list, each party checked against its
    /// commitments. Empty when there is nothing to open or it does not open under this key.
    pub fn open(&self, entry: &AuditEntry) -> Vec<String> {
        self.openings(entry)
            .into_iter()
            .map(|(party, _)| party)
            .collect()
    }

    /// [`ConsultedKey::open`] with each party's salt, the opening an auditor checks.
    pub fn openings(&self, entry: &AuditEntry) -> Vec<(String, [u8; SALT_LEN])> {
        let sealed = &entry.consulted_sealed;
        if sealed.len() < NONCE_LEN || entry.consulted_commitments.is_empty() {
            return Vec::new();
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let mut buffer = sealed[NONCE_LEN..].to_vec();
        let Ok(plain) = self.seal.open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(entry.exchange_id.as_bytes()),
            &mut buffer,
        ) else {
            return Vec::new();
        };
        plain
            .split(|b| *b == b'\n')
            .filter(|p| !p.is_empty() && !p.contains(&0))
            .filter_map(|p| std::str::from_utf8(p).ok())
            .filter_map(|p| Some((p.to_owned(), self.disclose(entry, p)?)))
            .collect()
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
            consulted_sealed: key.seal("l-1", &parties),
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
    fn the_gateway_opens_the_sealed_list_and_no_one_else_does() {
        let k = key(3);
        let e = entry(&k, &["cgg", "caw", "cgg"]);
        assert_eq!(k.open(&e), vec!["caw".to_owned(), "cgg".to_owned()]);
        // Another key opens nothing; the list is padded, so its length says little.
        assert!(key(4).open(&e).is_empty());
        assert_eq!(e.consulted_sealed.len(), NONCE_LEN + SEAL_PAD + 16);
        assert!(!e.consulted_sealed.windows(3).any(|w| w == b"caw"));
        // Moved to another exchange id, it does not open (the id is associated data).
        let mut moved = e.clone();
        moved.exchange_id = "l-2".into();
        assert!(k.open(&moved).is_empty());
        // A tampered byte makes it fail whole.
        let mut tampered = e.clone();
        let last = tampered.consulted_sealed.len() - 1;
        tampered.consulted_sealed[last] ^= 1;
        assert!(k.open(&tampered).is_empty());
        // A party the sealed list names but the commitments do not is not indexed.
        let mut mismatched = entry(&k, &["caw"]);
        mismatched.consulted_sealed = k.seal("l-1", &["caw".to_owned(), "ocmw".to_owned()]);
        assert_eq!(k.open(&mismatched), vec!["caw".to_owned()]);
        assert!(format!("{:?}", k).contains("redacted"));
    }
}
