//! A party's mutual-TLS client identity and the tonic channel built on it.
//!
//! tonic's own client TLS (feature `tls-ring`) is used: it picks rustls' ring provider, sets ALPN
//! `h2` and checks the server certificate against our CA only (no system roots), which is exactly
//! what a Ketenpoort client needs. The server name defaults to the host of the address, so
//! `https://127.0.0.1:50051` checks the IP SAN of the dev server certificate and
//! `https://localhost:50051` its DNS SAN.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::secret_file;

/// How long establishing the TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the TLS handshake may take once connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client identity could not be read or a channel not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A PEM file could not be read (a key file must also be mode 0600).
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A file that should hold PEM text does not.
    #[error("{path} is not PEM text")]
    NotPem {
        /// The file.
        path: PathBuf,
    },
    /// The address is not a valid `https://host:port` URI.
    #[error("invalid gateway address {address:?}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// Why it was refused.
        reason: String,
    },
    /// The TCP connection or TLS handshake failed.
    #[error("cannot connect to {address}")]
    Connect {
        /// The address.
        address: String,
        /// What went wrong, with its causes.
        #[source]
        source: tonic::transport::Error,
    },
}

/// The PEM material a party presents to the gateway: its certificate and key, and the CA that must
/// have issued the gateway's server certificate.
#[derive(Clone)]
pub struct ClientTls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// An identity from PEM text already in memory (tests, the demo, `DevPki::issue_client`).
    pub fn from_pem(
        ca_pem: impl Into<String>,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            server_name: None,
        }
    }

    /// An identity from PEM files; the key file must be readable by its owner only.
    pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> Result<Self, ClientError> {
        let key_bytes = secret_file::read(key).map_err(|source| ClientError::Read {
            path: key.to_owned(),
            source,
        })?;
        let key_pem = String::from_utf8(key_bytes).map_err(|_| ClientError::NotPem {
            path: key.to_owned(),
        })?;
        Ok(Self::from_pem(read_text(ca)?, read_text(cert)?, key_pem))
    }

    /// The identity of `party` in a dev PKI directory made by `ketenpoort pki init`:
    /// `ca.pem`, `parties/<party>.pem` and `parties/<party>.key`. The CA key is not needed.
    pub fn from_pki_dir(dir: &Path, party: &str) -> Result<Self, ClientError> {
        let (cert, key) = party_paths(dir, party);
        Self::from_files(&cert, &key, &dir.join("ca.pem"))
    }

    /// Checks the server certificate for `name` instead of the host of the address.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The tonic TLS configuration: our CA as the only root, our certificate as client identity.
    pub fn tls_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.server_name {
            Some(name) => config.domain_name(name.clone()),
            None => config,
        }
    }
}

/// Where `ketenpoort pki init` puts a party's certificate and key under `dir`.
pub fn party_paths(dir: &Path, party: &str) -> (PathBuf, PathBuf) {
    let parties = dir.join("parties");
    (
        parties.join(format!("{party}.pem")),
        parties.join(format!("{party}.key")),
    )
}

fn read_text(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|source| ClientError::Read {
        path: path.to_owned(),
        source,
    })
}

/// An endpoint for `address` (`https://host:port`, or `host:port` which means the same) with
/// mutual TLS, timeouts and `TCP_NODELAY`.
pub fn endpoint(address: &str, tls: &ClientTls) -> Result<Endpoint, ClientError> {
    let bad = |reason: String| ClientError::Address {
        address: address.to_owned(),
        reason,
    };
    let uri = if address.starts_with("https://") {
        address.to_owned()
    } else if address.contains("://") {
        return Err(bad(
            "the gateway speaks only mutual TLS: use https://".into()
        ));
    } else {
        format!("https://{address}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|e| bad(e.to_string()))?;
    endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .tls_config(tls.tls_config())
        .map_err(|e| bad(e.to_string()))
}

/// The URI of the gateway at `address`: `https://` is added to a bare `host:port`; any other
/// scheme is refused, the gateway speaks only mutual TLS.
pub fn gateway_uri(address: &str) -> Result<String, ClientError> {
    if address.starts_with("https://") {
        Ok(address.to_owned())
    } else if address.contains("://") {
        Err(ClientError::Address {
            address: address.to_owned(),
            reason: "the gateway speaks only mutual TLS: use https://".into(),
        })
    } else {
        Ok(format!("https://{address}"))
    }
}

/// Connects now: fails at once if the gateway is unreachable or the handshake is refused.
pub async fn connect(address: &str, tls: &ClientTls) -> Result<Channel, ClientError> {
    endpoint(address, tls)?
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            address: address.to_owned(),
            source,
        })
}

/// A channel that connects on first use (and reconnects after failures).
pub fn connect_lazy(address: &str, tls: &ClientTls) -> Result<Channel, ClientError> {
    Ok(endpoint(address, tls)?.connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DevPki;

    #[test]
    fn reads_a_party_from_a_dev_pki_and_redacts_the_key() {
        let dir = tempfile::tempdir().unwrap();
        DevPki::init(dir.path(), &["pz-gent"], &[] as &[&str]).unwrap();
        let tls = ClientTls::from_pki_dir(dir.path(), "pz-gent").unwrap();
        assert!(tls.key_pem.contains("PRIVATE KEY"));
        assert!(tls.ca_pem.contains("CERTIFICATE"));
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn unknown_party_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        DevPki::init(dir.path(), &["pz-gent"], &[] as &[&str]).unwrap();
        let error = ClientTls::from_pki_dir(dir.path(), "coc").unwrap_err();
        assert!(error.to_string().contains("coc.key"), "{error}");
    }

    #[test]
    fn plain_http_is_refused_and_a_bare_address_means_https() {
        let tls = ClientTls::from_pem("ca", "cert", "key");
        let error = endpoint("http://127.0.0.1:50051", &tls).unwrap_err();
        assert!(matches!(error, ClientError::Address { .. }));
        assert_eq!(
            gateway_uri("127.0.0.1:50051").unwrap(),
            "https://127.0.0.1:50051"
        );
        assert_eq!(
            gateway_uri("https://localhost:1").unwrap(),
            "https://localhost:1"
        );
    }
}
