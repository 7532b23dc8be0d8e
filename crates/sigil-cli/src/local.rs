//! Commands that work on the data directory itself: init, serve and audit verify.

use anyhow::{Context, bail};
use serde_json::json;
use sigil_server::layout::DataDir;
use sigil_server::{ServeOptions, serve as run_server};
use sigil_store::Store;
use tokio::net::TcpListener;

use crate::args::{AuditCommand, InitArgs, ServeArgs};

pub async fn init(data_dir: &DataDir, args: InitArgs) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let report =
        sigil_server::init::initialize(data_dir, &args.trust_domain, &args.sans, now).await?;

    crate::output::line(format!(
        "Initialised {} for trust domain {}",
        data_dir.root().display(),
        report.trust_domain
    ))?;
    crate::output::line(format!("  trust bundle:   {}", data_dir.bundle().display()))?;
    crate::output::line(format!(
        "  admin identity: {} ({})",
        data_dir.admin_cert().display(),
        report.admin_id
    ))?;
    crate::output::line(format!(
        "  root CA SHA-256 fingerprint: {}",
        report.root_fingerprint
    ))?;
    crate::output::line(format!(
        "Next: sigil serve --data-dir {}",
        data_dir.root().display()
    ))?;
    Ok(())
}

/// Shortest signing CA lifetime `sigil serve` accepts.
const MIN_SIGNING_CA_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn serve(data_dir: &DataDir, args: ServeArgs) -> anyhow::Result<()> {
    // NOTE: PostgreSQL support is planned behind the same store interface.
    if args.database_url.is_some() {
        bail!(
            "unsupported --database-url: this version stores everything in the SQLite database \
             of the data directory (<data-dir>/sigil.db); omit the option"
        );
    }
    if args.signing_ca_lifetime < MIN_SIGNING_CA_LIFETIME {
        bail!(
            "invalid --signing-ca-lifetime: it must be at least {}s, so that a signing CA can \
             issue certificates between two rotation checks",
            MIN_SIGNING_CA_LIFETIME.as_secs()
        );
    }
    if args.revocation_heartbeat.is_zero() {
        bail!("invalid --revocation-heartbeat: it must be longer than zero");
    }
    let governance = governance_options(&args)?;
    initialise_if_missing(data_dir).await?;
    let config = data_dir
        .read_config()
        .context("cannot start the authority")?;
    let listen = args.listen.unwrap_or(config.listen);
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;

    let mut options = ServeOptions::new(data_dir.clone());
    options.signing_ca_lifetime = args.signing_ca_lifetime;
    options.rotation_check_interval = args.rotation_check_interval;
    options.revocation_heartbeat = args.revocation_heartbeat;
    options.database_url = args.database_url;
    options.issuer = args.issuer;
    options.unused_entitlement_period = args.unused_entitlement_period;
    options.governance = governance;

    run_server(options, listener, shutdown_signal()).await?;
    Ok(())
}

/// Builds the scan settings and the webhook from `sigil serve` options.
fn governance_options(
    args: &ServeArgs,
) -> anyhow::Result<sigil_server::governance::GovernanceOptions> {
    let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if args.scan_interval < std::time::Duration::from_secs(1) {
        bail!("invalid --scan-interval: it must be at least 1s");
    }
    let settings = sigil_governance::Settings {
        agent_inactive_ms: millis(args.agent_inactive_period),
        owner_grace_ms: millis(args.owner_grace_period),
        static_credential_ms: millis(args.static_credential_age),
        unused_credential_ms: millis(args.unused_credential_period),
        unused_entitlement_ms: millis(args.unused_entitlement_period),
        sprawl_limit: args.credential_sprawl_limit,
    };
    let webhook = match &args.webhook_url {
        None => None,
        Some(url) => {
            let secret = webhook_secret(args.webhook_secret_file.as_deref())?;
            let config = sigil_server::webhook::WebhookConfig::new(url, secret)
                .map_err(|message| anyhow::anyhow!("{message}"))?;
            Some(config)
        }
    };
    Ok(sigil_server::governance::GovernanceOptions {
        settings,
        scan_interval: args.scan_interval,
        webhook,
    })
}

/// Reads the webhook secret from `file`, or from `SIGIL_WEBHOOK_SECRET`. A trailing newline in
/// the file is not part of the secret.
fn webhook_secret(file: Option<&std::path::Path>) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut secret =
        match file {
            Some(path) => zeroize::Zeroizing::new(std::fs::read(path).with_context(|| {
                format!("cannot read the webhook secret file {}", path.display())
            })?),
            None => match std::env::var_os("SIGIL_WEBHOOK_SECRET") {
                Some(value) => zeroize::Zeroizing::new(value.into_encoded_bytes()),
                None => bail!(
                    "--webhook-url needs a secret: pass --webhook-secret-file FILE or set \
                 SIGIL_WEBHOOK_SECRET"
                ),
            },
        };
    while matches!(secret.last(), Some(b'\n' | b'\r')) {
        secret.pop();
    }
    Ok(secret)
}

/// Lets `sigil serve` run on a new machine: a missing or empty data directory is initialised
/// with the default trust domain first, exactly as `sigil init` would.
async fn initialise_if_missing(data_dir: &DataDir) -> anyhow::Result<()> {
    let empty = match std::fs::read_dir(data_dir.root()) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", data_dir.root().display()));
        }
    };
    if !empty {
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    let report = sigil_server::init::initialize(
        data_dir,
        sigil_server::init::DEFAULT_TRUST_DOMAIN,
        &[],
        now,
    )
    .await?;
    eprintln!(
        "initialised {} for trust domain {} (admin identity in {})",
        data_dir.root().display(),
        report.trust_domain,
        data_dir.admin_cert().display()
    );
    Ok(())
}

pub async fn audit(data_dir: &DataDir, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { json } = command;
    let path = data_dir.database();
    if !path.exists() {
        bail!(
            "no database at {}: is --data-dir a data directory made by `sigil init`?",
            path.display()
        );
    }
    let store = Store::open(&path).await?;
    let result = store.verify_audit_chain().await?;
    store.close().await;

    match result {
        Ok(count) => {
            if json {
                crate::output::line(json!({"intact": true, "events": count}))?;
            } else {
                crate::output::line(format!("audit chain intact: {count} events verified"))?;
            }
            Ok(())
        }
        Err(broken) => {
            if json {
                crate::output::line(format!(
                    "{}",
                    json!({"intact": false, "first_bad_seq": broken.seq, "reason": broken.reason})
                ))?;
            }
            bail!("{broken}")
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received");
}
