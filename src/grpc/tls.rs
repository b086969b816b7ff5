//! The mutual-TLS acceptor: a rustls server configuration that requires a client certificate from
//! our CA, and an accept loop that runs handshakes concurrently with a deadline.
//!
//! We build rustls ourselves instead of using tonic's `ServerTlsConfig` so that a slow or silent client
//! cannot hold up the accept loop, and so that revocation lists can be added to the verifier later.
//! tonic's `Connected` impl for `tokio_rustls::server::TlsStream` keeps `Request::peer_certs()` working.
//! Under TLS, each connection writes through [`Coalescing`], which sends the answers of one group
//! commit together.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::coalesce::Coalescing;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in flight at once; more connections wait in the kernel's accept queue.
const MAX_CONCURRENT_HANDSHAKES: usize = 256;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read PEM file {path}: {source}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM file holds no certificate.
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    /// rustls refused the configuration (bad key, bad CA).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built from the CA.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// PEM file locations of the server's identity and the CA that issues client certificates.
#[derive(Debug, Clone)]
pub struct TlsPaths<'a> {
    /// The server certificate chain (leaf first).
    pub cert: &'a Path,
    /// The server's private key.
    pub key: &'a Path,
    /// The CA whose client certificates are accepted.
    pub client_ca: &'a Path,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            path: path.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

/// Builds the server configuration: TLS 1.2/1.3 with the ring provider, client certificates required
/// and verified against `client_ca`, ALPN `h2` only.
pub fn server_config(paths: &TlsPaths<'_>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(paths.cert)?;
    let key = PrivateKeyDer::from_pem_file(paths.key).map_err(|source| TlsError::Pem {
        path: paths.key.display().to_string(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(paths.client_ca)? {
        roots.add(ca)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A stream of established mutual-TLS connections, for `serve_with_incoming_shutdown`.
pub type Incoming = ReceiverStream<Result<TlsStream<Coalescing<TcpStream>>, io::Error>>;

/// Why the gateway refused a TLS handshake. A refused client never reaches gRPC, so it sees no
/// status: its TLS library reports the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeRefusal {
    /// The client presented no certificate.
    NoCertificate,
    /// The certificate is not issued by the client CA.
    UnknownIssuer,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The certificate is not for client authentication (extended key usage).
    NotForClientAuth,
    /// The certificate was refused for another reason (bad signature, bad encoding, revoked).
    BadCertificate,
    /// The handshake broke off or did not follow the protocol (no TLS, wrong ALPN, reset).
    Protocol,
    /// The handshake did not finish within [`HANDSHAKE_TIMEOUT`].
    Timeout,
}

impl HandshakeRefusal {
    /// Every reason, in the order of [`HandshakeStats::counts`].
    pub const ALL: [HandshakeRefusal; 8] = [
        HandshakeRefusal::NoCertificate,
        HandshakeRefusal::UnknownIssuer,
        HandshakeRefusal::Expired,
        HandshakeRefusal::NotYetValid,
        HandshakeRefusal::NotForClientAuth,
        HandshakeRefusal::BadCertificate,
        HandshakeRefusal::Protocol,
        HandshakeRefusal::Timeout,
    ];

    /// The reason as logged: a stable snake_case word.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeRefusal::NoCertificate => "no_certificate",
            HandshakeRefusal::UnknownIssuer => "unknown_issuer",
            HandshakeRefusal::Expired => "expired",
            HandshakeRefusal::NotYetValid => "not_yet_valid",
            HandshakeRefusal::NotForClientAuth => "not_for_client_auth",
            HandshakeRefusal::BadCertificate => "bad_certificate",
            HandshakeRefusal::Protocol => "protocol",
            HandshakeRefusal::Timeout => "timeout",
        }
    }

    /// Classifies a failed `accept`: rustls' error travels inside the I/O error.
    fn of(error: &io::Error) -> HandshakeRefusal {
        use rustls::CertificateError as C;
        let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return HandshakeRefusal::Protocol;
        };
        match tls {
            rustls::Error::NoCertificatesPresented => HandshakeRefusal::NoCertificate,
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer => HandshakeRefusal::UnknownIssuer,
                C::Expired | C::ExpiredContext { .. } => HandshakeRefusal::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => HandshakeRefusal::NotYetValid,
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    HandshakeRefusal::NotForClientAuth
                }
                _ => HandshakeRefusal::BadCertificate,
            },
            _ => HandshakeRefusal::Protocol,
        }
    }
}

/// Counts of refused handshakes by reason, since the server started.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    refused: [AtomicU64; HandshakeRefusal::ALL.len()],
}

impl HandshakeStats {
    /// Counts one refusal and returns the new total over all reasons.
    fn count(&self, refusal: HandshakeRefusal) -> u64 {
        let slot = HandshakeRefusal::ALL
            .iter()
            .position(|r| *r == refusal)
            .unwrap_or(HandshakeRefusal::ALL.len() - 1);
        self.refused[slot].fetch_add(1, Ordering::Relaxed);
        self.total()
    }

    /// How many handshakes were refused for `refusal`.
    pub fn refused(&self, refusal: HandshakeRefusal) -> u64 {
        HandshakeRefusal::ALL
            .iter()
            .position(|r| *r == refusal)
            .map_or(0, |slot| self.refused[slot].load(Ordering::Relaxed))
    }

    /// Every reason with its count, in the order of [`HandshakeRefusal::ALL`].
    pub fn counts(&self) -> Vec<(HandshakeRefusal, u64)> {
        HandshakeRefusal::ALL
            .iter()
            .map(|r| (*r, self.refused(*r)))
            .collect()
    }

    /// All refused handshakes.
    pub fn total(&self) -> u64 {
        self.refused.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Accepts TCP connections on `listener` and yields those whose TLS handshake succeeds in time.
///
/// Handshakes run in their own tasks so one slow client never blocks another. A refused
/// handshake (no certificate, another CA, expired or not yet valid, not for client auth, a
/// timeout, a protocol error) is dropped, counted in `stats`, and logged at info level with its
/// reason and the peer's address only: a certificate's names are not logged. The accept loop
/// ends when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    stats: Arc<HandshakeStats>,
) -> Incoming {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(refusal) = handshake(acceptor, tcp, tx).await {
                    let refused_total = stats.count(refusal);
                    tracing::info!(
                        %peer,
                        reason = refusal.as_str(),
                        refused_total,
                        "TLS handshake refused"
                    );
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    tx: mpsc::Sender<Result<TlsStream<Coalescing<TcpStream>>, io::Error>>,
) -> Result<(), HandshakeRefusal> {
    // Small gRPC frames: Nagle's algorithm would only add latency.
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(Coalescing::new(tcp))).await {
        Ok(Ok(mut stream)) => {
            // The answers of one group commit go out together from now on.
            stream.get_mut().0.gather();
            // The receiver is gone only when the server shuts down.
            let _ = tx.send(Ok(stream)).await;
            Ok(())
        }
        Ok(Err(error)) => Err(HandshakeRefusal::of(&error)),
        Err(_) => Err(HandshakeRefusal::Timeout),
    }
}
