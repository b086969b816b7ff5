//! `ketenpoort audit`: verify the log, publish its checkpoint and keys, prove entries, verify a
//! receipt offline, and rotate the signing key. The log lives in `<data-dir>/audit` and its keys
//! in `<data-dir>/keys/`. Commands that read the log need the gateway stopped (sled holds a lock).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};

use ketenpoort::audit::hash::prove_record;
use ketenpoort::audit::keys::{self, read_signers};
use ketenpoort::audit::proof::TlogProof;
use ketenpoort::audit::store::Store;
use ketenpoort::audit::{
    AuditConfig, AuditLog, StateChange, Verifier, entry, verify::verify_dir, verify_receipt,
};
use ketenpoort::proto::v1::{AuditEntry, AuditEvent};

/// Verify and inspect the signed audit log.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

/// Where the data directory is.
#[derive(Debug, Args)]
struct DataDir {
    /// The data directory: the log is in <data-dir>/audit, the keys in <data-dir>/keys.
    #[arg(long, default_value = "./var")]
    data_dir: PathBuf,
}

impl DataDir {
    fn log(&self) -> PathBuf {
        self.data_dir.join("audit")
    }
    fn keys(&self) -> PathBuf {
        self.data_dir.join("keys")
    }
}

/// The `audit` subcommands.
#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the whole tree from every entry and check every stored checkpoint's signature
    /// and its consistency with the next; names the first bad index and exits non-zero.
    Verify {
        #[command(flatten)]
        dir: DataDir,
        /// Pinned verifier keys (note format); by default the current, previous and retired
        /// keys in <data-dir>/keys.
        #[arg(long = "vkey")]
        vkeys: Vec<String>,
    },
    /// Print the latest signed checkpoint.
    Checkpoint {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print the verifier keys to publish and pin, current key first.
    Vkey {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print the tlog-proof of an entry against a signed checkpoint.
    Prove {
        #[command(flatten)]
        dir: DataDir,
        /// The entry index.
        #[arg(long)]
        index: u64,
        /// The tree size of the checkpoint to prove against; by default the latest. A signed
        /// checkpoint must exist at that size.
        #[arg(long)]
        size: Option<u64>,
    },
    /// Print the consistency proof between two tree sizes, one base64 hash per line.
    Consistency {
        #[command(flatten)]
        dir: DataDir,
        /// The older tree size.
        #[arg(long)]
        old: u64,
        /// The newer tree size; by default the latest.
        #[arg(long)]
        new: Option<u64>,
    },
    /// Print one entry, as JSON (default) or as its raw protobuf bytes.
    Entry {
        #[command(flatten)]
        dir: DataDir,
        /// The entry index.
        #[arg(long)]
        index: u64,
        /// Write the raw leaf bytes to stdout.
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        /// Print JSON (the default).
        #[arg(long)]
        json: bool,
    },
    /// Verify a receipt (tlog-proof text) offline against a pinned verifier key.
    VerifyReceipt {
        /// The tlog-proof file.
        file: PathBuf,
        /// The pinned verifier key (note format).
        #[arg(long)]
        vkey: String,
        /// The file with the entry's raw bytes.
        #[arg(long)]
        entry: PathBuf,
    },
    /// Start a key rotation: the current key becomes the previous one, a new key is made, and
    /// a key-rotation entry is appended, signed by both keys. Retire the old key later.
    RotateKey {
        #[command(flatten)]
        dir: DataDir,
    },
    /// End a rotation overlap: delete the previous key so only the new key signs.
    RetireKey {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Append test entries under load and print each receipt as a JSON line (crash tests).
    #[command(hide = true)]
    Soak {
        #[command(flatten)]
        dir: DataDir,
        /// The log origin.
        #[arg(long, default_value = "soak.ketenpoort.test/audit")]
        origin: String,
        /// Concurrent writers.
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// Stop after this many appends in total (default: run until killed).
        #[arg(long)]
        count: Option<u64>,
    },
}

/// Runs an `audit` subcommand.
pub fn run(args: AuditArgs) -> Result<()> {
    match args.command {
        AuditCommand::Verify { dir, vkeys } => verify(&dir, &vkeys),
        AuditCommand::Checkpoint { dir } => {
            let (_db, store) = Store::open_dir(&dir.log())?;
            let (_, note) = store
                .latest_checkpoint()?
                .context("the log has no checkpoint")?;
            print!("{note}");
            Ok(())
        }
        AuditCommand::Vkey { dir } => {
            let signers = read_signers(&dir.keys())?;
            if signers.is_empty() {
                bail!("no audit keys in {}", dir.keys().display());
            }
            for s in signers {
                println!("{}", s.verifier_key());
            }
            Ok(())
        }
        AuditCommand::Prove { dir, index, size } => prove(&dir, index, size),
        AuditCommand::Consistency { dir, old, new } => {
            let (_db, store) = Store::open_dir(&dir.log())?;
            let (latest, _) = store
                .latest_checkpoint()?
                .context("the log has no checkpoint")?;
            let new = new.unwrap_or(latest);
            if new > latest {
                bail!("size {new} is beyond the latest checkpoint (size {latest})");
            }
            for h in ketenpoort::audit::hash::prove_tree(new, old, &store)? {
                println!("{}", B64.encode(h));
            }
            Ok(())
        }
        AuditCommand::Entry {
            dir,
            index,
            raw,
            json: _,
        } => {
            let (_db, store) = Store::open_dir(&dir.log())?;
            let bytes = store
                .entry(index)?
                .with_context(|| format!("no entry {index}"))?;
            if raw {
                std::io::stdout().write_all(&bytes)?;
            } else {
                let e = entry::decode(index, &bytes)?;
                println!("{}", serde_json::to_string_pretty(&entry::to_json(&e))?);
            }
            Ok(())
        }
        AuditCommand::VerifyReceipt { file, vkey, entry } => {
            let proof = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let bytes =
                std::fs::read(&entry).with_context(|| format!("reading {}", entry.display()))?;
            let v = verify_receipt(&proof, &bytes, &vkey)?;
            println!(
                "ok: entry {} is in {} at tree size {}",
                v.index, v.checkpoint.origin, v.checkpoint.size
            );
            Ok(())
        }
        AuditCommand::RotateKey { dir } => rotate_key(&dir),
        AuditCommand::RetireKey { dir } => {
            match keys::retire_previous(&dir.keys())? {
                Some(v) => println!("retired {v}"),
                None => println!("no previous key to retire"),
            }
            Ok(())
        }
        AuditCommand::Soak {
            dir,
            origin,
            writers,
            count,
        } => soak(&dir, &origin, writers, count),
    }
}

fn verify(dir: &DataDir, vkeys: &[String]) -> Result<()> {
    let verifiers: Vec<Verifier> = if vkeys.is_empty() {
        keys::known_verifiers(&dir.keys())?
    } else {
        vkeys
            .iter()
            .map(|k| Verifier::parse(k))
            .collect::<Result<_, _>>()?
    };
    if verifiers.is_empty() {
        bail!(
            "no verifier keys: pass --vkey or keep the keys in {}",
            dir.keys().display()
        );
    }
    let started = Instant::now();
    let mut last = Instant::now();
    let mut progress = |done: u64| {
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!("verified {done} entries ...");
        }
    };
    let report = verify_dir(&dir.log(), &verifiers, &mut progress)
        .context("audit log verification FAILED")?;
    let elapsed = started.elapsed().as_secs_f64();
    let root = report
        .latest
        .map(|(size, root)| format!("size {size}, root {}", B64.encode(root)))
        .unwrap_or_default();
    println!(
        "ok: {} entries and {} checkpoints verified in {elapsed:.2}s; latest checkpoint {root}",
        report.entries, report.checkpoints
    );
    Ok(())
}

fn prove(dir: &DataDir, index: u64, size: Option<u64>) -> Result<()> {
    let (_db, store) = Store::open_dir(&dir.log())?;
    let (size, signed) = match size {
        None => store
            .latest_checkpoint()?
            .context("the log has no checkpoint")?,
        Some(n) => {
            let note = store
                .checkpoint_at(n)?
                .with_context(|| format!("no signed checkpoint at size {n}"))?;
            (n, note)
        }
    };
    let proof = TlogProof {
        extra: None,
        index,
        hashes: prove_record(size, index, &store)?,
        signed_checkpoint: signed,
    };
    print!("{}", proof.format());
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn rotate_key(dir: &DataDir) -> Result<()> {
    let old = read_signers(&dir.keys())?;
    let Some(current) = old.first() else {
        bail!("no audit key in {}", dir.keys().display());
    };
    let origin = current.name().to_owned();
    let old_vkey = current.verifier_key();
    let new = keys::rotate(&dir.keys())?;
    let signers = keys::load_signers(&dir.keys(), &origin)?;
    let rt = runtime()?;
    rt.block_on(async {
        let log = AuditLog::open(AuditConfig::new(dir.log(), origin.clone()), signers)?;
        let e = AuditEntry {
            version: entry::ENTRY_VERSION,
            time: Some(entry::now()),
            event: AuditEvent::KeyRotation as i32,
            operation: "audit rotate-key".into(),
            detail: format!("new key {}; previous key {old_vkey}", new.verifier_key()),
            ..Default::default()
        };
        let receipt = log.append(&e, vec![]).await?;
        log.shutdown().await;
        println!("new verifier key: {}", new.verifier_key());
        println!(
            "key rotation recorded as entry {}, signed by both keys",
            receipt.index
        );
        println!("publish the new key; run `ketenpoort audit retire-key` when the overlap ends");
        Ok::<_, anyhow::Error>(())
    })
}

fn soak(dir: &DataDir, origin: &str, writers: usize, count: Option<u64>) -> Result<()> {
    let signers = keys::load_signers(&dir.keys(), origin)?;
    let rt = runtime()?;
    rt.block_on(async {
        let log = AuditLog::open(AuditConfig::new(dir.log(), origin), signers)?;
        let remaining = Arc::new(std::sync::atomic::AtomicI64::new(
            count.map(|c| c as i64).unwrap_or(i64::MAX),
        ));
        let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for w in 0..writers.max(1) {
            let (log, remaining, stdout) = (log.clone(), remaining.clone(), stdout.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while remaining.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) > 0 {
                    n += 1;
                    let e = soak_entry(w, n);
                    // A state change with each entry, so a crash test can check they commit
                    // together.
                    let key = format!("s/soak/{}", e.exchange_id);
                    let change = StateChange::put(key, e.exchange_id.clone().into_bytes());
                    let r = log.append(&e, vec![change]).await?;
                    let line = serde_json::json!({
                        "index": r.index,
                        "entry": B64.encode(&r.entry),
                        "proof": r.proof,
                    });
                    let mut out = stdout.lock().unwrap_or_else(|e| e.into_inner());
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        log.shutdown().await;
        Ok(())
    })
}

/// This process's id and start time: distinct for every soak run.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}.{nanos}", std::process::id())
    })
}

fn soak_entry(writer: usize, n: u64) -> AuditEntry {
    AuditEntry {
        version: entry::ENTRY_VERSION,
        time: Some(entry::now()),
        event: AuditEvent::Exchange as i32,
        operation: "Soak".into(),
        // Unique across runs on one log (a crash test restarts soak many times).
        exchange_id: format!("soak-{}-{writer}-{n}", run_id()),
        exchange_kind: "lookup".into(),
        requester_party: format!("party-{writer}"),
        counterpart_party: "holder".into(),
        ..Default::default()
    }
}
