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

    Ok(sqlx::query_scalar(
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
    .await?)
}

impl Store {
    /// Returns findings, optionally of one kind, newest first.
    pub async fn findings(&self, kind: Option<&str>) -> Result<Vec<FindingRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, subject, severity, status, evidence, first_seen, last_seen
             FROM findings WHERE (?1 IS NULL OR kind = ?1) ORDER BY id DESC",
        )
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;

        rows.iter()
            .map(|row| {
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
                })
            })
            .collect()
    }
}
