//! Revocation latency at `sigil gateway`: the time from a decommission call returning to the
//! first request the gateway denies.
//!
//! Real processes on loopback: `sigil serve` and `sigil gateway` from this build, and an
//! in-process upstream. Each trial registers a fresh agent, attests it with a new key, opens a
//! keep-alive mutual-TLS connection to the gateway with its SVID and waits until a request
//! passes (the gateway has loaded the new agent). It then decommissions the agent and, from the
//! moment that call returns, sends requests back to back on the same connection until one is
//! denied. The latency includes that last request's round trip.
//!
//! The decommission is an admin API call by default. With `cli`, it is a `sigil agent
//! decommission` process, timed from its exit.
//!
//! Run: `cargo bench -p sigil-cli --bench revocation -- [TRIALS] [cli]`

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark aborts on any setup failure"
)]

mod support;

use std::time::{Duration, Instant};

use support::{Authority, Gateway, client_tls, connect_tls, get, ms, quantile, start_upstream};

/// How long one trial may wait for the gateway to allow a new agent or deny a retired one.
const TRIAL_LIMIT: Duration = Duration::from_secs(10);

/// How the agent is decommissioned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    AdminApi,
    Cli,
}

/// What one trial measured.
struct Trial {
    /// From the decommission returning to the denial's response.
    latency: Duration,
    /// Requests sent after the decommission returned, the denied one included.
    requests: u32,
    /// The denial's error code.
    code: String,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials = args
        .iter()
        .find_map(|arg| arg.parse::<usize>().ok())
        .unwrap_or(200);
    let trigger = if args.iter().any(|arg| arg == "cli") {
        Trigger::Cli
    } else {
        Trigger::AdminApi
    };

    let authority = Authority::start().await;
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&authority, upstream).await;

    let mut results = Vec::with_capacity(trials);
    for index in 0..trials {
        results.push(run_trial(&authority, &gateway, index, trigger).await);
    }
    report(&results, trigger);
}

async fn run_trial(
    authority: &Authority,
    gateway: &Gateway,
    index: usize,
    trigger: Trigger,
) -> Trial {
    let name = format!("revoke-{index}");
    let (chain, key) = authority.enroll(&name).await;
    let tls = client_tls(&authority.bundle_pem, &chain, &key);
    let mut sender = connect_tls(&tls, gateway.addr).await;

    let waiting = Instant::now();
    loop {
        let (status, _) = get(&mut sender).await;
        if status == 200 {
            break;
        }
        assert!(
            waiting.elapsed() < TRIAL_LIMIT,
            "the gateway never allowed {name} (last status {status})\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    decommission(authority, &name, trigger).await;
    let returned = Instant::now();
    let mut requests = 0;
    loop {
        let (status, body) = get(&mut sender).await;
        requests += 1;
        if status != 200 {
            return Trial {
                latency: returned.elapsed(),
                requests,
                code: error_code(&body),
            };
        }
        assert!(
            returned.elapsed() < TRIAL_LIMIT,
            "the gateway still allows {name} 10 s after its decommission\n{}",
            gateway.log()
        );
    }
}

async fn decommission(authority: &Authority, name: &str, trigger: Trigger) {
    match trigger {
        Trigger::AdminApi => authority.decommission(name).await,
        Trigger::Cli => {
            let mut command = tokio::process::Command::from(authority.command());
            let output = command
                .args(["agent", "decommission", name, "--reason", "benchmark"])
                .output()
                .await
                .expect("sigil agent decommission");
            assert!(
                output.status.success(),
                "sigil agent decommission failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

fn report(results: &[Trial], trigger: Trigger) {
    let mut latencies: Vec<Duration> = results.iter().map(|trial| trial.latency).collect();
    latencies.sort();
    let first_denied = results.iter().filter(|trial| trial.requests == 1).count();
    let mut codes: Vec<&str> = results.iter().map(|trial| trial.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();

    let source = match trigger {
        Trigger::AdminApi => "POST /v1/admin/agents/NAME/decommission returning",
        Trigger::Cli => "`sigil agent decommission` exiting",
    };
    println!("revocation latency at sigil gateway, from {source} to the first denied response");
    println!(
        "  {} trials: p50 {}, p90 {}, p99 {}, max {}",
        latencies.len(),
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.9)),
        ms(quantile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "  denied on the first request after the call returned: {first_denied} of {}",
        results.len()
    );
    println!("  error codes: {}", codes.join(", "));
}
