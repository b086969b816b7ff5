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
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `outer: inner: …`, leaving out a cause whose text the
/// line already holds (many of our errors name their source in their own message too, which
/// `{:#}` would print twice).
fn error_text(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("audit log: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("the audit log in /x is in use")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open")]
    struct Plain(#[source] Inner);

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let e = anyhow::Error::new(Outer(Inner)).context("cannot start the gateway in /x");
        assert_eq!(
            error_text(&e),
            "cannot start the gateway in /x: audit log: the audit log in /x is in use"
        );
        // A cause the message does not name is still shown.
        let e = anyhow::Error::new(Plain(Inner));
        assert_eq!(error_text(&e), "cannot open: the audit log in /x is in use");
    }
}
