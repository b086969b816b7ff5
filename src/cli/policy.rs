//! `ketenpoort policy …`: check, test, explain, digest and diff a policy set.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ketenpoort::policy::{PolicySet, SourceFile, diff, parse_requests};
use miette::Report;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and check a policy set: errors exit 1, overlapping permits are warnings.
    Check {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Run the fixtures in DIR/tests and print `N passed, N failed`.
    Test {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Explain the decision for a request file (a TOML like one fixture case).
    Explain {
        /// A TOML file with one [[case]] (request, grounds, optional now); `expect` is optional.
        #[arg(long)]
        request: PathBuf,
        /// The decision time (RFC 3339); default: the file's `now`, else the current time.
        #[arg(long)]
        at: Option<String>,
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
    },
    /// Print the policy-set digest (hex SHA-256 of the canonical compiled form).
    Digest {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Show the effect of a change: access gained, lost or changed between two sets.
    Diff {
        /// The old policy directory.
        old: PathBuf,
        /// The new policy directory.
        new: PathBuf,
        /// Evaluate at this time (RFC 3339); default: now.
        #[arg(long)]
        at: Option<String>,
    },
}

fn load(dir: &Path) -> Result<PolicySet, ExitCode> {
    PolicySet::load(dir).map_err(|e| {
        eprintln!("{:?}", Report::new(e));
        ExitCode::FAILURE
    })
}

fn parse_time(s: Option<&str>) -> Result<OffsetDateTime> {
    match s {
        Some(s) => OffsetDateTime::parse(s, &Rfc3339).with_context(|| format!("bad time `{s}`")),
        None => Ok(OffsetDateTime::now_utc()),
    }
}

/// Runs a `policy` subcommand.
pub fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { dir } => {
            let set = match load(&dir) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            for w in set.warnings() {
                eprintln!("{:?}", Report::new(w.clone()));
            }
            println!(
                "{}: ok, {} agreements, {} rules, {} warnings, digest {}",
                dir.display(),
                set.agreements().count(),
                set.rule_count(),
                set.warnings().len(),
                set.digest_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { dir } => {
            let set = match load(&dir) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let cases = match ketenpoort::policy::load_fixtures(&dir.join("tests")) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{:?}", Report::new(e));
                    return Ok(ExitCode::FAILURE);
                }
            };
            let (mut passed, mut failed) = (0usize, 0usize);
            for c in &cases {
                match c.check(&set) {
                    Ok(_) => passed += 1,
                    Err(diff) => {
                        failed += 1;
                        println!("FAIL {} ({})\n{diff}", c.name, c.location);
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Explain {
            request,
            at,
            policies,
        } => {
            let set = match load(&policies) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let text = std::fs::read_to_string(&request)
                .with_context(|| format!("cannot read {}", request.display()))?;
            // Parsed as written (optional keys are optional in the parser, not filled in as
            // text), so every diagnostic points at the user's own line and column.
            let file = SourceFile::new(request.display().to_string(), text);
            let mut problems = Vec::new();
            let cases = parse_requests(&file, &mut problems);
            if !problems.is_empty() {
                for p in problems {
                    eprintln!("{:?}", Report::new(p));
                }
                return Ok(ExitCode::FAILURE);
            }
            let Some(case) = cases.first() else {
                anyhow::bail!("{} holds no [[case]]", request.display());
            };
            let now = match (at, case.now) {
                (Some(a), _) => parse_time(Some(&a))?,
                (None, Some(now)) => now,
                (None, None) => OffsetDateTime::now_utc(),
            };
            println!("{}", set.explain(&case.request, &case.grounds, now));
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Digest { dir } => {
            let set = match load(&dir) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            println!("{}", set.digest_hex());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Diff { old, new, at } => {
            let (a, b) = match (load(&old), load(&new)) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return Ok(ExitCode::FAILURE),
            };
            let now = parse_time(at.as_deref())?;
            println!(
                "policy diff {} → {} at {} (every ground assumed satisfied: open case, valid consent, long justification)",
                old.display(),
                new.display(),
                now.format(&Rfc3339)?
            );
            println!(
                "old digest {}\nnew digest {}",
                a.digest_hex(),
                b.digest_hex()
            );
            let changes = diff(&a, &b, now);
            let mut out = String::new();
            for c in &changes {
                out.push_str(&format!("{c}\n"));
            }
            out.push_str(&format!(
                "{} change(s): {} gained, {} lost, {} changed form\n",
                changes.len(),
                changes.iter().filter(|c| c.old.is_none()).count(),
                changes.iter().filter(|c| c.new.is_none()).count(),
                changes
                    .iter()
                    .filter(|c| c.old.is_some() && c.new.is_some())
                    .count()
            ));
            write_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
