//! Setup shared by the gateway benchmarks: `sigil serve` and `sigil gateway` processes from
//! this build, an nginx process, an in-process upstream, agents enrolled through the admin API,
//! and a keep-alive HTTP/1.1 client (hyper's low-level client over tokio-rustls).

#![allow(dead_code, reason = "each benchmark uses a part of this module")]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_client::{Identity, SigilClient};
use sigil_proto::{
    AddOwnerRequest, AttestRequest, CreateTokenRequest, RegisterAgentRequest, StatusChangeRequest,
    SvidResponse, TokenResponse,
};
use tokio::net::TcpStream;

/// Trust domain of the benchmark authority.
pub const TRUST_DOMAIN: &str = "bench.example";

/// Owner of every benchmark agent.
pub const OWNER: &str = "bench@example.org";

/// Entitlement of every benchmark agent; it allows the one route of [`ROUTES`].
pub const ENTITLEMENT: &str = "read:tool:bench/*";

/// The gateway's routes file.
pub const ROUTES: &str = r#"
[[route]]
path = "/bench/*"
action = "read"
resource = "tool:bench/data"
"#;

/// The path every benchmark request asks for.
pub const REQUEST_PATH: &str = "/bench/data";

/// The fixed body of every upstream response.
pub const UPSTREAM_BODY: &[u8] = b"{\"ok\":true,\"items\":[]}\n";

/// Path of the `sigil` binary built with this benchmark (release profile under `cargo bench`).
pub fn sigil_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sigil"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// A child process with its stderr in a file; killed on drop.
pub struct Process {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Self {
        let stderr = std::fs::File::create(log).expect("log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self {
            child,
            name: name.to_owned(),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited with {status}:\n{}", self.name, self.log());
        }
    }

    /// Sends `signal` (such as `TERM` or `HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }
}

impl Drop for Process {
    /// Sends SIGTERM so that nginx stops its workers too, then kills what is still running
    /// after 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `addr` accepts TCP connections, checking that `process` is still running.
pub async fn wait_listening(addr: SocketAddr, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        process.assert_running();
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `sigil serve` process on a temporary data directory, with an admin client.
pub struct Authority {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub url: String,
    pub bundle_pem: String,
    pub admin: SigilClient,
    process: Process,
}

impl Authority {
    /// Initialises a data directory, starts `sigil serve` on a loopback port and adds [`OWNER`].
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let init = Command::new(sigil_bin())
            .args(["init", "--trust-domain", TRUST_DOMAIN, "--data-dir"])
            .arg(&data)
            .output()
            .expect("sigil init");
        assert!(
            init.status.success(),
            "sigil init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );

        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut process = Process::spawn(
            "sigil serve",
            Command::new(sigil_bin())
                .args(["serve", "--listen", &addr.to_string()])
                .env("SIGIL_DATA_DIR", &data),
            &dir.path().join("serve.log"),
        );
        wait_listening(addr, &mut process).await;

        let url = format!("https://{addr}");
        let bundle_pem = std::fs::read_to_string(data.join("bundle.pem")).expect("bundle");
        let chain = std::fs::read_to_string(data.join("admin/svid.pem")).expect("admin cert");
        let key = std::fs::read_to_string(data.join("admin/svid.key")).expect("admin key");
        let admin = SigilClient::new(
            &url,
            &bundle_pem,
            Some(Identity {
                chain_pem: &chain,
                key_pem: &key,
            }),
        )
        .expect("admin client");
        let _: serde_json::Value = admin
            .post_json(
                "/v1/admin/owners",
                &AddOwnerRequest {
                    email: OWNER.into(),
                    name: None,
                },
            )
            .await
            .expect("add owner");

        Self {
            dir,
            data,
            url,
            bundle_pem,
            admin,
            process,
        }
    }

    /// Returns a `sigil` command aimed at this authority.
    pub fn command(&self) -> Command {
        let mut command = Command::new(sigil_bin());
        command
            .env("SIGIL_DATA_DIR", &self.data)
            .env("SIGIL_SERVER", &self.url);
        command
    }

    /// Runs `sigil ARGS`, asserts success and returns stdout.
    pub fn sigil(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("sigil");
        assert!(
            output.status.success(),
            "sigil {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Registers `name` with [`ENTITLEMENT`], attests it with a fresh P-256 key and returns its
    /// SVID chain and key in PEM.
    pub async fn enroll(&self, name: &str) -> (String, String) {
        let _: serde_json::Value = self
            .admin
            .post_json(
                "/v1/admin/agents",
                &RegisterAgentRequest {
                    name: name.into(),
                    owner: OWNER.into(),
                    purpose: None,
                    entitlements: vec![ENTITLEMENT.into()],
                    ttl: None,
                },
            )
            .await
            .expect("register agent");
        let token: TokenResponse = self
            .admin
            .post_json(
                "/v1/admin/tokens",
                &CreateTokenRequest {
                    agent: name.into(),
                    ttl: None,
                },
            )
            .await
            .expect("join token");

        let key = KeyPair::generate().expect("key");
        let csr = CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("csr pem");
        let anonymous = SigilClient::new(&self.url, &self.bundle_pem, None).expect("client");
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
        (svid.svid, key.serialize_pem())
    }

    /// Decommissions `name` through the admin API.
    pub async fn decommission(&self, name: &str) {
        let _: serde_json::Value = self
            .admin
            .post_json(
                &format!("/v1/admin/agents/{name}/decommission"),
                &StatusChangeRequest {
                    reason: Some("benchmark".into()),
                },
            )
            .await
            .expect("decommission");
    }

    /// Writes the PEM CRLs of `/v1/crl.pem` to `path`.
    pub async fn write_crl(&self, path: &Path) {
        let crl = self.admin.get_bytes("/v1/crl.pem").await.expect("crl");
        std::fs::write(path, crl).expect("write crl");
    }
}

/// A `sigil gateway` process in front of `upstream`, with the routes of [`ROUTES`].
pub struct Gateway {
    pub addr: SocketAddr,
    /// The gateway's state directory, with its SVID in `svid.pem` and `svid.key`.
    pub state: PathBuf,
    process: Process,
}

impl Gateway {
    pub async fn start(authority: &Authority, upstream: SocketAddr) -> Self {
        let token = authority.sigil(&["token", "create", "--gateway", "bench"]);
        let dir = authority.dir.path();
        let routes = dir.join("routes.toml");
        std::fs::write(&routes, ROUTES).expect("routes");
        let state = dir.join("gateway");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut process = Process::spawn(
            "sigil gateway",
            authority
                .command()
                .arg("gateway")
                .args(["--listen", &addr.to_string()])
                .args(["--upstream", &format!("http://{upstream}")])
                .args(["--server", &authority.url])
                .arg("--bundle")
                .arg(authority.data.join("bundle.pem"))
                .args(["--join-token", token.trim()])
                .arg("--state")
                .arg(&state)
                .arg("--routes")
                .arg(&routes)
                .args(extra_gateway_args()),
            &dir.join("gateway.log"),
        );
        wait_listening(addr, &mut process).await;
        Self {
            addr,
            state,
            process,
        }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Extra `sigil gateway` options from `SIGIL_BENCH_GATEWAY_ARGS` (split on spaces), for
/// comparing settings such as `--workers` with the same benchmark.
fn extra_gateway_args() -> Vec<String> {
    std::env::var("SIGIL_BENCH_GATEWAY_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Returns the nginx binary from `PATH` or Debian's `/usr/sbin`.
pub fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .expect("nginx is not installed (Debian: apt-get install nginx)")
}

/// An nginx master process in the foreground, with every path it writes in `dir`.
pub struct Nginx {
    pub addr: SocketAddr,
    dir: PathBuf,
    process: Process,
}

impl Nginx {
    /// Starts nginx with `config`, a function of the directory and the listening address that
    /// returns the configuration text.
    pub async fn start(dir: &Path, config: impl FnOnce(&Path, SocketAddr) -> String) -> Self {
        std::fs::create_dir_all(dir).expect("nginx dir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config(dir, addr)).expect("nginx.conf");
        let mut process = Process::spawn(
            "nginx",
            Command::new(nginx_binary())
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&config_path)
                // nginx opens this log before it reads the configuration.
                .arg("-e")
                .arg(dir.join("error.log")),
            &dir.join("stderr.log"),
        );
        wait_listening(addr, &mut process).await;
        Self {
            addr,
            dir: dir.to_owned(),
            process,
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// The directives that keep nginx's pid file and temporary files inside `dir`; the caller adds
/// the `http` block.
pub fn nginx_main_config(dir: &Path, workers: &str) -> String {
    let dir = dir.display();
    format!(
        "daemon off;\n\
         worker_processes {workers};\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n"
    )
}

/// The `http`-level temporary paths inside `dir`.
pub fn nginx_temp_paths(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "client_body_temp_path {dir}/client_body;\n\
         proxy_temp_path {dir}/proxy;\n\
         fastcgi_temp_path {dir}/fastcgi;\n\
         uwsgi_temp_path {dir}/uwsgi;\n\
         scgi_temp_path {dir}/scgi;\n"
    )
}

/// Starts the upstream tool: an HTTP/1.1 keep-alive server on a loopback port that answers every
/// request with `200` and [`UPSTREAM_BODY`].
pub async fn start_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let mut response = hyper::Response::new(Full::new(UPSTREAM_BODY));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A client TLS configuration that trusts `bundle_pem` and presents the SVID `chain_pem`.
pub fn client_tls(bundle_pem: &str, chain_pem: &str, key_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(cert.expect("bundle pem")).expect("root");
    }
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("chain pem");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key pem");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth");
    Arc::new(config)
}

/// The request sender of one keep-alive HTTP/1.1 connection.
pub type Sender = SendRequest<String>;

/// Opens one keep-alive HTTP/1.1 connection over mutual TLS, verifying the server as
/// `localhost`.
pub async fn connect_tls(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Sender {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("localhost").expect("server name");
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    handshake(TokioIo::new(stream)).await
}

/// Opens one keep-alive HTTP/1.1 connection over plain TCP.
pub async fn connect_plain(addr: SocketAddr) -> Sender {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    handshake(TokioIo::new(tcp)).await
}

async fn handshake<T>(io: T) -> Sender
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    sender
}

/// Sends `GET REQUEST_PATH` and returns the status and the body.
pub async fn get(sender: &mut Sender) -> (u16, Vec<u8>) {
    let request = hyper::Request::get(REQUEST_PATH)
        .header("host", "localhost")
        .body(String::new())
        .expect("request");
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, body)
}

/// Returns the `q` quantile (0 to 1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[index]
}

/// Formats a duration in milliseconds with three decimals.
pub fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}
