//! Test harness: a real `sigil serve` process on a loopback port over a temporary data
//! directory, with helpers to run `sigil` and `sigil-agent` against it.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failed setup step fails the test"
)]

pub mod daemon;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Trust domain of every test authority.
pub const TRUST_DOMAIN: &str = "example.org";

/// Path of the `sigil` binary built for this test run.
pub fn sigil_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sigil"))
}

/// Path of the `sigil-agent` binary, built beside `sigil` by `cargo test --workspace`.
pub fn agent_bin() -> PathBuf {
    let path = sigil_bin().with_file_name(format!("sigil-agent{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running authority; the process is killed on drop.
pub struct Authority {
    pub dir: TempDir,
    pub data: PathBuf,
    pub url: String,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Authority {
    /// Initialises a data directory and starts `sigil serve` on it.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`Authority::start`], with extra `sigil serve` arguments.
    pub fn start_with(serve_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let init = Command::new(sigil_bin())
            .args(["init", "--trust-domain", TRUST_DOMAIN, "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "sigil init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );

        let port = free_port();
        let log = dir.path().join("serve.log");
        let mut authority = Self {
            url: format!("https://127.0.0.1:{port}"),
            dir,
            data,
            port,
            log,
            child: None,
        };
        authority.spawn(serve_args);
        authority
    }

    /// Starts `sigil serve` and waits until it answers `/healthz`.
    pub fn spawn(&mut self, serve_args: &[&str]) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(sigil_bin())
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(serve_args)
            .env("SIGIL_DATA_DIR", &self.data)
            .env(
                "SIGIL_LOG",
                "debug,sqlx=warn,hyper=info,rustls=info,h2=info",
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ok = self
                .curl(&["-sf", &format!("{}/healthz", self.url)])
                .status
                .success();
            if ok {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("sigil serve exited with {status}: {}", self.server_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sigil serve did not become healthy: {}", self.server_log());
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "sigil serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn bundle(&self) -> PathBuf {
        self.data.join("bundle.pem")
    }

    pub fn admin_cert(&self) -> PathBuf {
        self.data.join("admin/svid.pem")
    }

    pub fn admin_key(&self) -> PathBuf {
        self.data.join("admin/svid.key")
    }

    pub fn database(&self) -> PathBuf {
        self.data.join("sigil.db")
    }

    /// Runs `sigil ARGS` against this authority.
    pub fn sigil(&self, args: &[&str]) -> Output {
        Command::new(sigil_bin())
            .args(args)
            .env("SIGIL_DATA_DIR", &self.data)
            .env("SIGIL_SERVER", &self.url)
            .output()
            .unwrap()
    }

    /// Runs `sigil ARGS`, asserts success and returns stdout.
    pub fn sigil_ok(&self, args: &[&str]) -> String {
        let output = self.sigil(args);
        assert!(
            output.status.success(),
            "sigil {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs `sigil ARGS --json` and parses stdout.
    pub fn sigil_json(&self, args: &[&str]) -> serde_json::Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        serde_json::from_str(&self.sigil_ok(&with_json)).unwrap()
    }

    /// Adds an owner and registers an agent under it.
    pub fn register(&self, owner: &str, agent: &str) {
        let owners = self.sigil_json(&["owner", "list"]);
        let known = owners["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["email"] == owner);
        if !known {
            self.sigil_ok(&["owner", "add", owner]);
        }
        self.sigil_ok(&["agent", "register", agent, "--owner", owner]);
    }

    /// Creates a join token for `agent`.
    pub fn token(&self, agent: &str) -> String {
        self.sigil_ok(&["token", "create", agent]).trim().to_owned()
    }

    /// Runs `sigil-agent run --once` into `out`.
    pub fn agent_once(&self, out: &Path, token: Option<&str>) -> Output {
        let mut command = Command::new(agent_bin());
        command
            .args(["run", "--once", "--server", &self.url, "--bundle"])
            .arg(self.bundle())
            .arg("--out")
            .arg(out);
        if let Some(token) = token {
            command.args(["--join-token", token]);
        }
        command.output().unwrap()
    }

    /// Registers `agent`, attests it into a new directory and returns that directory.
    pub fn enrolled_agent(&self, owner: &str, agent: &str) -> PathBuf {
        self.register(owner, agent);
        let token = self.token(agent);
        let out = self.dir.path().join(format!("agent-{agent}"));
        let output = self.agent_once(&out, Some(&token));
        assert!(
            output.status.success(),
            "attestation failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        out
    }

    /// Runs curl with the given arguments.
    pub fn curl(&self, args: &[&str]) -> Output {
        Command::new("curl")
            .arg("--cacert")
            .arg(self.bundle())
            .args(["--max-time", "10"])
            .args(args)
            .output()
            .unwrap()
    }

    /// Sends a JSON request with curl; returns `(status, body)`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        identity: Option<(&Path, &Path)>,
    ) -> (u16, String) {
        // HTTP/1.1 for the reason given at `send`.
        let mut args: Vec<String> = vec![
            "--http1.1".into(),
            "-s".into(),
            "-o".into(),
            "-".into(),
            "-w".into(),
            "\n%{http_code}".into(),
            "-X".into(),
            method.into(),
        ];
        if let Some((cert, key)) = identity {
            args.extend([
                "--cert".into(),
                cert.display().to_string(),
                "--key".into(),
                key.display().to_string(),
            ]);
        }
        if let Some(body) = body {
            args.extend([
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                body.into(),
            ]);
        }
        args.push(format!("{}{path}", self.url));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.curl(&refs);
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap_or(0), body.to_owned())
    }

    /// Returns the number of audit events, read from the database file.
    pub fn audit_count(&self) -> i64 {
        let output = Command::new("sqlite3")
            .arg(self.database())
            .arg("SELECT COUNT(*) FROM audit_events")
            .output();
        match output {
            Ok(o) if o.status.success() => {
                String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
            }
            _ => panic!("sqlite3 is needed by the tests (apt-get install sqlite3)"),
        }
    }

    /// Runs an SQL statement on the database file with the sqlite3 CLI; returns stdout.
    pub fn sql(&self, statement: &str) -> String {
        let output = Command::new("sqlite3")
            .arg(self.database())
            .arg(statement)
            .output()
            .expect("sqlite3 installed");
        assert!(
            output.status.success(),
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// Helpers of the interop and server tests: openssl, PEM chains and process signals.

/// Runs `openssl ARGS` with `dir` as the working directory.
pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed by the tests (apt-get install openssl)")
}

/// Runs `openssl ARGS`, asserts success and returns stdout followed by stderr.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let output = openssl(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openssl {args:?} failed: {text}");
    text
}

/// Returns the PEM blocks of `pem` in order, each from its BEGIN line to its END line.
pub fn pem_blocks(pem: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
        if line.starts_with("-----END ") {
            blocks.extend(current.take());
        }
    }
    blocks
}

/// Splits an SVID chain (leaf, then signing CA) into `<dir>/<prefix>-leaf.pem` and
/// `<dir>/<prefix>-signing.pem`; returns both paths.
pub fn split_chain(chain_pem: &str, dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let blocks = pem_blocks(chain_pem);
    assert_eq!(
        blocks.len(),
        2,
        "an SVID chain has the leaf and the signing CA: {chain_pem}"
    );
    let leaf = dir.join(format!("{prefix}-leaf.pem"));
    let signing = dir.join(format!("{prefix}-signing.pem"));
    std::fs::write(&leaf, &blocks[0]).unwrap();
    std::fs::write(&signing, &blocks[1]).unwrap();
    (leaf, signing)
}

/// Generates an ECDSA P-256 key and a CSR for it with openssl in `dir`; returns the CSR PEM and
/// the key path.
pub fn openssl_csr(dir: &Path, name: &str) -> (String, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let output = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=x",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (std::fs::read_to_string(&csr).unwrap(), key)
}

/// Returns the serial of the first certificate in `cert` as lowercase hex, as openssl prints it.
pub fn openssl_serial(cert: &Path) -> String {
    let text = openssl_ok(
        Path::new("."),
        &[
            "x509",
            "-in",
            &cert.display().to_string(),
            "-noout",
            "-serial",
        ],
    );
    let serial = text
        .trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("unexpected openssl output: {text}"));
    serial.to_ascii_lowercase()
}

impl Authority {
    /// Returns the process id of `sigil serve`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Sends `signal` (such as `TERM` or `INT`) to `sigil serve` and waits up to `timeout` for it
    /// to exit. Returns the exit status and the time it took, or `None` if it was still running,
    /// in which case it is killed.
    pub fn stop_with_signal(
        &mut self,
        signal: &str,
        timeout: Duration,
    ) -> Option<(std::process::ExitStatus, Duration)> {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().to_string();
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(kill.success(), "kill -{signal} {pid} failed");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some((status, sent.elapsed()));
            }
            if sent.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// Helpers for the bad-input, join-token, lineage, audit-chain and secrets suites.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Numbers the request-body files that [`Authority::send`] writes.
static BODY_FILES: AtomicUsize = AtomicUsize::new(0);

/// Row counts of the registry tables. A rejected request leaves every one of them unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryCounts {
    pub owners: i64,
    pub agents: i64,
    pub credentials: i64,
    pub join_tokens: i64,
    pub unused_join_tokens: i64,
    pub entitlements: i64,
    pub findings: i64,
}

/// The registry counts and the last audit sequence number, taken before a request.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    pub counts: RegistryCounts,
    pub audit_seq: i64,
}

/// One row of `audit_events`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub outcome: String,
    pub details: String,
}

impl AuditEvent {
    /// Returns every field as one line, for searching an event for a value.
    pub fn text(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.seq, self.actor, self.action, self.subject, self.outcome, self.details
        )
    }
}

/// The outcome of one request sent with curl.
#[derive(Debug, Clone)]
pub struct Reply {
    /// curl's exit code: 0 when a response arrived, non-zero after a TLS or connection failure.
    pub curl_exit: i32,
    /// HTTP status, or 0 when no response arrived.
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// Returns the body parsed as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Returns `error.code` of a Sigil error body, or an empty string.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Returns `error.message` of a Sigil error body, or an empty string.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Authority {
    /// Sends a request with curl over HTTP/1.1. The body is written to a file first, so that it
    /// may be of any size and contain any bytes.
    ///
    /// NOTE: HTTP/1.1 because curl 7.88.1 over HTTP/2 sometimes drops a response that the server
    /// sends before reading the whole request body (a rejection by the caller's certificate),
    /// and exits with code 92 instead. HTTP/2 allows such early responses, and Sigil's own
    /// client, reqwest, reads them.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        identity: Option<(&Path, &Path)>,
    ) -> Reply {
        let mut args: Vec<String> = vec![
            "--http1.1".into(),
            "-s".into(),
            "-o".into(),
            "-".into(),
            "-w".into(),
            "\n%{http_code}".into(),
            "-X".into(),
            method.into(),
        ];
        if let Some((cert, key)) = identity {
            args.extend(["--cert".into(), cert.display().to_string()]);
            args.extend(["--key".into(), key.display().to_string()]);
        }
        if let Some(content_type) = content_type {
            args.extend(["-H".into(), format!("Content-Type: {content_type}")]);
        }
        if let Some(body) = body {
            let number = BODY_FILES.fetch_add(1, Ordering::SeqCst);
            let file = self.dir.path().join(format!("request-body-{number}"));
            std::fs::write(&file, body).unwrap();
            args.extend(["--data-binary".into(), format!("@{}", file.display())]);
        }
        args.push(format!("{}{path}", self.url));

        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.curl(&refs);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        Reply {
            curl_exit: output.status.code().unwrap_or(-1),
            status: status.trim().parse().unwrap_or(0),
            body: body.to_owned(),
        }
    }

    /// Sends a JSON body with `Content-Type: application/json`.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
        identity: Option<(&Path, &Path)>,
    ) -> Reply {
        let bytes = body.to_string().into_bytes();
        self.send(
            method,
            path,
            Some("application/json"),
            Some(&bytes),
            identity,
        )
    }

    /// Returns the admin identity of the data directory as `(certificate chain, key)`.
    pub fn admin_identity(&self) -> (PathBuf, PathBuf) {
        (self.admin_cert(), self.admin_key())
    }

    /// Runs a statement with `sqlite3 -json`, waiting up to 5 s for the server's write lock;
    /// returns the rows.
    pub fn sql_rows(&self, statement: &str) -> Vec<serde_json::Value> {
        let output = Command::new("sqlite3")
            .args(["-json", "-cmd", ".timeout 5000"])
            .arg(self.database())
            .arg(statement)
            .output()
            .expect("sqlite3 installed");
        assert!(
            output.status.success(),
            "sqlite3 failed on {statement:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        if text.trim().is_empty() {
            return Vec::new();
        }
        serde_json::from_str(&text).unwrap()
    }

    /// Runs a statement that changes the database, waiting up to 5 s for the write lock.
    pub fn sql_write(&self, statement: &str) {
        let output = Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(self.database())
            .arg(statement)
            .output()
            .expect("sqlite3 installed");
        assert!(
            output.status.success(),
            "sqlite3 failed on {statement:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Returns the row counts of the registry tables.
    pub fn registry_counts(&self) -> RegistryCounts {
        let rows = self.sql_rows(
            "SELECT (SELECT COUNT(*) FROM owners) AS owners,
                    (SELECT COUNT(*) FROM agents) AS agents,
                    (SELECT COUNT(*) FROM credentials) AS credentials,
                    (SELECT COUNT(*) FROM join_tokens) AS join_tokens,
                    (SELECT COUNT(*) FROM join_tokens WHERE used_at IS NULL) AS unused_join_tokens,
                    (SELECT COUNT(*) FROM entitlements) AS entitlements,
                    (SELECT COUNT(*) FROM findings) AS findings",
        );
        let row = &rows[0];
        let count = |name: &str| row[name].as_i64().unwrap();
        RegistryCounts {
            owners: count("owners"),
            agents: count("agents"),
            credentials: count("credentials"),
            join_tokens: count("join_tokens"),
            unused_join_tokens: count("unused_join_tokens"),
            entitlements: count("entitlements"),
            findings: count("findings"),
        }
    }

    /// Returns the sequence number of the newest audit event, 0 for an empty log.
    pub fn last_audit_seq(&self) -> i64 {
        let rows = self.sql_rows("SELECT COALESCE(MAX(seq), 0) AS seq FROM audit_events");
        rows[0]["seq"].as_i64().unwrap()
    }

    /// Returns the audit events with a sequence number above `seq`, oldest first.
    pub fn audit_events_after(&self, seq: i64) -> Vec<AuditEvent> {
        let rows = self.sql_rows(&format!(
            "SELECT seq, actor, action, subject, outcome, details FROM audit_events
             WHERE seq > {seq} ORDER BY seq"
        ));
        rows.into_iter()
            .map(|row| serde_json::from_value(row).unwrap())
            .collect()
    }

    /// Returns every audit event, oldest first.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.audit_events_after(0)
    }

    /// Records the registry counts and the audit position before a request.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            counts: self.registry_counts(),
            audit_seq: self.last_audit_seq(),
        }
    }

    /// Asserts that the registry is unchanged since `before` and that a denial was audited
    /// after it with `code`, and returns the new audit events. No new event may contain any of
    /// `secrets`.
    pub fn assert_nothing_stored(
        &self,
        case: &str,
        before: &Checkpoint,
        code: &str,
        secrets: &[&str],
    ) -> Vec<AuditEvent> {
        assert_eq!(
            self.registry_counts(),
            before.counts,
            "{case}: the registry changed"
        );

        let events = self.audit_events_after(before.audit_seq);
        let denial = events
            .iter()
            .find(|event| event.outcome == "denied" && event.details.contains(code));
        assert!(
            denial.is_some(),
            "{case}: no denial event with code {code} in {events:#?}"
        );
        for event in &events {
            for secret in secrets {
                assert!(
                    !event.text().contains(secret),
                    "{case}: audit event {} contains a secret",
                    event.seq
                );
            }
        }
        events
    }

    /// Asserts the whole contract of a rejected API request: the expected status and error
    /// code, a non-empty message, an unchanged registry and an audit event without `secrets`.
    pub fn assert_rejected(
        &self,
        case: &str,
        before: &Checkpoint,
        reply: &Reply,
        status: u16,
        code: &str,
        secrets: &[&str],
    ) {
        if reply.status == 0 {
            let log = self.server_log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{case}: no HTTP response (curl exit code {}); last server log lines, newest first:\n{}",
                reply.curl_exit,
                tail.join("\n")
            );
        }
        assert_eq!(reply.status, status, "{case}: status; body {}", reply.body);
        assert_eq!(
            reply.error_code(),
            code,
            "{case}: error code; body {}",
            reply.body
        );
        assert!(
            !reply.error_message().is_empty(),
            "{case}: empty error message"
        );
        for secret in secrets {
            assert!(
                !reply.body.contains(secret),
                "{case}: the error body contains a secret"
            );
        }
        self.assert_nothing_stored(case, before, code, secrets);
    }

    /// Runs `sigil ARGS`, asserts that it fails and returns its stderr.
    pub fn sigil_fails(&self, args: &[&str]) -> String {
        let output = self.sigil(args);
        assert!(
            !output.status.success(),
            "sigil {args:?} succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Returns an agent's status as `sigil agent show --json` reports it.
    pub fn agent_status(&self, agent: &str) -> String {
        let shown = self.sigil_json(&["agent", "show", agent]);
        shown["status"].as_str().unwrap().to_owned()
    }

    /// Returns the serials of an agent's credentials, newest first.
    pub fn agent_serials(&self, agent: &str) -> Vec<String> {
        let shown = self.sigil_json(&["agent", "show", agent]);
        shown["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|credential| credential["serial"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits up to 5 s for the server log to contain `text` at least `count` times.
    pub fn wait_for_log_count(&self, text: &str, count: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.server_log().matches(text).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Runs `openssl ARGS`, asserts success and returns stdout alone, which may be binary.
pub fn openssl_stdout(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl installed");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Writes a new private key to `path` with `openssl genpkey`. `options` select the algorithm,
/// for example `["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]`.
pub fn generate_key(path: &Path, options: &[&str]) -> PathBuf {
    let mut args = vec!["genpkey"];
    args.extend_from_slice(options);
    let path_text = path.display().to_string();
    args.extend(["-out", &path_text]);
    openssl_stdout(&args);
    path.to_owned()
}

/// Writes a new ECDSA P-256 private key to `path`.
pub fn generate_p256_key(path: &Path) -> PathBuf {
    generate_key(
        path,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

/// Returns a PEM CSR signed by `key`, with `extra` arguments for `openssl req` such as
/// `-subj` or `-addext`.
pub fn csr_pem(key: &Path, extra: &[&str]) -> String {
    let key_text = key.display().to_string();
    let mut args = vec!["req", "-new", "-key", &key_text];
    if !extra.contains(&"-subj") {
        args.extend(["-subj", "/O=sigil-test"]);
    }
    args.extend_from_slice(extra);
    String::from_utf8(openssl_stdout(&args)).unwrap()
}

/// Returns the base64 lines of every PEM block in `pem`, without the BEGIN and END lines.
pub fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

/// Decodes one PEM block to DER.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    parsed.contents
}
