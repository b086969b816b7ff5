//! Receipts in the C2SP `tlog-proof@v1` text format, and their offline verification:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index <n>
//! <base64 hash>        (the RFC 6962 inclusion proof, from the leaf upward)
//!
//! <signed checkpoint, verbatim>
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt::Write as _;

use super::checkpoint::Checkpoint;
use super::error::AuditError;
use super::hash::{Hash, check_record, leaf_hash};
use super::keys::Verifier;

/// The first line of a tlog-proof.
const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Proof that an entry is in the log: its index, its bytes and a tlog-proof text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's index in the log.
    pub index: u64,
    /// The entry bytes (the protobuf-encoded `AuditEntry`), i.e. the Merkle leaf.
    pub entry: Vec<u8>,
    /// The `c2sp.org/tlog-proof@v1` text.
    pub proof: String,
}

impl Receipt {
    /// Verifies this receipt offline against one pinned verifier key.
    pub fn verify(&self, vkey: &str) -> Result<VerifiedReceipt, AuditError> {
        let verified = verify_receipt(&self.proof, &self.entry, vkey)?;
        if verified.index != self.index {
            return Err(AuditError::BadProof(
                "receipt index differs from its proof's index".into(),
            ));
        }
        Ok(verified)
    }
}

/// What a verified receipt establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The entry's index.
    pub index: u64,
    /// The checkpoint the entry is proven to be included in.
    pub checkpoint: Checkpoint,
    /// That checkpoint as a signed note, verbatim.
    pub signed_checkpoint: String,
}

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Optional opaque extra data (`extra` line); we never write it.
    pub extra: Option<Vec<u8>>,
    /// The leaf index.
    pub index: u64,
    /// The inclusion proof hashes.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub signed_checkpoint: String,
}

impl TlogProof {
    /// Formats the proof as tlog-proof text.
    pub fn format(&self) -> String {
        let mut out =
            String::with_capacity(64 + self.hashes.len() * 45 + self.signed_checkpoint.len());
        out.push_str(HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            B64.encode_string(extra, &mut out);
            out.push('\n');
        }
        // Writing to a String cannot fail.
        let _ = writeln!(out, "index {}", self.index);
        for h in &self.hashes {
            B64.encode_string(h, &mut out);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.signed_checkpoint);
        out
    }

    /// Parses tlog-proof text.
    pub fn parse(text: &str) -> Result<TlogProof, AuditError> {
        let bad = |why: &str| AuditError::BadProof(format!("tlog-proof: {why}"));
        let (head, signed_checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("first line must be c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        let mut extra = None;
        if let Some(e) = line.strip_prefix("extra ") {
            extra = Some(B64.decode(e).map_err(|_| bad("extra is not base64"))?);
            line = lines.next().ok_or_else(|| bad("no index line"))?;
        }
        let index_text = line
            .strip_prefix("index ")
            .ok_or_else(|| bad("no index line"))?;
        if index_text.is_empty()
            || !index_text.bytes().all(|b| b.is_ascii_digit())
            || (index_text.len() > 1 && index_text.starts_with('0'))
        {
            return Err(bad("index is not a decimal number"));
        }
        let index = index_text.parse().map_err(|_| bad("index out of range"))?;
        let mut hashes = Vec::new();
        for l in lines {
            let bytes = B64.decode(l).map_err(|_| bad("proof hash is not base64"))?;
            let h: Hash = bytes
                .try_into()
                .map_err(|_| bad("proof hash is not 32 bytes"))?;
            hashes.push(h);
        }
        if hashes.len() > 63 {
            return Err(bad("too many proof hashes"));
        }
        Ok(TlogProof {
            extra,
            index,
            hashes,
            signed_checkpoint: signed_checkpoint.to_owned(),
        })
    }
}

/// Verifies a tlog-proof for `entry` offline against a pinned verifier key: the checkpoint's
/// signature, then the entry's inclusion in that checkpoint's tree.
pub fn verify_receipt(
    proof: &str,
    entry: &[u8],
    vkey: &str,
) -> Result<VerifiedReceipt, AuditError> {
    let verifier = Verifier::parse(vkey)?;
    verify_receipt_with(proof, entry, std::slice::from_ref(&verifier))
}

/// As [`verify_receipt`], accepting a signature by any of several pinned keys (key rotation).
pub fn verify_receipt_with(
    proof: &str,
    entry: &[u8],
    verifiers: &[Verifier],
) -> Result<VerifiedReceipt, AuditError> {
    let parsed = TlogProof::parse(proof)?;
    let checkpoint = Checkpoint::open(&parsed.signed_checkpoint, verifiers)?;
    if !check_record(
        &parsed.hashes,
        checkpoint.size,
        &checkpoint.root,
        parsed.index,
        &leaf_hash(entry),
    ) {
        return Err(AuditError::BadProof(format!(
            "entry is not included at index {} of the tree of size {}",
            parsed.index, checkpoint.size
        )));
    }
    Ok(VerifiedReceipt {
        index: parsed.index,
        checkpoint,
        signed_checkpoint: parsed.signed_checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::hash::node_hash;
    use crate::audit::keys::Signer;
    use crate::audit::note;

    fn two_leaf_receipt(signer: &Signer) -> (String, Vec<u8>) {
        let (a, b) = (b"first".to_vec(), b"second".to_vec());
        let root = node_hash(&leaf_hash(&a), &leaf_hash(&b));
        let cp = Checkpoint {
            origin: signer.name().to_owned(),
            size: 2,
            root,
        };
        let p = TlogProof {
            extra: None,
            index: 1,
            hashes: vec![leaf_hash(&a)],
            signed_checkpoint: note::sign(&cp.body(), std::slice::from_ref(signer)).unwrap(),
        };
        (p.format(), b)
    }

    #[test]
    fn receipt_verifies_and_tampering_fails() {
        let signer = Signer::generate("example.org/log").unwrap();
        let (text, entry) = two_leaf_receipt(&signer);
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 1\n"));
        let v = verify_receipt(&text, &entry, &signer.verifier_key()).unwrap();
        assert_eq!((v.index, v.checkpoint.size), (1, 2));
        assert!(verify_receipt(&text, b"secone", &signer.verifier_key()).is_err());
        let wrong_index = text.replace("index 1", "index 0");
        assert!(verify_receipt(&wrong_index, &entry, &signer.verifier_key()).is_err());
        let other = Signer::generate("example.org/log").unwrap();
        assert!(verify_receipt(&text, &entry, &other.verifier_key()).is_err());
    }

    #[test]
    fn parse_round_trips_with_extra() {
        let signer = Signer::generate("example.org/log").unwrap();
        let (text, _) = two_leaf_receipt(&signer);
        let mut p = TlogProof::parse(&text).unwrap();
        assert_eq!(p.format(), text);
        p.extra = Some(b"x".to_vec());
        assert_eq!(TlogProof::parse(&p.format()).unwrap(), p);
    }
}
