//! `ketenpoort bench` for a tiny duration: it starts both servers on 127.0.0.1, drives them over
//! mutual TLS and prints sane figures. No duration or rate threshold is asserted.

use serde_json::Value;

#[test]
fn bench_prints_positive_rates_for_echo_and_exchanges() {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
        .args([
            "bench",
            "--duration",
            "0.3",
            "--concurrency",
            "4",
            "--connections",
            "1",
            "--policies",
            policies,
            "--echo-payload",
            "1500",
            "--in-process",
            "--json",
        ])
        .output()
        .expect("runs ketenpoort bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["echo_payload_bytes"], 1500);
    assert!(report["echo"]["rate"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(report["echo"]["errors"], 0);
    for name in ["Lookup", "RequestContext"] {
        let exchange = &report["exchanges"][name];
        assert!(
            exchange["rate"].as_f64().is_some_and(|r| r > 0.0),
            "{name}: {exchange}"
        );
        assert_eq!(exchange["errors"], 0, "{name}: {exchange}");
        let p50 = exchange["p50_ms"].as_f64().expect("p50");
        let p99 = exchange["p99_ms"].as_f64().expect("p99");
        assert!(p50 > 0.0 && p50 <= p99, "{name}: {exchange}");
        assert!(exchange["ratio_to_echo"].as_f64().is_some_and(|r| r > 0.0));
        // One share of the echo per round, each against the echo of its own round.
        let by_round = exchange["ratio_to_echo_by_round"]
            .as_array()
            .expect("ratio_to_echo_by_round");
        assert_eq!(Some(by_round.len() as u64), report["rounds"].as_u64());
        assert!(
            by_round.iter().all(|r| r.as_f64().is_some_and(|r| r > 0.0)),
            "{name}: {exchange}"
        );
        // Read from /proc on Linux (ticks of 10 ms, so a short run may read as zero).
        assert!(
            exchange["cpu_us_per_call"]
                .as_f64()
                .is_some_and(|us| us >= 0.0),
            "{name}: {exchange}"
        );
    }
    // The same exchanges called on the gateway's API, without the RPC stack.
    for name in ["Lookup (in-process)", "RequestContext (in-process)"] {
        let target = &report["in_process"][name];
        assert!(
            target["rate"].as_f64().is_some_and(|r| r > 0.0),
            "{name}: {target}"
        );
        assert_eq!(target["errors"], 0, "{name}: {target}");
    }
    assert!(report["peak_rss_kib"].as_u64().is_some_and(|kib| kib > 0));
}

#[test]
fn bench_refuses_an_empty_echo_payload() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
        .args(["bench", "--echo-payload", "0"])
        .output()
        .expect("runs ketenpoort bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--echo-payload"), "{stderr}");
}
