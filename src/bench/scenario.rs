//! One benchmark run: the gateway and the echo baseline started in-process on 127.0.0.1 with one
//! dev PKI and one TLS configuration, a small data set (references and a case), then each target
//! driven by the same callers over mutual TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::echo::{pb as echo_pb, serve_echo};
use super::load::{LoadReport, LoadSettings, drive};
use crate::client::{ACTOR_METADATA, ClientError, ClientTls, connect};
use crate::config::{Config, Limits};
use crate::exchange::{Caller, Gateway, system_clock};
use crate::grpc::{self, LaunchError, ServeError};
use crate::proto::v1 as pb;

/// The party whose callers drive the load.
const REQUESTER: &str = "pz-gent";
/// The holder that registers references and answers context requests.
const HOLDER: &str = "caw-oost-vlaanderen";
/// The party that opens the case consultation.
const COORDINATOR: &str = "fjc-oost-vlaanderen";
/// The actor on every benchmark call.
const ACTOR: &str = "bench-0001";
/// Distinct subjects the calls rotate over, so per-key locks see realistic spread.
const SUBJECTS: u32 = 64;
/// Warm-up calls per caller before each measured run (connections, caches, allocator).
const WARMUP_CALLS_PER_CALLER: u64 = 20;

/// Why a benchmark run could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The temporary data directory could not be made.
    #[error("temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    /// The gateway could not be opened (policies, keys, PKI).
    #[error("cannot open the gateway")]
    Launch(#[from] LaunchError),
    /// A server could not bind or failed.
    #[error("server")]
    Serve(#[from] ServeError),
    /// The bench's client could not connect.
    #[error("client")]
    Client(#[from] ClientError),
    /// Preparing the data set or the first call of a workload failed.
    #[error("setting up {step} failed: {status}")]
    Setup {
        /// What was being set up.
        step: &'static str,
        /// The status code and reason.
        status: String,
    },
}

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// Measured time per target.
    pub duration: Duration,
    /// Concurrent callers per target.
    pub concurrency: usize,
    /// HTTP/2 connections the callers share, per target.
    pub connections: usize,
    /// Interleaved rounds the duration is split into (echo, Lookup, RequestContext each round).
    pub rounds: u32,
    /// The policy directory the gateway loads.
    pub policies: PathBuf,
    /// Synthetic entries appended to the gateway's audit log before measuring.
    pub prefill: u64,
    /// Bytes the echo sends and gets back per call.
    pub echo_payload: usize,
    /// Also drive the gateway's Lookup and RequestContext in-process (its API called directly,
    /// no gRPC or TLS), which splits an exchange's cost between the gateway and the RPC stack.
    pub in_process: bool,
}

/// The measured targets.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The bare tonic mutual-TLS echo.
    pub echo: LoadReport,
    /// The gateway's exchanges, by RPC name.
    pub exchanges: Vec<(&'static str, LoadReport)>,
    /// The same exchanges called in-process, when asked for.
    pub in_process: Vec<(&'static str, LoadReport)>,
    /// The audit log's size when the measurement started.
    pub log_size_at_start: u64,
}

/// A server task and the sender that stops it.
struct Running<E> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), E>>,
}

impl<E> Running<E> {
    async fn stop(self) -> Option<Result<(), E>> {
        let _ = self.stop.send(());
        self.task.await.ok()
    }
}

/// A valid national register number (born 1985), numbered by `seq`.
fn subject_number(seq: u32) -> String {
    let first_nine = 850_730_000 + (seq % 998) + 1;
    let check = 97 - (first_nine % 97);
    format!("{first_nine:09}{check:02}")
}

fn subject(seq: u32) -> Option<pb::Subject> {
    Some(pb::Subject {
        number: subject_number(seq),
    })
}

/// A request carrying the bench actor.
fn with_actor<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        ACTOR_METADATA,
        tonic::metadata::MetadataValue::from_static(ACTOR),
    );
    request
}

fn setup_failed(step: &'static str) -> impl Fn(Status) -> BenchError {
    move |status| BenchError::Setup {
        step,
        status: format!("{:?}: {}", status.code(), status.message()),
    }
}

async fn channels(
    address: SocketAddr,
    tls: &ClientTls,
    count: usize,
) -> Result<Arc<Vec<Channel>>, ClientError> {
    let url = format!("https://{address}");
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        out.push(connect(&url, tls).await?);
    }
    Ok(Arc::new(out))
}

fn lookup_request(seq: u64) -> pb::LookupRequest {
    pb::LookupRequest {
        subject: subject((seq % u64::from(SUBJECTS)) as u32),
        purpose: "intrafamily-violence".into(),
        justification: String::new(),
    }
}

fn context_request(seq: u64) -> pb::RequestContextRequest {
    pb::RequestContextRequest {
        subject: subject((seq % u64::from(SUBJECTS)) as u32),
        holder: HOLDER.into(),
        purpose: "intrafamily-violence".into(),
        fields: ["subject.birth_date", "subject.address"]
            .into_iter()
            .map(|field| pb::FieldRequest {
                field: field.into(),
                form: String::new(),
            })
            .collect(),
        justification: String::new(),
    }
}

/// Opens the case the context requests rest on, and registers the holder's references on it.
async fn prepare_data(address: SocketAddr, pki: &std::path::Path) -> Result<(), BenchError> {
    let url = format!("https://{address}");
    let holder = connect(&url, &ClientTls::from_pki_dir(pki, HOLDER)?).await?;
    let coordinator = connect(&url, &ClientTls::from_pki_dir(pki, COORDINATOR)?).await?;
    let case_id = pb::grounds_client::GroundsClient::new(coordinator)
        .open_case(with_actor(pb::OpenCaseRequest {
            case_id: String::new(),
            purpose: "intrafamily-violence".into(),
            participants: vec![REQUESTER.into(), HOLDER.into(), COORDINATOR.into()],
            subjects: (0..SUBJECTS).filter_map(subject).collect(),
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .map_err(setup_failed("OpenCase"))?
        .into_inner()
        .case_id;
    let mut holder = pb::exchange_client::ExchangeClient::new(holder);
    for seq in 0..SUBJECTS {
        holder
            .register_reference(with_actor(pb::RegisterReferenceRequest {
                subject: subject(seq),
                holder_reference: format!("bench-{seq}"),
                // The holder may disclose that it knows the subject to the case's participants.
                ground: Some(pb::ReferenceGround {
                    ground: Some(pb::reference_ground::Ground::CaseId(case_id.clone())),
                }),
            }))
            .await
            .map_err(setup_failed("RegisterReference"))?;
    }

    Ok(())
}

/// One call to a target, from caller `worker` as the `sequence`-th call of a run.
type CallFn = Arc<dyn Fn(usize, u64) -> BoxFuture<'static, Result<(), Status>> + Send + Sync>;

/// Runs `call` under `settings` (the driver wants a plain closure).
async fn drive_target(settings: LoadSettings, call: &CallFn) -> LoadReport {
    let call = call.clone();
    drive(settings, move |worker, sequence| call(worker, sequence)).await
}

/// Warms every target up, then measures them in `rounds` interleaved rounds, so a change in the
/// machine's background load during the run affects all targets alike.
async fn measure(settings: &BenchSettings, targets: &[(&'static str, CallFn)]) -> Vec<LoadReport> {
    let concurrency = settings.concurrency.max(1);
    let warmup = LoadSettings {
        concurrency,
        duration: Duration::from_secs(2),
        max_calls: WARMUP_CALLS_PER_CALLER * concurrency as u64,
    };
    for (name, call) in targets {
        eprintln!("warming up: {name}");
        drive_target(warmup, call).await;
    }
    let rounds = settings.rounds.max(1);
    let round = LoadSettings {
        concurrency,
        duration: settings.duration / rounds,
        // Far above what 2 cores can do, yet a bound on memory (4 bytes per call).
        max_calls: settings.duration.as_secs().max(1) * 500_000 / u64::from(rounds),
    };
    let mut reports: Vec<Option<LoadReport>> = vec![None; targets.len()];
    for r in 1..=rounds {
        for ((name, call), total) in targets.iter().zip(reports.iter_mut()) {
            eprintln!("round {r} of {rounds}: {name}");
            let report = drive_target(round, call).await;
            match total {
                Some(total) => total.merge(report),
                None => *total = Some(report),
            }
        }
    }
    reports.into_iter().flatten().collect()
}

/// Runs the whole benchmark: the echo, the gateway's Lookup and its RequestContext.
pub async fn run(settings: &BenchSettings) -> Result<BenchReport, BenchError> {
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let config = Config {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("var"),
        policies: settings.policies.clone(),
        // The benchmark measures throughput, not the per-party limiter (which still runs).
        limits: Limits {
            requests_per_second: 10_000_000,
            burst: 10_000_000,
        },
        ..Config::default()
    };
    let prepared = grpc::prepare(&config, system_clock())?;
    let pki = prepared
        .dev_pki
        .clone()
        .unwrap_or_else(|| config.dev_pki_dir());
    let gateway = prepared.setup.gateway.clone();
    let tls_config = prepared.setup.tls.clone();
    if settings.prefill > 0 {
        let total = settings.prefill;
        eprintln!("prefilling the audit log with {total} entries");
        super::prefill::prefill(
            gateway.log(),
            total,
            std::sync::Arc::new(move |done| eprintln!("prefill: {done} of {total}")),
        )
        .await
        .map_err(|e| BenchError::Setup {
            step: "prefill",
            status: e.to_string(),
        })?;
    }

    let (listener, gateway_address) = grpc::bind(config.address).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let gateway_server = Running {
        stop,
        task: tokio::spawn(grpc::serve(prepared.setup, listener, async {
            let _ = stopped.await;
        })),
    };
    let (listener, echo_address) = grpc::bind(config.address).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let echo_server = Running {
        stop,
        task: tokio::spawn(serve_echo(listener, tls_config, async {
            let _ = stopped.await;
        })),
    };

    let log_size_at_start = gateway.log().size();
    let result = measure_all(settings, &pki, &gateway, gateway_address, echo_address)
        .await
        .map(|mut r| {
            r.log_size_at_start = log_size_at_start;
            r
        });

    echo_server.stop().await;
    gateway_server.stop().await;
    gateway.log().shutdown().await;
    drop(dir);
    result
}

async fn measure_all(
    settings: &BenchSettings,
    pki: &std::path::Path,
    gateway: &Gateway,
    gateway_address: SocketAddr,
    echo_address: SocketAddr,
) -> Result<BenchReport, BenchError> {
    prepare_data(gateway_address, pki).await?;
    let tls = ClientTls::from_pki_dir(pki, REQUESTER)?;
    let connections = settings.connections.max(1);

    let echo_channels = channels(echo_address, &tls, connections).await?;
    let payload = vec![0x2a_u8; settings.echo_payload];
    let echo: CallFn = Arc::new(move |worker, _| {
        let mut client =
            echo_pb::echo_client::EchoClient::new(echo_channels[worker % connections].clone());
        let payload = payload.clone();
        Box::pin(async move {
            client
                .echo(echo_pb::EchoRequest { payload })
                .await
                .map(drop)
        })
    });

    let gateway_channels = channels(gateway_address, &tls, connections).await?;
    let first = gateway_channels[0].clone();
    pb::exchange_client::ExchangeClient::new(first.clone())
        .lookup(with_actor(lookup_request(0)))
        .await
        .map_err(setup_failed("Lookup"))?;
    pb::exchange_client::ExchangeClient::new(first)
        .request_context(with_actor(context_request(0)))
        .await
        .map_err(setup_failed("RequestContext"))?;

    let lookup_channels = gateway_channels.clone();
    let lookup: CallFn = Arc::new(move |worker, seq| {
        let mut client =
            pb::exchange_client::ExchangeClient::new(lookup_channels[worker % connections].clone());
        Box::pin(async move {
            client
                .lookup(with_actor(lookup_request(seq)))
                .await
                .map(drop)
        })
    });

    let context_channels = gateway_channels;
    let context: CallFn = Arc::new(move |worker, seq| {
        let mut client = pb::exchange_client::ExchangeClient::new(
            context_channels[worker % connections].clone(),
        );
        Box::pin(async move {
            client
                .request_context(with_actor(context_request(seq)))
                .await
                .map(drop)
        })
    });

    let mut targets = vec![
        ("echo", echo),
        ("Lookup", lookup),
        ("RequestContext", context),
    ];
    if settings.in_process {
        targets.extend(in_process_targets(gateway));
    }
    let mut reports = measure(settings, &targets).await.into_iter();
    let mut next = || {
        reports
            .next()
            .unwrap_or_else(|| LoadReport::from_samples(Vec::new(), 0, Duration::ZERO, None))
    };
    let echo = next();
    let lookup = next();
    let context = next();
    let in_process = if settings.in_process {
        vec![
            ("Lookup (in-process)", next()),
            ("RequestContext (in-process)", next()),
        ]
    } else {
        Vec::new()
    };
    Ok(BenchReport {
        echo,
        exchanges: vec![("Lookup", lookup), ("RequestContext", context)],
        in_process,
        log_size_at_start: 0,
    })
}

/// Lookup and RequestContext called on the gateway's API by the same requester, with the same
/// requests, as the gRPC targets: the gateway's own cost, without gRPC, HTTP/2 and TLS.
fn in_process_targets(gateway: &Gateway) -> [(&'static str, CallFn); 2] {
    let caller = Arc::new(Caller {
        party: REQUESTER.into(),
        actor: ACTOR.into(),
        trace_id: String::new(),
    });
    let (lookup_gateway, lookup_caller) = (gateway.clone(), caller.clone());
    let lookup: CallFn = Arc::new(move |_, seq| {
        let (gateway, caller) = (lookup_gateway.clone(), lookup_caller.clone());
        Box::pin(async move {
            gateway
                .lookup(&caller, lookup_request(seq))
                .await
                .map(drop)
                .map_err(Status::from)
        })
    });
    let context_gateway = gateway.clone();
    let context: CallFn = Arc::new(move |_, seq| {
        let (gateway, caller) = (context_gateway.clone(), caller.clone());
        Box::pin(async move {
            gateway
                .request_context(&caller, context_request(seq))
                .await
                .map(drop)
                .map_err(Status::from)
        })
    });
    [
        ("Lookup (in-process)", lookup),
        ("RequestContext (in-process)", context),
    ]
}
