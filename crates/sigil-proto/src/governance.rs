//! Bodies of the governance API: findings, offboarding, reviews, the credential inventory and
//! webhook deliveries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{AgentView, FindingView};

/// Who accepted a finding's risk, when and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcceptanceView {
    /// SPIFFE ID of the admin.
    pub by: String,
    pub at: String,
    pub reason: String,
}

/// `POST /v1/admin/findings/{id}/accept`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptFindingRequest {
    pub reason: String,
}

/// `POST /v1/admin/findings/scan`: what the scan found and changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanReportView {
    pub agents: u64,
    pub external_credentials: u64,
    pub entitlements: u64,
    pub opened: u64,
    pub refreshed: u64,
    pub resolved: u64,
    /// Agents this scan suspended.
    pub suspended: Vec<String>,
    pub duration_ms: u64,
}

/// `POST /v1/admin/agents/{name}/transfer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// E-mail of the new, active owner.
    pub owner: String,
}

/// `POST /v1/admin/agents/{name}/transfer` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferResponse {
    pub agent: AgentView,
    pub previous_owner: String,
}

/// `POST /v1/admin/reviews`: opens a review campaign.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReviewRequest {
    /// Time until the items are due, such as `7d` (the default).
    #[serde(default)]
    pub due: Option<String>,
    /// Only this owner's agents.
    #[serde(default)]
    pub owner: Option<String>,
}

/// `POST /v1/admin/reviews/{agent}/certify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifyRequest {
    /// `keep` (certify the current entitlements) or `drop-drift` (remove grants beyond the
    /// baseline).
    pub decision: String,
}

/// `POST /v1/admin/reviews/{agent}/certify` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertifyResponse {
    pub agent: String,
    pub item_id: i64,
    /// `certified` or `dropped`.
    pub status: String,
    /// Entitlements removed, as `ACTION:RESOURCE`.
    pub dropped: Vec<String>,
}

/// `POST /v1/admin/credentials/import`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportCredentialsRequest {
    /// `aws-iam-credential-report` or `json`.
    pub format: String,
    /// The inventory file's text.
    pub content: String,
    /// Inventory user or agent names to agent names; unmapped names map to the agent of the
    /// same name.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
}

/// A skipped inventory row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RowErrorView {
    pub line: u64,
    pub message: String,
}

/// `POST /v1/admin/credentials/import` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportCredentialsResponse {
    /// Data rows read.
    pub rows: u64,
    /// Credentials stored.
    pub imported: u64,
    /// Rows skipped as malformed; `errors` says why.
    pub skipped: u64,
    /// Stored credentials that map to no registered agent.
    pub unmapped: u64,
    pub errors: Vec<RowErrorView>,
    /// Lines of the unmapped credentials.
    pub unmapped_lines: Vec<u64>,
}

/// The JSON body of a webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// `finding.opened` or `finding.resolved`.
    pub event: String,
    /// Unique per delivery; a retried delivery keeps its id.
    pub delivery_id: i64,
    /// When the finding was opened or resolved.
    pub occurred_at: String,
    pub finding: FindingView,
}
