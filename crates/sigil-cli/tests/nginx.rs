//! nginx as an enforcement point: Debian's nginx, configured with Sigil's trust bundle and the
//! CRL from `/v1/crl.pem`, accepts an active agent's SVID and, after the agent is decommissioned,
//! the CRL refreshed and nginx reloaded, rejects the same certificate.
//!
//! The test needs the `nginx` binary (Debian package `nginx`). When it is missing the test fails
//! if `SIGIL_REQUIRE_NGINX` is set, as CI sets it, and otherwise skips with a message on stderr.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Authority, free_port, openssl_serial, split_chain};

/// Set to any value to make a missing nginx a test failure instead of a skip.
const REQUIRE_NGINX: &str = "SIGIL_REQUIRE_NGINX";

/// The error page nginx returns on a TLS connection whose client certificate failed verification.
const CERTIFICATE_ERROR_PAGE: &str = "The SSL certificate error";

#[test]
fn nginx_rejects_agent_after_crl_reload() {
    let Some(nginx_bin) = nginx_binary() else {
        assert!(
            std::env::var_os(REQUIRE_NGINX).is_none(),
            "nginx is not installed but {REQUIRE_NGINX} is set: apt-get install nginx"
        );
        eprintln!(
            "SKIPPED nginx_rejects_agent_after_crl_reload: nginx is not installed \
             (apt-get install nginx, or set {REQUIRE_NGINX}=1 to make this a failure)"
        );
        return;
    };

    let authority = Authority::start();
    let agent = authority.enrolled_agent("alice@example.org", "crm-bot");
    let bystander = authority.enrolled_agent("alice@example.org", "billing-bot");
    let server = server_identity(&authority);
    let crl = authority.dir.path().join("crl.pem");
    fetch_crl(&authority, &crl);

    let nginx = Nginx::start(
        &nginx_bin,
        &authority.dir.path().join("nginx"),
        &NginxFiles {
            server_chain: server.join("svid.pem"),
            server_key: server.join("svid.key"),
            bundle: authority.bundle(),
            crl: crl.clone(),
        },
    );

    let (leaf, _) = split_chain(
        &std::fs::read_to_string(agent.join("svid.pem")).unwrap(),
        authority.dir.path(),
        "crm-bot",
    );
    let serial = openssl_serial(&leaf);
    let before = call(&authority, nginx.port, &agent);
    assert_eq!(
        before.status,
        200,
        "nginx rejected the active agent: {}\nnginx error log:\n{}",
        before.body,
        nginx.error_log()
    );
    assert_eq!(
        before.body.trim().to_ascii_lowercase(),
        format!("serial={serial}"),
        "nginx saw another client certificate"
    );

    authority.sigil_ok(&["agent", "decommission", "crm-bot", "--reason", "retired"]);
    fetch_crl(&authority, &crl);
    let stale = call(&authority, nginx.port, &agent);
    assert_eq!(
        stale.status, 200,
        "nginx reads the CRL only at start and on reload, so it still accepts the agent"
    );

    nginx.reload();
    let after = wait_for_rejection(&authority, &nginx, &agent);
    assert_eq!(after.status, 400, "body: {}", after.body);
    assert!(
        after.body.contains(CERTIFICATE_ERROR_PAGE),
        "body: {}",
        after.body
    );
    let log = nginx.error_log();
    assert!(
        log.contains("certificate revoked"),
        "nginx did not log the revocation:\n{log}"
    );

    let other = call(&authority, nginx.port, &bystander);
    assert_eq!(
        other.status, 200,
        "the new CRL also locked out an active agent: {}",
        other.body
    );
}

/// Returns the nginx binary from `PATH` or Debian's `/usr/sbin`, if there is one.
fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// Issues nginx's serving certificate: a gateway SVID, which carries `localhost` and `127.0.0.1`
/// beside its SPIFFE ID, obtained with a gateway join token by `sigil-agent run --once`.
fn server_identity(authority: &Authority) -> PathBuf {
    let token = authority
        .sigil_ok(&["token", "create", "--gateway", "nginx"])
        .trim()
        .to_owned();
    let out = authority.dir.path().join("nginx-identity");
    let attested = authority.agent_once(&out, Some(&token));
    assert!(
        attested.status.success(),
        "attestation of the nginx identity failed: {}",
        String::from_utf8_lossy(&attested.stderr)
    );
    out
}

/// Downloads `/v1/crl.pem` to `path`, replacing the file in one rename as a refresh job would.
fn fetch_crl(authority: &Authority, path: &Path) {
    let partial = path.with_extension("pem.new");
    let output = authority.curl(&[
        "-sf",
        "-o",
        partial.to_str().unwrap(),
        &format!("{}/v1/crl.pem", authority.url),
    ]);
    assert!(
        output.status.success(),
        "GET /v1/crl.pem failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, path).unwrap();
}

/// The HTTP status (0 when there was no response) and body of one request.
struct Reply {
    status: u16,
    body: String,
}

/// Calls nginx over a new TLS connection with the agent's SVID as the client certificate.
fn call(authority: &Authority, port: u16, agent: &Path) -> Reply {
    let output = authority.curl(&[
        "-s",
        "-w",
        "\n%{http_code}",
        "--cert",
        agent.join("svid.pem").to_str().unwrap(),
        "--key",
        agent.join("svid.key").to_str().unwrap(),
        &format!("https://localhost:{port}/tool"),
    ]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Reply {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

/// Calls nginx until it returns something other than 200, which happens once the reloaded
/// workers accept connections.
fn wait_for_rejection(authority: &Authority, nginx: &Nginx, agent: &Path) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = call(authority, nginx.port, agent);
        if reply.status != 200 {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "nginx still accepts the decommissioned agent 10 s after the reload\n\
             nginx error log:\n{}",
            nginx.error_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The certificate files an nginx configuration refers to.
struct NginxFiles {
    server_chain: PathBuf,
    server_key: PathBuf,
    bundle: PathBuf,
    crl: PathBuf,
}

/// An nginx master process in the foreground on a loopback port, with every path it writes
/// inside its own directory. Stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(bin: &Path, dir: &Path, files: &NginxFiles) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let config = dir.join("nginx.conf");
        std::fs::write(&config, nginx_config(dir, port, files)).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&config)
            // nginx opens this log before it reads the configuration.
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut nginx = Self {
            child,
            port,
            dir: dir.to_owned(),
        };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited with {status}:\n{}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGHUP: the master rereads the configuration, certificates and CRL, starts new
    /// workers and retires the old ones.
    fn reload(&self) {
        signal(self.child.id(), "HUP");
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// Sends SIGTERM, which makes the master stop its workers too, and kills the master if it
    /// has not exited after 5 s.
    fn drop(&mut self) {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// An nginx configuration that requires a client certificate chaining to Sigil's root, checks
/// every certificate of the chain against the CRL file, and returns the client's serial.
fn nginx_config(dir: &Path, port: u16, files: &NginxFiles) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 64;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {server_chain};
        ssl_certificate_key {server_key};

        ssl_client_certificate {bundle};
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl {crl};

        location / {{
            default_type text/plain;
            return 200 "serial=$ssl_client_serial\n";
        }}
    }}
}}
"#,
        server_chain = files.server_chain.display(),
        server_key = files.server_key.display(),
        bundle = files.bundle.display(),
        crl = files.crl.display(),
    )
}
