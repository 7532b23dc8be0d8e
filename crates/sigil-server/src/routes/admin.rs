//! Admin routes: owners, agents, lifecycle changes, grants and findings.
//!
//! Every route takes an [`AdminCaller`], so only `spiffe://<td>/admin/<name>` certificates reach
//! these handlers, and every change is audited in the same transaction as the change itself.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;
use sigil_core::lifetime::SvidLifetime;
use sigil_core::{AgentName, AgentStatus, AuditRecord, Email, Entitlement};
use sigil_proto::{
    AddOwnerRequest, AgentDetail, AgentList, AgentView, FindingList, GrantRequest, OwnerList,
    OwnerView, RegisterAgentRequest, RenewRequest, StatusChangeRequest, StatusChangeResponse,
    SvidResponse,
};
use sigil_store::{NewAgent, NewCredential, Transition};

use super::agent::{issue, parse_csr, svid_response};
use super::convert::{agent_view, credential_view, entitlement_view, finding_view, owner_view};
use crate::clock::unix_ms;
use crate::error::ApiError;
use crate::extract::{AdminCaller, ApiJson, ApiPath, OptionalJson};
use crate::state::AppState;

/// Lifetime of admin certificates.
pub(crate) const ADMIN_LIFETIME: time::Duration = time::Duration::hours(12);

/// Maximum length of free-text fields (names, purposes, reasons).
const MAX_TEXT: usize = 1024;

fn success(
    caller: &AdminCaller,
    now_ms: i64,
    action: &str,
    subject: &str,
    details: serde_json::Value,
) -> AuditRecord {
    AuditRecord {
        at_ms: now_ms,
        actor: caller.svid.spiffe_id.to_string(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        outcome: "success".into(),
        details: details.to_string(),
    }
}

pub(super) fn check_text(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(text) if text.len() > MAX_TEXT => Err(ApiError::bad_request(
            "invalid_request",
            format!("`{field}` is longer than {MAX_TEXT} bytes"),
        )),
        Some(text)
            if text
                .chars()
                .any(|c| c.is_control() || sigil_core::owner::is_invisible(c)) =>
        {
            Err(ApiError::bad_request(
                "invalid_request",
                format!("`{field}` cannot contain control or invisible formatting characters"),
            ))
        }
        _ => Ok(()),
    }
}

pub(super) fn parse_email(value: &str) -> Result<Email, ApiError> {
    Email::new(value).map_err(|err| ApiError::bad_request("invalid_email", err.to_string()))
}

pub(super) fn parse_name(value: &str) -> Result<AgentName, ApiError> {
    AgentName::new(value).map_err(|err| ApiError::bad_request("invalid_name", err.to_string()))
}

/// `POST /v1/admin/owners`.
pub(super) async fn add_owner(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiJson(request): ApiJson<AddOwnerRequest>,
) -> Result<(StatusCode, Json<OwnerView>), ApiError> {
    let email = parse_email(&request.email)?;
    check_text("name", request.name.as_deref())?;
    let now_ms = state.clock.now_ms();

    let record = success(
        &caller,
        now_ms,
        "owner.added",
        email.as_str(),
        json!({"name": request.name}),
    );
    let owner = state
        .store
        .add_owner(email.as_str(), request.name.as_deref(), now_ms, record)
        .await?;
    tracing::info!(owner = %email, "owner added");
    Ok((StatusCode::CREATED, Json(owner_view(owner))))
}

/// `POST /v1/admin/owners/{email}/depart`.
pub(super) async fn depart_owner(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(email): ApiPath<String>,
) -> Result<Json<OwnerView>, ApiError> {
    let email = parse_email(&email)?;
    let now_ms = state.clock.now_ms();

    let record = success(&caller, now_ms, "owner.departed", email.as_str(), json!({}));
    let owner = state
        .store
        .depart_owner(email.as_str(), now_ms, record)
        .await?;
    tracing::info!(owner = %email, "owner departed");
    Ok(Json(owner_view(owner)))
}

/// `GET /v1/admin/owners`.
pub(super) async fn list_owners(
    State(state): State<AppState>,
    _caller: AdminCaller,
) -> Result<Json<OwnerList>, ApiError> {
    let owners = state
        .store
        .owners()
        .await?
        .into_iter()
        .map(owner_view)
        .collect();
    Ok(Json(OwnerList { owners }))
}

/// `POST /v1/admin/agents`.
pub(super) async fn register_agent(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiJson(request): ApiJson<RegisterAgentRequest>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let name = parse_name(&request.name)?;
    let owner = parse_email(&request.owner)?;
    check_text("purpose", request.purpose.as_deref())?;
    let lifetime = match request.ttl.as_deref() {
        None => SvidLifetime::default(),
        Some(text) => SvidLifetime::parse(text)
            .map_err(|err| ApiError::bad_request("invalid_ttl", err.to_string()))?,
    };
    let entitlements = parse_entitlements(&request.entitlements)?;

    let now_ms = state.clock.now_ms();
    let spiffe_id = name.agent_id(&state.trust_domain);
    let agent = NewAgent {
        name: name.to_string(),
        spiffe_id: spiffe_id.to_string(),
        owner_email: owner.to_string(),
        purpose: request.purpose.clone(),
        ttl_secs: i64::try_from(lifetime.duration().as_secs()).unwrap_or(i64::MAX),
        entitlements: entitlements
            .iter()
            .map(|e| (e.action().to_owned(), e.resource().to_owned()))
            .collect(),
    };
    let details = json!({
        "spiffe_id": spiffe_id.as_str(),
        "owner": owner.as_str(),
        "purpose": request.purpose,
        "entitlements": entitlements.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "ttl_seconds": agent.ttl_secs,
    });
    let record = success(&caller, now_ms, "agent.registered", name.as_str(), details);

    let row = state.store.register_agent(&agent, now_ms, record).await?;
    super::refresh_engine(&state, name.as_str()).await;
    tracing::info!(agent = %name, owner = %owner, "agent registered");
    Ok((StatusCode::CREATED, Json(agent_view(row))))
}

fn parse_entitlements(values: &[String]) -> Result<Vec<Entitlement>, ApiError> {
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for value in values {
        let entitlement = Entitlement::parse(value)
            .map_err(|err| ApiError::bad_request("invalid_entitlement", err.to_string()))?;
        if seen.insert(entitlement.clone()) {
            parsed.push(entitlement);
        }
    }
    Ok(parsed)
}

/// `GET /v1/admin/agents`.
pub(super) async fn list_agents(
    State(state): State<AppState>,
    _caller: AdminCaller,
) -> Result<Json<AgentList>, ApiError> {
    let agents = state
        .store
        .agents()
        .await?
        .into_iter()
        .map(agent_view)
        .collect();
    Ok(Json(AgentList { agents }))
}

/// `GET /v1/admin/agents/{name}`.
pub(crate) async fn show_agent(
    State(state): State<AppState>,
    _caller: AdminCaller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<AgentDetail>, ApiError> {
    let name = parse_name(&name)?;
    let now_ms = state.clock.now_ms();

    let agent = state.store.agent(name.as_str()).await?;
    let entitlements = state.store.entitlements(name.as_str()).await?;
    let credentials = state.store.agent_credentials(name.as_str()).await?;

    Ok(Json(AgentDetail {
        agent: agent_view(agent),
        entitlements: entitlements.into_iter().map(entitlement_view).collect(),
        credentials: credentials
            .into_iter()
            .map(|c| credential_view(c, now_ms))
            .collect(),
    }))
}

/// `POST /v1/admin/agents/{name}/suspend`.
pub(super) async fn suspend_agent(
    state: State<AppState>,
    caller: AdminCaller,
    name: ApiPath<String>,
    body: OptionalJson<StatusChangeRequest>,
) -> Result<Json<StatusChangeResponse>, ApiError> {
    change_status(
        state,
        caller,
        name,
        body,
        AgentStatus::suspend,
        "agent.suspended",
    )
    .await
}

/// `POST /v1/admin/agents/{name}/resume`.
pub(super) async fn resume_agent(
    state: State<AppState>,
    caller: AdminCaller,
    name: ApiPath<String>,
    body: OptionalJson<StatusChangeRequest>,
) -> Result<Json<StatusChangeResponse>, ApiError> {
    change_status(
        state,
        caller,
        name,
        body,
        AgentStatus::resume,
        "agent.resumed",
    )
    .await
}

/// `POST /v1/admin/agents/{name}/decommission`: final; revokes every live credential at once.
pub(super) async fn decommission_agent(
    state: State<AppState>,
    caller: AdminCaller,
    name: ApiPath<String>,
    body: OptionalJson<StatusChangeRequest>,
) -> Result<Json<StatusChangeResponse>, ApiError> {
    change_status(
        state,
        caller,
        name,
        body,
        AgentStatus::decommission,
        "agent.decommissioned",
    )
    .await
}

async fn change_status(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(name): ApiPath<String>,
    body: OptionalJson<StatusChangeRequest>,
    transition: Transition,
    action: &str,
) -> Result<Json<StatusChangeResponse>, ApiError> {
    let name = parse_name(&name)?;
    let OptionalJson(StatusChangeRequest { reason }) = body;
    check_text("reason", reason.as_deref())?;
    let now = state.clock.now();
    let now_ms = unix_ms(now);

    let record = success(
        &caller,
        now_ms,
        action,
        name.as_str(),
        json!({"reason": reason}),
    );
    let (agent, revoked) = state
        .store
        .change_agent_status(name.as_str(), transition, reason.as_deref(), now_ms, record)
        .await?;

    super::refresh_engine(&state, name.as_str()).await;
    if !revoked.is_empty() {
        state.note_revocation();
        let authority = state.authority.load();
        if let Err(err) = state.crl.refresh(&state.store, &authority, now).await {
            tracing::error!(error = %err, agent = %name, "failed to regenerate the CRL after a revocation");
        }
    }
    tracing::info!(agent = %name, status = %agent.status, revoked = revoked.len(), "agent status changed");
    Ok(Json(StatusChangeResponse {
        agent: agent_view(agent),
        revoked_serials: revoked,
    }))
}

/// `POST /v1/admin/agents/{name}/grants`.
pub(super) async fn grant(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<GrantRequest>,
) -> Result<(StatusCode, Json<AgentDetail>), ApiError> {
    let name = parse_name(&name)?;
    let entitlement = Entitlement::parse(&request.entitlement)
        .map_err(|err| ApiError::bad_request("invalid_entitlement", err.to_string()))?;
    let now_ms = state.clock.now_ms();

    let details = json!({"entitlement": entitlement.to_string()});
    let record = success(&caller, now_ms, "agent.granted", name.as_str(), details);
    state
        .store
        .grant(
            name.as_str(),
            entitlement.action(),
            entitlement.resource(),
            now_ms,
            record,
        )
        .await?;
    super::refresh_engine(&state, name.as_str()).await;
    tracing::info!(agent = %name, %entitlement, "entitlement granted");

    let Json(detail) = show_agent(State(state), caller, ApiPath(name.to_string())).await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// `GET /v1/admin/findings`.
pub(super) async fn list_findings(
    State(state): State<AppState>,
    _caller: AdminCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<FindingList>, ApiError> {
    let kind = finding_kind(query.as_deref())?;
    let findings = state.store.findings(kind.as_deref()).await?;
    Ok(Json(FindingList {
        findings: findings.into_iter().map(finding_view).collect(),
    }))
}

/// Reads the optional `kind=KIND` query of the findings list; any other parameter is an error.
fn finding_kind(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let invalid = |message: String| ApiError::bad_request("invalid_query", message);

    let mut kind = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "kind" {
            return Err(invalid(format!(
                "unknown query parameter `{}`; only `kind` is accepted",
                key.chars().take(40).collect::<String>()
            )));
        }
        if kind.is_some() {
            return Err(invalid("`kind` may be given once".into()));
        }
        let parsed = value
            .parse::<sigil_governance::FindingKind>()
            .map_err(|_| {
                let known = sigil_governance::FindingKind::ALL
                    .map(|k| k.as_str())
                    .join(", ");
                invalid(format!(
                    "unknown finding kind `{}`; the kinds are {known}",
                    value.chars().take(60).collect::<String>()
                ))
            })?;
        kind = Some(parsed.as_str().to_owned());
    }
    Ok(kind)
}

/// `GET /v1/admin/reviews`.
pub(super) async fn list_reviews(
    State(state): State<AppState>,
    _caller: AdminCaller,
) -> Result<Json<sigil_proto::ReviewList>, ApiError> {
    let items = state
        .store
        .review_items()
        .await?
        .into_iter()
        .map(|item| sigil_proto::ReviewItemView {
            id: item.id,
            agent: item.agent,
            owner: item.owner_email,
            reason: item.reason,
            status: item.status,
            opened_at: crate::clock::rfc3339_ms(item.opened_at_ms),
            due_at: crate::clock::rfc3339_ms(item.due_at_ms),
        })
        .collect();
    Ok(Json(sigil_proto::ReviewList { items }))
}

/// `POST /v1/admin/renew`: issues a fresh admin certificate to the admin presenting one.
pub(super) async fn renew_admin(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiJson(request): ApiJson<RenewRequest>,
) -> Result<Json<SvidResponse>, ApiError> {
    let key = parse_csr(&request.csr)?;
    let now = state.clock.now();
    let issued = issue(&state, &caller.svid.spiffe_id, &key, ADMIN_LIFETIME, now)?;
    let chain = state.authority.load().chain_pem(&issued.pem);

    let credential = NewCredential {
        serial: issued.serial_hex.clone(),
        spiffe_id: caller.svid.spiffe_id.to_string(),
        agent: None,
        fingerprint: issued.fingerprint.clone(),
        public_key_fingerprint: issued.public_key_fingerprint.clone(),
        cert_pem: chain.clone(),
        issued_at_ms: unix_ms(issued.not_before),
        expires_at_ms: unix_ms(issued.not_after),
        parent_serial: None,
    };
    let details = json!({"serial": issued.serial_hex, "parent_serial": caller.svid.serial_hex});
    let record = success(
        &caller,
        unix_ms(now),
        "admin.renewed",
        caller.svid.spiffe_id.as_str(),
        details,
    );
    state.store.record_credential(&credential, record).await?;

    Ok(Json(svid_response(
        &state,
        &caller.svid.spiffe_id,
        &chain,
        &issued,
    )))
}
