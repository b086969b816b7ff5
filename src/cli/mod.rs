//! The command-line interface: one file per subcommand group.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod pki;
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
}

/// Parses the command line and runs the chosen subcommand; errors are printed once, here.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pki(args) => pki::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
