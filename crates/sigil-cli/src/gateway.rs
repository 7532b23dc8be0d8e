//! `sigil gateway`: run the enforcement proxy in front of a tool.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sigil_gateway::{DEFAULT_STALENESS, GatewayOptions, run_gateway};

use crate::args::GlobalArgs;

/// Options of `sigil gateway`. The authority's URL is the global `--server` option.
#[derive(Args)]
pub struct GatewayArgs {
    /// Address to listen on for agents' HTTPS requests, such as 127.0.0.1:9443.
    #[arg(long)]
    pub listen: SocketAddr,

    /// Base URL of the tool the gateway protects, http:// or https://.
    #[arg(long)]
    pub upstream: String,

    /// CA certificates (PEM) that an https:// upstream is verified against (default: the trust
    /// bundle).
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,

    /// Trust bundle (PEM) of the authority, such as <data-dir>/bundle.pem.
    #[arg(long)]
    pub bundle: PathBuf,

    /// One-time join token from `sigil token create --gateway NAME`; needed only when --state
    /// contains no valid SVID.
    #[arg(long, env = "SIGIL_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,

    /// Directory for the gateway's SVID, key and bundle, kept across restarts.
    #[arg(long)]
    pub state: PathBuf,

    /// Routes file (TOML) mapping method and path to action and resource; without it every
    /// request is denied.
    #[arg(long)]
    pub routes: Option<PathBuf>,

    /// Audience that Bearer JWT-SVIDs must carry (default: the gateway's SPIFFE ID).
    #[arg(long)]
    pub audience: Option<String>,

    /// How long the gateway keeps deciding without an event or heartbeat from the authority.
    /// After that it returns 503 to every request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub staleness: Duration,

    /// Worker threads, each accepting connections and serving their requests on its own
    /// runtime (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
}

/// Runs the gateway until SIGINT or SIGTERM.
pub async fn run(global: &GlobalArgs, args: GatewayArgs) -> anyhow::Result<()> {
    let server = global
        .server
        .clone()
        .context("--server (or SIGIL_SERVER) is required: the URL of the authority")?;
    if args.staleness.is_zero() {
        anyhow::bail!(
            "--staleness must be more than zero (default {:?})",
            DEFAULT_STALENESS
        );
    }
    if args
        .audience
        .as_deref()
        .is_some_and(|a| a.trim().is_empty())
    {
        anyhow::bail!(
            "--audience must not be empty: Bearer JWT-SVIDs are checked against it (default: the \
             gateway's SPIFFE ID)"
        );
    }
    let options = GatewayOptions {
        listen: args.listen,
        upstream: args.upstream,
        upstream_ca: args.upstream_ca,
        server,
        bundle: args.bundle,
        join_token: args.join_token,
        state: args.state,
        routes: args.routes,
        audience: args.audience,
        staleness: args.staleness,
        workers: args.workers.map(usize::from),
    };
    run_gateway(options, crate::local::shutdown_signal()).await?;
    Ok(())
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    sigil_core::lifetime::parse_duration(value).map_err(|err| err.to_string())
}
