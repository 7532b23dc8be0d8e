//! The authority as a process: health and metrics, admin route access, shutdown on signals,
//! signing CA rotation, `sigil init` checks, file modes, and the `--json` output of listing
//! commands.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Authority, TRUST_DOMAIN, openssl, openssl_csr, openssl_ok, openssl_serial, sigil_bin,
    split_chain,
};

const OWNER: &str = "alice@example.org";

/// How long `sigil serve` may take to exit after SIGTERM or SIGINT.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// Returns the `{"error": {"code", "message"}}` code of an error body, checking the shape.
fn error_code(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|err| panic!("the error body is not JSON ({err}): {body}"));
    let message = value["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "the error body has no message: {body}");
    value["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("the error body has no code: {body}"))
        .to_owned()
}

/// Returns the lines of a Prometheus text exposition that are not comments.
fn samples(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

#[test]
fn healthz_needs_no_client_certificate() {
    let authority = Authority::start();

    let (status, body) = authority.request("GET", "/healthz", None, None);

    assert_eq!(
        status, 200,
        "/healthz must answer without a client certificate: {body}"
    );
    assert_eq!(body.trim(), "ok", "/healthz body");
}

#[test]
fn metrics_count_issuance_renewal_denial() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let renewed = authority.agent_once(&out, None);
    assert!(
        renewed.status.success(),
        "renewal failed: {}",
        String::from_utf8_lossy(&renewed.stderr)
    );
    let (status, _) = authority.request("GET", "/v1/admin/agents", None, None);
    assert_eq!(status, 401, "the request meant to be rejected was not");

    let headers = authority.dir.path().join("metrics-headers.txt");
    let output = authority.curl(&[
        "-s",
        "-D",
        &headers.display().to_string(),
        &format!("{}/metrics", authority.url),
    ]);
    assert!(output.status.success(), "curl could not fetch /metrics");
    let metrics = String::from_utf8(output.stdout).unwrap();
    let headers = std::fs::read_to_string(headers)
        .unwrap()
        .to_ascii_lowercase();
    let lines = samples(&metrics);

    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "/metrics must be Prometheus text format 0.0.4: {headers}"
    );
    assert!(
        lines.contains(&"sigil_svid_issuances_total 1"),
        "one attestation must count one issuance:\n{metrics}"
    );
    assert!(
        lines.contains(&"sigil_svid_renewals_total 1"),
        "one renewal must count one renewal:\n{metrics}"
    );
    assert!(
        lines.contains(&"sigil_denials_total{reason=\"client_certificate_required\"} 1"),
        "the rejected request must count one denial with its error code:\n{metrics}"
    );
    let renew_buckets: Vec<&&str> = lines
        .iter()
        .filter(|line| {
            line.starts_with("sigil_http_request_duration_seconds_bucket{")
                && line.contains("route=\"/v1/agent/renew\"")
        })
        .collect();
    assert!(
        !renew_buckets.is_empty(),
        "the renewal must be in the latency histogram:\n{metrics}"
    );
    assert!(
        renew_buckets
            .iter()
            .any(|line| line.contains("le=\"+Inf\"") && line.ends_with(" 1")),
        "the +Inf bucket of the renewal route must count one request: {renew_buckets:?}"
    );
    for line in &lines {
        let value = line
            .rsplit_once(' ')
            .map(|(_, value)| value)
            .unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok(),
            "a sample must end with a number: {line}"
        );
    }
}

#[test]
fn admin_route_rejects_agent_svid() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, "crm-bot");

    let (admin_status, admin_body) = authority.request(
        "GET",
        "/v1/admin/agents",
        None,
        Some((&authority.admin_cert(), &authority.admin_key())),
    );
    let (agent_status, agent_body) = authority.request(
        "GET",
        "/v1/admin/agents",
        None,
        Some((&out.join("svid.pem"), &out.join("svid.key"))),
    );

    assert_eq!(
        admin_status, 200,
        "the admin SVID must reach the admin route: {admin_body}"
    );
    assert_eq!(
        agent_status, 403,
        "an agent SVID must be forbidden on an admin route: {agent_body}"
    );
    assert_eq!(
        error_code(&agent_body),
        "admin_required",
        "error code for an agent SVID"
    );
}

#[test]
fn admin_route_requires_client_certificate() {
    let authority = Authority::start();

    let (status, body) = authority.request("GET", "/v1/admin/agents", None, None);

    assert_eq!(
        status, 401,
        "an admin route without a client certificate: {body}"
    );
    assert_eq!(
        error_code(&body),
        "client_certificate_required",
        "error code without a certificate"
    );
}

/// Makes a CA and, under it, a client certificate that claims the authority's admin SPIFFE ID;
/// returns the certificate and key paths.
fn foreign_admin_identity(dir: &Path) -> (PathBuf, PathBuf) {
    openssl_ok(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=foreign CA",
            "-days",
            "1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "foreign-ca.key",
            "-out",
            "foreign-ca.pem",
        ],
    );
    let (_, key) = openssl_csr(dir, "foreign");
    let extensions = dir.join("foreign.ext");
    std::fs::write(
        &extensions,
        format!(
            "subjectAltName=URI:spiffe://{TRUST_DOMAIN}/admin/root\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
        ),
    )
    .unwrap();
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "foreign.csr",
            "-CA",
            "foreign-ca.pem",
            "-CAkey",
            "foreign-ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "foreign.ext",
            "-out",
            "foreign.pem",
        ],
    );
    (dir.join("foreign.pem"), key)
}

#[test]
fn foreign_ca_certificate_fails_handshake() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let (cert, key) = foreign_admin_identity(dir);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let url = format!("{}/v1/admin/agents", authority.url);
    let events_before = authority.audit_count();

    // With TLS 1.2 the server's rejection of the client certificate is a handshake alert.
    let tls12 = authority.curl(&[
        "-sS",
        "--tls-max",
        "1.2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cert",
        &cert,
        "--key",
        &key,
        &url,
    ]);
    let tls12_error = String::from_utf8_lossy(&tls12.stderr);
    assert_eq!(
        tls12.status.code(),
        Some(35),
        "curl over TLS 1.2 must fail in the handshake (exit 35): {tls12_error}"
    );
    assert!(
        tls12_error.contains("alert unknown ca"),
        "the server must answer with an unknown_ca alert: {tls12_error}"
    );
    assert_eq!(
        String::from_utf8_lossy(&tls12.stdout),
        "000",
        "no HTTP response over TLS 1.2"
    );

    // With TLS 1.3 the client finishes its side first, so curl reports the alert or a reset when it
    // sends the request; either way no HTTP response comes back.
    let tls13 = authority.curl(&[
        "-sS",
        "--tlsv1.3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cert",
        &cert,
        "--key",
        &key,
        &url,
    ]);
    assert!(!tls13.status.success(), "curl over TLS 1.3 must fail");
    assert_eq!(
        String::from_utf8_lossy(&tls13.stdout),
        "000",
        "no HTTP response over TLS 1.3"
    );

    let log = authority.server_log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("TLS handshake failed"))
        .collect();
    assert_eq!(
        failures.len(),
        2,
        "the server must log both failed handshakes:\n{log}"
    );
    assert!(
        failures.iter().all(|line| line.contains("UnknownIssuer")),
        "the server must name the unknown issuer: {failures:?}"
    );
    assert_eq!(
        authority.audit_count(),
        events_before,
        "a failed handshake never reaches a route, so nothing is audited"
    );
}

#[test]
fn sigterm_stops_server_cleanly() {
    let mut authority = Authority::start();

    let stopped = authority.stop_with_signal("TERM", STOP_DEADLINE);

    let (status, took) =
        stopped.unwrap_or_else(|| panic!("sigil serve still ran {STOP_DEADLINE:?} after SIGTERM"));
    assert!(
        status.success(),
        "sigil serve exited with {status} after SIGTERM"
    );
    assert!(took < STOP_DEADLINE, "shutdown took {took:?}");
    assert!(
        authority.server_log().contains("authority stopped"),
        "the log must end with the stop message:\n{}",
        authority.server_log()
    );
}

#[test]
fn sigint_stops_server_cleanly() {
    let mut authority = Authority::start();

    let stopped = authority.stop_with_signal("INT", STOP_DEADLINE);

    let (status, took) =
        stopped.unwrap_or_else(|| panic!("sigil serve still ran {STOP_DEADLINE:?} after SIGINT"));
    assert!(
        status.success(),
        "sigil serve exited with {status} after SIGINT"
    );
    assert!(took < STOP_DEADLINE, "shutdown took {took:?}");
    assert!(
        authority.server_log().contains("authority stopped"),
        "the log must end with the stop message:\n{}",
        authority.server_log()
    );
}

/// Connects with Python's `ssl` module, prints `connected` after the handshake, then prints
/// `closed` when the server closes the idle connection.
const IDLE_TLS_CLIENT: &str = r#"
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        print("connected", flush=True)
        try:
            data = tls.recv(1)
        except (ConnectionError, ssl.SSLError):
            data = b""
        print("closed", flush=True)
"#;

#[test]
fn shutdown_closes_idle_connections() {
    let mut authority = Authority::start();
    let script = authority.dir.path().join("idle.py");
    std::fs::write(&script, IDLE_TLS_CLIENT).unwrap();
    let mut idle_tls = Command::new("python3")
        .arg(&script)
        .arg(authority.port.to_string())
        .arg(authority.bundle())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed by the tests");
    let mut idle_output = BufReader::new(idle_tls.stdout.take().unwrap());
    let mut first_line = String::new();
    idle_output.read_line(&mut first_line).unwrap();
    assert_eq!(
        first_line.trim(),
        "connected",
        "the idle TLS client did not connect"
    );
    // A TCP connection that never starts the TLS handshake.
    let silent = TcpStream::connect(("127.0.0.1", authority.port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let stopped = authority.stop_with_signal("TERM", Duration::from_secs(15));

    let (status, took) = stopped.expect("sigil serve did not exit within 15 s of SIGTERM");
    assert!(
        status.success(),
        "sigil serve exited with {status} after SIGTERM"
    );
    assert!(
        took < STOP_DEADLINE,
        "an idle connection delayed shutdown by {took:?}; the log:\n{}",
        authority.server_log()
    );
    let mut rest = String::new();
    idle_output.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest.trim(),
        "closed",
        "the server must close the idle TLS connection"
    );
    let _ = idle_tls.wait();
    drop(silent);
}

/// Returns the number of log lines containing `message`.
fn count_in_log(authority: &Authority, message: &str) -> usize {
    authority
        .server_log()
        .lines()
        .filter(|line| line.contains(message))
        .count()
}

#[test]
fn signing_ca_rotates_keeping_bundle() {
    let authority = Authority::start_with(&[
        "--signing-ca-lifetime",
        "20s",
        "--rotation-check-interval",
        "1s",
    ]);
    let dir = authority.dir.path();
    let bundle_before = std::fs::read(authority.bundle()).unwrap();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let enrolled_chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    let (_, enrolled_signing) = split_chain(&enrolled_chain, dir, "enrolled");
    let enrolled_signing = std::fs::read_to_string(enrolled_signing).unwrap();
    let rotations_at_enrolment = count_in_log(&authority, "signing CA rotated");

    let deadline = Instant::now() + Duration::from_secs(25);
    let signing_path = authority.data.join("ca/signing.pem");
    loop {
        let rotated = count_in_log(&authority, "signing CA rotated") > rotations_at_enrolment;
        if rotated && std::fs::read_to_string(&signing_path).unwrap() != enrolled_signing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the signing CA did not rotate within 25 s:\n{}",
            authority.server_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    assert_eq!(
        std::fs::read(authority.bundle()).unwrap(),
        bundle_before,
        "rotation must leave bundle.pem unchanged"
    );

    // Renew until no rotation happens during the renewal, so that ca/signing.pem read afterwards
    // is the signing CA that issued the renewed SVID.
    let mut attempts = 0;
    let (leaf, signing, current_signing) = loop {
        attempts += 1;
        let rotations_before = count_in_log(&authority, "signing CA rotated");
        let renewed = authority.agent_once(&out, None);
        assert!(
            renewed.status.success(),
            "renewal after rotation failed: {}",
            String::from_utf8_lossy(&renewed.stderr)
        );
        let current_signing = std::fs::read_to_string(&signing_path).unwrap();
        if count_in_log(&authority, "signing CA rotated") == rotations_before || attempts == 3 {
            let renewed_chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
            let (leaf, signing) = split_chain(&renewed_chain, dir, "renewed");
            break (leaf, signing, current_signing);
        }
    };
    let renewed_signing = std::fs::read_to_string(&signing).unwrap();

    assert_ne!(
        renewed_signing, enrolled_signing,
        "the renewed chain must not carry the previous signing CA"
    );
    assert_eq!(
        renewed_signing, current_signing,
        "the renewed chain must carry the signing CA in ca/signing.pem"
    );
    let verified = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            &authority.bundle().display().to_string(),
            "-untrusted",
            &signing.display().to_string(),
            &leaf.display().to_string(),
        ],
    );
    assert!(
        verified.status.success(),
        "openssl verify rejected the renewed chain against the unchanged bundle: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    let audited =
        authority.sql("SELECT subject FROM audit_events WHERE action = 'ca.signing_rotated'");
    let audited: Vec<&str> = audited.lines().collect();
    let renewed_serial = openssl_serial(&signing);
    assert!(
        audited.contains(&renewed_serial.as_str()),
        "the rotation to signing CA {renewed_serial} must be audited as ca.signing_rotated: {audited:?}"
    );
    // A 20 s signing CA is replaced at half-life, about every 10 s, so this test counts a few
    // rotations, not one per check interval.
    assert!(
        audited.len() <= 4,
        "the signing CA rotated {} times in about 25 s",
        audited.len()
    );
}

#[test]
fn restart_replaces_expired_signing_ca() {
    let mut authority = Authority::start_with(&[
        "--signing-ca-lifetime",
        "10s",
        "--rotation-check-interval",
        "1s",
    ]);
    let dir = authority.dir.path().to_path_buf();
    let signing_path = authority.data.join("ca/signing.pem");
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_in_log(&authority, "signing CA rotated") == 0 {
        assert!(
            Instant::now() < deadline,
            "no 10 s signing CA replaced the one from init:\n{}",
            authority.server_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = authority.terminate();
    assert!(
        status.success(),
        "sigil serve exited with {status} after SIGTERM"
    );
    let expired_signing = std::fs::read_to_string(&signing_path).unwrap();
    let signing_arg = signing_path.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while openssl(
        &dir,
        &["x509", "-in", &signing_arg, "-noout", "-checkend", "0"],
    )
    .status
    .success()
    {
        assert!(
            Instant::now() < deadline,
            "the 10 s signing CA did not expire"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Panics with the log if the authority exits or /healthz never returns 200.
    authority.spawn(&[]);

    let current_signing = std::fs::read_to_string(&signing_path).unwrap();
    assert_ne!(
        current_signing, expired_signing,
        "the expired signing CA must be replaced at start"
    );
    let serving_chain = std::fs::read_to_string(authority.data.join("server/tls.pem")).unwrap();
    let (serving_leaf, serving_signing) = split_chain(&serving_chain, &dir, "serving");
    assert_eq!(
        std::fs::read_to_string(&serving_signing).unwrap(),
        current_signing,
        "the serving certificate must be issued by the new signing CA"
    );
    let verified = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            &authority.bundle().display().to_string(),
            "-untrusted",
            &serving_signing.display().to_string(),
            &serving_leaf.display().to_string(),
        ],
    );
    assert!(
        verified.status.success(),
        "openssl verify rejected the new serving chain: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let audited =
        authority.sql("SELECT subject FROM audit_events WHERE action = 'ca.signing_rotated'");
    let new_serial = openssl_serial(&signing_path);
    assert!(
        audited.lines().any(|subject| subject == new_serial),
        "the replacement at start must be audited as ca.signing_rotated: {audited}"
    );
}

/// Runs `sigil init` on `data` with `args`; returns the output.
fn init(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(sigil_bin())
        .arg("init")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn init_rejects_invalid_trust_domains() {
    let dir = tempfile::tempdir().unwrap();
    let too_long = format!("{}.org", "a".repeat(252));
    let cases = [
        ("Example.org", "lowercase"),
        ("example.org:8443", "port"),
        ("u@example.org", "userinfo"),
        (too_long.as_str(), "longer than 255 bytes"),
    ];

    for (index, (trust_domain, problem)) in cases.iter().enumerate() {
        let data = dir.path().join(format!("data-{index}"));
        let output = init(&data, &["--trust-domain", trust_domain]);
        let stderr = String::from_utf8_lossy(&output.stderr);

        assert!(
            !output.status.success(),
            "sigil init accepted the trust domain `{trust_domain}`"
        );
        assert!(
            stderr.contains("invalid trust domain"),
            "the message must say the trust domain is invalid: {stderr}"
        );
        assert!(
            stderr.contains(problem),
            "the message for `{trust_domain}` must name the problem ({problem}): {stderr}"
        );
        assert!(
            !data.exists(),
            "a rejected sigil init must not create {}",
            data.display()
        );
    }
}

/// Returns every file under `root` with its mode and contents.
fn snapshot(root: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path).unwrap();
        let mode = metadata.permissions().mode();
        if metadata.is_dir() {
            files.push((path.clone(), mode, Vec::new()));
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        } else {
            files.push((path.clone(), mode, std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn init_refuses_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = init(&data, &["--trust-domain", TRUST_DOMAIN]);
    assert!(
        first.status.success(),
        "the first sigil init failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before = snapshot(&data);

    let second = init(&data, &["--trust-domain", "other.example"]);

    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "sigil init must refuse an initialised data directory"
    );
    assert!(
        stderr.contains("already exists and is not empty"),
        "the message must say why: {stderr}"
    );
    assert!(
        snapshot(&data) == before,
        "a refused sigil init must leave the data directory byte for byte unchanged"
    );
}

#[test]
fn init_refuses_unrelated_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "keep me").unwrap();
    let before = snapshot(&data);

    let output = init(&data, &["--trust-domain", TRUST_DOMAIN]);

    assert!(
        !output.status.success(),
        "sigil init must refuse a non-empty directory"
    );
    assert!(
        snapshot(&data) == before,
        "a refused sigil init must leave the directory byte for byte unchanged"
    );
}

#[test]
fn key_files_have_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let keys = [
        authority.data.join("ca/root.key"),
        authority.data.join("ca/signing.key"),
        authority.data.join("server/tls.key"),
        authority.admin_key(),
        out.join("svid.key"),
    ];

    for key in keys {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", key.display());
    }
}

#[test]
fn database_has_migration_tables() {
    let authority = Authority::start();
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sigil-store/migrations");
    let mut expected = BTreeSet::new();
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let sql = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in sql.lines() {
            let upper = line.trim_start().to_ascii_uppercase();
            if let Some(rest) = upper.strip_prefix("CREATE TABLE ") {
                let name = rest
                    .trim_start_matches("IF NOT EXISTS ")
                    .split([' ', '('])
                    .next()
                    .unwrap();
                expected.insert(name.to_ascii_lowercase());
            }
        }
    }
    assert!(
        !expected.is_empty(),
        "no CREATE TABLE found in {}",
        migrations.display()
    );

    let tables = authority.sql("SELECT name FROM sqlite_master WHERE type = 'table'");
    let tables: BTreeSet<String> = tables.lines().map(str::to_owned).collect();

    let missing: Vec<&String> = expected.difference(&tables).collect();
    assert!(
        missing.is_empty(),
        "tables missing from {}: {missing:?}",
        authority.database().display()
    );
}

/// Asserts that `stdout` is exactly one JSON document and returns it.
fn one_document(command: &str, stdout: &str) -> serde_json::Value {
    let mut documents = serde_json::Deserializer::from_str(stdout).into_iter::<serde_json::Value>();
    let first = documents
        .next()
        .unwrap_or_else(|| panic!("`{command}` printed no JSON"))
        .unwrap_or_else(|err| panic!("`{command}` printed invalid JSON ({err}): {stdout}"));
    assert!(
        documents.next().is_none(),
        "`{command}` printed more than one JSON document: {stdout}"
    );
    first
}

#[test]
fn listing_commands_print_one_json_document() {
    let authority = Authority::start();
    authority.enrolled_agent(OWNER, "crm-bot");

    let owners = one_document(
        "owner list --json",
        &authority.sigil_ok(&["owner", "list", "--json"]),
    );
    let agents = one_document(
        "agent list --json",
        &authority.sigil_ok(&["agent", "list", "--json"]),
    );
    let agent_detail = one_document(
        "agent show --json",
        &authority.sigil_ok(&["agent", "show", "crm-bot", "--json"]),
    );
    let findings = one_document(
        "findings --json",
        &authority.sigil_ok(&["findings", "--json"]),
    );

    let owner_emails: Vec<&str> = owners["owners"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["email"].as_str())
        .collect();
    assert_eq!(owner_emails, vec![OWNER], "owner list --json");
    let agent_names: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(agent_names, vec!["crm-bot"], "agent list --json");
    assert_eq!(
        agent_detail["name"], "crm-bot",
        "agent show --json names the agent"
    );
    assert_eq!(
        agent_detail["spiffe_id"],
        format!("spiffe://{TRUST_DOMAIN}/agent/crm-bot"),
        "agent show --json spiffe_id"
    );
    assert_eq!(agent_detail["status"], "active", "agent show --json status");
    assert_eq!(agent_detail["owner"], OWNER, "agent show --json owner");
    assert_eq!(
        agent_detail["credentials"].as_array().map(Vec::len),
        Some(1),
        "agent show --json lists the SVID"
    );
    assert!(
        agent_detail["entitlements"].is_array(),
        "agent show --json lists entitlements: {agent_detail}"
    );
    assert!(
        findings["findings"].is_array(),
        "findings --json has a findings array: {findings}"
    );
}

#[test]
fn agent_show_unknown_fails_cleanly() {
    let authority = Authority::start();

    let output = authority.sigil(&["agent", "show", "ghost", "--json"]);

    assert!(
        !output.status.success(),
        "agent show of an unknown agent must fail"
    );
    assert!(
        output.stdout.is_empty(),
        "a failed --json command must print nothing on stdout"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ghost"),
        "the error must name the agent: {stderr}"
    );
}
