//! The external credential inventory: metadata of static credentials held in other systems.

use std::collections::HashSet;

use serde_json::json;
use sigil_core::AuditRecord;
use sigil_governance::import::{ExternalCredential, Mapping};

use crate::{Store, StoreError, audit};

/// One imported credential after mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalCredentialRow {
    pub id: String,
    pub source: String,
    pub source_user: String,
    /// The registered agent; `None` when the entry maps to none.
    pub agent: Option<String>,
    pub kind: String,
    pub active: bool,
    pub created_at_ms: Option<i64>,
    pub last_rotated_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub scopes: Vec<String>,
}

/// Counts of one import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Credentials stored (new or updated).
    pub imported: u64,
    /// Of those, the credentials that map to no registered agent.
    pub unmapped: u64,
    /// Entries (by line) that map to no registered agent.
    pub unmapped_lines: Vec<u64>,
}

impl Store {
    /// Stores `credentials` from `source`, mapping each to an agent by `mapping` or by name.
    /// An id seen before is updated in place. The import is audited with its counts only.
    pub async fn import_external_credentials(
        &self,
        source: &str,
        credentials: &[ExternalCredential],
        mapping: &Mapping,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.write().await?;
        let agents: HashSet<String> = sqlx::query_scalar("SELECT name FROM agents")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();

        let mut outcome = ImportOutcome::default();
        for credential in credentials {
            let wanted = mapping.agent_for(&credential.source_user);
            let agent = agents.get(wanted).cloned();
            if agent.is_none() {
                outcome.unmapped += 1;
                outcome.unmapped_lines.push(credential.line);
            }
            let scopes = serde_json::to_string(&credential.scopes)
                .map_err(|err| StoreError::Corrupt(err.to_string()))?;
            sqlx::query(
                "INSERT INTO external_credentials (id, source, source_user, agent, kind, active,
                     created_at, last_rotated_at, last_used_at, scopes, imported_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET source = excluded.source,
                     source_user = excluded.source_user, agent = excluded.agent,
                     kind = excluded.kind, active = excluded.active,
                     created_at = excluded.created_at, last_rotated_at = excluded.last_rotated_at,
                     last_used_at = excluded.last_used_at, scopes = excluded.scopes,
                     imported_at = excluded.imported_at",
            )
            .bind(&credential.id)
            .bind(source)
            .bind(&credential.source_user)
            .bind(&agent)
            .bind(&credential.kind)
            .bind(i64::from(credential.active))
            .bind(credential.created_at_ms)
            .bind(credential.last_rotated_at_ms)
            .bind(credential.last_used_at_ms)
            .bind(scopes)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            outcome.imported += 1;
        }
        let mut record = record;
        let mut details: serde_json::Value =
            serde_json::from_str(&record.details).unwrap_or_else(|_| json!({}));
        details["source"] = json!(source);
        details["imported"] = json!(outcome.imported);
        details["unmapped"] = json!(outcome.unmapped);
        record.details = details.to_string();
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Returns the external credentials mapped to `agent`, or every one when `agent` is `None`.
    pub async fn external_credentials(
        &self,
        agent: Option<&str>,
    ) -> Result<Vec<ExternalCredentialRow>, StoreError> {
        let rows: Vec<ExternalRowTuple> = sqlx::query_as(
            "SELECT id, source, source_user, agent, kind, active, created_at, last_rotated_at,
                    last_used_at, scopes
             FROM external_credentials WHERE (?1 IS NULL OR agent = ?1) ORDER BY id",
        )
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(ExternalCredentialRow {
                    id: row.0,
                    source: row.1,
                    source_user: row.2,
                    agent: row.3,
                    kind: row.4,
                    active: row.5 != 0,
                    created_at_ms: row.6,
                    last_rotated_at_ms: row.7,
                    last_used_at_ms: row.8,
                    scopes: serde_json::from_str(&row.9)
                        .map_err(|err| StoreError::Corrupt(err.to_string()))?,
                })
            })
            .collect()
    }
}

type ExternalRowTuple = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
);
