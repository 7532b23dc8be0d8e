//! Parsers of external credential inventories.
//!
//! An inventory lists static credentials that agents hold in other systems, such as AWS access
//! keys. Sigil keeps their metadata (id, owner, creation, rotation, last use, scopes) and never
//! their secret: a column or field whose name looks like it carries a secret rejects the whole
//! file before any row is read, and error messages never repeat a field's value.
//!
//! Each parser reads the whole input and returns the credentials of every good row, plus one
//! [`RowError`] with the line number of every bad row, so that one malformed row does not stop
//! an import.

mod aws;
mod json;
mod mapping;
mod timestamp;

pub use aws::parse_aws_credential_report;
pub use json::parse_json_lines;
pub use mapping::{Mapping, parse_mapping};

use serde::Serialize;

use crate::GovernanceError;

/// Longest accepted id, user name, kind or scope, in bytes.
pub const MAX_FIELD_LEN: usize = 512;

/// Most scopes accepted on one credential.
pub const MAX_SCOPES: usize = 64;

/// The inventory formats `sigil credentials import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The CSV credential report of AWS IAM (`aws iam get-credential-report`).
    AwsIamCredentialReport,
    /// Sigil's generic schema: one JSON object per line.
    Json,
}

impl Format {
    /// Parses a `--format` value.
    pub fn parse(value: &str) -> Result<Self, GovernanceError> {
        match value {
            "aws-iam-credential-report" => Ok(Self::AwsIamCredentialReport),
            "json" => Ok(Self::Json),
            other => Err(GovernanceError::InvalidInventory(format!(
                "unknown format `{}`; use `aws-iam-credential-report` or `json`",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    /// Returns the name stored as the credential's source.
    pub fn source(self) -> &'static str {
        match self {
            Self::AwsIamCredentialReport => "aws-iam",
            Self::Json => "json",
        }
    }
}

/// Metadata of one external credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalCredential {
    /// Stable id, unique across imports: `aws:<arn>#access_key_1` for AWS.
    pub id: String,
    /// The user or agent name the inventory gives; it maps to an agent.
    pub source_user: String,
    /// Such as `aws-access-key`, `aws-signing-certificate` or the JSON `kind`.
    pub kind: String,
    pub active: bool,
    pub created_at_ms: Option<i64>,
    pub last_rotated_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub scopes: Vec<String>,
    /// Line of the input the credential came from, starting at 1.
    pub line: u64,
}

/// A row that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Line of the input, starting at 1.
    pub line: u64,
    /// What was wrong; it names fields but never repeats their values.
    pub message: String,
}

/// The result of parsing one inventory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub credentials: Vec<ExternalCredential>,
    pub errors: Vec<RowError>,
    /// Data rows read, good and bad.
    pub rows: u64,
}

/// Parses `input` in `format`.
pub fn parse(format: Format, input: &[u8]) -> Result<Parsed, GovernanceError> {
    match format {
        Format::AwsIamCredentialReport => parse_aws_credential_report(input),
        Format::Json => parse_json_lines(input),
    }
}

/// Returns true when a column or field name suggests that it holds a secret value, such as
/// `secret_access_key`, `password`, `private_key` or `session_token`.
///
/// The metadata columns of the AWS report that start with `password_` (enabled, last used,
/// last changed, next rotation) are not secrets and pass.
pub fn looks_secret(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    const PASSWORD_METADATA: [&str; 4] = [
        "password_enabled",
        "password_last_used",
        "password_last_changed",
        "password_next_rotation",
    ];
    if PASSWORD_METADATA.contains(&name.as_str()) {
        return false;
    }
    const WORDS: [&str; 9] = [
        "secret",
        "password",
        "passwd",
        "private",
        "token",
        "passphrase",
        "api_key",
        "credential_value",
        "access_key_id",
    ];
    name == "key" || name == "value" || WORDS.iter().any(|word| name.contains(word))
}

/// Checks a free-text field: not empty, at most [`MAX_FIELD_LEN`] bytes, no control characters.
fn check_text(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(format!("`{field}` is longer than {MAX_FIELD_LEN} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{field}` contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            "password",
            "private_key",
            "session-token",
            "api_key",
            "key",
            "access_key_id",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "user",
            "arn",
            "password_enabled",
            "password_last_used",
            "access_key_1_active",
            "access_key_1_last_rotated",
            "cert_1_active",
            "scopes",
            "last_used",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
