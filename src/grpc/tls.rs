//! The mutual-TLS acceptor: a rustls server configuration that requires a client certificate from
//! our CA, and an accept loop that runs handshakes concurrently with a deadline.
//!
//! We build rustls ourselves instead of using tonic's `ServerTlsConfig` so that a slow or silent client
//! cannot hold up the accept loop, and so that revocation lists can be added to the verifier later.
//! tonic's `Connected` impl for `tokio_rustls::server::TlsStream` keeps `Request::peer_certs()` working.
//! Under TLS, each connection writes through [`Coalescing`], which sends the answers of one group
//! commit together.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
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

/// Accepts TCP connections on `listener` and yields those whose TLS handshake succeeds in time.
///
/// Handshakes run in their own tasks so one slow client never blocks another. Failed handshakes
/// (wrong CA, no certificate, timeout) are dropped and logged at debug level only: they are the
/// client's problem and must not fill the operator's log. The accept loop ends when the returned
/// stream is dropped.
pub fn incoming(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Incoming {
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
            tokio::spawn(async move {
                let _permit = permit;
                handshake(acceptor, tcp, peer, tx).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<Result<TlsStream<Coalescing<TcpStream>>, io::Error>>,
) {
    // Small gRPC frames: Nagle's algorithm would only add latency.
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(Coalescing::new(tcp))).await {
        Ok(Ok(mut stream)) => {
            // The answers of one group commit go out together from now on.
            stream.get_mut().0.gather();
            // The receiver is gone only when the server shuts down.
            let _ = tx.send(Ok(stream)).await;
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}
