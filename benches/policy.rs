//! Policy engine benchmarks: decisions on the shipped set and a generated 1,000-rule set,
//! and load + compile of 1,000 rules. Besides criterion's means, a sampling loop prints
//! p50/p99 per decision (criterion reports means only).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ketenpoort::policy::generate::{GENERATED_NOW, generate, sample_requests};
use ketenpoort::policy::{ExchangeRequest, Grounds, PolicySet, load_fixtures};
use time::OffsetDateTime;

type Case = (ExchangeRequest, Grounds, OffsetDateTime);

fn shipped() -> (PolicySet, Vec<Case>) {
    let dir = Path::new("policies");
    let set = PolicySet::load(dir).expect("the shipped policy set loads");
    let cases = load_fixtures(&dir.join("tests"))
        .expect("the shipped fixtures load")
        .into_iter()
        .map(|c| (c.request, c.grounds, c.now))
        .collect();
    (set, cases)
}

fn generated() -> (PolicySet, Vec<Case>) {
    let set = PolicySet::from_sources("generated", generate(1000, 1, 0))
        .expect("the generated set loads");
    let cases = sample_requests(&set, 1000, 9)
        .into_iter()
        .map(|(r, g)| (r, g, GENERATED_NOW))
        .collect();
    (set, cases)
}

/// Times single decisions and prints p50/p99/max (nanoseconds per decision).
fn percentiles(name: &str, set: &PolicySet, cases: &[Case]) {
    let rounds = 200_000 / cases.len().max(1) + 1;
    let mut samples = Vec::with_capacity(rounds * cases.len());
    for _ in 0..rounds {
        for (r, g, now) in cases {
            let t = Instant::now();
            black_box(set.decide(black_box(r), g, *now));
            samples.push(t.elapsed());
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let allowed = cases
        .iter()
        .filter(|(r, g, n)| set.decide(r, g, *n).is_allowed())
        .count();
    eprintln!(
        "{name}: {} decisions over {} requests ({} allowed): p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        cases.len(),
        allowed,
        at(0.50),
        at(0.99),
        samples.last().copied().unwrap_or(Duration::ZERO)
    );
}

fn bench(c: &mut Criterion) {
    let (set, cases) = shipped();
    percentiles("decide/shipped", &set, &cases);
    c.bench_function("decide/shipped (per fixture request)", |b| {
        let mut i = 0;
        b.iter(|| {
            let (r, g, now) = &cases[i % cases.len()];
            i += 1;
            black_box(set.decide(r, g, *now))
        })
    });

    let (set, cases) = generated();
    percentiles("decide/generated-1000", &set, &cases);
    c.bench_function("decide/generated-1000", |b| {
        let mut i = 0;
        b.iter(|| {
            let (r, g, now) = &cases[i % cases.len()];
            i += 1;
            black_box(set.decide(r, g, *now))
        })
    });

    let files = generate(1000, 1, 0);
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("load+compile 1000 rules", |b| {
        b.iter(|| {
            PolicySet::from_sources("generated", black_box(files.clone()))
                .expect("the generated set loads")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
