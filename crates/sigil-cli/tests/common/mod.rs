//! Test harness: a real `sigil serve` process on a loopback port over a temporary data
//! directory, with helpers to run `sigil` and `sigil-agent` against it.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failed setup step fails the test"
)]

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
        let mut args: Vec<String> = vec![
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
