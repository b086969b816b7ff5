//! Subject pseudonyms: the gateway replaces a subject number by an HMAC-SHA-256 under its own
//! secret key as soon as the number is validated, so that no clear number is stored or logged.
//!
//! `pseudonym = HMAC-SHA-256(key, "ketenpoort/subject/v1" ‖ 0x00 ‖ the 11 canonical digits)`.
//! The domain label keeps these MACs apart from any other use of the key, and the version lets a
//! future scheme coexist. The same number always gives the same pseudonym under one key, which
//! is what lets the reference directory and the subject report find a person again.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

use super::subject::SubjectNumber;
use crate::secret_file;

/// The domain-separation label of subject pseudonyms.
pub const SUBJECT_PSEUDONYM_DOMAIN: &[u8] = b"ketenpoort/subject/v1";

/// The length of a subject key in bytes.
pub const SUBJECT_KEY_LEN: usize = 32;

/// How many hex characters the short display form shows: 48 bits, enough to tell subjects apart
/// in logs and demos, never used to look anything up.
const SHORT_HEX_LEN: usize = 12;

/// Errors loading or creating the subject key, or parsing a pseudonym.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PseudonymError {
    /// The key file could not be read or written (including a mode other than 0600).
    #[error("subject key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The key file does not hold exactly 32 bytes.
    #[error("subject key file {path} holds {len} bytes, expected {SUBJECT_KEY_LEN}")]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// How many bytes it holds.
        len: usize,
    },
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A pseudonym in hex is not 64 hex digits.
    #[error("a subject pseudonym is 64 hex digits")]
    Hex,
}

/// The gateway's secret key for subject pseudonyms. `Debug` never shows the key.
pub struct SubjectKey {
    key: hmac::Key,
}

impl SubjectKey {
    /// Loads the key from `path`, or creates a fresh random key there (mode 0600) when no file
    /// exists yet.
    pub fn load_or_create(path: &Path) -> Result<Self, PseudonymError> {
        let io_err = |source| PseudonymError::Io {
            path: path.to_owned(),
            source,
        };
        match secret_file::read(path) {
            Ok(bytes) => Self::from_file_bytes(path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let bytes = random_key()?;
                match secret_file::write_new(path, &bytes) {
                    Ok(()) => Ok(Self::from_bytes(&bytes)),
                    // Another process created it between our read and write: use theirs, so
                    // that both agree on every pseudonym.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let bytes = secret_file::read(path).map_err(io_err)?;
                        Self::from_file_bytes(path, &bytes)
                    }
                    Err(e) => Err(io_err(e)),
                }
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// A fresh random key that lives only in memory (tests, benchmarks).
    pub fn generate() -> Result<Self, PseudonymError> {
        Ok(Self::from_bytes(&random_key()?))
    }

    /// A key from raw bytes (tests, and keys held elsewhere).
    pub fn from_bytes(bytes: &[u8; SUBJECT_KEY_LEN]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    fn from_file_bytes(path: &Path, bytes: &[u8]) -> Result<Self, PseudonymError> {
        let bytes: &[u8; SUBJECT_KEY_LEN] =
            bytes.try_into().map_err(|_| PseudonymError::KeyLength {
                path: path.to_owned(),
                len: bytes.len(),
            })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The pseudonym of a subject number under this key.
    pub fn pseudonymise(&self, subject: &SubjectNumber) -> SubjectPseudonym {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(SUBJECT_PSEUDONYM_DOMAIN);
        ctx.update(&[0]);
        ctx.update(subject.expose_digits().as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        SubjectPseudonym(out)
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey([redacted])")
    }
}

fn random_key() -> Result<[u8; SUBJECT_KEY_LEN], PseudonymError> {
    let mut bytes = [0u8; SUBJECT_KEY_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PseudonymError::Random)?;
    Ok(bytes)
}

/// A subject's pseudonym: 32 bytes of HMAC-SHA-256. `Display` gives the short form `psn:<12 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectPseudonym(pub [u8; 32]);

impl SubjectPseudonym {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The full pseudonym as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Self, PseudonymError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| PseudonymError::Hex)?;
        Ok(Self(out))
    }

    /// The short form for logs and people: `psn:` and the first 12 hex digits.
    pub fn short(&self) -> String {
        format!("psn:{}", &self.to_hex()[..SHORT_HEX_LEN])
    }
}

impl From<[u8; 32]> for SubjectPseudonym {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for SubjectPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Debug for SubjectPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectPseudonym({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn subject(s: &str) -> SubjectNumber {
        SubjectNumber::parse(s).unwrap()
    }

    #[test]
    fn pseudonym_is_the_documented_hmac() {
        let key = [7u8; 32];
        let p = SubjectKey::from_bytes(&key).pseudonymise(&subject("85.07.30-033.28"));
        let mut msg = b"ketenpoort/subject/v1".to_vec();
        msg.push(0);
        msg.extend_from_slice(b"85073003328");
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &msg);
        assert_eq!(p.as_bytes().as_slice(), expected.as_ref());
    }

    #[test]
    fn separators_do_not_change_the_pseudonym_but_the_key_does() {
        let k1 = SubjectKey::generate().unwrap();
        let k2 = SubjectKey::generate().unwrap();
        let a = k1.pseudonymise(&subject("85.07.30-033.28"));
        let b = k1.pseudonymise(&subject("85073003328"));
        assert_eq!(a, b);
        assert_ne!(a, k2.pseudonymise(&subject("85073003328")));
        assert_ne!(a, k1.pseudonymise(&subject("17073003384")));
    }

    #[test]
    fn hex_round_trip_and_short_form() {
        let p = SubjectPseudonym([0xab; 32]);
        assert_eq!(p.to_hex().len(), 64);
        assert_eq!(SubjectPseudonym::from_hex(&p.to_hex()).unwrap(), p);
        assert_eq!(
            SubjectPseudonym::from_hex(&p.to_hex().to_uppercase()).unwrap(),
            p
        );
        assert_eq!(p.to_string(), "psn:abababababab");
        assert_eq!(format!("{p:?}"), "SubjectPseudonym(psn:abababababab)");
        assert!(SubjectPseudonym::from_hex("abab").is_err());
        assert!(SubjectPseudonym::from_hex(&"zz".repeat(32)).is_err());
        assert!(SubjectPseudonym::from_hex(&"ab".repeat(33)).is_err());
    }

    #[test]
    fn key_is_created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/subject.key");
        let n = subject("85073003328");
        let first = SubjectKey::load_or_create(&path).unwrap().pseudonymise(&n);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap().len(), SUBJECT_KEY_LEN);
        let again = SubjectKey::load_or_create(&path).unwrap().pseudonymise(&n);
        assert_eq!(first, again);
    }

    #[test]
    fn bad_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        secret_file::write_new(&short, &[1u8; 16]).unwrap();
        assert!(matches!(
            SubjectKey::load_or_create(&short),
            Err(PseudonymError::KeyLength { len: 16, .. })
        ));
        let open = dir.path().join("open.key");
        secret_file::write_new(&open, &[1u8; 32]).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SubjectKey::load_or_create(&open),
            Err(PseudonymError::Io { .. })
        ));
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = SubjectKey::from_bytes(&[0x42; 32]);
        assert_eq!(format!("{key:?}"), "SubjectKey([redacted])");
    }
}
