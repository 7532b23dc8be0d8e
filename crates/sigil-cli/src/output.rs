//! Human-readable tables, or one JSON document with `--json`.

use serde::Serialize;
use sigil_proto::{AgentDetail, AgentView, FindingView, OwnerView};

/// Writes one line to stdout. A reader that went away (a closed pipe, as in `sigil owner list |
/// head -1`) ends the output quietly instead of failing the command after its work is done.
pub fn line(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;

    match writeln!(std::io::stdout().lock(), "{text}") {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(anyhow::anyhow!("cannot write to stdout: {err}")),
    }
}

/// Prints `value` as pretty JSON when `json` is set, or the text `human` builds otherwise.
pub fn print<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        line(serde_json::to_string_pretty(value)?)?;
    } else {
        line(human().trim_end())?;
    }
    Ok(())
}

/// Formats rows as left-aligned columns.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

pub fn owners_table(owners: &[OwnerView]) -> String {
    let rows = owners
        .iter()
        .map(|o| {
            vec![
                o.email.clone(),
                o.name.clone().unwrap_or_default(),
                o.status.clone(),
                o.created_at.clone(),
            ]
        })
        .collect();
    table(&["EMAIL", "NAME", "STATUS", "CREATED"], rows)
}

pub fn agents_table(agents: &[AgentView]) -> String {
    let rows = agents
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.status.clone(),
                a.owner.clone(),
                a.spiffe_id.clone(),
            ]
        })
        .collect();
    table(&["NAME", "STATUS", "OWNER", "SPIFFE ID"], rows)
}

pub fn agent_detail(detail: &AgentDetail) -> String {
    let agent = &detail.agent;
    let mut out = format!(
        "name:       {}\nspiffe_id:  {}\nstatus:     {}{}\nowner:      {}\npurpose:    {}\nsvid ttl:   {}s\ncreated:    {}\n",
        agent.name,
        agent.spiffe_id,
        agent.status,
        agent
            .status_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        agent.owner,
        agent.purpose.clone().unwrap_or_default(),
        agent.ttl_seconds,
        agent.created_at,
    );

    out.push_str("\nentitlements:\n");
    for e in &detail.entitlements {
        let origin = if e.baseline { "baseline" } else { "granted" };
        out.push_str(&format!("  {}  ({origin})\n", e.entitlement));
    }

    out.push_str("\ncredentials:\n");
    let rows = detail
        .credentials
        .iter()
        .map(|c| {
            vec![
                c.serial.clone(),
                c.state.clone(),
                c.expires_at.clone(),
                c.parent_serial.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&table(&["SERIAL", "STATE", "EXPIRES", "PARENT"], rows));
    out
}

pub fn findings_table(findings: &[FindingView]) -> String {
    let rows = findings
        .iter()
        .map(|f| {
            vec![
                f.id.to_string(),
                f.kind.clone(),
                f.severity.clone(),
                f.status.clone(),
                f.subject.clone(),
                f.first_seen.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "SEVERITY", "STATUS", "SUBJECT", "FIRST SEEN"],
        rows,
    )
}

pub fn reviews_table(items: &[sigil_proto::ReviewItemView]) -> String {
    let rows = items
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.agent.clone(),
                r.owner.clone(),
                r.reason.clone(),
                r.status.clone(),
                r.due_at.clone(),
            ]
        })
        .collect();
    table(&["ID", "AGENT", "OWNER", "REASON", "STATUS", "DUE"], rows)
}
