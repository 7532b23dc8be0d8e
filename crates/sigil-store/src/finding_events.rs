//! Accepting findings, and the outbox of finding events that webhooks deliver.

use sigil_core::AuditRecord;
use sqlx::SqliteConnection;

use crate::findings::finding_from_row;
use crate::rows::FindingRow;
use crate::{Store, StoreError, audit};

/// A finding that was opened or resolved and is not yet delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingEvent {
    pub id: i64,
    /// `opened` or `resolved`.
    pub event: String,
    pub at_ms: i64,
    pub finding: FindingRow,
}

/// Queues a webhook event for finding `finding_id`.
pub(crate) async fn queue_in(
    conn: &mut SqliteConnection,
    finding_id: i64,
    event: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO finding_events (finding_id, event, at) VALUES (?, ?, ?)")
        .bind(finding_id)
        .bind(event)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// Records the acceptance of an open finding's risk. The scan then leaves it accepted, and
    /// enforces nothing for it, while its condition holds.
    pub async fn accept_finding(
        &self,
        id: i64,
        reason: &str,
        record: AuditRecord,
    ) -> Result<FindingRow, StoreError> {
        let mut tx = self.write().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM findings WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        match status.as_deref() {
            None => return Err(StoreError::NotFound(format!("finding {id} not found"))),
            Some("open") => {}
            Some(other) => {
                return Err(StoreError::Conflict(format!(
                    "finding {id} is {other}; only an open finding can be accepted"
                )));
            }
        }
        sqlx::query(
            "UPDATE findings SET status = 'accepted', accepted_by = ?, accepted_at = ?,
                                 accepted_reason = ?
             WHERE id = ?",
        )
        .bind(&record.actor)
        .bind(record.at_ms)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        self.finding(id).await
    }

    /// Returns up to `limit` undelivered finding events, oldest first.
    pub async fn pending_finding_events(
        &self,
        limit: i64,
    ) -> Result<Vec<FindingEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id AS event_id, e.event, e.at, f.id, f.kind, f.subject, f.severity,
                    f.status, f.evidence, f.first_seen, f.last_seen, f.accepted_by,
                    f.accepted_at, f.accepted_reason, f.resolved_at
             FROM finding_events e JOIN findings f ON f.id = e.finding_id
             ORDER BY e.id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                use sqlx::Row;
                Ok(FindingEvent {
                    id: row.try_get("event_id")?,
                    event: row.try_get("event")?,
                    at_ms: row.try_get("at")?,
                    finding: finding_from_row(row)?,
                })
            })
            .collect()
    }

    /// Deletes delivered (or discarded) finding events up to and including `up_to_id`.
    pub async fn delete_finding_events(&self, up_to_id: i64) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let deleted = sqlx::query("DELETE FROM finding_events WHERE id <= ?")
            .bind(up_to_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }
}
