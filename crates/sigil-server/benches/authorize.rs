//! `/v1/authorize` over keep-alive mutual TLS: decisions per second and latency as a gateway
//! would see them, against an in-process authority on loopback.
//!
//! Setup: AGENTS agents with three entitlements each, plus 20 custom policies. CLIENTS tasks
//! each hold one keep-alive HTTP/1.1 connection (presenting the admin certificate, as a gateway
//! presents its own) and send requests back to back for SECONDS seconds: first `GET /healthz`,
//! the transport baseline, then decisions. The client is hyper's low-level HTTP/1 client over
//! tokio-rustls in the same process, on the same two cores, so its TLS work is included in the
//! cost.
//!
//! Run: `cargo bench -p sigil-server --bench authorize -- [CLIENTS] [SECONDS] [AGENTS]`

#![allow(
    clippy::expect_used,
    reason = "a benchmark aborts on any setup failure"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use sigil_client::{Identity, SigilClient};
use sigil_proto::{
    AddOwnerRequest, AddPolicyRequest, AuthorizeRequest, AuthorizeResponse, RegisterAgentRequest,
};
use sigil_server::layout::DataDir;
use sigil_server::{ServeOptions, serve};
use tokio::net::{TcpListener, TcpStream};

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

    let tls = client_tls(&bundle, &chain, &key);
    let addr = url.trim_start_matches("https://").to_owned();

    let healthz = run_load(&tls, &addr, clients, seconds, agents, Load::Healthz).await;
    healthz.print("GET /healthz (transport baseline: TLS, HTTP, routing, metrics)");
    let decisions = run_load(&tls, &addr, clients, seconds, agents, Load::Authorize).await;
    decisions.print(&format!(
        "POST /v1/authorize ({agents} agents, 20 custom policies)"
    ));
    println!(
        "allowed: {}, denied: {}",
        decisions.allowed,
        decisions.latencies.len() as u64 - decisions.allowed
    );

    let _ = stop.send(());
    let _ = server.await;
}

/// The request each client sends.
#[derive(Clone, Copy)]
enum Load {
    Healthz,
    Authorize,
}

/// Latencies and counts of one load run.
struct LoadResult {
    latencies: Vec<Duration>,
    allowed: u64,
    elapsed: Duration,
    clients: usize,
}

impl LoadResult {
    fn print(&self, title: &str) {
        let mut latencies = self.latencies.clone();
        latencies.sort();
        let total = latencies.len();
        let p = |q: f64| latencies[((total as f64 * q) as usize).min(total - 1)];
        println!("{title}");
        println!(
            "  {total} requests in {:.1} s over {} keep-alive mTLS connections: {:.0} /s, p50 {:.3} ms, p99 {:.3} ms",
            self.elapsed.as_secs_f64(),
            self.clients,
            total as f64 / self.elapsed.as_secs_f64(),
            p(0.5).as_secs_f64() * 1e3,
            p(0.99).as_secs_f64() * 1e3
        );
    }
}

/// Runs `clients` connections, each sending requests back to back for `seconds`.
async fn run_load(
    tls: &Arc<rustls::ClientConfig>,
    addr: &str,
    clients: usize,
    seconds: u64,
    agents: usize,
    load: Load,
) -> LoadResult {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for task in 0..clients {
        let mut sender = connect(tls, addr).await;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut allowed = 0u64;
            let mut n = task;
            while Instant::now() < deadline {
                let request = match load {
                    Load::Healthz => get("/healthz"),
                    Load::Authorize => authorize_request(n % agents, n % 4 == 0),
                };
                let started = Instant::now();
                let response = sender.send_request(request).await.expect("request");
                assert!(
                    response.status().is_success(),
                    "status {}",
                    response.status()
                );
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                latencies.push(started.elapsed());
                if matches!(load, Load::Authorize) {
                    let decision: AuthorizeResponse =
                        serde_json::from_slice(&body).expect("decision");
                    allowed += u64::from(decision.decision == "allow");
                }
                n += 7;
            }
            (latencies, allowed)
        }));
    }

    let started = Instant::now();
    let mut result = LoadResult {
        latencies: Vec::new(),
        allowed: 0,
        elapsed: Duration::ZERO,
        clients,
    };
    for task in tasks {
        let (samples, allows) = task.await.expect("task");
        result.latencies.extend(samples);
        result.allowed += allows;
    }
    result.elapsed = started.elapsed().max(Duration::from_secs(seconds));
    result
}

/// Builds a decision request. With `outside`, the resource is outside the agent's entitlements,
/// which the caller chooses for a quarter of the requests.
fn authorize_request(agent: usize, outside: bool) -> hyper::Request<String> {
    let resource = if outside {
        format!("tool:erp/{agent}")
    } else {
        format!("tool:crm/{agent}/contacts")
    };
    let body = serde_json::to_string(&AuthorizeRequest {
        principal: format!("spiffe://bench.example/agent/agent-{agent}"),
        action: "invoke".into(),
        resource,
        context: serde_json::Map::new(),
    })
    .expect("json");
    hyper::Request::post("/v1/authorize")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(body)
        .expect("request")
}

fn get(path: &str) -> hyper::Request<String> {
    hyper::Request::get(path)
        .header("host", "localhost")
        .body(String::new())
        .expect("request")
}

/// Builds the client TLS configuration, with the bundle as the only root and the admin identity
/// as the client certificate. A gateway presents its own SVID the same way.
fn client_tls(bundle: &str, chain: &str, key: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
        roots.add(cert.expect("bundle pem")).expect("root");
    }
    let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("chain pem");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key pem");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth");
    Arc::new(config)
}

/// Opens one keep-alive HTTP/1.1 connection over mutual TLS.
async fn connect(
    tls: &Arc<rustls::ClientConfig>,
    addr: &str,
) -> hyper::client::conn::http1::SendRequest<String> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(connection);
    sender
}
