//! Sigil's generic inventory schema: JSON Lines, one credential object per line.
//!
//! ```json
//! {"id": "github:pat-4411", "agent": "crm-bot", "kind": "github-token", "active": true,
//!  "created": "2024-01-10T09:00:00Z", "last_rotated": null, "last_used": "2024-05-01T12:00:00Z",
//!  "scopes": ["repo:read"]}
//! ```
//!
//! `id`, `agent` and `kind` are required strings; `active` defaults to true; the three times are
//! RFC 3339 or null; `scopes` defaults to empty. Unknown fields reject the row, and a field
//! whose name looks like a secret rejects it with a message that says so. Blank lines are
//! skipped.

use serde::Deserialize;
use serde_json::Value;

use super::timestamp::parse_time;
use super::{ExternalCredential, MAX_SCOPES, Parsed, RowError, check_text, looks_secret};
use crate::GovernanceError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    agent: String,
    kind: String,
    #[serde(default = "default_active")]
    active: bool,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    last_rotated: Option<String>,
    #[serde(default)]
    last_used: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

fn default_active() -> bool {
    true
}

/// Parses JSON Lines in the generic schema. Never fails as a whole: every problem is a row
/// error, because each line stands alone.
pub fn parse_json_lines(input: &[u8]) -> Result<Parsed, GovernanceError> {
    let mut parsed = Parsed::default();
    for (index, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        parsed.rows += 1;
        match parse_line(raw, line) {
            Ok(credential) => parsed.credentials.push(credential),
            Err(message) => parsed.errors.push(RowError { line, message }),
        }
    }
    Ok(parsed)
}

fn parse_line(raw: &[u8], line: u64) -> Result<ExternalCredential, String> {
    let value: Value = serde_json::from_slice(raw)
        .map_err(|err| format!("not valid JSON ({})", err.classify_name()))?;
    let Value::Object(object) = &value else {
        return Err("each line must be one JSON object".into());
    };
    if let Some(name) = object.keys().find(|name| looks_secret(name)) {
        return Err(format!(
            "field `{}` looks like it holds a secret; Sigil imports metadata only",
            name.chars().take(60).collect::<String>()
        ));
    }
    let entry: Entry = serde_json::from_value(value).map_err(|err| schema_error(&err))?;

    check_text("id", &entry.id)?;
    check_text("agent", &entry.agent)?;
    check_text("kind", &entry.kind)?;
    if entry.scopes.len() > MAX_SCOPES {
        return Err(format!("`scopes` has more than {MAX_SCOPES} entries"));
    }
    for scope in &entry.scopes {
        check_text("scopes", scope)?;
    }
    let time = |field: &str, value: &Option<String>| match value {
        None => Ok(None),
        Some(text) => parse_time(text)
            .ok()
            .flatten()
            .map(Some)
            .ok_or_else(|| format!("`{field}` is not an RFC 3339 time or null")),
    };

    Ok(ExternalCredential {
        id: entry.id,
        source_user: entry.agent,
        kind: entry.kind,
        active: entry.active,
        created_at_ms: time("created", &entry.created)?,
        last_rotated_at_ms: time("last_rotated", &entry.last_rotated)?,
        last_used_at_ms: time("last_used", &entry.last_used)?,
        scopes: entry.scopes,
        line,
    })
}

/// Describes a schema mismatch by field name only: serde's messages can quote the value.
fn schema_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    for field in [
        "id",
        "agent",
        "kind",
        "active",
        "created",
        "last_rotated",
        "last_used",
        "scopes",
    ] {
        if text.contains(&format!("missing field `{field}`")) {
            return format!("missing field `{field}`");
        }
    }
    if text.starts_with("unknown field") {
        let name = text.split('`').nth(1).unwrap_or("?");
        return format!(
            "unknown field `{}`; the fields are id, agent, kind, active, created, last_rotated, \
             last_used and scopes",
            name.chars().take(60).collect::<String>()
        );
    }
    "a field has the wrong type: id, agent and kind are strings, active is a boolean, times are \
     strings or null, scopes is an array of strings"
        .into()
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "data error",
            serde_json::error::Category::Eof => "unexpected end of line",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_and_reports_bad_lines() {
        let input = br#"{"id":"gh:1","agent":"crm-bot","kind":"github-token","created":"2024-01-10T09:00:00Z","last_used":null,"scopes":["repo:read"]}

{"id":"gh:2","agent":"crm-bot","kind":"github-token","token":"ghp_supersecret"}
not json
{"id":"gh:3","agent":"crm-bot","kind":"github-token","last_used":"ghp_notatime"}
{"id":"gh:4","kind":"x"}
{"id":"gh:5","agent":"crm-bot","kind":"x","colour":"red"}
"#;
        let parsed = parse_json_lines(input).unwrap();
        assert_eq!(parsed.rows, 6);
        assert_eq!(parsed.credentials.len(), 1);
        let credential = &parsed.credentials[0];
        assert_eq!(credential.id, "gh:1");
        assert!(credential.active);
        assert_eq!(credential.scopes, ["repo:read"]);
        let lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        for error in &parsed.errors {
            assert!(!error.message.contains("ghp_"), "{}", error.message);
        }
        assert!(parsed.errors[0].message.contains("`token`"));
        assert!(parsed.errors[3].message.contains("missing field `agent`"));
        assert!(parsed.errors[4].message.contains("unknown field `colour`"));
    }
}
