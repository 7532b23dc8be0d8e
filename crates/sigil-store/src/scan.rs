//! The governance scan: reads the registry as a stream of facts, applies the rules of
//! `sigil-governance`, and writes the reconciled findings in batches.
//!
//! Memory grows with the number of findings, not with the size of the fleet: agents, external
//! credentials and entitlements are streamed one row at a time, each agent's certificates are
//! aggregated by SQLite over the `credentials_agent_activity` index, and SQLite returns only
//! candidate rows, so most healthy rows never reach Rust.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use serde_json::json;
use sigil_core::{AgentStatus, AuditRecord, CoreError};
use sigil_governance::FindingKind;
use sigil_governance::reconcile::{Existing, Plan, plan};
use sigil_governance::rules::{
    AgentFacts, Detection, Enforcement, EntitlementFacts, ExternalFacts, Settings, evaluate_agent,
    evaluate_entitlements, evaluate_external,
};
use sqlx::{Row, SqliteConnection};

use crate::{Store, StoreError, audit, findings};

/// Changes written per write transaction, so that other writers wait at most one batch.
const WRITE_BATCH: usize = 2_000;

/// What one scan found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Agents, external credentials and entitlements in the registry.
    pub agents: u64,
    pub external_credentials: u64,
    pub entitlements: u64,
    /// Rows SQLite selected as candidates and the rules examined.
    pub candidates: u64,
    pub opened: u64,
    pub refreshed: u64,
    pub resolved: u64,
    /// Agents suspended by this scan (owner departed past the grace period, review overdue).
    pub suspended: Vec<String>,
}

type ExistingMap = HashMap<(FindingKind, String), Existing>;

// The queries select candidates: rows that might break a rule, a superset of what the rules in
// `sigil-governance` flag. The rules decide. Filtering in SQLite keeps a scan of a large, mostly
// healthy fleet from decoding every row in Rust.

/// Candidate agents, with each agent's certificates, external credentials and pending review
/// aggregated by correlated subqueries over covering indexes. Parameters: ?1 now, ?2 the
/// inactivity cutoff, ?3 the sprawl limit, ?4 a JSON array of agents with an unresolved fork.
const AGENT_FACTS: &str = "
SELECT * FROM (
    SELECT a.name, a.status, a.owner_email, a.created_at, a.updated_at,
           CASE WHEN o.status = 'departed' THEN o.departed_at END AS departed_at,
           (SELECT MAX(MAX(c.issued_at, COALESCE(c.last_used_at, 0)))
            FROM credentials c WHERE c.agent = a.name) AS last_activity,
           (SELECT COUNT(*) FROM credentials c
            WHERE c.agent = a.name AND c.revoked_at IS NULL AND c.expires_at > ?1) AS live_svids,
           (SELECT COUNT(*) FROM external_credentials x
            WHERE x.agent = a.name AND x.active = 1) AS live_external,
           (SELECT MAX(x.last_used_at) FROM external_credentials x
            WHERE x.agent = a.name) AS last_external_use,
           (SELECT r.id FROM review_items r
            WHERE r.agent = a.name AND r.status IN ('open', 'overdue')
            ORDER BY r.due_at LIMIT 1) AS review_id,
           (SELECT MIN(r.due_at) FROM review_items r
            WHERE r.agent = a.name AND r.status IN ('open', 'overdue')) AS review_due
    FROM agents a CROSS JOIN owners o ON o.email = a.owner_email
    -- LIMIT -1 OFFSET 0 keeps SQLite from flattening this subquery into the filter below, which
    -- would copy each correlated subquery into every term that names its column and run it
    -- once per copy. CROSS JOIN keeps `agents` as the outer loop, read in storage order.
    LIMIT -1 OFFSET 0
)
WHERE (departed_at IS NOT NULL AND status != 'decommissioned')
   OR (status IN ('registered', 'active')
       AND COALESCE(MAX(last_activity, last_external_use), last_activity, last_external_use,
                    created_at) <= ?2)
   OR (status = 'decommissioned'
       AND (live_svids > 0 OR live_external > 0 OR last_activity > updated_at
            OR last_external_use > updated_at))
   OR (status != 'decommissioned' AND live_external + (live_svids > 0) > ?3)
   OR (status != 'decommissioned' AND review_due <= ?1)
   OR name IN (SELECT value FROM json_each(?4))";

/// Candidate external credentials: active, and unmapped, not rotated since the static cutoff
/// (?1) or not used since the unused cutoff (?2).
const EXTERNAL_FACTS: &str = "
SELECT x.id, x.source_user, a.name AS agent, x.created_at, x.last_rotated_at, x.last_used_at
FROM external_credentials x LEFT JOIN agents a ON a.name = x.agent
WHERE x.active = 1
  AND (a.name IS NULL
       OR COALESCE(x.last_rotated_at, x.created_at) < ?1
       OR COALESCE(x.last_used_at, x.last_rotated_at, x.created_at) <= ?2)";

/// Candidate entitlements of agents that are not decommissioned: every grant beyond the
/// baseline (drift lists them all), and every entitlement unused since the cutoff (?1).
const ENTITLEMENT_FACTS: &str = "
SELECT e.agent, a.status, e.action, e.resource, e.baseline, e.granted_at, e.last_used_at
FROM entitlements e JOIN agents a ON a.name = e.agent
WHERE a.status != 'decommissioned'
  AND (e.baseline = 0 OR COALESCE(e.last_used_at, e.granted_at) <= ?1)
ORDER BY e.agent";

/// Page cache of the scan's connection, in KiB (SQLite's negative `cache_size`), restored to
/// SQLite's default of 2,000 KiB afterwards.
const SCAN_CACHE_KIB: i64 = 64 * 1024;

impl Store {
    /// Runs every governance rule at `now_ms` and reconciles the findings.
    ///
    /// Suspensions that the rules call for are applied here, each audited as
    /// `agent.suspended` by `system`; the caller refreshes anything derived from agent status.
    pub async fn scan(&self, settings: &Settings, now_ms: i64) -> Result<ScanReport, StoreError> {
        let existing = self.unresolved_findings().await?;
        let forks = self.fork_attestations(&existing).await?;
        let mut report = ScanReport::default();
        let mut detections = Vec::new();

        let mut conn = self.pool.acquire().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA cache_size = -{SCAN_CACHE_KIB}"
        )))
        .execute(&mut *conn)
        .await?;
        self.scan_agents(
            &mut conn,
            settings,
            now_ms,
            &existing,
            &forks,
            &mut report,
            &mut detections,
        )
        .await?;
        scan_external(&mut conn, settings, now_ms, &mut report, &mut detections).await?;
        scan_entitlements(&mut conn, settings, now_ms, &mut report, &mut detections).await?;
        sqlx::query("PRAGMA cache_size = -2000")
            .execute(&mut *conn)
            .await?;
        let (agents, external, entitlements): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM agents), (SELECT COUNT(*) FROM external_credentials),
                    (SELECT COUNT(*) FROM entitlements)",
        )
        .fetch_one(&mut *conn)
        .await?;
        drop(conn);
        report.agents = u64::try_from(agents).unwrap_or(0);
        report.external_credentials = u64::try_from(external).unwrap_or(0);
        report.entitlements = u64::try_from(entitlements).unwrap_or(0);

        let plan = plan(existing, detections);
        self.apply(plan, now_ms, &mut report).await?;
        tracing::debug!(
            agents = report.agents,
            opened = report.opened,
            resolved = report.resolved,
            suspended = report.suspended.len(),
            "governance scan finished"
        );
        Ok(report)
    }

    async fn unresolved_findings(&self) -> Result<ExistingMap, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut rows = sqlx::query(
            "SELECT id, kind, subject, status, first_seen FROM findings
             WHERE status != 'resolved'",
        )
        .fetch(&mut *conn);
        let mut map = HashMap::new();
        while let Some(row) = rows.try_next().await? {
            let kind: String = row.try_get("kind")?;
            // A kind this version does not know is left alone.
            let Ok(kind) = kind.parse::<FindingKind>() else {
                continue;
            };
            let status: String = row.try_get("status")?;
            map.insert(
                (kind, row.try_get("subject")?),
                Existing {
                    id: row.try_get("id")?,
                    accepted: status == "accepted",
                    first_seen_ms: row.try_get("first_seen")?,
                },
            );
        }
        Ok(map)
    }

    /// Returns the newest attestation of every agent with an unresolved identity fork.
    async fn fork_attestations(
        &self,
        existing: &ExistingMap,
    ) -> Result<HashMap<String, Option<i64>>, StoreError> {
        let mut attested = HashMap::new();
        for (kind, agent) in existing.keys() {
            if *kind != FindingKind::IdentityFork {
                continue;
            }
            let at: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(issued_at) FROM credentials WHERE agent = ? AND parent_serial IS NULL",
            )
            .bind(agent)
            .fetch_one(&self.pool)
            .await?;
            attested.insert(agent.clone(), at);
        }
        Ok(attested)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one pass of the scan, called once; a struct would only rename the arguments"
    )]
    async fn scan_agents(
        &self,
        conn: &mut SqliteConnection,
        settings: &Settings,
        now_ms: i64,
        existing: &ExistingMap,
        forks: &HashMap<String, Option<i64>>,
        report: &mut ScanReport,
        detections: &mut Vec<Detection>,
    ) -> Result<(), StoreError> {
        let forked: Vec<&str> = forks.keys().map(String::as_str).collect();
        let forked =
            serde_json::to_string(&forked).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let mut rows = sqlx::query(AGENT_FACTS)
            .bind(now_ms)
            .bind(now_ms.saturating_sub(settings.agent_inactive_ms))
            .bind(i64::from(settings.sprawl_limit))
            .bind(forked)
            .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            report.candidates += 1;
            let name: String = row.try_get("name")?;
            let status: String = row.try_get("status")?;
            let status: AgentStatus = status
                .parse()
                .map_err(|err: CoreError| StoreError::Corrupt(err.to_string()))?;
            let review_id: Option<i64> = row.try_get("review_id")?;
            let review_due: Option<i64> = row.try_get("review_due")?;
            let fork_key = (FindingKind::IdentityFork, name.clone());
            let fork_seen_at_ms = existing.get(&fork_key).map(|f| f.first_seen_ms);
            let facts = AgentFacts {
                status,
                owner_email: row.try_get("owner_email")?,
                owner_departed_at_ms: row.try_get("departed_at")?,
                created_at_ms: row.try_get("created_at")?,
                status_changed_at_ms: row.try_get("updated_at")?,
                last_svid_activity_ms: row.try_get("last_activity")?,
                last_attested_at_ms: forks.get(&name).copied().flatten(),
                live_svids: u64::try_from(row.try_get::<i64, _>("live_svids")?).unwrap_or(0),
                live_external: u64::try_from(row.try_get::<i64, _>("live_external")?).unwrap_or(0),
                last_external_use_ms: row.try_get("last_external_use")?,
                pending_review: review_id.zip(review_due),
                fork_seen_at_ms,
                name,
            };
            detections.extend(evaluate_agent(&facts, settings, now_ms));
        }
        Ok(())
    }

    /// Writes `plan` in batches, then applies its enforcement.
    async fn apply(
        &self,
        plan: Plan,
        now_ms: i64,
        report: &mut ScanReport,
    ) -> Result<(), StoreError> {
        for batch in plan.open.chunks(WRITE_BATCH) {
            let mut tx = self.write().await?;
            for detection in batch {
                let kind = detection.kind;
                findings::open_in(
                    &mut tx,
                    kind.as_str(),
                    &detection.subject,
                    kind.severity().as_str(),
                    &detection.evidence,
                    now_ms,
                )
                .await?;
            }
            tx.commit().await?;
            report.opened += batch.len() as u64;
        }

        for batch in plan.refresh.chunks(WRITE_BATCH) {
            let mut tx = self.write().await?;
            for (id, detection) in batch {
                sqlx::query(
                    "UPDATE findings SET last_seen = ?, evidence = ?
                     WHERE id = ? AND status != 'resolved'",
                )
                .bind(now_ms)
                .bind(detection.evidence.to_string())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            report.refreshed += batch.len() as u64;
        }

        for batch in plan.resolve.chunks(WRITE_BATCH) {
            let mut tx = self.write().await?;
            for (id, _) in batch {
                if findings::resolve_id_in(&mut tx, *id, now_ms).await? {
                    report.resolved += 1;
                }
            }
            tx.commit().await?;
        }

        for enforcement in plan.enforce {
            match enforcement {
                Enforcement::MarkReviewOverdue { item_id } => {
                    let mut tx = self.write().await?;
                    sqlx::query(
                        "UPDATE review_items SET status = 'overdue' WHERE id = ? AND status = 'open'",
                    )
                    .bind(item_id)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                }
                Enforcement::Suspend {
                    agent,
                    reason,
                    because,
                } => {
                    if self.suspend_for(&agent, &reason, because, now_ms).await? {
                        report.suspended.push(agent);
                    }
                }
            }
        }
        Ok(())
    }

    /// Suspends `agent` if it may still obtain credentials and the condition of `because` still
    /// holds in this transaction; returns whether it did.
    async fn suspend_for(
        &self,
        agent: &str,
        reason: &str,
        because: FindingKind,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let condition = match because {
            FindingKind::OwnerDeparted => {
                "SELECT 1 FROM agents a JOIN owners o ON o.email = a.owner_email
                 WHERE a.name = ?1 AND o.status = 'departed'"
            }
            FindingKind::ReviewOverdue => {
                "SELECT 1 FROM review_items
                 WHERE agent = ?1 AND status IN ('open', 'overdue') AND due_at <= ?2"
            }
            _ => return Ok(false),
        };
        let holds = sqlx::query(condition)
            .bind(agent)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let accepted = sqlx::query(
            "SELECT 1 FROM findings WHERE kind = ? AND subject = ? AND status = 'accepted'",
        )
        .bind(because.as_str())
        .bind(agent)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !holds || accepted {
            return Ok(false);
        }
        let updated = sqlx::query(
            "UPDATE agents SET status = 'suspended', status_reason = ?, updated_at = ?
             WHERE name = ? AND status IN ('registered', 'active')",
        )
        .bind(reason)
        .bind(now_ms)
        .bind(agent)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        crate::policies::bump_policy_version(&mut tx).await?;
        let record = AuditRecord {
            at_ms: now_ms,
            actor: "system".into(),
            action: "agent.suspended".into(),
            subject: agent.to_owned(),
            outcome: "success".into(),
            details: json!({"reason": reason, "finding_kind": because.as_str()}).to_string(),
        };
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        tracing::info!(
            agent,
            reason,
            kind = because.as_str(),
            "agent suspended by the governance scan"
        );
        Ok(true)
    }
}

async fn scan_external(
    conn: &mut SqliteConnection,
    settings: &Settings,
    now_ms: i64,
    report: &mut ScanReport,
    detections: &mut Vec<Detection>,
) -> Result<(), StoreError> {
    let mut rows = sqlx::query(EXTERNAL_FACTS)
        .bind(now_ms.saturating_sub(settings.static_credential_ms))
        .bind(now_ms.saturating_sub(settings.unused_credential_ms))
        .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        report.candidates += 1;
        let facts = ExternalFacts {
            id: row.try_get("id")?,
            source_user: row.try_get("source_user")?,
            agent: row.try_get("agent")?,
            active: true,
            created_at_ms: row.try_get("created_at")?,
            last_rotated_at_ms: row.try_get("last_rotated_at")?,
            last_used_at_ms: row.try_get("last_used_at")?,
        };
        detections.extend(evaluate_external(&facts, settings, now_ms));
    }
    Ok(())
}

async fn scan_entitlements(
    conn: &mut SqliteConnection,
    settings: &Settings,
    now_ms: i64,
    report: &mut ScanReport,
    detections: &mut Vec<Detection>,
) -> Result<(), StoreError> {
    let mut rows = sqlx::query(ENTITLEMENT_FACTS)
        .bind(now_ms.saturating_sub(settings.unused_entitlement_ms))
        .fetch(&mut *conn);
    let mut current: Option<(String, AgentStatus)> = None;
    let mut group: Vec<EntitlementFacts> = Vec::new();
    while let Some(row) = rows.try_next().await? {
        report.candidates += 1;
        let agent: String = row.try_get("agent")?;
        if current.as_ref().is_some_and(|(name, _)| *name != agent) {
            if let Some((name, status)) = current.take() {
                detections.extend(evaluate_entitlements(
                    &name, status, &group, settings, now_ms,
                ));
            }
            group.clear();
        }
        if current.is_none() {
            let status: String = row.try_get("status")?;
            let status = status
                .parse()
                .map_err(|err: CoreError| StoreError::Corrupt(err.to_string()))?;
            current = Some((agent, status));
        }
        group.push(EntitlementFacts {
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            baseline: row.try_get::<i64, _>("baseline")? != 0,
            granted_at_ms: row.try_get("granted_at")?,
            last_used_at_ms: row.try_get("last_used_at")?,
        });
    }
    if let Some((name, status)) = current {
        detections.extend(evaluate_entitlements(
            &name, status, &group, settings, now_ms,
        ));
    }
    Ok(())
}
