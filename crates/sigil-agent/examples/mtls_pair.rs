//! Two agents calling each other over mutual TLS, each with the identity its own `sigil-agent`
//! serves on a Workload API socket.
//!
//! ```sh
//! cargo run -p sigil-agent --example mtls_pair -- \
//!     unix:/tmp/callee.sock spiffe://example.org/agent/callee \
//!     unix:/tmp/caller.sock spiffe://example.org/agent/caller
//! ```
//!
//! The callee accepts only the caller's SPIFFE ID and the caller accepts only the callee's, so
//! a peer with a valid certificate but another ID is refused during the handshake.

use std::sync::Arc;

use anyhow::Context;
use sigil_agent::mtls::{AllowList, client_config, server_config, watch_workload_api};
use sigil_core::{SpiffeId, TrustDomain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [callee_socket, callee_id, caller_socket, caller_id] = args.as_slice() else {
        anyhow::bail!("usage: mtls_pair CALLEE_SOCKET CALLEE_ID CALLER_SOCKET CALLER_ID");
    };
    let callee_id = SpiffeId::parse(callee_id)?;
    let caller_id = SpiffeId::parse(caller_id)?;
    let trust_domain = TrustDomain::new(callee_id.trust_domain_name())?;

    let callee = watch_workload_api(callee_socket).await?;
    let caller = watch_workload_api(caller_socket).await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config(
        callee,
        AllowList::new(trust_domain.clone(), [caller_id])?,
    )?));
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut tls = acceptor.accept(stream).await?;
        let mut request = [0u8; 5];
        tls.read_exact(&mut request).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        anyhow::Ok(())
    });

    let connector = TlsConnector::from(Arc::new(client_config(
        caller,
        AllowList::new(trust_domain, [callee_id])?,
    )?));
    let stream = TcpStream::connect(address).await?;
    let mut tls = connector
        .connect("callee.invalid".try_into()?, stream)
        .await
        .context("mutual TLS handshake failed")?;
    tls.write_all(b"ping!").await?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await?;
    server.await??;

    println!("caller sent ping!, callee answered {reply}");
    Ok(())
}
