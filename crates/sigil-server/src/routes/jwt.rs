//! JWT-SVIDs: minting over mutual TLS, the JWKS and OpenID discovery.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;
use sigil_core::lifetime::parse_duration;
use sigil_core::{AgentStatus, AuditRecord};
use sigil_jwt::MintRequest;
use sigil_proto::{JwtRequest, JwtResponse};

use crate::clock::{rfc3339, unix_ms};
use crate::error::ApiError;
use crate::extract::{AgentCaller, ApiJson};
use crate::jwt_keys::{DEFAULT_JWT_LIFETIME, MAX_JWT_LIFETIME};
use crate::metrics;
use crate::state::AppState;

/// Longest audience accepted, in bytes.
const MAX_AUDIENCE: usize = 512;

/// `POST /v1/agent/jwt`: mints a JWT-SVID for the calling agent and one audience.
pub(super) async fn mint_jwt(
    State(state): State<AppState>,
    caller: AgentCaller,
    ApiJson(request): ApiJson<JwtRequest>,
) -> Result<Json<JwtResponse>, ApiError> {
    let audience = request.audience.trim();
    if audience.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_audience",
            "`audience` is required and cannot be empty",
        ));
    }
    if audience.len() > MAX_AUDIENCE || audience.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_audience",
            format!("`audience` must be at most {MAX_AUDIENCE} bytes without control characters"),
        ));
    }
    let lifetime = match request.ttl.as_deref() {
        None => DEFAULT_JWT_LIFETIME,
        Some(text) => parse_duration(text)
            .map_err(|err| ApiError::bad_request("invalid_ttl", err.to_string()))?,
    };
    if lifetime < Duration::from_secs(1) || lifetime > MAX_JWT_LIFETIME {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            "a JWT-SVID lifetime must be between 1s and 1h",
        ));
    }

    let agent = state.store.agent(caller.name.as_str()).await?;
    if agent.status != AgentStatus::Active {
        return Err(ApiError::forbidden(
            "agent_not_active",
            format!(
                "agent `{}` is {} and cannot obtain credentials",
                agent.name, agent.status
            ),
        ));
    }

    let owner = sigil_core::Email::new(&agent.owner_email).map_err(|err| {
        tracing::error!(error = %err, agent = %agent.name, "stored owner e-mail is invalid");
        ApiError::internal()
    })?;
    let now = state.clock.now();
    let keys = state.jwt_keys.load();
    let minted = keys
        .mint(&MintRequest {
            issuer: &state.issuer,
            subject: &caller.svid.spiffe_id,
            audience,
            owner: &owner,
            lifetime: crate::authority::to_time(lifetime),
            now,
        })
        .map_err(|err| ApiError::bad_request("invalid_request", err.to_string()))?;

    let record = AuditRecord {
        at_ms: unix_ms(now),
        actor: caller.svid.spiffe_id.to_string(),
        action: "jwt.issued".into(),
        subject: agent.name.clone(),
        outcome: "success".into(),
        details: json!({
            "jti": minted.jti,
            "audience": audience,
            "kid": keys.current().kid(),
            "expires_at": rfc3339(minted.expires_at),
            "presented_serial": caller.svid.serial_hex,
        })
        .to_string(),
    };
    state.store.record_audit(record).await?;
    metrics::jwt_issued();

    Ok(Json(JwtResponse {
        token: minted.token.clone(),
        expires_at: rfc3339(minted.expires_at),
    }))
}

/// `GET /.well-known/jwks.json`: the current and still-published retired keys.
pub(super) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let jwks = state.jwt_keys.load().jwks();
    ([(header::CACHE_CONTROL, "max-age=60")], Json(jwks))
}

/// `GET /.well-known/openid-configuration`: OpenID discovery, with `issuer` equal to `iss`.
pub(super) async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    let jwks_uri = format!("{}/.well-known/jwks.json", state.issuer);
    Json(sigil_jwt::openid_configuration(&state.issuer, &jwks_uri))
}
