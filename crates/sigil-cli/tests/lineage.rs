//! Renewal lineage against a real authority: a stolen key that renews the same certificate as
//! its owner is a fork that suspends the agent, a network retry is not, and suspended or
//! decommissioned agents obtain nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use std::path::{Path, PathBuf};

use common::{Authority, csr_pem, generate_p256_key};
use serde_json::json;

const OWNER: &str = "alice@example.org";
const AGENT: &str = "crm-bot";

/// Copies `svid.pem`, `svid.key` and `bundle.pem` of `from` into a new directory `to`.
fn copy_identity(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["svid.pem", "svid.key", "bundle.pem"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

/// Returns `(certificate chain, key)` of the identity in `dir`.
fn identity(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("svid.pem"), dir.join("svid.key"))
}

/// Runs `sigil-agent run --once` on `dir` and returns `(succeeded, stderr)`.
fn renew(authority: &Authority, dir: &Path) -> (bool, String) {
    let output = authority.agent_once(dir, None);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn stolen_key_renewal_forks_identity() {
    let authority = Authority::start();
    let original = authority.enrolled_agent(OWNER, AGENT);
    let stolen_serial = authority.agent_serials(AGENT)[0].clone();
    let thief = authority.dir.path().join("thief");
    copy_identity(&original, &thief);

    let (renewed, stderr) = renew(&authority, &original);
    assert!(renewed, "the original holder could not renew: {stderr}");
    let successor_serial = authority.agent_serials(AGENT)[0].clone();
    assert_ne!(
        successor_serial, stolen_serial,
        "renewal issued no new certificate"
    );
    let fork_seq = authority.last_audit_seq();

    let (thief_renewed, stderr) = renew(&authority, &thief);
    assert!(
        !thief_renewed,
        "the copy renewed the same certificate with another key"
    );
    assert!(
        stderr.contains("HTTP 403, identity_fork"),
        "the thief got another error: {stderr}"
    );
    assert!(
        stderr.contains(&stolen_serial),
        "the error does not name the presented serial: {stderr}"
    );
    assert!(
        stderr.contains(&successor_serial),
        "the error does not name the existing successor: {stderr}"
    );

    assert_eq!(
        authority.agent_status(AGENT),
        "suspended",
        "the forked agent is not suspended"
    );
    assert_eq!(
        authority.agent_serials(AGENT).len(),
        2,
        "the thief's certificate was stored"
    );

    // The decision API applies the built-in rule at once, without waiting for another change.
    let decision = authority.sigil_json(&["authorize", AGENT, "invoke", "tool:any"]);
    assert_eq!(decision["decision"], "deny", "{decision}");
    assert!(
        decision["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "builtin/deny-inactive-agent"),
        "the forked agent is not denied by the built-in rule: {decision}"
    );

    let findings = authority.sigil_json(&["findings", "--kind", "identity-fork"]);
    let findings = findings["findings"].as_array().unwrap();
    assert_eq!(
        findings.len(),
        1,
        "one identity-fork finding expected: {findings:?}"
    );
    let finding = &findings[0];
    assert_eq!(finding["status"], "open");
    assert_eq!(finding["subject"], AGENT);
    let evidence = finding["evidence"].to_string();
    assert!(
        evidence.contains(&stolen_serial),
        "the evidence does not name the presented serial: {evidence}"
    );
    assert!(
        evidence.contains(&successor_serial),
        "the evidence does not name the successor: {evidence}"
    );

    let events = authority.audit_events_after(fork_seq);
    let fork_events: Vec<_> = events
        .iter()
        .filter(|event| event.action == "identity.fork")
        .collect();
    assert_eq!(
        fork_events.len(),
        1,
        "one identity.fork audit event expected: {events:#?}"
    );
    let fork = fork_events[0];
    assert_eq!(fork.subject, AGENT);
    assert!(
        fork.details.contains(&stolen_serial),
        "the audit event does not name the presented serial: {}",
        fork.details
    );
    assert!(
        fork.details.contains(&successor_serial),
        "the audit event does not name the successor: {}",
        fork.details
    );

    let (renewed, stderr) = renew(&authority, &original);
    assert!(!renewed, "the suspended original could still renew");
    assert!(
        stderr.contains("HTTP 403, agent_not_active"),
        "the original got another error: {stderr}"
    );
    assert!(
        stderr.contains("suspended"),
        "the error does not say the agent is suspended: {stderr}"
    );
}

#[test]
fn renewal_retry_returns_same_successor() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, AGENT);
    let (cert, key) = identity(&out);
    let new_key = generate_p256_key(&authority.dir.path().join("next.key"));
    let body = json!({"csr": csr_pem(&new_key, &[])});

    let first = authority.send_json("POST", "/v1/agent/renew", &body, Some((&cert, &key)));
    assert_eq!(first.status, 200, "first renewal failed: {}", first.body);
    let retry = authority.send_json("POST", "/v1/agent/renew", &body, Some((&cert, &key)));
    assert_eq!(retry.status, 200, "the retry was refused: {}", retry.body);

    let first_serial = first.json()["serial"].as_str().unwrap().to_owned();
    assert_eq!(
        retry.json()["serial"],
        first_serial.as_str(),
        "the retry got another certificate"
    );
    assert_eq!(
        retry.json()["svid"],
        first.json()["svid"],
        "the retry got another chain"
    );
    assert_eq!(
        authority.agent_serials(AGENT).len(),
        2,
        "the retry stored a third certificate"
    );
    assert_eq!(
        authority.agent_status(AGENT),
        "active",
        "a retry suspended the agent"
    );
    let findings = authority.sigil_json(&["findings", "--kind", "identity-fork"]);
    assert!(
        findings["findings"].as_array().unwrap().is_empty(),
        "a retry opened a finding: {findings}"
    );
}

#[test]
fn suspended_agent_renews_after_resume() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, AGENT);
    authority.sigil_ok(&["agent", "suspend", AGENT, "--reason", "investigation"]);

    let before = authority.checkpoint();
    let (renewed, stderr) = renew(&authority, &out);
    assert!(!renewed, "a suspended agent renewed");
    assert!(
        stderr.contains("HTTP 403, agent_not_active"),
        "suspended renewal: {stderr}"
    );
    authority.assert_nothing_stored("suspended renewal", &before, "agent_not_active", &[]);

    authority.sigil_ok(&["agent", "resume", AGENT]);
    let (renewed, stderr) = renew(&authority, &out);
    assert!(renewed, "a resumed agent could not renew: {stderr}");
    assert_eq!(
        authority.agent_serials(AGENT).len(),
        2,
        "renewal after resume stored no certificate"
    );
    assert_eq!(authority.agent_status(AGENT), "active");
}

#[test]
fn decommission_blocks_renewal_and_burns_tokens() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, AGENT);
    let spare_token = authority.token(AGENT);
    authority.sigil_ok(&["agent", "decommission", AGENT, "--reason", "retired"]);

    let (cert, key) = identity(&out);
    let new_key = generate_p256_key(&authority.dir.path().join("next.key"));
    let before = authority.checkpoint();
    let reply = authority.send_json(
        "POST",
        "/v1/agent/renew",
        &json!({"csr": csr_pem(&new_key, &[])}),
        Some((&cert, &key)),
    );
    authority.assert_rejected(
        "decommissioned renewal",
        &before,
        &reply,
        403,
        "certificate_revoked",
        &[],
    );

    let before = authority.checkpoint();
    let (renewed, stderr) = renew(&authority, &out);
    assert!(!renewed, "a decommissioned agent renewed with sigil-agent");
    assert!(stderr.contains("HTTP 403"), "sigil-agent renewal: {stderr}");
    authority.assert_nothing_stored(
        "decommissioned renewal with sigil-agent",
        &before,
        "certificate_revoked",
        &[],
    );

    let before = authority.checkpoint();
    let fresh = authority.dir.path().join("fresh");
    let attested = authority.agent_once(&fresh, Some(&spare_token));
    let stderr = String::from_utf8_lossy(&attested.stderr);
    assert!(
        !attested.status.success(),
        "a token created before decommissioning still attests"
    );
    assert!(
        stderr.contains("HTTP 401, invalid_join_token"),
        "attestation: {stderr}"
    );
    authority.assert_nothing_stored(
        "attestation after decommission",
        &before,
        "invalid_join_token",
        &[&spare_token],
    );
    assert_eq!(authority.agent_status(AGENT), "decommissioned");
}

#[test]
fn reattestation_keeps_one_live_line() {
    let authority = Authority::start();
    let first = authority.enrolled_agent(OWNER, AGENT);
    let token = authority.token(AGENT);
    let second = authority.dir.path().join("second");
    let attested = authority.agent_once(&second, Some(&token));
    assert!(
        attested.status.success(),
        "second attestation failed: {}",
        String::from_utf8_lossy(&attested.stderr)
    );

    let shown = authority.sigil_json(&["agent", "show", AGENT]);
    let live: Vec<_> = shown["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|credential| credential["state"] == "live")
        .collect();
    assert_eq!(
        live.len(),
        1,
        "two live credentials without a common parent: {live:#?}"
    );

    let (renewed, _) = renew(&authority, &first);
    assert!(
        !renewed,
        "the first line can still renew after a second attestation"
    );
}
