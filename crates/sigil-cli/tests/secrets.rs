//! Secrets never leak. A session issues, uses, replays and forges join tokens and sends bad
//! CSRs. Afterwards no join token and no private key appears in the authority's log, any CLI's
//! stderr, any error body, any audit event or the metrics. `Debug` output redacts tokens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{Authority, Reply, csr_pem, generate_key, generate_p256_key};
use serde_json::json;
use sigil_proto::{AttestRequest, TokenResponse};

const OWNER: &str = "alice@example.org";
const AGENT: &str = "crm-bot";

/// Everything a session showed to an operator or a client, by source.
struct Transcript<'a> {
    authority: &'a Authority,
    texts: Vec<(String, String)>,
}

impl<'a> Transcript<'a> {
    fn new(authority: &'a Authority) -> Self {
        Self {
            authority,
            texts: Vec::new(),
        }
    }

    fn record_output(&mut self, source: String, output: &Output) {
        self.texts
            .push((source, String::from_utf8_lossy(&output.stderr).into_owned()));
    }

    /// Runs `sigil ARGS` and records its stderr.
    fn sigil(&mut self, args: &[&str]) -> Output {
        let output = self.authority.sigil(args);
        self.record_output(format!("stderr of sigil {}", args.join(" ")), &output);
        output
    }

    /// Runs `sigil-agent run --once` and records its stderr.
    fn agent(&mut self, out: &Path, token: Option<&str>) -> Output {
        let output = self.authority.agent_once(out, token);
        self.record_output(
            format!("stderr of sigil-agent on {}", out.display()),
            &output,
        );
        output
    }

    /// Sends a JSON attestation body and records the response body.
    fn attest(&mut self, case: &str, body: &[u8]) -> Reply {
        let reply = self.authority.send(
            "POST",
            "/v1/agent/attest",
            Some("application/json"),
            Some(body),
            None,
        );
        self.texts
            .push((format!("error body of {case}"), reply.body.clone()));
        reply
    }
}

/// Removes ANSI color sequences such as `ESC[2m`, which the log writer puts around field names.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Returns the base64 lines of a private key PEM that are long enough to be specific, and the
/// whole body joined without line breaks.
fn key_fragments(pem: &str) -> Vec<String> {
    let lines = common::pem_body_lines(pem);
    let mut fragments: Vec<String> = lines
        .iter()
        .filter(|line| line.len() >= 16)
        .cloned()
        .collect();
    fragments.push(lines.concat());
    fragments
}

#[test]
fn session_leaks_no_token_or_key() {
    let authority = Authority::start();
    let mut transcript = Transcript::new(&authority);
    let mut key_files: Vec<(String, String)> = Vec::new();

    assert!(transcript.sigil(&["owner", "add", OWNER]).status.success());
    assert!(
        transcript
            .sigil(&["agent", "register", AGENT, "--owner", OWNER])
            .status
            .success()
    );
    let created = transcript.sigil(&["token", "create", AGENT]);
    let first_token = String::from_utf8(created.stdout).unwrap().trim().to_owned();

    let out = authority.dir.path().join("agent");
    assert!(
        transcript.agent(&out, Some(&first_token)).status.success(),
        "attestation failed"
    );
    key_files.push((
        "agent key after attestation".into(),
        std::fs::read_to_string(out.join("svid.key")).unwrap(),
    ));
    assert!(
        transcript.agent(&out, None).status.success(),
        "renewal failed"
    );
    key_files.push((
        "agent key after renewal".into(),
        std::fs::read_to_string(out.join("svid.key")).unwrap(),
    ));

    // A replayed token, with sigil-agent and with curl.
    let replay = transcript.agent(&authority.dir.path().join("replay"), Some(&first_token));
    assert!(!replay.status.success(), "the replayed token was accepted");
    let fresh_key = generate_p256_key(&authority.dir.path().join("fresh.key"));
    let csr = csr_pem(&fresh_key, &[]);
    let body = json!({"join_token": first_token, "csr": csr}).to_string();
    assert_eq!(
        transcript.attest("replayed token", body.as_bytes()).status,
        401
    );

    // Tokens that look like secrets but are not valid: one of the right shape, one not.
    let canary_shaped = format!("sigil_jt_{:A<43}", "CanarySecretDoNotLog");
    let canary_garbage = "AKIAcanarySECRETvalue0123456789abcdefXYZ".to_owned();
    for canary in [&canary_shaped, &canary_garbage] {
        let failed = transcript.agent(&authority.dir.path().join("canary"), Some(canary));
        assert!(!failed.status.success(), "a made-up token was accepted");
        let body = json!({"join_token": canary, "csr": csr}).to_string();
        assert_eq!(
            transcript.attest("made-up token", body.as_bytes()).status,
            401
        );
    }

    // A valid token with a bad CSR, in malformed JSON and with a field of the wrong type.
    let second = transcript.sigil(&["token", "create", AGENT]);
    let second_token = String::from_utf8(second.stdout).unwrap().trim().to_owned();
    let weak_key = generate_key(
        &authority.dir.path().join("weak.key"),
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    let weak = json!({"join_token": second_token, "csr": csr_pem(&weak_key, &[])}).to_string();
    assert_eq!(
        transcript.attest("RSA-1024 CSR", weak.as_bytes()).status,
        400
    );
    let truncated = format!("{{\"join_token\": \"{second_token}\", \"csr\": ");
    assert_eq!(
        transcript
            .attest("truncated JSON", truncated.as_bytes())
            .status,
        400
    );
    let wrong_type = json!({"join_token": second_token, "csr": 42}).to_string();
    assert_eq!(
        transcript
            .attest("CSR of the wrong type", wrong_type.as_bytes())
            .status,
        400
    );
    let trailing = format!("{{\"join_token\": \"{second_token}\", \"csr\": \"x\"}} {second_token}");
    assert_eq!(
        transcript
            .attest("trailing characters", trailing.as_bytes())
            .status,
        400
    );

    assert!(
        transcript
            .sigil(&["agent", "suspend", AGENT])
            .status
            .success()
    );
    assert!(
        transcript
            .sigil(&["agent", "decommission", AGENT, "--reason", "retired"])
            .status
            .success()
    );
    assert!(
        !transcript
            .sigil(&["token", "create", AGENT])
            .status
            .success()
    );

    let metrics = authority.send("GET", "/metrics", None, None, None);
    let mut texts = transcript.texts;
    texts.push(("metrics".into(), metrics.body));
    texts.push(("authority log".into(), strip_ansi(&authority.server_log())));
    for event in authority.audit_events() {
        texts.push((
            format!("audit event {} ({})", event.seq, event.action),
            event.text(),
        ));
    }
    assert!(
        texts
            .iter()
            .any(|(source, text)| source == "authority log" && text.contains("request rejected")),
        "the authority log has no rejections, so the search below would prove nothing"
    );

    for file in [
        "admin/svid.key",
        "ca/root.key",
        "ca/signing.key",
        "server/tls.key",
    ] {
        key_files.push((
            file.into(),
            std::fs::read_to_string(authority.data.join(file)).unwrap(),
        ));
    }

    let tokens = [
        ("first join token", first_token.as_str()),
        ("second join token", second_token.as_str()),
        ("made-up token of the right shape", canary_shaped.as_str()),
        ("made-up token of another shape", canary_garbage.as_str()),
    ];
    for (source, text) in &texts {
        for (name, token) in &tokens {
            assert!(!text.contains(token), "{source} contains the {name}");
        }
        for (name, pem) in &key_files {
            for fragment in key_fragments(pem) {
                assert!(
                    !text.contains(&fragment),
                    "{source} contains part of the private key {name}"
                );
            }
        }
    }
}

#[test]
fn debug_output_redacts_tokens() {
    let token = "sigil_jt_CanarySecretDoNotLogAAAAAAAAAAAAAAAAAAAAAAA";
    let request = AttestRequest {
        join_token: token.to_owned(),
        csr: "-----BEGIN CERTIFICATE REQUEST-----".to_owned(),
    };
    let compact = format!("{request:?}");
    let pretty = format!("{request:#?}");
    assert!(
        compact.contains("AttestRequest"),
        "unexpected Debug output: {compact}"
    );
    assert!(
        !compact.contains(token),
        "Debug of AttestRequest shows the token: {compact}"
    );
    assert!(
        !pretty.contains(token),
        "pretty Debug of AttestRequest shows the token: {pretty}"
    );
    assert!(
        !compact.contains("CanarySecret"),
        "Debug of AttestRequest shows part of the token: {compact}"
    );

    let response = TokenResponse {
        token: token.to_owned(),
        agent: AGENT.to_owned(),
        expires_at: "2030-01-01T00:00:00Z".to_owned(),
    };
    let compact = format!("{response:?}");
    assert!(
        compact.contains(AGENT),
        "unexpected Debug output: {compact}"
    );
    assert!(
        !compact.contains(token),
        "Debug of TokenResponse shows the token: {compact}"
    );
    assert!(
        !format!("{response:#?}").contains(token),
        "pretty Debug of TokenResponse shows the token"
    );
}
