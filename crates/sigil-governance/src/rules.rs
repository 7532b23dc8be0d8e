//! The scanner's rules: what is wrong with one agent, one entitlement or one external
//! credential at time `now_ms`.
//!
//! Every rule is a pure function of the facts the store read and of [`Settings`], so the
//! scanner can be tested with planted facts and any clock. Times are Unix milliseconds.

use serde_json::{Value, json};
use sigil_core::AgentStatus;

use crate::FindingKind;

const DAY_MS: i64 = 86_400_000;

/// Thresholds of the rules. Every period is in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// An agent that may obtain credentials and used none for this long is inactive.
    pub agent_inactive_ms: i64,
    /// How long after its owner departs an agent may run before it is suspended.
    pub owner_grace_ms: i64,
    /// An active external credential not rotated for longer than this is static.
    pub static_credential_ms: i64,
    /// An active external credential not used for this long is unused.
    pub unused_credential_ms: i64,
    /// An entitlement not used for this long is unused.
    pub unused_entitlement_ms: i64,
    /// An agent with more live credentials than this has sprawl.
    pub sprawl_limit: u32,
}

impl Default for Settings {
    /// 30 days of inactivity, 7 days of grace, 90 days between rotations, 30 days unused, and
    /// at most 3 live credentials.
    fn default() -> Self {
        Self {
            agent_inactive_ms: 30 * DAY_MS,
            owner_grace_ms: 7 * DAY_MS,
            static_credential_ms: 90 * DAY_MS,
            unused_credential_ms: 30 * DAY_MS,
            unused_entitlement_ms: 30 * DAY_MS,
            sprawl_limit: 3,
        }
    }
}

/// What the registry holds about one agent, aggregated over its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFacts {
    pub name: String,
    pub status: AgentStatus,
    pub owner_email: String,
    /// When the owner departed; `None` while the owner is active.
    pub owner_departed_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// The last status change; for a decommissioned agent, the decommission.
    pub status_changed_at_ms: i64,
    /// Newest issuance, renewal or recorded use of any of the agent's Sigil credentials.
    pub last_svid_activity_ms: Option<i64>,
    /// Newest issuance of a certificate that started a new line (an attestation).
    pub last_attested_at_ms: Option<i64>,
    /// Sigil certificates neither revoked nor expired.
    pub live_svids: u64,
    /// Active external credentials mapped to this agent.
    pub live_external: u64,
    /// Newest recorded use of any external credential mapped to this agent.
    pub last_external_use_ms: Option<i64>,
    /// The oldest review item that is open or overdue, as `(id, due_at_ms)`.
    pub pending_review: Option<(i64, i64)>,
    /// First-seen time of the agent's unresolved identity-fork finding, if any.
    pub fork_seen_at_ms: Option<i64>,
}

/// One entitlement of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementFacts {
    pub action: String,
    pub resource: String,
    /// Declared at registration.
    pub baseline: bool,
    pub granted_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// One external credential, as imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalFacts {
    pub id: String,
    /// The user or principal the inventory named.
    pub source_user: String,
    /// The registered agent it maps to; `None` when it maps to none.
    pub agent: Option<String>,
    pub active: bool,
    pub created_at_ms: Option<i64>,
    pub last_rotated_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

/// Something that enforces a finding, beyond recording it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// Suspend the agent, with this reason. Skipped while the finding is accepted; the store
    /// checks the finding's condition again in the suspending transaction.
    Suspend {
        agent: String,
        reason: String,
        because: FindingKind,
    },
    /// Mark the review item overdue.
    MarkReviewOverdue { item_id: i64 },
}

/// A problem whose condition holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub kind: FindingKind,
    /// An agent name, an external credential id, or `<agent> <action>:<resource>`.
    pub subject: String,
    pub evidence: Value,
    pub enforcement: Vec<Enforcement>,
}

impl Detection {
    fn new(kind: FindingKind, subject: &str, evidence: Value) -> Self {
        Self {
            kind,
            subject: subject.to_owned(),
            evidence,
            enforcement: Vec::new(),
        }
    }
}

fn days(ms: i64) -> i64 {
    ms / DAY_MS
}

/// Applies the agent-level rules to `agent`.
pub fn evaluate_agent(agent: &AgentFacts, settings: &Settings, now_ms: i64) -> Vec<Detection> {
    let mut found = Vec::new();
    let decommissioned = agent.status == AgentStatus::Decommissioned;
    let may_run = agent.status.may_obtain_credentials();

    if let (Some(departed_at), false) = (agent.owner_departed_at_ms, decommissioned) {
        let deadline = departed_at.saturating_add(settings.owner_grace_ms);
        let mut detection = Detection::new(
            FindingKind::OwnerDeparted,
            &agent.name,
            json!({
                "owner": agent.owner_email,
                "owner_departed_at_ms": departed_at,
                "suspend_after_ms": deadline,
                "status": agent.status.as_str(),
            }),
        );
        if may_run && now_ms >= deadline {
            detection.enforcement.push(Enforcement::Suspend {
                agent: agent.name.clone(),
                reason: format!(
                    "owner {} departed and the agent was not transferred within the grace period",
                    agent.owner_email
                ),
                because: FindingKind::OwnerDeparted,
            });
        }
        found.push(detection);
    }

    if may_run {
        let last_use = [agent.last_svid_activity_ms, agent.last_external_use_ms]
            .into_iter()
            .flatten()
            .max();
        let since = last_use.unwrap_or(agent.created_at_ms);
        if now_ms - since >= settings.agent_inactive_ms {
            found.push(Detection::new(
                FindingKind::AgentInactive,
                &agent.name,
                json!({
                    "last_credential_use_ms": last_use,
                    "registered_at_ms": agent.created_at_ms,
                    "inactive_for_days": days(now_ms - since),
                }),
            ));
        }
    }

    if decommissioned {
        let at = agent.status_changed_at_ms;
        let svid_after = agent.last_svid_activity_ms.is_some_and(|t| t > at);
        let external_after = agent.last_external_use_ms.is_some_and(|t| t > at);
        if agent.live_svids > 0 || agent.live_external > 0 || svid_after || external_after {
            found.push(Detection::new(
                FindingKind::CredentialAfterDecommission,
                &agent.name,
                json!({
                    "decommissioned_at_ms": at,
                    "live_svids": agent.live_svids,
                    "live_external_credentials": agent.live_external,
                    "svid_activity_after_decommission": svid_after,
                    "external_use_after_decommission": external_after,
                }),
            ));
        }
    } else {
        // One line of Sigil certificates counts as one credential: a renewal leaves the previous
        // certificate live until it expires, and that is not a second credential.
        let live = agent.live_external + u64::from(agent.live_svids > 0);
        if live > u64::from(settings.sprawl_limit) {
            found.push(Detection::new(
                FindingKind::CredentialSprawl,
                &agent.name,
                json!({
                    "live_credentials": live,
                    "live_external_credentials": agent.live_external,
                    "live_svid_line": agent.live_svids > 0,
                    "limit": settings.sprawl_limit,
                }),
            ));
        }
    }

    if let (Some((item_id, due_at)), false) = (agent.pending_review, decommissioned)
        && now_ms >= due_at
    {
        let mut detection = Detection::new(
            FindingKind::ReviewOverdue,
            &agent.name,
            json!({"review_item": item_id, "due_at_ms": due_at}),
        );
        detection
            .enforcement
            .push(Enforcement::MarkReviewOverdue { item_id });
        if may_run {
            detection.enforcement.push(Enforcement::Suspend {
                agent: agent.name.clone(),
                reason: format!("review item {item_id} is overdue"),
                because: FindingKind::ReviewOverdue,
            });
        }
        found.push(detection);
    }

    if let Some(seen_at) = agent.fork_seen_at_ms {
        let reattested = agent.last_attested_at_ms.is_some_and(|t| t > seen_at);
        if !decommissioned && !reattested {
            found.push(Detection::new(
                FindingKind::IdentityFork,
                &agent.name,
                json!({"detected_at_ms": seen_at, "status": agent.status.as_str()}),
            ));
        }
    }
    found
}

/// Applies the entitlement rules to every entitlement of one agent.
pub fn evaluate_entitlements(
    agent: &str,
    status: AgentStatus,
    entitlements: &[EntitlementFacts],
    settings: &Settings,
    now_ms: i64,
) -> Vec<Detection> {
    if status == AgentStatus::Decommissioned {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut beyond = Vec::new();
    for entitlement in entitlements {
        let name = format!("{}:{}", entitlement.action, entitlement.resource);
        let since = entitlement
            .last_used_at_ms
            .unwrap_or(entitlement.granted_at_ms);
        if now_ms - since >= settings.unused_entitlement_ms {
            found.push(Detection::new(
                FindingKind::UnusedEntitlement,
                &format!("{agent} {name}"),
                json!({
                    "agent": agent,
                    "entitlement": name,
                    "last_used_at_ms": entitlement.last_used_at_ms,
                    "granted_at_ms": entitlement.granted_at_ms,
                    "unused_for_days": days(now_ms - since),
                }),
            ));
        }
        if !entitlement.baseline {
            beyond.push(name);
        }
    }
    if !beyond.is_empty() {
        found.push(Detection::new(
            FindingKind::PrivilegeDrift,
            agent,
            json!({ "beyond_baseline": beyond }),
        ));
    }
    found
}

/// Applies the external-credential rules. An inactive credential is never flagged.
pub fn evaluate_external(
    credential: &ExternalFacts,
    settings: &Settings,
    now_ms: i64,
) -> Vec<Detection> {
    if !credential.active {
        return Vec::new();
    }
    let mut found = Vec::new();
    let evidence = |extra: Value| {
        let mut value = json!({
            "source_user": credential.source_user,
            "agent": credential.agent,
            "created_at_ms": credential.created_at_ms,
            "last_rotated_at_ms": credential.last_rotated_at_ms,
            "last_used_at_ms": credential.last_used_at_ms,
        });
        if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
            object.extend(extra);
        }
        value
    };

    if credential.agent.is_none() {
        found.push(Detection::new(
            FindingKind::UnmappedCredential,
            &credential.id,
            evidence(json!({})),
        ));
    }

    let rotated = credential.last_rotated_at_ms.or(credential.created_at_ms);
    if let Some(rotated) = rotated
        && now_ms - rotated > settings.static_credential_ms
    {
        found.push(Detection::new(
            FindingKind::StaticCredential,
            &credential.id,
            evidence(json!({"not_rotated_for_days": days(now_ms - rotated)})),
        ));
    }

    // A credential never used counts from its creation or last rotation.
    if let Some(since) = credential.last_used_at_ms.or(rotated)
        && now_ms - since >= settings.unused_credential_ms
    {
        found.push(Detection::new(
            FindingKind::UnusedCredential,
            &credential.id,
            evidence(json!({"unused_for_days": days(now_ms - since)})),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn healthy_agent() -> AgentFacts {
        AgentFacts {
            name: "crm-bot".into(),
            status: AgentStatus::Active,
            owner_email: "alice@example.org".into(),
            owner_departed_at_ms: None,
            created_at_ms: NOW - 100 * DAY_MS,
            status_changed_at_ms: NOW - 100 * DAY_MS,
            last_svid_activity_ms: Some(NOW - 60_000),
            last_attested_at_ms: Some(NOW - 100 * DAY_MS),
            live_svids: 2,
            live_external: 0,
            last_external_use_ms: None,
            pending_review: None,
            fork_seen_at_ms: None,
        }
    }

    fn kinds(found: &[Detection]) -> Vec<FindingKind> {
        found.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn healthy_agent_has_no_findings() {
        assert!(evaluate_agent(&healthy_agent(), &Settings::default(), NOW).is_empty());
    }

    #[test]
    fn departed_owner_suspends_after_grace() {
        let mut agent = healthy_agent();
        agent.owner_departed_at_ms = Some(NOW - DAY_MS);
        let found = evaluate_agent(&agent, &Settings::default(), NOW);
        assert_eq!(kinds(&found), [FindingKind::OwnerDeparted]);
        assert!(found[0].enforcement.is_empty(), "still within grace");

        agent.owner_departed_at_ms = Some(NOW - 7 * DAY_MS);
        let found = evaluate_agent(&agent, &Settings::default(), NOW);
        assert!(matches!(
            found[0].enforcement.as_slice(),
            [Enforcement::Suspend { .. }]
        ));

        agent.status = AgentStatus::Suspended;
        let found = evaluate_agent(&agent, &Settings::default(), NOW);
        assert_eq!(kinds(&found), [FindingKind::OwnerDeparted]);
        assert!(found[0].enforcement.is_empty(), "already suspended");
    }

    #[test]
    fn inactivity_counts_from_last_use() {
        let mut agent = healthy_agent();
        agent.last_svid_activity_ms = Some(NOW - 30 * DAY_MS);
        assert_eq!(
            kinds(&evaluate_agent(&agent, &Settings::default(), NOW)),
            [FindingKind::AgentInactive]
        );
        agent.last_external_use_ms = Some(NOW - DAY_MS);
        assert!(evaluate_agent(&agent, &Settings::default(), NOW).is_empty());
        agent.status = AgentStatus::Suspended;
        agent.last_external_use_ms = None;
        assert!(evaluate_agent(&agent, &Settings::default(), NOW).is_empty());
    }

    #[test]
    fn registered_agent_counts_from_registration() {
        let mut agent = healthy_agent();
        agent.status = AgentStatus::Registered;
        agent.last_svid_activity_ms = None;
        agent.live_svids = 0;
        agent.created_at_ms = NOW - 29 * DAY_MS;
        assert!(evaluate_agent(&agent, &Settings::default(), NOW).is_empty());
        agent.created_at_ms = NOW - 31 * DAY_MS;
        assert_eq!(
            kinds(&evaluate_agent(&agent, &Settings::default(), NOW)),
            [FindingKind::AgentInactive]
        );
    }

    #[test]
    fn decommissioned_agent_with_live_credential() {
        let mut agent = healthy_agent();
        agent.status = AgentStatus::Decommissioned;
        agent.status_changed_at_ms = NOW - DAY_MS;
        agent.last_svid_activity_ms = Some(NOW - 2 * DAY_MS);
        agent.live_svids = 0;
        assert!(evaluate_agent(&agent, &Settings::default(), NOW).is_empty());

        agent.live_external = 1;
        assert_eq!(
            kinds(&evaluate_agent(&agent, &Settings::default(), NOW)),
            [FindingKind::CredentialAfterDecommission]
        );
        agent.live_external = 0;
        agent.last_svid_activity_ms = Some(NOW - 1000);
        assert_eq!(
            kinds(&evaluate_agent(&agent, &Settings::default(), NOW)),
            [FindingKind::CredentialAfterDecommission]
        );
    }

    #[test]
    fn sprawl_counts_one_svid_line() {
        let mut agent = healthy_agent();
        agent.live_external = 3;
        assert_eq!(
            kinds(&evaluate_agent(&agent, &Settings::default(), NOW)),
            [FindingKind::CredentialSprawl]
        );
        agent.live_svids = 0;
        assert!(evaluate_agent(&agent, &Settings::default(), NOW).is_empty());
    }

    #[test]
    fn overdue_review_suspends_and_marks_item() {
        let mut agent = healthy_agent();
        agent.pending_review = Some((7, NOW + 1));
        assert!(evaluate_agent(&agent, &Settings::default(), NOW).is_empty());
        agent.pending_review = Some((7, NOW));
        let found = evaluate_agent(&agent, &Settings::default(), NOW);
        assert_eq!(kinds(&found), [FindingKind::ReviewOverdue]);
        assert_eq!(found[0].enforcement.len(), 2);
    }

    #[test]
    fn fork_clears_after_new_attestation() {
        let mut agent = healthy_agent();
        agent.fork_seen_at_ms = Some(NOW - DAY_MS);
        assert_eq!(
            kinds(&evaluate_agent(&agent, &Settings::default(), NOW)),
            [FindingKind::IdentityFork]
        );
        agent.last_attested_at_ms = Some(NOW - 1000);
        assert!(evaluate_agent(&agent, &Settings::default(), NOW).is_empty());
    }

    #[test]
    fn entitlements_unused_and_drift() {
        let entitlements = [
            EntitlementFacts {
                action: "invoke".into(),
                resource: "tool:crm/*".into(),
                baseline: true,
                granted_at_ms: NOW - 90 * DAY_MS,
                last_used_at_ms: Some(NOW - DAY_MS),
            },
            EntitlementFacts {
                action: "invoke".into(),
                resource: "tool:billing/*".into(),
                baseline: false,
                granted_at_ms: NOW - 31 * DAY_MS,
                last_used_at_ms: None,
            },
        ];
        let found = evaluate_entitlements(
            "crm-bot",
            AgentStatus::Active,
            &entitlements,
            &Settings::default(),
            NOW,
        );
        assert_eq!(
            kinds(&found),
            [FindingKind::UnusedEntitlement, FindingKind::PrivilegeDrift]
        );
        assert_eq!(found[0].subject, "crm-bot invoke:tool:billing/*");
        assert_eq!(
            found[1].evidence["beyond_baseline"][0],
            "invoke:tool:billing/*"
        );
    }

    #[test]
    fn external_credential_rules() {
        let mut credential = ExternalFacts {
            id: "aws:arn:aws:iam::1:user/bot#access_key_1".into(),
            source_user: "bot".into(),
            agent: Some("crm-bot".into()),
            active: true,
            created_at_ms: None,
            last_rotated_at_ms: Some(NOW - 10 * DAY_MS),
            last_used_at_ms: Some(NOW - DAY_MS),
        };
        let settings = Settings::default();
        assert!(evaluate_external(&credential, &settings, NOW).is_empty());

        credential.last_rotated_at_ms = Some(NOW - 91 * DAY_MS);
        assert_eq!(
            kinds(&evaluate_external(&credential, &settings, NOW)),
            [FindingKind::StaticCredential]
        );
        credential.last_rotated_at_ms = Some(NOW - 40 * DAY_MS);
        credential.last_used_at_ms = None;
        assert_eq!(
            kinds(&evaluate_external(&credential, &settings, NOW)),
            [FindingKind::UnusedCredential]
        );
        credential.last_used_at_ms = Some(NOW);
        credential.agent = None;
        assert_eq!(
            kinds(&evaluate_external(&credential, &settings, NOW)),
            [FindingKind::UnmappedCredential]
        );
        credential.active = false;
        assert!(evaluate_external(&credential, &settings, NOW).is_empty());
    }
}
