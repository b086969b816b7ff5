//! The command-line interface: one file per subcommand group.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod policy;

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
    /// Check, test, explain, digest and diff policy sets.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// Parses the command line and runs the chosen subcommand; errors are printed once, here.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
