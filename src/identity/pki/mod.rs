//! The development PKI: a CA, a server certificate for the gateway and one client certificate per
//! party, all made with rcgen (ring) at run time and never committed.
//!
//! Layout under the PKI directory:
//! ```text
//! ca.pem  ca.key                  the dev CA (the gateway's client CA and the clients' server root)
//! server.pem  server.key          the gateway: SAN DNS localhost (+ extra names), IP 127.0.0.1
//! parties/<id>.pem  <id>.key      a party: SAN URI urn:ketenpoort:party:<id>, CN <id>
//! ```
//! Keys are ECDSA P-256 in PKCS#8 PEM, written with mode 0600 by [`crate::secret_file`].
//! Production does not use this module: it takes PEM paths from `ketenpoort.toml`.

mod files;
mod params;

pub use params::CertificateFlaw;

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};

use self::files::{io_at, read_pair, remove_if_present, write_public, write_secret};
use self::params::{DEV_CA_COMMON_NAME, UNRELATED_CA_COMMON_NAME};
use super::party::is_valid_party_id;
use crate::secret_file;

/// Errors making, reading or writing the dev PKI.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// `init` found an existing PKI and was not told to replace it.
    #[error("{dir} already holds (part of) a PKI; remove it first (pki init --force)")]
    AlreadyExists {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// A party id is not `[a-z0-9][a-z0-9-]*`.
    #[error("{id:?} is not a valid party id ([a-z0-9][a-z0-9-]*, at most 64 characters)")]
    InvalidPartyId {
        /// The offending id (party ids are not personal data).
        id: String,
    },
    /// The same party id was given twice.
    #[error("party id {id:?} is listed twice")]
    DuplicatePartyId {
        /// The duplicated id.
        id: String,
    },
    /// rcgen could not make a key or certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM text holds no usable certificate.
    #[error("{what} holds no PEM certificate")]
    Pem {
        /// The file, or which certificate in memory.
        what: String,
    },
    /// `ca.pem` is not the dev CA, or `ca.key` does not belong to it.
    #[error("{dir}: ca.pem is not a Ketenpoort dev CA matching ca.key")]
    CaMismatch {
        /// The PKI directory.
        dir: PathBuf,
    },
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct PemPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM. Secret: write it only with `secret_file::write_new`.
    pub key_pem: String,
}

impl PemPair {
    /// The certificate as DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|_| PkiError::Pem {
            what: "the certificate PEM text".to_owned(),
        })
    }
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// A CA that has nothing to do with the dev PKI and a client certificate it signed, claiming a
/// party: a gateway must refuse it (the "wrong CA" test).
#[derive(Debug, Clone)]
pub struct UnrelatedIdentity {
    /// The unrelated CA's certificate, PEM.
    pub ca_cert_pem: String,
    /// The client certificate and key, signed by the unrelated CA.
    pub client: PemPair,
}

/// A development PKI on disk: its directory, CA certificate and CA key (to issue more).
pub struct DevPki {
    dir: PathBuf,
    ca_cert_pem: String,
    ca_key: KeyPair,
    /// The CA's name, key usages and key-id method: all an rcgen `Issuer` needs. They are
    /// rebuilt deterministically by `params::ca`, which is why `open` checks the CA's name.
    ca_params: CertificateParams,
}

impl std::fmt::Debug for DevPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPki")
            .field("dir", &self.dir)
            .field("ca_key", &"[redacted]")
            .finish()
    }
}

impl DevPki {
    /// Makes a new PKI in `dir`: the CA, the server certificate (`localhost`, `127.0.0.1` and
    /// `server_dns_names`) and a client certificate for every party. Refuses to touch a
    /// directory that already holds a PKI; see [`DevPki::remove`].
    pub fn init<P: AsRef<str>, N: AsRef<str>>(
        dir: &Path,
        party_ids: &[P],
        server_dns_names: &[N],
    ) -> Result<Self, PkiError> {
        let mut seen = std::collections::BTreeSet::new();
        for id in party_ids.iter().map(AsRef::as_ref) {
            check_party_id(id)?;
            if !seen.insert(id) {
                return Err(PkiError::DuplicatePartyId { id: id.to_owned() });
            }
        }
        // Check every file up front, so that a refusal leaves nothing half-made behind.
        let mut party_files = party_ids.iter().flat_map(|id| {
            let parties = dir.join("parties");
            [
                parties.join(format!("{}.pem", id.as_ref())),
                parties.join(format!("{}.key", id.as_ref())),
            ]
        });
        if Self::exists(dir) || party_files.any(|path| path.exists()) {
            return Err(PkiError::AlreadyExists {
                dir: dir.to_owned(),
            });
        }
        let ca_key = KeyPair::generate()?;
        let ca_params = params::ca(DEV_CA_COMMON_NAME);
        let ca_cert_pem = ca_params.self_signed(&ca_key)?.pem();
        // The key first: if writing it fails, no CA certificate without its key is left behind.
        write_secret(&dir.join("ca.key"), &ca_key.serialize_pem())?;
        write_public(&dir.join("ca.pem"), &ca_cert_pem)?;
        let pki = Self {
            dir: dir.to_owned(),
            ca_cert_pem,
            ca_key,
            ca_params,
        };
        let server = pki.issue_server(server_dns_names)?;
        write_secret(&pki.server_key_path(), &server.key_pem)?;
        write_public(&pki.server_cert_path(), &server.cert_pem)?;
        for id in party_ids {
            pki.write_client(id.as_ref())?;
        }
        Ok(pki)
    }

    /// Opens an existing PKI to read its files or issue more certificates.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let ca_path = dir.join("ca.pem");
        let ca_cert_pem = std::fs::read_to_string(&ca_path).map_err(io_at(&ca_path))?;
        let key_path = dir.join("ca.key");
        let key_bytes = secret_file::read(&key_path).map_err(io_at(&key_path))?;
        let mismatch = || PkiError::CaMismatch {
            dir: dir.to_owned(),
        };
        let key_pem = String::from_utf8(key_bytes).map_err(|_| mismatch())?;
        let ca_key = KeyPair::from_pem(&key_pem).map_err(|_| mismatch())?;
        let ca_der =
            CertificateDer::from_pem_slice(ca_cert_pem.as_bytes()).map_err(|_| PkiError::Pem {
                what: ca_path.display().to_string(),
            })?;
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).map_err(|_| mismatch())?;
        let is_dev_ca = ca_cert
            .subject()
            .iter_common_name()
            .any(|cn| cn.as_str() == Ok(DEV_CA_COMMON_NAME));
        let key_matches =
            ca_cert.public_key().subject_public_key.data.as_ref() == ca_key.public_key_raw();
        if !is_dev_ca || !key_matches || !ca_cert.is_ca() {
            return Err(mismatch());
        }
        Ok(Self {
            dir: dir.to_owned(),
            ca_cert_pem,
            ca_key,
            ca_params: params::ca(DEV_CA_COMMON_NAME),
        })
    }

    /// Whether `dir` already holds (part of) a PKI: the CA or the server certificate.
    pub fn exists(dir: &Path) -> bool {
        ["ca.pem", "ca.key", "server.pem", "server.key"]
            .iter()
            .any(|name| dir.join(name).exists())
    }

    /// Removes the files of a PKI from `dir`: the CA, the server and every `parties/*.pem|key`.
    /// Other files are left alone, so a mistyped `--dir` cannot wipe an unrelated directory.
    pub fn remove(dir: &Path) -> Result<(), PkiError> {
        for name in ["ca.pem", "ca.key", "server.pem", "server.key"] {
            remove_if_present(&dir.join(name))?;
        }
        let parties = dir.join("parties");
        let entries = match std::fs::read_dir(&parties) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(&parties)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io_at(&parties))?.path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("pem" | "key")
            ) {
                remove_if_present(&path)?;
            }
        }
        // Only an empty directory goes: if anything else is left in it, it was not ours, and
        // failing to remove the directory is then the right outcome, not an error.
        let _ = std::fs::remove_dir(&parties);
        Ok(())
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM: the root clients trust and the gateway's client CA.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The CA certificate, DER.
    pub fn ca_cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        CertificateDer::from_pem_slice(self.ca_cert_pem.as_bytes()).map_err(|_| PkiError::Pem {
            what: self.ca_cert_path().display().to_string(),
        })
    }

    /// `<dir>/ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `<dir>/server.pem`.
    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// `<dir>/server.key`.
    pub fn server_key_path(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// `<dir>/parties/<id>.pem`.
    pub fn party_cert_path(&self, party_id: &str) -> PathBuf {
        self.dir.join("parties").join(format!("{party_id}.pem"))
    }

    /// `<dir>/parties/<id>.key`.
    pub fn party_key_path(&self, party_id: &str) -> PathBuf {
        self.dir.join("parties").join(format!("{party_id}.key"))
    }

    /// The gateway's server certificate and key, read from disk.
    pub fn server(&self) -> Result<PemPair, PkiError> {
        read_pair(&self.server_cert_path(), &self.server_key_path())
    }

    /// A party's client certificate and key, read from disk.
    pub fn party(&self, party_id: &str) -> Result<PemPair, PkiError> {
        check_party_id(party_id)?;
        read_pair(
            &self.party_cert_path(party_id),
            &self.party_key_path(party_id),
        )
    }

    /// Issues a client certificate for `party_id`, signed by the dev CA, in memory only. Any
    /// syntactically valid id works, including one no policy knows (the "unknown party" test).
    pub fn issue_client(&self, party_id: &str) -> Result<PemPair, PkiError> {
        check_party_id(party_id)?;
        self.sign(params::client(party_id)?)
    }

    /// Issues a client certificate for `party_id` with one `flaw` the gateway must refuse at the
    /// TLS handshake, in memory only: what a misconfigured or stale client would present.
    pub fn issue_flawed_client(
        &self,
        party_id: &str,
        flaw: CertificateFlaw,
    ) -> Result<PemPair, PkiError> {
        check_party_id(party_id)?;
        self.sign(params::flawed_client(party_id, flaw)?)
    }

    /// Issues a server certificate for `localhost`, `127.0.0.1` and `extra_names` (DNS names or
    /// IP addresses), in memory only.
    pub fn issue_server<N: AsRef<str>>(&self, extra_names: &[N]) -> Result<PemPair, PkiError> {
        self.sign(params::server(extra_names)?)
    }

    /// Issues a client certificate for `party_id` and writes it to `parties/<id>.pem|key`;
    /// refuses to overwrite an existing one.
    pub fn write_client(&self, party_id: &str) -> Result<PemPair, PkiError> {
        let pair = self.issue_client(party_id)?;
        write_secret(&self.party_key_path(party_id), &pair.key_pem)?;
        write_public(&self.party_cert_path(party_id), &pair.cert_pem)?;
        Ok(pair)
    }

    /// Signs `params` with a fresh key under the dev CA.
    fn sign(&self, params: CertificateParams) -> Result<PemPair, PkiError> {
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh CA unrelated to any dev PKI, and a client certificate from it that claims
/// `party_id`: what an impostor would present.
pub fn unrelated_client(party_id: &str) -> Result<UnrelatedIdentity, PkiError> {
    check_party_id(party_id)?;
    let ca_key = KeyPair::generate()?;
    let ca_params = params::ca(UNRELATED_CA_COMMON_NAME);
    let ca_cert_pem = ca_params.self_signed(&ca_key)?.pem();
    let key = KeyPair::generate()?;
    let cert =
        params::client(party_id)?.signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))?;
    Ok(UnrelatedIdentity {
        ca_cert_pem,
        client: PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    })
}

/// Refuses an id that is not party-id syntax before anything is made or written.
fn check_party_id(id: &str) -> Result<(), PkiError> {
    if is_valid_party_id(id) {
        Ok(())
    } else {
        Err(PkiError::InvalidPartyId { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::peer::party_id_from_cert_der;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::extensions::GeneralName;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_the_layout_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::init(dir.path(), &["pz-gent", "ocmw-gent"], &["gw.example"]).unwrap();
        for name in [
            "ca.pem",
            "server.pem",
            "parties/pz-gent.pem",
            "parties/ocmw-gent.pem",
        ] {
            assert!(dir.path().join(name).is_file(), "{name}");
        }
        for name in [
            "ca.key",
            "server.key",
            "parties/pz-gent.key",
            "parties/ocmw-gent.key",
        ] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
        let pz = pki.party("pz-gent").unwrap();
        assert_eq!(
            party_id_from_cert_der(pz.cert_der().unwrap().as_ref()).unwrap(),
            "pz-gent"
        );
        assert!(pz.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{pz:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn certificates_carry_the_agreed_names_and_usages() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::init(dir.path(), &["pz-gent"], &["gw.example"]).unwrap();

        let server_der = pki.server().unwrap().cert_der().unwrap();
        let (_, server) = X509Certificate::from_der(&server_der).unwrap();
        let san = server.subject_alternative_name().unwrap().unwrap();
        let names = &san.value.general_names;
        assert!(names.contains(&GeneralName::DNSName("localhost")));
        assert!(names.contains(&GeneralName::DNSName("gw.example")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        let eku = server.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);

        let client_der = pki.party("pz-gent").unwrap().cert_der().unwrap();
        let (_, client) = X509Certificate::from_der(&client_der).unwrap();
        let eku = client.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let cn: Vec<_> = client
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cn, ["pz-gent"]);
        assert!(!client.is_ca());
        assert!(
            X509Certificate::from_der(&pki.ca_cert_der().unwrap())
                .unwrap()
                .1
                .is_ca()
        );
    }

    #[test]
    fn init_refuses_an_existing_pki_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevPki::init(dir.path(), &["pz-gent"], &[] as &[&str]).unwrap();
        std::fs::write(dir.path().join("README"), "keep me").unwrap();
        assert!(matches!(
            DevPki::init(dir.path(), &["pz-gent"], &[] as &[&str]),
            Err(PkiError::AlreadyExists { .. })
        ));
        DevPki::remove(dir.path()).unwrap();
        assert!(!DevPki::exists(dir.path()));
        assert!(!dir.path().join("parties").exists());
        assert!(
            dir.path().join("README").exists(),
            "remove only takes PKI files"
        );
        let second = DevPki::init(dir.path(), &["coc"], &[] as &[&str]).unwrap();
        assert_ne!(first.ca_cert_pem(), second.ca_cert_pem());
        assert!(second.party("coc").is_ok());
        assert!(second.party("pz-gent").is_err());
    }

    #[test]
    fn leftovers_of_an_old_pki_make_init_refuse_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        secret_file::write_new(&dir.path().join("parties/coc.key"), b"old").unwrap();
        assert!(matches!(
            DevPki::init(dir.path(), &["pz-gent", "coc"], &[] as &[&str]),
            Err(PkiError::AlreadyExists { .. })
        ));
        assert!(!dir.path().join("ca.key").exists());
        std::fs::write(dir.path().join("server.pem"), "old").unwrap();
        assert!(DevPki::exists(dir.path()));
        DevPki::remove(dir.path()).unwrap();
        assert!(!dir.path().join("parties").exists());
        assert!(DevPki::init(dir.path(), &["pz-gent", "coc"], &[] as &[&str]).is_ok());
    }

    #[test]
    fn bad_or_duplicate_party_ids_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            DevPki::init(dir.path(), &["pz-gent", "PZ Gent"], &[] as &[&str]),
            Err(PkiError::InvalidPartyId { .. })
        ));
        assert!(matches!(
            DevPki::init(dir.path(), &["pz-gent", "pz-gent"], &[] as &[&str]),
            Err(PkiError::DuplicatePartyId { .. })
        ));
        assert!(!DevPki::exists(dir.path()));
    }

    #[test]
    fn opened_pki_issues_more_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let made = DevPki::init(dir.path(), &["pz-gent"], &[] as &[&str]).unwrap();
        let opened = DevPki::open(dir.path()).unwrap();
        assert_eq!(made.ca_cert_pem(), opened.ca_cert_pem());
        let coc = opened.write_client("coc").unwrap();
        assert_eq!(mode(&opened.party_key_path("coc")), 0o600);
        // Same issuer name bytes as the CA's subject, so chains build.
        let ca_der = opened.ca_cert_der().unwrap();
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        let coc_der = coc.cert_der().unwrap();
        let (_, leaf) = X509Certificate::from_der(&coc_der).unwrap();
        assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
        assert!(matches!(
            opened.write_client("pz-gent"),
            Err(PkiError::Io { .. })
        ));
    }

    #[test]
    fn open_refuses_a_foreign_ca_or_a_mismatched_key() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        DevPki::init(a.path(), &["pz-gent"], &[] as &[&str]).unwrap();
        DevPki::init(b.path(), &["pz-gent"], &[] as &[&str]).unwrap();
        std::fs::copy(b.path().join("ca.pem"), a.path().join("ca.pem")).unwrap();
        assert!(matches!(
            DevPki::open(a.path()),
            Err(PkiError::CaMismatch { .. })
        ));
        let c = tempfile::tempdir().unwrap();
        let other = unrelated_client("pz-gent").unwrap();
        std::fs::write(c.path().join("ca.pem"), &other.ca_cert_pem).unwrap();
        secret_file::write_new(&c.path().join("ca.key"), other.client.key_pem.as_bytes()).unwrap();
        assert!(matches!(
            DevPki::open(c.path()),
            Err(PkiError::CaMismatch { .. })
        ));
    }
}
