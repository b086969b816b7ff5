//! `ketenpoort call <Rpc> --as <party>`: calls any unary RPC of the gateway with a JSON request and
//! prints the JSON response, like grpcurl but with the descriptors built in and mutual TLS set up
//! from the dev PKI.
//!
//! Output contract, for scripts: the response goes to stdout as one proto3 JSON document, exit 0.
//! A gRPC error goes to stderr as JSON (`code`, `message`, `error_info.reason`,
//! `bad_request.field_violations`), exit 2. A local problem (bad arguments, unreadable files,
//! invalid JSON) goes to stderr as `{"error": "..."}`, exit 1.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::json;

use ketenpoort::client::{
    CallContext, ClientTls, RpcCatalog, call_unary, connect_lazy, json_template, message_from_json,
    message_to_json_text, rpc_path, status_to_json,
};

/// Where `ketenpoort serve` listens by default.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:50051";
/// Where `ketenpoort serve` makes its dev PKI by default (`<data_dir>/pki`, data_dir `./var`).
pub const DEFAULT_PKI_DIR: &str = "./var/pki";

/// Call one RPC of the gateway with a JSON request and print the JSON response.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The RPC: short (`Lookup`), with service (`Exchange/Lookup`) or full
    /// (`ketenpoort.v1.Exchange/Lookup`); `Health/Check` for the health service.
    #[arg(required_unless_present = "list")]
    rpc: Option<String>,
    /// List every RPC with a JSON skeleton of its request, and exit.
    #[arg(long, conflicts_with = "rpc")]
    list: bool,
    /// The calling party: its client certificate is `<pki>/parties/<party>.pem`.
    #[arg(
        long = "as",
        visible_alias = "party",
        value_name = "PARTY",
        required_unless_present_any = ["list", "cert"]
    )]
    party: Option<String>,
    /// The staff member making the call (metadata `ketenpoort-actor`); every Ketenpoort RPC
    /// needs one, the health check does not.
    #[arg(long)]
    actor: Option<String>,
    /// A trace id copied into the audit entry (metadata `ketenpoort-trace-id`).
    #[arg(long)]
    trace_id: Option<String>,
    /// The request as proto3 JSON, `@file.json`, or `@-` for stdin.
    #[arg(long, default_value = "{}")]
    data: String,
    /// The gateway address (`https://host:port`; a bare `host:port` means the same).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    addr: String,
    /// The dev PKI directory (as made by `ketenpoort pki init` or `ketenpoort serve`).
    #[arg(long, default_value = DEFAULT_PKI_DIR, conflicts_with_all = ["cert", "key", "ca"])]
    pki: PathBuf,
    /// Client certificate (PEM), instead of --pki and --as.
    #[arg(long, requires_all = ["key", "ca"])]
    cert: Option<PathBuf>,
    /// Client private key (PEM, mode 0600).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// CA certificate that issued the gateway's server certificate (PEM).
    #[arg(long, requires = "cert")]
    ca: Option<PathBuf>,
    /// Check the server certificate for this name instead of the address's host.
    #[arg(long)]
    server_name: Option<String>,
    /// Print fields that have their default value too (0, "", [], false).
    #[arg(long)]
    emit_defaults: bool,
    /// Deadline of the call, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// Runs `call`; prints its own errors as JSON, so it returns the exit code directly.
pub fn run(args: CallArgs) -> ExitCode {
    match run_inner(args) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::RpcFailed) => ExitCode::from(2),
        Err(error) => {
            eprintln!("{}", json!({ "error": format!("{error:#}") }));
            ExitCode::FAILURE
        }
    }
}

/// How a call ended when nothing went wrong locally.
enum Outcome {
    /// The response was printed.
    Done,
    /// The gateway returned an error status, printed on stderr.
    RpcFailed,
}

fn run_inner(args: CallArgs) -> Result<Outcome> {
    let catalog = RpcCatalog::new()?;
    if args.list {
        for method in catalog.methods() {
            let template = json_template(&method.input());
            print_out(&format!("{} {}", rpc_path(&method), template))?;
        }
        return Ok(Outcome::Done);
    }
    let name = args.rpc.as_deref().ok_or_else(|| anyhow!("name an RPC"))?;
    let method = catalog.find(name)?;
    let request = message_from_json(&method.input(), &read_data(&args.data)?)?;
    let mut tls = match (&args.cert, &args.key, &args.ca) {
        (Some(cert), Some(key), Some(ca)) => ClientTls::from_files(cert, key, ca)?,
        _ => {
            let party = args
                .party
                .as_deref()
                .ok_or_else(|| anyhow!("--as <party> is required with --pki"))?;
            ClientTls::from_pki_dir(&args.pki, party)
                .with_context(|| format!("no identity for {party} in {}", args.pki.display()))?
        }
    };
    if let Some(name) = &args.server_name {
        tls = tls.with_server_name(name.clone());
    }
    let context = CallContext {
        actor: args.actor.clone(),
        trace_id: args.trace_id.clone(),
        timeout: Some(Duration::from_secs(args.timeout)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let channel = connect_lazy(&args.addr, &tls)?;
        anyhow::Ok(call_unary(channel, &method, request, &context).await)
    })?;
    match result {
        Ok(response) => {
            print_out(&message_to_json_text(&response, args.emit_defaults))?;
            Ok(Outcome::Done)
        }
        Err(status) => {
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&status_to_json(&status))?
            );
            Ok(Outcome::RpcFailed)
        }
    }
}

/// The request text: inline JSON, `@path` or `@-` (stdin).
fn read_data(data: &str) -> Result<String> {
    match data.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the request from stdin")?;
            Ok(text)
        }
        Some("") => bail!("--data @ needs a file name (or @- for stdin)"),
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(data.to_owned()),
    }
}

/// Prints one line of output; a reader that went away (`| head`) ends the output quietly
/// instead of panicking.
fn print_out(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
