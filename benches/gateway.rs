//! End-to-end throughput over mutual TLS on this machine: Ketenpoort exchanges (lookup with policy
//! decision and a durable audit append per call) against a bare mutual-TLS gRPC call on the same
//! server (a health check: TLS, HTTP/2 and tonic, but no policy and no audit), measured in one run.
//!
//! `cargo bench --bench gateway` prints ops/s and p50/p99 latency for each.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use ketenpoort::proto::v1 as pb;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Concurrent callers, spread over a few connections as real party systems would be.
const CONNECTIONS: usize = 4;
const CALLERS_PER_CONNECTION: usize = 16;
const CALLS_PER_CALLER: usize = 150;

struct Run {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure<F, Fut>(make_call: F) -> Run
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        for caller in 0..CALLERS_PER_CONNECTION {
            let make_call = make_call.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(CALLS_PER_CALLER);
                for i in 0..CALLS_PER_CALLER {
                    let t = Instant::now();
                    make_call(connection, caller * CALLS_PER_CALLER + i).await;
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("caller task"));
    }
    let elapsed = started.elapsed();
    all.sort();
    Run {
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let gw = TestGateway::start_with(|c| {
            c.limits.requests_per_second = 1_000_000;
            c.limits.burst = 1_000_000;
        })
        .await;
        let mut caw = gw.exchange("caw-oost-vlaanderen").await;
        for seq in 0..50 {
            caw.register_reference(req(pb::RegisterReferenceRequest {
                subject: subject(seq),
                holder_reference: String::new(),
            }))
            .await
            .expect("register");
        }
        let mut health = Vec::new();
        let mut police = Vec::new();
        for _ in 0..CONNECTIONS {
            health.push(HealthClient::new(gw.channel("pz-gent").await));
            police.push(gw.exchange("pz-gent").await);
        }

        for round in 0..2 {
            let clients = health.clone();
            let bare = measure(move |c, _| {
                let mut client = clients[c].clone();
                async move {
                    client
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .expect("health");
                }
            })
            .await;
            let clients = police.clone();
            let exchange = measure(move |c, i| {
                let mut client = clients[c].clone();
                async move {
                    client
                        .lookup(req(pb::LookupRequest {
                            subject: subject(u32::try_from(i % 100).expect("small")),
                            purpose: "protection-integrity".into(),
                            justification: String::new(),
                        }))
                        .await
                        .expect("lookup");
                }
            })
            .await;
            println!(
                "round {round}: bare mTLS call {:>8.0}/s p50 {:>6.2?} p99 {:>6.2?} | lookup exchange {:>8.0}/s p50 {:>6.2?} p99 {:>6.2?} | ratio {:.0}%",
                bare.ops_per_sec,
                bare.p50,
                bare.p99,
                exchange.ops_per_sec,
                exchange.p50,
                exchange.p99,
                100.0 * exchange.ops_per_sec / bare.ops_per_sec
            );
        }
        println!("audit log size after the run: {}", gw.gateway.log().size());
        drop(health);
        drop(police);
        drop(caw);
        gw.stop().await;
    });
}
