//! Custom policies and the policy-set version.
//!
//! Every change that alters what the decision engine must evaluate (a custom policy, a grant, a
//! revoked grant, a lifecycle change) bumps the `policy_version` counter in the same
//! transaction, so a decision can name the exact policy set it used.

use sigil_core::AuditRecord;
use sqlx::{Row, SqliteConnection};

use crate::{Store, StoreError, audit};

/// Counter bumped by every change to the effective policy set.
pub(crate) const POLICY_VERSION: &str = "policy_version";

/// A custom policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub id: String,
    pub text: String,
    pub created_at_ms: i64,
    pub created_by: String,
}

impl Store {
    /// Stores a validated custom policy; returns the new policy-set version.
    pub async fn add_policy(
        &self,
        id: &str,
        text: &str,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let exists = sqlx::query("SELECT 1 FROM policies WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "policy `{id}` already exists; remove it first"
            )));
        }
        sqlx::query("INSERT INTO policies (id, text, created_at, created_by) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(text)
            .bind(now_ms)
            .bind(&record.actor)
            .execute(&mut *tx)
            .await?;
        let version = bump_policy_version(&mut tx).await?;
        audit::append(&mut tx, with_version(record, version)).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Removes a custom policy; returns the new policy-set version.
    pub async fn remove_policy(&self, id: &str, record: AuditRecord) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let removed = sqlx::query("DELETE FROM policies WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("policy `{id}` not found")));
        }
        let version = bump_policy_version(&mut tx).await?;
        audit::append(&mut tx, with_version(record, version)).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Returns every custom policy, ordered by id.
    pub async fn policies(&self) -> Result<Vec<PolicyRow>, StoreError> {
        let rows = sqlx::query("SELECT id, text, created_at, created_by FROM policies ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PolicyRow {
                    id: row.try_get("id")?,
                    text: row.try_get("text")?,
                    created_at_ms: row.try_get("created_at")?,
                    created_by: row.try_get("created_by")?,
                })
            })
            .collect()
    }

    /// Returns the current policy-set version (0 before the first change).
    pub async fn policy_version(&self) -> Result<i64, StoreError> {
        let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE name = ?")
            .bind(POLICY_VERSION)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value.unwrap_or(0))
    }

    /// Records when entitlements were last used, as `(agent, action, resource, at_ms)`.
    ///
    /// Decisions are recorded in batches by the server, not one write per decision.
    pub async fn record_entitlement_use(
        &self,
        uses: &[(String, String, String, i64)],
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for (agent, action, resource, at_ms) in uses {
            sqlx::query(
                "UPDATE entitlements SET last_used_at = MAX(COALESCE(last_used_at, 0), ?)
                 WHERE agent = ? AND action = ? AND resource = ?",
            )
            .bind(at_ms)
            .bind(agent)
            .bind(action)
            .bind(resource)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

pub(crate) async fn bump_policy_version(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    crate::credentials::bump_counter(conn, POLICY_VERSION).await
}

fn with_version(mut record: AuditRecord, version: i64) -> AuditRecord {
    let mut details: serde_json::Value =
        serde_json::from_str(&record.details).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(object) = details.as_object_mut() {
        object.insert("policy_version".into(), serde_json::json!(version));
    }
    record.details = details.to_string();
    record
}
