//! End-to-end lifecycle: init, serve, owners, agents, attestation, renewal and decommission,
//! with real `sigil` and `sigil-agent` processes over TLS on loopback.

mod common;

use common::Authority;

#[test]
fn attest_renew_decommission() {
    let authority = Authority::start();
    let out = authority.enrolled_agent("alice@example.org", "crm-bot");
    let first = std::fs::read_to_string(out.join("svid.pem")).unwrap();

    let renewed = authority.agent_once(&out, None);
    assert!(
        renewed.status.success(),
        "{}",
        String::from_utf8_lossy(&renewed.stderr)
    );
    let second = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    assert_ne!(first, second, "renewal must write a new certificate");

    let shown = authority.sigil_json(&["agent", "show", "crm-bot"]);
    assert_eq!(shown["status"], "active");
    let credentials = shown["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 2);
    assert_eq!(credentials[0]["parent_serial"], credentials[1]["serial"]);

    let decommissioned =
        authority.sigil_json(&["agent", "decommission", "crm-bot", "--reason", "retired"]);
    assert_eq!(decommissioned["status"], "decommissioned");
    assert_eq!(
        decommissioned["revoked_serials"].as_array().unwrap().len(),
        2
    );

    let refused = authority.agent_once(&out, None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("revoked") || stderr.contains("decommissioned"),
        "{stderr}"
    );

    let verify = authority.sigil(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn admin_renews_own_certificate() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let key = dir.join("new-admin.key");
    let csr_path = dir.join("new-admin.csr");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=ignored",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr_path)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let csr = std::fs::read_to_string(&csr_path).unwrap();
    let body = serde_json::json!({ "csr": csr }).to_string();

    let (status, response) = authority.request(
        "POST",
        "/v1/admin/renew",
        Some(&body),
        Some((&authority.admin_cert(), &authority.admin_key())),
    );
    assert_eq!(status, 200, "{response}");
    let response: serde_json::Value = serde_json::from_str(&response).unwrap();
    assert_eq!(response["spiffe_id"], "spiffe://example.org/admin/root");

    let chain = dir.join("new-admin.pem");
    std::fs::write(&chain, response["svid"].as_str().unwrap()).unwrap();
    let (status, listed) = authority.request("GET", "/v1/admin/agents", None, Some((&chain, &key)));
    assert_eq!(
        status, 200,
        "the renewed admin certificate must work: {listed}"
    );
}

#[test]
fn serve_initialises_empty_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let port = common::free_port();
    let mut child = std::process::Command::new(common::sigil_bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !data.join("bundle.pem").exists() || !healthy(&data, port) {
        assert!(
            std::time::Instant::now() < deadline,
            "sigil serve did not start on an empty data directory"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let config = std::fs::read_to_string(data.join("config.json")).unwrap();
    assert!(
        config.contains("sigil.local"),
        "default trust domain expected: {config}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
}

fn healthy(data: &std::path::Path, port: u16) -> bool {
    std::process::Command::new("curl")
        .arg("--cacert")
        .arg(data.join("bundle.pem"))
        .args(["-sf", &format!("https://localhost:{port}/healthz")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn postgres_url_is_rejected_clearly() {
    let authority = Authority::start();
    let output = authority.sigil(&[
        "serve",
        "--listen",
        "127.0.0.1:1",
        "--database-url",
        "postgres://localhost/sigil",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--database-url"), "{stderr}");
}

#[test]
fn lost_renewal_response_is_retried() {
    let authority = Authority::start();
    let out = authority.enrolled_agent("alice@example.org", "retry-bot");

    // The renewal reaches the authority and is committed, but the agent never sees the response:
    // here the request is sent by curl with the key the agent keeps as pending.key.
    let (csr, key) = common::openssl_csr(authority.dir.path(), "pending");
    std::fs::copy(&key, out.join("pending.key")).unwrap();
    let body = serde_json::json!({ "csr": csr }).to_string();
    let (status, response) = authority.request(
        "POST",
        "/v1/agent/renew",
        Some(&body),
        Some((&out.join("svid.pem"), &out.join("svid.key"))),
    );
    assert_eq!(status, 200, "{response}");
    let lost: serde_json::Value = serde_json::from_str(&response).unwrap();

    let retried = authority.agent_once(&out, None);
    assert!(
        retried.status.success(),
        "retry failed: {}",
        String::from_utf8_lossy(&retried.stderr)
    );
    assert!(
        !out.join("pending.key").exists(),
        "pending.key must be removed after success"
    );

    let shown = authority.sigil_json(&["agent", "show", "retry-bot"]);
    assert_eq!(
        shown["status"], "active",
        "a retried renewal must not look like a fork"
    );
    let serial = common::openssl_serial(&out.join("svid.pem"));
    assert_eq!(
        serial,
        lost["serial"].as_str().unwrap(),
        "the retry must return the committed successor"
    );
    let findings = authority.sigil_json(&["findings", "--kind", "identity-fork"]);
    assert!(
        findings["findings"].as_array().unwrap().is_empty(),
        "no fork finding expected"
    );
}

#[test]
fn agent_rejects_plain_http_server() {
    let authority = Authority::start();
    authority.register("alice@example.org", "http-bot");
    let token = authority.token("http-bot");
    let out = authority.dir.path().join("http-bot");
    let output = std::process::Command::new(common::agent_bin())
        .args([
            "run",
            "--once",
            "--server",
            &format!("http://127.0.0.1:{}", authority.port),
            "--bundle",
        ])
        .arg(authority.bundle())
        .arg("--out")
        .arg(&out)
        .args(["--join-token", &token])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "plain HTTP must be refused before anything is sent"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("https://"), "{stderr}");

    let attest = authority.agent_once(&out, Some(&token));
    assert!(
        attest.status.success(),
        "the token must still be unused: {}",
        String::from_utf8_lossy(&attest.stderr)
    );
}

#[test]
fn second_server_refused_on_same_data_dir() {
    let authority = Authority::start();
    let output = authority.sigil(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", common::free_port()),
    ]);
    assert!(
        !output.status.success(),
        "two servers must not share a data directory"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
}

#[test]
fn wrong_method_gets_json_error() {
    let authority = Authority::start();
    let before = authority.audit_count();
    let (status, body) = authority.request("GET", "/v1/agent/renew", None, None);
    assert_eq!(status, 405, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert_eq!(
        authority.audit_count(),
        before + 1,
        "the rejection must be audited"
    );
}

#[test]
fn readable_ca_key_refused() {
    use std::os::unix::fs::PermissionsExt;

    let mut authority = Authority::start();
    assert!(authority.terminate().success());
    let key = authority.data.join("ca/signing.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let output = authority.sigil(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", authority.port),
    ]);
    assert!(
        !output.status.success(),
        "a world-readable CA key must stop the server"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn admin_commands_follow_listen_flag() {
    let authority = Authority::start();
    let output = std::process::Command::new(common::sigil_bin())
        .args(["owner", "list", "--json"])
        .env("SIGIL_DATA_DIR", &authority.data)
        .env_remove("SIGIL_SERVER")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "admin commands must find a server started with --listen: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
