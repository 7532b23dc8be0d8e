//! Agent-to-agent mutual TLS with configurations built from two running Workload APIs.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a setup error"
)]

mod common;

use std::sync::Arc;

use common::Authority;
use common::daemon::{Daemon, enroll};
use sigil_agent::mtls::{
    AllowList, MaterialWatch, client_config, server_config, watch_workload_api,
};
use sigil_core::{SpiffeId, TrustDomain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn id(name: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://example.org/agent/{name}")).unwrap()
}

fn allow(names: &[&str]) -> AllowList {
    AllowList::new(
        TrustDomain::new("example.org").unwrap(),
        names.iter().map(|n| id(n)),
    )
    .unwrap()
}

/// Runs one exchange; returns the reply or the first error seen by either side.
async fn exchange(
    server: MaterialWatch,
    server_allows: &[&str],
    client: MaterialWatch,
    client_allows: &[&str],
) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(server, allow(server_allows)).unwrap(),
    ));
    let server_task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor
            .accept(stream)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let mut request = [0u8; 4];
        tls.read_exact(&mut request)
            .await
            .map_err(|e| format!("server: {e}"))?;
        tls.write_all(b"pong")
            .await
            .map_err(|e| format!("server: {e}"))?;
        tls.shutdown().await.map_err(|e| format!("server: {e}"))?;
        Ok::<(), String>(())
    });

    let connector = TlsConnector::from(Arc::new(
        client_config(client, allow(client_allows)).unwrap(),
    ));
    let stream = TcpStream::connect(address).await.unwrap();
    let client_result = async {
        let mut tls = connector
            .connect("peer.invalid".try_into().unwrap(), stream)
            .await
            .map_err(|e| format!("client: {e}"))?;
        tls.write_all(b"ping")
            .await
            .map_err(|e| format!("client: {e}"))?;
        let mut reply = String::new();
        tls.read_to_string(&mut reply)
            .await
            .map_err(|e| format!("client: {e}"))?;
        Ok::<String, String>(reply)
    }
    .await;
    let server_result = server_task.await.unwrap();

    match (client_result, server_result) {
        (Ok(reply), Ok(())) => Ok(reply),
        (Err(client), Err(server)) => Err(format!("{client}; {server}")),
        (Err(err), _) | (_, Err(err)) => Err(err),
    }
}

#[test]
fn agents_call_each_other() {
    let authority = Authority::start();
    let (callee_out, callee_token) = enroll(&authority, "callee", "15m");
    let (caller_out, caller_token) = enroll(&authority, "caller", "15m");
    let (intruder_out, intruder_token) = enroll(&authority, "intruder", "15m");
    let callee = Daemon::start(&authority, &callee_out, Some(&callee_token), &[]);
    let caller = Daemon::start(&authority, &caller_out, Some(&caller_token), &[]);
    let intruder = Daemon::start(&authority, &intruder_out, Some(&intruder_token), &[]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let callee = watch_workload_api(&callee.endpoint()).await.unwrap();
        let caller = watch_workload_api(&caller.endpoint()).await.unwrap();
        let intruder = watch_workload_api(&intruder.endpoint()).await.unwrap();

        let reply = exchange(callee.clone(), &["caller"], caller.clone(), &["callee"]).await;
        assert_eq!(reply, Ok("pong".to_owned()), "allowed peers must talk");

        let reversed = exchange(caller.clone(), &["callee"], callee.clone(), &["caller"]).await;
        assert_eq!(
            reversed,
            Ok("pong".to_owned()),
            "the call must work in the other direction too"
        );

        let refused = exchange(callee.clone(), &["caller"], intruder.clone(), &["callee"]).await;
        let error = refused.expect_err("a client with a valid SVID but another ID must be refused");
        assert!(
            error.contains("not on the allow-list") || error.contains("server:"),
            "{error}"
        );

        let wrong_server =
            exchange(intruder.clone(), &["caller"], caller.clone(), &["callee"]).await;
        let error =
            wrong_server.expect_err("a server with a valid SVID but another ID must be refused");
        assert!(error.contains("not on the allow-list"), "{error}");
    });
}

#[test]
fn allow_list_rejects_foreign_ids() {
    let foreign = SpiffeId::parse("spiffe://other.org/agent/x").unwrap();
    let result = AllowList::new(TrustDomain::new("example.org").unwrap(), [foreign]);
    assert!(
        result.is_err(),
        "IDs of another trust domain cannot be allowed"
    );
}
