//! Thread per core: the accept loop and the requests run on several current-thread runtimes.
//!
//! Each worker is an OS thread with its own single-threaded tokio runtime, accepting from a
//! clone of the one listening socket. A connection's handshake, its requests and the pooled
//! upstream connections that serve them all run on the worker that accepted it, so a request
//! never passes between threads. Each worker has its own upstream client, because a pooled
//! connection belongs to the runtime that drives it. The view, routes, JWT verifier and denial
//! reporter are shared; the revocation sync, the denial reports and the SVID renewal stay on
//! the caller's runtime.

use std::future::Future;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use sigil_agent::mtls::MaterialWatch;
use sigil_core::TrustDomain;
use tokio::sync::watch;

use crate::GatewayError;
use crate::proxy::Gateway;

/// The gateways of the workers, one each, and the TLS and trust settings they share.
pub struct WorkerSet {
    /// One gateway per worker, each with its own upstream client.
    pub gateways: Vec<Arc<Gateway>>,
    pub tls: Arc<ServerConfig>,
    pub material: MaterialWatch,
    pub trust_domain: TrustDomain,
    /// How long an HTTP/1.1 connection may serve no request before it is closed.
    pub idle_timeout: Duration,
}

/// The number of workers: `requested`, or else one per available core.
pub fn worker_count(requested: Option<usize>) -> usize {
    requested
        .filter(|count| *count > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// Serves on `listener` with one worker per gateway in `set` until `shutdown` completes, then
/// waits for every worker to drain its connections.
pub async fn serve_workers(
    listener: TcpListener,
    set: WorkerSet,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    listener
        .set_nonblocking(true)
        .map_err(|err| socket_error(&listener, err))?;
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::with_capacity(set.gateways.len());
    for (index, gateway) in set.gateways.into_iter().enumerate() {
        let worker = Worker {
            index,
            listener: listener
                .try_clone()
                .map_err(|err| socket_error(&listener, err))?,
            gateway,
            tls: set.tls.clone(),
            material: set.material.clone(),
            trust_domain: set.trust_domain.clone(),
            idle_timeout: set.idle_timeout,
            stopped: stopped.clone(),
        };
        match std::thread::Builder::new()
            .name(format!("sigil-gateway-{index}"))
            .spawn(move || worker.run())
        {
            Ok(thread) => threads.push(thread),
            Err(err) => {
                tracing::error!(worker = index, error = %err, "cannot start a gateway worker");
                let _ = stop.send(true);
                join_all(threads).await;
                return Err(GatewayError::Config(format!(
                    "cannot start a gateway worker thread: {err}"
                )));
            }
        }
    }
    drop(listener);
    tracing::info!(workers = threads.len(), "gateway workers started");

    shutdown.await;
    let _ = stop.send(true);
    join_all(threads).await;
    Ok(())
}

fn socket_error(listener: &TcpListener, source: std::io::Error) -> GatewayError {
    GatewayError::Listen {
        addr: listener
            .local_addr()
            .map_or_else(|_| "the listening socket".into(), |addr| addr.to_string()),
        source,
    }
}

/// Waits for every worker thread to end, without blocking the caller's runtime.
async fn join_all(threads: Vec<std::thread::JoinHandle<()>>) {
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(std::thread::JoinHandle::join)
            .filter(Result::is_err)
            .count()
    })
    .await;
    match joined {
        Ok(0) => {}
        Ok(panicked) => tracing::error!(panicked, "gateway workers ended with a panic"),
        Err(err) => tracing::error!(error = %err, "cannot wait for the gateway workers"),
    }
}

/// One worker thread's share of the gateway.
struct Worker {
    index: usize,
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Arc<ServerConfig>,
    material: MaterialWatch,
    trust_domain: TrustDomain,
    idle_timeout: Duration,
    stopped: watch::Receiver<bool>,
}

impl Worker {
    /// Runs the accept loop on a new current-thread runtime until the stop signal.
    fn run(self) {
        let index = self.index;
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(worker = index, error = %err, "cannot start a worker runtime");
                return;
            }
        };
        runtime.block_on(self.serve());
        tracing::debug!(worker = index, "gateway worker stopped");
    }

    async fn serve(self) {
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(worker = self.index, error = %err, "cannot register the listening socket");
                return;
            }
        };
        let mut stopped = self.stopped;
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        crate::server::serve(
            listener,
            self.tls,
            self.gateway,
            self.material,
            self.trust_domain,
            self.idle_timeout,
            shutdown,
        )
        .await;
    }
}
