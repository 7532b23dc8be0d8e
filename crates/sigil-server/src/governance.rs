//! Governance in the authority: the periodic scan and its settings.
//!
//! The scan runs every `scan_interval` and on demand (`POST /v1/admin/findings/scan`). One
//! scan runs at a time. Agents a scan suspends get the same follow-up as `agent suspend`: the
//! decision engine is refreshed, and the status change reaches gateways through the store's
//! event log in the same transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sigil_core::AuditRecord;
use sigil_governance::Settings;
use sigil_store::ScanReport;
use tokio::sync::{Mutex, Notify};

use crate::state::AppState;
use crate::webhook::WebhookConfig;

/// Default time between two scans.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Governance settings of one `sigil serve` run.
#[derive(Clone, Debug)]
pub struct GovernanceOptions {
    pub settings: Settings,
    /// Time between two scheduled scans.
    pub scan_interval: Duration,
    /// Where to send finding events; `None` discards them.
    pub webhook: Option<WebhookConfig>,
}

impl Default for GovernanceOptions {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            scan_interval: SCAN_INTERVAL,
            webhook: None,
        }
    }
}

/// Shared governance state of the authority.
#[derive(Clone)]
pub(crate) struct Governance {
    pub settings: Settings,
    /// Held while a scan runs.
    scan_lock: Arc<Mutex<()>>,
    /// Wakes the webhook worker after findings change.
    pub events: Arc<Notify>,
}

impl Governance {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            scan_lock: Arc::new(Mutex::new(())),
            events: Arc::new(Notify::new()),
        }
    }
}

/// Runs one scan for `actor` (an admin's SPIFFE ID, or `system`), refreshes the decision
/// engine for every agent it suspended and audits a summary.
pub(crate) async fn run_scan(
    state: &AppState,
    actor: &str,
) -> Result<(ScanReport, Duration), sigil_store::StoreError> {
    let governance = &state.governance;
    let _running = governance.scan_lock.lock().await;
    state.policy.flush_usage(&state.store).await;

    let started = Instant::now();
    let now_ms = state.clock.now_ms();
    let report = state.store.scan(&governance.settings, now_ms).await?;
    let elapsed = started.elapsed();

    for agent in &report.suspended {
        crate::routes::refresh_engine(state, agent).await;
    }
    let record = AuditRecord {
        at_ms: now_ms,
        actor: actor.to_owned(),
        action: "findings.scanned".into(),
        subject: "governance".into(),
        outcome: "success".into(),
        details: json!({
            "agents": report.agents,
            "external_credentials": report.external_credentials,
            "entitlements": report.entitlements,
            "opened": report.opened,
            "resolved": report.resolved,
            "suspended": report.suspended,
            "duration_ms": elapsed.as_millis(),
        })
        .to_string(),
    };
    state.store.record_audit(record).await?;
    governance.events.notify_one();
    tracing::info!(
        agents = report.agents,
        opened = report.opened,
        resolved = report.resolved,
        suspended = report.suspended.len(),
        duration_ms = elapsed.as_millis(),
        "governance scan finished"
    );
    Ok((report, elapsed))
}

/// Scans every `interval`, starting one interval after start-up.
pub(crate) async fn scan_periodically(state: AppState, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = run_scan(&state, "system").await {
            tracing::error!(error = %err, "governance scan failed; will retry at the next interval");
        }
    }
}
