//! Feeds arbitrary bytes to both inventory parsers. A panic is a finding, and so is a row
//! counted twice: every data row is either a credential source or a row error, never both.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_governance::import::{parse_aws_credential_report, parse_json_lines};

fuzz_target!(|input: &[u8]| {
    if let Ok(parsed) = parse_aws_credential_report(input) {
        assert!(parsed.errors.len() as u64 <= parsed.rows);
        for credential in &parsed.credentials {
            assert!(!parsed.errors.iter().any(|e| e.line == credential.line));
        }
    }
    if let Ok(parsed) = parse_json_lines(input) {
        assert_eq!(
            parsed.credentials.len() + parsed.errors.len(),
            usize::try_from(parsed.rows).unwrap_or(usize::MAX)
        );
    }
});
