//! Governance routes: scans, risk acceptance, owner transfers, reviews and the external
//! credential inventory.
//!
//! Every route takes an [`AdminCaller`] and audits its change in the change's transaction; the
//! `observe` middleware audits every rejection.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use sigil_core::AuditRecord;
use sigil_governance::import::{self, Format, Mapping};
use sigil_proto::{
    AcceptFindingRequest, CertifyRequest, CertifyResponse, FindingView, ImportCredentialsRequest,
    ImportCredentialsResponse, ReviewItemView, ReviewList, RowErrorView, ScanReportView,
    StartReviewRequest, TransferRequest, TransferResponse,
};

use super::admin::{check_text, parse_email, parse_name};
use super::convert::{agent_view, finding_view};
use crate::error::ApiError;
use crate::extract::{AdminCaller, ApiJson, ApiPath, OptionalJson};
use crate::state::AppState;

/// Largest inventory a single import accepts, in bytes.
pub(crate) const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Default time until review items are due.
const DEFAULT_REVIEW_DUE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// Longest review period accepted.
const MAX_REVIEW_DUE: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

fn record(caller: &AdminCaller, now_ms: i64, action: &str, subject: &str) -> AuditRecord {
    AuditRecord {
        at_ms: now_ms,
        actor: caller.svid.spiffe_id.to_string(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        outcome: "success".into(),
        details: "{}".into(),
    }
}

/// `POST /v1/admin/findings/scan`: runs the governance scan now.
pub(super) async fn scan_findings(
    State(state): State<AppState>,
    caller: AdminCaller,
) -> Result<Json<ScanReportView>, ApiError> {
    let actor = caller.svid.spiffe_id.to_string();
    let (report, elapsed) = crate::governance::run_scan(&state, &actor).await?;
    Ok(Json(ScanReportView {
        agents: report.agents,
        external_credentials: report.external_credentials,
        entitlements: report.entitlements,
        opened: report.opened,
        refreshed: report.refreshed,
        resolved: report.resolved,
        suspended: report.suspended,
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    }))
}

/// `POST /v1/admin/findings/{id}/accept`.
pub(super) async fn accept_finding(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<AcceptFindingRequest>,
) -> Result<Json<FindingView>, ApiError> {
    let id: i64 =
        id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
            ApiError::bad_request("invalid_id", "a finding id is a positive integer")
        })?;
    if request.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`reason` is required: say why the risk is accepted",
        ));
    }
    check_text("reason", Some(&request.reason))?;
    let now_ms = state.clock.now_ms();

    let mut audit = record(&caller, now_ms, "finding.accepted", &id.to_string());
    audit.details = json!({"reason": request.reason}).to_string();
    let finding = state
        .store
        .accept_finding(id, &request.reason, audit)
        .await?;
    tracing::info!(finding = id, kind = %finding.kind, subject = %finding.subject, "finding accepted");
    Ok(Json(finding_view(finding)))
}

/// `POST /v1/admin/agents/{name}/transfer`.
pub(super) async fn transfer_agent(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<TransferRequest>,
) -> Result<Json<TransferResponse>, ApiError> {
    let name = parse_name(&name)?;
    let owner = parse_email(&request.owner)?;
    let now_ms = state.clock.now_ms();

    let previous = state.store.agent(name.as_str()).await?.owner_email;
    let audit = record(&caller, now_ms, "agent.transferred", name.as_str());
    let agent = state
        .store
        .transfer_agent(name.as_str(), owner.as_str(), now_ms, audit)
        .await?;
    super::refresh_engine(&state, name.as_str()).await;
    state.governance.events.notify_one();
    tracing::info!(agent = %name, from = %previous, to = %owner, "agent transferred");
    Ok(Json(TransferResponse {
        agent: agent_view(agent),
        previous_owner: previous,
    }))
}

/// `POST /v1/admin/reviews`: opens one item per active agent.
pub(super) async fn start_review(
    State(state): State<AppState>,
    caller: AdminCaller,
    OptionalJson(request): OptionalJson<StartReviewRequest>,
) -> Result<(StatusCode, Json<ReviewList>), ApiError> {
    let due = match request.due.as_deref() {
        None => DEFAULT_REVIEW_DUE,
        Some(text) => sigil_core::lifetime::parse_duration(text)
            .map_err(|err| ApiError::bad_request("invalid_due", err.to_string()))?,
    };
    if due.is_zero() || due > MAX_REVIEW_DUE {
        return Err(ApiError::bad_request(
            "invalid_due",
            "`due` must be more than zero and at most 366 days, such as `7d`",
        ));
    }
    let owner = request.owner.as_deref().map(parse_email).transpose()?;
    let now_ms = state.clock.now_ms();
    let due_ms = i64::try_from(due.as_millis()).unwrap_or(i64::MAX);

    let audit = record(
        &caller,
        now_ms,
        "review.started",
        owner.as_ref().map_or("all", |o| o.as_str()),
    );
    let items = state
        .store
        .start_review(
            owner.as_ref().map(|o| o.as_str()),
            now_ms.saturating_add(due_ms),
            now_ms,
            audit,
        )
        .await?;
    tracing::info!(items = items.len(), owner = ?owner.as_ref().map(|o| o.as_str()), "review started");
    let items = items.into_iter().map(review_item_view).collect();
    Ok((StatusCode::CREATED, Json(ReviewList { items })))
}

pub(crate) fn review_item_view(item: sigil_store::ReviewItemRow) -> ReviewItemView {
    ReviewItemView {
        id: item.id,
        agent: item.agent,
        owner: item.owner_email,
        reason: item.reason,
        status: item.status,
        opened_at: crate::clock::rfc3339_ms(item.opened_at_ms),
        due_at: crate::clock::rfc3339_ms(item.due_at_ms),
    }
}

/// `POST /v1/admin/reviews/{agent}/certify`.
pub(super) async fn certify_review(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<CertifyRequest>,
) -> Result<Json<CertifyResponse>, ApiError> {
    let name = parse_name(&name)?;
    let drop_drift = match request.decision.as_str() {
        "keep" => false,
        "drop-drift" => true,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_decision",
                "`decision` is `keep` or `drop-drift`",
            ));
        }
    };
    let now_ms = state.clock.now_ms();
    let audit = record(&caller, now_ms, "review.certified", name.as_str());
    let certification = state
        .store
        .certify_review(name.as_str(), drop_drift, now_ms, audit)
        .await?;
    if !certification.dropped.is_empty() {
        super::refresh_engine(&state, name.as_str()).await;
    }
    state.governance.events.notify_one();
    tracing::info!(agent = %name, decision = %request.decision, dropped = certification.dropped.len(), "review item certified");
    Ok(Json(CertifyResponse {
        agent: name.to_string(),
        item_id: certification.item_id,
        status: certification.status,
        dropped: certification.dropped,
    }))
}

/// `POST /v1/admin/credentials/import`: stores the metadata of an inventory's credentials.
///
/// A file that cannot be read as a whole (unknown format, missing header column, a column
/// that looks like a secret, a bad mapping) is rejected with 400 and nothing is stored. Bad
/// rows are skipped and listed in the response by line.
pub(super) async fn import_credentials(
    State(state): State<AppState>,
    caller: AdminCaller,
    ApiJson(request): ApiJson<ImportCredentialsRequest>,
) -> Result<Json<ImportCredentialsResponse>, ApiError> {
    let invalid = |err: sigil_governance::GovernanceError| {
        ApiError::bad_request("invalid_inventory", err.to_string())
    };
    let format = Format::parse(&request.format).map_err(invalid)?;
    let mapping = Mapping::new(request.mapping).map_err(invalid)?;
    let parsed = import::parse(format, request.content.as_bytes()).map_err(invalid)?;
    let now_ms = state.clock.now_ms();

    let mut audit = record(&caller, now_ms, "credentials.imported", format.source());
    audit.details = json!({
        "format": request.format,
        "rows": parsed.rows,
        "skipped": parsed.errors.len(),
    })
    .to_string();
    let outcome = state
        .store
        .import_external_credentials(
            format.source(),
            &parsed.credentials,
            &mapping,
            now_ms,
            audit,
        )
        .await?;
    tracing::info!(
        format = %request.format,
        rows = parsed.rows,
        imported = outcome.imported,
        skipped = parsed.errors.len(),
        unmapped = outcome.unmapped,
        "external credentials imported"
    );
    Ok(Json(ImportCredentialsResponse {
        rows: parsed.rows,
        imported: outcome.imported,
        skipped: parsed.errors.len() as u64,
        unmapped: outcome.unmapped,
        errors: parsed
            .errors
            .into_iter()
            .map(|e| RowErrorView {
                line: e.line,
                message: e.message,
            })
            .collect(),
        unmapped_lines: outcome.unmapped_lines,
    }))
}
