//! The revocation event log that gateways follow, and the consistent state they start from.
//!
//! Events are written by triggers (migration 0004) in the transaction of the change that causes
//! them: a revoked certificate, an agent's status change, a new policy-set version. Readers
//! learn about new events from [`Store::commits`], which ticks after every committed write.

use sqlx::{Row, SqliteConnection};
use tokio::sync::watch;

use crate::policies::{POLICY_VERSION, PolicyRow};
use crate::rows::AgentRow;
use crate::{Store, StoreError};

/// One stored revocation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    pub seq: i64,
    pub at_ms: i64,
    /// `revoke`, `agent-status` or `policy`.
    pub kind: String,
    pub agent: Option<String>,
    pub spiffe_id: Option<String>,
    pub status: Option<String>,
    pub serial: Option<String>,
    pub policy_version: Option<i64>,
}

/// The range of sequence numbers a client can resume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationWindow {
    /// The oldest stored event, or `latest + 1` when none is stored.
    pub oldest: i64,
    /// The newest event ever written (0 before the first), even if it was pruned since.
    pub latest: i64,
}

impl RevocationWindow {
    /// Returns true when every event after `since` is still stored.
    pub fn can_resume_from(&self, since: i64) -> bool {
        since >= self.oldest - 1 && since <= self.latest
    }
}

/// Everything a gateway decides with, read in one transaction.
#[derive(Debug, Clone)]
pub struct GatewaySnapshot {
    /// The newest revocation event this snapshot includes.
    pub seq: i64,
    pub policy_version: i64,
    pub agents: Vec<AgentRow>,
    /// `(agent, action, resource)`, ordered by agent.
    pub entitlements: Vec<(String, String, String)>,
    pub policies: Vec<PolicyRow>,
    /// Serials of revoked certificates that have not expired, ordered.
    pub revoked_serials: Vec<String>,
}

impl Store {
    /// Returns a receiver whose value changes after every committed write transaction.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Returns up to `limit` events with a sequence number above `after`, oldest first.
    pub async fn revocation_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RevocationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, agent, spiffe_id, status, serial, policy_version
             FROM revocation_events WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RevocationRow {
                    seq: row.try_get("seq")?,
                    at_ms: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    agent: row.try_get("agent")?,
                    spiffe_id: row.try_get("spiffe_id")?,
                    status: row.try_get("status")?,
                    serial: row.try_get("serial")?,
                    policy_version: row.try_get("policy_version")?,
                })
            })
            .collect()
    }

    /// Returns the oldest stored and the newest written sequence numbers.
    pub async fn revocation_window(&self) -> Result<RevocationWindow, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let latest = latest_seq(&mut conn).await?;
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM revocation_events")
            .fetch_one(&mut *conn)
            .await?;
        Ok(RevocationWindow {
            oldest: oldest.unwrap_or(latest + 1),
            latest,
        })
    }

    /// Deletes events older than `before_ms`, always keeping the newest one; returns how many
    /// were deleted. Clients that resume from a deleted event are told to resync.
    pub async fn prune_revocation_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let deleted = sqlx::query(
            "DELETE FROM revocation_events
             WHERE at < ? AND seq < (SELECT MAX(seq) FROM revocation_events)",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }

    /// Reads the gateway state in one read transaction, so that `seq`, the policy version and
    /// the rows all describe the same moment.
    pub async fn gateway_snapshot(&self, now_ms: i64) -> Result<GatewaySnapshot, StoreError> {
        let mut tx = self.pool.begin().await?;

        let seq = latest_seq(&mut tx).await?;
        let policy_version: Option<i64> =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = ?")
                .bind(POLICY_VERSION)
                .fetch_optional(&mut *tx)
                .await?;

        let sql = "SELECT name, spiffe_id, owner_email, purpose, status, status_reason, \
                   ttl_secs, created_at, updated_at FROM agents ORDER BY name";
        let agents = sqlx::query(sql)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(crate::agents::agent_from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let entitlements: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT agent, action, resource FROM entitlements ORDER BY agent, action, resource",
        )
        .fetch_all(&mut *tx)
        .await?;

        let policies =
            sqlx::query("SELECT id, text, created_at, created_by FROM policies ORDER BY id")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| {
                    Ok(PolicyRow {
                        id: row.try_get("id")?,
                        text: row.try_get("text")?,
                        created_at_ms: row.try_get("created_at")?,
                        created_by: row.try_get("created_by")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;

        let revoked_serials: Vec<String> = sqlx::query_scalar(
            "SELECT serial FROM credentials
             WHERE revoked_at IS NOT NULL AND expires_at > ? ORDER BY serial",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;

        tx.commit().await?;
        Ok(GatewaySnapshot {
            seq,
            policy_version: policy_version.unwrap_or(0),
            agents,
            entitlements,
            policies,
            revoked_serials,
        })
    }
}

/// The newest sequence number ever assigned, from SQLite's AUTOINCREMENT bookkeeping.
async fn latest_seq(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    let latest: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'revocation_events'")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(latest.unwrap_or(0))
}
