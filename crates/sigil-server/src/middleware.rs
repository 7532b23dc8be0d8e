//! Cross-cutting request handling: metrics, logs and the audit event of every rejection.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use sigil_core::AuditRecord;

use crate::error::Rejection;

use crate::metrics;
use crate::state::AppState;

/// Records latency, logs the request, and audits any 4xx response.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    // The caller is named only in logs and audit events of failed requests, so the (cheap) Arc
    // is kept and the name is built only when needed.
    let peer = request
        .extensions()
        .get::<crate::tls::PeerCertificates>()
        .cloned();

    let response = next.run(request).await;

    let status = response.status();
    let seconds = started.elapsed().as_secs_f64();
    metrics::request(method.clone(), route.clone(), status.as_u16(), seconds);

    if status.is_server_error() {
        let caller = caller_name(peer.as_ref());
        tracing::error!(%method, %path, status = status.as_u16(), caller, "request failed");
    } else if status.is_client_error() {
        let caller = caller_name(peer.as_ref());
        let rejection = response.extensions().get::<Rejection>().cloned();
        audit_rejection(&state, &caller, &method, &path, status.as_u16(), rejection).await;
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), micros = (seconds * 1e6) as u64, "request served");
    }
    response
}

fn caller_name(peer: Option<&crate::tls::PeerCertificates>) -> String {
    peer.and_then(|p| {
        p.svid
            .as_ref()
            .as_ref()
            .ok()
            .map(|svid| svid.spiffe_id.to_string())
    })
    .unwrap_or_else(|| "anonymous".to_owned())
}

/// Longest request path kept in an audit event, in bytes.
const MAX_AUDITED_PATH: usize = 200;

/// Longest error message kept in an audit event, in bytes.
const MAX_AUDITED_MESSAGE: usize = 400;

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", &text[..text.floor_char_boundary(max)])
}

pub(crate) async fn audit_rejection(
    state: &AppState,
    caller: &str,
    method: &str,
    path: &str,
    status: u16,
    rejection: Option<Rejection>,
) {
    let (code, message) = rejection.map_or(("rejected", String::new()), |r| (r.code, r.message));
    // Paths and messages are capped so that an anonymous caller cannot grow the log or the audit
    // chain by more than a few hundred bytes per request.
    let path = truncate(path, MAX_AUDITED_PATH);
    let message = truncate(&message, MAX_AUDITED_MESSAGE);
    metrics::denial(code);
    tracing::info!(
        method,
        %path,
        status,
        code,
        caller,
        %message,
        "request rejected"
    );

    let record = AuditRecord {
        at_ms: state.clock.now_ms(),
        actor: caller.to_owned(),
        action: "request.rejected".to_owned(),
        subject: path.clone(),
        outcome: "denied".to_owned(),
        details: json!({"method": method, "status": status, "code": code, "message": message})
            .to_string(),
    };
    if let Err(err) = state.store.record_audit(record).await {
        tracing::error!(error = %err, %path, "failed to audit a rejected request");
    }
}
