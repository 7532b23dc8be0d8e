//! The decision API and custom-policy administration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use sigil_core::{AuditRecord, Entitlement, SpiffeId};
use sigil_policy::{PrincipalRef, Request};
use sigil_proto::{
    AddPolicyRequest, AgentDetail, AuthorizeRequest, AuthorizeResponse, GrantRequest, PolicyList,
    PolicyView,
};

use super::admin::show_agent;
use crate::clock::{rfc3339_ms, unix_ms};
use crate::error::ApiError;
use crate::extract::{AdminCaller, ApiJson, ApiPath, DecisionCaller};
use crate::metrics;
use crate::policy::AddPolicyError;
use crate::state::AppState;

/// Longest action, resource or policy id accepted, in bytes.
const MAX_FIELD: usize = 512;

/// Longest custom policy text accepted, in bytes.
const MAX_POLICY_TEXT: usize = 32 * 1024;

/// `POST /v1/authorize`: may this agent perform this action on this resource?
///
/// Callers are admins and gateways. Denials are audited one by one; allows are counted in
/// metrics and recorded as entitlement use in batches.
pub(super) async fn authorize(
    State(state): State<AppState>,
    caller: DecisionCaller,
    ApiJson(request): ApiJson<AuthorizeRequest>,
) -> Result<Json<AuthorizeResponse>, ApiError> {
    let principal = SpiffeId::parse(&request.principal).map_err(|err| {
        ApiError::bad_request(
            "invalid_principal",
            format!("{err}; the principal is an agent's SPIFFE ID"),
        )
    })?;
    check_field("action", &request.action)?;
    check_field("resource", &request.resource)?;

    let now_ms = state.clock.now_ms();
    let decision = state.policy.authorize(
        &Request {
            principal: PrincipalRef::SpiffeId(&principal),
            action: &request.action,
            resource: &request.resource,
            context: serde_json::Value::Object(request.context),
        },
        now_ms,
    );
    metrics::decision(decision.decision.as_str());

    if !decision.is_allowed() {
        let record = AuditRecord {
            at_ms: now_ms,
            actor: caller.spiffe_id,
            action: "authorize.denied".into(),
            subject: principal.to_string(),
            outcome: "denied".into(),
            details: json!({
                "action": request.action,
                "resource": request.resource,
                "policies": decision.policies,
                "diagnostics": decision.diagnostics,
                "policy_version": decision.version,
            })
            .to_string(),
        };
        state.audit_queue.push(record).await;
    }

    Ok(Json(AuthorizeResponse {
        decision: decision.decision.as_str().to_owned(),
        policies: decision.policies,
        diagnostics: decision.diagnostics,
        policy_version: decision.version,
    }))
}

fn check_field(name: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_FIELD || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("`{name}` must be 1 to {MAX_FIELD} bytes without control characters"),
        ));
    }
    Ok(())
}

/// `POST /v1/admin/policies`: validates a Cedar policy against Sigil's schema and adds it.
pub(super) async fn add_policy(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiJson(request): ApiJson<AddPolicyRequest>,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    if request.text.len() > MAX_POLICY_TEXT {
        return Err(ApiError::bad_request(
            "invalid_policy",
            format!("a policy is at most {MAX_POLICY_TEXT} bytes"),
        ));
    }
    let id = match request.id {
        Some(id) => id,
        None => format!(
            "custom-{}",
            &hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
                sha2::Sha256::default(),
                request.text.as_bytes()
            )))[..12]
        ),
    };
    check_field("id", &id)?;

    let now_ms = state.clock.now_ms();
    let record = AuditRecord {
        at_ms: now_ms,
        actor: caller.svid.spiffe_id.to_string(),
        action: "policy.added".into(),
        subject: id.clone(),
        outcome: "success".into(),
        details: json!({ "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(request.text.as_bytes())) }).to_string(),
    };
    let store = state.store.clone();
    let (text, policy_id) = (request.text.clone(), id.clone());
    let version = state
        .policy
        .add_custom(&id, &request.text, || async move {
            store.add_policy(&policy_id, &text, now_ms, record).await
        })
        .await
        .map_err(|err| match err {
            AddPolicyError::Invalid(err) => {
                ApiError::bad_request("invalid_policy", err.to_string())
            }
            AddPolicyError::Store(err) => err.into(),
            AddPolicyError::Server(err) => {
                tracing::error!(error = %err, "decision engine rebuild failed");
                ApiError::internal()
            }
        })?;
    tracing::info!(policy = %id, version, "custom policy added");

    Ok((
        StatusCode::CREATED,
        Json(PolicyView {
            id,
            text: request.text,
            created_at: rfc3339_ms(now_ms),
            created_by: caller.svid.spiffe_id.to_string(),
        }),
    ))
}

/// `GET /v1/admin/policies`.
pub(super) async fn list_policies(
    State(state): State<AppState>,
    _caller: AdminCaller,
) -> Result<Json<PolicyList>, ApiError> {
    let policies = state
        .store
        .policies()
        .await?
        .into_iter()
        .map(|p| PolicyView {
            id: p.id,
            text: p.text,
            created_at: rfc3339_ms(p.created_at_ms),
            created_by: p.created_by,
        })
        .collect();
    Ok(Json(PolicyList {
        policies,
        version: state.policy.version(),
    }))
}

/// `POST /v1/admin/policies/{id}/remove`.
pub(super) async fn remove_policy(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PolicyList>, ApiError> {
    check_field("id", &id)?;
    let record = AuditRecord {
        at_ms: state.clock.now_ms(),
        actor: caller.svid.spiffe_id.to_string(),
        action: "policy.removed".into(),
        subject: id.clone(),
        outcome: "success".into(),
        details: "{}".into(),
    };
    let store = state.store.clone();
    let policy_id = id.clone();
    state
        .policy
        .remove_custom(&id, || async move {
            store.remove_policy(&policy_id, record).await
        })
        .await
        .map_err(|err| match err {
            crate::ServerError::Store(err) => ApiError::from(err),
            other => {
                tracing::error!(error = %other, "decision engine rebuild failed");
                ApiError::internal()
            }
        })?;
    tracing::info!(policy = %id, "custom policy removed");
    list_policies(State(state), caller).await
}

/// `POST /v1/admin/agents/{name}/grants/revoke`.
pub(super) async fn revoke_grant(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<GrantRequest>,
) -> Result<Json<AgentDetail>, ApiError> {
    let name = sigil_core::AgentName::new(&name)
        .map_err(|err| ApiError::bad_request("invalid_name", err.to_string()))?;
    let entitlement = Entitlement::parse(&request.entitlement)
        .map_err(|err| ApiError::bad_request("invalid_entitlement", err.to_string()))?;
    let record = AuditRecord {
        at_ms: unix_ms(state.clock.now()),
        actor: caller.svid.spiffe_id.to_string(),
        action: "agent.grant_revoked".into(),
        subject: name.to_string(),
        outcome: "success".into(),
        details: json!({ "entitlement": entitlement.to_string() }).to_string(),
    };
    state
        .store
        .revoke_grant(
            name.as_str(),
            entitlement.action(),
            entitlement.resource(),
            record,
        )
        .await?;
    super::refresh_engine(&state, name.as_str()).await;
    tracing::info!(agent = %name, %entitlement, "entitlement revoked");
    show_agent(State(state), caller, ApiPath(name.to_string())).await
}
