//! `sigil serve`: the HTTPS accept loop, graceful shutdown and background tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use sigil_ca::CaCertificate;
use sigil_ca::authority::CA_BACKDATE;
use sigil_core::{AuditRecord, TrustDomain};
use sigil_store::Store;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::ServerError;
use crate::authority::{Authority, SIGNING_LIFETIME, to_time};
use crate::clock::{Clock, unix_ms};
use crate::crl::CrlCache;
use crate::layout::{DataDir, write_atomic};
use crate::metrics::Metrics;
use crate::routes::router;
use crate::state::AppState;
use crate::tls::{PeerCertificates, ServingCertificate, issue_serving_certificate, server_config};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send its request headers (HTTP/1.1), and how long an HTTP/2
/// keep-alive ping may go unanswered.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the CRL is rebuilt even without revocations, well within its one-hour validity.
const CRL_REFRESH: Duration = Duration::from_secs(15 * 60);

/// How often entitlement use recorded by decisions is written to the registry.
const USAGE_FLUSH: Duration = Duration::from_secs(5);

/// How often an idle revocation stream sends a heartbeat, by default.
pub const REVOCATION_HEARTBEAT: Duration = Duration::from_secs(1);

/// How long revocation events are kept for clients that resume a stream. A client that resumes
/// from an older event is told to resync from `/v1/gateway/state`.
const REVOCATION_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How often old revocation events are deleted.
const REVOCATION_PRUNE: Duration = Duration::from_secs(60 * 60);

/// Default period after which an unused granted entitlement is reported.
pub const UNUSED_ENTITLEMENT_PERIOD: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Settings of one `sigil serve` run.
#[derive(Clone)]
pub struct ServeOptions {
    pub data_dir: DataDir,
    /// Lifetime of each new signing CA; it is replaced at half-life.
    pub signing_ca_lifetime: Duration,
    /// How often the rotation task checks the signing CA.
    pub rotation_check_interval: Duration,
    /// How long a granted entitlement may go unused before the scan reports it.
    pub unused_entitlement_period: Duration,
    /// Issuer of JWT-SVIDs (`iss`); `None` means `https://<listen address>`.
    pub issuer: Option<String>,
    /// Database URL; `None` means the SQLite file in the data directory.
    pub database_url: Option<String>,
    /// How often an idle revocation stream sends a heartbeat.
    pub revocation_heartbeat: Duration,
    /// Governance scan settings and the webhook.
    pub governance: crate::governance::GovernanceOptions,
    /// Time source; tests advance it.
    pub clock: Clock,
}

/// Shows every setting except the database URL, which may carry a password.
impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("data_dir", &self.data_dir)
            .field("signing_ca_lifetime", &self.signing_ca_lifetime)
            .field("rotation_check_interval", &self.rotation_check_interval)
            .field("issuer", &self.issuer)
            .field("governance", &self.governance)
            .field("revocation_heartbeat", &self.revocation_heartbeat)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Options with the production defaults for `data_dir`.
    pub fn new(data_dir: DataDir) -> Self {
        Self {
            data_dir,
            signing_ca_lifetime: SIGNING_LIFETIME,
            rotation_check_interval: Duration::from_secs(60),
            unused_entitlement_period: UNUSED_ENTITLEMENT_PERIOD,
            issuer: None,
            database_url: None,
            revocation_heartbeat: REVOCATION_HEARTBEAT,
            governance: crate::governance::GovernanceOptions::default(),
            clock: Clock::default(),
        }
    }
}

/// Runs the authority on `listener` until `shutdown` completes, then drains connections.
pub async fn serve(
    options: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let data_dir = options.data_dir.clone();
    let _lock = crate::layout::lock_data_dir(&data_dir)?;
    crate::layout::check_key_permissions(&data_dir)?;
    let config = data_dir.read_config()?;
    let trust_domain = TrustDomain::new(&config.trust_domain)
        .map_err(|err| ServerError::Config(format!("config.json: {err}")))?;
    let now = options.clock.now();

    let mut authority = Authority::load(&data_dir, now)?;
    let store = match &options.database_url {
        Some(url) => Store::open_url(url).await?,
        None => Store::open(&data_dir.database()).await?,
    };
    // A signing CA that expired or came due while the authority was stopped cannot issue the
    // serving certificate, so it is replaced first.
    if rotation_due(&authority.signing, options.signing_ca_lifetime, now) {
        let next = authority.rotate(&data_dir, &trust_domain, now, options.signing_ca_lifetime)?;
        record_rotation(&store, &authority, &next, now).await?;
        authority = next;
    }
    let (chain, key) =
        issue_serving_certificate(&authority, &trust_domain, &config.extra_sans, now)?;
    write_atomic(&data_dir.server_key(), key.as_bytes(), true)?;
    write_atomic(&data_dir.server_cert(), chain.as_bytes(), false)?;
    let serving = Arc::new(ServingCertificate::from_pem(&chain, &key)?);

    let crl = CrlCache::default();
    crl.refresh(&store, &authority, now).await?;
    let tls = Arc::new(server_config(
        &[authority.root.cert_der().clone()],
        serving.clone(),
    )?);

    let jwt_keys = crate::jwt_keys::load_or_create(&data_dir, now)?;
    let policy = Arc::new(crate::policy::PolicyService::load(&store).await?);
    let revocations =
        crate::revocations::RevocationHub::new(store.revocation_window().await?.latest);
    let revocation_task = tokio::spawn(revocations.clone().run(store.clone()));
    let (audit_queue, audit_writer) = crate::audit_queue::AuditQueue::new(store.clone());
    let (stop_audit, audit_stopped) = tokio::sync::watch::channel(false);
    let audit_task = tokio::spawn(audit_writer.run(audit_stopped));
    let local = listener
        .local_addr()
        .map_err(|err| ServerError::Tls(err.to_string()))?;
    let issuer = options
        .issuer
        .clone()
        .unwrap_or_else(|| default_issuer(local));

    let mut settings = options.governance.settings;
    settings.unused_entitlement_ms =
        i64::try_from(options.unused_entitlement_period.as_millis()).unwrap_or(i64::MAX);
    let state = AppState {
        trust_domain: trust_domain.clone(),
        store: store.clone(),
        authority: Arc::new(ArcSwap::from_pointee(authority)),
        crl,
        clock: options.clock.clone(),
        metrics: Metrics::install(),
        jwt_keys: Arc::new(ArcSwap::from_pointee(jwt_keys)),
        issuer,
        policy: policy.clone(),
        governance: crate::governance::Governance::new(settings),
        audit_queue,
        revocation_epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        revocations: revocations.clone(),
        revocation_heartbeat: options.revocation_heartbeat,
    };
    let app = router(state.clone());
    let scanner = tokio::spawn(crate::governance::scan_periodically(
        state.clone(),
        options.governance.scan_interval,
    ));
    let webhook = tokio::spawn(crate::webhook::deliver_forever(
        state.clone(),
        options.governance.webhook.clone(),
    ));

    let background = tokio::spawn(run_background_tasks(
        state,
        options,
        serving,
        config.extra_sans,
    ));
    write_atomic(&data_dir.listen_file(), local.to_string().as_bytes(), false)?;
    tracing::info!(listen = %local, trust_domain = %trust_domain, "authority started");

    // Open revocation streams never end by themselves, so they are closed as soon as shutdown
    // begins; otherwise they would hold the connection drain until its timeout.
    let hub = revocations.clone();
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    accept_loop(
        listener,
        TlsAcceptor::from(tls),
        app,
        trust_domain.clone(),
        shutdown,
    )
    .await;

    background.abort();
    scanner.abort();
    webhook.abort();
    revocation_task.abort();
    let _ = stop_audit.send(true);
    if let Err(err) = audit_task.await {
        tracing::error!(error = %err, "audit writer task failed");
    }
    policy.flush_usage(&store).await;
    store.close().await;
    tracing::info!("authority stopped");
    Ok(())
}

/// Accepts connections until `shutdown`, then waits for open requests to finish.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    trust_domain: TrustDomain,
    shutdown: impl Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    // Tells connections still in the TLS handshake to close at shutdown. `graceful` only covers
    // connections that reached HTTP, so without this a client that never finishes its handshake
    // would hold shutdown for up to HANDSHAKE_TIMEOUT.
    let (stopping_sender, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let app = app.clone();
        let trust_domain = trust_domain.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, acceptor, app, trust_domain, watcher, stopping).await;
        });
    }

    let _ = stopping_sender.send(true);

    tracing::info!(
        open_connections = graceful.count(),
        "shutting down; draining connections"
    );
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    trust_domain: TrustDomain,
    watcher: hyper_util::server::graceful::Watcher,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let handshake = tokio::select! {
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => result,
        // Fires once the accept loop has stopped: the value changes, or the sender is dropped.
        _ = stopping.changed() => {
            tracing::debug!(%peer, "shutting down; closing a connection before its TLS handshake finished");
            return;
        }
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            tracing::info!(%peer, error = %err, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };

    // The client certificate is parsed once per connection, not once per request.
    let peer_certificates = tls.get_ref().1.peer_certificates().map(|chain| {
        PeerCertificates::new(
            chain.iter().map(|c| c.clone().into_owned()).collect(),
            &trust_domain,
        )
    });
    let service = app.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        if let Some(certificates) = &peer_certificates {
            request.extensions_mut().insert(certificates.clone());
        }
        request
    });

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that opens a connection and never finishes its request headers is dropped, so
    // idle sockets cannot pile up.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(HEADER_TIMEOUT))
        .keep_alive_timeout(HEADER_TIMEOUT);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(service));
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(%peer, error = %err, "connection closed with an error");
    }
}

/// Rotates the signing CA at half-life and keeps the CRL fresh.
async fn run_background_tasks(
    state: AppState,
    options: ServeOptions,
    serving: Arc<ServingCertificate>,
    extra_sans: Vec<String>,
) {
    let mut rotation = tokio::time::interval(options.rotation_check_interval);
    let mut crl_refresh = tokio::time::interval(CRL_REFRESH);
    let mut jwt_rotation = tokio::time::interval(options.rotation_check_interval);
    let mut usage_flush = tokio::time::interval(USAGE_FLUSH);
    let mut revocation_prune = tokio::time::interval(REVOCATION_PRUNE);
    loop {
        tokio::select! {
            _ = revocation_prune.tick() => {
                let before_ms = state.clock.now_ms().saturating_sub(
                    i64::try_from(REVOCATION_RETENTION.as_millis()).unwrap_or(i64::MAX),
                );
                match state.store.prune_revocation_events(before_ms).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "old revocation events deleted"),
                    Err(err) => tracing::error!(error = %err, "failed to delete old revocation events; will retry"),
                }
            }
            _ = rotation.tick() => {
                if let Err(err) = rotate_if_due(&state, &options, &serving, &extra_sans).await {
                    tracing::error!(error = %err, "signing CA rotation failed; will retry");
                }
            }
            _ = jwt_rotation.tick() => {
                if let Err(err) = rotate_jwt_keys_if_due(&state, &options) {
                    tracing::error!(error = %err, "JWT key rotation failed; will retry");
                }
            }
            _ = usage_flush.tick() => {
                state.policy.flush_usage(&state.store).await;
            }
            _ = crl_refresh.tick() => {
                let authority = state.authority.load();
                if let Err(err) = state.crl.refresh(&state.store, &authority, state.clock.now()).await {
                    tracing::error!(error = %err, "CRL refresh failed; will retry");
                }
            }
        }
    }
}

/// Replaces the JWT signing key when it is due and drops retired keys no token can need.
fn rotate_jwt_keys_if_due(state: &AppState, options: &ServeOptions) -> Result<(), ServerError> {
    let current = state.jwt_keys.load();
    let Some(next) = crate::jwt_keys::rotate_if_due(&current, options.clock.now())? else {
        return Ok(());
    };
    crate::jwt_keys::save(&options.data_dir, &next)?;
    tracing::info!(
        previous = current.current().kid(),
        kid = next.current().kid(),
        published = next.jwks().keys.len(),
        "JWT signing keys rotated or pruned"
    );
    state.jwt_keys.store(Arc::new(next));
    Ok(())
}

/// `https://<listen address>`, with an unspecified address replaced by loopback.
fn default_issuer(local: SocketAddr) -> String {
    let host = match local.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("https://{host}:{}", local.port())
}

/// Returns true when `signing` should be replaced: half of its lifetime has passed, or it is
/// valid for longer than `lifetime`, which happens when `--signing-ca-lifetime` was lowered since
/// it was made.
///
/// The lifetime is counted from issuance, `CA_BACKDATE` after notBefore, because counting the
/// backdating would make a short-lived CA due at once, and so replaced at every check.
fn rotation_due(signing: &CaCertificate, lifetime: Duration, now: OffsetDateTime) -> bool {
    let issued_at = (signing.not_before() + CA_BACKDATE).min(signing.not_after());
    let half_life = issued_at + (signing.not_after() - issued_at) / 2;
    now >= half_life || signing.not_after() - now > to_time(lifetime)
}

/// Replaces the signing CA when [`rotation_due`] returns true. The root, and so the trust bundle,
/// stay the same; certificates issued under the previous signing CA stay valid until they expire.
async fn rotate_if_due(
    state: &AppState,
    options: &ServeOptions,
    serving: &ServingCertificate,
    extra_sans: &[String],
) -> Result<(), ServerError> {
    let now = options.clock.now();
    let current = state.authority.load_full();
    if !rotation_due(&current.signing, options.signing_ca_lifetime, now) {
        return Ok(());
    }

    let next = current.rotate(
        &options.data_dir,
        &state.trust_domain,
        now,
        options.signing_ca_lifetime,
    )?;
    let (chain, key) = issue_serving_certificate(&next, &state.trust_domain, extra_sans, now)?;
    write_atomic(&options.data_dir.server_key(), key.as_bytes(), true)?;
    write_atomic(&options.data_dir.server_cert(), chain.as_bytes(), false)?;
    serving.replace(&chain, &key)?;
    record_rotation(&state.store, &current, &next, now).await?;

    state.authority.store(Arc::new(next));
    let authority = state.authority.load();
    state.crl.refresh(&state.store, &authority, now).await
}

/// Audits and logs the replacement of `previous`'s signing CA by `next`'s.
async fn record_rotation(
    store: &Store,
    previous: &Authority,
    next: &Authority,
    now: OffsetDateTime,
) -> Result<(), ServerError> {
    let record = AuditRecord {
        at_ms: unix_ms(now),
        actor: "system".into(),
        action: "ca.signing_rotated".into(),
        subject: next.signing.serial_hex().to_owned(),
        outcome: "success".into(),
        details: json!({
            "previous_serial": previous.signing.serial_hex(),
            "serial": next.signing.serial_hex(),
            "not_after": crate::clock::rfc3339(next.signing.not_after()),
        })
        .to_string(),
    };
    store.record_audit(record).await?;
    tracing::info!(previous = %previous.signing.serial_hex(), serial = %next.signing.serial_hex(), "signing CA rotated");
    Ok(())
}
