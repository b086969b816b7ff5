//! `ketenpoort demo`: play the end-to-end story against an in-process gateway (see
//! [`ketenpoort::demo`]), in a temporary data directory or, with `--keep`, in one kept for
//! inspection.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use ketenpoort::demo::{self, DemoOptions};

/// Play the end-to-end story.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the data directory (audit log, keys, dev PKI) in DIR, which must be empty or absent.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// The policy directory.
    #[arg(long, value_name = "DIR", default_value = "policies")]
    policies: PathBuf,
}

/// Runs `demo`: exit 0 when every step came out as the agreements say, 1 otherwise.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let policies = std::path::absolute(&args.policies)
        .with_context(|| format!("cannot resolve {}", args.policies.display()))?;
    let (data_dir, _temporary) = match &args.keep {
        Some(dir) => {
            ensure_fresh(dir)?;
            let dir = std::path::absolute(dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            (dir, None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("ketenpoort-demo-")
                .tempdir()
                .context("cannot make a temporary data directory")?;
            (temp.path().join("var"), Some(temp))
        }
    };
    let options = DemoOptions {
        data_dir: data_dir.clone(),
        policies: policies.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut stdout = std::io::stdout().lock();
    let summary = match runtime.block_on(demo::run(&options, &mut stdout)) {
        Ok(summary) => summary,
        Err(e) => {
            stdout.flush().ok();
            bail!("demo FAILED: {e}");
        }
    };
    writeln!(stdout)?;
    writeln!(
        stdout,
        "demo complete: {} exchanges, {} refused, log size {}, all {} receipts verified",
        summary.exchanges, summary.refused, summary.log_size, summary.receipts_verified
    )?;
    if args.keep.is_some() {
        let config = data_dir.join("ketenpoort.toml");
        std::fs::write(&config, config_text(&data_dir, &policies))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let dir = data_dir.display();
        writeln!(stdout)?;
        writeln!(stdout, "kept the data directory in {dir}; inspect it with:")?;
        writeln!(stdout, "  ketenpoort audit verify --data-dir {dir}")?;
        writeln!(
            stdout,
            "  ketenpoort audit entry --data-dir {dir} --index 0"
        )?;
        writeln!(
            stdout,
            "  ketenpoort serve --config {}    (on 127.0.0.1:50051, real clock)",
            config.display()
        )?;
        writeln!(
            stdout,
            "  parties' certificates: {}/parties/<party>.pem and .key, CA {}/ca.pem",
            summary.pki.display(),
            summary.pki.display()
        )?;
        writeln!(stdout, "  verifier key to pin: {}", summary.verifier_key)?;
    } else {
        writeln!(
            stdout,
            "(the data directory was temporary; `ketenpoort demo --keep DIR` keeps it for inspection)"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A kept directory must not hold an earlier run: the story opens fixed case ids.
fn ensure_fresh(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; the demo needs a fresh data directory",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// A `ketenpoort.toml` that serves the kept directory.
fn config_text(data_dir: &Path, policies: &Path) -> String {
    let quote = |p: &Path| toml_string(&p.display().to_string());
    format!(
        "# Written by `ketenpoort demo --keep`: serves the demo's data directory.\n\
         address = \"127.0.0.1:50051\"\n\
         data_dir = {}\n\
         policies = {}\n",
        quote(data_dir),
        quote(policies)
    )
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_config_parses_back() {
        let text = config_text(Path::new("/tmp/a \"b\"/var"), Path::new("/repo/policies"));
        let config = ketenpoort::config::Config::parse(&text).expect("valid config");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/a \"b\"/var"));
        assert_eq!(config.policies, PathBuf::from("/repo/policies"));
    }

    #[test]
    fn a_used_directory_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(ensure_fresh(&dir.path().join("absent")).is_ok());
        assert!(ensure_fresh(dir.path()).is_ok());
        std::fs::write(dir.path().join("x"), b"x").expect("write");
        assert!(ensure_fresh(dir.path()).is_err());
    }
}
