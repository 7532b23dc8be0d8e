//! The AWS IAM credential report (CSV).
//!
//! The report has one row per IAM user (and `<root_account>`), with columns documented in the
//! IAM User Guide, "Getting credential reports for your AWS account". Sigil reads these:
//!
//! - `user`, `arn`, `user_creation_time`;
//! - `access_key_N_active`, `access_key_N_last_rotated`, `access_key_N_last_used_date` for
//!   N = 1, 2;
//! - `cert_N_active`, `cert_N_last_rotated` for N = 1, 2, when present.
//!
//! Other columns (password and MFA state, last-used region and service) are ignored. Each user
//! yields one credential per access key or signing certificate that exists: active, or with a
//! rotation time. Booleans are `true`/`false` in any case; times are ISO 8601, or `N/A`,
//! `no_information` or `not_supported` for none.

use csv::{ReaderBuilder, StringRecord};

use super::timestamp::parse_time;
use super::{ExternalCredential, Parsed, RowError, check_text, looks_secret};
use crate::GovernanceError;

/// Columns without which the file is not a credential report.
const REQUIRED: [&str; 6] = [
    "user",
    "arn",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_2_active",
    "access_key_2_last_rotated",
];

/// The credentials one row may describe: column prefix, id suffix, kind, and whether the
/// report records a last-use time for it.
const SLOTS: [(&str, &str, bool); 4] = [
    ("access_key_1", "aws-access-key", true),
    ("access_key_2", "aws-access-key", true),
    ("cert_1", "aws-signing-certificate", false),
    ("cert_2", "aws-signing-certificate", false),
];

/// Column positions in the header.
struct Columns {
    names: Vec<String>,
}

impl Columns {
    fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|column| column == name)
    }
}

/// Parses an AWS IAM credential report.
///
/// Fails as a whole when the header lacks a required column or has a column that looks like a
/// secret; otherwise each bad row becomes a [`RowError`].
pub fn parse_aws_credential_report(input: &[u8]) -> Result<Parsed, GovernanceError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(input);

    let header = reader.headers().map_err(|err| {
        GovernanceError::InvalidInventory(format!("cannot read the CSV header: {}", describe(&err)))
    })?;
    let columns = Columns {
        names: header.iter().map(str::to_owned).collect(),
    };
    if let Some(secret) = columns.names.iter().find(|name| looks_secret(name)) {
        return Err(GovernanceError::InvalidInventory(format!(
            "column `{}` looks like it holds a secret; Sigil imports metadata only, so remove \
             the column and import again",
            secret.chars().take(60).collect::<String>()
        )));
    }
    for required in REQUIRED {
        if columns.position(required).is_none() {
            return Err(GovernanceError::InvalidInventory(format!(
                "the header has no `{required}` column; is this an AWS IAM credential report?"
            )));
        }
    }

    let mut parsed = Parsed::default();
    let mut record = StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                parsed.rows += 1;
                let line = record.position().map_or(0, |p| p.line());
                match credentials_of_row(&columns, &record, line) {
                    Ok(mut found) => parsed.credentials.append(&mut found),
                    Err(message) => parsed.errors.push(RowError { line, message }),
                }
            }
            Err(err) => {
                let Some(line) = row_error_line(&err) else {
                    return Err(GovernanceError::InvalidInventory(describe(&err)));
                };
                parsed.rows += 1;
                parsed.errors.push(RowError {
                    line,
                    message: describe(&err),
                });
            }
        }
    }
    Ok(parsed)
}

/// Returns the line of a per-row error, or `None` for an error that ends the file (I/O).
fn row_error_line(err: &csv::Error) -> Option<u64> {
    match err.kind() {
        csv::ErrorKind::UnequalLengths { pos, .. } => Some(pos.as_ref().map_or(0, |p| p.line())),
        csv::ErrorKind::Utf8 { pos, .. } => Some(pos.as_ref().map_or(0, |p| p.line())),
        _ => None,
    }
}

/// Describes a CSV error without quoting the input.
fn describe(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".into(),
        csv::ErrorKind::Io(err) => format!("read failed: {err}"),
        _ => "the CSV is malformed".into(),
    }
}

fn credentials_of_row(
    columns: &Columns,
    record: &StringRecord,
    line: u64,
) -> Result<Vec<ExternalCredential>, String> {
    let field = |name: &str| columns.position(name).and_then(|i| record.get(i));
    let user = field("user").unwrap_or_default();
    let arn = field("arn").unwrap_or_default();
    check_text("user", user)?;
    check_text("arn", arn)?;
    let created = time_field(field("user_creation_time"), "user_creation_time")?;

    let mut found = Vec::new();
    for (prefix, kind, tracks_use) in SLOTS {
        let active_column = format!("{prefix}_active");
        let Some(active) = field(&active_column) else {
            continue;
        };
        let active = parse_bool(active)
            .ok_or_else(|| format!("`{active_column}` is not `true` or `false`"))?;
        let rotated_column = format!("{prefix}_last_rotated");
        let rotated = time_field(field(&rotated_column), &rotated_column)?;
        let used = if tracks_use {
            let column = format!("{prefix}_last_used_date");
            time_field(field(&column), &column)?
        } else {
            None
        };
        if !active && rotated.is_none() {
            continue;
        }
        found.push(ExternalCredential {
            id: format!("aws:{arn}#{prefix}"),
            source_user: user.to_owned(),
            kind: kind.to_owned(),
            active,
            created_at_ms: created,
            last_rotated_at_ms: rotated,
            last_used_at_ms: used,
            scopes: Vec::new(),
            line,
        });
    }
    Ok(found)
}

fn parse_bool(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn time_field(value: Option<&str>, column: &str) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        Some(value) => parse_time(value)
            .map_err(|()| format!("`{column}` is not an ISO 8601 time, `N/A` or `no_information`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    fn report(rows: &[&str]) -> Vec<u8> {
        let mut text = HEADER.to_owned();
        for row in rows {
            text.push('\n');
            text.push_str(row);
        }
        text.into_bytes()
    }

    #[test]
    fn reads_keys_and_certificates() {
        let input = report(&[
            "<root_account>,arn:aws:iam::123456789012:root,2019-01-01T00:00:00+00:00,not_supported,2024-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
            "crm-bot,arn:aws:iam::123456789012:user/crm-bot,2020-03-01T10:00:00+00:00,false,N/A,N/A,N/A,false,true,2020-03-01T10:05:00+00:00,2024-05-01T08:00:00+00:00,us-east-1,s3,TRUE,2023-01-01T00:00:00+00:00,N/A,N/A,N/A,false,2021-01-01T00:00:00+00:00,false,N/A",
        ]);
        let parsed = parse_aws_credential_report(&input).unwrap();
        assert_eq!(parsed.rows, 2);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let ids: Vec<_> = parsed.credentials.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "aws:arn:aws:iam::123456789012:user/crm-bot#access_key_1",
                "aws:arn:aws:iam::123456789012:user/crm-bot#access_key_2",
                "aws:arn:aws:iam::123456789012:user/crm-bot#cert_1",
            ]
        );
        let key = &parsed.credentials[0];
        assert!(key.active);
        assert_eq!(key.source_user, "crm-bot");
        assert_eq!(key.line, 3);
        assert_eq!(key.last_used_at_ms, Some(1_714_550_400_000));
        assert_eq!(parsed.credentials[1].last_used_at_ms, None);
        assert!(!parsed.credentials[2].active);
    }

    #[test]
    fn bad_rows_are_reported_by_line() {
        let input = report(&[
            "a,arn:aws:iam::1:user/a,N/A,false,N/A,N/A,N/A,false,maybe,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
            "short,row",
            "b,arn:aws:iam::1:user/b,N/A,false,N/A,N/A,N/A,false,true,last week,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
            "c,arn:aws:iam::1:user/c,N/A,false,N/A,N/A,N/A,false,true,2024-01-01T00:00:00Z,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
        ]);
        let parsed = parse_aws_credential_report(&input).unwrap();
        assert_eq!(parsed.rows, 4);
        let lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(parsed.errors[1].message.contains("fields"));
        assert!(
            !parsed.errors[2].message.contains("last week"),
            "no values in errors"
        );
        assert_eq!(parsed.credentials.len(), 1);
        assert_eq!(parsed.credentials[0].line, 5);
    }

    #[test]
    fn secret_column_rejects_the_file() {
        let input = format!("{HEADER},aws_secret_access_key\n").into_bytes();
        let err = parse_aws_credential_report(&input).unwrap_err();
        assert!(err.to_string().contains("aws_secret_access_key"), "{err}");
    }

    #[test]
    fn missing_column_rejects_the_file() {
        let err = parse_aws_credential_report(b"user,arn\nx,y\n").unwrap_err();
        assert!(err.to_string().contains("access_key_1_active"), "{err}");
    }
}
