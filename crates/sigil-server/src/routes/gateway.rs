//! Gateway routes: join tokens for gateways, the state they decide with, and the denials they
//! report.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rustls_pki_types::DnsName;
use serde_json::json;
use sigil_core::{AgentName, AuditRecord, SpiffeId};
use sigil_proto::{
    CreateGatewayTokenRequest, GatewayAgent, GatewayDenial, GatewayDenialBatch,
    GatewayDenialsResponse, GatewayPolicy, GatewayState, GatewayTokenResponse,
};
use sigil_store::NewGatewayToken;

use super::tokens::{generate_token, token_hash, token_id, token_ttl};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::{AdminCaller, ApiJson, EnforcementCaller, GatewayCaller};
use crate::state::AppState;

/// Maximum number of extra SANs a gateway may have.
const MAX_SANS: usize = 32;

/// Maximum number of denials in one `POST /v1/gateway/denials`.
pub(crate) const MAX_DENIALS: usize = 1000;

/// Body limit of `POST /v1/gateway/denials`, enough for [`MAX_DENIALS`] denials of ordinary
/// size.
pub(crate) const DENIALS_BODY_LIMIT: usize = 1024 * 1024;

/// Maximum length in bytes of a denial's path, principal, action or resource.
const MAX_DENIAL_FIELD: usize = 2048;

/// Reasons counted under their own label in `sigil_gateway_denials_total`; any other reason is
/// counted as `other`, so that the label's values stay few.
const KNOWN_REASONS: &[&str] = &[
    "policy",
    "revoked",
    "inactive-agent",
    "unknown-agent",
    "no-route",
    "bad-certificate",
    "bad-token",
    "stale",
    "no-credential",
    "invalid-path",
    "headers-too-large",
];

/// Creates a join token for a gateway, registering the gateway on first use.
pub(super) async fn create_gateway_token(
    state: &AppState,
    caller: &AdminCaller,
    request: CreateGatewayTokenRequest,
) -> Result<(StatusCode, Json<GatewayTokenResponse>), ApiError> {
    let name = AgentName::new(&request.gateway)
        .map_err(|err| ApiError::bad_request("invalid_name", err.to_string()))?;
    let sans = checked_sans(&request.sans)?;
    let ttl = token_ttl(request.ttl.as_deref())?;
    let spiffe_id = format!("spiffe://{}/gateway/{name}", state.trust_domain);
    SpiffeId::parse(&spiffe_id)
        .map_err(|err| ApiError::bad_request("invalid_name", err.to_string()))?;

    let now = state.clock.now();
    let expires_at = now + crate::authority::to_time(ttl);
    let token = generate_token();
    let hash = token_hash(&token);
    let record = AuditRecord {
        at_ms: crate::clock::unix_ms(now),
        actor: caller.svid.spiffe_id.to_string(),
        action: "gateway_token.created".into(),
        subject: spiffe_id.clone(),
        outcome: "success".into(),
        details: json!({
            "token_id": token_id(&hash),
            "sans": sans,
            "expires_at": rfc3339(expires_at),
        })
        .to_string(),
    };
    let gateway = state
        .store
        .create_gateway_token(
            &NewGatewayToken {
                gateway: name.as_str(),
                spiffe_id: &spiffe_id,
                sans: &sans,
                token_hash: &hash,
                created_at_ms: record.at_ms,
                expires_at_ms: crate::clock::unix_ms(expires_at),
            },
            record,
        )
        .await?;
    tracing::info!(gateway = %name, token_id = token_id(&hash), "gateway join token created");

    Ok((
        StatusCode::CREATED,
        Json(GatewayTokenResponse {
            token,
            gateway: gateway.name,
            spiffe_id: gateway.spiffe_id,
            sans: gateway.sans,
            expires_at: rfc3339(expires_at),
        }),
    ))
}

/// Checks that every SAN is a DNS name or an IP address, and returns them normalised: DNS names
/// in lowercase, IP addresses in their canonical text. Duplicates and the loopback names, which
/// every gateway certificate carries anyway, are dropped.
fn checked_sans(sans: &[String]) -> Result<Vec<String>, ApiError> {
    if sans.len() > MAX_SANS {
        return Err(ApiError::bad_request(
            "invalid_san",
            format!(
                "a gateway may have at most {MAX_SANS} extra SANs, not {}",
                sans.len()
            ),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(sans.len());
    for san in sans {
        let normalised = if let Ok(ip) = san.parse::<IpAddr>() {
            ip.to_string()
        } else {
            let lower = san.to_ascii_lowercase();
            if DnsName::try_from(lower.as_str()).is_err() || lower.contains('*') {
                return Err(ApiError::bad_request(
                    "invalid_san",
                    format!(
                        "invalid SAN `{}`: give a DNS name (such as gw.example.org) or an IP \
                         address (such as 10.0.0.5); wildcards, URIs and ports are not accepted",
                        san.chars().take(100).collect::<String>()
                    ),
                ));
            }
            lower
        };
        if !DEFAULT_SANS.contains(&normalised.as_str()) && !checked.contains(&normalised) {
            checked.push(normalised);
        }
    }
    Ok(checked)
}

/// Names every gateway certificate covers.
pub(super) const DEFAULT_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Splits a gateway's SANs (defaults first, then the recorded ones) into DNS names and IP
/// addresses for issuance.
pub(super) fn gateway_names(recorded: &[String]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    for san in DEFAULT_SANS
        .iter()
        .copied()
        .chain(recorded.iter().map(String::as_str))
    {
        match san.parse::<IpAddr>() {
            Ok(ip) if !ip_addresses.contains(&ip) => ip_addresses.push(ip),
            Ok(_) => {}
            Err(_) if !dns_names.iter().any(|name| name == san) => dns_names.push(san.to_owned()),
            Err(_) => {}
        }
    }
    (dns_names, ip_addresses)
}

/// `GET /v1/gateway/state`: the agents, entitlements, custom policies and revoked serials a
/// gateway decides with, as of revocation event `seq`.
pub(super) async fn gateway_state(
    State(state): State<AppState>,
    _caller: EnforcementCaller,
) -> Result<Json<GatewayState>, ApiError> {
    let snapshot = state.store.gateway_snapshot(state.clock.now_ms()).await?;

    let mut entitlements: HashMap<String, Vec<String>> = HashMap::new();
    for (agent, action, resource) in snapshot.entitlements {
        entitlements
            .entry(agent)
            .or_default()
            .push(format!("{action}:{resource}"));
    }
    let agents = snapshot
        .agents
        .into_iter()
        .map(|agent| GatewayAgent {
            entitlements: entitlements.remove(&agent.name).unwrap_or_default(),
            name: agent.name,
            spiffe_id: agent.spiffe_id,
            owner: agent.owner_email,
            status: agent.status.as_str().to_owned(),
        })
        .collect();
    let policies = snapshot
        .policies
        .into_iter()
        .map(|policy| GatewayPolicy {
            id: policy.id,
            text: policy.text,
        })
        .collect();

    Ok(Json(GatewayState {
        seq: u64::try_from(snapshot.seq).unwrap_or(0),
        policy_version: u64::try_from(snapshot.policy_version).unwrap_or(0),
        agents,
        policies,
        revoked_serials: snapshot.revoked_serials,
    }))
}

/// `POST /v1/gateway/denials`: appends one audit event per denial a gateway reports.
pub(super) async fn report_denials(
    State(state): State<AppState>,
    caller: GatewayCaller,
    ApiJson(batch): ApiJson<GatewayDenialBatch>,
) -> Result<Json<GatewayDenialsResponse>, ApiError> {
    if batch.denials.len() > MAX_DENIALS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_denials",
            format!(
                "a batch holds at most {MAX_DENIALS} denials, not {}; send smaller batches",
                batch.denials.len()
            ),
        ));
    }
    if batch.denials.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_denial",
            "the batch has no denials; send at least one",
        ));
    }

    let now_ms = state.clock.now_ms();
    let mut records = Vec::with_capacity(batch.denials.len());
    for (index, denial) in batch.denials.iter().enumerate() {
        check_denial(denial, now_ms).map_err(|reason| {
            ApiError::bad_request("invalid_denial", format!("denial {index}: {reason}"))
        })?;
        records.push(denial_record(&caller.spiffe_id, denial, now_ms));
    }

    let recorded = records.len();
    state.store.record_audits(records).await?;
    for denial in &batch.denials {
        crate::metrics::gateway_denial(reason_label(&denial.reason));
    }
    tracing::info!(gateway = %caller.spiffe_id, recorded, "gateway denials recorded");
    Ok(Json(GatewayDenialsResponse { recorded }))
}

/// Checks one denial; returns what is wrong with it.
fn check_denial(denial: &GatewayDenial, now_ms: i64) -> Result<(), String> {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    if denial.at_ms <= 0 || denial.at_ms > now_ms + DAY_MS {
        return Err(format!(
            "`at_ms` {} is not a plausible time in Unix milliseconds",
            denial.at_ms
        ));
    }

    if let Some(principal) = &denial.principal {
        check_text("principal", principal)?;
        SpiffeId::parse(principal)
            .map_err(|err| format!("`principal` is not a SPIFFE ID: {err}"))?;
    }
    if denial.method.is_empty()
        || denial.method.len() > 32
        || !denial
            .method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b))
    {
        return Err("`method` is not an HTTP method".into());
    }

    check_text("path", &denial.path)?;
    // `*` is the asterisk-form request target of `OPTIONS *` (RFC 9112 section 3.2.4), and
    // `host:port` the authority-form target of `CONNECT` (section 3.2.3).
    let authority_form = denial.method == "CONNECT"
        && denial.path.parse::<axum::http::uri::Authority>().is_ok()
        && !denial.path.contains('/');
    if !denial.path.starts_with('/') && denial.path != "*" && !authority_form {
        return Err("`path` must start with `/`, be `*`, or be `host:port` for CONNECT".into());
    }

    for (field, value) in [("action", &denial.action), ("resource", &denial.resource)] {
        if let Some(value) = value {
            check_text(field, value)?;
        }
    }

    if denial.reason.is_empty()
        || denial.reason.len() > 64
        || !denial
            .reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("`reason` must be 1 to 64 lowercase letters, digits or `-`".into());
    }

    if !(400..=599).contains(&denial.status) {
        return Err(format!(
            "`status` {} is not an HTTP error status (400 to 599)",
            denial.status
        ));
    }
    Ok(())
}

fn check_text(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_DENIAL_FIELD {
        return Err(format!("`{field}` must be 1 to {MAX_DENIAL_FIELD} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{field}` contains control characters"));
    }
    Ok(())
}

/// Builds the audit event of one denial. The query string is dropped from the path, because it
/// may carry credentials.
fn denial_record(gateway: &str, denial: &GatewayDenial, now_ms: i64) -> AuditRecord {
    let path = denial.path.split('?').next().unwrap_or_default();
    AuditRecord {
        at_ms: now_ms,
        actor: gateway.to_owned(),
        action: "gateway.denied".into(),
        subject: denial
            .principal
            .clone()
            .unwrap_or_else(|| "anonymous".to_owned()),
        outcome: "denied".into(),
        details: json!({
            "denied_at_ms": denial.at_ms,
            "method": denial.method,
            "path": path,
            "action": denial.action,
            "resource": denial.resource,
            "reason": denial.reason,
            "status": denial.status,
        })
        .to_string(),
    }
}

fn reason_label(reason: &str) -> &'static str {
    KNOWN_REASONS
        .iter()
        .find(|known| **known == reason)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sans_normalised_and_checked() {
        let given = vec![
            "GW.Example.org".to_owned(),
            "10.0.0.5".to_owned(),
            "localhost".to_owned(),
            "gw.example.org".to_owned(),
            "::1".to_owned(),
            "fd00::0001".to_owned(),
        ];
        let checked = checked_sans(&given).ok();
        assert_eq!(
            checked,
            Some(vec![
                "gw.example.org".to_owned(),
                "10.0.0.5".to_owned(),
                "fd00::1".to_owned()
            ])
        );
        for bad in [
            "*.example.org",
            "https://gw.example.org",
            "gw.example.org:8443",
            "spiffe://example.org/gateway/x",
            "",
            "a b",
            "user@host",
        ] {
            let result = checked_sans(&[bad.to_owned()]);
            assert!(
                matches!(&result, Err(err) if err.code == "invalid_san"),
                "`{bad}` was accepted"
            );
        }
    }

    #[test]
    fn gateway_names_start_with_loopback() {
        let (dns, ips) = gateway_names(&["gw.example.org".into(), "10.0.0.5".into()]);
        assert_eq!(
            dns,
            vec!["localhost".to_owned(), "gw.example.org".to_owned()]
        );
        let expected: Vec<IpAddr> = ["127.0.0.1", "::1", "10.0.0.5"]
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        assert_eq!(ips, expected);
    }

    fn denial() -> GatewayDenial {
        GatewayDenial {
            at_ms: 1_800_000_000_000,
            principal: Some("spiffe://example.org/agent/bot".into()),
            method: "GET".into(),
            path: "/tools/crm?token=secret".into(),
            action: Some("invoke".into()),
            resource: Some("tool:crm/x".into()),
            reason: "policy".into(),
            status: 403,
        }
    }

    #[test]
    fn denial_checks() {
        let now = 1_800_000_000_000;
        assert_eq!(check_denial(&denial(), now), Ok(()));
        let cases: Vec<(&str, GatewayDenial)> = vec![
            (
                "time zero",
                GatewayDenial {
                    at_ms: 0,
                    ..denial()
                },
            ),
            (
                "bad principal",
                GatewayDenial {
                    principal: Some("spiffe://example.org/a/../b".into()),
                    ..denial()
                },
            ),
            (
                "bad method",
                GatewayDenial {
                    method: "GE T".into(),
                    ..denial()
                },
            ),
            (
                "relative path",
                GatewayDenial {
                    path: "tools".into(),
                    ..denial()
                },
            ),
            (
                "control character",
                GatewayDenial {
                    path: "/a\nb".into(),
                    ..denial()
                },
            ),
            (
                "bad reason",
                GatewayDenial {
                    reason: "Policy!".into(),
                    ..denial()
                },
            ),
            (
                "success status",
                GatewayDenial {
                    status: 200,
                    ..denial()
                },
            ),
            (
                "long resource",
                GatewayDenial {
                    resource: Some("r".repeat(3000)),
                    ..denial()
                },
            ),
        ];
        for (case, bad) in cases {
            assert!(check_denial(&bad, now).is_err(), "{case} was accepted");
        }
    }

    #[test]
    fn denial_record_drops_query() {
        let record = denial_record("spiffe://example.org/gateway/edge", &denial(), 1);
        assert!(!record.details.contains("secret"), "{}", record.details);
        assert!(record.details.contains("/tools/crm"));
        assert_eq!(record.actor, "spiffe://example.org/gateway/edge");
    }
}
