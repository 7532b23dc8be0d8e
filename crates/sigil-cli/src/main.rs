//! `sigil`: initialise and run the authority, and administer owners, agents and tokens.

mod admin;
mod admin_identity;
mod args;
mod demo;
mod gateway;
mod governance;
mod local;
mod output;
mod policy;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, Command, PolicyCommand};

/// mimalloc in place of the system allocator: cheaper allocation on the gateway's request path
/// (see docs/architecture.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.global.data_dir();
    match cli.command {
        Command::Init(args) => local::init(&data_dir, args).await,
        Command::Serve(args) => local::serve(&data_dir, args).await,
        Command::Gateway(args) => gateway::run(&cli.global, args).await,
        Command::Audit(args) => local::audit(&data_dir, args).await,
        Command::Owner(command) => admin::owner(&cli.global, command).await,
        Command::Agent(command) => admin::agent(&cli.global, command).await,
        Command::Token(command) => admin::token(&cli.global, command).await,
        Command::Findings(args) => admin::findings(&cli.global, args).await,
        Command::Demo => demo::run().await,
        Command::Authorize(args) => {
            let client = admin::client(&cli.global).await?;
            policy::authorize(
                &client,
                &args.agent,
                &args.action,
                &args.resource,
                args.json,
            )
            .await
        }
        Command::Review(command) => {
            let client = admin::client(&cli.global).await?;
            governance::review(&client, command).await
        }
        Command::Finding(command) => {
            let client = admin::client(&cli.global).await?;
            governance::finding(&client, command).await
        }
        Command::Credentials(command) => {
            let client = admin::client(&cli.global).await?;
            governance::credentials(&client, command).await
        }
        Command::Policy(command) => {
            let client = admin::client(&cli.global).await?;
            match command {
                PolicyCommand::Add { file, id, json } => {
                    policy::add(&client, &file, id, json).await
                }
                PolicyCommand::List { json } => policy::list(&client, json).await,
                PolicyCommand::Remove { id, json } => policy::remove(&client, &id, json).await,
                PolicyCommand::Test { file, json } => policy::test(&client, &file, json).await,
            }
        }
    }
}

/// Logs go to stderr, so that stdout carries only command output. `SIGIL_LOG` (or `RUST_LOG`)
/// sets the filter; the default is `info` for `serve` and `gateway` and `warn` otherwise.
fn init_logging(cli: &Cli) {
    let default = if matches!(cli.command, Command::Demo) {
        "error"
    } else if matches!(cli.command, Command::Serve(_) | Command::Gateway(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = std::env::var("SIGIL_LOG")
        .ok()
        .and_then(|value| EnvFilter::try_new(value).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cli.global.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}
