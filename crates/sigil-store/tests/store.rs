//! Registry operations against a real SQLite file.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a setup error"
)]

use sigil_core::{AgentStatus, AuditRecord};
use sigil_store::{NewAgent, NewCredential, RenewOutcome, Store, StoreError, TokenState};
use sqlx::Connection;

const NOW: i64 = 1_800_000_000_000;

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

fn agent(name: &str, owner: &str) -> NewAgent {
    NewAgent {
        name: name.into(),
        spiffe_id: format!("spiffe://example.org/agent/{name}"),
        owner_email: owner.into(),
        purpose: Some("test".into()),
        ttl_secs: 900,
        entitlements: vec![("invoke".into(), "tool:crm/*".into())],
    }
}

fn credential(serial: &str, agent: &str, key: &str, parent: Option<&str>) -> NewCredential {
    NewCredential {
        serial: serial.into(),
        spiffe_id: format!("spiffe://example.org/agent/{agent}"),
        agent: Some(agent.into()),
        fingerprint: format!("fp-{serial}"),
        public_key_fingerprint: key.into(),
        cert_pem: format!("PEM {serial}"),
        issued_at_ms: NOW,
        expires_at_ms: NOW + 900_000,
        parent_serial: parent.map(Into::into),
    }
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sigil.db")).await.unwrap();
    (dir, store)
}

/// A store with owner alice, agent bot and a consumed token giving bot credential `s1`.
async fn enrolled() -> (tempfile::TempDir, Store) {
    let (dir, store) = open().await;
    store
        .add_owner(
            "alice@example.org",
            None,
            NOW,
            record("owner.added", "alice"),
        )
        .await
        .unwrap();
    store
        .register_agent(
            &agent("bot", "alice@example.org"),
            NOW,
            record("agent.registered", "bot"),
        )
        .await
        .unwrap();
    store
        .create_join_token(
            "h1",
            "bot",
            NOW,
            NOW + 600_000,
            record("join_token.created", "bot"),
        )
        .await
        .unwrap();
    store
        .complete_attestation(
            "h1",
            &credential("s1", "bot", "k1", None),
            NOW,
            record("svid.attested", "bot"),
        )
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn registration_needs_active_owner() {
    let (_dir, store) = open().await;

    let unknown = store
        .register_agent(&agent("bot", "nobody@example.org"), NOW, record("r", "bot"))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );

    store
        .add_owner("bob@example.org", None, NOW, record("owner.added", "bob"))
        .await
        .unwrap();
    store
        .depart_owner("bob@example.org", NOW, record("owner.departed", "bob"))
        .await
        .unwrap();
    let departed = store
        .register_agent(&agent("bot", "bob@example.org"), NOW, record("r", "bot"))
        .await;
    assert!(
        matches!(departed, Err(StoreError::Rejected(_))),
        "{departed:?}"
    );
    assert!(
        store.agents().await.unwrap().is_empty(),
        "a rejected registration stored an agent"
    );
}

#[tokio::test]
async fn duplicate_owner_and_agent_conflict() {
    let (_dir, store) = enrolled().await;
    let owner = store
        .add_owner(
            "alice@example.org",
            None,
            NOW,
            record("owner.added", "alice"),
        )
        .await;
    assert!(matches!(owner, Err(StoreError::Conflict(_))), "{owner:?}");
    let again = store
        .register_agent(&agent("bot", "alice@example.org"), NOW, record("r", "bot"))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn join_token_is_single_use() {
    let (_dir, store) = enrolled().await;
    assert_eq!(
        store.join_token_state("h1", NOW).await.unwrap(),
        TokenState::Used
    );
    assert_eq!(
        store.agent("bot").await.unwrap().status,
        AgentStatus::Active
    );

    let replay = store
        .complete_attestation(
            "h1",
            &credential("s2", "bot", "k2", None),
            NOW,
            record("svid.attested", "bot"),
        )
        .await;
    assert!(matches!(replay, Err(StoreError::Rejected(_))), "{replay:?}");
    assert!(
        store.credential("s2").await.unwrap().is_none(),
        "a replayed token stored a credential"
    );
}

#[tokio::test]
async fn expired_token_is_refused() {
    let (_dir, store) = enrolled().await;
    store
        .create_join_token(
            "h2",
            "bot",
            NOW,
            NOW + 1_000,
            record("join_token.created", "bot"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.join_token_state("h2", NOW + 1_000).await.unwrap(),
        TokenState::Expired
    );
    let late = store
        .complete_attestation(
            "h2",
            &credential("s2", "bot", "k2", None),
            NOW + 1_000,
            record("a", "bot"),
        )
        .await;
    assert!(matches!(late, Err(StoreError::Rejected(_))), "{late:?}");
    assert_eq!(
        store.join_token_state("nope", NOW).await.unwrap(),
        TokenState::Unknown
    );
}

#[tokio::test]
async fn concurrent_attestations_one_wins() {
    let (_dir, store) = enrolled().await;
    store
        .create_join_token(
            "h2",
            "bot",
            NOW,
            NOW + 600_000,
            record("join_token.created", "bot"),
        )
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let serial = format!("c{i}");
            store
                .complete_attestation(
                    "h2",
                    &credential(&serial, "bot", "k", None),
                    NOW,
                    record("a", "bot"),
                )
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one attestation may consume a token");
}

#[tokio::test]
async fn renewal_retry_and_fork() {
    let (_dir, store) = enrolled().await;

    let first = store
        .complete_renewal(
            "s1",
            &credential("s2", "bot", "k2", Some("s1")),
            NOW,
            record("svid.renewed", "bot"),
            record("identity.fork", "bot"),
        )
        .await
        .unwrap();
    assert!(matches!(first, RenewOutcome::Issued), "{first:?}");

    let retry = store
        .complete_renewal(
            "s1",
            &credential("s3", "bot", "k2", Some("s1")),
            NOW,
            record("svid.renewed", "bot"),
            record("identity.fork", "bot"),
        )
        .await
        .unwrap();
    match retry {
        RenewOutcome::Retry(existing) => assert_eq!(existing.serial, "s2"),
        other => panic!("same key must be a retry, got {other:?}"),
    }
    assert_eq!(
        store.agent("bot").await.unwrap().status,
        AgentStatus::Active
    );

    let fork = store
        .complete_renewal(
            "s1",
            &credential("s4", "bot", "k-thief", Some("s1")),
            NOW,
            record("svid.renewed", "bot"),
            record("identity.fork", "bot"),
        )
        .await
        .unwrap();
    let RenewOutcome::Fork {
        existing_successor, ..
    } = fork
    else {
        panic!("a different key must be a fork, got {fork:?}");
    };
    assert_eq!(existing_successor, "s2");
    assert_eq!(
        store.agent("bot").await.unwrap().status,
        AgentStatus::Suspended
    );
    assert!(
        store.credential("s4").await.unwrap().is_none(),
        "the forked renewal stored a credential"
    );

    let findings = store.findings(Some("identity-fork")).await.unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].evidence["presented_serial"], "s1");
    assert_eq!(findings[0].evidence["existing_successor_serial"], "s2");
}

#[tokio::test]
async fn decommission_revokes_everything() {
    let (_dir, store) = enrolled().await;
    store
        .complete_renewal(
            "s1",
            &credential("s2", "bot", "k2", Some("s1")),
            NOW,
            record("svid.renewed", "bot"),
            record("identity.fork", "bot"),
        )
        .await
        .unwrap();
    store
        .create_join_token(
            "h9",
            "bot",
            NOW,
            NOW + 600_000,
            record("join_token.created", "bot"),
        )
        .await
        .unwrap();

    let (row, revoked) = store
        .change_agent_status(
            "bot",
            AgentStatus::decommission,
            Some("retired"),
            NOW + 10,
            record("agent.decommissioned", "bot"),
        )
        .await
        .unwrap();
    assert_eq!(row.status, AgentStatus::Decommissioned);
    let mut revoked = revoked;
    revoked.sort();
    assert_eq!(revoked, ["s1", "s2"]);
    assert_eq!(
        store.join_token_state("h9", NOW + 20).await.unwrap(),
        TokenState::Used,
        "unused tokens must be burnt"
    );

    let listed: Vec<String> = store
        .revoked_unexpired(NOW + 20)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(listed, ["s1", "s2"]);
    assert!(store.crl_number().await.unwrap() >= 1);

    let renew = store
        .complete_renewal(
            "s2",
            &credential("s3", "bot", "k3", Some("s2")),
            NOW + 30,
            record("svid.renewed", "bot"),
            record("identity.fork", "bot"),
        )
        .await;
    assert!(matches!(renew, Err(StoreError::Rejected(_))), "{renew:?}");

    let resume = store
        .change_agent_status(
            "bot",
            AgentStatus::resume,
            None,
            NOW + 40,
            record("agent.resumed", "bot"),
        )
        .await;
    assert!(
        matches!(resume, Err(StoreError::Conflict(_))),
        "decommissioned must be final: {resume:?}"
    );
}

#[tokio::test]
async fn audit_chain_detects_edits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let store = Store::open(&path).await.unwrap();
    store
        .add_owner(
            "alice@example.org",
            None,
            NOW,
            record("owner.added", "alice"),
        )
        .await
        .unwrap();
    store
        .register_agent(
            &agent("bot", "alice@example.org"),
            NOW,
            record("agent.registered", "bot"),
        )
        .await
        .unwrap();
    store
        .record_audit(record("request.rejected", "/v1/agent/attest"))
        .await
        .unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(3));

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET subject = 'mallory' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    let broken = store.verify_audit_chain().await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 2);
}

#[tokio::test]
async fn failed_change_leaves_no_audit_event() {
    let (_dir, store) = enrolled().await;
    let before = store.audit_events(0, 1000).await.unwrap().len();
    let _ = store
        .register_agent(
            &agent("bot2", "nobody@example.org"),
            NOW,
            record("agent.registered", "bot2"),
        )
        .await;
    let after = store.audit_events(0, 1000).await.unwrap().len();
    assert_eq!(
        before, after,
        "a rolled-back change must not leave its audit event"
    );
}

#[tokio::test]
async fn grant_beyond_baseline_opens_drift() {
    let (_dir, store) = enrolled().await;
    let before = store.policy_version().await.unwrap();
    store
        .grant(
            "bot",
            "invoke",
            "tool:erp/*",
            NOW,
            record("agent.granted", "bot"),
        )
        .await
        .unwrap();
    assert!(
        store.policy_version().await.unwrap() > before,
        "a grant must bump the policy version"
    );

    let drift = store.findings(Some("privilege-drift")).await.unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].status, "open");
    assert_eq!(drift[0].evidence["beyond_baseline"][0], "invoke:tool:erp/*");

    store
        .revoke_grant(
            "bot",
            "invoke",
            "tool:erp/*",
            record("agent.grant_revoked", "bot"),
        )
        .await
        .unwrap();
    let drift = store.findings(Some("privilege-drift")).await.unwrap();
    assert_eq!(
        drift[0].status, "resolved",
        "drift must resolve once the extra grant is gone"
    );
}

#[tokio::test]
async fn revoke_unknown_grant_not_found() {
    let (_dir, store) = enrolled().await;
    let missing = store
        .revoke_grant("bot", "invoke", "tool:none", record("r", "bot"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn unused_entitlement_found_after_period() {
    const DAY: i64 = 86_400_000;
    let (_dir, store) = enrolled().await;
    let period = 30 * DAY;

    let (opened, _) = store
        .scan_unused_entitlements(NOW + 29 * DAY, period)
        .await
        .unwrap();
    assert_eq!(opened, 0, "not unused for 30 days yet");

    let (opened, _) = store
        .scan_unused_entitlements(NOW + 31 * DAY, period)
        .await
        .unwrap();
    assert_eq!(opened, 1);
    let unused = store.findings(Some("unused-entitlement")).await.unwrap();
    assert_eq!(unused[0].subject, "bot invoke:tool:crm/*");

    let used_at = NOW + 31 * DAY + 1;
    store
        .record_entitlement_use(&[("bot".into(), "invoke".into(), "tool:crm/*".into(), used_at)])
        .await
        .unwrap();
    let (opened, resolved) = store
        .scan_unused_entitlements(NOW + 32 * DAY, period)
        .await
        .unwrap();
    assert_eq!((opened, resolved), (0, 1), "use must resolve the finding");
}
