//! Reading and writing the PKI's files. Nothing is ever overwritten: a certificate or key that
//! exists stays, and the caller decides (`pki init --force`) to remove it first.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use super::{PemPair, PkiError};
use crate::secret_file;

/// Wraps an I/O error with the path it happened on.
pub(super) fn io_at(path: &Path) -> impl Fn(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a private key with mode 0600, never over an existing file.
pub(super) fn write_secret(path: &Path, pem: &str) -> Result<(), PkiError> {
    secret_file::write_new(path, pem.as_bytes()).map_err(io_at(path))
}

/// Writes a certificate, never over an existing file.
pub(super) fn write_public(path: &Path, pem: &str) -> Result<(), PkiError> {
    let write = || -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()
    };
    write().map_err(io_at(path))
}

/// Reads a certificate and its private key (which must be mode 0600).
pub(super) fn read_pair(cert_path: &Path, key_path: &Path) -> Result<PemPair, PkiError> {
    let cert_pem = std::fs::read_to_string(cert_path).map_err(io_at(cert_path))?;
    let key = secret_file::read(key_path).map_err(io_at(key_path))?;
    let key_pem = String::from_utf8(key).map_err(|_| PkiError::Io {
        path: key_path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, "key file is not PEM text"),
    })?;
    Ok(PemPair { cert_pem, key_pem })
}

/// Removes a file; one that is already gone is fine.
pub(super) fn remove_if_present(path: &Path) -> Result<(), PkiError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_never_overwritten_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.pem");
        write_public(&path, "one").unwrap();
        assert!(matches!(
            write_public(&path, "two"),
            Err(PkiError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");
        remove_if_present(&path).unwrap();
        remove_if_present(&path).unwrap();
        assert!(!path.exists());
    }
}
