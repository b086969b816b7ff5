//! Ed25519 signer and verifier keys in the C2SP signed-note encoding (the one Go's
//! `golang.org/x/mod/sumdb/note` uses):
//! - verifier key `<name>+<hex key id>+<base64(0x01 ‖ public key)>`;
//! - signer key `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>`, our key-file format;
//! - key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)\[:4\].

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::error::AuditError;

/// The signed-note algorithm byte for Ed25519.
const ALG_ED25519: u8 = 0x01;

/// A checkpoint signing key: an Ed25519 key pair with its note name.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: u32,
    seed: Arc<[u8; 32]>,
    pair: Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed.
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish()
    }
}

impl Signer {
    /// Generates a fresh key named `name` (for a log, the name is its origin).
    pub fn generate(name: &str) -> Result<Signer, AuditError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| AuditError::BadKey("the system random source failed".into()))?;
        Signer::from_seed(name, seed)
    }

    /// Builds a signer from a raw 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Signer, AuditError> {
        check_name(name)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| AuditError::BadKey(format!("ed25519 seed rejected: {e}")))?;
        let key_id = key_id(name, pair.public_key().as_ref());
        Ok(Signer {
            name: name.to_owned(),
            key_id,
            seed: Arc::new(seed),
            pair: Arc::new(pair),
        })
    }

    /// Parses Go's private-key form `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
    pub fn from_private_key(text: &str) -> Result<Signer, AuditError> {
        let rest = text
            .trim_end()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| AuditError::BadKey("a signer key starts with PRIVATE+KEY+".into()))?;
        let (name, id, key) = split_key(rest)?;
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(AuditError::BadKey("not an Ed25519 signer key".into()));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&key[1..]);
        let signer = Signer::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(AuditError::BadKey("key id does not match the key".into()));
        }
        Ok(signer)
    }

    /// The key in Go's private-key form; what the key file holds.
    pub fn private_key(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.seed.as_ref());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            B64.encode(key)
        )
    }

    /// Loads the key at `path`, or creates it (mode 0600) if there is none yet.
    pub fn load_or_create(path: &Path, name: &str) -> Result<Signer, AuditError> {
        let io_err = |source| AuditError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            let bytes = crate::secret_file::read(path).map_err(io_err)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| AuditError::BadKey(format!("{} is not text", path.display())))?;
            let signer = Signer::from_private_key(&text)?;
            if signer.name != name {
                return Err(AuditError::BadKey(format!(
                    "{} is a key for {:?}, not for {name:?}",
                    path.display(),
                    signer.name
                )));
            }
            return Ok(signer);
        }
        let signer = Signer::generate(name)?;
        crate::secret_file::write_new(path, format!("{}\n", signer.private_key()).as_bytes())
            .map_err(io_err)?;
        Ok(signer)
    }

    /// The key name (the log origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id, as a big-endian number.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key in note format, to publish and pin.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_string()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            public,
        }
    }

    /// Signs `msg` (the note text).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(msg).as_ref());
        sig
    }
}

/// A pinned Ed25519 verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    public: [u8; 32],
}

impl Verifier {
    /// Parses a verifier key `<name>+<hex id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(text: &str) -> Result<Verifier, AuditError> {
        let (name, id, key) = split_key(text.trim())?;
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(AuditError::BadKey("not an Ed25519 verifier key".into()));
        }
        if key_id(name, &key[1..]) != id {
            return Err(AuditError::BadKey("key id does not match the key".into()));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&key[1..]);
        Ok(Verifier {
            name: name.to_owned(),
            key_id: id,
            public,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id, as a big-endian number.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Whether `sig` is this key's signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(msg, sig)
            .is_ok()
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(&self.public);
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, B64.encode(key))
    }
}

/// The file of the current signing key in the keys directory (`<data-dir>/keys/`).
pub const CURRENT_KEY_FILE: &str = "audit.key";
/// The file of the previous signing key during a rotation overlap.
pub const PREVIOUS_KEY_FILE: &str = "audit.previous.key";
/// The public verifier keys of retired signing keys, one per line, so that checkpoints they
/// signed keep verifying.
pub const RETIRED_VKEYS_FILE: &str = "audit.retired.vkeys";

/// Loads the log's signers from `keys_dir`: the current key (created on first use) and, during a
/// rotation overlap, the previous one, which then co-signs every checkpoint.
pub fn load_signers(keys_dir: &Path, origin: &str) -> Result<Vec<Signer>, AuditError> {
    let mut signers = vec![Signer::load_or_create(
        &keys_dir.join(CURRENT_KEY_FILE),
        origin,
    )?];
    let previous = keys_dir.join(PREVIOUS_KEY_FILE);
    if previous.exists() {
        signers.push(Signer::load_or_create(&previous, origin)?);
    }
    Ok(signers)
}

/// Reads the existing signing keys in `keys_dir` without creating any: current first.
pub fn read_signers(keys_dir: &Path) -> Result<Vec<Signer>, AuditError> {
    let mut signers = Vec::new();
    for file in [CURRENT_KEY_FILE, PREVIOUS_KEY_FILE] {
        let path = keys_dir.join(file);
        if !path.exists() {
            continue;
        }
        let bytes = crate::secret_file::read(&path).map_err(|source| AuditError::KeyFile {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| AuditError::BadKey(format!("{} is not text", path.display())))?;
        signers.push(Signer::from_private_key(&text)?);
    }
    Ok(signers)
}

/// Starts a key rotation: the current key becomes the previous one and a new current key is
/// created. Fails if a previous key is still present (retire it first). Returns the new signer.
pub fn rotate(keys_dir: &Path) -> Result<Signer, AuditError> {
    let current = keys_dir.join(CURRENT_KEY_FILE);
    let previous = keys_dir.join(PREVIOUS_KEY_FILE);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuditError::KeyFile { path, source }
    };
    if previous.exists() {
        return Err(AuditError::Config(format!(
            "{} still exists: retire the previous key before rotating again",
            previous.display()
        )));
    }
    let old = read_signers(keys_dir)?
        .into_iter()
        .next()
        .ok_or_else(|| AuditError::Config(format!("no key at {}", current.display())))?;
    let new = Signer::generate(old.name())?;
    let staged = keys_dir.join("audit.next.key");
    if staged.exists() {
        std::fs::remove_file(&staged).map_err(io_err(&staged))?;
    }
    crate::secret_file::write_new(&staged, format!("{}\n", new.private_key()).as_bytes())
        .map_err(io_err(&staged))?;
    std::fs::rename(&current, &previous).map_err(io_err(&previous))?;
    std::fs::rename(&staged, &current).map_err(io_err(&current))?;
    Ok(new)
}

/// Every verifier key the log's checkpoints may carry: current, previous, then retired ones.
pub fn known_verifiers(keys_dir: &Path) -> Result<Vec<Verifier>, AuditError> {
    let mut verifiers: Vec<Verifier> = read_signers(keys_dir)?
        .iter()
        .map(Signer::verifier)
        .collect();
    let retired = keys_dir.join(RETIRED_VKEYS_FILE);
    if retired.exists() {
        let text = std::fs::read_to_string(&retired).map_err(|source| AuditError::KeyFile {
            path: retired.clone(),
            source,
        })?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            verifiers.push(Verifier::parse(line)?);
        }
    }
    Ok(verifiers)
}

/// Ends a rotation overlap: deletes the previous key, so checkpoints are signed by the new key
/// only, and records its verifier key in the retired list.
pub fn retire_previous(keys_dir: &Path) -> Result<Option<Verifier>, AuditError> {
    let previous = keys_dir.join(PREVIOUS_KEY_FILE);
    if !previous.exists() {
        return Ok(None);
    }
    let signers = read_signers(keys_dir)?;
    let retired = signers.last().map(Signer::verifier);
    if let Some(v) = &retired {
        let path = keys_dir.join(RETIRED_VKEYS_FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                use std::io::Write;
                writeln!(f, "{v}")?;
                f.sync_all()
            })
            .map_err(|source| AuditError::KeyFile {
                path: path.clone(),
                source,
            })?;
    }
    std::fs::remove_file(&previous).map_err(|source| AuditError::KeyFile {
        path: previous.clone(),
        source,
    })?;
    Ok(retired)
}

/// The note key id: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
pub fn key_id(name: &str, public: &[u8]) -> u32 {
    let mut ctx = Context::new(&SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ALG_ED25519]);
    ctx.update(public);
    let d = ctx.finish();
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Key names are non-empty and contain no '+' and no whitespace (signed-note §Keys).
pub(crate) fn check_name(name: &str) -> Result<(), AuditError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(AuditError::BadKey(format!(
            "key name {name:?} must be non-empty, without '+' or spaces"
        )));
    }
    Ok(())
}

/// Splits `<name>+<8 hex digits>+<base64>` into its parts.
fn split_key(text: &str) -> Result<(&str, u32, Vec<u8>), AuditError> {
    let bad = || AuditError::BadKey("expected <name>+<hex id>+<base64 key>".into());
    let (name, rest) = text.split_once('+').ok_or_else(bad)?;
    let (id_hex, key64) = rest.split_once('+').ok_or_else(bad)?;
    check_name(name)?;
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad())?;
    let key = B64.decode(key64).map_err(|_| bad())?;
    Ok((name, id, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key of Go's sumdb/note documentation and note_test.go.
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    #[test]
    fn go_example_key_round_trips() {
        let signer = Signer::from_private_key(SKEY).unwrap();
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.verifier_key(), VKEY);
        assert_eq!(signer.private_key(), SKEY);
        assert_eq!(Verifier::parse(VKEY).unwrap(), signer.verifier());
    }

    #[test]
    fn mangled_keys_are_refused() {
        assert!(
            Verifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .is_err()
        );
        assert!(
            Verifier::parse("PeterNeumann+c74f20a3+AXpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .is_err()
        );
        assert!(
            Verifier::parse("Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .is_err()
        );
        assert!(Verifier::parse(&VKEY[..VKEY.len() - 1]).is_err());
        assert!(Signer::from_private_key(VKEY).is_err());
    }

    #[test]
    fn rotation_keeps_the_old_key_as_previous_until_retired() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_signers(dir.path(), "example.org/log").unwrap();
        assert_eq!(first.len(), 1);
        let new = rotate(dir.path()).unwrap();
        let both = load_signers(dir.path(), "example.org/log").unwrap();
        assert_eq!(both[0].verifier_key(), new.verifier_key());
        assert_eq!(both[1].verifier_key(), first[0].verifier_key());
        assert!(rotate(dir.path()).is_err());
        let retired = retire_previous(dir.path()).unwrap().unwrap();
        assert_eq!(retired, first[0].verifier());
        let known = known_verifiers(dir.path()).unwrap();
        assert_eq!(known, vec![new.verifier(), first[0].verifier()]);
        assert_eq!(
            load_signers(dir.path(), "example.org/log").unwrap().len(),
            1
        );
    }

    #[test]
    fn key_file_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let a = Signer::load_or_create(&path, "example.org/log").unwrap();
        let b = Signer::load_or_create(&path, "example.org/log").unwrap();
        assert_eq!(a.verifier_key(), b.verifier_key());
        assert!(Signer::load_or_create(&path, "other.org/log").is_err());
        let sig = a.sign(b"hello\n");
        assert!(b.verifier().verify(b"hello\n", &sig));
        assert!(!b.verifier().verify(b"hellO\n", &sig));
    }
}
