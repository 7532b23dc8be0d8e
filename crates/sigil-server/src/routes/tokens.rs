//! Join tokens: 256 random bits, shown once, stored only as a SHA-256 hash.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use sigil_core::lifetime::parse_duration;
use sigil_core::{AgentName, AuditRecord};
use sigil_proto::{CreateGatewayTokenRequest, CreateTokenRequest, TokenResponse};

use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::{AdminCaller, ApiJson};
use crate::state::AppState;

/// Prefix of every join token, so that leaked tokens are easy to recognise and scan for.
pub(crate) const TOKEN_PREFIX: &str = "sigil_jt_";

/// Length of a join token: the prefix plus 32 bytes in unpadded base64url.
pub(crate) const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);
const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Generates a token from 256 bits of `rand`'s thread-local CSPRNG (ChaCha12, seeded by the
/// operating system).
pub(super) fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Returns the lowercase hex SHA-256 of a token, the only form in which it is stored.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A short, non-secret handle for a token in audit events: the first 12 hex digits of its hash.
pub(crate) fn token_id(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

/// `POST /v1/admin/tokens`: creates a single-use join token for an agent (`{agent, ttl?}`) or
/// for a gateway (`{gateway, sans?, ttl?}`).
pub(super) async fn create_token(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let for_gateway = body
        .as_object()
        .is_some_and(|object| object.contains_key("gateway"));
    if for_gateway {
        let request: CreateGatewayTokenRequest = parse_body(body)?;
        let response = super::gateway::create_gateway_token(&state, &caller, request).await?;
        return Ok(response.into_response());
    }
    let request: CreateTokenRequest = parse_body(body)?;
    Ok(create_agent_token(&state, &caller, request)
        .await?
        .into_response())
}

/// Deserialises a body already parsed as JSON, with the same error as a malformed field.
fn parse_body<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|err| {
        ApiError::bad_request(
            "invalid_request",
            format!(
                "the request body has invalid fields: {}",
                err.to_string().chars().take(300).collect::<String>()
            ),
        )
    })
}

/// Parses a join token lifetime (default 10 minutes, 1 second to 24 hours).
pub(super) fn token_ttl(text: Option<&str>) -> Result<Duration, ApiError> {
    let ttl = match text {
        None => DEFAULT_TTL,
        Some(text) => parse_duration(text)
            .map_err(|err| ApiError::bad_request("invalid_ttl", err.to_string()))?,
    };
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            format!(
                "a join token lifetime must be between 1s and 24h, not {}",
                humanize(ttl)
            ),
        ));
    }
    Ok(ttl)
}

async fn create_agent_token(
    state: &AppState,
    caller: &AdminCaller,
    request: CreateTokenRequest,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let name = AgentName::new(&request.agent)
        .map_err(|err| ApiError::bad_request("invalid_name", err.to_string()))?;
    let ttl = token_ttl(request.ttl.as_deref())?;

    let now = state.clock.now();
    let expires_at = now + crate::authority::to_time(ttl);
    let token = generate_token();
    let hash = token_hash(&token);

    let record = AuditRecord {
        at_ms: crate::clock::unix_ms(now),
        actor: caller.svid.spiffe_id.to_string(),
        action: "join_token.created".into(),
        subject: name.to_string(),
        outcome: "success".into(),
        details: json!({"token_id": token_id(&hash), "expires_at": rfc3339(expires_at)})
            .to_string(),
    };
    state
        .store
        .create_join_token(
            &hash,
            name.as_str(),
            record.at_ms,
            crate::clock::unix_ms(expires_at),
            record,
        )
        .await?;
    tracing::info!(agent = %name, token_id = token_id(&hash), "join token created");

    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            agent: name.to_string(),
            expires_at: rfc3339(expires_at),
        }),
    ))
}

fn humanize(duration: Duration) -> String {
    format!("{duration:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_well_formed() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
