//! Gateway SVIDs: attestation with a gateway join token and renewal over mutual TLS.
//!
//! A gateway's certificate has its SPIFFE ID as the only URI SAN, like every SVID, and also the
//! DNS and IP SANs that ordinary HTTPS clients check: `localhost`, `127.0.0.1`, `::1` and those
//! recorded when the gateway was registered. None of them come from the CSR.

use axum::Json;
use serde_json::json;
use sigil_ca::issue::{IssuedCertificate, SvidRequest, issue_svid};
use sigil_ca::verify::LeafSvid;
use sigil_core::{AgentName, AuditRecord, SpiffeId};
use sigil_proto::SvidResponse;
use sigil_store::{GatewayRenewOutcome, GatewayTokenState, NewCredential, StoreError};
use time::OffsetDateTime;

use super::agent::{invalid_token, parse_csr, parse_stored_id, svid_response};
use super::gateway::gateway_names;
use super::tokens::token_id;
use crate::clock::{rfc3339, rfc3339_ms, unix_ms};
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;

/// Lifetime of a gateway SVID; the gateway renews it at half-life.
const GATEWAY_SVID_LIFETIME: time::Duration = time::Duration::minutes(15);

/// Attests a gateway with a gateway join token (already hashed) and a CSR.
pub(super) async fn attest(
    state: &AppState,
    token_hash: &str,
    csr: &str,
    now: OffsetDateTime,
) -> Result<Json<SvidResponse>, ApiError> {
    let now_ms = unix_ms(now);
    let name = match state.store.gateway_token_state(token_hash, now_ms).await? {
        GatewayTokenState::Valid { gateway } => gateway,
        GatewayTokenState::Unknown => return Err(invalid_token("the join token is unknown")),
        GatewayTokenState::Used => return Err(invalid_token("the join token was already used")),
        GatewayTokenState::Expired => return Err(invalid_token("the join token has expired")),
    };
    let key = parse_csr(csr)?;
    let gateway = state.store.gateway(&name).await?;
    let spiffe_id = parse_stored_id(&gateway.spiffe_id)?;
    let issued = issue(state, &spiffe_id, &gateway.sans, &key, now)?;

    let record = AuditRecord {
        at_ms: now_ms,
        actor: "anonymous".into(),
        action: "gateway_svid.attested".into(),
        subject: gateway.spiffe_id.clone(),
        outcome: "success".into(),
        details: json!({
            "token_id": token_id(token_hash),
            "serial": issued.serial_hex,
            "fingerprint": issued.fingerprint,
            "public_key_fingerprint": issued.public_key_fingerprint,
            "key_type": key.key_type().to_string(),
            "expires_at": rfc3339(issued.not_after),
        })
        .to_string(),
    };
    let credential = new_credential(state, &spiffe_id, &issued, None);
    let superseded = match state
        .store
        .complete_gateway_attestation(token_hash, &credential, now_ms, record)
        .await
    {
        Ok(superseded) => superseded,
        Err(StoreError::Rejected(message)) => return Err(invalid_token(&message)),
        Err(other) => return Err(other.into()),
    };
    if !superseded.is_empty() {
        state.note_revocation();
        let authority = state.authority.load();
        if let Err(err) = state.crl.refresh(&state.store, &authority, now).await {
            tracing::error!(error = %err, gateway = %name, "failed to regenerate the CRL after a revocation");
        }
    }

    metrics::issuance();
    tracing::info!(gateway = %name, serial = %issued.serial_hex, "gateway attested");
    Ok(Json(svid_response(
        state,
        &spiffe_id,
        &credential.cert_pem,
        &issued,
    )))
}

/// Issues the successor of a gateway's presented SVID for the CSR's key.
pub(super) async fn renew(
    state: &AppState,
    name: &AgentName,
    presented: &LeafSvid,
    csr: &str,
) -> Result<Json<SvidResponse>, ApiError> {
    let now = state.clock.now();
    let now_ms = unix_ms(now);

    let key = parse_csr(csr)?;
    let gateway = state.store.gateway(name.as_str()).await?;
    let spiffe_id = parse_stored_id(&gateway.spiffe_id)?;
    let issued = issue(state, &spiffe_id, &gateway.sans, &key, now)?;
    let parent = presented.serial_hex.clone();

    let record = AuditRecord {
        at_ms: now_ms,
        actor: gateway.spiffe_id.clone(),
        action: "gateway_svid.renewed".into(),
        subject: gateway.spiffe_id.clone(),
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
        actor: gateway.spiffe_id.clone(),
        action: "identity.fork".into(),
        subject: gateway.spiffe_id.clone(),
        outcome: "denied".into(),
        details: String::new(),
    };
    let credential = new_credential(state, &spiffe_id, &issued, Some(parent.clone()));

    let outcome = state
        .store
        .complete_gateway_renewal(name.as_str(), &parent, &credential, record, fork_record)
        .await
        .map_err(|err| match err {
            StoreError::Rejected(message) => ApiError::forbidden("renewal_refused", message),
            other => other.into(),
        })?;

    match outcome {
        GatewayRenewOutcome::Issued => {
            metrics::renewal();
            tracing::info!(gateway = %name, serial = %issued.serial_hex, parent = %parent, "gateway SVID renewed");
            Ok(Json(svid_response(
                state,
                &spiffe_id,
                &credential.cert_pem,
                &issued,
            )))
        }
        GatewayRenewOutcome::Retry(existing) => {
            tracing::info!(gateway = %name, serial = %existing.serial, "gateway renewal retried; returning the same successor");
            Ok(Json(SvidResponse {
                svid: existing.cert_pem,
                bundle: state.authority.load().bundle_pem().to_owned(),
                expires_at: rfc3339_ms(existing.expires_at_ms),
                spiffe_id: spiffe_id.to_string(),
                serial: existing.serial,
            }))
        }
    }
}

fn issue(
    state: &AppState,
    spiffe_id: &SpiffeId,
    recorded_sans: &[String],
    key: &sigil_ca::CsrPublicKey,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, ApiError> {
    let (dns_names, ip_addresses) = gateway_names(recorded_sans);
    let authority = state.authority.load();
    let request = SvidRequest {
        spiffe_id,
        public_key: key,
        lifetime: GATEWAY_SVID_LIFETIME,
        now,
        dns_names: &dns_names,
        ip_addresses: &ip_addresses,
    };
    Ok(issue_svid(&authority.signing, &request)?)
}

fn new_credential(
    state: &AppState,
    spiffe_id: &SpiffeId,
    issued: &IssuedCertificate,
    parent_serial: Option<String>,
) -> NewCredential {
    NewCredential {
        serial: issued.serial_hex.clone(),
        spiffe_id: spiffe_id.to_string(),
        agent: None,
        fingerprint: issued.fingerprint.clone(),
        public_key_fingerprint: issued.public_key_fingerprint.clone(),
        cert_pem: state.authority.load().chain_pem(&issued.pem),
        issued_at_ms: unix_ms(issued.not_before),
        expires_at_ms: unix_ms(issued.not_after),
        parent_serial,
    }
}
