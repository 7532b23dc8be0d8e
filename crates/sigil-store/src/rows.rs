//! Records read from and written to the database.

use serde_json::Value;
use sigil_core::AgentStatus;

/// An owner as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRow {
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
    pub departed_at_ms: Option<i64>,
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub name: String,
    pub spiffe_id: String,
    pub owner_email: String,
    pub purpose: Option<String>,
    pub status: AgentStatus,
    pub status_reason: Option<String>,
    pub ttl_secs: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What registering an agent needs.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub spiffe_id: String,
    pub owner_email: String,
    pub purpose: Option<String>,
    pub ttl_secs: i64,
    /// Baseline entitlements as `(action, resource)`.
    pub entitlements: Vec<(String, String)>,
}

/// An entitlement of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRow {
    pub action: String,
    pub resource: String,
    /// True when declared at registration; false when granted later (drift).
    pub baseline: bool,
    pub granted_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// An issued X.509-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub serial: String,
    pub spiffe_id: String,
    pub agent: Option<String>,
    pub kind: String,
    pub fingerprint: String,
    pub public_key_fingerprint: String,
    pub cert_pem: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoke_reason: Option<String>,
    pub parent_serial: Option<String>,
    pub last_used_at_ms: Option<i64>,
}

/// A certificate about to be recorded.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub serial: String,
    pub spiffe_id: String,
    pub agent: Option<String>,
    pub fingerprint: String,
    pub public_key_fingerprint: String,
    pub cert_pem: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub parent_serial: Option<String>,
}

/// The result of a successful attestation.
#[derive(Debug, Clone)]
pub struct AttestOutcome {
    pub agent: AgentRow,
    /// Serials of the agent's previous line, revoked because this attestation replaces it.
    pub revoked_serials: Vec<String>,
}

/// The result of a renewal attempt that reached the registry.
#[derive(Debug, Clone)]
pub enum RenewOutcome {
    /// The new certificate was recorded as the successor of the presented one.
    Issued,
    /// The presented certificate already had this successor with the same public key: a retry.
    Retry(Box<CredentialRow>),
    /// The presented certificate already had a successor with a different key: the agent is
    /// suspended and an `identity-fork` finding is open.
    Fork {
        existing_successor: String,
        finding_id: i64,
    },
}

/// A governance finding.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub severity: String,
    pub status: String,
    pub evidence: Value,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Who accepted the risk (a SPIFFE ID), when and why; set once the finding is accepted.
    pub accepted_by: Option<String>,
    pub accepted_at_ms: Option<i64>,
    pub accepted_reason: Option<String>,
    pub resolved_at_ms: Option<i64>,
}
