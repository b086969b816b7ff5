//! One real mutual-TLS gRPC client per party, each presenting that party's own certificate from the
//! development PKI, with the actor metadata stamped on every call.

use std::collections::HashMap;
use std::path::PathBuf;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::client::{ACTOR_METADATA, ClientTls, TRACE_METADATA, connect};
use crate::proto::v1 as pb;

use super::DemoError;
use super::cast::actor;

/// Stamps the staff member and a trace id on every call of one party's client.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    actor: MetadataValue<Ascii>,
    trace: MetadataValue<Ascii>,
}

impl Interceptor for Stamp {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert(ACTOR_METADATA, self.actor.clone());
        metadata.insert(TRACE_METADATA, self.trace.clone());
        Ok(request)
    }
}

/// A channel of one party, with its stamp.
pub(crate) type Stamped = InterceptedService<Channel, Stamp>;

/// The parties' connections to the gateway, opened on first use.
#[derive(Debug)]
pub(crate) struct Wire {
    address: String,
    pki: PathBuf,
    channels: HashMap<String, Channel>,
}

impl Wire {
    /// Connections to the gateway at `address`, with the parties' identities in the dev PKI `pki`.
    pub fn new(address: String, pki: PathBuf) -> Wire {
        Wire {
            address,
            pki,
            channels: HashMap::new(),
        }
    }

    /// The party's channel, stamped with its actor; connects (mutual TLS handshake) on first use.
    async fn stamped(&mut self, party: &str) -> Result<Stamped, DemoError> {
        let channel = match self.channels.get(party) {
            Some(channel) => channel.clone(),
            None => {
                // The dev server certificate names `localhost`.
                let tls = ClientTls::from_pki_dir(&self.pki, party)?.with_server_name("localhost");
                let channel = connect(&self.address, &tls).await?;
                self.channels.insert(party.to_owned(), channel.clone());
                channel
            }
        };
        let ascii = |text: String| {
            text.parse::<MetadataValue<Ascii>>()
                .map_err(|_| DemoError::unexpected("metadata", "ASCII metadata", text))
        };
        let stamp = Stamp {
            actor: ascii(actor(party).to_owned())?,
            trace: ascii(format!("demo-{party}"))?,
        };
        Ok(InterceptedService::new(channel, stamp))
    }

    /// The Exchange service as `party`.
    pub async fn exchange(
        &mut self,
        party: &str,
    ) -> Result<pb::exchange_client::ExchangeClient<Stamped>, DemoError> {
        Ok(pb::exchange_client::ExchangeClient::new(
            self.stamped(party).await?,
        ))
    }

    /// The Grounds service as `party`.
    pub async fn grounds(
        &mut self,
        party: &str,
    ) -> Result<pb::grounds_client::GroundsClient<Stamped>, DemoError> {
        Ok(pb::grounds_client::GroundsClient::new(
            self.stamped(party).await?,
        ))
    }

    /// The Audit service as `party`.
    pub async fn audit(
        &mut self,
        party: &str,
    ) -> Result<pb::audit_client::AuditClient<Stamped>, DemoError> {
        Ok(pb::audit_client::AuditClient::new(
            self.stamped(party).await?,
        ))
    }

    /// How many parties connected.
    pub fn parties_connected(&self) -> usize {
        self.channels.len()
    }
}
