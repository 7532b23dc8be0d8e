//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sigil_server::layout::DataDir;

/// Sigil: an identity authority for AI agents.
#[derive(Parser)]
#[command(name = "sigil", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Data directory of the authority.
    #[arg(
        long,
        global = true,
        env = "SIGIL_DATA_DIR",
        default_value = "./sigil-data"
    )]
    pub data_dir: PathBuf,

    /// Authority URL, such as https://127.0.0.1:8443. Admin commands default to the listen
    /// address recorded in <data-dir>/config.json; `sigil gateway` requires it.
    #[arg(long, global = true, env = "SIGIL_SERVER")]
    pub server: Option<String>,

    /// Directory with the admin identity, svid.pem and svid.key (default: <data-dir>/admin).
    #[arg(long, global = true, env = "SIGIL_IDENTITY")]
    pub identity: Option<PathBuf>,

    /// Print logs as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
}

impl GlobalArgs {
    pub fn data_dir(&self) -> DataDir {
        DataDir::new(self.data_dir.clone())
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a data directory: root and signing CAs, database, TLS certificate, admin identity.
    Init(InitArgs),
    /// Run the authority.
    Serve(ServeArgs),
    /// Run the enforcement gateway in front of a tool: mutual TLS or JWT-SVIDs, live revocation,
    /// local policy decisions.
    Gateway(crate::gateway::GatewayArgs),
    /// Manage the humans accountable for agents.
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// Manage agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Create join tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List governance findings.
    Findings(FindingsArgs),
    /// Ask the decision engine whether an agent may perform an action on a resource.
    Authorize(AuthorizeArgs),
    /// Manage custom Cedar policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Entitlement reviews.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Act on one finding.
    #[command(subcommand)]
    Finding(FindingCommand),
    /// Import the metadata of static credentials agents hold in other systems.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Run a self-contained tour on a temporary data directory (under a minute).
    Demo,
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Args)]
pub struct InitArgs {
    /// Trust domain of every identity this authority issues.
    #[arg(long, default_value = sigil_server::init::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,

    /// Extra DNS name or IP address for the authority's TLS certificate (repeatable).
    #[arg(long = "san")]
    pub sans: Vec<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default: the one in config.json, 127.0.0.1:8443).
    #[arg(long)]
    pub listen: Option<String>,

    /// Database URL; the default is the SQLite file in the data directory.
    #[arg(long, env = "SIGIL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Issuer URL of JWT-SVIDs (their `iss` and the OpenID discovery issuer); default
    /// https://<listen address>.
    #[arg(long)]
    pub issuer: Option<String>,

    /// Lifetime of each signing CA; a new one is made at half-life.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub signing_ca_lifetime: std::time::Duration,

    /// How long a granted entitlement may go unused before `findings --scan` reports it.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub unused_entitlement_period: std::time::Duration,

    /// How often the governance scan runs.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub scan_interval: std::time::Duration,

    /// How long an agent may go without using any credential before it is reported inactive.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub agent_inactive_period: std::time::Duration,

    /// How long a departed owner's agents keep running before the scan suspends them.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub owner_grace_period: std::time::Duration,

    /// Age after which an active external credential that was not rotated is reported static.
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
    pub static_credential_age: std::time::Duration,

    /// How long an active external credential may go unused before it is reported.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub unused_credential_period: std::time::Duration,

    /// Most live credentials one agent may hold before credential-sprawl is reported.
    #[arg(long, default_value_t = 3)]
    pub credential_sprawl_limit: u32,

    /// URL that receives signed JSON for every finding opened or resolved.
    #[arg(long, env = "SIGIL_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// File holding the webhook's HMAC secret (at least 16 bytes); SIGIL_WEBHOOK_SECRET may
    /// hold the secret itself instead.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,

    /// How often to check whether the signing CA is due for rotation.
    #[arg(long, default_value = "60s", value_parser = parse_duration, hide = true)]
    pub rotation_check_interval: std::time::Duration,

    /// How often an idle `/v1/revocations` stream sends a heartbeat event.
    #[arg(long, default_value = "1s", value_parser = parse_duration, hide = true)]
    pub revocation_heartbeat: std::time::Duration,
}

#[derive(Subcommand)]
pub enum OwnerCommand {
    /// Add an active owner.
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Mark an owner as departed.
    Depart {
        email: String,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List owners.
    List {
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Register an agent under an active owner.
    Register {
        name: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        purpose: Option<String>,
        /// Baseline entitlement ACTION:RESOURCE (repeatable).
        #[arg(long = "entitlement")]
        entitlements: Vec<String>,
        /// Lifetime of the agent's X.509-SVIDs, 1m to 24h (default 15m).
        #[arg(long)]
        ttl: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List agents.
    List {
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Show an agent with its credentials and entitlements.
    Show {
        name: String,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an agent: it cannot renew or attest until resumed.
    Suspend(StatusArgs),
    /// Resume a suspended agent.
    Resume(StatusArgs),
    /// Decommission an agent for good and revoke every live credential at once.
    Decommission(StatusArgs),
    /// Grant an entitlement beyond the baseline.
    Grant {
        name: String,
        /// ACTION:RESOURCE
        entitlement: String,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Move an agent to another, active owner; resolves its owner-departed finding.
    Transfer {
        name: String,
        /// E-mail of the new owner.
        #[arg(long)]
        owner: String,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Remove an entitlement from an agent's current set.
    RevokeGrant {
        name: String,
        /// ACTION:RESOURCE
        entitlement: String,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct StatusArgs {
    pub name: String,
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a single-use join token for an agent, or with --gateway for a gateway (registered
    /// on first use); prints the token alone on stdout.
    #[command(group(clap::ArgGroup::new("token_for").required(true).args(["agent", "gateway"])))]
    Create {
        /// The agent the token is for.
        agent: Option<String>,
        /// Create the token for this gateway instead; its SPIFFE ID is
        /// spiffe://<trust-domain>/gateway/<NAME>.
        #[arg(long, value_name = "NAME", conflicts_with = "agent")]
        gateway: Option<String>,
        /// Extra DNS name or IP address for the gateway's certificates, beside localhost,
        /// 127.0.0.1 and ::1; repeatable, and recorded when the gateway is first registered.
        #[arg(long = "san", value_name = "DNS_OR_IP", requires = "gateway")]
        sans: Vec<String>,
        /// Lifetime of the token (default 10m).
        #[arg(long)]
        ttl: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct FindingsArgs {
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Only findings of this kind, such as identity-fork.
    #[arg(long)]
    pub kind: Option<String>,
    /// Run the scans now, then list.
    #[arg(long)]
    pub scan: bool,
}

#[derive(Args)]
pub struct AuthorizeArgs {
    /// Agent name, or its SPIFFE ID.
    pub agent: String,
    /// Action, such as `invoke`.
    pub action: String,
    /// Resource, such as `tool:crm/contacts`.
    pub resource: String,
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a Cedar policy file against Sigil's schema and add its policy.
    Add {
        /// File with one Cedar policy.
        file: PathBuf,
        /// Policy id (default: the file name without extension).
        #[arg(long)]
        id: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List custom policies.
    List {
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Remove a custom policy.
    Remove {
        id: String,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Run a TOML file of `[[case]]` tables (principal, action, resource, expect) against the
    /// authority; exits non-zero on any mismatch.
    Test {
        file: PathBuf,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Open one review item per active agent.
    Start {
        /// Time until the items are due.
        #[arg(long, default_value = "7d")]
        due: String,
        /// Only this owner's agents.
        #[arg(long)]
        owner: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Close an agent's review item: keep its entitlements, or drop grants beyond the baseline.
    #[command(group(clap::ArgGroup::new("decision").required(true).args(["keep", "drop_drift"])))]
    Certify {
        agent: String,
        /// Certify the current entitlements; drift becomes an accepted finding.
        #[arg(long)]
        keep: bool,
        /// Remove every grant beyond the baseline.
        #[arg(long)]
        drop_drift: bool,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List review items.
    List {
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit log; exits non-zero at the first broken event.
    Verify {
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum FindingCommand {
    /// Record that a finding's risk is accepted: it stays accepted, and nothing is enforced for
    /// it, while its condition holds.
    Accept {
        id: i64,
        /// Why the risk is accepted; stored and audited.
        #[arg(long)]
        reason: String,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Import an inventory of external credentials (metadata only, never secrets).
    Import {
        /// `aws-iam-credential-report` (the IAM credential report CSV) or `json` (one JSON object
        /// per line: id, agent, kind, active, created, last_rotated, last_used, scopes).
        #[arg(long)]
        format: String,
        file: PathBuf,
        /// JSON object from inventory user names to agent names.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    sigil_core::lifetime::parse_duration(value).map_err(|err| err.to_string())
}
