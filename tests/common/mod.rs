//! Shared harness for the gateway's black-box tests: a real server on 127.0.0.1:0 with real mutual
//! TLS, the shipped policies, a dev PKI made at run time and a pinned clock; plus clients per party.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ketenpoort::config::Config;
use ketenpoort::exchange::Clock;
use ketenpoort::grpc::{self, ACTOR_METADATA, ServeError};
use ketenpoort::proto::v1 as pb;
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The instant every test runs at: inside the shipped agreements' validity windows.
pub const NOW: OffsetDateTime = datetime!(2026-03-15 10:00 UTC);

/// A valid Belgian national register number for someone born in 1985, numbered by `seq`.
pub fn subject_number(seq: u32) -> String {
    let first_nine = 850_730_000 + (seq % 998) + 1;
    let check = 97 - (first_nine % 97);
    format!("{first_nine:09}{check:02}")
}

/// A reference ground resting on the consent `consent_id`.
pub fn consent_ground(consent_id: &str) -> pb::ReferenceGround {
    pb::ReferenceGround {
        ground: Some(pb::reference_ground::Ground::ConsentId(
            consent_id.to_owned(),
        )),
    }
}

/// An adult subject `seq`'s own consent for `purpose` to `recipients`, valid 180 days from NOW.
pub fn consent_request(seq: u32, purpose: &str, recipients: &[&str]) -> pb::RecordConsentRequest {
    pb::RecordConsentRequest {
        subject: subject(seq),
        purpose: purpose.to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        evidence: format!("signed form T-{seq}"),
        give_time: None,
        expire_time: Some(prost_types::Timestamp {
            seconds: NOW.unix_timestamp() + 180 * 86_400,
            nanos: 0,
        }),
        given_by: pb::ConsentGiver::Subject as i32,
        information_version: "folder v1".to_owned(),
        minor: pb::MinorCapacity::Adult as i32,
        parents_also_consented: false,
    }
}

/// A wire subject.
pub fn subject(seq: u32) -> Option<pb::Subject> {
    Some(pb::Subject {
        number: subject_number(seq),
    })
}

/// A running gateway and everything a test needs to reach it.
pub struct TestGateway {
    /// Its address.
    pub addr: SocketAddr,
    /// The development PKI directory.
    pub pki: PathBuf,
    /// The data directory.
    pub data: PathBuf,
    /// The use cases, for checks behind the wire (audit log, state).
    pub gateway: ketenpoort::exchange::Gateway,
    /// Counts of the TLS handshakes the server refused.
    pub handshakes: Arc<ketenpoort::grpc::tls::HandshakeStats>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServeError>>>,
    _dir: TempDir,
}

/// The shipped policy directory.
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A clock a test moves by hand, starting at [`NOW`].
pub struct ManualClock(Arc<std::sync::atomic::AtomicI64>);

impl ManualClock {
    /// The clock and its reader, to start a gateway with.
    pub fn start() -> (Self, Clock) {
        let seconds = Arc::new(std::sync::atomic::AtomicI64::new(NOW.unix_timestamp()));
        let reader = seconds.clone();
        let clock: Clock = Arc::new(move || {
            OffsetDateTime::from_unix_timestamp(reader.load(std::sync::atomic::Ordering::SeqCst))
                .expect("in range")
        });
        (Self(seconds), clock)
    }

    /// Moves the clock `days` days on.
    pub fn advance_days(&self, days: i64) {
        self.0
            .fetch_add(days * 86_400, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies the shipped policy set (without its fixtures) into `to`.
pub fn copy_policies(to: &Path) {
    let from = policies_dir();
    std::fs::create_dir_all(to.join("agreements")).expect("agreements dir");
    for file in ["parties.toml", "vocabulary.toml", "catalogue.toml"] {
        std::fs::copy(from.join(file), to.join(file)).expect("copy");
    }
    for agreement in std::fs::read_dir(from.join("agreements")).expect("agreements") {
        let path = agreement.expect("dir entry").path();
        let name = path.file_name().expect("file name");
        std::fs::copy(&path, to.join("agreements").join(name)).expect("copy agreement");
    }
}

impl TestGateway {
    /// Starts a gateway with the shipped policies and default limits.
    pub async fn start() -> TestGateway {
        Self::start_with(|_| {}).await
    }

    /// Starts a gateway after `adjust` has changed the default test configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        Self::start_at(Arc::new(|| NOW), adjust).await
    }

    /// Starts a gateway whose clock is `clock`.
    pub async fn start_at(clock: Clock, adjust: impl FnOnce(&mut Config)) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().join("var"),
            policies: policies_dir(),
            ..Config::default()
        };
        adjust(&mut config);
        let prepared = grpc::prepare(&config, clock).expect("gateway prepares");
        let pki = prepared.dev_pki.clone().expect("dev PKI made");
        let gateway = prepared.setup.gateway.clone();
        let handshakes = prepared.setup.handshakes.clone();
        let (listener, addr) = grpc::bind(config.address).await.expect("bind");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(grpc::serve(prepared.setup, listener, async {
            let _ = rx.await;
        }));
        TestGateway {
            addr,
            pki,
            data: config.data_dir.clone(),
            gateway,
            handshakes,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    /// The PEM of the dev CA.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.pki.join("ca.pem")).expect("ca.pem")
    }

    /// A connected channel authenticated as `party` with its dev certificate.
    pub async fn channel(&self, party: &str) -> Channel {
        let cert = std::fs::read_to_string(self.pki.join("parties").join(format!("{party}.pem")))
            .expect("party cert");
        let key =
            ketenpoort::secret_file::read(&self.pki.join("parties").join(format!("{party}.key")))
                .expect("party key");
        self.channel_with(
            Some((cert, String::from_utf8(key).expect("pem"))),
            &self.ca_pem(),
        )
        .await
        .expect("connects")
    }

    /// A channel with an explicit client identity (or none) and trust anchor.
    pub async fn channel_with(
        &self,
        identity: Option<(String, String)>,
        ca_pem: &str,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Channel::from_shared(format!("https://127.0.0.1:{}", self.addr.port()))
            .expect("uri")
            .tls_config(tls)?
            .connect()
            .await
    }

    /// Exchange client for `party`.
    pub async fn exchange(&self, party: &str) -> pb::exchange_client::ExchangeClient<Channel> {
        pb::exchange_client::ExchangeClient::new(self.channel(party).await)
    }

    /// Grounds client for `party`.
    pub async fn grounds(&self, party: &str) -> pb::grounds_client::GroundsClient<Channel> {
        pb::grounds_client::GroundsClient::new(self.channel(party).await)
    }

    /// Audit client for `party`.
    pub async fn audit(&self, party: &str) -> pb::audit_client::AuditClient<Channel> {
        pb::audit_client::AuditClient::new(self.channel(party).await)
    }

    /// Policies client for `party`.
    pub async fn policies(&self, party: &str) -> pb::policies_client::PoliciesClient<Channel> {
        pb::policies_client::PoliciesClient::new(self.channel(party).await)
    }

    /// `party` records subject `seq`'s written consent to be findable by the police zones, for
    /// every purpose under `protection-integrity`; returns the consent id.
    pub async fn findable(&self, party: &str, seq: u32) -> String {
        self.grounds(party)
            .await
            .record_consent(req(consent_request(
                seq,
                "protection-integrity",
                &["pz-gent", "pz-aalst"],
            )))
            .await
            .expect("consent to be findable")
            .into_inner()
            .consent_id
    }

    /// `party` registers subject `seq` in the reference directory, as file `file-<party>`, on the
    /// subject's consent to be findable by the police.
    pub async fn register(&self, party: &str, seq: u32) {
        let consent = self.findable(party, seq).await;
        self.exchange(party)
            .await
            .register_reference(req(pb::RegisterReferenceRequest {
                subject: subject(seq),
                holder_reference: format!("file-{party}"),
                ground: Some(consent_ground(&consent)),
            }))
            .await
            .expect("register");
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    /// Stops the server, waits for it, and closes the log.
    async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server ends cleanly");
        }
        self.gateway.log().shutdown().await;
    }

    /// Stops the server and closes the log, but keeps the data directory for a check after the
    /// stop (e.g. `ketenpoort audit verify`); it is removed when the returned guard drops.
    pub async fn stop_keeping_data(mut self) -> (TempDir, PathBuf) {
        self.shut_down().await;
        let TestGateway {
            _dir,
            data,
            gateway,
            ..
        } = self;
        // The last handle on the log: dropping it closes the database.
        drop(gateway);
        (_dir, data)
    }
}

/// A request carrying the actor metadata.
pub fn req<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(ACTOR_METADATA, "agent-0042".parse().expect("ascii"));
    request
}

/// A text value.
pub fn text(field: &str, value: &str) -> pb::FieldEntry {
    value_entry(field, pb::field_value::Kind::Text(value.into()))
}

/// A value entry of any kind.
pub fn value_entry(field: &str, kind: pb::field_value::Kind) -> pb::FieldEntry {
    pb::FieldEntry {
        field: field.into(),
        value: Some(pb::FieldValue { kind: Some(kind) }),
    }
}

/// A requested field.
pub fn ask(field: &str) -> pb::FieldRequest {
    pb::FieldRequest {
        field: field.into(),
        form: String::new(),
    }
}

/// The reason code of a status's `ErrorInfo`.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Verifies a receipt offline against the log's published verifier key.
pub fn verify_receipt(gateway: &TestGateway, receipt: &pb::Receipt) {
    let vkey = gateway.gateway.log().verifier_keys()[0].clone();
    ketenpoort::audit::verify_receipt(&receipt.proof, &receipt.entry, &vkey)
        .expect("receipt verifies offline");
}
