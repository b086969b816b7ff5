//! Audit log benchmarks (DESIGN.md targets):
//! - durable appends with concurrent writers, group commit: ≥ 20,000 entries/s;
//! - full verification of a 1M-entry log: ≥ 500,000 entries/s;
//! - inclusion proof at 1M entries: ≤ 50 µs;
//! - and the cost of opening one lookup's consulted-holder commitments, for the index rebuild.
//!
//! The 1M-entry log is built once in a temp dir (set KETENPOORT_BENCH_ENTRIES for another size).
//! Run with `cargo bench --bench audit`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ketenpoort::audit::store::Store;
use ketenpoort::audit::verify::verify_log;
use ketenpoort::audit::{AuditConfig, AuditLog, Signer, StateChange};
use ketenpoort::bench::prefill::synthetic_entry;

const ORIGIN: &str = "bench.ketenpoort.test/audit";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Appends `count` entries from `writers` concurrent tasks; returns the elapsed time.
async fn append_concurrently(log: &AuditLog, writers: u64, count: u64, start: u64) -> Duration {
    let began = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        let share = count / writers + u64::from(w < count % writers);
        tasks.push(tokio::spawn(async move {
            for i in 0..share {
                let n = start + w + i * writers;
                let change =
                    StateChange::put(format!("s/bench/{}", n % 1024), n.to_be_bytes().to_vec());
                log.append(&synthetic_entry(n), vec![change])
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    began.elapsed()
}

fn config(dir: &Path, batch_max: usize) -> AuditConfig {
    let mut c = AuditConfig::new(dir.join("audit"), ORIGIN);
    c.batch_max = batch_max;
    c.cache_capacity = 64 * 1024 * 1024;
    c
}

/// CPU time (user + system) this process has used, from /proc/self/stat; it shows the cost per
/// append independently of other load on the machine.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
    Some(Duration::from_millis(ticks * 10))
}

fn bench_appends(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::generate(ORIGIN).expect("key");
    let log = rt
        .block_on(async { AuditLog::open(config(dir.path(), 4096), vec![signer]) })
        .expect("open");
    let mut group = c.benchmark_group("audit_append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut next = 0u64;
    for writers in [256u64, 1024] {
        let cpu_before = cpu_time();
        let first = next;
        group.bench_function(format!("durable_group_commit_{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                let d = rt.block_on(append_concurrently(&log, writers, iters, next));
                next += iters;
                d
            })
        });
        if let (Some(a), Some(b)) = (cpu_before, cpu_time()) {
            let n = (next - first).max(1);
            eprintln!(
                "{writers} writers: {n} appends used {:.1} µs of CPU each (all threads)",
                (b - a).as_secs_f64() * 1e6 / n as f64
            );
        }
    }
    group.finish();
    rt.block_on(log.shutdown());
}

fn bench_large_log(c: &mut Criterion) {
    let entries: u64 = std::env::var("KETENPOORT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::generate(ORIGIN).expect("key");
    let log = rt
        .block_on(async { AuditLog::open(config(dir.path(), 8192), vec![signer.clone()]) })
        .expect("open");
    let built = rt.block_on(append_concurrently(&log, 1024, entries, 0));
    eprintln!(
        "built a {entries}-entry log in {:.1}s ({:.0} entries/s)",
        built.as_secs_f64(),
        entries as f64 / built.as_secs_f64()
    );
    let size = log.size();

    let mut group = c.benchmark_group("audit_log_1m");
    let mut k = 0u64;
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            // Spread the indexes over the whole log (a multiplicative hash of k).
            k = k.wrapping_add(1);
            let index = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % size;
            black_box(log.prove_inclusion(index, size).expect("proof"))
        })
    });
    group.bench_function("consistency_proof", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            let old = 1 + k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (size - 1);
            black_box(log.prove_consistency(old, size).expect("proof"))
        })
    });
    rt.block_on(log.shutdown());
    drop(log);

    let (_db, store) = Store::open_dir(&dir.path().join("audit")).expect("reopen");
    let verifiers = [signer.verifier()];
    // One verification alone, timed by wall clock and by CPU (which other load does not inflate).
    let (wall, cpu) = (Instant::now(), cpu_time());
    let report = verify_log(&store, &verifiers, &mut |_| {}).expect("verify");
    let wall = wall.elapsed();
    if let (Some(a), Some(b)) = (cpu, cpu_time()) {
        eprintln!(
            "one verification of {size} entries and {} signed checkpoints: {:.2} s wall ({:.0} entries/s), {:.2} s CPU ({:.2} µs of CPU per entry)",
            report.checkpoints,
            wall.as_secs_f64(),
            size as f64 / wall.as_secs_f64(),
            (b - a).as_secs_f64(),
            (b - a).as_secs_f64() * 1e6 / size as f64
        );
    }
    group.throughput(Throughput::Elements(size));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("full_verification", |b| {
        b.iter(|| {
            let report = verify_log(&store, &verifiers, &mut |_| {}).expect("verify");
            assert_eq!(report.entries, size);
        })
    });
    group.finish();
}

/// Opening a `LookupConsulted` entry's sealed list of consulted holders (and checking each
/// against the commitments), as the index rebuild on open does for each such entry.
fn bench_consulted_open(c: &mut Criterion) {
    use ketenpoort::audit::consulted::ConsultedKey;
    use ketenpoort::proto::v1::AuditEntry;
    let key = ConsultedKey::from_bytes(&[7; 32]);
    let consulted = vec!["caw-oost-vlaanderen".to_owned(), "cgg-eclips".to_owned()];
    let id = "l-019a3c5e7f21a1b2c3d4e5f60718";
    let entry = AuditEntry {
        exchange_id: id.into(),
        consulted_commitments: key.commitments(id, &consulted),
        consulted_sealed: key.seal(id, &consulted),
        ..Default::default()
    };
    let mut group = c.benchmark_group("consulted");
    group.bench_function("open_two_holders", |b| {
        b.iter(|| assert_eq!(black_box(key.open(black_box(&entry))).len(), 2))
    });
    group.bench_function("commit_and_seal_two_holders", |b| {
        b.iter(|| {
            black_box(key.commitments(id, black_box(&consulted)));
            black_box(key.seal(id, black_box(&consulted)))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_appends,
    bench_large_log,
    bench_consulted_open
);
criterion_main!(benches);
