//! `sigil-agent`: keeps an agent's X.509-SVID fresh on disk.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sigil_agent::files::OutputDir;
use sigil_agent::identity::validity;
use sigil_agent::{Outcome, RunOptions, obtain_svid};
use time::OffsetDateTime;
use tracing_subscriber::EnvFilter;

/// The daemon beside each agent: attests with a join token, renews at half-life over mutual TLS
/// with a fresh key, and writes svid.pem, svid.key and bundle.pem atomically.
#[derive(Parser)]
#[command(name = "sigil-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Obtain an SVID and keep it fresh (or only once, with --once).
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of the authority, such as https://127.0.0.1:8443.
    #[arg(long, env = "SIGIL_SERVER")]
    server: String,

    /// Trust bundle (PEM) used to verify the authority.
    #[arg(long)]
    bundle: PathBuf,

    /// One-time join token from `sigil token create AGENT`; needed only without a valid SVID.
    #[arg(long, env = "SIGIL_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,

    /// Directory for svid.pem, svid.key and bundle.pem.
    #[arg(long)]
    out: PathBuf,

    /// Path of the Workload API socket.
    // NOTE: the Workload API is not served yet; the option is accepted so that the command line
    // stays stable.
    #[arg(long, env = "SPIFFE_ENDPOINT_SOCKET")]
    socket: Option<PathBuf>,

    /// Obtain or renew the SVID once and exit.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let Command::Run(args) = Cli::parse().command;
    let bundle_pem = std::fs::read_to_string(&args.bundle)
        .with_context(|| format!("cannot read the trust bundle {}", args.bundle.display()))?;
    let options = RunOptions {
        server: args.server,
        bundle_pem,
        join_token: args.join_token,
        out: OutputDir::new(args.out),
    };

    if args.once {
        let outcome = obtain_svid(&options).await?;
        report(&outcome);
        return Ok(());
    }
    run_daemon(options).await
}

fn report(outcome: &Outcome) {
    match outcome {
        Outcome::Attested {
            spiffe_id,
            serial,
            expires_at,
        } => {
            tracing::info!(%spiffe_id, %serial, %expires_at, "attested");
        }
        Outcome::Renewed {
            spiffe_id,
            serial,
            expires_at,
        } => {
            tracing::info!(%spiffe_id, %serial, %expires_at, "renewed");
        }
    }
}

/// Renews at half-life until SIGINT or SIGTERM; on failure retries with capped exponential
/// backoff while the current files stay in place.
async fn run_daemon(mut options: RunOptions) -> anyhow::Result<()> {
    tracing::info!(out = %options.out.root().display(), "sigil-agent started");
    let mut failures: u32 = 0;

    loop {
        let wait = match obtain_svid(&options).await {
            Ok(outcome) => {
                if failures > 0 {
                    tracing::info!(failures, "authority reachable again");
                }
                failures = 0;
                report(&outcome);
                // The token is single use; later runs renew with the SVID.
                options.join_token = None;
                until_half_life(&options.out)
            }
            Err(err) => {
                failures += 1;
                let backoff = Duration::from_secs(1 << failures.min(6));
                if failures == 1 {
                    tracing::warn!(error = %err, retry_in = ?backoff, "renewal failed; keeping the current SVID");
                } else {
                    tracing::debug!(error = %err, failures, retry_in = ?backoff, "renewal still failing");
                }
                backoff
            }
        };

        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown_signal() => {
                tracing::info!("sigil-agent stopped");
                return Ok(());
            }
        }
    }
}

fn until_half_life(out: &OutputDir) -> Duration {
    let Ok(Some((chain, _))) = out.read_identity() else {
        return Duration::from_secs(1);
    };
    let Ok((not_before, not_after)) = validity(&chain) else {
        return Duration::from_secs(1);
    };
    let half_life = not_before + (not_after - not_before) / 2;
    let wait: time::Duration = half_life - OffsetDateTime::now_utc();
    wait.try_into()
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_secs(1))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
