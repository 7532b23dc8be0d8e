//! Agent routes: first attestation with a join token, and renewal over mutual TLS.

use axum::Json;
use axum::extract::State;
use serde_json::json;
use sigil_ca::csr::{CsrPublicKey, check_csr};
use sigil_ca::issue::{IssuedCertificate, SvidRequest, issue_svid};
use sigil_core::{AuditRecord, SpiffeId};
use sigil_proto::{AttestRequest, RenewRequest, SvidResponse};
use sigil_store::{NewCredential, RenewOutcome, StoreError, TokenState};
use time::OffsetDateTime;

use super::tokens::{TOKEN_LEN, TOKEN_PREFIX, token_hash, token_id};
use crate::clock::{rfc3339, rfc3339_ms, unix_ms};
use crate::error::ApiError;
use crate::extract::{AgentCaller, ApiJson, WorkloadCaller};
use crate::metrics;
use crate::state::AppState;

/// `POST /v1/agent/attest`: exchanges a join token and a CSR for the agent's first SVID.
pub(super) async fn attest(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AttestRequest>,
) -> Result<Json<SvidResponse>, ApiError> {
    let now = state.clock.now();
    let now_ms = unix_ms(now);

    let hash = checked_token_hash(&request.join_token)?;
    let agent_name = match state.store.join_token_state(&hash, now_ms).await? {
        TokenState::Valid { agent } => agent,
        TokenState::Unknown => {
            return super::gateway_svid::attest(&state, &hash, &request.csr, now).await;
        }
        TokenState::Used => return Err(invalid_token("the join token was already used")),
        TokenState::Expired => return Err(invalid_token("the join token has expired")),
    };
    let key = parse_csr(&request.csr)?;

    let agent = state.store.agent(&agent_name).await?;
    if !agent.status.may_obtain_credentials() {
        return Err(not_active(&agent.name, agent.status.as_str()));
    }
    let spiffe_id = parse_stored_id(&agent.spiffe_id)?;
    let lifetime = time::Duration::seconds(agent.ttl_secs);
    let issued = issue(&state, &spiffe_id, &key, lifetime, now)?;

    let record = AuditRecord {
        at_ms: now_ms,
        actor: "anonymous".into(),
        action: "svid.attested".into(),
        subject: agent.name.clone(),
        outcome: "success".into(),
        details: json!({
            "token_id": token_id(&hash),
            "serial": issued.serial_hex,
            "fingerprint": issued.fingerprint,
            "public_key_fingerprint": issued.public_key_fingerprint,
            "key_type": key.key_type().to_string(),
            "expires_at": rfc3339(issued.not_after),
        })
        .to_string(),
    };
    let credential = new_credential(&state, &spiffe_id, &agent.name, &issued, None);
    let outcome = match state
        .store
        .complete_attestation(&hash, &credential, now_ms, record)
        .await
    {
        Ok(outcome) => outcome,
        Err(StoreError::Rejected(message)) => return Err(invalid_token(&message)),
        Err(other) => return Err(other.into()),
    };
    if !outcome.revoked_serials.is_empty() {
        state.note_revocation();
        tracing::info!(
            agent = %agent.name,
            revoked = outcome.revoked_serials.len(),
            "new attestation replaced the previous certificate line"
        );
        let authority = state.authority.load();
        if let Err(err) = state.crl.refresh(&state.store, &authority, now).await {
            tracing::error!(error = %err, agent = %agent.name, "failed to regenerate the CRL after a revocation");
        }
    }

    if agent.status != sigil_core::AgentStatus::Active {
        super::refresh_engine(&state, &agent.name).await;
    }
    metrics::issuance();
    tracing::info!(agent = %agent.name, serial = %issued.serial_hex, "agent attested");
    Ok(Json(svid_response(
        &state,
        &spiffe_id,
        &credential.cert_pem,
        &issued,
    )))
}

/// `POST /v1/agent/renew`: issues the successor of the presented SVID (an agent's or a
/// gateway's) for a fresh key.
pub(super) async fn renew(
    State(state): State<AppState>,
    caller: WorkloadCaller,
    ApiJson(request): ApiJson<RenewRequest>,
) -> Result<Json<SvidResponse>, ApiError> {
    match caller {
        WorkloadCaller::Agent(caller) => renew_agent(state, caller, request).await,
        WorkloadCaller::Gateway { name, svid } => {
            super::gateway_svid::renew(&state, &name, &svid, &request.csr).await
        }
    }
}

async fn renew_agent(
    state: AppState,
    caller: AgentCaller,
    request: RenewRequest,
) -> Result<Json<SvidResponse>, ApiError> {
    let now = state.clock.now();
    let now_ms = unix_ms(now);

    let key = parse_csr(&request.csr)?;
    let agent = state.store.agent(caller.name.as_str()).await?;
    if agent.status != sigil_core::AgentStatus::Active {
        return Err(not_active(&agent.name, agent.status.as_str()));
    }
    let spiffe_id = parse_stored_id(&agent.spiffe_id)?;
    let lifetime = time::Duration::seconds(agent.ttl_secs);
    let issued = issue(&state, &spiffe_id, &key, lifetime, now)?;
    let parent = caller.svid.serial_hex.clone();

    let record = AuditRecord {
        at_ms: now_ms,
        actor: caller.svid.spiffe_id.to_string(),
        action: "svid.renewed".into(),
        subject: agent.name.clone(),
        outcome: "success".into(),
        details: json!({
            "serial": issued.serial_hex,
            "parent_serial": parent,
            "fingerprint": issued.fingerprint,
            "public_key_fingerprint": issued.public_key_fingerprint,
            "key_type": key.key_type().to_string(),
            "expires_at": rfc3339(issued.not_after),
        })
        .to_string(),
    };
    let fork_record = AuditRecord {
        at_ms: now_ms,
        actor: caller.svid.spiffe_id.to_string(),
        action: "identity.fork".into(),
        subject: agent.name.clone(),
        outcome: "denied".into(),
        details: String::new(),
    };
    let credential = new_credential(
        &state,
        &spiffe_id,
        &agent.name,
        &issued,
        Some(parent.clone()),
    );

    let outcome = state
        .store
        .complete_renewal(&parent, &credential, now_ms, record, fork_record)
        .await
        .map_err(|err| match err {
            StoreError::Rejected(message) => ApiError::forbidden("renewal_refused", message),
            other => other.into(),
        })?;

    match outcome {
        RenewOutcome::Issued => {
            metrics::renewal();
            tracing::info!(agent = %agent.name, serial = %issued.serial_hex, parent = %parent, "SVID renewed");
            Ok(Json(svid_response(
                &state,
                &spiffe_id,
                &credential.cert_pem,
                &issued,
            )))
        }
        RenewOutcome::Retry(existing) => {
            tracing::info!(agent = %agent.name, serial = %existing.serial, "renewal retried; returning the same successor");
            Ok(Json(SvidResponse {
                svid: existing.cert_pem,
                bundle: state.authority.load().bundle_pem().to_owned(),
                expires_at: rfc3339_ms(existing.expires_at_ms),
                spiffe_id: spiffe_id.to_string(),
                serial: existing.serial,
            }))
        }
        RenewOutcome::Fork {
            existing_successor,
            finding_id,
        } => {
            super::refresh_engine(&state, &agent.name).await;
            tracing::warn!(
                agent = %agent.name,
                presented_serial = %parent,
                existing_successor = %existing_successor,
                finding_id,
                "identity fork: one certificate renewed twice with different keys; agent suspended"
            );
            Err(ApiError::forbidden(
                "identity_fork",
                format!(
                    "certificate {parent} was already renewed (successor {existing_successor}) with a \
                     different key: two holders share this identity, so agent `{}` is suspended \
                     (finding {finding_id})",
                    agent.name
                ),
            ))
        }
    }
}

/// Checks a join token's shape before hashing it, so that junk never reaches the registry.
fn checked_token_hash(token: &str) -> Result<String, ApiError> {
    if token.len() != TOKEN_LEN || !token.starts_with(TOKEN_PREFIX) {
        return Err(invalid_token(&format!(
            "the join token is malformed: expected `{TOKEN_PREFIX}` followed by 43 base64url characters"
        )));
    }
    Ok(token_hash(token))
}

pub(super) fn invalid_token(message: &str) -> ApiError {
    ApiError::unauthorized(
        "invalid_join_token",
        format!(
            "{message}; create a new one with `sigil token create AGENT`, or \
             `sigil token create --gateway NAME` for a gateway"
        ),
    )
}

fn not_active(name: &str, status: &str) -> ApiError {
    ApiError::forbidden(
        "agent_not_active",
        format!("agent `{name}` is {status} and cannot obtain credentials"),
    )
}

/// Parses and checks a CSR; only its public key is used.
pub(super) fn parse_csr(pem: &str) -> Result<CsrPublicKey, ApiError> {
    check_csr(pem.as_bytes()).map_err(|err| ApiError::bad_request("invalid_csr", err.to_string()))
}

pub(super) fn parse_stored_id(id: &str) -> Result<SpiffeId, ApiError> {
    SpiffeId::parse(id).map_err(|err| {
        tracing::error!(error = %err, "stored SPIFFE ID is invalid");
        ApiError::internal()
    })
}

/// Issues an SVID under the current signing CA.
pub(super) fn issue(
    state: &AppState,
    spiffe_id: &SpiffeId,
    key: &CsrPublicKey,
    lifetime: time::Duration,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, ApiError> {
    let authority = state.authority.load();
    let request = SvidRequest {
        spiffe_id,
        public_key: key,
        lifetime,
        now,
        dns_names: &[],
        ip_addresses: &[],
    };
    Ok(issue_svid(&authority.signing, &request)?)
}

/// Builds the registry record of an issued certificate; `cert_pem` holds the whole chain.
pub(super) fn new_credential(
    state: &AppState,
    spiffe_id: &SpiffeId,
    agent: &str,
    issued: &IssuedCertificate,
    parent_serial: Option<String>,
) -> NewCredential {
    NewCredential {
        serial: issued.serial_hex.clone(),
        spiffe_id: spiffe_id.to_string(),
        agent: Some(agent.to_owned()),
        fingerprint: issued.fingerprint.clone(),
        public_key_fingerprint: issued.public_key_fingerprint.clone(),
        cert_pem: state.authority.load().chain_pem(&issued.pem),
        issued_at_ms: unix_ms(issued.not_before),
        expires_at_ms: unix_ms(issued.not_after),
        parent_serial,
    }
}

pub(super) fn svid_response(
    state: &AppState,
    spiffe_id: &SpiffeId,
    chain_pem: &str,
    issued: &IssuedCertificate,
) -> SvidResponse {
    SvidResponse {
        svid: chain_pem.to_owned(),
        bundle: state.authority.load().bundle_pem().to_owned(),
        expires_at: rfc3339(issued.not_after),
        spiffe_id: spiffe_id.to_string(),
        serial: issued.serial_hex.clone(),
    }
}
