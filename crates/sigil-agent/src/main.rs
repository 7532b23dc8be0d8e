//! `sigil-agent`: keeps an agent's X.509-SVID fresh on disk and serves the Workload API.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sigil_agent::daemon::{DaemonOptions, run_daemon, socket_path};
use sigil_agent::files::OutputDir;
use sigil_agent::workload::{JwtSource, WorkloadApiServer, serve_workload_api};
use sigil_agent::{Outcome, RunOptions, obtain_svid};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// The daemon beside each agent: attests with a join token, renews at half-life over mutual TLS
/// with a fresh key, writes svid.pem, svid.key and bundle.pem atomically, and serves the SPIFFE
/// Workload API on a Unix socket.
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

    /// Path of the Workload API Unix socket (default: $SPIFFE_ENDPOINT_SOCKET; none if unset).
    #[arg(long)]
    socket: Option<PathBuf>,

    /// Shell command run after each rotation, with SIGIL_SVID, SIGIL_SVID_KEY and SIGIL_BUNDLE
    /// set to the file paths.
    #[arg(long)]
    on_rotate: Option<String>,

    /// Obtain or renew the SVID once and exit.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SIGIL_LOG")
                .or_else(|_| EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let Command::Run(args) = Cli::parse().command;
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
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

    let (publish, material) = watch::channel(None);
    let (stop, stopped) = watch::channel(false);
    let mut workload_api = None;
    let mut jwt_refresh = None;

    if let Some(socket) = socket_path(args.socket) {
        let jwt = Arc::new(JwtSource::new(
            &options.server,
            &options.bundle_pem,
            options.out.clone(),
        )?);
        jwt_refresh = Some(tokio::spawn(
            jwt.clone()
                .keep_bundles_fresh(material.clone(), wait_for(stopped.clone())),
        ));
        let server = WorkloadApiServer {
            socket,
            x509: material,
            jwt,
        };
        workload_api = Some(tokio::spawn(serve_workload_api(
            server,
            wait_for(stopped.clone()),
        )));
    }

    let daemon = DaemonOptions {
        run: options,
        on_rotate: args.on_rotate,
    };
    let result = run_daemon(daemon, publish, shutdown_signal()).await;

    let _ = stop.send(true);
    if let Some(task) = workload_api {
        match task.await {
            Ok(Err(err)) => tracing::warn!(error = %err, "Workload API ended with an error"),
            Err(err) => tracing::warn!(error = %err, "Workload API task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(task) = jwt_refresh {
        let _ = task.await;
    }
    Ok(result?)
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

/// Completes when `stopped` becomes true.
async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
            let _ = ctrl_c.await;
        }
    }
}
