//! C2SP signed notes: a text ending in a newline, an empty line, then one line per signature,
//! `— <key name> <base64(key id[4] ‖ signature)>`.
//!
//! Opening a note follows Go's `note.Open`: signatures by unknown keys are ignored, a bad
//! signature by a known key is an error, and at least one known key must have signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::error::AuditError;
use super::keys::{Signer, Verifier};

/// The signature-line prefix: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// At most this many signature lines are read, as in Go.
const MAX_SIGNATURES: usize = 100;

/// Signs `text` (which must end in a newline) with every signer, in order.
pub fn sign(text: &str, signers: &[Signer]) -> Result<String, AuditError> {
    check_text(text)?;
    let mut out = String::with_capacity(text.len() + 1 + signers.len() * 110);
    out.push_str(text);
    out.push('\n');
    for signer in signers {
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&signer.key_id().to_be_bytes());
        blob.extend_from_slice(&signer.sign(text.as_bytes()));
        out.push_str(SIG_PREFIX);
        out.push_str(signer.name());
        out.push(' ');
        out.push_str(&B64.encode(blob));
        out.push('\n');
    }
    Ok(out)
}

/// A note whose signature by at least one pinned key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The signed text.
    pub text: String,
    /// Names and key ids of the pinned keys whose signatures verified.
    pub verified_by: Vec<(String, u32)>,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature<'a> {
    /// The key name.
    pub name: &'a str,
    /// The key id.
    pub key_id: u32,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// Splits a signed note into its text and its signature lines, checking the format only.
pub fn split(msg: &str) -> Result<(&str, Vec<NoteSignature<'_>>), AuditError> {
    let bad = |why: &str| AuditError::BadNote(why.to_owned());
    if !msg.ends_with('\n') {
        return Err(bad("a signed note ends in a newline"));
    }
    let split_at = msg
        .rfind("\n\n")
        .ok_or_else(|| bad("a signed note has an empty line before its signatures"))?;
    let text = &msg[..split_at + 1];
    check_text(text)?;
    let mut sigs = Vec::new();
    for line in msg[split_at + 2..].split_terminator('\n') {
        if sigs.len() == MAX_SIGNATURES {
            return Err(bad("too many signatures"));
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| bad("a signature line starts with an em dash and a space"))?;
        let (name, blob64) = rest
            .split_once(' ')
            .ok_or_else(|| bad("a signature line is '— <name> <signature>'"))?;
        if name.is_empty() || name.contains('+') || blob64.contains(' ') {
            return Err(bad("malformed signature line"));
        }
        let blob = B64
            .decode(blob64)
            .map_err(|_| bad("signature is not base64"))?;
        if blob.len() < 5 {
            return Err(bad("signature too short"));
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        sigs.push(NoteSignature {
            name,
            key_id: id,
            signature: blob[4..].to_vec(),
        });
    }
    if sigs.is_empty() {
        return Err(bad("a signed note has at least one signature"));
    }
    Ok((text, sigs))
}

/// Verifies a signed note against pinned keys; unknown keys' signatures are ignored.
pub fn open(msg: &str, verifiers: &[Verifier]) -> Result<OpenedNote, AuditError> {
    let (text, sigs) = split(msg)?;
    let mut verified_by: Vec<(String, u32)> = Vec::new();
    for NoteSignature {
        name,
        key_id: id,
        signature: sig,
    } in sigs
    {
        let Some(v) = verifiers
            .iter()
            .find(|v| v.name() == name && v.key_id() == id)
        else {
            continue;
        };
        if !v.verify(text.as_bytes(), &sig) {
            return Err(AuditError::BadNote(format!(
                "invalid signature by key {name}+{id:08x}"
            )));
        }
        if !verified_by.iter().any(|(n, i)| n == name && *i == id) {
            verified_by.push((name.to_owned(), id));
        }
    }
    if verified_by.is_empty() {
        return Err(AuditError::BadNote(
            "no signature by a pinned key".to_owned(),
        ));
    }
    Ok(OpenedNote {
        text: text.to_owned(),
        verified_by,
    })
}

/// A note text is non-empty, ends in a newline and has no control characters but newlines.
fn check_text(text: &str) -> Result<(), AuditError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(AuditError::BadNote(
            "note text must end in a newline".into(),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AuditError::BadNote(
            "note text has control characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Go's note_test.go TestSign / TestOpen vector.
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const SIGNED: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n\
                          \n\
                          \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn signs_the_go_vector_byte_for_byte() {
        let signer = Signer::from_private_key(SKEY).unwrap();
        assert_eq!(sign(TEXT, &[signer]).unwrap(), SIGNED);
    }

    #[test]
    fn opens_the_go_vector_and_refuses_tampering() {
        let v = Verifier::parse(VKEY).unwrap();
        let opened = open(SIGNED, std::slice::from_ref(&v)).unwrap();
        assert_eq!(opened.text, TEXT);
        assert_eq!(
            opened.verified_by,
            vec![("PeterNeumann".to_owned(), 0xc74f20a3)]
        );
        let tampered = SIGNED.replace("cryptography", "cryptographY");
        assert!(open(&tampered, std::slice::from_ref(&v)).is_err());
    }

    #[test]
    fn unknown_keys_are_ignored_but_a_pinned_key_is_required() {
        let peter = Signer::from_private_key(SKEY).unwrap();
        let other = Signer::generate("Other").unwrap();
        let both = sign(TEXT, &[other.clone(), peter.clone()]).unwrap();
        assert!(open(&both, &[peter.verifier()]).is_ok());
        assert!(open(&both, &[other.verifier()]).is_ok());
        let only_other = sign(TEXT, &[other]).unwrap();
        let err = open(&only_other, &[peter.verifier()]).unwrap_err();
        assert!(err.to_string().contains("no signature by a pinned key"));
    }
}
