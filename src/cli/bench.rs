//! `ketenpoort bench`: end-to-end exchanges through the gateway against a bare tonic mutual-TLS
//! echo, both started in-process on 127.0.0.1, measured in the same run on the same cores.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use ketenpoort::bench::{BenchReport, BenchSettings, LoadReport};

/// DESIGN.md's targets for exchanges: calls per second, share of the echo rate, p99.
const TARGET_RATE: f64 = 5_000.0;
const TARGET_SHARE_OF_ECHO: f64 = 0.5;
const TARGET_P99: Duration = Duration::from_millis(25);

/// Measure the gateway's exchanges against a bare mutual-TLS echo in the same run.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Measured seconds per target (after a short warm-up); fractions allowed.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Concurrent callers per target.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections shared by the callers, per target.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Rounds the duration is split into; each round measures echo, Lookup and RequestContext (and
    /// the in-process targets) in turn, so background load on the machine hits all targets alike.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// The policy directory the in-process gateway loads.
    #[arg(long, default_value = "policies")]
    policies: PathBuf,
    /// Append this many synthetic entries to the gateway's audit log before measuring, to
    /// measure with a log of realistic size (e.g. 1000000).
    #[arg(long, default_value_t = 0)]
    prefill: u64,
    /// Bytes the echo baseline sends and gets back per call. The default is about a Lookup
    /// request; an exchange's answer, with its receipt, is 1 to 2 KB.
    #[arg(long, default_value_t = 64)]
    echo_payload: usize,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also call the gateway's Lookup and RequestContext in-process (its API directly, without
    /// gRPC or TLS), to see how much of an exchange's cost is the gateway's own.
    #[arg(long)]
    in_process: bool,
}

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    // Quiet by default, so the table stands alone; RUST_LOG (e.g. ketenpoort::audit=debug, which
    // shows each group commit's size and timings) turns the gateway's log on, on stderr.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0 && args.duration <= 600.0,
        "--duration must be between 0 and 600 seconds"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.concurrency),
        "--concurrency must be between 1 and 10000"
    );
    anyhow::ensure!(
        (1..=64).contains(&args.connections),
        "--connections must be between 1 and 64"
    );
    anyhow::ensure!(
        (1..=1 << 20).contains(&args.echo_payload),
        "--echo-payload must be between 1 and 1048576 bytes"
    );
    let settings = BenchSettings {
        duration: Duration::from_secs_f64(args.duration),
        concurrency: args.concurrency,
        connections: args.connections,
        rounds: args.rounds.clamp(1, 100),
        policies: args.policies.clone(),
        prefill: args.prefill,
        echo_payload: args.echo_payload,
        in_process: args.in_process,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime
        .block_on(ketenpoort::bench::run(&settings))
        .context("benchmark failed")?;
    let peak_rss_kib = peak_rss_kib();
    if args.json {
        println!("{}", to_json(&settings, &report, peak_rss_kib));
    } else {
        print_table(&settings, &report, peak_rss_kib);
    }
    Ok(())
}

/// The process's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn ratio(report: &LoadReport, echo: &LoadReport) -> f64 {
    if echo.rate() > 0.0 {
        report.rate() / echo.rate()
    } else {
        0.0
    }
}

/// The share of the echo per round: each round's exchange rate against the same round's echo,
/// measured a few seconds apart, so the spread shows how much the machine itself varied.
fn round_ratios(report: &LoadReport, echo: &LoadReport) -> Vec<f64> {
    report
        .run_rates()
        .iter()
        .zip(echo.run_rates())
        .map(|(&rate, &echo_rate)| {
            if echo_rate > 0.0 {
                rate / echo_rate
            } else {
                0.0
            }
        })
        .collect()
}

/// Lowest, median and highest of `values` (none when empty).
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => return None,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Some((sorted[0], median, sorted[sorted.len() - 1]))
}

fn meets_targets(report: &LoadReport, echo: &LoadReport) -> bool {
    report.errors == 0
        && report.rate() >= TARGET_RATE
        && ratio(report, echo) >= TARGET_SHARE_OF_ECHO
        && report.percentile(0.99) <= TARGET_P99
}

fn report_json(report: &LoadReport) -> serde_json::Value {
    json!({
        "calls": report.calls(),
        "errors": report.errors,
        "first_error": report.first_error,
        "seconds": report.elapsed.as_secs_f64(),
        "rate": report.rate(),
        "p50_ms": millis(report.percentile(0.50)),
        "p90_ms": millis(report.percentile(0.90)),
        "p99_ms": millis(report.percentile(0.99)),
        "max_ms": millis(report.max()),
        "cpu_us_per_call": report.cpu_per_call_us(),
        "busy_cpus": report.busy_cpus(),
    })
}

fn to_json(settings: &BenchSettings, report: &BenchReport, rss: Option<u64>) -> serde_json::Value {
    let exchanges: serde_json::Map<String, serde_json::Value> = report
        .exchanges
        .iter()
        .map(|(name, r)| {
            let mut value = report_json(r);
            value["ratio_to_echo"] = json!(ratio(r, &report.echo));
            value["ratio_to_echo_by_round"] = json!(round_ratios(r, &report.echo));
            value["meets_targets"] = json!(meets_targets(r, &report.echo));
            ((*name).to_owned(), value)
        })
        .collect();
    json!({
        "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        "duration_s": settings.duration.as_secs_f64(),
        "concurrency": settings.concurrency,
        "connections": settings.connections,
        "rounds": settings.rounds,
        "echo_payload_bytes": settings.echo_payload,
        "echo": report_json(&report.echo),
        "exchanges": exchanges,
        "in_process": report
            .in_process
            .iter()
            .map(|(name, r)| ((*name).to_owned(), report_json(r)))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
        "peak_rss_kib": rss,
        "audit_log_entries_at_start": report.log_size_at_start,
    })
}

fn print_table(settings: &BenchSettings, report: &BenchReport, rss: Option<u64>) {
    println!(
        "ketenpoort bench: {} CPUs, {} callers over {} mutual-TLS connections per target, {:.1} s each in {} rounds",
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        settings.concurrency,
        settings.connections,
        settings.duration.as_secs_f64(),
        settings.rounds
    );
    println!(
        "audit log at start: {} entries; echo payload: {} bytes each way",
        report.log_size_at_start, settings.echo_payload
    );
    println!(
        "{:<27} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>6}",
        "target",
        "calls",
        "errors",
        "calls/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "vs echo",
        "CPU µs/call",
        "busy"
    );
    let row = |name: &str, r: &LoadReport, versus: &str| {
        let cpu = r
            .cpu_per_call_us()
            .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"));
        let busy = r
            .busy_cpus()
            .map_or_else(|| "-".to_owned(), |cpus| format!("{cpus:.2}"));
        println!(
            "{:<27} {:>9} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>11} {:>6}",
            name,
            r.calls(),
            r.errors,
            r.rate(),
            millis(r.percentile(0.50)),
            millis(r.percentile(0.90)),
            millis(r.percentile(0.99)),
            millis(r.max()),
            versus,
            cpu,
            busy
        );
    };
    row("echo (bare tonic mTLS)", &report.echo, "100%");
    for (name, r) in &report.exchanges {
        row(name, r, &format!("{:.0}%", ratio(r, &report.echo) * 100.0));
    }
    // Not exchanges over mutual TLS: no share of the echo, no target.
    for (name, r) in &report.in_process {
        row(name, r, "-");
    }
    for (name, r) in std::iter::once(("echo", &report.echo)).chain(
        report
            .exchanges
            .iter()
            .chain(&report.in_process)
            .map(|(n, r)| (*n, r)),
    ) {
        if let Some(error) = &r.first_error {
            println!("first error of {name}: {error}");
        }
    }
    for (name, r) in &report.exchanges {
        if settings.rounds > 1
            && let Some((low, median, high)) = spread(&round_ratios(r, &report.echo))
        {
            println!(
                "{name} vs echo by round: {:.0}% to {:.0}%, median {:.0}%",
                low * 100.0,
                high * 100.0,
                median * 100.0
            );
        }
    }
    match rss {
        Some(kib) => println!("peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS (VmHWM): unavailable"),
    }
    for (name, r) in &report.exchanges {
        println!(
            "target {name} (>= {TARGET_RATE:.0}/s, >= {:.0}% of echo, p99 <= {} ms, no errors): {}",
            TARGET_SHARE_OF_ECHO * 100.0,
            TARGET_P99.as_millis(),
            if meets_targets(r, &report.echo) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_gives_lowest_median_and_highest() {
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[0.4]), Some((0.4, 0.4, 0.4)));
        assert_eq!(spread(&[0.5, 0.1, 0.3]), Some((0.1, 0.3, 0.5)));
        assert_eq!(spread(&[0.4, 0.1, 0.3, 0.2]), Some((0.1, 0.25, 0.4)));
    }

    #[test]
    fn round_ratios_pair_each_round_with_its_echo() {
        let run = |calls: usize| {
            LoadReport::from_samples(vec![1; calls], 0, Duration::from_secs(1), None)
        };
        let mut echo = run(100);
        echo.merge(run(200));
        let mut lookup = run(40);
        lookup.merge(run(50));
        assert_eq!(round_ratios(&lookup, &echo), vec![0.4, 0.25]);
    }
}
