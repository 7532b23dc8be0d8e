//! Feeds arbitrary rows under a valid AWS IAM credential report header, so that the fuzzer
//! spends its time in the row parser rather than on the header check.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_governance::import::parse_aws_credential_report;

const HEADER: &[u8] = b"user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n";

fuzz_target!(|rows: &[u8]| {
    let mut input = HEADER.to_vec();
    input.extend_from_slice(rows);
    let parsed = parse_aws_credential_report(&input).expect("a valid header is never rejected");
    for credential in &parsed.credentials {
        assert!(credential.id.starts_with("aws:"));
        assert!(credential.line >= 2);
    }
});
