//! `ketenpoort serve`: run the gateway until Ctrl-C.
//!
//! On first start it creates the audit signing key, the subject key and the release key in
//! `<data>/keys/` (mode 0600), and a development PKI in `<data>/pki` when `ketenpoort.toml`
//! names no certificates, then prints where everything is and how to make a first call.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use ketenpoort::config::Config;
use ketenpoort::exchange::{Gateway, system_clock};
use ketenpoort::grpc::{self, ACTOR_METADATA};

/// Run the gateway.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file; when absent and not given, all defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `serve`.
pub fn run(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(&PathBuf::from("ketenpoort.toml"), false)?,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<()> {
    let prepared = grpc::prepare(&config, system_clock())
        .with_context(|| format!("cannot start the gateway in {}", config.data_dir.display()))?;
    let (listener, address) = grpc::bind(config.address)
        .await
        .with_context(|| format!("cannot listen on {}", config.address))?;
    let log = prepared.setup.gateway.log().clone();
    let gateway = prepared.setup.gateway.clone();
    grpc::record_policy_load(&gateway, &config.policies)
        .await
        .context("cannot record the policy load")?;
    let reloader = tokio::spawn(reload_on_hangup(gateway, config.policies.clone()));
    println!("ketenpoort listening on {address} (mutual TLS)");
    println!(
        "  policies:   {} (digest {})",
        config.policies.display(),
        hex::encode(prepared.setup.gateway.policy().digest())
    );
    println!(
        "  audit log:  {} (verifier key {})",
        config.audit_dir().display(),
        log.verifier_keys()
            .first()
            .map(String::as_str)
            .unwrap_or("?")
    );
    println!("  keys:       {}", config.keys_dir().display());
    if let Some(pki) = &prepared.dev_pki {
        let pki = pki.display();
        let made = if prepared.created_pki {
            "created"
        } else {
            "existing"
        };
        println!(
            "  dev PKI:    {pki} ({made}): CA {pki}/ca.pem, parties {pki}/parties/<id>.pem and .key"
        );
        println!("try:");
        println!(
            "  ketenpoort call ListAgreements --as pz-gent --actor agent-0042 --addr {address} --pki {pki}"
        );
        println!(
            "  grpcurl -cacert {pki}/ca.pem -cert {pki}/parties/pz-gent.pem -key {pki}/parties/pz-gent.key \\\n    -H '{ACTOR_METADATA}: agent-0042' localhost:{} ketenpoort.v1.Policies/ListAgreements",
            address.port()
        );
    }
    let shutdown = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a signal handler we can only run until killed.
            std::future::pending::<()>().await;
        }
        eprintln!("shutting down: finishing calls in flight");
    };
    let result = grpc::serve(prepared.setup, listener, shutdown).await;
    reloader.abort();
    log.shutdown().await;
    result.context("the server stopped with an error")
}

/// Reloads the policies from `dir` on every SIGHUP. A set that does not load (or cannot be
/// recorded) is refused and logged; the previous set stays in force.
async fn reload_on_hangup(gateway: Gateway, dir: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "no SIGHUP handler; policies reload only on restart");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        reload(&gateway, &dir).await;
    }
}

async fn reload(gateway: &Gateway, dir: &Path) {
    match grpc::reload_policies(gateway, dir).await {
        Ok(recorded) => {
            let digest = gateway.policy().digest_hex();
            tracing::info!(dir = %dir.display(), %digest, changed = recorded, "policies reloaded");
        }
        Err(error) => {
            tracing::error!(%error, "policy reload refused; the previous set stays in force");
        }
    }
}
