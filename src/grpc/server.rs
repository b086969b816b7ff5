//! Server assembly: the four Ketenpoort services behind the authenticator, plus health and
//! reflection, served over the mutual-TLS acceptor until the shutdown signal fires.
//!
//! Every service decodes at most [`MAX_REQUEST_BYTES`] per request message, and prost decodes
//! at most [`crate::grpc::limits::MAX_DECODING_DEPTH`] levels deep (docs/wire-limits.md). The
//! Ketenpoort services refuse anything beyond with INVALID_ARGUMENT; health and reflection keep
//! tonic's answer (OUT_OF_RANGE), as stock gRPC tools expect.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::exchange::Gateway;
use crate::grpc::auth::Authenticator;
use crate::grpc::edge::Edge;
use crate::grpc::limits::MAX_REQUEST_BYTES;
use crate::grpc::services::Services;
use crate::grpc::tls;
use crate::proto::v1 as pb;

/// How often the health reporter looks at the audit log.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);
/// How long in-flight calls may take to finish after the shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often expired tickets and payloads past retention are removed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The reflection service could not read a descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The listener could not be set up.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The names under which health is reported: the overall server ("") and each service.
const HEALTH_NAMES: [&str; 5] = [
    "",
    "ketenpoort.v1.Exchange",
    "ketenpoort.v1.Grounds",
    "ketenpoort.v1.Audit",
    "ketenpoort.v1.Policies",
];

async fn report_health(reporter: &HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// Keeps health in step with the audit log: NOT_SERVING while it refuses appends, because then
/// nothing can be released.
async fn watch_log(reporter: HealthReporter, gateway: Gateway) {
    let mut last = None;
    let mut ticker = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        ticker.tick().await;
        let status = if gateway.log().is_accepting() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if status == ServingStatus::NotServing {
                tracing::error!("audit log refuses appends; reporting NOT_SERVING");
            }
            report_health(&reporter, status).await;
            last = Some(status);
        }
    }
}

/// Removes expired tickets and payloads past retention, for as long as the server runs.
async fn sweep(gateway: Gateway) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        ticker.tick().await;
        match gateway.sweep_expired().await {
            Ok(report) if report != Default::default() => {
                tracing::info!(?report, "retention sweep");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "retention sweep failed"),
        }
    }
}

/// Everything the server needs besides the socket.
#[derive(Debug, Clone)]
pub struct ServerSetup {
    /// The use cases.
    pub gateway: Gateway,
    /// Party authentication and rate limits.
    pub authenticator: Authenticator,
    /// The mutual-TLS configuration.
    pub tls: Arc<rustls::ServerConfig>,
    /// Counts of refused TLS handshakes, by reason.
    pub handshakes: Arc<tls::HandshakeStats>,
}

/// A Ketenpoort service behind the authenticator, with tonic's framing refusals said as
/// INVALID_ARGUMENT.
fn guarded<S>(service: S, auth: &Authenticator) -> InterceptedService<Edge<S>, Authenticator> {
    InterceptedService::new(Edge::new(service), auth.clone())
}

/// Binds `address` and returns the listener and its actual address (useful with port 0).
pub async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight calls.
pub async fn serve(
    setup: ServerSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    report_health(&reporter, ServingStatus::Serving).await;
    let health_task = tokio::spawn(watch_log(reporter, setup.gateway.clone()));
    let sweep_task = tokio::spawn(sweep(setup.gateway.clone()));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let health = health.max_decoding_message_size(MAX_REQUEST_BYTES);

    let services = Services::new(setup.gateway.clone());
    let auth = setup.authenticator.clone();
    let incoming = tls::incoming(listener, setup.tls.clone(), setup.handshakes.clone());
    // Graceful drain with a limit: a client holding a stream open (a health Watch, a long
    // GetResult wait) must not keep the process alive after Ctrl-C.
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = drain_tx.send(());
    };
    let server = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(guarded(
            pb::exchange_server::ExchangeServer::new(services.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            &auth,
        ))
        .add_service(guarded(
            pb::grounds_server::GroundsServer::new(services.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            &auth,
        ))
        .add_service(guarded(
            pb::audit_server::AuditServer::new(services.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            &auth,
        ))
        .add_service(guarded(
            pb::policies_server::PoliciesServer::new(services)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            &auth,
        ))
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    let drain_deadline = async move {
        if drain_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = &mut server => result,
        () = drain_deadline => {
            tracing::warn!("calls still open after the drain period; closing them");
            Ok(())
        }
    };
    health_task.abort();
    sweep_task.abort();
    result.map_err(ServeError::from)
}
