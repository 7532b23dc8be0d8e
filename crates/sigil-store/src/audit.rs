//! The audit chain in the database.

use sigil_core::{AuditChainError, AuditRecord, ChainedAuditRecord, GENESIS_HASH, verify_chain};
use sqlx::{Row, SqliteConnection};

use crate::{Store, StoreError};

/// Appends `record` after the current chain head, inside the caller's write transaction.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    record: AuditRecord,
) -> Result<ChainedAuditRecord, StoreError> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (prev_seq, prev_hash) = match head {
        Some(row) => (
            row.try_get::<i64, _>("seq")?,
            row.try_get::<String, _>("hash")?,
        ),
        None => (0, GENESIS_HASH.to_owned()),
    };

    let event = ChainedAuditRecord::chain(record, prev_seq, &prev_hash);

    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, subject, outcome, details, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.seq)
    .bind(event.record.at_ms)
    .bind(&event.record.actor)
    .bind(&event.record.action)
    .bind(&event.record.subject)
    .bind(&event.record.outcome)
    .bind(&event.record.details)
    .bind(&event.prev_hash)
    .bind(&event.hash)
    .execute(&mut *conn)
    .await?;

    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(event.seq)
    .bind(&event.hash)
    .execute(&mut *conn)
    .await?;

    Ok(event)
}

impl Store {
    /// Appends one audit event in a transaction of its own (denials, rejected requests).
    pub async fn record_audit(&self, record: AuditRecord) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let event = append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(event.seq)
    }

    /// Appends several audit events in one transaction, in order.
    pub async fn record_audits(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for record in records {
            append(&mut tx, record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns the audit events with a sequence number above `after`, oldest first.
    pub async fn audit_events(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChainedAuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, outcome, details, prev_hash, hash
             FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;

        rows.iter().map(event_from_row).collect()
    }

    /// Checks the whole chain and its recorded head; returns the number of events.
    ///
    /// The outer error is a database failure; the inner one names the first broken event.
    pub async fn verify_audit_chain(&self) -> Result<Result<i64, AuditChainError>, StoreError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        let head = match head {
            Some(row) => Some((
                row.try_get::<i64, _>("seq")?,
                row.try_get::<String, _>("hash")?,
            )),
            None => None,
        };

        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, outcome, details, prev_hash, hash
             FROM audit_events ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let head_ref = head.as_ref().map(|(seq, hash)| (*seq, hash.as_str()));
        Ok(verify_chain(events, head_ref))
    }
}

fn event_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ChainedAuditRecord, StoreError> {
    Ok(ChainedAuditRecord {
        seq: row.try_get("seq")?,
        record: AuditRecord {
            at_ms: row.try_get("at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            subject: row.try_get("subject")?,
            outcome: row.try_get("outcome")?,
            details: row.try_get("details")?,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
