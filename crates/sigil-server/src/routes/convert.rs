//! Conversions from registry rows to API views.

use sigil_proto::{AgentView, CredentialView, EntitlementView, FindingView, OwnerView};
use sigil_store::{AgentRow, CredentialRow, EntitlementRow, FindingRow, OwnerRow};

use crate::clock::rfc3339_ms;

pub(crate) fn owner_view(row: OwnerRow) -> OwnerView {
    OwnerView {
        email: row.email,
        name: row.name,
        status: row.status,
        created_at: rfc3339_ms(row.created_at_ms),
        departed_at: row.departed_at_ms.map(rfc3339_ms),
    }
}

pub(crate) fn agent_view(row: AgentRow) -> AgentView {
    AgentView {
        name: row.name,
        spiffe_id: row.spiffe_id,
        owner: row.owner_email,
        purpose: row.purpose,
        status: row.status.to_string(),
        status_reason: row.status_reason,
        ttl_seconds: row.ttl_secs,
        created_at: rfc3339_ms(row.created_at_ms),
        updated_at: rfc3339_ms(row.updated_at_ms),
    }
}

pub(crate) fn entitlement_view(row: EntitlementRow) -> EntitlementView {
    EntitlementView {
        entitlement: format!("{}:{}", row.action, row.resource),
        baseline: row.baseline,
        granted_at: rfc3339_ms(row.granted_at_ms),
        last_used_at: row.last_used_at_ms.map(rfc3339_ms),
    }
}

pub(crate) fn credential_view(row: CredentialRow, now_ms: i64) -> CredentialView {
    let state = if row.revoked_at_ms.is_some() {
        "revoked"
    } else if row.expires_at_ms <= now_ms {
        "expired"
    } else {
        "live"
    };
    CredentialView {
        serial: row.serial,
        kind: row.kind,
        state: state.to_owned(),
        fingerprint: row.fingerprint,
        public_key_fingerprint: row.public_key_fingerprint,
        issued_at: rfc3339_ms(row.issued_at_ms),
        expires_at: rfc3339_ms(row.expires_at_ms),
        revoked_at: row.revoked_at_ms.map(rfc3339_ms),
        revoke_reason: row.revoke_reason,
        parent_serial: row.parent_serial,
    }
}

pub(crate) fn finding_view(row: FindingRow) -> FindingView {
    FindingView {
        id: row.id,
        kind: row.kind,
        subject: row.subject,
        severity: row.severity,
        status: row.status,
        evidence: row.evidence,
        first_seen: rfc3339_ms(row.first_seen_ms),
        last_seen: rfc3339_ms(row.last_seen_ms),
        acceptance: match (row.accepted_by, row.accepted_at_ms, row.accepted_reason) {
            (Some(by), Some(at), Some(reason)) => Some(sigil_proto::AcceptanceView {
                by,
                at: rfc3339_ms(at),
                reason,
            }),
            _ => None,
        },
        resolved_at: row.resolved_at_ms.map(rfc3339_ms),
    }
}
