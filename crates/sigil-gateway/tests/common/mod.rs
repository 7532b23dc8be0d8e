//! Test kit: a Sigil CA, a gateway on a loopback port with a hand-fed view, an upstream that
//! records what it receives, and HTTPS clients with or without a client certificate.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test kit: a failed setup step fails the test"
)]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sigil_agent::workload::X509Material;
use sigil_ca::CaCertificate;
use sigil_core::{Email, SpiffeId, TrustDomain};
use sigil_gateway::GatewayError;
use sigil_gateway::jwt::JwtAuth;
use sigil_gateway::proxy::Gateway;
use sigil_gateway::report::DenialReporter;
use sigil_gateway::routes::Routes;
use sigil_gateway::upstream::Upstream;
use sigil_gateway::view::View;
use sigil_gateway::workers::{WorkerSet, serve_workers};
use sigil_jwt::{KeySet, MintRequest, SigningKey};
use sigil_proto::{GatewayAgent, GatewayDenial, GatewayState, RevocationEvent};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

pub const TRUST_DOMAIN: &str = "example.org";
pub const GATEWAY_ID: &str = "spiffe://example.org/gateway/crm";
pub const AGENT_ID: &str = "spiffe://example.org/agent/crm-bot";
pub const OWNER: &str = "alice@example.org";

/// The test gateway's idle timeout, short so that tests can wait it out.
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(500);

pub const ROUTES: &str = r#"
[[route]]
path = "/contacts/*"
method = "GET"
action = "read"
resource = "tool:crm/contacts"

[[route]]
path = "/events"
action = "read"
resource = "tool:crm/events"

[[route]]
path = "/admin/*"
action = "admin"
resource = "tool:crm/admin"
"#;

pub fn trust_domain() -> TrustDomain {
    TrustDomain::new(TRUST_DOMAIN).unwrap()
}

/// A root and a signing CA, as `sigil init` creates them.
pub struct Pki {
    pub root: CaCertificate,
    pub signing: CaCertificate,
}

impl Pki {
    pub fn new() -> Self {
        let now = OffsetDateTime::now_utc();
        let root =
            CaCertificate::create_root(&trust_domain(), now, time::Duration::days(365)).unwrap();
        let signing = CaCertificate::create_intermediate(
            &root,
            &trust_domain(),
            now,
            time::Duration::days(7),
        )
        .unwrap();
        Self { root, signing }
    }

    pub fn bundle_pem(&self) -> String {
        self.root.cert_pem().to_owned()
    }

    /// Issues an SVID the way the authority does; returns (chain PEM, key PEM, serial hex).
    pub fn issue(&self, spiffe_id: &str, now: OffsetDateTime) -> Credential {
        let id = SpiffeId::parse(spiffe_id).unwrap();
        let (issued, key) = sigil_ca::issue_with_new_key(
            &self.signing,
            &id,
            time::Duration::minutes(15),
            now,
            &["localhost".to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )
        .unwrap();
        Credential {
            chain_pem: format!("{}{}", issued.pem, self.signing.cert_pem()),
            key_pem: key.to_string(),
            serial_hex: issued.serial_hex,
        }
    }

    /// Signs a certificate with the signing CA from hand-made rcgen parameters.
    pub fn sign_raw(&self, params: rcgen::CertificateParams) -> Credential {
        let ca_key = rcgen::KeyPair::from_pem(&self.signing.key_pem()).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(self.signing.cert_pem(), ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        Credential {
            chain_pem: format!("{}{}", cert.pem(), self.signing.cert_pem()),
            key_pem: key.serialize_pem(),
            serial_hex: String::new(),
        }
    }
}

/// A certificate chain and its key.
#[derive(Clone)]
pub struct Credential {
    pub chain_pem: String,
    pub key_pem: String,
    pub serial_hex: String,
}

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
}

type Recorded = Arc<Mutex<Vec<Seen>>>;

/// An HTTP upstream on a loopback port that records every request and counts the connections
/// it accepts. `GET /events` responds with server-sent events whose pace the test controls
/// through `events`. The response to a path ending in `/close` carries `connection: close`, and
/// the upstream then closes the connection.
pub struct RecordingUpstream {
    pub url: String,
    pub seen: Recorded,
    pub events: mpsc::Sender<Bytes>,
    pub connections: Arc<AtomicUsize>,
}

impl RecordingUpstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Recorded = Arc::default();
        let (events, receiver) = mpsc::channel::<Bytes>(16);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));

        let connections = Arc::new(AtomicUsize::new(0));
        let recorded = seen.clone();
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let recorded = recorded.clone();
                let receiver = receiver.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let recorded = recorded.clone();
                        let receiver = receiver.clone();
                        async move { Ok::<_, Infallible>(answer(request, recorded, receiver)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            seen,
            events,
            connections,
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Returns the number of connections the upstream has accepted.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn answer(
    request: Request<Incoming>,
    recorded: Recorded,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Bytes>>>,
) -> Response<BoxBody<Bytes, Infallible>> {
    recorded.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        headers: request.headers().clone(),
    });
    if request.uri().path().ends_with("/close") {
        return Response::builder()
            .header("connection", "close")
            .body(Full::new(Bytes::from_static(b"closing")).boxed())
            .unwrap();
    }
    if request.uri().path() != "/events" {
        return Response::new(Full::new(Bytes::from_static(b"hello from upstream")).boxed());
    }

    let (mut sender, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
    tokio::spawn(async move {
        let mut receiver = receiver.lock().await;
        while let Some(chunk) = receiver.recv().await {
            if sender.send_data(chunk).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body.boxed())
        .unwrap()
}

/// A gateway on a loopback port whose view the test feeds directly.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub view: Arc<View>,
    pub keys: KeySet,
    pub denials: mpsc::Receiver<GatewayDenial>,
    _material: watch::Sender<Option<Arc<X509Material>>>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), GatewayError>>>,
}

impl TestGateway {
    pub async fn start(pki: &Pki, upstream: &RecordingUpstream, staleness: Duration) -> Self {
        Self::start_for_url(pki, &upstream.url, staleness).await
    }

    /// Starts a gateway in front of `upstream_url`, which need not be listening.
    pub async fn start_for_url(pki: &Pki, upstream_url: &str, staleness: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        let own = pki.issue(GATEWAY_ID, now);
        let material =
            X509Material::from_pem(GATEWAY_ID, &own.chain_pem, &own.key_pem, &pki.bundle_pem())
                .unwrap();
        let (publish, watch) = watch::channel(Some(Arc::new(material)));

        let view = Arc::new(View::new(staleness));
        view.install(state(1, 1, "active", vec![])).unwrap();
        view.touch();

        let keys = KeySet::new(SigningKey::generate(now).unwrap()).unwrap();
        let jwt = Arc::new(JwtAuth::new(GATEWAY_ID.to_owned(), trust_domain(), None));
        jwt.set_jwks(&keys.jwks()).unwrap();

        let (reporter, denials) = DenialReporter::new();
        let routes = Arc::new(Routes::parse(ROUTES).unwrap());
        // Two workers, each with its own upstream client, as on a 2-core machine.
        let gateways = (0..2)
            .map(|_| {
                Arc::new(Gateway {
                    view: view.clone(),
                    routes: routes.clone(),
                    jwt: jwt.clone(),
                    upstream: Upstream::new(upstream_url, &pki.bundle_pem(), watch.clone())
                        .unwrap(),
                    reporter: reporter.clone(),
                })
            })
            .collect();
        let tls = Arc::new(sigil_gateway::tls::server_config(watch.clone()).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let set = WorkerSet {
            gateways,
            tls,
            material: watch,
            trust_domain: trust_domain(),
            idle_timeout: IDLE_TIMEOUT,
        };
        let (stop, stopped) = oneshot::channel();
        let served = tokio::spawn(serve_workers(listener, set, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            view,
            keys,
            denials,
            _material: publish,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Stops accepting and waits until every worker has drained its connections.
    pub async fn shutdown(&mut self) -> Result<(), GatewayError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.served.take() {
            Some(served) => served.await.unwrap(),
            None => Ok(()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// Keeps the view fresh as heartbeats would.
    pub fn heartbeat(&self) {
        self.view.apply(&RevocationEvent::Heartbeat {
            seq: self.view.seq(),
            at_ms: 0,
        });
    }

    pub fn token(&self, subject: &str, audience: &str) -> String {
        let subject = SpiffeId::parse(subject).unwrap();
        let owner = Email::new(OWNER).unwrap();
        self.keys
            .mint(&MintRequest {
                issuer: "https://127.0.0.1:8443",
                subject: &subject,
                audience,
                owner: &owner,
                lifetime: time::Duration::minutes(5),
                now: OffsetDateTime::now_utc(),
            })
            .unwrap()
            .token
    }

    /// Waits for the next reported denial.
    pub async fn next_denial(&mut self) -> GatewayDenial {
        tokio::time::timeout(Duration::from_secs(5), self.denials.recv())
            .await
            .expect("a denial was reported")
            .unwrap()
    }
}

/// A gateway state with one agent, `crm-bot`, entitled to read contacts and events.
pub fn state(seq: u64, policy_version: u64, status: &str, revoked: Vec<String>) -> GatewayState {
    GatewayState {
        seq,
        policy_version,
        agents: vec![GatewayAgent {
            name: "crm-bot".into(),
            spiffe_id: AGENT_ID.into(),
            owner: OWNER.into(),
            status: status.into(),
            entitlements: vec![
                "read:tool:crm/contacts".into(),
                "read:tool:crm/events".into(),
            ],
        }],
        policies: vec![],
        revoked_serials: revoked,
    }
}

/// Builds an HTTPS client that trusts the bundle and presents `credential` when given.
pub fn client(pki: &Pki, credential: Option<&Credential>) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_tls(pki, credential))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Sends `METHOD target` over a fresh mutual-TLS HTTP/1.1 connection, with the request target
/// exactly as given: unlike reqwest, which resolves `..` and escapes, this sends what an attacker
/// would. Returns the status and the body.
pub async fn raw_request(
    pki: &Pki,
    credential: &Credential,
    gateway: &TestGateway,
    method: &str,
    target: &str,
) -> (u16, String) {
    let mut sender = open_connection(pki, credential, gateway).await;
    let request = http::Request::builder()
        .method(method)
        .uri(http::Uri::from_maybe_shared(Bytes::copy_from_slice(target.as_bytes())).unwrap())
        .header("host", "localhost")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Starts a test PKI, a recording upstream and a gateway in front of it, and issues an SVID for
/// [`AGENT_ID`].
pub async fn setup_with_agent() -> (Pki, RecordingUpstream, TestGateway, Credential) {
    let pki = Pki::new();
    let upstream = RecordingUpstream::start().await;
    let gateway = TestGateway::start(&pki, &upstream, Duration::from_secs(10)).await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    (pki, upstream, gateway, agent)
}

/// Opens one mutual-TLS HTTP/1.1 connection to the gateway, on which the caller sends requests
/// one after another.
pub async fn open_connection(
    pki: &Pki,
    credential: &Credential,
    gateway: &TestGateway,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>> {
    let tls = tls_stream(pki, Some(credential), None, gateway).await;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// Opens a TLS connection to the gateway, presenting `credential` when given and offering
/// `alpn` (for example `h2`) when given.
pub async fn tls_stream(
    pki: &Pki,
    credential: Option<&Credential>,
    alpn: Option<&[u8]>,
    gateway: &TestGateway,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = client_tls(pki, credential);
    config.alpn_protocols = alpn
        .map(|protocol| vec![protocol.to_vec()])
        .unwrap_or_default();
    let tcp = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Builds the rustls configuration of a test client, with the test bundle as the only root and
/// `credential` as the client certificate when given.
pub fn client_tls(pki: &Pki, credential: Option<&Credential>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.bundle_pem().as_bytes()).unwrap())
        .unwrap();
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    match credential {
        None => builder.with_no_client_auth(),
        Some(credential) => {
            let chain = CertificateDer::pem_slice_iter(credential.chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(credential.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    }
}

/// Reads a JSON error body and returns its code.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["error"]["code"].as_str().unwrap().to_owned()
}
