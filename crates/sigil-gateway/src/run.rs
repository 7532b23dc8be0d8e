//! Starting the gateway: identity, trust material, background tasks, then the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sigil_agent::daemon::{DaemonOptions, run_daemon};
use sigil_agent::files::OutputDir;
use sigil_agent::mtls::MaterialWatch;
use sigil_agent::{RunOptions, obtain_svid};
use sigil_core::{SpiffeId, TrustDomain};
use tokio::sync::watch;

use crate::authority::AuthorityClient;
use crate::jwt::JwtAuth;
use crate::proxy::Gateway;
use crate::report::{DenialReporter, run_reporter};
use crate::routes::Routes;
use crate::sync::run_sync;
use crate::upstream::Upstream;
use crate::view::View;
use crate::workers::{WorkerSet, serve_workers, worker_count};
use crate::{GatewayError, tls};

/// The default staleness bound: how long the gateway keeps deciding without hearing from the
/// authority.
pub const DEFAULT_STALENESS: Duration = Duration::from_secs(10);

/// The settings of one gateway.
#[derive(Clone)]
pub struct GatewayOptions {
    pub listen: SocketAddr,
    /// Base URL of the tool, `http://` or `https://`.
    pub upstream: String,
    /// CA certificates (PEM) for an `https://` upstream; the trust bundle when `None`.
    pub upstream_ca: Option<PathBuf>,
    /// Base URL of the authority.
    pub server: String,
    /// Trust bundle file, used to verify the authority before the first SVID.
    pub bundle: PathBuf,
    /// One-time join token from `sigil token create --gateway NAME`; needed only without a
    /// valid SVID in `state`.
    pub join_token: Option<String>,
    /// Directory for the gateway's SVID, key and bundle.
    pub state: PathBuf,
    /// Routes file; without one every request is denied.
    pub routes: Option<PathBuf>,
    /// The `aud` Bearer tokens must carry; the gateway's SPIFFE ID when `None`.
    pub audience: Option<String>,
    pub staleness: Duration,
    /// Worker threads, each with its own runtime and upstream client; one per core when `None`.
    pub workers: Option<usize>,
}

/// Shows whether a join token is set, never the token itself.
impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("listen", &self.listen)
            .field("upstream", &self.upstream)
            .field("server", &self.server)
            .field("bundle", &self.bundle)
            .field(
                "join_token",
                &self.join_token.as_ref().map(|_| "<redacted>"),
            )
            .field("state", &self.state)
            .field("routes", &self.routes)
            .field("audience", &self.audience)
            .field("staleness", &self.staleness)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// Runs the gateway until `shutdown` completes.
pub async fn run_gateway(
    options: GatewayOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let routes = match &options.routes {
        Some(path) => Routes::load(path)?,
        None => Routes::default(),
    };
    if routes.is_empty() {
        tracing::warn!("no routes configured; every request will be denied with 403");
    }
    let bundle_pem = std::fs::read_to_string(&options.bundle)
        .map_err(|err| GatewayError::io(&options.bundle, err))?;
    let upstream_ca = match &options.upstream_ca {
        Some(path) => std::fs::read_to_string(path).map_err(|err| GatewayError::io(path, err))?,
        None => bundle_pem.clone(),
    };

    let (stop, stopped) = watch::channel(false);
    let (material, daemon) = start_identity(&options, bundle_pem.clone(), stopped.clone()).await?;
    let spiffe_id = current_spiffe_id(&material)?;
    let trust_domain = TrustDomain::new(spiffe_id.trust_domain_name())
        .map_err(|err| GatewayError::Config(format!("gateway SVID: {err}")))?;
    if !spiffe_id.path().starts_with("/gateway/") {
        tracing::warn!(%spiffe_id, "the SVID is not a gateway identity; the authority may refuse its calls");
    }

    let client = Arc::new(AuthorityClient::new(
        &options.server,
        &bundle_pem,
        material.clone(),
    )?);
    let audience = options
        .audience
        .clone()
        .unwrap_or_else(|| spiffe_id.to_string());
    let jwt = Arc::new(JwtAuth::new(
        audience.clone(),
        trust_domain.clone(),
        Some(client.clone()),
    ));
    let view = Arc::new(View::new(options.staleness));
    let (reporter, denials) = DenialReporter::new();
    let workers = worker_count(options.workers);
    let upstreams = (0..workers)
        .map(|_| Upstream::new(&options.upstream, &upstream_ca, material.clone()))
        .collect::<Result<Vec<_>, _>>()?;

    let listener =
        std::net::TcpListener::bind(options.listen).map_err(|source| GatewayError::Listen {
            addr: options.listen.to_string(),
            source,
        })?;
    let tls = Arc::new(tls::server_config(material.clone())?);

    let sync = tokio::spawn(run_sync(
        view.clone(),
        client.clone(),
        options.staleness,
        wait_for(stopped.clone()),
    ));
    let report = tokio::spawn(run_reporter(
        denials,
        client.clone(),
        wait_for(stopped.clone()),
    ));

    let routes = Arc::new(routes);
    let gateways = upstreams
        .into_iter()
        .map(|upstream| {
            Arc::new(Gateway {
                view: view.clone(),
                routes: routes.clone(),
                jwt: jwt.clone(),
                upstream,
                reporter: reporter.clone(),
            })
        })
        .collect();
    tracing::info!(
        listen = %options.listen,
        upstream = %options.upstream,
        %spiffe_id,
        %audience,
        staleness = ?options.staleness,
        workers,
        "sigil gateway started"
    );
    let set = WorkerSet {
        gateways,
        tls,
        material,
        trust_domain,
        idle_timeout: crate::server::DEFAULT_IDLE_TIMEOUT,
    };
    let served = serve_workers(listener, set, shutdown).await;

    let _ = stop.send(true);
    for (name, task) in [("revocation sync", sync), ("denial reporter", report)] {
        if let Err(err) = task.await {
            tracing::warn!(task = name, error = %err, "background task failed");
        }
    }
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "SVID renewal ended with an error"),
        Err(err) => tracing::warn!(error = %err, "SVID renewal task failed"),
    }
    tracing::info!("sigil gateway stopped");
    served
}

/// Obtains the gateway's SVID and starts the renewal daemon of `sigil-agent` on `--state`.
///
/// Without a valid SVID on disk the join token is spent here, before anything is served, so
/// that a bad token stops the gateway with a clear error. With one, the daemon renews it at
/// once, so a restart needs no new token.
async fn start_identity(
    options: &GatewayOptions,
    bundle_pem: String,
    stopped: watch::Receiver<bool>,
) -> Result<
    (
        MaterialWatch,
        tokio::task::JoinHandle<Result<(), sigil_agent::AgentError>>,
    ),
    GatewayError,
> {
    let mut run = RunOptions {
        server: options.server.clone(),
        bundle_pem,
        join_token: options.join_token.clone(),
        out: OutputDir::new(&options.state),
    };
    let on_disk = run
        .out
        .read_identity()?
        .and_then(|(chain, _)| sigil_agent::identity::expiry(&chain).ok())
        .is_some_and(|not_after| not_after > time::OffsetDateTime::now_utc());
    if !on_disk {
        let outcome = obtain_svid(&run).await?;
        tracing::info!(expires_at = %outcome.expires_at(), "gateway SVID obtained with the join token");
    }
    run.join_token = None;

    let (publish, mut material) = watch::channel(None);
    let daemon = tokio::spawn(run_daemon(
        DaemonOptions {
            run,
            on_rotate: None,
        },
        publish,
        wait_for(stopped),
    ));
    if material.wait_for(Option::is_some).await.is_err() {
        return match daemon.await {
            Ok(Err(err)) => Err(err.into()),
            _ => Err(GatewayError::Config(
                "the SVID renewal task stopped before publishing an SVID".into(),
            )),
        };
    }
    Ok((material, daemon))
}

fn current_spiffe_id(material: &MaterialWatch) -> Result<SpiffeId, GatewayError> {
    let current = material
        .borrow()
        .clone()
        .ok_or_else(|| GatewayError::Config("no SVID published".into()))?;
    SpiffeId::parse(&current.spiffe_id)
        .map_err(|err| GatewayError::Config(format!("gateway SVID: {err}")))
}

/// Completes when `stopped` becomes true.
async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
