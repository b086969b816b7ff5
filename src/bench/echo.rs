//! The baseline: a bare tonic echo server behind exactly the gateway's mutual-TLS acceptor
//! ([`crate::grpc::tls`]), so the benchmark's ratio measures the gateway's own work (authentication,
//! policy decision, audit append) and not a difference in TLS setup.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::grpc::tls;

/// The generated code of `ketenpoort.bench.v1` (kept out of the product's reflection descriptors).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("ketenpoort.bench.v1");
}

/// The echo service: answers with the request's payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoService;

#[tonic::async_trait]
impl pb::echo_server::Echo for EchoService {
    async fn echo(
        &self,
        request: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        Ok(Response::new(pb::EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

/// Serves the echo service on `listener` with the mutual-TLS configuration `tls_config` until
/// `shutdown` completes.
pub async fn serve_echo(
    listener: TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_service(pb::echo_server::EchoServer::new(EchoService))
        .serve_with_incoming_shutdown(
            tls::incoming(listener, tls_config, Arc::default()),
            shutdown,
        )
        .await
}
