//! Admin commands: they call the authority's admin API with the admin identity.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sigil_client::{Identity, SigilClient};
use sigil_proto::{
    AddOwnerRequest, AgentDetail, AgentList, AgentView, CreateGatewayTokenRequest,
    CreateTokenRequest, FindingList, GatewayTokenResponse, GrantRequest, OwnerList, OwnerView,
    RegisterAgentRequest, StatusChangeRequest, StatusChangeResponse, TokenResponse,
};
use sigil_server::layout::DataDir;

use crate::args::{AgentCommand, FindingsArgs, GlobalArgs, OwnerCommand, StatusArgs, TokenCommand};
use crate::output;

/// Builds a client from the data directory, `SIGIL_SERVER` and `SIGIL_IDENTITY`.
pub async fn client(global: &GlobalArgs) -> anyhow::Result<SigilClient> {
    let data_dir = global.data_dir();
    let identity_dir = global
        .identity
        .clone()
        .unwrap_or_else(|| data_dir.root().join("admin"));
    let server = match &global.server {
        Some(url) => url.clone(),
        None => default_server(&data_dir)?,
    };

    let bundle = read(&data_dir.bundle())?;
    let (cert_path, key_path) = (identity_dir.join("svid.pem"), identity_dir.join("svid.key"));
    crate::admin_identity::refresh_if_stale(&data_dir, &cert_path).await?;
    let chain = read(&cert_path)?;
    let key = zeroize::Zeroizing::new(read(&key_path)?);

    let identity = Identity {
        chain_pem: &chain,
        key_pem: &key,
    };
    Ok(SigilClient::new(&server, &bundle, Some(identity))?)
}

fn default_server(data_dir: &DataDir) -> anyhow::Result<String> {
    // A running `sigil serve` records its address, which may come from --listen.
    let address = match std::fs::read_to_string(data_dir.listen_file()) {
        Ok(address) => address.trim().to_owned(),
        Err(_) => {
            let config = data_dir.read_config().context(
                "cannot find the authority: pass --server or SIGIL_SERVER, or a --data-dir made by `sigil init`",
            )?;
            config.listen
        }
    };
    let address = address
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    Ok(format!("https://{address}"))
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn post<B: Serialize, T: DeserializeOwned>(
    client: &SigilClient,
    path: &str,
    body: &B,
) -> anyhow::Result<T> {
    Ok(client.post_json(path, body).await?)
}

pub async fn owner(global: &GlobalArgs, command: OwnerCommand) -> anyhow::Result<()> {
    let client = client(global).await?;
    match command {
        OwnerCommand::Add { email, name, json } => {
            let owner: OwnerView = post(
                &client,
                "/v1/admin/owners",
                &AddOwnerRequest { email, name },
            )
            .await?;
            output::print(json, &owner, || format!("owner {} added", owner.email))
        }
        OwnerCommand::Depart { email, json } => {
            let path = format!("/v1/admin/owners/{}/depart", path_segment(&email)?);
            let owner: OwnerView = post(&client, &path, &json!({})).await?;
            output::print(json, &owner, || format!("owner {} departed", owner.email))
        }
        OwnerCommand::List { json } => {
            let list: OwnerList = client.get_json("/v1/admin/owners").await?;
            output::print(json, &list, || output::owners_table(&list.owners))
        }
    }
}

pub async fn agent(global: &GlobalArgs, command: AgentCommand) -> anyhow::Result<()> {
    let client = client(global).await?;
    match command {
        AgentCommand::Register {
            name,
            owner,
            purpose,
            entitlements,
            ttl,
            json,
        } => {
            let request = RegisterAgentRequest {
                name,
                owner,
                purpose,
                entitlements,
                ttl,
            };
            let agent: AgentView = post(&client, "/v1/admin/agents", &request).await?;
            output::print(json, &agent, || {
                format!("agent {} registered as {}", agent.name, agent.spiffe_id)
            })
        }
        AgentCommand::List { json } => {
            let list: AgentList = client.get_json("/v1/admin/agents").await?;
            output::print(json, &list, || output::agents_table(&list.agents))
        }
        AgentCommand::Show { name, json } => {
            let detail: AgentDetail = client
                .get_json(&format!("/v1/admin/agents/{}", path_segment(&name)?))
                .await?;
            output::print(json, &detail, || output::agent_detail(&detail))
        }
        AgentCommand::RevokeGrant {
            name,
            entitlement,
            json,
        } => {
            let path = format!("/v1/admin/agents/{}/grants/revoke", path_segment(&name)?);
            let detail: AgentDetail = post(
                &client,
                &path,
                &GrantRequest {
                    entitlement: entitlement.clone(),
                },
            )
            .await?;
            output::print(json, &detail, || {
                format!("revoked {entitlement} from {}", detail.agent.name)
            })
        }
        AgentCommand::Transfer { name, owner, json } => {
            crate::governance::transfer(&client, name, owner, json).await
        }
        AgentCommand::Suspend(args) => status_change(&client, "suspend", args).await,
        AgentCommand::Resume(args) => status_change(&client, "resume", args).await,
        AgentCommand::Decommission(args) => status_change(&client, "decommission", args).await,
        AgentCommand::Grant {
            name,
            entitlement,
            json,
        } => {
            let path = format!("/v1/admin/agents/{}/grants", path_segment(&name)?);
            let detail: AgentDetail = post(
                &client,
                &path,
                &GrantRequest {
                    entitlement: entitlement.clone(),
                },
            )
            .await?;
            output::print(json, &detail, || {
                format!("granted {entitlement} to {}", detail.agent.name)
            })
        }
    }
}

async fn status_change(client: &SigilClient, action: &str, args: StatusArgs) -> anyhow::Result<()> {
    let path = format!("/v1/admin/agents/{}/{action}", path_segment(&args.name)?);
    let response: StatusChangeResponse = post(
        client,
        &path,
        &StatusChangeRequest {
            reason: args.reason,
        },
    )
    .await?;
    output::print(args.json, &response, || {
        let mut text = format!(
            "agent {} is now {}",
            response.agent.name, response.agent.status
        );
        if !response.revoked_serials.is_empty() {
            text.push_str(&format!(
                "; revoked {} credential(s)",
                response.revoked_serials.len()
            ));
        }
        text
    })
}

pub async fn token(global: &GlobalArgs, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create {
        agent,
        gateway,
        sans,
        ttl,
        json,
    } = command;
    let client = client(global).await?;
    if let Some(gateway) = gateway {
        return gateway_token(&client, gateway, sans, ttl, json).await;
    }
    let Some(agent) = agent else {
        bail!("missing agent name: give `sigil token create AGENT` or `--gateway NAME`");
    };
    if !sans.is_empty() {
        bail!("--san applies to gateway tokens only: add `--gateway NAME`, or drop --san");
    }
    let token: TokenResponse = post(
        &client,
        "/v1/admin/tokens",
        &CreateTokenRequest { agent, ttl },
    )
    .await?;
    if json {
        crate::output::line(serde_json::to_string_pretty(&token)?)?;
    } else {
        eprintln!(
            "join token for agent {}, single use, expires at {}:",
            token.agent, token.expires_at
        );
        crate::output::line(&token.token)?;
    }
    Ok(())
}

async fn gateway_token(
    client: &SigilClient,
    gateway: String,
    sans: Vec<String>,
    ttl: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let token: GatewayTokenResponse = post(
        client,
        "/v1/admin/tokens",
        &CreateGatewayTokenRequest { gateway, sans, ttl },
    )
    .await?;
    if json {
        crate::output::line(serde_json::to_string_pretty(&token)?)?;
    } else {
        let mut names = vec!["localhost", "127.0.0.1", "::1"];
        names.extend(token.sans.iter().map(String::as_str));
        eprintln!(
            "join token for gateway {} ({}, certificate names {}), single use, expires at {}:",
            token.gateway,
            token.spiffe_id,
            names.join(", "),
            token.expires_at
        );
        crate::output::line(&token.token)?;
    }
    Ok(())
}

pub async fn findings(global: &GlobalArgs, args: FindingsArgs) -> anyhow::Result<()> {
    let client = client(global).await?;
    let path = match &args.kind {
        Some(kind) => {
            if !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                bail!(
                    "invalid --kind `{kind}`: kinds are lowercase words joined by `-`, such as identity-fork"
                );
            }
            format!("/v1/admin/findings?kind={kind}")
        }
        None => "/v1/admin/findings".to_owned(),
    };
    if args.scan {
        let _: sigil_proto::ScanReportView =
            post(&client, "/v1/admin/findings/scan", &json!({})).await?;
    }
    let list: FindingList = client.get_json(&path).await?;
    output::print(args.json, &list, || output::findings_table(&list.findings))
}

/// Percent-encodes a name or e-mail address for use as one URL path segment.
///
/// The HTTP client's URL parser resolves `.` and `..` segments even when they are written as
/// `%2E` and `%2E%2E`. Such a value would reach another route, not the server's name check,
/// so it is rejected here.
pub fn path_segment(value: &str) -> anyhow::Result<String> {
    if value == "." || value == ".." {
        bail!("invalid name `{value}`: a name cannot be `.` or `..`");
    }
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(encoded)
}
