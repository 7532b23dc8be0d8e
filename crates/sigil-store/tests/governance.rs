//! Governance against a real SQLite file with an injected clock: a fleet with one planted
//! problem of every kind, offboarding, reviews, risk acceptance and inventory imports.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a setup error"
)]

use std::collections::BTreeSet;

use sigil_core::{AgentStatus, AuditRecord};
use sigil_governance::Settings;
use sigil_governance::import::{Mapping, parse_json_lines};
use sigil_store::{NewAgent, NewCredential, RenewOutcome, Store};

const NOW: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn record(action: &str, subject: &str, at_ms: i64) -> AuditRecord {
    AuditRecord {
        at_ms,
        actor: "spiffe://example.org/admin/root".into(),
        action: action.into(),
        subject: subject.into(),
        outcome: "success".into(),
        details: "{}".into(),
    }
}

fn credential(
    serial: &str,
    agent: &str,
    key: &str,
    parent: Option<&str>,
    at: i64,
) -> NewCredential {
    NewCredential {
        serial: serial.into(),
        spiffe_id: format!("spiffe://example.org/agent/{agent}"),
        agent: Some(agent.into()),
        fingerprint: format!("fp-{serial}"),
        public_key_fingerprint: key.into(),
        cert_pem: format!("PEM {serial}"),
        issued_at_ms: at,
        expires_at_ms: at + 15 * 60_000,
        parent_serial: parent.map(Into::into),
    }
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sigil.db")).await.unwrap();
    (dir, store)
}

async fn owner(store: &Store, email: &str) {
    store
        .add_owner(
            email,
            None,
            NOW - 400 * DAY,
            record("owner.added", email, NOW),
        )
        .await
        .unwrap();
}

/// Registers `name` at `registered_at` with `entitlements` as its baseline.
async fn register(
    store: &Store,
    name: &str,
    owner: &str,
    registered_at: i64,
    entitlements: &[&str],
) {
    let agent = NewAgent {
        name: name.into(),
        spiffe_id: format!("spiffe://example.org/agent/{name}"),
        owner_email: owner.into(),
        purpose: None,
        ttl_secs: 900,
        entitlements: entitlements
            .iter()
            .map(|e| {
                let (action, resource) = e.split_once(':').unwrap();
                (action.to_owned(), resource.to_owned())
            })
            .collect(),
    };
    store
        .register_agent(
            &agent,
            registered_at,
            record("agent.registered", name, registered_at),
        )
        .await
        .unwrap();
}

/// Attests `name` at `at` with a certificate whose serial is `<name>-1`.
async fn attest(store: &Store, name: &str, at: i64) {
    let hash = format!("hash-{name}");
    store
        .create_join_token(
            &hash,
            name,
            at,
            at + 600_000,
            record("join_token.created", name, at),
        )
        .await
        .unwrap();
    store
        .complete_attestation(
            &hash,
            &credential(&format!("{name}-1"), name, &format!("key-{name}"), None, at),
            at,
            record("svid.attested", name, at),
        )
        .await
        .unwrap();
}

fn line(id: &str, agent: &str, rotated: i64, used: Option<i64>) -> String {
    let time = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms / 1000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let used = used.map_or("null".to_owned(), |ms| format!("\"{}\"", time(ms)));
    format!(
        r#"{{"id":"{id}","agent":"{agent}","kind":"api-key","last_rotated":"{}","last_used":{used}}}"#,
        time(rotated)
    )
}

async fn import(store: &Store, lines: &[String], at: i64) -> sigil_store::ImportOutcome {
    let parsed = parse_json_lines(lines.join("\n").as_bytes()).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    store
        .import_external_credentials(
            "json",
            &parsed.credentials,
            &Mapping::default(),
            at,
            record("credentials.imported", "json", at),
        )
        .await
        .unwrap()
}

async fn open_findings(store: &Store) -> BTreeSet<(String, String)> {
    store
        .findings(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.status == "open")
        .map(|f| (f.kind, f.subject))
        .collect()
}

/// Builds the fleet: healthy agents plus one planted problem of every kind. Returns the
/// expected open findings as `(kind, subject)`.
async fn planted_fleet(store: &Store) -> BTreeSet<(String, String)> {
    for email in [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
        "dave@example.org",
    ] {
        owner(store, email).await;
    }

    // Healthy agents: recent registration, a recent certificate, a fresh mapped key each.
    let mut keys = Vec::new();
    for i in 0..20 {
        let name = format!("healthy-{i:02}");
        register(
            store,
            &name,
            "alice@example.org",
            NOW - 2 * DAY,
            &["invoke:tool:crm/*"],
        )
        .await;
        attest(store, &name, NOW - HOUR).await;
        keys.push(line(
            &format!("key-{name}"),
            &name,
            NOW - 10 * DAY,
            Some(NOW - DAY),
        ));
    }

    // owner-departed within the grace period, and past it (suspended by the scan).
    register(store, "orphan", "bob@example.org", NOW - 2 * DAY, &[]).await;
    attest(store, "orphan", NOW - HOUR).await;
    register(
        store,
        "orphan-late",
        "carol@example.org",
        NOW - 20 * DAY,
        &[],
    )
    .await;
    attest(store, "orphan-late", NOW - HOUR).await;
    store
        .depart_owner(
            "bob@example.org",
            NOW - DAY,
            record("owner.departed", "bob", NOW - DAY),
        )
        .await
        .unwrap();
    store
        .depart_owner(
            "carol@example.org",
            NOW - 8 * DAY,
            record("owner.departed", "carol", NOW - 8 * DAY),
        )
        .await
        .unwrap();

    // agent-inactive: the only credential was issued 40 days ago.
    register(store, "idle", "alice@example.org", NOW - 40 * DAY, &[]).await;
    attest(store, "idle", NOW - 40 * DAY).await;

    // credential-after-decommission: an external key stays active after the decommission.
    register(store, "retired", "alice@example.org", NOW - 10 * DAY, &[]).await;
    attest(store, "retired", NOW - 5 * DAY).await;
    keys.push(line(
        "key-retired",
        "retired",
        NOW - 10 * DAY,
        Some(NOW - 2 * DAY),
    ));

    // privilege-drift: a recent grant beyond the baseline.
    register(store, "drifter", "alice@example.org", NOW - 2 * DAY, &[]).await;
    attest(store, "drifter", NOW - HOUR).await;
    store
        .grant(
            "drifter",
            "invoke",
            "tool:billing/*",
            NOW - DAY,
            record("agent.granted", "drifter", NOW - DAY),
        )
        .await
        .unwrap();

    // unused-entitlement: a baseline entitlement never used in 60 days.
    register(
        store,
        "hoarder",
        "alice@example.org",
        NOW - 60 * DAY,
        &["read:db:orders"],
    )
    .await;
    attest(store, "hoarder", NOW - HOUR).await;

    // static-credential: rotated 100 days ago, used yesterday.
    register(store, "legacy", "alice@example.org", NOW - 2 * DAY, &[]).await;
    attest(store, "legacy", NOW - HOUR).await;
    keys.push(line(
        "key-legacy",
        "legacy",
        NOW - 100 * DAY,
        Some(NOW - DAY),
    ));

    // unused-credential: rotated 40 days ago, last used 35 days ago.
    register(store, "dusty", "alice@example.org", NOW - 2 * DAY, &[]).await;
    attest(store, "dusty", NOW - HOUR).await;
    keys.push(line(
        "key-dusty",
        "dusty",
        NOW - 40 * DAY,
        Some(NOW - 35 * DAY),
    ));

    // credential-sprawl: four live keys and a certificate line.
    register(store, "sprawler", "alice@example.org", NOW - 2 * DAY, &[]).await;
    attest(store, "sprawler", NOW - HOUR).await;
    for i in 0..4 {
        keys.push(line(
            &format!("key-sprawler-{i}"),
            "sprawler",
            NOW - DAY,
            Some(NOW - HOUR),
        ));
    }

    // unmapped-credential: a key of a user that is no agent.
    keys.push(line("key-ghost", "ghost", NOW - DAY, Some(NOW - HOUR)));

    // identity-fork: one certificate renewed twice with different keys.
    register(store, "forked", "alice@example.org", NOW - 2 * DAY, &[]).await;
    attest(store, "forked", NOW - 2 * HOUR).await;
    let first = store
        .complete_renewal(
            "forked-1",
            &credential("forked-2", "forked", "key-a", Some("forked-1"), NOW - HOUR),
            NOW - HOUR,
            record("svid.renewed", "forked", NOW - HOUR),
            record("svid.fork", "forked", NOW - HOUR),
        )
        .await
        .unwrap();
    assert!(matches!(first, RenewOutcome::Issued));
    let fork = store
        .complete_renewal(
            "forked-1",
            &credential("forked-3", "forked", "key-b", Some("forked-1"), NOW - HOUR),
            NOW - HOUR,
            record("svid.renewed", "forked", NOW - HOUR),
            record("svid.fork", "forked", NOW - HOUR),
        )
        .await
        .unwrap();
    assert!(matches!(fork, RenewOutcome::Fork { .. }));

    // review-overdue: dave's only agent was due an hour ago.
    register(store, "laggard", "dave@example.org", NOW - 10 * DAY, &[]).await;
    attest(store, "laggard", NOW - HOUR).await;
    let items = store
        .start_review(
            Some("dave@example.org"),
            NOW - HOUR,
            NOW - 8 * DAY,
            record("review.started", "dave", NOW - 8 * DAY),
        )
        .await
        .unwrap();
    assert_eq!(items.len(), 1);

    let outcome = import(store, &keys, NOW - HOUR).await;
    assert_eq!(outcome.unmapped, 1);

    store
        .change_agent_status(
            "retired",
            AgentStatus::decommission,
            Some("replaced"),
            NOW - DAY,
            record("agent.decommissioned", "retired", NOW - DAY),
        )
        .await
        .unwrap();

    [
        ("owner-departed", "orphan"),
        ("owner-departed", "orphan-late"),
        ("agent-inactive", "idle"),
        ("credential-after-decommission", "retired"),
        ("privilege-drift", "drifter"),
        ("unused-entitlement", "hoarder read:db:orders"),
        ("static-credential", "key-legacy"),
        ("unused-credential", "key-dusty"),
        ("credential-sprawl", "sprawler"),
        ("unmapped-credential", "key-ghost"),
        ("identity-fork", "forked"),
        ("review-overdue", "laggard"),
    ]
    .into_iter()
    .map(|(kind, subject)| (kind.to_owned(), subject.to_owned()))
    .collect()
}

#[tokio::test]
async fn scan_finds_every_planted_problem_and_nothing_else() {
    let (_dir, store) = open().await;
    let expected = planted_fleet(&store).await;

    let report = store.scan(&Settings::default(), NOW).await.unwrap();
    let found = open_findings(&store).await;
    let missed: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(missed.is_empty(), "missed planted problems: {missed:?}");
    assert!(extra.is_empty(), "flagged healthy subjects: {extra:?}");

    let mut suspended = report.suspended.clone();
    suspended.sort();
    assert_eq!(suspended, ["laggard", "orphan-late"]);
    assert_eq!(
        store.agent("orphan").await.unwrap().status,
        AgentStatus::Active
    );
    assert_eq!(
        store.agent("orphan-late").await.unwrap().status,
        AgentStatus::Suspended
    );
    let overdue = store.review_items().await.unwrap();
    assert!(
        overdue
            .iter()
            .any(|i| i.agent == "laggard" && i.status == "overdue")
    );

    // A second scan changes nothing: every finding is refreshed, none opened or resolved.
    let again = store
        .scan(&Settings::default(), NOW + 60_000)
        .await
        .unwrap();
    assert_eq!(again.opened, 0, "{again:?}");
    assert_eq!(again.resolved, 0, "{again:?}");
    assert!(again.suspended.is_empty());
    assert_eq!(open_findings(&store).await, expected);
}

#[tokio::test]
async fn findings_resolve_when_conditions_clear() {
    let (_dir, store) = open().await;
    planted_fleet(&store).await;
    store.scan(&Settings::default(), NOW).await.unwrap();

    store
        .transfer_agent(
            "orphan",
            "alice@example.org",
            NOW,
            record("agent.transferred", "orphan", NOW),
        )
        .await
        .unwrap();
    store
        .revoke_grant(
            "drifter",
            "invoke",
            "tool:billing/*",
            record("agent.grant_revoked", "drifter", NOW),
        )
        .await
        .unwrap();
    store
        .certify_review(
            "laggard",
            false,
            NOW,
            record("review.certified", "laggard", NOW),
        )
        .await
        .unwrap();
    let report = store.scan(&Settings::default(), NOW + 1000).await.unwrap();
    assert_eq!(report.opened, 0, "{report:?}");

    let found = open_findings(&store).await;
    for cleared in [
        ("owner-departed", "orphan"),
        ("privilege-drift", "drifter"),
        ("review-overdue", "laggard"),
    ] {
        assert!(
            !found.contains(&(cleared.0.to_owned(), cleared.1.to_owned())),
            "{cleared:?} still open"
        );
    }
    let all = store.findings(Some("owner-departed")).await.unwrap();
    let orphan = all.iter().find(|f| f.subject == "orphan").unwrap();
    assert_eq!(orphan.status, "resolved");
    assert!(orphan.resolved_at_ms.is_some());
}

#[tokio::test]
async fn accepted_finding_is_not_reopened_or_enforced() {
    let (_dir, store) = open().await;
    owner(&store, "erin@example.org").await;
    register(&store, "keeper", "erin@example.org", NOW - 2 * DAY, &[]).await;
    attest(&store, "keeper", NOW - HOUR).await;
    store
        .depart_owner(
            "erin@example.org",
            NOW - DAY,
            record("owner.departed", "erin", NOW - DAY),
        )
        .await
        .unwrap();
    let finding = store.findings(Some("owner-departed")).await.unwrap();
    assert_eq!(finding.len(), 1, "depart opens the finding at once");
    let id = finding[0].id;

    let accepted = store
        .accept_finding(
            id,
            "handover in progress",
            record("finding.accepted", &id.to_string(), NOW),
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, "accepted");
    assert_eq!(
        accepted.accepted_reason.as_deref(),
        Some("handover in progress")
    );

    // Past the grace period the condition still holds: the finding stays accepted, nothing new
    // opens, and the agent is not suspended.
    let report = store
        .scan(&Settings::default(), NOW + 8 * DAY)
        .await
        .unwrap();
    assert_eq!(report.opened, 0);
    assert!(report.suspended.is_empty());
    assert_eq!(store.finding(id).await.unwrap().status, "accepted");
    assert_eq!(
        store.agent("keeper").await.unwrap().status,
        AgentStatus::Active
    );

    let again = store
        .accept_finding(
            id,
            "twice",
            record("finding.accepted", &id.to_string(), NOW),
        )
        .await;
    assert!(
        again.is_err(),
        "an accepted finding cannot be accepted again"
    );
}

#[tokio::test]
async fn certify_drop_removes_drift() {
    let (_dir, store) = open().await;
    owner(&store, "alice@example.org").await;
    register(
        &store,
        "bot",
        "alice@example.org",
        NOW - DAY,
        &["invoke:tool:crm/*"],
    )
    .await;
    attest(&store, "bot", NOW - HOUR).await;
    store
        .grant(
            "bot",
            "invoke",
            "tool:billing/*",
            NOW,
            record("agent.granted", "bot", NOW),
        )
        .await
        .unwrap();
    let certification = store
        .certify_review("bot", true, NOW, record("review.certified", "bot", NOW))
        .await
        .unwrap();
    assert_eq!(certification.status, "dropped");
    assert_eq!(certification.dropped, ["invoke:tool:billing/*"]);
    let entitlements = store.entitlements("bot").await.unwrap();
    assert_eq!(entitlements.len(), 1);
    assert!(entitlements[0].baseline);
    let drift = store.findings(Some("privilege-drift")).await.unwrap();
    assert_eq!(drift[0].status, "resolved");

    let none = store
        .certify_review("bot", false, NOW, record("review.certified", "bot", NOW))
        .await;
    assert!(none.is_err(), "no pending item is left to certify");
}

#[tokio::test]
async fn finding_events_queue_opened_and_resolved() {
    let (_dir, store) = open().await;
    planted_fleet(&store).await;
    store.scan(&Settings::default(), NOW).await.unwrap();
    let events = store.pending_finding_events(1000).await.unwrap();
    let opened = events.iter().filter(|e| e.event == "opened").count();
    assert!(opened >= 12, "{opened}");
    let last = events.last().unwrap().id;
    store.delete_finding_events(last).await.unwrap();
    assert!(store.pending_finding_events(10).await.unwrap().is_empty());

    store
        .transfer_agent(
            "orphan",
            "alice@example.org",
            NOW,
            record("agent.transferred", "orphan", NOW),
        )
        .await
        .unwrap();
    let events = store.pending_finding_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "resolved");
    assert_eq!(events[0].finding.subject, "orphan");
}
