//! The accept loop: TLS handshake, the client-certificate check, then HTTP/1.1 or HTTP/2.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use sigil_agent::mtls::MaterialWatch;
use sigil_core::TrustDomain;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::link::{Driven, UpstreamLink};
use crate::proxy::{ConnectionIdentity, Gateway};
use crate::tls::verify_client_chain;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `gateway` on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    gateway: Arc<Gateway>,
    material: MaterialWatch,
    trust_domain: TrustDomain,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builder = connection_builder();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }

        let acceptor = acceptor.clone();
        let gateway = gateway.clone();
        let material = material.clone();
        let trust_domain = trust_domain.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };

            let identity = Arc::new(connection_identity(
                tls.get_ref().1.peer_certificates(),
                &material,
                &trust_domain,
            ));
            let link = Arc::new(UpstreamLink::default());
            let service = {
                let link = link.clone();
                service_fn(move |request| {
                    let gateway = gateway.clone();
                    let identity = identity.clone();
                    let link = link.clone();
                    async move {
                        let response = gateway.handle(request, &identity, Some(&link)).await;
                        Ok::<_, std::convert::Infallible>(response)
                    }
                })
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            let connection = Driven::new(watcher.watch(connection.into_owned()), link);
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }

    tracing::info!("gateway stopped accepting; draining open connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?DRAIN_TIMEOUT, "open connections did not finish in time; closing them");
    }
}

/// Maximum size of a request's header section, in bytes, over HTTP/1.1 and HTTP/2.
///
/// Larger requests get 431 (HTTP/1.1) or a stream error (HTTP/2) at the gateway, before any
/// check or forwarding; 64 KiB is more than common servers accept (nginx reads at most four
/// 8 KiB buffers by default).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long a client may take to send a request's header section on HTTP/1.1.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the HTTP/1.1 and HTTP/2 connection builder with the gateway's header limits.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(MAX_HEADER_BYTES)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
    builder
}

/// Checks the client's certificate chain once per connection.
fn connection_identity(
    peer: Option<&[rustls_pki_types::CertificateDer<'static>]>,
    material: &MaterialWatch,
    trust_domain: &TrustDomain,
) -> ConnectionIdentity {
    let Some(chain) = peer.filter(|chain| !chain.is_empty()) else {
        return ConnectionIdentity::Anonymous;
    };
    let Some(current) = material.borrow().clone() else {
        return ConnectionIdentity::Rejected(crate::Denial::new(
            crate::DenyKind::BadCertificate,
            "the gateway has no trust bundle yet",
        ));
    };
    match verify_client_chain(
        chain,
        &current.bundle_der,
        trust_domain,
        OffsetDateTime::now_utc(),
    ) {
        Ok(leaf) => ConnectionIdentity::Certificate(leaf),
        Err(denial) => {
            tracing::info!(reason = %denial.message, "client certificate rejected");
            ConnectionIdentity::Rejected(denial)
        }
    }
}
