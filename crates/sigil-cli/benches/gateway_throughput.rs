//! Requests per second through `sigil gateway`, beside the same upstream called directly and
//! beside nginx as a mutual-TLS reverse proxy, in one run with one client.
//!
//! Processes on loopback: `sigil serve` and `sigil gateway` from this build, and Debian's nginx.
//! The upstream is an in-process hyper HTTP/1.1 server that answers every request with a fixed
//! 24-byte JSON body. The client is hyper's low-level HTTP/1.1 client over tokio-rustls in the
//! same process. It opens CONNECTIONS keep-alive connections, presenting an agent SVID over TLS
//! (plain TCP for the direct calls), and sends `GET /bench/data` back to back on each for SECONDS
//! seconds. Every response must be 200 with the upstream's body.
//!
//! Both proxies serve the gateway's SVID, verify the client chain against the trust bundle and
//! reuse keep-alive connections to the upstream. The gateway also applies the SPIFFE leaf rules
//! once per connection, and for each request the revocation and status checks, the route lookup
//! and a policy decision (memoised per policy snapshot), and adds `X-Sigil-Agent` and
//! `X-Sigil-Owner`. nginx checks the CRL once
//! per connection and adds the client serial as a header. nginx runs one worker per core; access
//! logging is off in nginx, and the gateway logs allowed requests only at debug level.
//!
//! The three targets take turns for ROUNDS rounds, so that drift in the machine's load touches
//! all of them alike; the summary gives each target's median round.
//!
//! Run: `cargo bench -p sigil-cli --bench gateway_throughput -- [CONNECTIONS] [SECONDS] [ROUNDS]`
//!
//! `SIGIL_BENCH_GATEWAY_ARGS` adds options to `sigil gateway` (for example `--workers 1`), and
//! `SIGIL_BENCH_NGINX_WORKERS` sets nginx's `worker_processes` (default `auto`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark aborts on any setup failure"
)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{
    Authority, Gateway, Nginx, UPSTREAM_BODY, client_tls, connect_plain, connect_tls, get, ms,
    nginx_main_config, nginx_temp_paths, quantile, start_upstream,
};

/// Where the client sends its requests.
#[derive(Clone, Copy)]
enum Target {
    Direct(SocketAddr),
    Gateway(SocketAddr),
    Nginx(SocketAddr),
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Direct(_) => "upstream direct (plain HTTP)",
            Self::Gateway(_) => "sigil gateway (mTLS)",
            Self::Nginx(_) => "nginx proxy (mTLS)",
        }
    }
}

/// The outcome of one target in one round.
struct LoadResult {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let connections = args.first().copied().unwrap_or(32) as usize;
    let seconds = args.get(1).copied().unwrap_or(10);
    let rounds = args.get(2).copied().unwrap_or(3) as usize;

    let authority = Authority::start().await;
    let upstream = start_upstream().await;
    let gateway = Gateway::start(&authority, upstream).await;
    let (chain, key) = authority.enroll("load-agent").await;
    let tls = client_tls(&authority.bundle_pem, &chain, &key);
    wait_until_allowed(&tls, &gateway).await;

    let crl = authority.dir.path().join("crl.pem");
    authority.write_crl(&crl).await;
    let nginx_dir = authority.dir.path().join("nginx");
    let nginx = Nginx::start(&nginx_dir, |dir, addr| {
        nginx_proxy_config(dir, addr, &gateway.state, &authority.data, &crl, upstream)
    })
    .await;

    let targets = [
        Target::Direct(upstream),
        Target::Gateway(gateway.addr),
        Target::Nginx(nginx.addr),
    ];
    println!(
        "{connections} keep-alive connections, {seconds} s per target and round, {rounds} rounds"
    );
    let mut results: Vec<Vec<LoadResult>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (index, target) in targets.iter().enumerate() {
            let result = run_load(&tls, *target, connections, seconds).await;
            println!(
                "  round {round}: {:<30} {:>8.0} /s",
                target.name(),
                result.rate()
            );
            results[index].push(result);
        }
    }

    summarise(&targets, &mut results);
    if !nginx.error_log().trim().is_empty() {
        println!("nginx error log:\n{}", nginx.error_log());
    }
}

/// Waits until the gateway has loaded the agent and forwards its requests.
async fn wait_until_allowed(tls: &Arc<rustls::ClientConfig>, gateway: &Gateway) {
    let mut sender = connect_tls(tls, gateway.addr).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = get(&mut sender).await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never allowed the agent (status {status})\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `connections` connections to `target`, each sending requests back to back for
/// `seconds`.
async fn run_load(
    tls: &Arc<rustls::ClientConfig>,
    target: Target,
    connections: usize,
    seconds: u64,
) -> LoadResult {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(match target {
            Target::Direct(addr) => connect_plain(addr).await,
            Target::Gateway(addr) | Target::Nginx(addr) => connect_tls(tls, addr).await,
        });
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let (status, body) = get(&mut sender).await;
                    latencies.push(sent.elapsed());
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    assert_eq!(body, UPSTREAM_BODY, "unexpected body");
                }
                latencies
            })
        })
        .collect();

    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    LoadResult {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

/// Prints each target's median round with its latency quantiles, and the gateway's rate as a
/// share of nginx's.
fn summarise(targets: &[Target], results: &mut [Vec<LoadResult>]) {
    println!("median round per target:");
    let mut medians = Vec::new();
    for (target, rounds) in targets.iter().zip(results.iter_mut()) {
        rounds.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        let middle = rounds.len() / 2;
        let median = &mut rounds[middle];
        median.latencies.sort();
        println!(
            "  {:<30} {:>8.0} /s  p50 {}  p99 {}",
            target.name(),
            median.rate(),
            ms(quantile(&median.latencies, 0.5)),
            ms(quantile(&median.latencies, 0.99)),
        );
        medians.push(median.rate());
    }
    if let [_, gateway, nginx] = medians[..] {
        println!("gateway / nginx: {:.1} %", gateway / nginx * 100.0);
    }
}

/// Returns nginx's `worker_processes`: `SIGIL_BENCH_NGINX_WORKERS`, or `auto` (one per core).
fn nginx_workers() -> String {
    std::env::var("SIGIL_BENCH_NGINX_WORKERS").unwrap_or_else(|_| "auto".into())
}

/// An nginx configuration for an mTLS reverse proxy to `upstream`, with the gateway's SVID as
/// the serving certificate, Sigil's bundle and CRL, and a pool of keep-alive upstream
/// connections.
fn nginx_proxy_config(
    dir: &Path,
    addr: SocketAddr,
    gateway_state: &Path,
    data: &Path,
    crl: &Path,
    upstream: SocketAddr,
) -> String {
    format!(
        r#"{main}
http {{
    access_log off;
    {temp}
    # The client keeps each connection for the whole run.
    keepalive_requests 100000000;
    keepalive_timeout 300s;

    upstream tool {{
        server {upstream};
        keepalive 64;
        keepalive_requests 100000000;
    }}

    server {{
        listen {addr} ssl;
        ssl_certificate {state}/svid.pem;
        ssl_certificate_key {state}/svid.key;
        ssl_client_certificate {data}/bundle.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl {crl};

        location / {{
            proxy_pass http://tool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Sigil-Agent "";
            proxy_set_header X-Sigil-Owner "";
            proxy_set_header X-Client-Serial $ssl_client_serial;
        }}
    }}
}}
"#,
        main = nginx_main_config(dir, &nginx_workers()),
        temp = nginx_temp_paths(dir),
        state = gateway_state.display(),
        data = data.display(),
        crl = crl.display(),
    )
}
