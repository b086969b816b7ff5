//! `ketenpoort demo`: one working day in a police/care network, played end to end.
//!
//! One process starts the real gateway on 127.0.0.1 (port 0) with its own data directory, keys and
//! development PKI, then plays a story through real gRPC clients over mutual TLS, one per party,
//! each presenting that party's own certificate:
//!
//! 1. a reference lookup by the police (the CGG shows as a hit only);
//! 2. a 458ter case consultation on intrafamily violence, where the holder over-shares and the
//!    gateway strips and transforms;
//! 3. a referral with consent (doorverwijzing) from the police to the OCMW;
//! 4. a 458bis signal to the prosecutor, and the same signal refused when sent to the police;
//! 5. requests refused for lack of a ground: fishing without a case, a purpose no agreement allows,
//!    health data asked by the police;
//! 6. a request under necessity (noodtoestand) for a missing vulnerable person;
//! 7. the auditors: the supervisor verifies every checkpoint and receipt offline against the pinned
//!    key and the log's consistency, a DPO sees only its own scope, and a subject-access report.
//!
//! Any step that comes out differently from what the agreements say stops the story with
//! [`DemoError::Unexpected`].

mod audit;
mod case;
mod cast;
mod error;
mod lookup;
mod narrate;
mod necessity;
mod referral;
mod refusals;
mod signal;
mod wire;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use prost::Message;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::grpc;
use crate::proto::v1 as pb;

pub use error::DemoError;

use cast::{People, StoryClock};
use narrate::{Narrator, psn_bytes};
use wire::Wire;

/// Where the demo keeps its data and which policies it plays under.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The data directory (audit log, keys, dev PKI); it should be empty or absent.
    pub data_dir: PathBuf,
    /// The policy directory.
    pub policies: PathBuf,
}

/// What the auditor established at the end of the story.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// Exchange decisions in the log (lookups, requests, answers, shares), allowed or refused.
    pub exchanges: u64,
    /// Of those, the refused ones.
    pub refused: u64,
    /// Entries in the log at the final checkpoint.
    pub log_size: u64,
    /// Receipts collected during the story and verified offline.
    pub receipts_verified: usize,
    /// The development PKI the parties used.
    pub pki: PathBuf,
    /// The log's verifier key, as pinned by the auditor.
    pub verifier_key: String,
}

/// The state of the story while it is played.
pub(crate) struct Story<'a> {
    /// The parties' connections.
    pub wire: Wire,
    /// The gateway's clock.
    pub clock: StoryClock,
    /// The people it is about.
    pub people: People,
    /// The printer.
    pub say: Narrator<'a>,
    /// Every receipt handed out during the story, for the auditor to verify.
    pub receipts: Vec<pb::Receipt>,
    /// The verifier key, pinned out of band (read from the gateway's key directory at start).
    pub pinned_key: String,
}

impl Story<'_> {
    /// Keeps a receipt for the auditor, prints its index, and returns the logged entry.
    pub fn receipt(
        &mut self,
        step: &str,
        receipt: Option<pb::Receipt>,
    ) -> Result<pb::AuditEntry, DemoError> {
        let receipt =
            receipt.ok_or_else(|| DemoError::unexpected(step, "a receipt", "no receipt"))?;
        let entry = pb::AuditEntry::decode(receipt.entry.as_slice()).map_err(|e| {
            DemoError::unexpected(step, "a receipt with an AuditEntry", e.to_string())
        })?;
        let subject = if entry.subject_pseudonym.is_empty() {
            String::new()
        } else {
            format!(", subject {}", psn_bytes(&entry.subject_pseudonym))
        };
        let fields = if entry.released_fields.is_empty() {
            String::new()
        } else {
            format!(
                ", {} field names and forms (no values)",
                entry.released_fields.len()
            )
        };
        self.say.detail(
            "receipt",
            &format!("#{} in the audit log{subject}{fields}", receipt.index),
        )?;
        self.receipts.push(receipt);
        Ok(entry)
    }
}

/// Plays the story against a gateway started here, and stops the gateway afterwards, also when
/// the story fails. The data directory is left for the caller to keep or remove.
pub async fn run(options: &DemoOptions, out: &mut dyn Write) -> Result<DemoSummary, DemoError> {
    let clock = StoryClock::new();
    let config = Config {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: options.data_dir.clone(),
        policies: options.policies.clone(),
        ..Config::default()
    };
    let prepared = grpc::prepare(&config, clock.clock())?;
    let pki = prepared
        .dev_pki
        .clone()
        .unwrap_or_else(|| config.dev_pki_dir());
    let gateway = prepared.setup.gateway.clone();
    let pinned_key = gateway
        .log()
        .verifier_keys()
        .first()
        .cloned()
        .ok_or_else(|| DemoError::unexpected("start", "a verifier key", "none"))?;
    let (listener, address) = grpc::bind(config.address).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(grpc::serve(prepared.setup, listener, async {
        let _ = stopped.await;
    }));

    writeln!(
        out,
        "Ketenpoort demo: one working day in the police/care network of Oost-Vlaanderen"
    )?;
    writeln!(
        out,
        "  gateway     https://{address} (mutual TLS; every party calls with its own certificate)"
    )?;
    writeln!(
        out,
        "  policies    {} ({} agreements, digest {})",
        config.policies.display(),
        gateway.policy().agreements().count(),
        gateway.policy().digest_hex().get(..16).unwrap_or_default()
    )?;
    writeln!(out, "  data dir    {}", config.data_dir.display())?;
    writeln!(out, "  pinned key  {pinned_key}")?;
    writeln!(
        out,
        "  story time  Monday 16 March 2026, UTC (the gateway's clock is pinned to the story)"
    )?;
    writeln!(
        out,
        "  people      invented; their national register numbers are synthetic but valid and are"
    )?;
    writeln!(
        out,
        "              shown only as the gateway's pseudonyms (psn:...)"
    )?;

    let story = Story {
        wire: Wire::new(format!("https://{address}"), pki.clone()),
        say: Narrator::new(out, clock.clone()),
        clock,
        people: People::new(),
        receipts: Vec::new(),
        pinned_key: pinned_key.clone(),
    };
    let played = play(story).await;

    let _ = stop.send(());
    let served = server.await;
    gateway.log().shutdown().await;
    let mut summary = played?;
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => {
            return Err(DemoError::unexpected(
                "stop",
                "the server to stop cleanly",
                e.to_string(),
            ));
        }
    }
    summary.pki = pki;
    summary.verifier_key = pinned_key;
    Ok(summary)
}

/// The acts, in order; the connections close when the story ends.
async fn play(mut story: Story<'_>) -> Result<DemoSummary, DemoError> {
    lookup::play(&mut story).await?;
    case::play(&mut story).await?;
    referral::play(&mut story).await?;
    signal::play(&mut story).await?;
    refusals::play(&mut story).await?;
    necessity::play(&mut story).await?;
    audit::play(&mut story).await
}
