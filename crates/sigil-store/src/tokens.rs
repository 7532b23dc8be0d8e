//! Join tokens, stored only as SHA-256 hashes.

use sigil_core::{AgentStatus, AuditRecord};

use crate::agents::agent_in;
use crate::{Store, StoreError, audit};

/// What the registry knows about a presented join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// Unused and unexpired, for this agent.
    Valid { agent: String },
    /// No token has this hash.
    Unknown,
    /// Already used (or burnt by a decommission).
    Used,
    /// Past its expiry.
    Expired,
}

impl Store {
    /// Records a new join token for an agent that may still obtain credentials.
    pub async fn create_join_token(
        &self,
        token_hash: &str,
        agent: &str,
        now_ms: i64,
        expires_at_ms: i64,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;

        let row = agent_in(&mut tx, agent).await?;
        if !matches!(row.status, AgentStatus::Registered | AgentStatus::Active) {
            return Err(StoreError::Rejected(format!(
                "agent `{agent}` is {} and cannot be given a join token",
                row.status
            )));
        }

        sqlx::query(
            "INSERT INTO join_tokens (token_hash, agent, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(agent)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Looks a token up by its hash without consuming it.
    pub async fn join_token_state(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<TokenState, StoreError> {
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT agent, expires_at, used_at FROM join_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;

        Ok(match row {
            None => TokenState::Unknown,
            Some((_, _, Some(_))) => TokenState::Used,
            Some((_, expires_at, None)) if expires_at <= now_ms => TokenState::Expired,
            Some((agent, _, None)) => TokenState::Valid { agent },
        })
    }
}
