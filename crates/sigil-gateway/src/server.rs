//! The accept loop: TLS handshake, the client-certificate check, then HTTP/1.1 or HTTP/2.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use sigil_agent::mtls::MaterialWatch;
use sigil_core::TrustDomain;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::driven::{Activity, Driven, GuardedBody, IdleDeadline};
use crate::link::UpstreamLink;
use crate::proxy::{ConnectionIdentity, Gateway, MAX_HEADER_BYTES};
use crate::tls::verify_client_chain;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `gateway` on `listener` until `shutdown` completes, then drains open connections.
///
/// A connection that serves no request for `idle_timeout` is closed.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    gateway: Arc<Gateway>,
    material: MaterialWatch,
    trust_domain: TrustDomain,
    idle_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builders = Arc::new(ConnectionBuilders::new());
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
        let builders = builders.clone();
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
            let activity = Activity::new();
            let idle = IdleDeadline::new(activity.clone(), idle_timeout);
            // HTTP/1.1 requests go over the connection's own upstream connection, and HTTP/2
            // requests, which `Upstream::forward` sends through the pool, leave it unused.
            let link = Arc::new(UpstreamLink::default());
            let service = {
                let link = link.clone();
                service_fn(move |request| {
                    let gateway = gateway.clone();
                    let identity = identity.clone();
                    let link = link.clone();
                    let guard = activity.begin();
                    async move {
                        let response = gateway.handle(request, &identity, Some(&link)).await;
                        let response = response.map(|body| GuardedBody::new(body, guard));
                        Ok::<_, std::convert::Infallible>(response)
                    }
                })
            };

            // HTTP/2 over TLS is chosen by ALPN (RFC 9113 section 3.2); anything else is
            // HTTP/1.1.
            let served = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                let connection = builders.http2.serve_connection(TokioIo::new(tls), service);
                drive(watcher.watch(connection), link, idle).await
            } else {
                let connection = builders.http1.serve_connection(TokioIo::new(tls), service);
                drive(watcher.watch(connection), link, idle).await
            };
            if let Err(err) = served {
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

/// How long a client connection may go without serving a request before the gateway closes it:
/// an idle keep-alive connection, an HTTP/1.1 client that sends a header section too slowly, or
/// an HTTP/2 client that opens no stream.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a client connection with its upstream link and idle deadline. A connection closed for
/// staying idle ends without an error.
async fn drive<F, E>(connection: F, link: Arc<UpstreamLink>, idle: IdleDeadline) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    Driven::new(connection, link, Some(idle))
        .await
        .unwrap_or(Ok(()))
}

/// The HTTP/1.1 and HTTP/2 connection builders, with the gateway's header limits.
struct ConnectionBuilders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl ConnectionBuilders {
    fn new() -> Self {
        // The idle deadline of `Driven` bounds the time to send a header section, instead of a
        // timer that hyper would arm and cancel for every request.
        let mut http1 = http1::Builder::new();
        http1.max_buf_size(MAX_HEADER_BYTES);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
        Self { http1, http2 }
    }
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
