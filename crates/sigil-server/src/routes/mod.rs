//! HTTP routes of the authority.

pub(crate) mod admin;
mod agent;
mod convert;
mod gateway;
mod gateway_svid;
mod governance;
mod jwt;
mod policy;
mod public;
mod revocations;
mod tokens;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::middleware::{audit_rejection, observe};
use crate::state::AppState;

/// Maximum size of a request body in bytes; a larger body gets 413.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

pub(crate) use admin::ADMIN_LIFETIME;
pub(crate) use convert::finding_view;

/// Builds the router with every route, the audit middleware and the body limit.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(public::healthz))
        .route("/metrics", get(public::metrics))
        .route("/v1/bundle", get(public::bundle))
        .route("/v1/crl", get(public::crl))
        .route("/v1/crl.pem", get(public::crl_pem))
        .route("/v1/revocations", get(revocations::stream))
        .route("/v1/gateway/state", get(gateway::gateway_state))
        .route(
            "/v1/gateway/denials",
            post(gateway::report_denials).layer(DefaultBodyLimit::max(gateway::DENIALS_BODY_LIMIT)),
        )
        .route("/v1/agent/attest", post(agent::attest))
        .route("/v1/agent/renew", post(agent::renew))
        .route("/v1/agent/jwt", post(jwt::mint_jwt))
        .route("/.well-known/jwks.json", get(jwt::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(jwt::openid_configuration),
        )
        .route("/v1/admin/renew", post(admin::renew_admin))
        .route(
            "/v1/admin/owners",
            get(admin::list_owners).post(admin::add_owner),
        )
        .route("/v1/admin/owners/{email}/depart", post(admin::depart_owner))
        .route(
            "/v1/admin/agents",
            get(admin::list_agents).post(admin::register_agent),
        )
        .route("/v1/admin/agents/{name}", get(admin::show_agent))
        .route(
            "/v1/admin/agents/{name}/suspend",
            post(admin::suspend_agent),
        )
        .route("/v1/admin/agents/{name}/resume", post(admin::resume_agent))
        .route(
            "/v1/admin/agents/{name}/decommission",
            post(admin::decommission_agent),
        )
        .route("/v1/admin/agents/{name}/grants", post(admin::grant))
        .route("/v1/admin/tokens", post(tokens::create_token))
        .route("/v1/admin/findings", get(admin::list_findings))
        .route("/v1/admin/findings/scan", post(governance::scan_findings))
        .route(
            "/v1/admin/findings/{id}/accept",
            post(governance::accept_finding),
        )
        .route(
            "/v1/admin/agents/{name}/transfer",
            post(governance::transfer_agent),
        )
        .route(
            "/v1/admin/reviews",
            get(admin::list_reviews).post(governance::start_review),
        )
        .route(
            "/v1/admin/reviews/{name}/certify",
            post(governance::certify_review),
        )
        .route(
            "/v1/admin/credentials/import",
            post(governance::import_credentials)
                .layer(DefaultBodyLimit::max(governance::IMPORT_BODY_LIMIT)),
        )
        .route("/v1/authorize", post(policy::authorize))
        .route(
            "/v1/admin/policies",
            get(policy::list_policies).post(policy::add_policy),
        )
        .route(
            "/v1/admin/policies/{id}/remove",
            post(policy::remove_policy),
        )
        .route(
            "/v1/admin/agents/{name}/grants/revoke",
            post(policy::revoke_grant),
        )
        .route_layer(from_fn_with_state(state.clone(), observe))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Rebuilds the decision engine's view of one agent after a registry change; a failure is logged,
/// because the change itself is already committed.
pub(crate) async fn refresh_engine(state: &AppState, agent: &str) {
    if let Err(err) = state.policy.refresh_agent(&state.store, agent).await {
        tracing::error!(error = %err, agent, "failed to update the decision engine after a change");
    }
}

/// Answers routes that do not exist with 404, audited like every other rejection.
async fn unknown_route(State(state): State<AppState>, request: Request) -> ApiError {
    let error = ApiError::not_found(format!(
        "no route {} {}; docs/api.md lists the API",
        request.method(),
        request.uri().path().chars().take(200).collect::<String>()
    ));
    let caller = crate::extract::actor(request.extensions(), &state);
    audit_unrouted(
        &state,
        caller,
        request.method().to_string(),
        request.uri().path().to_owned(),
        error,
    )
    .await
}

/// Answers a known path called with the wrong method with 405, audited.
async fn method_not_allowed(State(state): State<AppState>, request: Request) -> ApiError {
    let error = ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path().chars().take(200).collect::<String>()
        ),
    );
    let caller = crate::extract::actor(request.extensions(), &state);
    audit_unrouted(
        &state,
        caller,
        request.method().to_string(),
        request.uri().path().to_owned(),
        error,
    )
    .await
}

/// Audits a request that no handler served, then returns its error.
async fn audit_unrouted(
    state: &AppState,
    caller: String,
    method: String,
    path: String,
    error: ApiError,
) -> ApiError {
    let rejection = crate::error::Rejection {
        code: error.code,
        message: error.message.clone(),
    };
    let status = error.status.as_u16();
    audit_rejection(state, &caller, &method, &path, status, Some(rejection)).await;
    error
}
