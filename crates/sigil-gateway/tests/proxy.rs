//! The gateway over real TLS and loopback HTTP: who gets through, who does not, and what the
//! upstream sees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use reqwest::StatusCode;
use sigil_proto::RevocationEvent;
use time::OffsetDateTime;

async fn setup() -> (Pki, RecordingUpstream, TestGateway) {
    let pki = Pki::new();
    let upstream = RecordingUpstream::start().await;
    let gateway = TestGateway::start(&pki, &upstream, Duration::from_secs(10)).await;
    (pki, upstream, gateway)
}

/// Sends `GET path` with `client` and returns the response.
async fn get(client: &reqwest::Client, gateway: &TestGateway, path: &str) -> reqwest::Response {
    client.get(gateway.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn allowed_request_forwarded_with_identity() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());

    let response = get(&client(&pki, Some(&agent)), &gateway, "/contacts/42?x=1").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "hello from upstream");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/contacts/42");
    assert_eq!(seen[0].headers["x-sigil-agent"], AGENT_ID);
    assert_eq!(seen[0].headers["x-sigil-owner"], OWNER);
}

#[tokio::test]
async fn bearer_token_allowed_and_not_forwarded() {
    let (pki, upstream, gateway) = setup().await;
    let token = gateway.token(AGENT_ID, GATEWAY_ID);

    let response = client(&pki, None)
        .get(gateway.url("/contacts/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-sigil-agent"], AGENT_ID);
    assert!(!seen[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn bearer_for_other_audience_rejected() {
    let (pki, upstream, mut gateway) = setup().await;
    let token = gateway.token(AGENT_ID, "spiffe://example.org/gateway/other");

    let response = client(&pki, None)
        .get(gateway.url("/contacts/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.text().await.unwrap();
    assert!(body.contains("invalid_token"), "{body}");
    assert!(!body.contains(&token), "the error body repeats the token");
    assert!(upstream.requests().is_empty());
    assert_eq!(gateway.next_denial().await.reason, "bad-token");
}

#[tokio::test]
async fn missing_credential_rejected() {
    let (pki, upstream, _gateway_guard) = setup().await;
    let gateway = &_gateway_guard;

    let response = get(&client(&pki, None), gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "unauthenticated");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn certificate_from_other_ca_rejected() {
    let (pki, upstream, gateway) = setup().await;
    let other = Pki::new();
    let foreign = other.issue(AGENT_ID, OffsetDateTime::now_utc());

    let response = get(&client(&pki, Some(&foreign)), &gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_certificate");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn expired_svid_rejected() {
    let (pki, upstream, gateway) = setup().await;
    // Issued an hour ago for 15 minutes, still under the signing CA's validity.
    let expired = pki.issue(
        AGENT_ID,
        OffsetDateTime::now_utc() - time::Duration::hours(1),
    );

    let response = get(&client(&pki, Some(&expired)), &gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.text().await.unwrap();
    assert!(body.contains("expired"), "{body}");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn two_uri_sans_rejected() {
    let (pki, upstream, gateway) = setup().await;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![
        rcgen::SanType::URI(AGENT_ID.try_into().unwrap()),
        rcgen::SanType::URI("spiffe://example.org/agent/other".try_into().unwrap()),
    ];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let twin = pki.sign_raw(params);

    let response = get(&client(&pki, Some(&twin)), &gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_certificate");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn ca_certificate_as_client_rejected() {
    let (pki, upstream, gateway) = setup().await;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.subject_alt_names = vec![rcgen::SanType::URI(AGENT_ID.try_into().unwrap())];
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let ca = pki.sign_raw(params);

    let response = get(&client(&pki, Some(&ca)), &gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_certificate");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn spoofed_sigil_headers_replaced() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());

    let response = client(&pki, Some(&agent))
        .get(gateway.url("/contacts/1"))
        .header("X-Sigil-Agent", "spiffe://example.org/agent/admin")
        .header("x-sigil-owner", "ceo@example.org")
        .header("X-Sigil-Extra", "1")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    let agents: Vec<_> = seen[0].headers.get_all("x-sigil-agent").iter().collect();
    assert_eq!(agents, vec![AGENT_ID]);
    let owners: Vec<_> = seen[0].headers.get_all("x-sigil-owner").iter().collect();
    assert_eq!(owners, vec![OWNER]);
    assert!(!seen[0].headers.contains_key("x-sigil-extra"));
}

#[tokio::test]
async fn revoked_serial_denied() {
    let (pki, upstream, mut gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    gateway.view.apply(&RevocationEvent::Revoke {
        seq: 2,
        at_ms: 0,
        serials: vec![agent.serial_hex.clone()],
        agent: Some("crm-bot".into()),
    });

    let response = get(&client(&pki, Some(&agent)), &gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "revoked");
    assert!(upstream.requests().is_empty());
    let denial = gateway.next_denial().await;
    assert_eq!(denial.reason, "revoked");
    assert_eq!(denial.principal.as_deref(), Some(AGENT_ID));
}

#[tokio::test]
async fn revocation_applies_to_open_connection() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    let client = client(&pki, Some(&agent));
    assert_eq!(
        get(&client, &gateway, "/contacts/1").await.status(),
        StatusCode::OK
    );

    gateway.view.apply(&RevocationEvent::Revoke {
        seq: 2,
        at_ms: 0,
        serials: vec![agent.serial_hex.clone()],
        agent: None,
    });

    assert_eq!(
        get(&client, &gateway, "/contacts/2").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn suspended_agent_denied() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    gateway.view.apply(&RevocationEvent::AgentStatus {
        seq: 2,
        at_ms: 0,
        agent: "crm-bot".into(),
        spiffe_id: AGENT_ID.into(),
        status: "suspended".into(),
    });

    let response = get(&client(&pki, Some(&agent)), &gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "agent_inactive");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn unknown_agent_denied() {
    let (pki, upstream, gateway) = setup().await;
    let stranger = pki.issue(
        "spiffe://example.org/agent/stranger",
        OffsetDateTime::now_utc(),
    );

    let response = get(&client(&pki, Some(&stranger)), &gateway, "/contacts/1").await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "unknown_agent");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn unmatched_route_denied() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    let client = client(&pki, Some(&agent));

    let unrouted = get(&client, &gateway, "/elsewhere").await;
    let wrong_method = client
        .post(gateway.url("/contacts/1"))
        .send()
        .await
        .unwrap();

    assert_eq!(unrouted.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(unrouted).await, "no_route");
    assert_eq!(wrong_method.status(), StatusCode::FORBIDDEN);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn policy_denies_missing_entitlement() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());

    let response = get(&client(&pki, Some(&agent)), &gateway, "/admin/users").await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(response).await, "forbidden");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn newer_state_grants_access() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    let mut granted = state(5, 2, "active", vec![]);
    granted.agents[0]
        .entitlements
        .push("admin:tool:crm/admin".into());

    gateway.view.install(granted).unwrap();

    let response = get(&client(&pki, Some(&agent)), &gateway, "/admin/users").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn stale_view_fails_closed() {
    let pki = Pki::new();
    let upstream = RecordingUpstream::start().await;
    let gateway = TestGateway::start(&pki, &upstream, Duration::from_millis(200)).await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    let client = client(&pki, Some(&agent));
    assert_eq!(
        get(&client, &gateway, "/contacts/1").await.status(),
        StatusCode::OK
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = get(&client, &gateway, "/contacts/2").await;

    assert_eq!(stale.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = stale.text().await.unwrap();
    assert!(body.contains("stale_view"), "{body}");
    assert!(body.contains("has not heard from the authority"), "{body}");
    assert_eq!(upstream.requests().len(), 1);

    gateway.heartbeat();
    assert_eq!(
        get(&client, &gateway, "/contacts/3").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn server_sent_events_stream_through() {
    let (pki, upstream, gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    let mut response = get(&client(&pki, Some(&agent)), &gateway, "/events").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    // Each event is sent only after the previous one reached the client, so buffering anywhere
    // on the way would stall the test.
    for index in 0..3 {
        let event = format!("id: {index}\ndata: event {index}\n\n");
        upstream
            .events
            .send(Bytes::from(event.clone()))
            .await
            .unwrap();
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("event arrived before the next was sent")
            .unwrap()
            .unwrap();
        assert_eq!(chunk, event.as_bytes());
    }
}

#[tokio::test]
async fn shutdown_drains_every_worker() {
    let (pki, _upstream, mut gateway) = setup().await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());
    let response = get(&client(&pki, Some(&agent)), &gateway, "/contacts/42").await;
    assert_eq!(response.status(), StatusCode::OK);

    tokio::time::timeout(Duration::from_secs(15), gateway.shutdown())
        .await
        .expect("the workers drain within the timeout")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(gateway.addr).await.is_err(),
        "the listening socket is closed once every worker has stopped"
    );
}
