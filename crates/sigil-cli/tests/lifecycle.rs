//! End-to-end lifecycle: init, serve, owners, agents, attestation, renewal and decommission,
//! with real `sigil` and `sigil-agent` processes over TLS on loopback.

mod common;

use common::Authority;

#[test]
fn attest_renew_decommission() {
    let authority = Authority::start();
    let out = authority.enrolled_agent("alice@example.org", "crm-bot");
    let first = std::fs::read_to_string(out.join("svid.pem")).unwrap();

    let renewed = authority.agent_once(&out, None);
    assert!(
        renewed.status.success(),
        "{}",
        String::from_utf8_lossy(&renewed.stderr)
    );
    let second = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    assert_ne!(first, second, "renewal must write a new certificate");

    let shown = authority.sigil_json(&["agent", "show", "crm-bot"]);
    assert_eq!(shown["status"], "active");
    let credentials = shown["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 2);
    assert_eq!(credentials[0]["parent_serial"], credentials[1]["serial"]);

    let decommissioned =
        authority.sigil_json(&["agent", "decommission", "crm-bot", "--reason", "retired"]);
    assert_eq!(decommissioned["status"], "decommissioned");
    assert_eq!(
        decommissioned["revoked_serials"].as_array().unwrap().len(),
        2
    );

    let refused = authority.agent_once(&out, None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("revoked") || stderr.contains("decommissioned"),
        "{stderr}"
    );

    let verify = authority.sigil(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
