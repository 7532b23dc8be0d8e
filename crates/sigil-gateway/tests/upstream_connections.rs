//! How the gateway handles connections. Each HTTP/1.1 client connection keeps one upstream
//! connection and opens a new one when the upstream closes it. HTTP/2 clients use the shared
//! pool. An unreachable upstream gives 502, and idle client connections are closed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    AGENT_ID, Credential, IDLE_TIMEOUT, OWNER, Pki, TestGateway, client, client_tls, error_code,
    open_connection, setup_with_agent, tls_stream,
};
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use time::OffsetDateTime;

/// Sends `GET path` on an open connection and returns the status and body.
async fn send(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> (StatusCode, String) {
    sender.ready().await.unwrap();
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn one_upstream_connection_per_client() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;

    let mut first = open_connection(&pki, &agent, &gateway).await;
    for index in 0..5 {
        let (status, body) = send(&mut first, &format!("/contacts/{index}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "hello from upstream");
    }
    assert_eq!(
        upstream.connection_count(),
        1,
        "five requests, one upstream connection"
    );

    let mut second = open_connection(&pki, &agent, &gateway).await;
    let (status, _) = send(&mut second, "/contacts/9").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        upstream.connection_count(),
        2,
        "a second client connection opens its own"
    );

    let seen = upstream.requests();
    assert_eq!(seen.len(), 6);
    let upstream_authority = upstream.url.trim_start_matches("http://");
    for request in &seen {
        assert_eq!(request.headers["host"], upstream_authority);
        assert_eq!(request.headers["x-sigil-agent"], AGENT_ID);
        assert_eq!(request.headers["x-sigil-owner"], OWNER);
    }
}

#[tokio::test]
async fn closed_upstream_connection_reopened() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;
    let mut connection = open_connection(&pki, &agent, &gateway).await;

    // The upstream responds to this one with `connection: close` and closes its side.
    let (status, body) = send(&mut connection, "/contacts/close").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "closing");

    // The client's connection to the gateway stays open. The next request needs a new upstream
    // connection, whether or not the gateway has noticed the close yet.
    let (status, body) = send(&mut connection, "/contacts/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "hello from upstream");

    // Once the close has been seen, too.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _) = send(&mut connection, "/contacts/close").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _) = send(&mut connection, "/contacts/2").await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(upstream.connection_count(), 3);
    assert_eq!(upstream.requests().len(), 4);
}

#[tokio::test]
async fn http2_uses_shared_pool() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;
    let client = http2_client(&pki, &agent);

    let requests = (0..4).map(|index| {
        let client = client.clone();
        let url = gateway.url(&format!("/contacts/{index}"));
        async move { client.get(url).send().await.unwrap() }
    });
    let responses = futures_join_all(requests).await;

    for response in responses {
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "hello from upstream");
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 4);
    for request in &seen {
        assert_eq!(request.headers["x-sigil-agent"], AGENT_ID);
    }
}

#[tokio::test]
async fn unreachable_upstream_gives_502() {
    let pki = Pki::new();
    // A port that was free a moment ago and has no listener now.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gateway = TestGateway::start_for_url(&pki, &url, Duration::from_secs(10)).await;
    let agent = pki.issue(AGENT_ID, OffsetDateTime::now_utc());

    let mut connection = open_connection(&pki, &agent, &gateway).await;
    let (status, body) = send(&mut connection, "/contacts/1").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("upstream_unavailable"), "{body}");
    assert!(
        !body.contains("127.0.0.1"),
        "the error must not reveal the upstream: {body}"
    );

    // The client connection survives the failure.
    let (status, _) = send(&mut connection, "/contacts/2").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    // HTTP/2 requests, which use the pool, fail the same way.
    let client = http2_client(&pki, &agent);
    let response = client.get(gateway.url("/contacts/3")).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(response).await, "upstream_unavailable");
}

#[tokio::test]
async fn idle_client_connection_closed() {
    let (pki, _upstream, gateway, agent) = setup_with_agent().await;
    let mut connection = open_connection(&pki, &agent, &gateway).await;
    let (status, _) = send(&mut connection, "/contacts/1").await;
    assert_eq!(status, StatusCode::OK);

    tokio::time::sleep(IDLE_TIMEOUT * 3).await;
    assert!(
        connection.is_closed(),
        "the gateway keeps an idle connection open past its idle timeout"
    );
}

#[tokio::test]
async fn slow_header_section_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (pki, upstream, gateway, agent) = setup_with_agent().await;
    let mut tls = tls_stream(&pki, Some(&agent), None, &gateway).await;
    tls.write_all(b"GET /contacts/1 HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();

    // One header byte every 100 ms never completes the header section.
    let started = std::time::Instant::now();
    let closed = async {
        let mut buffer = [0_u8; 256];
        loop {
            tokio::select! {
                read = tls.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if tls.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(IDLE_TIMEOUT * 6, closed)
        .await
        .expect("the gateway kept a connection whose header section never ended");
    assert!(started.elapsed() >= IDLE_TIMEOUT);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn idle_http2_connection_closed() {
    use tokio::io::AsyncReadExt;

    let (pki, _upstream, gateway, _agent) = setup_with_agent().await;
    // No client certificate, ALPN `h2`, and not even the connection preface.
    let mut tls = tls_stream(&pki, None, Some(b"h2"), &gateway).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let started = std::time::Instant::now();
    let closed = async {
        let mut buffer = [0_u8; 256];
        // The server's SETTINGS frame comes first; the close follows the idle timeout.
        while let Ok(read) = tls.read(&mut buffer).await {
            if read == 0 {
                return;
            }
        }
    };
    tokio::time::timeout(IDLE_TIMEOUT * 6, closed)
        .await
        .expect("the gateway kept an HTTP/2 connection that opened no stream");
    assert!(started.elapsed() >= IDLE_TIMEOUT);
}

#[tokio::test]
async fn quiet_stream_outlives_idle_timeout() {
    let (pki, upstream, gateway, agent) = setup_with_agent().await;
    let mut response = client(&pki, Some(&agent))
        .get(gateway.url("/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The stream is silent for longer than the idle timeout, then goes on.
    tokio::time::sleep(IDLE_TIMEOUT * 3).await;
    let event = Bytes::from_static(b"data: late\n\n");
    upstream.events.send(event.clone()).await.unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the event arrived")
        .unwrap()
        .unwrap();
    assert_eq!(chunk, event);
}

/// Builds an HTTPS client that offers only HTTP/2 by ALPN and presents `agent`.
fn http2_client(pki: &Pki, agent: &Credential) -> reqwest::Client {
    let mut tls = client_tls(pki, Some(agent));
    tls.alpn_protocols = vec![b"h2".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs the futures at the same time and returns their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}
