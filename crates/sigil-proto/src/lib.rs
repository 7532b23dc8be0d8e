//! Request and response bodies of Sigil's HTTP API.
//!
//! Times are RFC 3339 strings. Types that carry a secret (a join token) have a hand-written
//! `Debug` that redacts it, so that logging a request never leaks the secret.

#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

mod governance;

pub use governance::*;

/// `POST /v1/agent/attest`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    pub join_token: String,
    /// PKCS#10 CSR in PEM.
    pub csr: String,
}

impl fmt::Debug for AttestRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestRequest")
            .field("join_token", &"<redacted>")
            .field("csr_len", &self.csr.len())
            .finish()
    }
}

/// `POST /v1/agent/renew` and `POST /v1/admin/renew`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PKCS#10 CSR in PEM; only its public key is used.
    pub csr: String,
}

/// An issued X.509-SVID.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SvidResponse {
    /// The leaf certificate followed by the signing CA, in PEM.
    pub svid: String,
    /// The trust bundle (root CA) in PEM.
    pub bundle: String,
    pub expires_at: String,
    pub spiffe_id: String,
    pub serial: String,
}

/// `POST /v1/agent/jwt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtRequest {
    /// The one audience of the token, such as `https://crm.example.org`.
    pub audience: String,
    /// Lifetime such as `5m`; default 5 minutes, at most 1 hour.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// A JWT-SVID.
#[derive(Clone, Serialize, Deserialize)]
pub struct JwtResponse {
    pub token: String,
    pub expires_at: String,
}

impl fmt::Debug for JwtResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtResponse")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /v1/admin/owners`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddOwnerRequest {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// An owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OwnerView {
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub created_at: String,
    pub departed_at: Option<String>,
}

/// `GET /v1/admin/owners`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerList {
    pub owners: Vec<OwnerView>,
}

/// `POST /v1/admin/agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentRequest {
    pub name: String,
    pub owner: String,
    #[serde(default)]
    pub purpose: Option<String>,
    /// Baseline entitlements, each `ACTION:RESOURCE`.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// SVID lifetime such as `15m`; 1 minute to 24 hours.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// An agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentView {
    pub name: String,
    pub spiffe_id: String,
    pub owner: String,
    pub purpose: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub ttl_seconds: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /v1/admin/agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

/// `GET /v1/admin/agents/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub agent: AgentView,
    pub entitlements: Vec<EntitlementView>,
    pub credentials: Vec<CredentialView>,
}

/// An entitlement of an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntitlementView {
    pub entitlement: String,
    /// True when declared at registration, false when granted later.
    pub baseline: bool,
    pub granted_at: String,
    pub last_used_at: Option<String>,
}

/// An X.509-SVID issued to an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialView {
    pub serial: String,
    pub kind: String,
    /// `live`, `expired` or `revoked`.
    pub state: String,
    pub fingerprint: String,
    pub public_key_fingerprint: String,
    pub issued_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub revoke_reason: Option<String>,
    /// The certificate that authenticated the renewal that produced this one.
    pub parent_serial: Option<String>,
}

/// Body of `suspend`, `resume` and `decommission`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChangeRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Result of `decommission` and the other lifecycle changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusChangeResponse {
    #[serde(flatten)]
    pub agent: AgentView,
    /// Serials revoked by this change.
    pub revoked_serials: Vec<String>,
}

/// `POST /v1/admin/agents/{name}/grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub entitlement: String,
}

/// `POST /v1/admin/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub agent: String,
    /// Lifetime such as `10m`; default 10 minutes, at most 24 hours.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// A new join token, shown once.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    pub agent: String,
    pub expires_at: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token", &"<redacted>")
            .field("agent", &self.agent)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /v1/authorize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The SPIFFE ID of the agent asking, such as `spiffe://example.org/agent/crm-bot`.
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// Extra facts for custom policies, available as `context` in Cedar.
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// The answer of `POST /v1/authorize`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizeResponse {
    /// `allow` or `deny`.
    pub decision: String,
    /// Ids of the policies that determined the decision.
    pub policies: Vec<String>,
    /// Errors met while evaluating policies, and the reason of a built-in denial.
    pub diagnostics: Vec<String>,
    /// Version of the policy set the decision used.
    pub policy_version: u64,
}

/// `POST /v1/admin/policies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPolicyRequest {
    /// Cedar policy text: one policy.
    pub text: String,
    /// Policy id; derived from the text when absent.
    #[serde(default)]
    pub id: Option<String>,
}

/// A custom policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyView {
    pub id: String,
    pub text: String,
    pub created_at: String,
    pub created_by: String,
}

/// `GET /v1/admin/policies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyList {
    pub policies: Vec<PolicyView>,
    /// Version of the effective policy set.
    pub version: u64,
}

/// A governance finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindingView {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub severity: String,
    pub status: String,
    pub evidence: serde_json::Value,
    pub first_seen: String,
    pub last_seen: String,
    /// Set once the finding's risk is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<AcceptanceView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

/// `GET /v1/admin/findings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindingList {
    pub findings: Vec<FindingView>,
}

/// A review item: an owner must certify an agent's entitlements by `due_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewItemView {
    pub id: i64,
    pub agent: String,
    pub owner: String,
    /// Why the item was opened, such as `privilege-drift`.
    pub reason: String,
    pub status: String,
    pub opened_at: String,
    pub due_at: String,
}

/// `GET /v1/admin/reviews`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewList {
    pub items: Vec<ReviewItemView>,
}

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error inside [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens() {
        let request = AttestRequest {
            join_token: "sigil-secret-value".into(),
            csr: "csr".into(),
        };
        assert!(!format!("{request:?}").contains("sigil-secret-value"));
        let response = TokenResponse {
            token: "sigil-secret-value".into(),
            agent: "a".into(),
            expires_at: "t".into(),
        };
        assert!(!format!("{response:?}").contains("sigil-secret-value"));
    }
}

// ---------------------------------------------------------------------------------------------
// Enforcement: what gateways fetch from and report to the authority.
// ---------------------------------------------------------------------------------------------

/// `POST /v1/admin/tokens` with a gateway instead of an agent: registers the gateway on first
/// use and returns a join token for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGatewayTokenRequest {
    /// The gateway's name, one SPIFFE path segment; its ID is `spiffe://<td>/gateway/<name>`.
    pub gateway: String,
    /// Extra DNS names or IP addresses for the gateway's certificate, beside `localhost`,
    /// `127.0.0.1` and `::1`. Recorded when the gateway is first registered.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Lifetime such as `10m`; default 10 minutes, at most 24 hours.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// One agent as a gateway needs it to decide locally.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayAgent {
    pub name: String,
    pub spiffe_id: String,
    pub owner: String,
    /// `registered`, `active`, `suspended` or `decommissioned`.
    pub status: String,
    /// Baseline and granted entitlements, `ACTION:RESOURCE`.
    pub entitlements: Vec<String>,
}

/// One stored custom Cedar policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayPolicy {
    pub id: String,
    pub text: String,
}

/// `GET /v1/gateway/state`: everything a gateway decides with, as of event `seq`.
///
/// A gateway loads this at start and again whenever a `policy` event announces a newer
/// `policy_version`; the revocation stream then resumes after `seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayState {
    /// The last revocation-stream event this state includes.
    pub seq: u64,
    /// Version of the policy set, the same number `/v1/authorize` reports.
    pub policy_version: u64,
    pub agents: Vec<GatewayAgent>,
    pub policies: Vec<GatewayPolicy>,
    /// Hex serials (lowercase, no separators) of revoked certificates that have not expired.
    pub revoked_serials: Vec<String>,
}

/// One event of `GET /v1/revocations` (server-sent events).
///
/// Each SSE message has `id: <seq>`, `event: <kind>` and this JSON as `data`. Heartbeats carry
/// the current `seq` and are not stored. Every other event is stored, so a client that
/// reconnects with `Last-Event-ID: N` (or `?since=N`) receives every event after `N`. When `N`
/// is older than the oldest kept event or newer than the newest, the stream starts with a
/// `resync` event, and the client reloads `/v1/gateway/state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RevocationEvent {
    /// Certificates were revoked (decommission, fork, suspension of a credential).
    Revoke {
        seq: u64,
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
        /// Hex serials, lowercase.
        serials: Vec<String>,
        /// The agent the serials belong to, when they belong to one.
        agent: Option<String>,
    },
    /// An agent's status changed (suspend, resume, decommission, fork lock).
    AgentStatus {
        seq: u64,
        at_ms: i64,
        agent: String,
        spiffe_id: String,
        status: String,
    },
    /// The policy set changed (grant, revoke-grant, policy add or remove, registration);
    /// gateways reload `/v1/gateway/state` when this is newer than what they hold.
    Policy {
        seq: u64,
        at_ms: i64,
        policy_version: u64,
    },
    /// Sent about once a second with the newest `seq`, so that clients can tell a quiet stream
    /// from a dead one.
    Heartbeat { seq: u64, at_ms: i64 },
    /// The requested resume point is gone; reload `/v1/gateway/state`.
    Resync { seq: u64, at_ms: i64 },
}

impl RevocationEvent {
    /// Returns the event's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Revoke { seq, .. }
            | Self::AgentStatus { seq, .. }
            | Self::Policy { seq, .. }
            | Self::Heartbeat { seq, .. }
            | Self::Resync { seq, .. } => *seq,
        }
    }

    /// Returns the SSE `event:` name, such as `revoke` or `agent-status`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Revoke { .. } => "revoke",
            Self::AgentStatus { .. } => "agent-status",
            Self::Policy { .. } => "policy",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Resync { .. } => "resync",
        }
    }
}

/// One request a gateway denied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayDenial {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The caller's SPIFFE ID, when it presented one that parsed.
    #[serde(default)]
    pub principal: Option<String>,
    pub method: String,
    pub path: String,
    /// The action and resource from the route configuration, when a route matched.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    /// Short machine-readable reason, such as `policy`, `revoked`, `inactive-agent`,
    /// `no-route`, `bad-token`, `stale`.
    pub reason: String,
    /// The HTTP status of the gateway's response.
    pub status: u16,
}

/// `POST /v1/gateway/denials`: a batch of denials, audited one event each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayDenialBatch {
    pub denials: Vec<GatewayDenial>,
}

/// Response of `POST /v1/admin/tokens` for a gateway.
#[derive(Clone, Serialize, Deserialize)]
pub struct GatewayTokenResponse {
    /// The join token, shown only here.
    pub token: String,
    pub gateway: String,
    /// `spiffe://<td>/gateway/<name>`.
    pub spiffe_id: String,
    /// The extra DNS names and IP addresses recorded for the gateway's certificates.
    pub sans: Vec<String>,
    pub expires_at: String,
}

impl fmt::Debug for GatewayTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayTokenResponse")
            .field("token", &"<redacted>")
            .field("gateway", &self.gateway)
            .field("spiffe_id", &self.spiffe_id)
            .field("sans", &self.sans)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Response of `POST /v1/gateway/denials`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GatewayDenialsResponse {
    /// The number of denials appended to the audit log.
    pub recorded: usize,
}
