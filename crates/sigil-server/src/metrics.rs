//! Prometheus metrics.
//!
//! - `sigil_svid_issuances_total`: X.509-SVIDs issued by attestation.
//! - `sigil_svid_renewals_total`: X.509-SVIDs issued by renewal.
//! - `sigil_jwt_svid_issuances_total`: JWT-SVIDs minted.
//! - `sigil_authorize_decisions_total{decision}`: decisions of `/v1/authorize`.
//! - `sigil_denials_total{reason}`: rejected requests, by error code.
//! - `sigil_gateway_denials_total{reason}`: requests that gateways denied and reported.
//! - `sigil_http_request_duration_seconds{method, route, status}`: request latency histogram.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds, from 100 µs to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder; `metrics` allows one per process.
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Renders the metrics; cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    handle: Option<PrometheusHandle>,
}

impl Metrics {
    /// Installs the Prometheus recorder on first use and returns a handle to it.
    pub fn install() -> Self {
        let handle = HANDLE.get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(
                Matcher::Full("sigil_http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            );
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        });
        Self {
            handle: handle.clone(),
        }
    }

    /// Returns the metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.handle
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    }
}

pub(crate) fn issuance() {
    metrics::counter!("sigil_svid_issuances_total").increment(1);
}

pub(crate) fn renewal() {
    metrics::counter!("sigil_svid_renewals_total").increment(1);
}

pub(crate) fn decision(verdict: &'static str) {
    metrics::counter!("sigil_authorize_decisions_total", "decision" => verdict).increment(1);
}

pub(crate) fn jwt_issued() {
    metrics::counter!("sigil_jwt_svid_issuances_total").increment(1);
}

pub(crate) fn denial(reason: &'static str) {
    metrics::counter!("sigil_denials_total", "reason" => reason).increment(1);
}

pub(crate) fn gateway_denial(reason: &'static str) {
    metrics::counter!("sigil_gateway_denials_total", "reason" => reason).increment(1);
}

pub(crate) fn request(method: String, route: String, status: u16, seconds: f64) {
    metrics::histogram!(
        "sigil_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status.to_string()
    )
    .record(seconds);
}
