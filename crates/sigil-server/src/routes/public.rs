//! Routes that need no client certificate.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// `GET /healthz`: 200 while the authority is serving.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// `GET /v1/bundle`: the trust bundle in PEM.
pub(super) async fn bundle(State(state): State<AppState>) -> impl IntoResponse {
    let authority = state.authority.load();
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        authority.bundle_pem().to_owned(),
    )
}

/// `GET /v1/crl`: the DER CRL of revoked, unexpired certificates.
pub(super) async fn crl(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/pkix-crl")],
        state.crl.current().as_ref().clone(),
    )
}

/// `GET /v1/crl.pem`: the root's CRL and the CRL of every signing CA whose certificates may
/// still be valid, as concatenated PEM blocks.
pub(super) async fn crl_pem(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.crl.pem_bundle().as_ref().clone(),
    )
}
