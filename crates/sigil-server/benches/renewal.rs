//! Renewals per second end to end: mutual TLS handshake with the current SVID, CSR check,
//! issuance, the SQLite write with its audit event, and the response, against an in-process
//! authority on loopback.
//!
//! Each agent renews in a chain (every renewal presents the certificate the previous one
//! returned, as `sigil-agent` does), so every renewal opens a new TLS connection. Keys and CSRs
//! are generated before the clock starts, because they are the agent's cost, not the
//! authority's.
//!
//! Run: `cargo bench -p sigil-server --bench renewal -- [AGENTS] [RENEWALS_PER_AGENT]`

#![allow(
    clippy::expect_used,
    reason = "a benchmark aborts on any setup failure"
)]

use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use sigil_client::{Identity, SigilClient};
use sigil_proto::{
    AddOwnerRequest, AttestRequest, CreateTokenRequest, OwnerView, RegisterAgentRequest,
    RenewRequest, SvidResponse, TokenResponse,
};
use sigil_server::layout::DataDir;
use sigil_server::{ServeOptions, serve};
use tokio::net::TcpListener;

struct Credential {
    chain: String,
    key: String,
}

fn key_and_csr() -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let csr = CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    (key.serialize_pem(), csr)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let agents = args.first().copied().unwrap_or(16);
    let per_agent = args.get(1).copied().unwrap_or(64);

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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        ServeOptions::new(data_dir.clone()),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bundle = std::fs::read_to_string(data_dir.bundle()).expect("bundle");
    let admin_chain = std::fs::read_to_string(data_dir.admin_cert()).expect("admin cert");
    let admin_key = std::fs::read_to_string(data_dir.admin_key()).expect("admin key");
    let admin = SigilClient::new(
        &url,
        &bundle,
        Some(Identity {
            chain_pem: &admin_chain,
            key_pem: &admin_key,
        }),
    )
    .expect("admin client");
    let _: OwnerView = admin
        .post_json(
            "/v1/admin/owners",
            &AddOwnerRequest {
                email: "bench@example.org".into(),
                name: None,
            },
        )
        .await
        .expect("owner");

    let mut credentials = Vec::new();
    for i in 0..agents {
        credentials.push(enroll(&admin, &url, &bundle, &format!("agent-{i}")).await);
    }

    let csrs: Vec<Vec<(String, String)>> = (0..agents)
        .map(|_| (0..per_agent).map(|_| key_and_csr()).collect())
        .collect();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (credential, csrs) in credentials.into_iter().zip(csrs) {
        let (url, bundle) = (url.clone(), bundle.clone());
        tasks.push(tokio::spawn(async move {
            renew_chain(credential, csrs, &url, &bundle).await
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    let elapsed = started.elapsed();

    latencies.sort();
    let total = latencies.len();
    let p = |q: f64| latencies[((total as f64 * q) as usize).min(total - 1)];
    println!("renewals: {total} ({agents} agents x {per_agent}), concurrency {agents}");
    println!("elapsed: {:.3} s", elapsed.as_secs_f64());
    println!(
        "throughput: {:.0} renewals/s",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency p50: {:.2} ms, p99: {:.2} ms",
        ms(p(0.50)),
        ms(p(0.99))
    );

    let _ = stop.send(());
    let _ = server.await;
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn enroll(admin: &SigilClient, url: &str, bundle: &str, name: &str) -> Credential {
    let request = RegisterAgentRequest {
        name: name.into(),
        owner: "bench@example.org".into(),
        purpose: None,
        entitlements: vec![],
        ttl: Some("24h".into()),
    };
    let _: serde_json::Value = admin
        .post_json("/v1/admin/agents", &request)
        .await
        .expect("register");
    let token: TokenResponse = admin
        .post_json(
            "/v1/admin/tokens",
            &CreateTokenRequest {
                agent: name.into(),
                ttl: None,
            },
        )
        .await
        .expect("token");

    let (key, csr) = key_and_csr();
    let anonymous = SigilClient::new(url, bundle, None).expect("client");
    let svid: SvidResponse = anonymous
        .post_json(
            "/v1/agent/attest",
            &AttestRequest {
                join_token: token.token,
                csr,
            },
        )
        .await
        .expect("attest");
    Credential {
        chain: svid.svid,
        key,
    }
}

async fn renew_chain(
    mut credential: Credential,
    csrs: Vec<(String, String)>,
    url: &str,
    bundle: &str,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(csrs.len());
    for (key, csr) in csrs {
        let started = Instant::now();
        let client = SigilClient::new(
            url,
            bundle,
            Some(Identity {
                chain_pem: &credential.chain,
                key_pem: &credential.key,
            }),
        )
        .expect("client");
        let svid: SvidResponse = client
            .post_json("/v1/agent/renew", &RenewRequest { csr })
            .await
            .expect("renew");
        latencies.push(started.elapsed());
        credential = Credential {
            chain: svid.svid,
            key,
        };
    }
    latencies
}
