//! Agents, their lifecycle and their entitlements.

use sigil_core::{AgentStatus, AuditRecord, CoreError};
use sqlx::{Row, SqliteConnection};

use crate::rows::{AgentRow, EntitlementRow, NewAgent};
use crate::{Store, StoreError, audit};

/// A lifecycle change, checked against the agent's current status inside the transaction.
pub type Transition = fn(AgentStatus) -> Result<AgentStatus, CoreError>;

impl Store {
    /// Registers an agent under an active owner, with its baseline entitlements.
    pub async fn register_agent(
        &self,
        agent: &NewAgent,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<AgentRow, StoreError> {
        let mut tx = self.write().await?;

        let owner_status: Option<String> =
            sqlx::query_scalar("SELECT status FROM owners WHERE email = ?")
                .bind(&agent.owner_email)
                .fetch_optional(&mut *tx)
                .await?;
        match owner_status.as_deref() {
            None => {
                return Err(StoreError::NotFound(format!(
                    "owner `{}` not found: add it first with `sigil owner add`",
                    agent.owner_email
                )));
            }
            Some("active") => {}
            Some(_) => {
                return Err(StoreError::Rejected(format!(
                    "owner `{}` has departed: register the agent to an active owner",
                    agent.owner_email
                )));
            }
        }

        let exists = sqlx::query("SELECT 1 FROM agents WHERE name = ?")
            .bind(&agent.name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "agent `{}` already exists",
                agent.name
            )));
        }

        sqlx::query(
            "INSERT INTO agents (name, spiffe_id, owner_email, purpose, status, ttl_secs, created_at, updated_at)
             VALUES (?, ?, ?, ?, 'registered', ?, ?, ?)",
        )
        .bind(&agent.name)
        .bind(&agent.spiffe_id)
        .bind(&agent.owner_email)
        .bind(&agent.purpose)
        .bind(agent.ttl_secs)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;

        for (action, resource) in &agent.entitlements {
            insert_entitlement(&mut tx, &agent.name, action, resource, true, now_ms).await?;
        }
        crate::policies::bump_policy_version(&mut tx).await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;

        self.agent(&agent.name).await
    }

    /// Returns one agent.
    pub async fn agent(&self, name: &str) -> Result<AgentRow, StoreError> {
        let mut conn = self.pool.acquire().await?;
        agent_in(&mut conn, name).await
    }

    /// Returns every agent, ordered by name.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let sql = "SELECT name, spiffe_id, owner_email, purpose, status, status_reason, \
                   ttl_secs, created_at, updated_at FROM agents ORDER BY name";
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Returns an agent's entitlements, ordered by action and resource.
    pub async fn entitlements(&self, agent: &str) -> Result<Vec<EntitlementRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT action, resource, baseline, granted_at, last_used_at FROM entitlements
             WHERE agent = ? ORDER BY action, resource",
        )
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;

        rows.iter()
            .map(|row| {
                Ok(EntitlementRow {
                    action: row.try_get("action")?,
                    resource: row.try_get("resource")?,
                    baseline: row.try_get::<i64, _>("baseline")? != 0,
                    granted_at_ms: row.try_get("granted_at")?,
                    last_used_at_ms: row.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Grants an entitlement beyond the baseline. Granting one the agent holds is a conflict.
    pub async fn grant(
        &self,
        agent: &str,
        action: &str,
        resource: &str,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;

        let current = agent_in(&mut tx, agent).await?;
        if current.status == AgentStatus::Decommissioned {
            return Err(StoreError::Rejected(format!(
                "agent `{agent}` is decommissioned and cannot be granted anything"
            )));
        }
        let held = sqlx::query(
            "SELECT 1 FROM entitlements WHERE agent = ? AND action = ? AND resource = ?",
        )
        .bind(agent)
        .bind(action)
        .bind(resource)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_some() {
            return Err(StoreError::Conflict(format!(
                "agent `{agent}` already holds `{action}:{resource}`"
            )));
        }

        insert_entitlement(&mut tx, agent, action, resource, false, now_ms).await?;
        crate::findings::update_drift_in(&mut tx, agent, now_ms).await?;
        crate::policies::bump_policy_version(&mut tx).await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an entitlement from an agent's current set.
    pub async fn revoke_grant(
        &self,
        agent: &str,
        action: &str,
        resource: &str,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        let now_ms = record.at_ms;
        let mut tx = self.write().await?;

        agent_in(&mut tx, agent).await?;
        let removed =
            sqlx::query("DELETE FROM entitlements WHERE agent = ? AND action = ? AND resource = ?")
                .bind(agent)
                .bind(action)
                .bind(resource)
                .execute(&mut *tx)
                .await?;
        if removed.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "agent `{agent}` does not hold `{action}:{resource}`"
            )));
        }
        crate::findings::update_drift_in(&mut tx, agent, now_ms).await?;
        let subject = format!("{agent} {action}:{resource}");
        crate::findings::resolve_in(&mut tx, "unused-entitlement", &subject, now_ms).await?;
        crate::policies::bump_policy_version(&mut tx).await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns every agent's entitlements as `(agent, action, resource, baseline)`.
    pub async fn all_entitlements(
        &self,
    ) -> Result<Vec<(String, String, String, bool)>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT agent, action, resource, baseline FROM entitlements ORDER BY agent",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(a, b, c, d)| (a, b, c, d != 0))
            .collect())
    }

    /// Applies a lifecycle change. A change to `decommissioned` also revokes every live
    /// credential and every unused join token of the agent, in the same transaction.
    ///
    /// Returns the updated agent and the serials revoked by this change.
    pub async fn change_agent_status(
        &self,
        name: &str,
        transition: Transition,
        reason: Option<&str>,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<(AgentRow, Vec<String>), StoreError> {
        let mut tx = self.write().await?;

        let current = agent_in(&mut tx, name).await?;
        let next = transition(current.status)
            .map_err(|err| StoreError::Conflict(format!("agent `{name}`: {err}")))?;

        sqlx::query(
            "UPDATE agents SET status = ?, status_reason = ?, updated_at = ? WHERE name = ?",
        )
        .bind(next.as_str())
        .bind(reason)
        .bind(now_ms)
        .bind(name)
        .execute(&mut *tx)
        .await?;

        let revoked = if next == AgentStatus::Decommissioned {
            revoke_everything(&mut tx, name, reason.unwrap_or("decommissioned"), now_ms).await?
        } else {
            Vec::new()
        };

        crate::policies::bump_policy_version(&mut tx).await?;
        let mut record = record;
        record.details = with_revoked(&record.details, &revoked);
        audit::append(&mut tx, record).await?;
        tx.commit().await?;

        Ok((self.agent(name).await?, revoked))
    }
}

/// Revokes the agent's unexpired credentials and burns its unused join tokens.
async fn revoke_everything(
    conn: &mut SqliteConnection,
    agent: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let serials = crate::credentials::revoke_live(conn, agent, reason, now_ms).await?;

    sqlx::query("UPDATE join_tokens SET used_at = ? WHERE agent = ? AND used_at IS NULL")
        .bind(now_ms)
        .bind(agent)
        .execute(&mut *conn)
        .await?;

    Ok(serials)
}

/// Adds the revoked serials to an audit event's JSON details.
pub(crate) fn with_revoked(details: &str, revoked: &[String]) -> String {
    if revoked.is_empty() {
        return details.to_owned();
    }
    let mut value: serde_json::Value =
        serde_json::from_str(details).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("revoked_serials".into(), serde_json::json!(revoked));
    }
    value.to_string()
}

async fn insert_entitlement(
    conn: &mut SqliteConnection,
    agent: &str,
    action: &str,
    resource: &str,
    baseline: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO entitlements (agent, action, resource, baseline, granted_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (agent, action, resource) DO NOTHING",
    )
    .bind(agent)
    .bind(action)
    .bind(resource)
    .bind(i64::from(baseline))
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Reads one agent on an open connection or transaction.
pub(crate) async fn agent_in(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<AgentRow, StoreError> {
    let sql = "SELECT name, spiffe_id, owner_email, purpose, status, status_reason, \
               ttl_secs, created_at, updated_at FROM agents WHERE name = ?";
    let row = sqlx::query(sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("agent `{name}` not found")))?;
    agent_from_row(&row)
}

pub(crate) fn agent_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AgentRow, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(AgentRow {
        name: row.try_get("name")?,
        spiffe_id: row.try_get("spiffe_id")?,
        owner_email: row.try_get("owner_email")?,
        purpose: row.try_get("purpose")?,
        status: status
            .parse()
            .map_err(|err: CoreError| StoreError::Corrupt(err.to_string()))?,
        status_reason: row.try_get("status_reason")?,
        ttl_secs: row.try_get("ttl_secs")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}
