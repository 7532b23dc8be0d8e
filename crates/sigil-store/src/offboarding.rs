//! Owner offboarding: a departed owner's agents become findings until transferred.

use serde_json::json;
use sigil_core::{AgentStatus, AuditRecord};
use sigil_governance::FindingKind;
use sqlx::SqliteConnection;

use crate::agents::agent_in;
use crate::rows::AgentRow;
use crate::{Store, StoreError, audit, findings};

/// Opens an `owner-departed` finding for each agent of `email` that is not decommissioned;
/// returns how many.
pub(crate) async fn open_departed_in(
    conn: &mut SqliteConnection,
    email: &str,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let agents: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, status FROM agents WHERE owner_email = ? AND status != 'decommissioned'
         ORDER BY name",
    )
    .bind(email)
    .fetch_all(&mut *conn)
    .await?;
    let kind = FindingKind::OwnerDeparted;
    for (agent, status) in &agents {
        let evidence = json!({
            "owner": email,
            "owner_departed_at_ms": now_ms,
            "status": status,
        });
        findings::open_in(
            conn,
            kind.as_str(),
            agent,
            kind.severity().as_str(),
            &evidence,
            now_ms,
        )
        .await?;
    }
    Ok(agents.len())
}

impl Store {
    /// Moves `agent` to the active owner `new_owner`, resolves its `owner-departed` finding and
    /// hands its pending review items to the new owner.
    ///
    /// A suspended agent stays suspended: the new owner resumes it once they have checked it.
    pub async fn transfer_agent(
        &self,
        agent: &str,
        new_owner: &str,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<AgentRow, StoreError> {
        let mut tx = self.write().await?;
        let current = agent_in(&mut tx, agent).await?;
        if current.status == AgentStatus::Decommissioned {
            return Err(StoreError::Rejected(format!(
                "agent `{agent}` is decommissioned and cannot be transferred"
            )));
        }
        if current.owner_email == new_owner {
            return Err(StoreError::Conflict(format!(
                "agent `{agent}` already belongs to `{new_owner}`"
            )));
        }
        let owner_status: Option<String> =
            sqlx::query_scalar("SELECT status FROM owners WHERE email = ?")
                .bind(new_owner)
                .fetch_optional(&mut *tx)
                .await?;
        match owner_status.as_deref() {
            None => {
                return Err(StoreError::NotFound(format!(
                    "owner `{new_owner}` not found: add it first with `sigil owner add`"
                )));
            }
            Some("active") => {}
            Some(_) => {
                return Err(StoreError::Rejected(format!(
                    "owner `{new_owner}` has departed: transfer the agent to an active owner"
                )));
            }
        }

        sqlx::query("UPDATE agents SET owner_email = ?, updated_at = ? WHERE name = ?")
            .bind(new_owner)
            .bind(now_ms)
            .bind(agent)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE review_items SET owner_email = ? WHERE agent = ? AND status IN ('open', 'overdue')",
        )
        .bind(new_owner)
        .bind(agent)
        .execute(&mut *tx)
        .await?;
        findings::resolve_in(&mut tx, FindingKind::OwnerDeparted.as_str(), agent, now_ms).await?;
        crate::policies::bump_policy_version(&mut tx).await?;
        let mut record = record;
        record.details = json!({"from": current.owner_email, "to": new_owner}).to_string();
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        self.agent(agent).await
    }
}

/// Adds the number of agents left without an active owner to an audit event's JSON details.
pub(crate) fn with_orphaned(details: &str, orphaned: usize) -> String {
    let mut value: serde_json::Value = serde_json::from_str(details).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("orphaned_agents".into(), json!(orphaned));
    }
    value.to_string()
}
