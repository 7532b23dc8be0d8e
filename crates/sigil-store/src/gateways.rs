//! Gateways: enforcement points registered by name, their join tokens and their certificates.
//!
//! A gateway has one live line of certificates, like an agent. Its credentials are stored in
//! `credentials` with a NULL `agent` and the gateway's SPIFFE ID.

use sigil_core::AuditRecord;
use sqlx::{Row, SqliteConnection};

use crate::credentials::{bump_counter, credential_in, insert_credential, successor_in};
use crate::rows::{CredentialRow, NewCredential};
use crate::{Store, StoreError, audit};

/// A gateway as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRow {
    pub name: String,
    pub spiffe_id: String,
    /// Extra DNS names and IP addresses of its certificates, beside the loopback names.
    pub sans: Vec<String>,
    /// `registered` (no certificate yet) or `active`.
    pub status: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A gateway join token about to be recorded, with the gateway it registers on first use.
#[derive(Debug, Clone, Copy)]
pub struct NewGatewayToken<'a> {
    pub gateway: &'a str,
    /// `spiffe://<td>/gateway/<name>`.
    pub spiffe_id: &'a str,
    /// Extra DNS names and IP addresses; recorded when the gateway is registered.
    pub sans: &'a [String],
    /// SHA-256 of the token, the only form in which it is stored.
    pub token_hash: &'a str,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// The registry's record of a presented gateway join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayTokenState {
    /// Unused and unexpired, for this gateway.
    Valid { gateway: String },
    /// No gateway token has this hash.
    Unknown,
    /// Already used.
    Used,
    /// Past its expiry.
    Expired,
}

/// The result of a gateway renewal that reached the registry.
#[derive(Debug, Clone)]
pub enum GatewayRenewOutcome {
    /// The new certificate was recorded as the successor of the presented one.
    Issued,
    /// The presented certificate already had this successor with the same public key: a retry.
    Retry(Box<CredentialRow>),
}

impl Store {
    /// Registers the gateway if it is new, then records a join token for it.
    ///
    /// `sans` are recorded at registration. For a known gateway they must be empty or equal to
    /// the recorded ones, so that a token never silently changes what its certificates cover.
    pub async fn create_gateway_token(
        &self,
        token: &NewGatewayToken<'_>,
        record: AuditRecord,
    ) -> Result<GatewayRow, StoreError> {
        let NewGatewayToken {
            gateway,
            spiffe_id,
            sans,
            token_hash,
            created_at_ms: now_ms,
            expires_at_ms,
        } = *token;
        let mut tx = self.write().await?;

        match gateway_in(&mut tx, gateway).await? {
            Some(existing) if !sans.is_empty() && existing.sans != sans => {
                return Err(StoreError::Conflict(format!(
                    "gateway `{gateway}` is registered with SANs {:?}; create its token without \
                     --san, or use a new gateway name for other names",
                    existing.sans
                )));
            }
            Some(_) => {}
            None => {
                let sans_json = serde_json::to_string(sans)
                    .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                sqlx::query(
                    "INSERT INTO gateways (name, spiffe_id, sans, status, created_at, updated_at)
                     VALUES (?, ?, ?, 'registered', ?, ?)",
                )
                .bind(gateway)
                .bind(spiffe_id)
                .bind(sans_json)
                .bind(now_ms)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
        }

        sqlx::query(
            "INSERT INTO gateway_join_tokens (token_hash, gateway, created_at, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(gateway)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, record).await?;
        let row = gateway_in(&mut tx, gateway)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("gateway `{gateway}` not found")))?;
        tx.commit().await?;
        Ok(row)
    }

    /// Looks a gateway token up by its hash without consuming it.
    pub async fn gateway_token_state(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<GatewayTokenState, StoreError> {
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT gateway, expires_at, used_at FROM gateway_join_tokens WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;

        Ok(match row {
            None => GatewayTokenState::Unknown,
            Some((_, _, Some(_))) => GatewayTokenState::Used,
            Some((_, expires_at, None)) if expires_at <= now_ms => GatewayTokenState::Expired,
            Some((gateway, _, None)) => GatewayTokenState::Valid { gateway },
        })
    }

    /// Returns one gateway.
    pub async fn gateway(&self, name: &str) -> Result<GatewayRow, StoreError> {
        let mut conn = self.pool.acquire().await?;
        gateway_in(&mut conn, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("gateway `{name}` not found")))
    }

    /// Consumes a gateway join token, marks the gateway active and records its new certificate.
    ///
    /// The gateway's previous certificates are revoked: a new attestation starts a new line.
    /// Returns the serials revoked.
    pub async fn complete_gateway_attestation(
        &self,
        token_hash: &str,
        credential: &NewCredential,
        now_ms: i64,
        record: AuditRecord,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.write().await?;

        let gateway: Option<String> = sqlx::query_scalar(
            "UPDATE gateway_join_tokens SET used_at = ?
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING gateway",
        )
        .bind(now_ms)
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(gateway) = gateway else {
            return Err(StoreError::Rejected(
                "the join token is unknown, used or expired".into(),
            ));
        };
        let row = gateway_in(&mut tx, &gateway)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("gateway `{gateway}` not found")))?;
        if credential.agent.is_some() || credential.spiffe_id != row.spiffe_id {
            return Err(StoreError::Rejected(
                "the join token belongs to another identity".into(),
            ));
        }

        sqlx::query("UPDATE gateways SET status = 'active', updated_at = ? WHERE name = ?")
            .bind(now_ms)
            .bind(&gateway)
            .execute(&mut *tx)
            .await?;
        let superseded = revoke_live_by_id(
            &mut tx,
            &row.spiffe_id,
            "superseded by a new attestation",
            now_ms,
        )
        .await?;
        insert_credential(&mut tx, credential).await?;
        let mut record = record;
        record.details = crate::agents::with_revoked(&record.details, &superseded);
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(superseded)
    }

    /// Records the successor of a gateway certificate, or returns the existing one on a retry.
    ///
    /// A second successor with a different key means two holders of one gateway identity, so it
    /// is rejected with [`StoreError::Rejected`] and the attempt is audited with
    /// `fork_record`.
    pub async fn complete_gateway_renewal(
        &self,
        gateway: &str,
        parent_serial: &str,
        credential: &NewCredential,
        record: AuditRecord,
        fork_record: AuditRecord,
    ) -> Result<GatewayRenewOutcome, StoreError> {
        let mut tx = self.write().await?;

        let row = gateway_in(&mut tx, gateway)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("gateway `{gateway}` not found")))?;
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
        if parent.agent.is_some() || parent.spiffe_id != row.spiffe_id {
            return Err(StoreError::Rejected(format!(
                "certificate with serial {parent_serial} does not belong to gateway `{gateway}`"
            )));
        }

        if let Some(successor) = successor_in(&mut tx, parent_serial).await? {
            if successor.public_key_fingerprint == credential.public_key_fingerprint {
                return Ok(GatewayRenewOutcome::Retry(Box::new(successor)));
            }
            let mut fork_record = fork_record;
            fork_record.details = serde_json::json!({
                "presented_serial": parent_serial,
                "existing_successor_serial": successor.serial,
                "rejected_public_key": credential.public_key_fingerprint,
            })
            .to_string();
            audit::append(&mut tx, fork_record).await?;
            tx.commit().await?;
            return Err(StoreError::Rejected(format!(
                "certificate {parent_serial} was already renewed (successor {}) with a different \
                 key: two holders share gateway `{gateway}`",
                successor.serial
            )));
        }

        insert_credential(&mut tx, credential).await?;
        audit::append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(GatewayRenewOutcome::Issued)
    }
}

/// Revokes the unexpired certificates of an identity without an agent row (a gateway); returns
/// their serials and bumps the CRL number.
async fn revoke_live_by_id(
    conn: &mut SqliteConnection,
    spiffe_id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let serials: Vec<String> = sqlx::query_scalar(
        "UPDATE credentials SET revoked_at = ?, revoke_reason = ?
         WHERE spiffe_id = ? AND agent IS NULL AND revoked_at IS NULL AND expires_at > ?
         RETURNING serial",
    )
    .bind(now_ms)
    .bind(reason)
    .bind(spiffe_id)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;

    if !serials.is_empty() {
        bump_counter(conn, crate::credentials::CRL_NUMBER).await?;
    }
    Ok(serials)
}

async fn gateway_in(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<Option<GatewayRow>, StoreError> {
    let row = sqlx::query(
        "SELECT name, spiffe_id, sans, status, created_at, updated_at FROM gateways WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let sans: String = row.try_get("sans")?;
    Ok(Some(GatewayRow {
        name: row.try_get("name")?,
        spiffe_id: row.try_get("spiffe_id")?,
        sans: serde_json::from_str(&sans)
            .map_err(|err| StoreError::Corrupt(format!("gateway `{name}` SANs: {err}")))?,
        status: row.try_get("status")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    }))
}
