//! The command-line interface: one file per subcommand group.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod call;
mod pki;

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
    /// Call one RPC of the gateway with a JSON request and print the JSON response.
    Call(call::CallArgs),
}

/// Parses the command line and runs the chosen subcommand; errors are printed once, here.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pki(args) => pki::run(args),
        // `call` prints its own errors as JSON and picks its exit code.
        Command::Call(args) => return call::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
