//! Entitlement reviews: campaigns of review items that owners certify.

use serde_json::json;
use sigil_core::AuditRecord;
use sigil_governance::FindingKind;

use crate::findings::ReviewItemRow;
use crate::{Store, StoreError, audit, findings};

/// What certifying an agent changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certification {
    pub item_id: i64,
    /// `certified` (kept) or `dropped` (grants beyond the baseline removed).
    pub status: String,
    /// Entitlements removed, as `ACTION:RESOURCE`.
    pub dropped: Vec<String>,
}

impl Store {
    /// Opens one review item, due at `due_at_ms`, for every active agent (of `owner`, when
    /// given) without a pending item; returns the items opened.
    pub async fn start_review(
        &self,
        owner: Option<&str>,
        due_at_ms: i64,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<Vec<ReviewItemRow>, StoreError> {
        let mut tx = self.write().await?;
        if let Some(owner) = owner {
            let known = sqlx::query("SELECT 1 FROM owners WHERE email = ?")
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?;
            if known.is_none() {
                return Err(StoreError::NotFound(format!("owner `{owner}` not found")));
            }
        }
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO review_items (agent, owner_email, reason, status, opened_at, due_at)
             SELECT a.name, a.owner_email, 'review', 'open', ?1, ?2 FROM agents a
             WHERE a.status = 'active' AND (?3 IS NULL OR a.owner_email = ?3)
               AND NOT EXISTS (SELECT 1 FROM review_items r
                               WHERE r.agent = a.name AND r.status IN ('open', 'overdue'))
             RETURNING id",
        )
        .bind(now_ms)
        .bind(due_at_ms)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let mut record = record;
        record.details =
            json!({"owner": owner, "due_at_ms": due_at_ms, "items": ids.len()}).to_string();
        audit::append(&mut tx, record).await?;
        tx.commit().await?;

        let opened: std::collections::HashSet<i64> = ids.into_iter().collect();
        Ok(self
            .review_items()
            .await?
            .into_iter()
            .filter(|item| opened.contains(&item.id))
            .collect())
    }

    /// Closes the agent's pending review item. With `drop_drift`, every grant beyond the
    /// baseline is removed first. Resolves the agent's `review-overdue` finding; a suspended
    /// agent stays suspended until resumed.
    pub async fn certify_review(
        &self,
        agent: &str,
        drop_drift: bool,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<Certification, StoreError> {
        let mut tx = self.write().await?;
        crate::agents::agent_in(&mut tx, agent).await?;
        let item_id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM review_items WHERE agent = ? AND status IN ('open', 'overdue')
             ORDER BY due_at LIMIT 1",
        )
        .bind(agent)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(item_id) = item_id else {
            return Err(StoreError::NotFound(format!(
                "agent `{agent}` has no open review item; start one with `sigil review start`"
            )));
        };

        let mut dropped = Vec::new();
        if drop_drift {
            let removed: Vec<(String, String)> = sqlx::query_as(
                "DELETE FROM entitlements WHERE agent = ? AND baseline = 0 RETURNING action, resource",
            )
            .bind(agent)
            .fetch_all(&mut *tx)
            .await?;
            for (action, resource) in removed {
                let subject = format!("{agent} {action}:{resource}");
                findings::resolve_in(&mut tx, "unused-entitlement", &subject, now_ms).await?;
                dropped.push(format!("{action}:{resource}"));
            }
            dropped.sort();
            if !dropped.is_empty() {
                crate::policies::bump_policy_version(&mut tx).await?;
            }
        }
        let status = if drop_drift { "dropped" } else { "certified" };
        // Every pending item of the agent is closed: one certification covers them all.
        sqlx::query(
            "UPDATE review_items SET status = ?, closed_at = ?
             WHERE agent = ? AND status IN ('open', 'overdue')",
        )
        .bind(status)
        .bind(now_ms)
        .bind(agent)
        .execute(&mut *tx)
        .await?;
        findings::resolve_in(&mut tx, FindingKind::ReviewOverdue.as_str(), agent, now_ms).await?;
        if drop_drift {
            findings::update_drift_in(&mut tx, agent, now_ms).await?;
        } else {
            // Keeping the grants certifies the drift: its finding becomes an accepted risk.
            sqlx::query(
                "UPDATE findings SET status = 'accepted', accepted_by = ?, accepted_at = ?,
                                     accepted_reason = ?
                 WHERE kind = 'privilege-drift' AND subject = ? AND status = 'open'",
            )
            .bind(&record.actor)
            .bind(now_ms)
            .bind(format!("kept in review item {item_id}"))
            .bind(agent)
            .execute(&mut *tx)
            .await?;
        }

        let mut record = record;
        record.details =
            json!({"review_item": item_id, "decision": status, "dropped": dropped}).to_string();
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(Certification {
            item_id,
            status: status.to_owned(),
            dropped,
        })
    }
}
