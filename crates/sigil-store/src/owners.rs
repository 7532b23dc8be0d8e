//! Owners: the humans accountable for agents.

use sigil_core::AuditRecord;
use sqlx::Row;

use crate::rows::OwnerRow;
use crate::{Store, StoreError, audit};

impl Store {
    /// Adds an active owner.
    pub async fn add_owner(
        &self,
        email: &str,
        name: Option<&str>,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<OwnerRow, StoreError> {
        let mut tx = self.write().await?;

        let exists = sqlx::query("SELECT 1 FROM owners WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "owner `{email}` already exists"
            )));
        }

        sqlx::query(
            "INSERT INTO owners (email, name, status, created_at) VALUES (?, ?, 'active', ?)",
        )
        .bind(email)
        .bind(name)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;

        self.owner(email).await
    }

    /// Marks an owner as departed and opens an `owner-departed` finding for each of their agents
    /// that is not decommissioned. The agents keep running until transferred, or until the
    /// governance scan suspends them after the grace period.
    pub async fn depart_owner(
        &self,
        email: &str,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<OwnerRow, StoreError> {
        let mut tx = self.write().await?;

        let updated = sqlx::query(
            "UPDATE owners SET status = 'departed', departed_at = ? WHERE email = ? AND status = 'active'",
        )
        .bind(now_ms)
        .bind(email)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let known = sqlx::query("SELECT 1 FROM owners WHERE email = ?")
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match known {
                Some(_) => StoreError::Conflict(format!("owner `{email}` has already departed")),
                None => StoreError::NotFound(format!("owner `{email}` not found")),
            });
        }
        let orphaned = crate::offboarding::open_departed_in(&mut tx, email, now_ms).await?;
        let mut record = record;
        record.details = crate::offboarding::with_orphaned(&record.details, orphaned);
        audit::append(&mut tx, record).await?;
        tx.commit().await?;

        self.owner(email).await
    }

    /// Returns one owner.
    pub async fn owner(&self, email: &str) -> Result<OwnerRow, StoreError> {
        let row = sqlx::query(
            "SELECT email, name, status, created_at, departed_at FROM owners WHERE email = ?",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("owner `{email}` not found")))?;
        owner_from_row(&row)
    }

    /// Returns every owner, ordered by e-mail.
    pub async fn owners(&self) -> Result<Vec<OwnerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, name, status, created_at, departed_at FROM owners ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(owner_from_row).collect()
    }
}

fn owner_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<OwnerRow, StoreError> {
    Ok(OwnerRow {
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        created_at_ms: row.try_get("created_at")?,
        departed_at_ms: row.try_get("departed_at")?,
    })
}
