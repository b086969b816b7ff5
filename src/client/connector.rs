//! A connector for many parties: the gateway's address and the dev PKI directory, handing out a
//! mutual-TLS channel per party. What the demo and multi-party tests need in one value.

use std::path::{Path, PathBuf};

use tonic::transport::Channel;

use super::tls::{ClientError, ClientTls, connect, connect_lazy};

/// The gateway's address and where the parties' identities are.
#[derive(Debug, Clone)]
pub struct Connector {
    address: String,
    pki_dir: PathBuf,
    server_name: Option<String>,
}

impl Connector {
    /// A connector for the gateway at `address` (`https://host:port`) and the dev PKI in `pki_dir`.
    pub fn new(address: impl Into<String>, pki_dir: impl Into<PathBuf>) -> Self {
        Self {
            address: address.into(),
            pki_dir: pki_dir.into(),
            server_name: None,
        }
    }

    /// Checks the server certificate for `name` instead of the host of the address.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The gateway's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The dev PKI directory.
    pub fn pki_dir(&self) -> &Path {
        &self.pki_dir
    }

    /// The client identity of `party`.
    pub fn identity(&self, party: &str) -> Result<ClientTls, ClientError> {
        let tls = ClientTls::from_pki_dir(&self.pki_dir, party)?;
        Ok(match &self.server_name {
            Some(name) => tls.with_server_name(name.clone()),
            None => tls,
        })
    }

    /// A channel authenticated as `party`, connected now.
    pub async fn channel(&self, party: &str) -> Result<Channel, ClientError> {
        connect(&self.address, &self.identity(party)?).await
    }

    /// A channel authenticated as `party` that connects on first use.
    pub fn channel_lazy(&self, party: &str) -> Result<Channel, ClientError> {
        connect_lazy(&self.address, &self.identity(party)?)
    }
}
