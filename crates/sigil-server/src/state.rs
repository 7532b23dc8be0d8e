//! State shared by every request handler.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sigil_core::TrustDomain;
use sigil_store::Store;

use crate::authority::Authority;
use crate::clock::Clock;
use crate::crl::CrlCache;
use crate::metrics::Metrics;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub trust_domain: TrustDomain,
    pub store: Store,
    pub authority: Arc<ArcSwap<Authority>>,
    pub crl: CrlCache,
    pub clock: Clock,
    pub metrics: Metrics,
    /// JWT-SVID signing keys, swapped whole on rotation.
    pub jwt_keys: Arc<ArcSwap<sigil_jwt::KeySet>>,
    /// The `iss` of JWT-SVIDs and the OpenID issuer, such as `https://127.0.0.1:8443`.
    pub issuer: String,
    /// The decision engine.
    pub policy: Arc<crate::policy::PolicyService>,
    /// Batched audit events of hot paths.
    pub audit_queue: crate::audit_queue::AuditQueue,
    /// Bumped after every revocation, so that per-connection registry checks run again.
    pub revocation_epoch: Arc<std::sync::atomic::AtomicU64>,
    /// Governance settings, the scan lock and the webhook wake-up.
    pub governance: crate::governance::Governance,
    /// Publishes revocation events to the open `/v1/revocations` streams.
    pub revocations: Arc<crate::revocations::RevocationHub>,
    /// How often an idle revocation stream sends a heartbeat.
    pub revocation_heartbeat: std::time::Duration,
}

impl AppState {
    /// Makes every connection check its client certificate against the registry again.
    pub fn note_revocation(&self) {
        self.revocation_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}
