//! `sigil gateway` end to end: a real authority, a real gateway process, an agent certificate
//! from `sigil-agent`, and a loopback upstream that counts what reaches it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Authority, free_port, sigil_bin};

const ROUTES: &str = r#"
[[route]]
path = "/contacts/*"
action = "read"
resource = "tool:crm/contacts"
"#;

/// An HTTP/1.1 upstream on a loopback port that answers `200 ok` and counts requests.
fn start_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, count)
}

/// A running `sigil gateway`; killed on drop.
struct GatewayProcess {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start_gateway(authority: &Authority, port: u16, upstream: &str, token: &str) -> GatewayProcess {
    let dir = authority.dir.path();
    let routes = dir.join("routes.toml");
    std::fs::write(&routes, ROUTES).unwrap();
    let log = dir.join("gateway.log");
    let child = Command::new(sigil_bin())
        .arg("gateway")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", upstream])
        .arg("--bundle")
        .arg(authority.bundle())
        .args(["--join-token", token])
        .arg("--state")
        .arg(dir.join("gateway-state"))
        .arg("--routes")
        .arg(&routes)
        .env("SIGIL_SERVER", &authority.url)
        .env(
            "SIGIL_LOG",
            "debug,hyper=info,rustls=info,h2=info,reqwest=info",
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    GatewayProcess { child, log }
}

/// Calls the gateway with the agent's certificate; returns the HTTP status (0 when no answer).
fn call(authority: &Authority, port: u16, agent: &Path) -> u16 {
    call_path(authority, port, agent, "/contacts/1")
}

/// Sends `GET path` to the gateway with the agent's certificate; returns the HTTP status.
fn call_path(authority: &Authority, port: u16, agent: &Path, path: &str) -> u16 {
    let output = authority.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cert",
        agent.join("svid.pem").to_str().unwrap(),
        "--key",
        agent.join("svid.key").to_str().unwrap(),
        &format!("https://localhost:{port}{path}"),
    ]);
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Polls `call` until it returns `status` or `limit` passes; returns the time it took.
fn wait_for_status(
    authority: &Authority,
    port: u16,
    agent: &Path,
    status: u16,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if call(authority, port, agent) == status {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Registers `crm-bot` with `read:tool:crm/*`, enrols it, and starts a gateway that forwards
/// its requests. Returns the agent's directory, the gateway, its port and the upstream's count.
fn ready_gateway(
    authority: &Authority,
) -> (std::path::PathBuf, GatewayProcess, u16, Arc<AtomicUsize>) {
    authority.sigil_ok(&["owner", "add", "alice@example.org"]);
    authority.sigil_ok(&[
        "agent",
        "register",
        "crm-bot",
        "--owner",
        "alice@example.org",
        "--entitlement",
        "read:tool:crm/*",
    ]);
    let token = authority.token("crm-bot");
    let agent = authority.dir.path().join("agent-crm-bot");
    let enrolled = authority.agent_once(&agent, Some(&token));
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );

    let gateway_token = authority
        .sigil_ok(&["token", "create", "--gateway", "crm"])
        .trim()
        .to_owned();
    let (upstream, upstream_count) = start_upstream();
    let port = free_port();
    let gateway = start_gateway(authority, port, &upstream, &gateway_token);

    let ready = wait_for_status(authority, port, &agent, 200, Duration::from_secs(30));
    assert!(
        ready.is_some(),
        "the gateway never forwarded the agent's request\ngateway log:\n{}\nserver log:\n{}",
        gateway.log(),
        authority.server_log()
    );
    (agent, gateway, port, upstream_count)
}

#[test]
fn connect_denial_audited_with_others() {
    let authority = Authority::start();
    let (agent, gateway, port, _upstream_count) = ready_gateway(&authority);
    // Refusals while the gateway was loading its state may still be on their way, so only
    // the denials of this test are counted.
    let audited = |pattern: &str| {
        authority.sql_rows(&format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'gateway.denied' \
             AND details LIKE '{pattern}'"
        ))[0]["n"]
            .as_i64()
            .unwrap()
    };
    let others = "%\"path\":\"/other/%";
    let connect = "%\"method\":\"CONNECT\"%\"path\":\"127.0.0.1:9\"%";

    // Three refusals of the agent and, in the same second, a `CONNECT host:port` without a
    // certificate: its authority-form target has no path, and it must not cost the others
    // their audit events.
    for index in 0..3 {
        assert_eq!(
            call_path(&authority, port, &agent, &format!("/other/{index}")),
            403
        );
    }
    let connected = authority.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--http1.1",
        "-X",
        "CONNECT",
        "--request-target",
        "127.0.0.1:9",
        &format!("https://localhost:{port}"),
    ]);
    assert_eq!(String::from_utf8_lossy(&connected.stdout).trim(), "401");

    let deadline = Instant::now() + Duration::from_secs(10);
    while audited(others) + audited(connect) < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = gateway.log();
    assert_eq!(
        audited(others),
        3,
        "every refusal is audited\ngateway log:\n{log}"
    );
    assert_eq!(audited(connect), 1, "gateway log:\n{log}");
}

#[test]
fn decommissioned_agent_denied_at_gateway() {
    let authority = Authority::start();
    let (agent, gateway, port, upstream_count) = ready_gateway(&authority);
    let forwarded = upstream_count.load(Ordering::SeqCst);
    assert!(forwarded >= 1);

    authority.sigil_ok(&["agent", "decommission", "crm-bot", "--reason", "retired"]);
    let denied = wait_for_status(&authority, port, &agent, 403, Duration::from_secs(3));

    assert!(
        denied.is_some(),
        "the gateway still let the decommissioned agent through\ngateway log:\n{}",
        gateway.log()
    );
    assert_eq!(
        upstream_count.load(Ordering::SeqCst),
        forwarded,
        "a request after decommission reached the upstream"
    );
}

#[test]
fn empty_audience_rejected_at_start() {
    let dir = tempfile::tempdir().unwrap();

    let output = Command::new(sigil_bin())
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
        ])
        .args(["--server", "https://127.0.0.1:9", "--audience", " "])
        .arg("--bundle")
        .arg(dir.path().join("bundle.pem"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "an empty audience must stop the gateway"
    );
    assert!(stderr.contains("--audience must not be empty"), "{stderr}");
    assert!(
        !dir.path().join("state").exists(),
        "nothing is written before the options are valid"
    );
}
