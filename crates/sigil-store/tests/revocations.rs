//! The revocation event log and gateway registry against a real SQLite file.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a setup error"
)]

use sigil_core::{AgentStatus, AuditRecord};
use sigil_store::{
    GatewayRenewOutcome, GatewayTokenState, NewAgent, NewCredential, NewGatewayToken,
    RevocationRow, Store, StoreError,
};

const NOW: i64 = 1_800_000_000_000;
const GATEWAY_ID: &str = "spiffe://example.org/gateway/edge";

fn record(action: &str, subject: &str) -> AuditRecord {
    AuditRecord {
        at_ms: NOW,
        actor: "spiffe://example.org/admin/root".into(),
        action: action.into(),
        subject: subject.into(),
        outcome: "success".into(),
        details: "{}".into(),
    }
}

fn agent_credential(serial: &str, parent: Option<&str>, key: &str) -> NewCredential {
    NewCredential {
        serial: serial.into(),
        spiffe_id: "spiffe://example.org/agent/bot".into(),
        agent: Some("bot".into()),
        fingerprint: format!("fp-{serial}"),
        public_key_fingerprint: key.into(),
        cert_pem: format!("PEM {serial}"),
        issued_at_ms: NOW,
        expires_at_ms: NOW + 900_000,
        parent_serial: parent.map(Into::into),
    }
}

fn gateway_credential(serial: &str, parent: Option<&str>, key: &str) -> NewCredential {
    NewCredential {
        spiffe_id: GATEWAY_ID.into(),
        agent: None,
        ..agent_credential(serial, parent, key)
    }
}

async fn enrolled() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sigil.db")).await.unwrap();
    store
        .add_owner("alice@example.org", None, NOW, record("owner.added", "a"))
        .await
        .unwrap();
    let agent = NewAgent {
        name: "bot".into(),
        spiffe_id: "spiffe://example.org/agent/bot".into(),
        owner_email: "alice@example.org".into(),
        purpose: None,
        ttl_secs: 900,
        entitlements: vec![("invoke".into(), "tool:crm/*".into())],
    };
    store
        .register_agent(&agent, NOW, record("agent.registered", "bot"))
        .await
        .unwrap();
    store
        .create_join_token("h1", "bot", NOW, NOW + 600_000, record("t", "bot"))
        .await
        .unwrap();
    store
        .complete_attestation(
            "h1",
            &agent_credential("s1", None, "k1"),
            NOW,
            record("a", "bot"),
        )
        .await
        .unwrap();
    (dir, store)
}

fn token<'a>(sans: &'a [String], hash: &'a str, expires_at_ms: i64) -> NewGatewayToken<'a> {
    NewGatewayToken {
        gateway: "edge",
        spiffe_id: GATEWAY_ID,
        sans,
        token_hash: hash,
        created_at_ms: NOW,
        expires_at_ms,
    }
}

fn kinds(events: &[RevocationRow]) -> Vec<&str> {
    events.iter().map(|event| event.kind.as_str()).collect()
}

#[tokio::test]
async fn registry_changes_write_events() {
    let (_dir, store) = enrolled().await;

    let events = store.revocation_events_after(0, 100).await.unwrap();
    assert_eq!(
        kinds(&events),
        vec!["policy", "agent-status", "policy"],
        "registration bumps the policy version; attestation activates the agent: {events:#?}"
    );
    assert_eq!(events[1].status.as_deref(), Some("active"));
    assert_eq!(events[2].policy_version, Some(2));
    let after_enrolment = events[2].seq;

    let commits = store.commits();
    let before = *commits.borrow();
    store
        .change_agent_status(
            "bot",
            AgentStatus::decommission,
            Some("retired"),
            NOW + 1,
            record("agent.decommissioned", "bot"),
        )
        .await
        .unwrap();
    assert_ne!(*commits.borrow(), before, "a commit must tick the notifier");

    let events = store
        .revocation_events_after(after_enrolment, 100)
        .await
        .unwrap();
    assert_eq!(kinds(&events), vec!["agent-status", "revoke", "policy"]);
    assert_eq!(events[0].status.as_deref(), Some("decommissioned"));
    assert_eq!(events[1].serial.as_deref(), Some("s1"));
    assert_eq!(events[1].agent.as_deref(), Some("bot"));
    assert_eq!(events[1].at_ms, NOW + 1);
    assert_eq!(events[2].policy_version, Some(3));
}

#[tokio::test]
async fn failed_change_writes_no_event() {
    let (_dir, store) = enrolled().await;
    let window = store.revocation_window().await.unwrap();

    let refused = store
        .grant("bot", "invoke", "tool:crm/*", NOW, record("grant", "bot"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );

    assert_eq!(store.revocation_window().await.unwrap(), window);
}

#[tokio::test]
async fn window_survives_pruning() {
    let (_dir, store) = enrolled().await;
    let window = store.revocation_window().await.unwrap();
    assert_eq!((window.oldest, window.latest), (1, 3));
    assert!(window.can_resume_from(0));
    assert!(window.can_resume_from(3));
    assert!(
        !window.can_resume_from(4),
        "a resume point ahead of the log"
    );

    let deleted = store.prune_revocation_events(i64::MAX).await.unwrap();
    assert_eq!(deleted, 2, "pruning keeps the newest event");
    let window = store.revocation_window().await.unwrap();
    assert_eq!((window.oldest, window.latest), (3, 3));
    assert!(!window.can_resume_from(1));
    assert!(window.can_resume_from(2));

    store
        .grant("bot", "read", "doc:*", NOW, record("grant", "bot"))
        .await
        .unwrap();
    let events = store.revocation_events_after(3, 10).await.unwrap();
    assert_eq!(events[0].seq, 4, "sequence numbers are never reused");
}

#[tokio::test]
async fn snapshot_matches_log() {
    let (_dir, store) = enrolled().await;
    store
        .change_agent_status(
            "bot",
            AgentStatus::decommission,
            None,
            NOW,
            record("d", "bot"),
        )
        .await
        .unwrap();

    let snapshot = store.gateway_snapshot(NOW).await.unwrap();
    assert_eq!(
        snapshot.seq,
        store.revocation_window().await.unwrap().latest
    );
    assert_eq!(
        snapshot.policy_version,
        store.policy_version().await.unwrap()
    );
    assert_eq!(snapshot.agents.len(), 1);
    assert_eq!(snapshot.agents[0].status, AgentStatus::Decommissioned);
    assert_eq!(
        snapshot.entitlements,
        vec![("bot".into(), "invoke".into(), "tool:crm/*".into())]
    );
    assert_eq!(snapshot.revoked_serials, vec!["s1".to_owned()]);
    let later = store.gateway_snapshot(NOW + 900_000).await.unwrap();
    assert!(
        later.revoked_serials.is_empty(),
        "expired serials are left out"
    );
}

#[tokio::test]
async fn gateway_token_attest_and_renew() {
    let (_dir, store) = enrolled().await;
    let sans = vec!["gw.example.org".to_owned()];
    let row = store
        .create_gateway_token(&token(&sans, "g1", NOW + 600_000), record("t", "edge"))
        .await
        .unwrap();
    assert_eq!(row.sans, sans);
    assert_eq!(row.status, "registered");

    let other = store
        .create_gateway_token(
            &token(&["x.example.org".into()], "g2", NOW + 1),
            record("t", "edge"),
        )
        .await;
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    assert_eq!(
        store.gateway_token_state("g2", NOW).await.unwrap(),
        GatewayTokenState::Unknown,
        "a rejected token must not be stored"
    );
    store
        .create_gateway_token(&token(&[], "g3", NOW + 600_000), record("t", "edge"))
        .await
        .unwrap();

    assert_eq!(
        store.gateway_token_state("g1", NOW).await.unwrap(),
        GatewayTokenState::Valid {
            gateway: "edge".into()
        }
    );
    assert_eq!(
        store.gateway_token_state("h1", NOW).await.unwrap(),
        GatewayTokenState::Unknown,
        "agent tokens are not gateway tokens"
    );

    let revoked = store
        .complete_gateway_attestation(
            "g1",
            &gateway_credential("gs1", None, "gk1"),
            NOW,
            record("a", "edge"),
        )
        .await
        .unwrap();
    assert!(revoked.is_empty());
    assert_eq!(store.gateway("edge").await.unwrap().status, "active");
    let reused = store
        .complete_gateway_attestation(
            "g1",
            &gateway_credential("gs9", None, "gk9"),
            NOW,
            record("a", "edge"),
        )
        .await;
    assert!(matches!(reused, Err(StoreError::Rejected(_))), "{reused:?}");

    let renewed = store
        .complete_gateway_renewal(
            "edge",
            "gs1",
            &gateway_credential("gs2", Some("gs1"), "gk2"),
            record("r", "edge"),
            record("f", "edge"),
        )
        .await
        .unwrap();
    assert!(matches!(renewed, GatewayRenewOutcome::Issued));
    let retry = store
        .complete_gateway_renewal(
            "edge",
            "gs1",
            &gateway_credential("gs3", Some("gs1"), "gk2"),
            record("r", "edge"),
            record("f", "edge"),
        )
        .await
        .unwrap();
    assert!(matches!(retry, GatewayRenewOutcome::Retry(existing) if existing.serial == "gs2"));
    let fork = store
        .complete_gateway_renewal(
            "edge",
            "gs1",
            &gateway_credential("gs4", Some("gs1"), "gk4"),
            record("r", "edge"),
            record("f", "edge"),
        )
        .await;
    assert!(matches!(fork, Err(StoreError::Rejected(_))), "{fork:?}");
    let agents_cert = store
        .complete_gateway_renewal(
            "edge",
            "s1",
            &gateway_credential("gs5", Some("s1"), "gk5"),
            record("r", "edge"),
            record("f", "edge"),
        )
        .await;
    assert!(
        matches!(agents_cert, Err(StoreError::Rejected(_))),
        "{agents_cert:?}"
    );

    let before = store.revocation_window().await.unwrap().latest;
    let superseded = store
        .complete_gateway_attestation(
            "g3",
            &gateway_credential("gs6", None, "gk6"),
            NOW,
            record("a", "edge"),
        )
        .await
        .unwrap();
    assert_eq!(
        superseded.len(),
        2,
        "a new attestation revokes the previous line"
    );
    let events = store.revocation_events_after(before, 10).await.unwrap();
    assert_eq!(kinds(&events), vec!["revoke", "revoke"]);
    assert!(events.iter().all(|event| event.agent.is_none()));
    assert!(
        events
            .iter()
            .all(|event| event.spiffe_id.as_deref() == Some(GATEWAY_ID))
    );
}
