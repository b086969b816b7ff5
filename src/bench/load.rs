//! The load driver: a fixed number of concurrent callers for a bounded time and a bounded count,
//! and the latency statistics of what they did.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::Status;

/// The longest one call may take before it counts as an error, so a stuck call cannot hold up
/// the end of a run.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard and how long to drive one target.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Callers running at once, each waiting for its answer before the next call.
    pub concurrency: usize,
    /// How long the callers keep starting calls.
    pub duration: Duration,
    /// Most calls in total, so memory for latencies stays bounded whatever the duration.
    pub max_calls: u64,
}

/// What a run did: successful calls with their latencies, errors, and the wall time.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Latencies of the successful calls in microseconds, sorted.
    latencies_us: Vec<u32>,
    /// Calls that failed or timed out.
    pub errors: u64,
    /// From the start of the first call to the end of the last.
    pub elapsed: Duration,
    /// The first error, for the operator (status code and reason, never request data).
    pub first_error: Option<String>,
    /// CPU time the whole process (callers and servers) used meanwhile, where it can be read.
    pub cpu: Option<Duration>,
    /// Successful calls per second of each run this report is made of, in the order they were
    /// merged.
    run_rates: Vec<f64>,
}

impl LoadReport {
    /// Number of successful calls.
    pub fn calls(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// Successful calls per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.calls() as f64 / seconds
        } else {
            0.0
        }
    }

    /// The latency below which a fraction `q` (0 < q <= 1) of the successful calls finished
    /// (nearest-rank method); zero when nothing succeeded.
    pub fn percentile(&self, q: f64) -> Duration {
        let n = self.latencies_us.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        let index = rank.clamp(1, n) - 1;
        Duration::from_micros(u64::from(self.latencies_us[index]))
    }

    /// The slowest successful call.
    pub fn max(&self) -> Duration {
        self.percentile(1.0)
    }

    /// CPU time the process used per successful call, in microseconds.
    pub fn cpu_per_call_us(&self) -> Option<f64> {
        let calls = self.calls();
        self.cpu
            .filter(|_| calls > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / calls as f64)
    }

    /// How many CPUs the process kept busy on average over the run.
    pub fn busy_cpus(&self) -> Option<f64> {
        let seconds = self.elapsed.as_secs_f64();
        self.cpu
            .filter(|_| seconds > 0.0)
            .map(|cpu| cpu.as_secs_f64() / seconds)
    }

    /// Successful calls per second of each run this report is made of, in the order they were
    /// merged: one rate for a single run.
    pub fn run_rates(&self) -> &[f64] {
        &self.run_rates
    }

    /// Adds the calls of another run of the same target (time, calls and errors add up).
    pub fn merge(&mut self, other: LoadReport) {
        self.run_rates.extend(other.run_rates);
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.cpu = self.cpu.zip(other.cpu).map(|(a, b)| a + b);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Builds a report from unsorted latencies.
    pub fn from_samples(
        mut latencies_us: Vec<u32>,
        errors: u64,
        elapsed: Duration,
        first_error: Option<String>,
    ) -> Self {
        latencies_us.sort_unstable();
        let mut report = Self {
            latencies_us,
            errors,
            elapsed,
            first_error,
            cpu: None,
            run_rates: Vec::new(),
        };
        report.run_rates.push(report.rate());
        report
    }
}

/// Runs `call(worker, sequence)` from `settings.concurrency` tasks until the duration has passed or
/// `max_calls` calls were started, and measures each call.
pub async fn drive<F, Fut>(settings: LoadSettings, call: F) -> LoadReport
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let started = Arc::new(AtomicU64::new(0));
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    let deadline = start + settings.duration;
    let per_worker = usize::try_from(settings.max_calls)
        .unwrap_or(usize::MAX)
        .div_ceil(settings.concurrency.max(1))
        .min(1 << 20);
    let workers: Vec<_> = (0..settings.concurrency.max(1))
        .map(|worker| {
            let call = call.clone();
            let started = started.clone();
            let max_calls = settings.max_calls;
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_worker);
                let mut errors = 0u64;
                let mut first_error = None;
                while Instant::now() < deadline {
                    let sequence = started.fetch_add(1, Ordering::Relaxed);
                    if sequence >= max_calls {
                        break;
                    }
                    let begun = Instant::now();
                    match tokio::time::timeout(CALL_TIMEOUT, call(worker, sequence)).await {
                        Ok(Ok(())) => {
                            let micros = begun.elapsed().as_micros();
                            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                        }
                        Ok(Err(status)) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| describe(&status));
                        }
                        Err(_) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| "call timed out".to_owned());
                        }
                    }
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for worker in workers {
        match worker.await {
            Ok((latencies, worker_errors, worker_first)) => {
                all.extend(latencies);
                errors += worker_errors;
                if first_error.is_none() {
                    first_error = worker_first;
                }
            }
            Err(join) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("caller task failed: {join}"));
            }
        }
    }
    let mut report = LoadReport::from_samples(all, errors, start.elapsed(), first_error);
    report.cpu = cpu_before
        .zip(process_cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    report
}

/// The CPU time (user and system) this process has used so far, threads that ended included:
/// fields 14 and 15 of `/proc/self/stat`, in ticks of 1/100 s (Linux's fixed `USER_HZ`).
/// `None` where there is no such file.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 10))
}

/// utime + stime from the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so the fields are counted from its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A status as code and `ErrorInfo` reason: the message is left out, it could echo request data.
fn describe(status: &Status) -> String {
    use tonic_types::StatusExt;
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    format!("{:?} {reason}", status.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let report =
            LoadReport::from_samples((1..=100).rev().collect(), 0, Duration::from_secs(2), None);
        assert_eq!(report.calls(), 100);
        assert_eq!(report.percentile(0.5), Duration::from_micros(50));
        assert_eq!(report.percentile(0.99), Duration::from_micros(99));
        assert_eq!(report.max(), Duration::from_micros(100));
        assert!((report.rate() - 50.0).abs() < 1e-9);
        let mut empty = LoadReport::from_samples(Vec::new(), 3, Duration::ZERO, None);
        assert_eq!(empty.percentile(0.5), Duration::ZERO);
        assert_eq!(empty.rate(), 0.0);
        empty.merge(report);
        assert_eq!(empty.calls(), 100);
        assert_eq!(empty.errors, 3);
        assert_eq!(empty.percentile(0.5), Duration::from_micros(50));
    }

    #[test]
    fn merged_reports_keep_each_runs_rate_in_order() {
        let run = |calls: u32, secs: u64| {
            LoadReport::from_samples(vec![1; calls as usize], 0, Duration::from_secs(secs), None)
        };
        let mut total = run(100, 1);
        assert_eq!(total.run_rates(), vec![100.0]);
        total.merge(run(300, 1));
        let mut later = run(50, 2);
        later.merge(run(10, 1));
        total.merge(later);
        assert_eq!(total.run_rates(), vec![100.0, 300.0, 25.0, 10.0]);
        // The merged rate is over all calls and all time, not a mean of the runs' rates.
        assert!((total.rate() - 460.0 / 5.0).abs() < 1e-9);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        // pid, (comm with a space and a parenthesis), state, then fields 4..=13, utime, stime.
        let stat = "4242 (ketenpoort (x)) R 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        assert_eq!(parse_cpu_ticks("4242 (short) R 1"), None);
        let mut report = LoadReport::from_samples(vec![1; 4], 0, Duration::from_secs(2), None);
        report.cpu = Some(Duration::from_millis(3));
        assert_eq!(report.cpu_per_call_us(), Some(750.0));
        assert_eq!(report.busy_cpus(), Some(0.0015));
        let mut other = report.clone();
        other.cpu = None;
        report.merge(other);
        assert_eq!(
            report.cpu, None,
            "a run without a reading makes the sum unknown"
        );
    }

    #[tokio::test]
    async fn drive_stops_at_the_call_bound_and_counts_errors() {
        let settings = LoadSettings {
            concurrency: 4,
            duration: Duration::from_secs(60),
            max_calls: 40,
        };
        let report = drive(settings, |_, sequence| async move {
            if sequence % 4 == 0 {
                Err(Status::unavailable("down"))
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(report.calls() + report.errors, 40);
        assert_eq!(report.errors, 10);
        assert!(report.first_error.unwrap().contains("Unavailable"));
    }
}
