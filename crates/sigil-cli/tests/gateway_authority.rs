//! The authority's side of enforcement, against a real `sigil serve` over TLS on loopback:
//! gateway registration and SVIDs, the revocation stream (`GET /v1/revocations`), the gateway
//! state and denial reports. Streams are read with `curl -N`, so the wire format is checked as
//! an ordinary SSE client sees it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Authority, TRUST_DOMAIN, openssl_ok, openssl_serial, split_chain};
use serde_json::{Value, json};

const OWNER: &str = "alice@example.org";

/// One server-sent event as a client reads it.
#[derive(Debug, Clone, Default)]
struct Frame {
    id: String,
    event: String,
    data: Value,
}

/// A `curl -N` reading `/v1/revocations`; frames arrive on a channel stamped with the time
/// their last line was read. The process is killed on drop.
struct Stream {
    child: Child,
    frames: mpsc::Receiver<(Instant, Frame)>,
}

impl Stream {
    fn open(
        authority: &Authority,
        identity: (&Path, &Path),
        query: &str,
        header: Option<&str>,
    ) -> Self {
        let mut command = Command::new("curl");
        command
            .args(["-sN", "--http1.1", "--cacert"])
            .arg(authority.bundle())
            .arg("--cert")
            .arg(identity.0)
            .arg("--key")
            .arg(identity.1);
        if let Some(header) = header {
            command.args(["-H", header]);
        }
        let mut child = command
            .arg(format!("{}/v1/revocations{query}", authority.url))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, frames) = mpsc::channel();
        std::thread::spawn(move || {
            let mut frame = Frame::default();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    if sender
                        .send((Instant::now(), std::mem::take(&mut frame)))
                        .is_err()
                    {
                        return;
                    }
                } else if let Some(id) = line.strip_prefix("id: ") {
                    frame.id = id.to_owned();
                } else if let Some(event) = line.strip_prefix("event: ") {
                    frame.event = event.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    frame.data = serde_json::from_str(data).unwrap();
                }
            }
        });
        Self { child, frames }
    }

    /// Returns the next frame, or panics after `timeout`.
    fn next(&self, timeout: Duration) -> (Instant, Frame) {
        self.frames
            .recv_timeout(timeout)
            .unwrap_or_else(|err| panic!("no event within {timeout:?}: {err}"))
    }

    /// Returns the next frame that is not a heartbeat.
    fn next_event(&self, timeout: Duration) -> (Instant, Frame) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, frame) = self.next(left);
            if frame.event != "heartbeat" {
                return (at, frame);
            }
        }
    }

    /// Waits for the first heartbeat, which proves that the stream is connected and caught up.
    fn wait_connected(&self) -> Frame {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, frame) = self.next(left);
            if frame.event == "heartbeat" {
                return frame;
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway's identity files, attested with a gateway join token.
struct GatewayIdentity {
    chain: PathBuf,
    key: PathBuf,
    serial: String,
}

impl GatewayIdentity {
    fn pair(&self) -> (&Path, &Path) {
        (&self.chain, &self.key)
    }
}

/// Creates a gateway token with `sigil token create --gateway`, attests with an openssl CSR and
/// writes the chain and key into the test directory.
fn enrolled_gateway(authority: &Authority, name: &str, sans: &[&str]) -> GatewayIdentity {
    let mut args = vec!["token", "create", "--gateway", name];
    for san in sans {
        args.extend(["--san", san]);
    }
    let token = authority.sigil_ok(&args);
    assert_eq!(
        token.lines().count(),
        1,
        "stdout must be the token alone: {token}"
    );
    let token = token.trim();
    assert!(token.starts_with("sigil_jt_"), "not a join token: {token}");

    let dir = authority.dir.path();
    let (csr, key) = common::openssl_csr(dir, &format!("gateway-{name}"));
    let reply = authority.send_json(
        "POST",
        "/v1/agent/attest",
        &json!({"join_token": token, "csr": csr}),
        None,
    );
    assert_eq!(
        reply.status, 200,
        "gateway attestation failed: {}",
        reply.body
    );
    let response = reply.json();
    assert_eq!(
        response["spiffe_id"],
        format!("spiffe://{TRUST_DOMAIN}/gateway/{name}")
    );
    let chain = dir.join(format!("gateway-{name}.pem"));
    std::fs::write(&chain, response["svid"].as_str().unwrap()).unwrap();
    GatewayIdentity {
        serial: response["serial"].as_str().unwrap().to_owned(),
        chain,
        key,
    }
}

/// Returns the SANs of the first certificate in `pem_path` as openssl prints them.
fn subject_alt_names(pem_path: &Path) -> Vec<String> {
    let text = openssl_ok(
        Path::new("."),
        &[
            "x509",
            "-in",
            &pem_path.display().to_string(),
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    text.lines()
        .skip(1)
        .flat_map(|line| {
            line.trim()
                .split(", ")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn serials(frame: &Frame) -> Vec<String> {
    frame.data["serials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|serial| serial.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gateway_svid_names_from_registry() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let token = authority
        .sigil_ok(&[
            "token",
            "create",
            "--gateway",
            "edge",
            "--san",
            "GW.example.org",
            "--san",
            "10.0.0.5",
        ])
        .trim()
        .to_owned();

    // The CSR asks for a CA certificate, an admin URI and another DNS name; none may appear.
    let key = common::generate_p256_key(&dir.join("greedy.key"));
    let csr = common::csr_pem(
        &key,
        &[
            "-subj",
            "/CN=admin",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=URI:spiffe://example.org/admin/root,DNS:evil.example.org",
        ],
    );
    let reply = authority.send_json(
        "POST",
        "/v1/agent/attest",
        &json!({"join_token": token, "csr": csr}),
        None,
    );
    assert_eq!(
        reply.status, 200,
        "gateway attestation failed: {}",
        reply.body
    );
    let (leaf, signing) = split_chain(reply.json()["svid"].as_str().unwrap(), dir, "edge");

    let names = subject_alt_names(&leaf);
    let expected: Vec<String> = [
        "URI:spiffe://example.org/gateway/edge",
        "DNS:localhost",
        "DNS:gw.example.org",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "IP Address:10.0.0.5",
    ]
    .iter()
    .map(|name| (*name).to_owned())
    .collect();
    assert_eq!(
        names, expected,
        "the SANs must come from the registry alone"
    );
    let text = openssl_ok(
        dir,
        &[
            "x509",
            "-in",
            &leaf.display().to_string(),
            "-noout",
            "-text",
        ],
    );
    assert!(
        text.contains("CA:FALSE"),
        "a gateway SVID is not a CA:\n{text}"
    );
    assert!(
        !text.contains("admin"),
        "the CSR subject must not reach the certificate:\n{text}"
    );

    let verified = openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            &authority.bundle().display().to_string(),
            "-untrusted",
            &signing.display().to_string(),
            "-verify_hostname",
            "gw.example.org",
            &leaf.display().to_string(),
        ],
    );
    assert!(verified.trim_end().ends_with(": OK"), "{verified}");

    let reused = authority.send_json(
        "POST",
        "/v1/agent/attest",
        &json!({"join_token": token, "csr": csr}),
        None,
    );
    assert_eq!(
        reused.status, 401,
        "a gateway token is single use: {}",
        reused.body
    );
    assert_eq!(reused.error_code(), "invalid_join_token");

    for event in authority.audit_events() {
        assert!(
            !event.text().contains(&token),
            "audit event {} contains the gateway token",
            event.seq
        );
    }
    assert!(
        !authority.server_log().contains(&token),
        "the server log contains the gateway token"
    );
}

#[test]
fn gateway_renews_its_svid() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let gateway = enrolled_gateway(&authority, "edge", &["10.1.2.3"]);

    let (csr, _) = common::openssl_csr(dir, "edge-next");
    let body = json!({"csr": csr});
    let renewed = authority.send_json("POST", "/v1/agent/renew", &body, Some(gateway.pair()));
    assert_eq!(
        renewed.status, 200,
        "gateway renewal failed: {}",
        renewed.body
    );
    let serial = renewed.json()["serial"].as_str().unwrap().to_owned();
    assert_ne!(serial, gateway.serial);
    let (leaf, _) = split_chain(renewed.json()["svid"].as_str().unwrap(), dir, "edge-next");
    assert!(
        subject_alt_names(&leaf).contains(&"IP Address:10.1.2.3".to_owned()),
        "the renewed SVID keeps the recorded SANs"
    );
    assert_eq!(openssl_serial(&leaf), serial);

    let retry = authority.send_json("POST", "/v1/agent/renew", &body, Some(gateway.pair()));
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(
        retry.json()["serial"],
        serial.as_str(),
        "a retry returns the same successor"
    );

    let (other_csr, _) = common::openssl_csr(dir, "edge-thief");
    let fork = authority.send_json(
        "POST",
        "/v1/agent/renew",
        &json!({"csr": other_csr}),
        Some(gateway.pair()),
    );
    assert_eq!(fork.status, 403, "{}", fork.body);
    assert_eq!(fork.error_code(), "renewal_refused");

    let admin = authority.admin_identity();
    let admin_route = authority.send("GET", "/v1/admin/agents", None, None, Some(gateway.pair()));
    assert_eq!(admin_route.status, 403, "{}", admin_route.body);
    assert_eq!(admin_route.error_code(), "admin_required");
    let before = authority.checkpoint();
    let admin_renew =
        authority.send_json("POST", "/v1/agent/renew", &body, Some((&admin.0, &admin.1)));
    authority.assert_rejected(
        "admin on agent renew",
        &before,
        &admin_renew,
        403,
        "agent_required",
        &[],
    );
}

#[test]
fn gateway_token_input_rejected() {
    let authority = Authority::start();
    let admin = authority.admin_identity();
    let gateways = || {
        authority.sql_rows("SELECT COUNT(*) AS n FROM gateways")[0]["n"]
            .as_i64()
            .unwrap()
    };

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "wildcard SAN",
            json!({"gateway": "edge", "sans": ["*.example.org"]}),
            400,
            "invalid_san",
        ),
        (
            "URI SAN",
            json!({"gateway": "edge", "sans": ["spiffe://example.org/admin/x"]}),
            400,
            "invalid_san",
        ),
        (
            "SAN with port",
            json!({"gateway": "edge", "sans": ["gw.example.org:443"]}),
            400,
            "invalid_san",
        ),
        (
            "empty SAN",
            json!({"gateway": "edge", "sans": [""]}),
            400,
            "invalid_san",
        ),
        ("dot name", json!({"gateway": ".."}), 400, "invalid_name"),
        ("slash name", json!({"gateway": "a/b"}), 400, "invalid_name"),
        (
            "long ttl",
            json!({"gateway": "edge", "ttl": "48h"}),
            400,
            "invalid_ttl",
        ),
        (
            "unknown field",
            json!({"gateway": "edge", "agent": "bot"}),
            400,
            "invalid_request",
        ),
        (
            "SANs not strings",
            json!({"gateway": "edge", "sans": [1]}),
            400,
            "invalid_request",
        ),
    ];
    for (case, body, status, code) in cases {
        let before = authority.checkpoint();
        let reply = authority.send_json(
            "POST",
            "/v1/admin/tokens",
            &body,
            Some((&admin.0, &admin.1)),
        );
        authority.assert_rejected(case, &before, &reply, status, code, &[]);
        assert_eq!(gateways(), 0, "{case}: a gateway was registered");
    }

    let stderr =
        authority.sigil_fails(&["token", "create", "--gateway", "edge", "--san", "https://x"]);
    assert!(stderr.contains("invalid SAN"), "{stderr}");

    enrolled_gateway(&authority, "edge", &["gw.example.org"]);
    let before = authority.checkpoint();
    let changed = authority.send_json(
        "POST",
        "/v1/admin/tokens",
        &json!({"gateway": "edge", "sans": ["other.example.org"]}),
        Some((&admin.0, &admin.1)),
    );
    authority.assert_rejected("changed SANs", &before, &changed, 409, "conflict", &[]);
    let again = authority.sigil_ok(&["token", "create", "--gateway", "edge"]);
    assert!(
        again.trim().starts_with("sigil_jt_"),
        "a token without --san keeps the SANs"
    );

    authority.register(OWNER, "bot");
    assert!(
        authority.token("bot").starts_with("sigil_jt_"),
        "agent tokens still work"
    );
}

#[test]
fn stream_pushes_decommission_quickly() {
    let authority = Authority::start_with(&["--revocation-heartbeat", "200ms"]);
    let admin = authority.admin_identity();
    let mut latencies = Vec::new();

    for round in 0..5 {
        let agent = format!("bot-{round}");
        let out = authority.enrolled_agent(OWNER, &agent);
        let live_serial = openssl_serial(&out.join("svid.pem"));
        let stream = Stream::open(&authority, (&admin.0, &admin.1), "", None);
        stream.wait_connected();

        let output = authority.sigil(&["agent", "decommission", &agent]);
        let returned = Instant::now();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );

        let (_, status) = stream.next_event(Duration::from_secs(5));
        assert_eq!(status.event, "agent-status", "{status:?}");
        assert_eq!(status.data["agent"], agent.as_str());
        assert_eq!(status.data["status"], "decommissioned");
        assert_eq!(
            status.data["spiffe_id"],
            format!("spiffe://{TRUST_DOMAIN}/agent/{agent}")
        );
        let (arrived, revoke) = stream.next_event(Duration::from_secs(5));
        assert_eq!(revoke.event, "revoke", "{revoke:?}");
        assert_eq!(serials(&revoke), vec![live_serial]);
        assert_eq!(revoke.data["agent"], agent.as_str());
        let (_, policy) = stream.next_event(Duration::from_secs(5));
        assert_eq!(policy.event, "policy", "{policy:?}");
        assert!(policy.data["policy_version"].as_u64().unwrap() > 0);

        let ids: Vec<u64> = [&status, &revoke, &policy]
            .iter()
            .map(|frame| frame.id.parse().unwrap())
            .collect();
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "ids must increase: {ids:?}"
        );
        assert_eq!(
            revoke.data["seq"].as_u64(),
            Some(ids[1]),
            "`id:` is the event's seq"
        );
        latencies.push(arrived.saturating_duration_since(returned));
    }

    eprintln!("revocation event after the decommission command returned: {latencies:?}");
    for latency in &latencies {
        assert!(
            *latency < Duration::from_millis(100),
            "the revoke event arrived {latency:?} after the command returned: {latencies:?}"
        );
    }
}

#[test]
fn stream_resumes_and_resyncs() {
    let authority = Authority::start_with(&["--revocation-heartbeat", "100ms"]);
    let admin = authority.admin_identity();
    let admin = (admin.0.as_path(), admin.1.as_path());
    authority.enrolled_agent(OWNER, "crm-bot");
    authority.sigil_ok(&["agent", "grant", "crm-bot", "read:doc:*"]);
    authority.sigil_ok(&["agent", "suspend", "crm-bot"]);

    let everything = Stream::open(&authority, admin, "?since=0", None);
    let mut replayed = Vec::new();
    loop {
        let (_, frame) = everything.next(Duration::from_secs(5));
        if frame.event == "heartbeat" {
            break;
        }
        replayed.push(frame);
    }
    let kinds: Vec<&str> = replayed.iter().map(|frame| frame.event.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "policy",
            "agent-status",
            "policy",
            "policy",
            "agent-status",
            "policy"
        ],
        "register, attest, grant and suspend, in commit order"
    );
    let last: u64 = replayed.last().unwrap().id.parse().unwrap();
    let heartbeat = everything.wait_connected();
    assert_eq!(
        heartbeat.data["seq"].as_u64(),
        Some(last),
        "a heartbeat carries the newest seq"
    );

    let third = &replayed[2].id;
    let resumed = Stream::open(
        &authority,
        admin,
        "?since=0",
        Some(&format!("Last-Event-ID: {third}")),
    );
    let (_, first) = resumed.next_event(Duration::from_secs(5));
    assert_eq!(
        first.id, replayed[3].id,
        "Last-Event-ID wins over ?since and resumes after it"
    );

    let by_query = Stream::open(&authority, admin, &format!("?since={last}"), None);
    authority.sigil_ok(&["agent", "resume", "crm-bot"]);
    let (_, next) = by_query.next_event(Duration::from_secs(5));
    assert_eq!(next.event, "agent-status");
    assert_eq!(next.data["status"], "active");
    assert!(next.id.parse::<u64>().unwrap() > last);

    authority.sql_write("DELETE FROM revocation_events WHERE seq <= 3");
    let stale = Stream::open(&authority, admin, "?since=1", None);
    let (_, resync) = stale.next(Duration::from_secs(5));
    assert_eq!(resync.event, "resync", "{resync:?}");
    let ahead = Stream::open(&authority, admin, "?since=999999", None);
    let (_, resync) = ahead.next(Duration::from_secs(5));
    assert_eq!(
        resync.event, "resync",
        "a resume point past the log is stale too"
    );

    for (query, header) in [("?since=abc", None), ("?since=-1", None), ("", Some("x"))] {
        let mut args: Vec<String> = Vec::new();
        if let Some(value) = header {
            args.push(format!("Last-Event-ID: {value}"));
        }
        let before = authority.checkpoint();
        let reply = if args.is_empty() {
            authority.send(
                "GET",
                &format!("/v1/revocations{query}"),
                None,
                None,
                Some(admin),
            )
        } else {
            let output = authority.curl(&[
                "--http1.1",
                "-s",
                "-w",
                "\n%{http_code}",
                "--cert",
                &admin.0.display().to_string(),
                "--key",
                &admin.1.display().to_string(),
                "-H",
                &args[0],
                &format!("{}/v1/revocations", authority.url),
            ]);
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let (body, status) = text.rsplit_once('\n').unwrap();
            common::Reply {
                curl_exit: 0,
                status: status.parse().unwrap(),
                body: body.to_owned(),
            }
        };
        authority.assert_rejected(
            &format!("resume point {query}{header:?}"),
            &before,
            &reply,
            400,
            "invalid_since",
            &[],
        );
    }
}

#[test]
fn enforcement_routes_need_gateway_or_admin() {
    let authority = Authority::start();
    let agent = authority.enrolled_agent(OWNER, "crm-bot");
    let agent_identity = (agent.join("svid.pem"), agent.join("svid.key"));
    let gateway = enrolled_gateway(&authority, "edge", &[]);
    let admin = authority.admin_identity();
    let batch = json!({"denials": [{
        "at_ms": 1_800_000_000_000_i64, "method": "GET", "path": "/x", "reason": "policy", "status": 403
    }]});

    for path in ["/v1/revocations", "/v1/gateway/state"] {
        let before = authority.checkpoint();
        let reply = authority.send(
            "GET",
            path,
            None,
            None,
            Some((&agent_identity.0, &agent_identity.1)),
        );
        authority.assert_rejected(path, &before, &reply, 403, "gateway_or_admin_required", &[]);
        let before = authority.checkpoint();
        let reply = authority.send("GET", path, None, None, None);
        authority.assert_rejected(
            path,
            &before,
            &reply,
            401,
            "client_certificate_required",
            &[],
        );
    }
    for (who, identity) in [
        ("admin", (&admin.0, &admin.1)),
        ("agent", (&agent_identity.0, &agent_identity.1)),
    ] {
        let before = authority.checkpoint();
        let reply = authority.send_json(
            "POST",
            "/v1/gateway/denials",
            &batch,
            Some((identity.0, identity.1)),
        );
        authority.assert_rejected(who, &before, &reply, 403, "gateway_required", &[]);
    }

    let state = authority.send("GET", "/v1/gateway/state", None, None, Some(gateway.pair()));
    assert_eq!(state.status, 200, "{}", state.body);
    let stream = Stream::open(&authority, gateway.pair(), "", None);
    stream.wait_connected();

    authority.sql_write(&format!(
        "UPDATE credentials SET revoked_at = 1 WHERE serial = '{}'",
        gateway.serial
    ));
    // The registry change above bypassed the authority, so nothing tells connections to check
    // again; a new connection is checked afresh.
    let revoked = authority.send("GET", "/v1/gateway/state", None, None, Some(gateway.pair()));
    assert_eq!(revoked.status, 403, "{}", revoked.body);
    assert_eq!(revoked.error_code(), "certificate_revoked");
}

#[test]
fn gateway_state_matches_registry() {
    let authority = Authority::start();
    let admin = authority.admin_identity();
    let gateway = enrolled_gateway(&authority, "edge", &[]);
    let retired = authority.enrolled_agent(OWNER, "old-bot");
    let retired_serial = openssl_serial(&retired.join("svid.pem"));
    authority.sigil_ok(&[
        "agent",
        "register",
        "crm-bot",
        "--owner",
        OWNER,
        "--entitlement",
        "invoke:tool:crm/*",
    ]);
    authority.sigil_ok(&["agent", "grant", "crm-bot", "read:doc:*"]);
    let policy = authority.dir.path().join("forbid.cedar");
    std::fs::write(
        &policy,
        "forbid(principal, action == Sigil::Action::\"invoke\", resource)\nwhen { resource.id like \"tool:crm/delete*\" };\n",
    )
    .unwrap();
    authority.sigil_ok(&["policy", "add", &policy.display().to_string()]);
    authority.sigil_ok(&["agent", "decommission", "old-bot"]);

    let stream = Stream::open(&authority, gateway.pair(), "?since=0", None);
    let mut last_id = 0;
    loop {
        let (_, frame) = stream.next(Duration::from_secs(5));
        if frame.event == "heartbeat" {
            break;
        }
        last_id = frame.id.parse().unwrap();
    }

    let reply = authority.send("GET", "/v1/gateway/state", None, None, Some(gateway.pair()));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let state = reply.json();
    assert_eq!(
        state["seq"].as_u64(),
        Some(last_id),
        "state includes every streamed event"
    );
    let decision = authority.send_json(
        "POST",
        "/v1/authorize",
        &json!({"principal": "spiffe://example.org/agent/crm-bot", "action": "invoke", "resource": "tool:crm/x", "context": {}}),
        Some((&admin.0, &admin.1)),
    );
    assert_eq!(
        state["policy_version"],
        decision.json()["policy_version"],
        "the state's policy version is the one /v1/authorize uses"
    );

    let agents = state["agents"].as_array().unwrap();
    let crm = agents
        .iter()
        .find(|agent| agent["name"] == "crm-bot")
        .unwrap();
    assert_eq!(crm["status"], "registered");
    assert_eq!(crm["owner"], OWNER);
    assert_eq!(crm["spiffe_id"], "spiffe://example.org/agent/crm-bot");
    assert_eq!(
        crm["entitlements"],
        json!(["invoke:tool:crm/*", "read:doc:*"])
    );
    let old = agents
        .iter()
        .find(|agent| agent["name"] == "old-bot")
        .unwrap();
    assert_eq!(old["status"], "decommissioned");
    assert_eq!(state["policies"].as_array().unwrap().len(), 1);
    assert!(
        state["policies"][0]["text"]
            .as_str()
            .unwrap()
            .contains("tool:crm/delete")
    );
    assert_eq!(state["revoked_serials"], json!([retired_serial]));
}

#[test]
fn denials_audited_and_counted() {
    let authority = Authority::start();
    let gateway = enrolled_gateway(&authority, "edge", &[]);
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let denial = |reason: &str, path: &str| {
        json!({
            "at_ms": now_ms, "principal": "spiffe://example.org/agent/crm-bot", "method": "POST",
            "path": path, "action": "invoke", "resource": "tool:crm/x", "reason": reason, "status": 403
        })
    };
    let mut connect_denial = denial("invalid-path", "127.0.0.1:8443");
    connect_denial["method"] = json!("CONNECT");
    let audited = || {
        authority.sql_rows("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'gateway.denied'")
            [0]["n"]
            .as_i64()
            .unwrap()
    };

    let batch = json!({"denials": [
        denial("policy", "/tools/crm?api_key=hunter2"),
        denial("policy", "/tools/crm"),
        denial("revoked", "/tools/crm"),
        // `OPTIONS *` has the asterisk-form target; a gateway reports it as it came.
        denial("no-route", "*"),
        // So is the authority-form target of `CONNECT`.
        connect_denial.clone(),
    ]});
    let reply = authority.send_json("POST", "/v1/gateway/denials", &batch, Some(gateway.pair()));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"recorded": 5}));

    let events: Vec<_> = authority
        .audit_events()
        .into_iter()
        .filter(|event| event.action == "gateway.denied")
        .collect();
    assert_eq!(events.len(), 5);
    for event in &events {
        assert_eq!(event.actor, "spiffe://example.org/gateway/edge");
        assert_eq!(event.subject, "spiffe://example.org/agent/crm-bot");
        assert_eq!(event.outcome, "denied");
        assert!(
            !event.details.contains("hunter2"),
            "the query string is dropped: {}",
            event.details
        );
    }
    let metrics = authority.curl(&["-s", &format!("{}/metrics", authority.url)]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("sigil_gateway_denials_total{reason=\"policy\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("sigil_gateway_denials_total{reason=\"revoked\"} 1"));

    let too_many = json!({"denials": vec![denial("policy", "/x"); 1001]});
    let mut bad_time = denial("policy", "/x");
    bad_time["at_ms"] = json!(0);
    let mut bad_status = denial("policy", "/x");
    bad_status["status"] = json!(200);
    let cases = vec![
        ("too many", too_many, 413, "too_many_denials"),
        ("empty", json!({"denials": []}), 400, "invalid_denial"),
        (
            "bad reason",
            json!({"denials": [denial("Bad Reason", "/x")]}),
            400,
            "invalid_denial",
        ),
        (
            "relative path",
            json!({"denials": [denial("policy", "x")]}),
            400,
            "invalid_denial",
        ),
        (
            "authority form without CONNECT",
            json!({"denials": [denial("policy", "127.0.0.1:8443")]}),
            400,
            "invalid_denial",
        ),
        (
            "time zero",
            json!({"denials": [bad_time]}),
            400,
            "invalid_denial",
        ),
        (
            "success status",
            json!({"denials": [denial("policy", "/x"), bad_status]}),
            400,
            "invalid_denial",
        ),
        (
            "unknown field",
            json!({"denials": [], "extra": 1}),
            400,
            "invalid_request",
        ),
    ];
    for (case, body, status, code) in cases {
        let before = authority.checkpoint();
        let reply = authority.send_json("POST", "/v1/gateway/denials", &body, Some(gateway.pair()));
        authority.assert_rejected(case, &before, &reply, status, code, &[]);
        assert_eq!(audited(), 5, "{case}: a rejected batch must record nothing");
    }
}

#[test]
fn lagging_stream_replays_from_table() {
    let authority = Authority::start_with(&["--revocation-heartbeat", "100ms"]);
    let admin = authority.admin_identity();
    let stream = Stream::open(&authority, (&admin.0, &admin.1), "", None);
    let connected = stream.wait_connected();
    let start = connected.data["seq"].as_u64().unwrap();

    // A stopped reader fills the socket buffers and the per-stream buffer, so the stream task
    // stops taking from the broadcast channel and falls more than its capacity behind.
    let pid = stream.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    const EVENTS: u64 = 20_000;
    authority.sql_write(&format!(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {EVENTS})
         INSERT INTO revocation_events (at, kind, policy_version) SELECT 1, 'policy', x FROM n"
    ));
    // Rows written behind the authority's back are published at its next commit.
    authority.sigil_ok(&["owner", "add", "wake@example.org"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );

    let mut expected = start + 1;
    while expected <= start + EVENTS {
        let (_, frame) = stream.next_event(Duration::from_secs(20));
        assert_eq!(frame.event, "policy", "{frame:?}");
        assert_eq!(
            frame.id.parse::<u64>().unwrap(),
            expected,
            "a lagging stream must deliver every event once, in order"
        );
        expected += 1;
    }
    assert!(
        authority.wait_for_log_count("revocation stream fell behind", 1),
        "the stream never lagged, so this test proved nothing"
    );
}

#[test]
fn open_stream_does_not_block_shutdown() {
    let mut authority = Authority::start();
    let admin = authority.admin_identity();
    let stream = Stream::open(&authority, (&admin.0, &admin.1), "", None);
    stream.wait_connected();

    let (status, took) = authority
        .stop_with_signal("TERM", Duration::from_secs(15))
        .expect("sigil serve did not stop");
    assert!(status.success(), "sigil serve exited with {status}");
    assert!(
        took < Duration::from_secs(5),
        "an open revocation stream held shutdown for {took:?}"
    );
}
