//! Property tests of the inventory parsers: any input is parsed without panicking, every row
//! is accounted for, and no error message repeats a value from the input.

use proptest::prelude::*;
use sigil_governance::import::{parse_aws_credential_report, parse_json_lines, parse_mapping};

const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

/// A marker no parser produces by itself, planted in values to see whether errors echo them.
const CANARY: &str = "CANARYzq9";

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("N/A".to_owned()),
        Just("no_information".to_owned()),
        Just("2024-02-29T12:00:00+00:00".to_owned()),
        Just(format!("{CANARY}-value")),
        "[a-z0-9:/_-]{0,12}",
    ]
}

proptest! {
    #[test]
    fn aws_report_accounts_for_every_row(rows in prop::collection::vec(prop::collection::vec(field(), 20..24), 0..20)) {
        let mut text = HEADER.to_owned();
        for row in &rows {
            text.push('\n');
            text.push_str(&row.join(","));
        }
        let parsed = parse_aws_credential_report(text.as_bytes()).unwrap();
        prop_assert_eq!(parsed.rows, rows.len() as u64);
        for error in &parsed.errors {
            prop_assert!(error.line >= 2 && error.line <= rows.len() as u64 + 1);
            prop_assert!(!error.message.contains(CANARY), "{}", error.message);
        }
        for credential in &parsed.credentials {
            prop_assert!(!parsed.errors.iter().any(|e| e.line == credential.line));
            prop_assert!(credential.id.starts_with("aws:"));
        }
    }

    #[test]
    fn aws_report_never_panics(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.push(b'\n');
        bytes.extend(input);
        let _ = parse_aws_credential_report(&bytes);
    }

    #[test]
    fn json_lines_account_for_every_line(lines in prop::collection::vec(
        prop_oneof![
            Just(r#"{"id":"k1","agent":"a","kind":"api"}"#.to_owned()),
            Just(format!(r#"{{"id":"k2","agent":"a","kind":"api","last_used":"{CANARY}"}}"#)),
            Just(format!(r#"{{"id":"k3","agent":"a","kind":"api","secret":"{CANARY}"}}"#)),
            Just(format!(r#"{{"id":"k4","agent":"a","kind":"api","{CANARY}":1}}"#)),
            Just(format!("{CANARY} not json")),
            "[ -~]{1,40}",
        ],
        0..30,
    )) {
        let text = lines.join("\n");
        let parsed = parse_json_lines(text.as_bytes()).unwrap();
        let non_blank = lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
        prop_assert_eq!(parsed.rows, non_blank);
        prop_assert_eq!(parsed.credentials.len() + parsed.errors.len(), non_blank as usize);
        for error in &parsed.errors {
            // An unknown field's name is repeated so that it can be fixed; values never are.
            if !error.message.starts_with("unknown field") {
                prop_assert!(!error.message.contains(CANARY), "{}", error.message);
            }
        }
    }

    #[test]
    fn json_lines_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_json_lines(&input);
    }

    #[test]
    fn mapping_never_panics(input in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_mapping(&input);
    }
}
