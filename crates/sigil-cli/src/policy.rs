//! Policy commands: `sigil authorize`, `sigil policy add|list|remove|test`, and
//! `sigil agent revoke-grant`.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sigil_client::SigilClient;
use sigil_proto::{AddPolicyRequest, AuthorizeRequest, AuthorizeResponse, PolicyList, PolicyView};

use crate::output;

/// Turns an agent name into its SPIFFE ID; a full SPIFFE ID is kept as given.
async fn principal(client: &SigilClient, agent: &str) -> anyhow::Result<String> {
    if agent.starts_with("spiffe://") {
        return Ok(agent.to_owned());
    }
    let detail: serde_json::Value = client
        .get_json(&format!(
            "/v1/admin/agents/{}",
            crate::admin::path_segment(agent)?
        ))
        .await?;
    detail["spiffe_id"]
        .as_str()
        .map(str::to_owned)
        .context("the authority returned no spiffe_id")
}

async fn decide(
    client: &SigilClient,
    agent: &str,
    action: &str,
    resource: &str,
) -> anyhow::Result<AuthorizeResponse> {
    let request = AuthorizeRequest {
        principal: principal(client, agent).await?,
        action: action.to_owned(),
        resource: resource.to_owned(),
        context: serde_json::Map::new(),
    };
    Ok(client.post_json("/v1/authorize", &request).await?)
}

pub async fn authorize(
    client: &SigilClient,
    agent: &str,
    action: &str,
    resource: &str,
    json: bool,
) -> anyhow::Result<()> {
    let decision = decide(client, agent, action, resource).await?;
    output::print(json, &decision, || {
        let mut text = format!("{}: {agent} {action} {resource}", decision.decision);
        if !decision.policies.is_empty() {
            text.push_str(&format!(" (policies: {})", decision.policies.join(", ")));
        }
        for diagnostic in &decision.diagnostics {
            text.push_str(&format!("\n  {diagnostic}"));
        }
        text
    })
}

pub async fn add(
    client: &SigilClient,
    file: &Path,
    id: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let id = id.or_else(|| {
        file.file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
    });
    let policy: PolicyView = client
        .post_json("/v1/admin/policies", &AddPolicyRequest { text, id })
        .await?;
    output::print(json, &policy, || format!("policy {} added", policy.id))
}

pub async fn list(client: &SigilClient, json: bool) -> anyhow::Result<()> {
    let list: PolicyList = client.get_json("/v1/admin/policies").await?;
    output::print(json, &list, || {
        let mut text = format!("policy set version {}", list.version);
        for policy in &list.policies {
            text.push_str(&format!(
                "\n\n# {} (added {} by {})\n{}",
                policy.id,
                policy.created_at,
                policy.created_by,
                policy.text.trim_end()
            ));
        }
        text
    })
}

pub async fn remove(client: &SigilClient, id: &str, json: bool) -> anyhow::Result<()> {
    let path = format!(
        "/v1/admin/policies/{}/remove",
        crate::admin::path_segment(id)?
    );
    let list: PolicyList = client.post_json(&path, &serde_json::json!({})).await?;
    output::print(json, &list, || {
        format!("policy {id} removed; policy set version {}", list.version)
    })
}

/// One case of a policy test file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Agent name or SPIFFE ID.
    principal: String,
    action: String,
    resource: String,
    /// `allow` or `deny`.
    expect: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(rename = "case", default)]
    cases: Vec<Case>,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    #[serde(flatten)]
    case: Case,
    actual: String,
    passed: bool,
    policies: Vec<String>,
}

pub async fn test(client: &SigilClient, file: &Path, json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed: CaseFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid policy test file", file.display()))?;
    if parsed.cases.is_empty() {
        bail!("{} has no [[case]] tables", file.display());
    }
    for (index, case) in parsed.cases.iter().enumerate() {
        if case.expect != "allow" && case.expect != "deny" {
            bail!(
                "case {}: `expect` must be \"allow\" or \"deny\", not {:?}",
                index + 1,
                case.expect
            );
        }
    }

    let mut results = Vec::new();
    for case in parsed.cases {
        let decision = decide(client, &case.principal, &case.action, &case.resource).await?;
        results.push(CaseResult {
            passed: decision.decision == case.expect,
            actual: decision.decision,
            policies: decision.policies,
            case,
        });
    }

    let failed = results.iter().filter(|r| !r.passed).count();
    output::print(json, &results, || {
        let mut text = String::new();
        for result in &results {
            let mark = if result.passed { "ok  " } else { "FAIL" };
            text.push_str(&format!(
                "{mark} {} {} {}: expected {}, got {}\n",
                result.case.principal,
                result.case.action,
                result.case.resource,
                result.case.expect,
                result.actual
            ));
        }
        text.push_str(&format!("{} cases, {failed} failed", results.len()));
        text
    })?;
    if failed > 0 {
        bail!("{failed} of {} policy test cases failed", results.len());
    }
    Ok(())
}
