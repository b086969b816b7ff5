//! The secret key behind release pseudonyms.

use std::fmt;

use ring::hmac;

/// The HMAC-SHA-256 key for `pseudonym` releases; never printed.
pub struct ReleaseKey(hmac::Key);

impl ReleaseKey {
    /// Makes a key from 32 secret bytes.
    pub fn new(secret: &[u8; 32]) -> ReleaseKey {
        ReleaseKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The domain-separated pseudonym of `value` for one agreement, recipient and field, in hex.
    pub fn pseudonym(&self, agreement: &str, recipient: &str, field: &str, value: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(b"ketenpoort/release-pseudonym/v1");
        for part in [
            agreement.as_bytes(),
            recipient.as_bytes(),
            field.as_bytes(),
            value,
        ] {
            ctx.update(&[0]);
            ctx.update(part);
        }
        hex::encode(ctx.sign().as_ref())
    }
}

impl fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReleaseKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonym_matches_the_format_doc_construction() {
        let key = ReleaseKey::new(&[7; 32]);
        let got = key.pseudonym("a", "r", "f", b"v");
        let k = hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]);
        let want = hmac::sign(&k, b"ketenpoort/release-pseudonym/v1\0a\0r\0f\0v");
        assert_eq!(got, hex::encode(want.as_ref()));
        assert_ne!(got, key.pseudonym("a", "other", "f", b"v"));
        assert_ne!(got, key.pseudonym("b", "r", "f", b"v"));
        assert_eq!(format!("{key:?}"), "ReleaseKey(..)");
    }
}
