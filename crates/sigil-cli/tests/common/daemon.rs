//! A `sigil-agent run` daemon process for end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Authority;

/// A `sigil-agent run` daemon; killed on drop.
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    pub fn start(authority: &Authority, out: &Path, token: Option<&str>, extra: &[&str]) -> Self {
        let socket = out.with_extension("sock");
        let log = out.with_extension("log");
        let mut command = Command::new(super::agent_bin());
        command
            .args(["run", "--server", &authority.url, "--bundle"])
            .arg(authority.bundle())
            .arg("--out")
            .arg(out)
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .env(
                "SIGIL_LOG",
                "debug,h2=info,hyper=info,rustls=info,tower=info",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(token) = token {
            command.args(["--join-token", token]);
        }
        let child = command.spawn().unwrap();
        let daemon = Self { child, socket, log };
        daemon.wait_for_socket(out);
        daemon
    }

    pub fn wait_for_socket(&self, out: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            let obtained = log.lines().any(|line| {
                line.contains("sigil_agent::daemon")
                    && (line.contains(" attested ") || line.contains(" renewed "))
            });
            if self.socket.exists() && out.join("svid.pem").exists() && obtained {
                return;
            }
            assert!(Instant::now() < deadline, "daemon did not start: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers `agent` with its own owner and an SVID lifetime; returns its output directory and
/// a join token.
pub fn enroll(authority: &Authority, agent: &str, ttl: &str) -> (PathBuf, String) {
    authority.sigil_ok(&["owner", "add", &format!("{agent}-owner@example.org")]);
    authority.sigil_ok(&[
        "agent",
        "register",
        agent,
        "--owner",
        &format!("{agent}-owner@example.org"),
        "--ttl",
        ttl,
    ]);
    let token = authority.token(agent);
    (authority.dir.path().join(agent), token)
}
