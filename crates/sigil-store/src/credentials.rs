//! Issued X.509-SVIDs: attestation, renewal with lineage, fork detection and revocation.

use serde_json::json;
use sigil_core::{AgentStatus, AuditRecord};
use sqlx::{Row, SqliteConnection};

use crate::agents::agent_in;
use crate::rows::{AttestOutcome, CredentialRow, NewCredential, RenewOutcome};
use crate::{Store, StoreError, audit, findings};

/// Counter incremented on every revocation; it numbers the CRL.
pub(crate) const CRL_NUMBER: &str = "crl_number";

impl Store {
    /// Consumes a join token and records the agent's first (or a fresh) credential.
    ///
    /// The token is consumed with a conditional update, so of two concurrent attestations with
    /// one token exactly one succeeds.
    pub async fn complete_attestation(
        &self,
        token_hash: &str,
        credential: &NewCredential,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<AttestOutcome, StoreError> {
        let mut tx = self.write().await?;

        let agent: Option<String> = sqlx::query_scalar(
            "UPDATE join_tokens SET used_at = ?
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING agent",
        )
        .bind(now_ms)
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(agent) = agent else {
            return Err(StoreError::Rejected(
                "the join token is unknown, used or expired".into(),
            ));
        };
        if credential.agent.as_deref() != Some(agent.as_str()) {
            return Err(StoreError::Rejected(
                "the join token belongs to another agent".into(),
            ));
        }

        let row = agent_in(&mut tx, &agent).await?;
        let next = row.status.attest().map_err(|_| {
            StoreError::Rejected(format!(
                "agent `{agent}` is {} and cannot attest",
                row.status
            ))
        })?;
        sqlx::query("UPDATE agents SET status = ?, updated_at = ? WHERE name = ?")
            .bind(next.as_str())
            .bind(now_ms)
            .bind(&agent)
            .execute(&mut *tx)
            .await?;
        if next != row.status {
            crate::policies::bump_policy_version(&mut tx).await?;
        }

        // A new attestation starts a new line, so the previous one is cut off: one agent has one
        // live line of certificates.
        let superseded =
            revoke_live(&mut tx, &agent, "superseded by a new attestation", now_ms).await?;
        insert_credential(&mut tx, credential).await?;
        let mut record = record;
        record.details = crate::agents::with_revoked(&record.details, &superseded);
        audit::append(&mut tx, record).await?;
        tx.commit().await?;

        Ok(AttestOutcome {
            agent: self.agent(&agent).await?,
            revoked_serials: superseded,
        })
    }

    /// Records the successor of `parent_serial`, or detects a retry or a fork.
    ///
    /// `fork_record` is the audit event written if this renewal turns out to be a fork; its
    /// details gain the serials involved.
    pub async fn complete_renewal(
        &self,
        parent_serial: &str,
        credential: &NewCredential,
        now_ms: i64,
        record: AuditRecord,
        fork_record: AuditRecord,
    ) -> Result<RenewOutcome, StoreError> {
        let mut tx = self.write().await?;

        let parent = credential_in(&mut tx, parent_serial)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("certificate with serial {parent_serial} not found"))
            })?;
        if parent.revoked_at_ms.is_some() {
            return Err(StoreError::Rejected(format!(
                "certificate with serial {parent_serial} is revoked"
            )));
        }
        let agent_name = parent.agent.clone().ok_or_else(|| {
            StoreError::Rejected("only agent certificates can be renewed here".into())
        })?;
        let agent = agent_in(&mut tx, &agent_name).await?;
        if agent.status != AgentStatus::Active {
            return Err(StoreError::Rejected(format!(
                "agent `{agent_name}` is {} and cannot renew",
                agent.status
            )));
        }

        if let Some(successor) = successor_in(&mut tx, parent_serial).await? {
            if successor.public_key_fingerprint == credential.public_key_fingerprint {
                return Ok(RenewOutcome::Retry(Box::new(successor)));
            }
            let finding_id = record_fork(
                &mut tx,
                &agent_name,
                &parent,
                &successor,
                credential,
                now_ms,
                fork_record,
            )
            .await?;
            tx.commit().await?;
            return Ok(RenewOutcome::Fork {
                existing_successor: successor.serial,
                finding_id,
            });
        }

        insert_credential(&mut tx, credential).await?;
        sqlx::query("UPDATE credentials SET last_used_at = ? WHERE serial = ?")
            .bind(now_ms)
            .bind(parent_serial)
            .execute(&mut *tx)
            .await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(RenewOutcome::Issued)
    }

    /// Records a certificate issued outside an attestation or renewal, such as an admin identity.
    pub async fn record_credential(
        &self,
        credential: &NewCredential,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_credential(&mut tx, credential).await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns one credential by serial.
    pub async fn credential(&self, serial: &str) -> Result<Option<CredentialRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        credential_in(&mut conn, serial).await
    }

    /// Returns an agent's credentials, newest first.
    pub async fn agent_credentials(&self, agent: &str) -> Result<Vec<CredentialRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, spiffe_id, agent, kind, fingerprint, public_key_fingerprint, cert_pem,
                    issued_at, expires_at, revoked_at, revoke_reason, parent_serial, last_used_at
             FROM credentials WHERE agent = ? ORDER BY rowid DESC",
        )
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// Returns `(serial, revoked_at_ms)` of every revoked credential that has not expired.
    pub async fn revoked_unexpired(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT serial, revoked_at FROM credentials
             WHERE revoked_at IS NOT NULL AND expires_at > ? ORDER BY serial",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Returns the current CRL number (0 before the first revocation).
    pub async fn crl_number(&self) -> Result<i64, StoreError> {
        let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE name = ?")
            .bind(CRL_NUMBER)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value.unwrap_or(0))
    }
}

/// Suspends the agent, opens an `identity-fork` finding and audits both serials.
async fn record_fork(
    conn: &mut SqliteConnection,
    agent: &str,
    parent: &CredentialRow,
    successor: &CredentialRow,
    rejected: &NewCredential,
    now_ms: i64,
    fork_record: AuditRecord,
) -> Result<i64, StoreError> {
    let reason = format!(
        "identity fork: certificate {} was renewed twice with different keys",
        parent.serial
    );
    sqlx::query(
        "UPDATE agents SET status = 'suspended', status_reason = ?, updated_at = ? WHERE name = ?",
    )
    .bind(&reason)
    .bind(now_ms)
    .bind(agent)
    .execute(&mut *conn)
    .await?;
    // A status change alters decisions, so the decision engine must see a newer policy version.
    crate::policies::bump_policy_version(conn).await?;

    let evidence = json!({
        "presented_serial": parent.serial,
        "existing_successor_serial": successor.serial,
        "existing_successor_public_key": successor.public_key_fingerprint,
        "rejected_public_key": rejected.public_key_fingerprint,
        "agent_suspended": true,
    });
    let finding_id =
        findings::open_in(conn, "identity-fork", agent, "critical", &evidence, now_ms).await?;

    let mut record = fork_record;
    let mut details = evidence;
    details["finding_id"] = json!(finding_id);
    record.details = details.to_string();
    audit::append(conn, record).await?;
    Ok(finding_id)
}

pub(crate) async fn insert_credential(
    conn: &mut SqliteConnection,
    credential: &NewCredential,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credentials (serial, spiffe_id, agent, kind, fingerprint, public_key_fingerprint,
                                  cert_pem, issued_at, expires_at, parent_serial)
         VALUES (?, ?, ?, 'x509-svid', ?, ?, ?, ?, ?, ?)",
    )
    .bind(&credential.serial)
    .bind(&credential.spiffe_id)
    .bind(&credential.agent)
    .bind(&credential.fingerprint)
    .bind(&credential.public_key_fingerprint)
    .bind(&credential.cert_pem)
    .bind(credential.issued_at_ms)
    .bind(credential.expires_at_ms)
    .bind(&credential.parent_serial)
    .execute(&mut *conn)
    .await
    .map_err(|err| match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
            "a concurrent renewal of the same certificate won; retry the request".into(),
        ),
        other => StoreError::Database(other),
    })?;
    Ok(())
}

/// Revokes the agent's unexpired credentials; returns their serials and bumps the CRL number.
pub(crate) async fn revoke_live(
    conn: &mut SqliteConnection,
    agent: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let serials: Vec<String> = sqlx::query_scalar(
        "UPDATE credentials SET revoked_at = ?, revoke_reason = ?
         WHERE agent = ? AND revoked_at IS NULL AND expires_at > ?
         RETURNING serial",
    )
    .bind(now_ms)
    .bind(reason)
    .bind(agent)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;

    if !serials.is_empty() {
        bump_counter(conn, CRL_NUMBER).await?;
    }
    Ok(serials)
}

pub(crate) async fn bump_counter(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO counters (name, value) VALUES (?, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?)
}

pub(crate) async fn credential_in(
    conn: &mut SqliteConnection,
    serial: &str,
) -> Result<Option<CredentialRow>, StoreError> {
    let sql = "SELECT serial, spiffe_id, agent, kind, fingerprint, public_key_fingerprint, \
               cert_pem, issued_at, expires_at, revoked_at, revoke_reason, parent_serial, \
               last_used_at FROM credentials WHERE serial = ?";
    let row = sqlx::query(sql)
        .bind(serial)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(credential_from_row).transpose()
}

pub(crate) async fn successor_in(
    conn: &mut SqliteConnection,
    parent_serial: &str,
) -> Result<Option<CredentialRow>, StoreError> {
    let sql = "SELECT serial, spiffe_id, agent, kind, fingerprint, public_key_fingerprint, \
               cert_pem, issued_at, expires_at, revoked_at, revoke_reason, parent_serial, \
               last_used_at FROM credentials WHERE parent_serial = ?";
    let row = sqlx::query(sql)
        .bind(parent_serial)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(credential_from_row).transpose()
}

fn credential_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<CredentialRow, StoreError> {
    Ok(CredentialRow {
        serial: row.try_get("serial")?,
        spiffe_id: row.try_get("spiffe_id")?,
        agent: row.try_get("agent")?,
        kind: row.try_get("kind")?,
        fingerprint: row.try_get("fingerprint")?,
        public_key_fingerprint: row.try_get("public_key_fingerprint")?,
        cert_pem: row.try_get("cert_pem")?,
        issued_at_ms: row.try_get("issued_at")?,
        expires_at_ms: row.try_get("expires_at")?,
        revoked_at_ms: row.try_get("revoked_at")?,
        revoke_reason: row.try_get("revoke_reason")?,
        parent_serial: row.try_get("parent_serial")?,
        last_used_at_ms: row.try_get("last_used_at")?,
    })
}
