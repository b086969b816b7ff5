//! `ketenpoort pki`: the development PKI (a CA, the gateway's server certificate and one client
//! certificate per party). Production takes its PEM paths from `ketenpoort.toml` instead.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;

use ketenpoort::identity::{DevPki, is_valid_party_id};

/// Make or extend the development PKI.
#[derive(Debug, Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
}

/// The `pki` subcommands.
#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Make a dev CA, a server certificate and a client certificate for every party in
    /// <policies>/parties.toml.
    Init {
        /// The PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// The policy directory whose parties.toml lists the parties.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Extra DNS names or IP addresses for the server certificate (besides localhost and
        /// 127.0.0.1); may be repeated.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// Remove an existing PKI in the directory and make a new one.
        #[arg(long)]
        force: bool,
    },
    /// Issue one more client certificate, signed by the existing dev CA.
    Issue {
        /// The party id; the certificate carries SAN URI urn:ketenpoort:party:<id>.
        #[arg(long)]
        party: String,
        /// The PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
    },
}

/// Runs a `pki` subcommand.
pub fn run(args: PkiArgs) -> Result<()> {
    match args.command {
        PkiCommand::Init {
            dir,
            policies,
            server_names,
            force,
        } => init(&dir, &policies, &server_names, force),
        PkiCommand::Issue { party, dir } => issue(&dir, &party),
    }
}

fn init(dir: &Path, policies: &Path, server_names: &[String], force: bool) -> Result<()> {
    let parties = party_ids(policies)?;
    // Check the ids before --force removes anything, so a typo cannot leave no PKI at all.
    if let Some(bad) = parties.iter().find(|id| !is_valid_party_id(id)) {
        bail!("{bad:?} in parties.toml is not a valid party id ([a-z0-9][a-z0-9-]*)");
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = parties.iter().find(|id| !seen.insert(id.as_str())) {
        bail!("party {twice:?} is listed twice in parties.toml");
    }
    if DevPki::exists(dir) {
        if !force {
            bail!(
                "{} already holds a PKI; use --force to remove it and make a new one \
                 (every party then needs its new certificate)",
                dir.display()
            );
        }
        DevPki::remove(dir).with_context(|| format!("removing the PKI in {}", dir.display()))?;
        println!("removed the old PKI in {}", dir.display());
    }
    let pki = DevPki::init(dir, &parties, server_names)
        .with_context(|| format!("making a PKI in {}", dir.display()))?;
    println!("dev CA          {}", pki.ca_cert_path().display());
    println!(
        "server          {} (key {}), names localhost, 127.0.0.1{}",
        pki.server_cert_path().display(),
        pki.server_key_path().display(),
        server_names
            .iter()
            .map(|n| format!(", {n}"))
            .collect::<String>()
    );
    for id in &parties {
        println!(
            "party {id:<24} {} (key {})",
            pki.party_cert_path(id).display(),
            pki.party_key_path(id).display()
        );
    }
    println!(
        "made {} client certificates; private keys are mode 0600. Development use only.",
        parties.len()
    );
    Ok(())
}

fn issue(dir: &Path, party: &str) -> Result<()> {
    let pki = DevPki::open(dir).with_context(|| format!("opening the PKI in {}", dir.display()))?;
    pki.write_client(party)
        .with_context(|| format!("issuing a certificate for {party}"))?;
    println!(
        "party {party}: {} (key {})",
        pki.party_cert_path(party).display(),
        pki.party_key_path(party).display()
    );
    Ok(())
}

/// Just the party ids of parties.toml. The policy engine reads the full file; the PKI needs
/// only the ids, so other keys are ignored here.
#[derive(Debug, Deserialize)]
struct PartiesFile {
    #[serde(default)]
    party: Vec<PartyId>,
}

/// One `[[party]]` table, reduced to its id.
#[derive(Debug, Deserialize)]
struct PartyId {
    id: String,
}

fn party_ids(policies: &Path) -> Result<Vec<String>> {
    let path = policies.join("parties.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: PartiesFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if file.party.is_empty() {
        bail!("{} lists no [[party]]", path.display());
    }
    Ok(file.party.into_iter().map(|p| p.id).collect())
}
