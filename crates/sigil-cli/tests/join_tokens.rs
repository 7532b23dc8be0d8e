//! Join tokens against a real authority: printed alone, single use, expiring, safe under
//! concurrent use, stored only as a SHA-256 hash, and never issued to an agent that may not
//! obtain credentials.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Authority, agent_bin, csr_pem, generate_p256_key};
use serde_json::json;

const OWNER: &str = "alice@example.org";
const AGENT: &str = "crm-bot";

/// Prefix of every join token.
const TOKEN_PREFIX: &str = "sigil_jt_";

/// Returns true for `sigil_jt_` followed by 43 base64url characters (256 bits).
fn is_token_shaped(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Returns a fresh CSR body for `POST /v1/agent/attest`.
fn attest_body(authority: &Authority, token: &str) -> serde_json::Value {
    let key = generate_p256_key(&authority.dir.path().join("attest.key"));
    json!({"join_token": token, "csr": csr_pem(&key, &[])})
}

/// Returns the lowercase hex SHA-256 of `text`, computed by `sha256sum`.
fn sha256_hex(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn token_create_prints_token_alone() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);

    let output = authority.sigil(&["token", "create", AGENT]);
    assert!(
        output.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout has more than one line: {stdout:?}"
    );
    assert!(
        stdout.ends_with('\n'),
        "stdout does not end with a newline: {stdout:?}"
    );
    let token = stdout.trim_end_matches('\n');
    assert!(
        is_token_shaped(token),
        "stdout is not a token alone: {stdout:?}"
    );
    assert!(!stderr.contains(token), "the token also appears on stderr");

    let second = authority.token(AGENT);
    assert!(
        is_token_shaped(&second),
        "second token is malformed: {second:?}"
    );
    assert_ne!(second, token, "two tokens are equal");
}

#[test]
fn token_works_once() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let token = authority.token(AGENT);

    let first_dir = authority.dir.path().join("first");
    let first = authority.agent_once(&first_dir, Some(&token));
    assert!(
        first.status.success(),
        "first attestation failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let serials = authority.agent_serials(AGENT);
    assert_eq!(
        serials.len(),
        1,
        "the first attestation stored one credential"
    );

    let before = authority.checkpoint();
    let replay_dir = authority.dir.path().join("replay");
    let replay = authority.agent_once(&replay_dir, Some(&token));
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(!replay.status.success(), "the replayed token was accepted");
    assert!(
        stderr.contains("HTTP 401, invalid_join_token"),
        "sigil-agent replay: {stderr}"
    );
    assert!(!stderr.contains(&token), "sigil-agent printed the token");
    assert!(
        !replay_dir.join("svid.pem").exists(),
        "the replay wrote an SVID"
    );
    authority.assert_nothing_stored(
        "replay with sigil-agent",
        &before,
        "invalid_join_token",
        &[&token],
    );

    let before = authority.checkpoint();
    let reply = authority.send_json(
        "POST",
        "/v1/agent/attest",
        &attest_body(&authority, &token),
        None,
    );
    authority.assert_rejected(
        "replay with curl",
        &before,
        &reply,
        401,
        "invalid_join_token",
        &[&token],
    );
    assert!(
        reply.error_message().contains("already used"),
        "the message does not say why: {}",
        reply.body
    );

    assert_eq!(
        authority.agent_serials(AGENT),
        serials,
        "the replay changed the agent's credentials"
    );
    assert_eq!(
        authority.agent_status(AGENT),
        "active",
        "the replay changed the agent's status"
    );
    let renewed = authority.agent_once(&first_dir, None);
    assert!(
        renewed.status.success(),
        "the first holder can no longer renew: {}",
        String::from_utf8_lossy(&renewed.stderr)
    );
}

#[test]
fn unknown_and_garbage_tokens_rejected() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let token = authority.token(AGENT);

    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();

    // (case, presented token, words the message must contain)
    let cases = [
        (
            "unknown token of the right shape",
            format!("{TOKEN_PREFIX}{}", "A".repeat(43)),
            "unknown",
        ),
        (
            "real token with its last character changed",
            altered,
            "unknown",
        ),
        ("garbage", "not-a-join-token".to_owned(), "malformed"),
        ("empty token", String::new(), "malformed"),
        (
            "right prefix, one character too many",
            format!("{token}A"),
            "malformed",
        ),
        (
            "real token with a leading space",
            format!(" {token}"),
            "malformed",
        ),
        (
            "real token in upper case",
            token.to_uppercase(),
            "malformed",
        ),
    ];
    for (case, presented, words) in &cases {
        let before = authority.checkpoint();
        let reply = authority.send_json(
            "POST",
            "/v1/agent/attest",
            &attest_body(&authority, presented),
            None,
        );
        let secrets: Vec<&str> = [presented.as_str(), token.as_str()]
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        authority.assert_rejected(case, &before, &reply, 401, "invalid_join_token", &secrets);
        assert!(
            reply.error_message().contains(words),
            "{case}: the message does not mention {words:?}: {}",
            reply.body
        );
    }

    let out = authority.dir.path().join("agent");
    let attested = authority.agent_once(&out, Some(&token));
    assert!(
        attested.status.success(),
        "the real token stopped working: {}",
        String::from_utf8_lossy(&attested.stderr)
    );
}

#[test]
fn expired_token_rejected() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let token = authority
        .sigil_ok(&["token", "create", AGENT, "--ttl", "1s"])
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_secs(2));

    let before = authority.checkpoint();
    let reply = authority.send_json(
        "POST",
        "/v1/agent/attest",
        &attest_body(&authority, &token),
        None,
    );
    authority.assert_rejected(
        "expired token",
        &before,
        &reply,
        401,
        "invalid_join_token",
        &[&token],
    );
    assert!(
        reply.error_message().contains("expired"),
        "the message does not say why: {}",
        reply.body
    );

    let before = authority.checkpoint();
    let out = authority.dir.path().join("agent");
    let attested = authority.agent_once(&out, Some(&token));
    let stderr = String::from_utf8_lossy(&attested.stderr);
    assert!(
        !attested.status.success(),
        "sigil-agent attested with an expired token"
    );
    assert!(
        stderr.contains("HTTP 401, invalid_join_token"),
        "sigil-agent: {stderr}"
    );
    authority.assert_nothing_stored(
        "expired token with sigil-agent",
        &before,
        "invalid_join_token",
        &[&token],
    );
    assert_eq!(authority.agent_status(AGENT), "registered");
}

#[test]
fn concurrent_attestations_one_wins() {
    let authority = Authority::start();

    for round in 0..3 {
        let agent = format!("race-{round}");
        authority.register(OWNER, &agent);
        let token = authority.token(&agent);

        let spawn = |label: &str| {
            let out = authority.dir.path().join(format!("{agent}-{label}"));
            let child = Command::new(agent_bin())
                .args([
                    "run",
                    "--once",
                    "--server",
                    &authority.url,
                    "--join-token",
                    &token,
                    "--bundle",
                ])
                .arg(authority.bundle())
                .arg("--out")
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (out, child)
        };
        let contenders = [spawn("a"), spawn("b")];

        let mut winners = 0;
        let mut loser_errors = Vec::new();
        for (out, child) in contenders {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if output.status.success() {
                winners += 1;
                assert!(
                    out.join("svid.pem").exists(),
                    "{agent}: the winner wrote no SVID"
                );
            } else {
                assert!(
                    !out.join("svid.pem").exists(),
                    "{agent}: the loser wrote an SVID"
                );
                loser_errors.push(stderr);
            }
        }
        assert_eq!(
            winners, 1,
            "{agent}: {winners} attestations succeeded with one token: {loser_errors:?}"
        );
        assert!(
            loser_errors[0].contains("HTTP 401, invalid_join_token"),
            "{agent}: the loser got another error: {}",
            loser_errors[0]
        );
        assert_eq!(
            authority.agent_serials(&agent).len(),
            1,
            "{agent}: more than one credential stored"
        );
    }
}

#[test]
fn token_stored_only_as_hash() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let used = authority.token(AGENT);
    let out = authority.dir.path().join("agent");
    let attested = authority.agent_once(&out, Some(&used));
    assert!(
        attested.status.success(),
        "attestation failed: {}",
        String::from_utf8_lossy(&attested.stderr)
    );
    let unused = authority.token(AGENT);

    let rows = authority.sql_rows("SELECT token_hash, used_at FROM join_tokens");
    assert_eq!(rows.len(), 2, "two tokens were created: {rows:?}");
    let hashes: Vec<&str> = rows
        .iter()
        .map(|row| row["token_hash"].as_str().unwrap())
        .collect();
    for hash in &hashes {
        assert_eq!(
            hash.len(),
            64,
            "stored value is not a SHA-256 hex digest: {hash}"
        );
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "stored value is not lowercase hex: {hash}"
        );
    }
    for token in [&used, &unused] {
        assert!(
            hashes.contains(&sha256_hex(token).as_str()),
            "no stored hash matches a created token"
        );
    }

    for file_name in ["sigil.db", "sigil.db-wal", "sigil.db-shm"] {
        let path = authority.data.join(file_name);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for token in [&used, &unused] {
            let secret_part = &token[TOKEN_PREFIX.len()..];
            let found = bytes
                .windows(secret_part.len())
                .any(|window| window == secret_part.as_bytes());
            assert!(!found, "{file_name} contains a join token");
        }
    }
}

#[test]
fn token_create_rejects_inactive_agents() {
    let authority = Authority::start();
    authority.register(OWNER, "paused-bot");
    authority.sigil_ok(&[
        "agent",
        "suspend",
        "paused-bot",
        "--reason",
        "investigation",
    ]);
    authority.enrolled_agent(OWNER, "retired-bot");
    authority.sigil_ok(&[
        "agent",
        "decommission",
        "retired-bot",
        "--reason",
        "retired",
    ]);
    let (cert, key) = authority.admin_identity();

    for (agent, status) in [
        ("paused-bot", "suspended"),
        ("retired-bot", "decommissioned"),
    ] {
        let case = format!("token create {agent}");
        let before = authority.checkpoint();
        let output = authority.sigil(&["token", "create", agent]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{case}: a token was created");
        assert!(output.stdout.is_empty(), "{case}: stdout is not empty");
        assert!(stderr.contains("HTTP 422, rejected"), "{case}: {stderr}");
        assert!(
            stderr.contains(status),
            "{case}: the message does not name the status: {stderr}"
        );
        authority.assert_nothing_stored(&case, &before, "rejected", &[]);

        let case = format!("POST /v1/admin/tokens for {agent}");
        let before = authority.checkpoint();
        let reply = authority.send_json(
            "POST",
            "/v1/admin/tokens",
            &json!({"agent": agent}),
            Some((&cert, &key)),
        );
        authority.assert_rejected(&case, &before, &reply, 422, "rejected", &[]);
        assert!(
            !reply.body.contains(TOKEN_PREFIX),
            "{case}: the body carries a token: {}",
            reply.body
        );
    }

    authority.sigil_ok(&["agent", "resume", "paused-bot"]);
    let token = authority.token("paused-bot");
    assert!(
        is_token_shaped(&token),
        "a resumed agent cannot get a token: {token:?}"
    );
}
