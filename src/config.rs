//! `ketenpoort.toml`: where the gateway listens, keeps its data and finds its policies and certificates.
//!
//! Every key is optional; a missing file means all defaults, which suit a local development run.
//! Unknown keys are rejected so that a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What went wrong, with line and column.
        source: Box<toml::de::Error>,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address to listen on.
    pub address: SocketAddr,
    /// The data directory: audit log and state in `audit/`, keys in `keys/`, dev PKI in `pki/`.
    pub data_dir: PathBuf,
    /// The policy directory.
    pub policies: PathBuf,
    /// PEM paths of the server identity and the client CA; a dev PKI is made when absent.
    pub tls: Option<TlsConfig>,
    /// The audit log.
    pub audit: AuditSettings,
    /// Per-party rate limits.
    pub limits: Limits,
    /// Lifetimes of tickets and payloads.
    pub exchange: ExchangeSettings,
}

/// PEM file locations for production certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// CA that issues the parties' client certificates.
    pub client_ca: PathBuf,
}

/// Audit log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The log's origin line in checkpoints, and its signing key name.
    pub origin: String,
    /// Most appends in one group commit (a lookup's two entries are one append).
    pub batch_max: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    pub batch_delay_ms: u64,
    /// sled's page cache, in MiB (sled holds the checkpoints and the gateway's state: references,
    /// tickets, signals, cases, consents). sled's resident memory runs to several times this, so
    /// a smaller cache leaves more room under the memory target; a larger one serves more of a
    /// large state from memory.
    pub cache_mib: u32,
}

/// Per-party rate limits (token bucket).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Sustained requests per second per party.
    pub requests_per_second: u32,
    /// Burst size per party.
    pub burst: u32,
}

/// Lifetimes in the exchange flows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeSettings {
    /// Days a request ticket stays pending before it expires.
    pub ticket_ttl_days: u32,
    /// Days a released payload is kept when the decision sets no retention obligation.
    pub default_retention_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./var"),
            policies: PathBuf::from("./policies"),
            tls: None,
            audit: AuditSettings::default(),
            limits: Limits::default(),
            exchange: ExchangeSettings::default(),
        }
    }
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            origin: "ketenpoort.local/audit".to_owned(),
            batch_max: 512,
            batch_delay_ms: 1,
            cache_mib: 8,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_second: 2_000,
            burst: 4_000,
        }
    }
}

impl Default for ExchangeSettings {
    fn default() -> Self {
        Self {
            ticket_ttl_days: 14,
            default_retention_days: 30,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file gives the defaults only when `must_exist` is false.
    pub fn load(path: &Path, must_exist: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Parses the TOML text of a configuration.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Directory of the audit log (and the operational state it carries).
    pub fn audit_dir(&self) -> PathBuf {
        self.data_dir.join("audit")
    }

    /// The payload key file: one key per pending payload, destroyed when the payload is purged.
    /// In the data directory beside the state it unlocks, not among the long-lived keys of
    /// `keys/`, whose backups are kept for as long as the log.
    pub fn payload_keys_path(&self) -> PathBuf {
        self.data_dir.join("payload.keys")
    }

    /// Directory of the key files.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// Directory of the development PKI made when no TLS paths are configured.
    pub fn dev_pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("").expect("empty config parses");
        assert_eq!(config.address.to_string(), "127.0.0.1:50051");
        assert_eq!(config.data_dir, PathBuf::from("./var"));
        assert!(config.tls.is_none());
    }

    #[test]
    fn unknown_key_is_rejected() {
        let error = Config::parse("adress = \"127.0.0.1:1\"").expect_err("typo rejected");
        assert!(error.to_string().contains("adress"));
    }

    #[test]
    fn sections_override_defaults() {
        let config = Config::parse(
            "address = \"127.0.0.1:0\"\n[tls]\ncert = \"s.pem\"\nkey = \"s.key\"\nclient_ca = \"ca.pem\"\n[limits]\nrequests_per_second = 5\n",
        )
        .expect("parses");
        assert_eq!(config.limits.requests_per_second, 5);
        assert_eq!(config.limits.burst, 4_000);
        assert_eq!(config.tls.expect("tls").client_ca, PathBuf::from("ca.pem"));
        assert_eq!(config.audit.cache_mib, 8);
        let config = Config::parse("[audit]\ncache_mib = 64\n").expect("parses");
        assert_eq!(config.audit.cache_mib, 64);
        assert_eq!(config.audit.batch_max, 512);
    }

    #[test]
    fn missing_file_is_default_unless_required() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("none.toml");
        assert!(Config::load(&path, false).is_ok());
        assert!(Config::load(&path, true).is_err());
    }
}
