//! Governance findings: one open finding per kind and subject.

use serde_json::Value;
use sqlx::{Row, SqliteConnection};

use crate::rows::FindingRow;
use crate::{Store, StoreError};

/// Opens a finding, or refreshes the open one of the same kind and subject; returns its id.
pub(crate) async fn open_in(
    conn: &mut SqliteConnection,
    kind: &str,
    subject: &str,
    severity: &str,
    evidence: &Value,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM findings WHERE kind = ? AND subject = ? AND status = 'open'",
    )
    .bind(kind)
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;

    if let Some(id) = existing {
        sqlx::query("UPDATE findings SET last_seen = ?, evidence = ?, severity = ? WHERE id = ?")
            .bind(now_ms)
            .bind(evidence.to_string())
            .bind(severity)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        return Ok(id);
    }

    // A new occurrence supersedes an accepted finding of the same kind and subject.
    let superseded: Vec<i64> = sqlx::query_scalar(
        "UPDATE findings SET status = 'resolved', resolved_at = ?1
         WHERE kind = ?2 AND subject = ?3 AND status = 'accepted' RETURNING id",
    )
    .bind(now_ms)
    .bind(kind)
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    for id in superseded {
        crate::finding_events::queue_in(conn, id, "resolved", now_ms).await?;
    }

    let id = sqlx::query_scalar(
        "INSERT INTO findings (kind, subject, severity, status, evidence, first_seen, last_seen)
         VALUES (?, ?, ?, 'open', ?, ?, ?) RETURNING id",
    )
    .bind(kind)
    .bind(subject)
    .bind(severity)
    .bind(evidence.to_string())
    .bind(now_ms)
    .bind(now_ms)
    .fetch_one(&mut *conn)
    .await?;
    crate::finding_events::queue_in(conn, id, "opened", now_ms).await?;
    Ok(id)
}

/// Resolves the open finding of `kind` about `subject`, if any; returns whether one was open.
pub(crate) async fn resolve_in(
    conn: &mut SqliteConnection,
    kind: &str,
    subject: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let resolved: Option<i64> = sqlx::query_scalar(
        "UPDATE findings SET status = 'resolved', last_seen = ?1, resolved_at = ?1
         WHERE kind = ?2 AND subject = ?3 AND status = 'open' RETURNING id",
    )
    .bind(now_ms)
    .bind(kind)
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = resolved else {
        return Ok(false);
    };
    crate::finding_events::queue_in(conn, id, "resolved", now_ms).await?;
    Ok(true)
}

/// Resolves the finding `id` if it is open or accepted; returns whether it was.
pub(crate) async fn resolve_id_in(
    conn: &mut SqliteConnection,
    id: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let resolved = sqlx::query(
        "UPDATE findings SET status = 'resolved', last_seen = ?1, resolved_at = ?1
         WHERE id = ?2 AND status IN ('open', 'accepted')",
    )
    .bind(now_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if resolved.rows_affected() == 0 {
        return Ok(false);
    }
    crate::finding_events::queue_in(conn, id, "resolved", now_ms).await?;
    Ok(true)
}

/// Opens or resolves the `privilege-drift` finding of `agent`: open while it holds anything
/// beyond its baseline.
pub(crate) async fn update_drift_in(
    conn: &mut SqliteConnection,
    agent: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let extra: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, resource FROM entitlements WHERE agent = ? AND baseline = 0 ORDER BY action, resource",
    )
    .bind(agent)
    .fetch_all(&mut *conn)
    .await?;

    if extra.is_empty() {
        resolve_in(conn, "privilege-drift", agent, now_ms).await?;
        return Ok(());
    }
    let beyond: Vec<String> = extra.iter().map(|(a, r)| format!("{a}:{r}")).collect();
    let evidence = serde_json::json!({ "beyond_baseline": beyond });
    open_in(conn, "privilege-drift", agent, "medium", &evidence, now_ms).await?;
    open_review_in(conn, agent, "privilege-drift", now_ms, DRIFT_REVIEW_DUE_MS).await?;
    Ok(())
}

/// How long an owner has to certify an agent whose entitlements drifted: 7 days.
const DRIFT_REVIEW_DUE_MS: i64 = 7 * 86_400_000;

/// Opens a review item for `agent` unless one is open already.
pub(crate) async fn open_review_in(
    conn: &mut SqliteConnection,
    agent: &str,
    reason: &str,
    now_ms: i64,
    due_in_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO review_items (agent, owner_email, reason, status, opened_at, due_at)
         SELECT name, owner_email, ?, 'open', ?, ? FROM agents WHERE name = ?
         ON CONFLICT DO NOTHING",
    )
    .bind(reason)
    .bind(now_ms)
    .bind(now_ms + due_in_ms)
    .bind(agent)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A review item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItemRow {
    pub id: i64,
    pub agent: String,
    pub owner_email: String,
    pub reason: String,
    pub status: String,
    pub opened_at_ms: i64,
    pub due_at_ms: i64,
}

impl Store {
    /// Returns review items, newest first.
    pub async fn review_items(&self) -> Result<Vec<ReviewItemRow>, StoreError> {
        let rows: Vec<(i64, String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, agent, owner_email, reason, status, opened_at, due_at FROM review_items ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, agent, owner_email, reason, status, opened_at_ms, due_at_ms)| ReviewItemRow {
                    id,
                    agent,
                    owner_email,
                    reason,
                    status,
                    opened_at_ms,
                    due_at_ms,
                },
            )
            .collect())
    }
}

impl Store {
    /// Opens an `unused-entitlement` finding for every entitlement not used for `period_ms`
    /// (counting from its grant when never used), and resolves those used since. Returns the
    /// number of findings opened or refreshed, and the number resolved.
    pub async fn scan_unused_entitlements(
        &self,
        now_ms: i64,
        period_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        let mut tx = self.write().await?;
        let rows: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT e.agent, e.action, e.resource, e.granted_at, e.last_used_at
             FROM entitlements e JOIN agents a ON a.name = e.agent
             WHERE a.status != 'decommissioned'",
        )
        .fetch_all(&mut *tx)
        .await?;

        let (mut opened, mut resolved) = (0, 0);
        for (agent, action, resource, granted_at, last_used_at) in rows {
            let subject = format!("{agent} {action}:{resource}");
            let since = last_used_at.unwrap_or(granted_at);
            if now_ms - since >= period_ms {
                let evidence = serde_json::json!({
                    "agent": agent,
                    "entitlement": format!("{action}:{resource}"),
                    "last_used_at_ms": last_used_at,
                    "granted_at_ms": granted_at,
                    "unused_for_days": (now_ms - since) / 86_400_000,
                });
                open_in(
                    &mut tx,
                    "unused-entitlement",
                    &subject,
                    "low",
                    &evidence,
                    now_ms,
                )
                .await?;
                opened += 1;
            } else if resolve_in(&mut tx, "unused-entitlement", &subject, now_ms).await? {
                resolved += 1;
            }
        }
        tx.commit().await?;
        Ok((opened, resolved))
    }

    /// Returns findings, optionally of one kind, newest first.
    pub async fn findings(&self, kind: Option<&str>) -> Result<Vec<FindingRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            finding_columns!(),
            " FROM findings WHERE (?1 IS NULL OR kind = ?1) ORDER BY id DESC"
        ))
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(finding_from_row).collect()
    }

    /// Returns one finding.
    pub async fn finding(&self, id: i64) -> Result<FindingRow, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            finding_columns!(),
            " FROM findings WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("finding {id} not found")))?;
        finding_from_row(&row)
    }
}

/// Columns [`finding_from_row`] reads, as a literal for `concat!`.
macro_rules! finding_columns {
    () => {
        "id, kind, subject, severity, status, evidence, first_seen, last_seen, accepted_by, \
         accepted_at, accepted_reason, resolved_at"
    };
}
pub(crate) use finding_columns;

pub(crate) fn finding_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<FindingRow, StoreError> {
    let evidence: String = row.try_get("evidence")?;
    Ok(FindingRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        severity: row.try_get("severity")?,
        status: row.try_get("status")?,
        evidence: serde_json::from_str(&evidence)
            .map_err(|err| StoreError::Corrupt(err.to_string()))?,
        first_seen_ms: row.try_get("first_seen")?,
        last_seen_ms: row.try_get("last_seen")?,
        accepted_by: row.try_get("accepted_by")?,
        accepted_at_ms: row.try_get("accepted_at")?,
        accepted_reason: row.try_get("accepted_reason")?,
        resolved_at_ms: row.try_get("resolved_at")?,
    })
}
