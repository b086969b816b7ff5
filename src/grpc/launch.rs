//! Opening everything a gateway needs from a [`Config`]: policies, keys, the audit log, the TLS
//! identity (a development PKI on first start when none is configured) and the server setup.
//!
//! `ketenpoort serve`, the black-box tests and the demo all start the gateway through here, so
//! they run the same code as production.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use crate::audit::consulted::ConsultedKey;
use crate::audit::{AuditConfig, AuditError, AuditLog, keys};
use crate::config::Config;
use crate::exchange::{Clock, ExchangeError, Gateway, Settings};
use crate::grpc::auth::Authenticator;
use crate::grpc::server::ServerSetup;
use crate::grpc::tls::{self, TlsError, TlsPaths};
use crate::identity::{DevPki, PkiError, PseudonymError, SubjectKey};
use crate::policy::PolicySet;
use crate::release::ReleaseKey;
use crate::store::{PayloadKeyError, PayloadKeys};

/// Why the gateway could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The policy set does not load; run `ketenpoort policy check` for the full report.
    #[error("the policies in {dir} do not load ({problems}); run `ketenpoort policy check {dir}`")]
    Policy {
        /// The policy directory.
        dir: String,
        /// A one-line summary.
        problems: String,
    },
    /// The policy load could not be recorded in the audit log, so the set was not put in force.
    #[error("cannot record the policy load in the audit log: {0}")]
    PolicyRecord(#[source] ExchangeError),
    /// The indexes over the gateway's records could not be rebuilt.
    #[error("cannot rebuild the indexes over the stored records: {0}")]
    Indexes(#[source] ExchangeError),
    /// A key file could not be read or created.
    #[error("key file {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The subject key could not be read or created.
    #[error(transparent)]
    SubjectKey(#[from] PseudonymError),
    /// The payload key file could not be opened or created.
    #[error(transparent)]
    PayloadKeys(#[from] PayloadKeyError),
    /// The audit log could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// The development PKI could not be made or opened.
    #[error("development PKI: {0}")]
    Pki(#[from] PkiError),
    /// The TLS configuration is not usable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A gateway ready to serve, and where its certificates are.
#[derive(Debug)]
pub struct Prepared {
    /// What the server needs.
    pub setup: ServerSetup,
    /// The development PKI, when no TLS paths were configured.
    pub dev_pki: Option<PathBuf>,
    /// Whether this start created the development PKI.
    pub created_pki: bool,
}

/// Length of the release-pseudonym key and of the consulted-holder key.
const SECRET_KEY_LEN: usize = 32;

/// Loads the 32 secret bytes at `path`, creating them (mode 0600) on first start.
fn secret_key(path: &Path) -> Result<[u8; SECRET_KEY_LEN], LaunchError> {
    let key_err = |source| LaunchError::Key {
        path: path.to_owned(),
        source,
    };
    let bytes = match crate::secret_file::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut fresh = [0u8; SECRET_KEY_LEN];
            SystemRandom::new()
                .fill(&mut fresh)
                .map_err(|_| key_err(io::Error::other("system random source failed")))?;
            crate::secret_file::write_new(path, &fresh).map_err(key_err)?;
            fresh.to_vec()
        }
        Err(e) => return Err(key_err(e)),
    };
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| key_err(io::Error::other("the key file must hold exactly 32 bytes")))
}

/// Opens policies, keys, audit log and TLS for `config`. Needs a tokio runtime (the audit log's
/// writer task). `clock` is injected so that tests can pin time.
pub fn prepare(config: &Config, clock: Clock) -> Result<Prepared, LaunchError> {
    let policy = Arc::new(load_policies(&config.policies)?);
    let keys = config.keys_dir();
    std::fs::create_dir_all(&keys).map_err(|source| LaunchError::Key {
        path: keys.clone(),
        source,
    })?;
    // The current key, plus the previous one during a rotation overlap (it co-signs checkpoints).
    let signers = keys::load_signers(&keys, &config.audit.origin)?;
    let subjects = SubjectKey::load_or_create(&keys.join("subject.key"))?;
    let release = ReleaseKey::new(&secret_key(&keys.join("release.key"))?);
    let consulted = ConsultedKey::from_bytes(&secret_key(&keys.join("consulted.key"))?);
    let payload_keys = Arc::new(PayloadKeys::open(&config.payload_keys_path())?);

    let mut audit = AuditConfig::new(config.audit_dir(), config.audit.origin.clone());
    audit.batch_max = config.audit.batch_max.max(1);
    audit.batch_delay = Duration::from_millis(config.audit.batch_delay_ms);
    audit.cache_capacity = u64::from(config.audit.cache_mib.max(1)) * 1024 * 1024;
    audit.consulted_key = Some(Arc::new(consulted));
    audit.sync_first = Some(payload_keys.clone());
    let log = AuditLog::open(audit, signers)?;

    let (tls_config, dev_pki, created_pki) = match &config.tls {
        Some(paths) => (
            tls::server_config(&TlsPaths {
                cert: &paths.cert,
                key: &paths.key,
                client_ca: &paths.client_ca,
            })?,
            None,
            false,
        ),
        None => {
            let dir = config.dev_pki_dir();
            let created = !DevPki::exists(&dir);
            let pki = if created {
                let ids: Vec<&str> = policy.parties().map(|p| p.id.as_str()).collect();
                DevPki::init(&dir, &ids, &["localhost"])?
            } else {
                DevPki::open(&dir)?
            };
            let server = tls::server_config(&TlsPaths {
                cert: &pki.server_cert_path(),
                key: &pki.server_key_path(),
                client_ca: &pki.ca_cert_path(),
            })?;
            (server, Some(dir), created)
        }
    };

    let settings = Settings {
        ticket_ttl: Duration::from_secs(u64::from(config.exchange.ticket_ttl_days) * 86_400),
        default_retention: Duration::from_secs(
            u64::from(config.exchange.default_retention_days) * 86_400,
        ),
        ..Settings::default()
    };
    let gateway = Gateway::new(
        policy,
        log,
        subjects,
        release,
        payload_keys,
        clock,
        settings,
    );
    let indexed = gateway.rebuild_indexes().map_err(LaunchError::Indexes)?;
    tracing::debug!(keys = indexed, "gateway: indexes rebuilt from the records");
    let authenticator = Authenticator::new(
        gateway.current_policy().clone(),
        config.limits.requests_per_second,
        config.limits.burst,
    );
    Ok(Prepared {
        setup: ServerSetup {
            gateway,
            authenticator,
            tls: tls_config,
            handshakes: Arc::default(),
        },
        dev_pki,
        created_pki,
    })
}

/// Loads the policy set in `dir` completely, or says why it does not load.
fn load_policies(dir: &Path) -> Result<PolicySet, LaunchError> {
    PolicySet::load(dir).map_err(|e| LaunchError::Policy {
        dir: dir.display().to_string(),
        problems: e.to_string(),
    })
}

/// Records the policy set the gateway starts with (loaded from `dir`) as a POLICY_LOAD audit
/// entry, unless the last recorded load had the same digest. Returns whether an entry was added.
pub async fn record_policy_load(gateway: &Gateway, dir: &Path) -> Result<bool, LaunchError> {
    gateway
        .install_policy(gateway.policy(), dir)
        .await
        .map_err(LaunchError::PolicyRecord)
}

/// Reloads the policies from `dir` (what SIGHUP does): the new set must load completely, its
/// POLICY_LOAD entry is appended, and only then does it replace the set in force. On any error
/// the previous set stays in force. Returns whether an entry was added (false: same digest).
pub async fn reload_policies(gateway: &Gateway, dir: &Path) -> Result<bool, LaunchError> {
    let set = load_policies(dir)?;
    gateway
        .install_policy(Arc::new(set), dir)
        .await
        .map_err(LaunchError::PolicyRecord)
}
