//! Workload API latency: FetchX509SVID and FetchJWTSVID as a SPIFFE client sees them, through
//! the `spiffe` crate's client over the Unix socket of a `sigil-agent` daemon.
//!
//! The authority and the daemon run in this process, as in `sigil demo`. FetchJWTSVID is served
//! from the daemon's per-audience cache after the first call, which is the steady state of an
//! agent calling one tool; the first call's cost (an mTLS round trip to the authority) is
//! reported separately.
//!
//! Run: `cargo bench -p sigil-cli --bench workload_api -- [CALLS]`

#![allow(
    clippy::expect_used,
    reason = "a benchmark aborts on any setup failure"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_agent::RunOptions;
use sigil_agent::daemon::{DaemonOptions, run_daemon};
use sigil_agent::files::OutputDir;
use sigil_agent::workload::{JwtSource, WorkloadApiServer, serve_workload_api};
use sigil_client::{Identity, SigilClient};
use sigil_proto::{AddOwnerRequest, CreateTokenRequest, RegisterAgentRequest, TokenResponse};
use sigil_server::layout::DataDir;
use sigil_server::{ServeOptions, serve};
use spiffe::WorkloadApiClient;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);

    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = DataDir::new(dir.path().join("data"));
    sigil_server::init::initialize(
        &data_dir,
        "bench.example",
        &[],
        time::OffsetDateTime::now_utc(),
    )
    .await
    .expect("init");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(serve(
        ServeOptions::new(data_dir.clone()),
        listener,
        wait(stopped.clone()),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bundle = std::fs::read_to_string(data_dir.bundle()).expect("bundle");
    let chain = std::fs::read_to_string(data_dir.admin_cert()).expect("admin cert");
    let key = std::fs::read_to_string(data_dir.admin_key()).expect("admin key");
    let admin = SigilClient::new(
        &url,
        &bundle,
        Some(Identity {
            chain_pem: &chain,
            key_pem: &key,
        }),
    )
    .expect("client");
    let _: serde_json::Value = admin
        .post_json(
            "/v1/admin/owners",
            &AddOwnerRequest {
                email: "bench@example.org".into(),
                name: None,
            },
        )
        .await
        .expect("owner");
    let request = RegisterAgentRequest {
        name: "bench-bot".into(),
        owner: "bench@example.org".into(),
        purpose: None,
        entitlements: vec![],
        ttl: Some("1h".into()),
    };
    let _: serde_json::Value = admin
        .post_json("/v1/admin/agents", &request)
        .await
        .expect("agent");
    let token: TokenResponse = admin
        .post_json(
            "/v1/admin/tokens",
            &CreateTokenRequest {
                agent: "bench-bot".into(),
                ttl: None,
            },
        )
        .await
        .expect("token");

    let out = OutputDir::new(dir.path().join("bench-bot"));
    let socket = dir.path().join("agent.sock");
    let options = RunOptions {
        server: url.clone(),
        bundle_pem: bundle.clone(),
        join_token: Some(token.token),
        out: out.clone(),
    };
    let (publish, material) = watch::channel(None);
    let jwt = Arc::new(JwtSource::new(&url, &bundle, out).expect("jwt source"));
    tokio::spawn(serve_workload_api(
        WorkloadApiServer {
            socket: socket.clone(),
            x509: material.clone(),
            jwt,
        },
        wait(stopped.clone()),
    ));
    tokio::spawn(run_daemon(
        DaemonOptions {
            run: options,
            on_rotate: None,
        },
        publish,
        wait(stopped.clone()),
    ));
    let mut ready = material;
    ready.wait_for(Option::is_some).await.expect("attested");
    while !socket.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let client = WorkloadApiClient::connect_to(format!("unix:{}", socket.display()))
        .await
        .expect("connect");
    let first_jwt = Instant::now();
    client
        .fetch_jwt_token(["https://tool.example"], None)
        .await
        .expect("jwt");
    let first_jwt = first_jwt.elapsed();

    let x509 = measure(calls, || async {
        client.fetch_x509_svid().await.expect("x509");
    })
    .await;
    let jwts = measure(calls, || async {
        client
            .fetch_jwt_token(["https://tool.example"], None)
            .await
            .expect("jwt");
    })
    .await;

    println!("calls per RPC: {calls}, one client, sequential");
    report("FetchX509SVID", &x509);
    report("FetchJWTSVID (cached)", &jwts);
    println!(
        "FetchJWTSVID first call (mTLS to the authority): {:.2} ms",
        first_jwt.as_secs_f64() * 1000.0
    );

    let _ = stop.send(true);
}

async fn measure<F, Fut>(calls: usize, mut call: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..calls / 10 {
        call().await;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

fn report(name: &str, samples: &[Duration]) {
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name}: p50 {:.1} µs, p99 {:.1} µs",
        p(0.50).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
}
