//! Request paths that mean one thing to the gateway's route table and another to the upstream:
//! each is rejected before any route is matched, or forwarded in the one canonical form that was
//! authorised.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step fails the test"
)]

mod common;

use common::*;

#[tokio::test]
async fn traversal_paths_rejected() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;

    // The agent may read `/contacts/*` but not `/admin/*`.
    for target in [
        "/contacts/../admin/users",
        "/contacts/%2e%2e/admin/users",
        "/contacts/.%2E/admin/users",
        "/contacts/./1",
        "/contacts//1",
        "/contacts/%2fadmin",
        "/contacts/1%5c..%5cadmin",
        "/contacts/%zz",
        "http://evil.example/contacts/../admin/users",
    ] {
        let (status, body) = raw_request(&pki, &agent, &gateway, "GET", target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("invalid_path"), "{target}: {body}");
    }

    assert!(
        upstream.requests().is_empty(),
        "the upstream saw a rejected path: {:?}",
        upstream.requests()
    );
}

#[tokio::test]
async fn escaped_letters_forwarded_decoded() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;

    let (status, body) = raw_request(&pki, &agent, &gateway, "GET", "/contacts/%34%32?q=%41").await;

    assert_eq!(status, 200, "{body}");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path, "/contacts/42",
        "the upstream gets the authorised form"
    );
}

#[tokio::test]
async fn escaped_route_prefix_cannot_reach_other_route() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;

    // `%61dmin` is `admin`: it must be decided as `/admin/*`, which the agent may not use.
    let (status, body) = raw_request(&pki, &agent, &gateway, "GET", "/%61dmin/users").await;

    assert_eq!(status, 403, "{body}");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn lower_case_method_not_routed() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;

    let (status, body) = raw_request(&pki, &agent, &gateway, "get", "/contacts/1").await;

    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no_route"), "{body}");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn head_refusal_has_no_content() {
    let (pki, upstream, gateway, _agent) = setup_with_agent().await;

    // Over HTTP/2, a DATA frame after a HEAD response breaks the stream.
    let mut tls = client_tls(&pki, None);
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let http2 = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let response = http2.head(gateway.url("/contacts/1")).send().await.unwrap();

    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(response.bytes().await.unwrap().is_empty());
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn oversized_header_rejected() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;

    let result = client(&pki, Some(&agent))
        .get(gateway.url("/contacts/1"))
        .header("x-big", "b".repeat(200 * 1024))
        .send()
        .await;

    // The gateway answers 431 and closes the connection. When the client is still writing the
    // header at that moment, it sees the closed connection instead of the answer; what must
    // never happen is a wait until the client's timeout.
    match result {
        Ok(response) => assert_eq!(
            response.status(),
            reqwest::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        Err(err) => assert!(!err.is_timeout(), "the gateway did not answer: {err}"),
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn header_just_over_limit_rejected() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;
    let client = client(&pki, Some(&agent));

    // Just under the limit passes; just over it is refused every time, however the bytes
    // arrive. Each header field counts its name, value and 4 bytes.
    let under = "u".repeat(60 * 1024);
    let response = client
        .get(gateway.url("/contacts/1"))
        .header("x-big", &under)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    let over = "o".repeat(65 * 1024);
    for attempt in 0..10 {
        let response = client
            .get(gateway.url("/contacts/2"))
            .header("x-big", &over)
            .send()
            .await;
        match response {
            Ok(response) => assert_eq!(
                response.status(),
                reqwest::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "attempt {attempt}"
            ),
            Err(err) => assert!(!err.is_timeout(), "the gateway did not answer: {err}"),
        }
    }
    let forwarded: Vec<_> = upstream
        .requests()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(forwarded, ["/contacts/1"]);
}
