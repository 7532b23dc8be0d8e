//! Governance commands: finding acceptance, transfers, reviews and credential imports.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use sigil_client::SigilClient;
use sigil_proto::{
    AcceptFindingRequest, CertifyRequest, CertifyResponse, FindingView, ImportCredentialsRequest,
    ImportCredentialsResponse, ReviewList, StartReviewRequest, TransferRequest, TransferResponse,
};

use crate::admin::path_segment;
use crate::args::{CredentialsCommand, FindingCommand, ReviewCommand};
use crate::output;

/// Largest inventory or mapping file read, in bytes; the authority accepts 16 MiB per import.
const MAX_FILE: u64 = 16 * 1024 * 1024 - 64 * 1024;

pub async fn finding(client: &SigilClient, command: FindingCommand) -> anyhow::Result<()> {
    let FindingCommand::Accept { id, reason, json } = command;
    let path = format!("/v1/admin/findings/{id}/accept");
    let finding: FindingView = client
        .post_json(&path, &AcceptFindingRequest { reason })
        .await?;
    output::print(json, &finding, || {
        format!(
            "finding {} ({} on {}) accepted",
            finding.id, finding.kind, finding.subject
        )
    })
}

pub async fn transfer(
    client: &SigilClient,
    name: String,
    owner: String,
    json: bool,
) -> anyhow::Result<()> {
    let path = format!("/v1/admin/agents/{}/transfer", path_segment(&name)?);
    let response: TransferResponse = client.post_json(&path, &TransferRequest { owner }).await?;
    output::print(json, &response, || {
        format!(
            "agent {} moved from {} to {} (status {})",
            response.agent.name,
            response.previous_owner,
            response.agent.owner,
            response.agent.status
        )
    })
}

/// Runs `review start` and `review certify`; `review list` stays in `main`.
pub async fn review(client: &SigilClient, command: ReviewCommand) -> anyhow::Result<()> {
    match command {
        ReviewCommand::Start { due, owner, json } => {
            let list: ReviewList = client
                .post_json(
                    "/v1/admin/reviews",
                    &StartReviewRequest {
                        due: Some(due),
                        owner,
                    },
                )
                .await?;
            output::print(json, &list, || {
                format!(
                    "opened {} review item(s)\n{}",
                    list.items.len(),
                    output::reviews_table(&list.items)
                )
            })
        }
        ReviewCommand::Certify {
            agent,
            keep,
            drop_drift,
            json,
        } => {
            let decision = if drop_drift && !keep {
                "drop-drift"
            } else {
                "keep"
            };
            let path = format!("/v1/admin/reviews/{}/certify", path_segment(&agent)?);
            let response: CertifyResponse = client
                .post_json(
                    &path,
                    &CertifyRequest {
                        decision: decision.into(),
                    },
                )
                .await?;
            output::print(json, &response, || {
                let mut text = format!(
                    "review item {} of {} {}",
                    response.item_id, response.agent, response.status
                );
                if !response.dropped.is_empty() {
                    text.push_str(&format!("; removed {}", response.dropped.join(", ")));
                }
                text
            })
        }
        ReviewCommand::List { json } => {
            let list: ReviewList = client.get_json("/v1/admin/reviews").await?;
            output::print(json, &list, || output::reviews_table(&list.items))
        }
    }
}

pub async fn credentials(client: &SigilClient, command: CredentialsCommand) -> anyhow::Result<()> {
    let CredentialsCommand::Import {
        format,
        file,
        mapping,
        json,
    } = command;
    let content = read_limited(&file)?;
    let mapping = match mapping {
        None => BTreeMap::new(),
        Some(path) => {
            let text = read_limited(&path)?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "invalid mapping file {}: expected one JSON object of strings, such as \
                     {{\"svc-crm\": \"crm-bot\"}}",
                    path.display()
                )
            })?
        }
    };
    let response: ImportCredentialsResponse = client
        .post_json(
            "/v1/admin/credentials/import",
            &ImportCredentialsRequest {
                format,
                content,
                mapping,
            },
        )
        .await?;
    output::print(json, &response, || {
        let mut text = format!(
            "imported {}, skipped {}, unmapped {} (from {} rows)",
            response.imported, response.skipped, response.unmapped, response.rows
        );
        for error in &response.errors {
            text.push_str(&format!("\nline {}: {}", error.line, error.message));
        }
        if !response.unmapped_lines.is_empty() {
            let lines: Vec<String> = response.unmapped_lines.iter().map(u64::to_string).collect();
            text.push_str(&format!(
                "\nunmapped (no agent of that name; use --mapping): lines {}",
                lines.join(", ")
            ));
        }
        text
    })
}

fn read_limited(path: &Path) -> anyhow::Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_FILE {
        anyhow::bail!(
            "{} is {size} bytes; the limit is {MAX_FILE} bytes, so split the inventory",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))
}
