//! The audit chain of a real authority. `sigil audit verify` accepts an intact chain after a
//! realistic session, and names the first broken event after each kind of tampering with the
//! SQLite file. The session records an event for every kind of change and rejection.
//!
//! The tampering runs with `sqlite3` while `sigil serve` keeps running: SQLite's write-ahead log
//! lets both use the file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use common::{AuditEvent, Authority, TRUST_DOMAIN};
use sigil_core::AuditRecord;
use sigil_core::audit::event_hash;

const OWNER: &str = "alice@example.org";
const AGENT: &str = "crm-bot";

/// Runs owners, agents, tokens, attestation, renewal, lifecycle changes, a grant and a
/// rejected request against `authority`.
fn run_session(authority: &Authority) {
    let out = authority.enrolled_agent(OWNER, AGENT);
    let renewed = authority.agent_once(&out, None);
    assert!(
        renewed.status.success(),
        "renewal failed: {}",
        String::from_utf8_lossy(&renewed.stderr)
    );

    authority.register(OWNER, "ops-bot");
    authority.token("ops-bot");
    authority.sigil_ok(&["agent", "suspend", AGENT, "--reason", "investigation"]);
    authority.sigil_ok(&["agent", "resume", AGENT]);
    authority.sigil_ok(&["agent", "grant", AGENT, "invoke:tool:crm/*"]);
    authority.sigil_fails(&["agent", "show", "nobody"]);
    authority.sigil_ok(&["agent", "decommission", AGENT, "--reason", "retired"]);
}

/// Returns the first event with `action`.
fn event(authority: &Authority, action: &str) -> AuditEvent {
    let events = authority.audit_events();
    let found = events.iter().find(|event| event.action == action).cloned();
    found.unwrap_or_else(|| panic!("no {action} event in {events:#?}"))
}

/// Runs `sigil audit verify`, asserts that it fails, and checks that both its message and its
/// JSON output name `seq` as the first bad event.
fn assert_verify_names(authority: &Authority, case: &str, seq: i64) {
    let stderr = authority.sigil_fails(&["audit", "verify"]);
    assert!(
        stderr.contains(&format!("sequence number {seq}:")),
        "{case}: the message does not name sequence number {seq}: {stderr}"
    );

    let output = authority.sigil(&["audit", "verify", "--json"]);
    assert!(!output.status.success(), "{case}: verify --json succeeded");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["intact"], false, "{case}: {report}");
    assert_eq!(report["first_bad_seq"], seq, "{case}: {report}");
}

#[test]
fn verify_passes_after_session() {
    let authority = Authority::start();
    run_session(&authority);
    let count = authority.audit_count();

    let output = authority.sigil(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "verify failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("{count} events")),
        "verify did not check every event: {stdout}"
    );

    let report = authority.sigil_json(&["audit", "verify"]);
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["events"], count, "{report}");
}

#[test]
fn verify_names_edited_subject() {
    let authority = Authority::start();
    run_session(&authority);
    let registered = event(&authority, "agent.registered");
    assert!(
        registered.seq < authority.last_audit_seq(),
        "the edited event is not in the middle"
    );

    authority.sql_write(&format!(
        "UPDATE audit_events SET subject = 'someone-else' WHERE seq = {}",
        registered.seq
    ));
    assert_verify_names(&authority, "edited subject", registered.seq);
}

#[test]
fn verify_names_edited_details() {
    let authority = Authority::start();
    run_session(&authority);
    let renewed = event(&authority, "svid.renewed");
    let edited = renewed.details.replace("\"serial\":\"", "\"serial\":\"00");
    assert_ne!(
        edited, renewed.details,
        "the details have no serial to edit: {}",
        renewed.details
    );

    authority.sql_write(&format!(
        "UPDATE audit_events SET details = '{}' WHERE seq = {}",
        edited.replace('\'', "''"),
        renewed.seq
    ));
    assert_verify_names(&authority, "edited details", renewed.seq);
}

#[test]
fn verify_names_deleted_middle_row() {
    let authority = Authority::start();
    run_session(&authority);
    let attested = event(&authority, "svid.attested");
    assert!(
        attested.seq > 1 && attested.seq < authority.last_audit_seq(),
        "the deleted event is not in the middle"
    );

    authority.sql_write(&format!(
        "DELETE FROM audit_events WHERE seq = {}",
        attested.seq
    ));
    assert_verify_names(&authority, "deleted middle row", attested.seq);
}

#[test]
fn verify_detects_deleted_last_row() {
    let authority = Authority::start();
    run_session(&authority);
    let last = authority.last_audit_seq();

    authority.sql_write(&format!("DELETE FROM audit_events WHERE seq = {last}"));
    let stderr = authority.sigil_fails(&["audit", "verify"]);
    assert!(
        stderr.contains(&format!("sequence number {last}:")),
        "the message does not name the deleted event: {stderr}"
    );
    assert!(
        stderr.contains("deleted"),
        "the message does not say that events were deleted: {stderr}"
    );
}

/// Rewrites the whole chain after changing one event's details, recomputing every hash from
/// that event on and the recorded head, as anyone with write access to the file could.
fn rewrite_chain(authority: &Authority, edited_seq: i64, new_details: &str) {
    let rows = authority.sql_rows("SELECT seq, at, actor, action, subject, outcome, details, prev_hash, hash FROM audit_events ORDER BY seq");
    let mut statements = vec!["BEGIN;".to_owned()];
    let mut prev_hash = String::new();
    for row in rows {
        let seq = row["seq"].as_i64().unwrap();
        if seq < edited_seq {
            prev_hash = row["hash"].as_str().unwrap().to_owned();
            continue;
        }
        let details = if seq == edited_seq {
            new_details.to_owned()
        } else {
            row["details"].as_str().unwrap().to_owned()
        };
        let record = AuditRecord {
            at_ms: row["at"].as_i64().unwrap(),
            actor: row["actor"].as_str().unwrap().to_owned(),
            action: row["action"].as_str().unwrap().to_owned(),
            subject: row["subject"].as_str().unwrap().to_owned(),
            outcome: row["outcome"].as_str().unwrap().to_owned(),
            details: details.clone(),
        };
        let hash = event_hash(seq, &record, &prev_hash);
        statements.push(format!(
            "UPDATE audit_events SET details = '{}', prev_hash = '{prev_hash}', hash = '{hash}' WHERE seq = {seq};",
            details.replace('\'', "''")
        ));
        statements.push(format!(
            "UPDATE audit_head SET seq = {seq}, hash = '{hash}' WHERE id = 1;"
        ));
        prev_hash = hash;
    }
    statements.push("COMMIT;".to_owned());
    authority.sql_write(&statements.join("\n"));
}

#[test]
#[ignore = "product gap: the chain has no signed checkpoints, so rewriting every hash after an edit goes undetected"]
fn verify_detects_rewritten_chain() {
    let authority = Authority::start();
    run_session(&authority);
    let suspended = event(&authority, "agent.suspended");
    assert!(
        suspended.seq < authority.last_audit_seq(),
        "the edited event is not in the middle"
    );
    let forged = suspended.details.replace("investigation", "routine check");
    assert_ne!(
        forged, suspended.details,
        "the details have no reason to edit"
    );

    rewrite_chain(&authority, suspended.seq, &forged);
    let rewritten = event(&authority, "agent.suspended");
    assert_eq!(rewritten.details, forged, "the rewrite did not apply");

    let output = authority.sigil(&["audit", "verify"]);
    assert!(
        !output.status.success(),
        "verify accepted a chain rewritten from sequence number {}: {}",
        suspended.seq,
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn session_audits_every_action() {
    let authority = Authority::start();
    run_session(&authority);
    let events = authority.audit_events();
    let admin = format!("spiffe://{TRUST_DOMAIN}/admin/root");
    let agent = format!("spiffe://{TRUST_DOMAIN}/agent/{AGENT}");

    // (action, subject, actor, outcome)
    let expected = [
        ("owner.added", OWNER, admin.as_str(), "success"),
        ("agent.registered", AGENT, admin.as_str(), "success"),
        ("join_token.created", AGENT, admin.as_str(), "success"),
        ("svid.attested", AGENT, "anonymous", "success"),
        ("svid.renewed", AGENT, agent.as_str(), "success"),
        ("agent.suspended", AGENT, admin.as_str(), "success"),
        ("agent.resumed", AGENT, admin.as_str(), "success"),
        ("agent.granted", AGENT, admin.as_str(), "success"),
        ("agent.decommissioned", AGENT, admin.as_str(), "success"),
        (
            "request.rejected",
            "/v1/admin/agents/nobody",
            admin.as_str(),
            "denied",
        ),
    ];
    for (action, subject, actor, outcome) in expected {
        let found = events
            .iter()
            .find(|event| event.action == action && event.subject == subject);
        let Some(found) = found else {
            panic!("no {action} event for {subject}: {events:#?}");
        };
        assert_eq!(found.actor, actor, "{action}: actor");
        assert_eq!(found.outcome, outcome, "{action}: outcome");
    }

    let decommissioned = event(&authority, "agent.decommissioned");
    assert!(
        decommissioned.details.contains("revoked_serials"),
        "the decommission event lists no revoked serials: {}",
        decommissioned.details
    );
    let rejected = event(&authority, "request.rejected");
    assert!(
        rejected.details.contains("not_found"),
        "the rejection event has no error code: {}",
        rejected.details
    );
}
