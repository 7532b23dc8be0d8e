//! `/v1/authorize` over keep-alive mutual TLS: decisions per second and latency as a gateway
//! would see them, against an in-process authority on loopback.
//!
//! Setup: AGENTS agents with three entitlements each, plus 20 custom policies. CLIENTS tasks
//! each hold one keep-alive HTTP/1.1 connection (presenting the admin certificate, as a gateway
//! presents its own) and send decisions back to back for DURATION seconds. The client runs in
//! the same process on the same two cores, so its TLS and JSON work is included in the cost.
//!
//! Run: `cargo bench -p sigil-server --bench authorize -- [CLIENTS] [SECONDS] [AGENTS]`

#![allow(
    clippy::expect_used,
    reason = "a benchmark aborts on any setup failure"
)]

use std::time::{Duration, Instant};

use sigil_client::{Identity, SigilClient};
use sigil_proto::{
    AddOwnerRequest, AddPolicyRequest, AuthorizeRequest, AuthorizeResponse, RegisterAgentRequest,
};
use sigil_server::layout::DataDir;
use sigil_server::{ServeOptions, serve};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clients = args.first().copied().unwrap_or(32) as usize;
    let seconds = args.get(1).copied().unwrap_or(5);
    let agents = args.get(2).copied().unwrap_or(200) as usize;

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
    let chain = std::fs::read_to_string(data_dir.admin_cert()).expect("admin cert");
    let key = std::fs::read_to_string(data_dir.admin_key()).expect("admin key");
    let client = || {
        SigilClient::new(
            &url,
            &bundle,
            Some(Identity {
                chain_pem: &chain,
                key_pem: &key,
            }),
        )
        .expect("client")
    };
    let admin = client();

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
    for i in 0..agents {
        let request = RegisterAgentRequest {
            name: format!("agent-{i}"),
            owner: "bench@example.org".into(),
            purpose: None,
            entitlements: vec![
                format!("invoke:tool:crm/{i}/*"),
                format!("read:doc:{i}"),
                "query:db:shared/*".into(),
            ],
            ttl: None,
        };
        let _: serde_json::Value = admin
            .post_json("/v1/admin/agents", &request)
            .await
            .expect("agent");
    }
    for i in 0..20 {
        let text = format!(
            "forbid(principal, action == Sigil::Action::\"invoke\", resource) when {{ resource.id like \"tool:crm/{i}/admin*\" }};"
        );
        let _: serde_json::Value = admin
            .post_json(
                "/v1/admin/policies",
                &AddPolicyRequest {
                    text,
                    id: Some(format!("forbid-{i}")),
                },
            )
            .await
            .expect("policy");
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for task in 0..clients {
        let client = client();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut allowed = 0u64;
            let mut n = task;
            while Instant::now() < deadline {
                let agent = n % agents;
                let resource = if n % 4 == 0 {
                    format!("tool:erp/{agent}")
                } else {
                    format!("tool:crm/{agent}/contacts")
                };
                let request = AuthorizeRequest {
                    principal: format!("spiffe://bench.example/agent/agent-{agent}"),
                    action: "invoke".into(),
                    resource,
                    context: serde_json::Map::new(),
                };
                let started = Instant::now();
                let response: AuthorizeResponse = client
                    .post_json("/v1/authorize", &request)
                    .await
                    .expect("authorize");
                latencies.push(started.elapsed());
                allowed += u64::from(response.decision == "allow");
                n += 7;
            }
            (latencies, allowed)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut allowed = 0;
    for task in tasks {
        let (samples, allows) = task.await.expect("task");
        latencies.extend(samples);
        allowed += allows;
    }
    let elapsed = started.elapsed().max(Duration::from_secs(seconds));

    latencies.sort();
    let total = latencies.len();
    let p = |q: f64| latencies[((total as f64 * q) as usize).min(total - 1)];
    println!(
        "decisions: {total} in {:.1} s with {clients} keep-alive mTLS clients, {agents} agents, 20 custom policies",
        elapsed.as_secs_f64()
    );
    println!("allowed: {allowed}, denied: {}", total as u64 - allowed);
    println!(
        "throughput: {:.0} decisions/s",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency p50: {:.3} ms, p99: {:.3} ms",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3
    );

    let _ = stop.send(());
    let _ = server.await;
}
