//! The command-line interface: one file per subcommand group.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod bench;
mod call;
mod demo;
mod pki;
mod policy;
mod serve;

/// Ketenpoort: minimal, policy-checked and audited information exchange between police and care partners.
#[derive(Debug, Parser)]
#[command(name = "ketenpoort", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommand groups.
#[derive(Debug, Subcommand)]
enum Command {
    /// Make or extend the development PKI.
    Pki(pki::PkiArgs),
    /// Verify and inspect the signed audit log.
    Audit(audit::AuditArgs),
    /// Run the gateway (mutual-TLS gRPC) until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Check, test, explain, digest and diff policy sets.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Call one RPC of the gateway with a JSON request and print the JSON response.
    Call(call::CallArgs),
    /// Measure the gateway's exchanges against a bare mutual-TLS echo in the same run.
    Bench(bench::BenchArgs),
    /// Play an end-to-end story over mutual TLS against an in-process gateway, then audit it.
    Demo(demo::DemoArgs),
}

/// Parses the command line and runs the chosen subcommand; errors are printed once, here.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pki(args) => pki::run(args).map(|()| ExitCode::SUCCESS),
        Command::Audit(args) => audit::run(args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Policy(cmd) => policy::run(cmd),
        // `call` prints its own errors as JSON and picks its exit code.
        Command::Call(args) => Ok(call::run(args)),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
