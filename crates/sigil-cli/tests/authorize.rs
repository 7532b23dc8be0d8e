//! Entitlements, custom Cedar policies and the decision API, through `sigil` and HTTP.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a setup error"
)]

mod common;

use common::Authority;

fn decision(authority: &Authority, agent: &str, action: &str, resource: &str) -> serde_json::Value {
    authority.sigil_json(&["authorize", agent, action, resource])
}

fn register_with(authority: &Authority, agent: &str, entitlements: &[&str]) {
    authority.sigil_ok(&["owner", "add", &format!("{agent}@example.org")]);
    let mut args = vec!["agent", "register", agent, "--owner"];
    let owner = format!("{agent}@example.org");
    args.push(&owner);
    for entitlement in entitlements {
        args.push("--entitlement");
        args.push(entitlement);
    }
    authority.sigil_ok(&args);
}

fn write(authority: &Authority, name: &str, text: &str) -> std::path::PathBuf {
    let path = authority.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn entitlements_decide_requests() {
    let authority = Authority::start();
    register_with(
        &authority,
        "crm-bot",
        &["invoke:tool:crm/*", "read:doc:handbook"],
    );

    let allowed = decision(&authority, "crm-bot", "invoke", "tool:crm/contacts");
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    assert!(
        allowed["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("crm-bot")),
        "{allowed}"
    );

    assert_eq!(
        decision(&authority, "crm-bot", "read", "doc:handbook")["decision"],
        "allow"
    );
    assert_eq!(
        decision(&authority, "crm-bot", "read", "doc:handbook2")["decision"],
        "deny",
        "exact resources do not match prefixes"
    );
    assert_eq!(
        decision(&authority, "crm-bot", "invoke", "tool:erp/x")["decision"],
        "deny"
    );
    assert_eq!(
        decision(&authority, "crm-bot", "delete", "tool:crm/contacts")["decision"],
        "deny"
    );

    let spiffe = decision(
        &authority,
        "spiffe://example.org/agent/crm-bot",
        "invoke",
        "tool:crm/a",
    );
    assert_eq!(
        spiffe["decision"], "allow",
        "the principal may be given as a SPIFFE ID"
    );
}

#[test]
fn grant_and_revoke_change_decisions() {
    let authority = Authority::start();
    register_with(&authority, "grant-bot", &["invoke:tool:crm/*"]);
    assert_eq!(
        decision(&authority, "grant-bot", "invoke", "tool:erp/x")["decision"],
        "deny"
    );

    authority.sigil_ok(&["agent", "grant", "grant-bot", "invoke:tool:erp/*"]);
    assert_eq!(
        decision(&authority, "grant-bot", "invoke", "tool:erp/x")["decision"],
        "allow",
        "a grant applies at once"
    );

    let drift = authority.sigil_json(&["findings", "--kind", "privilege-drift"]);
    let open: Vec<_> = drift["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "open")
        .collect();
    assert_eq!(
        open.len(),
        1,
        "a grant beyond the baseline is drift: {drift}"
    );
    assert_eq!(open[0]["subject"], "grant-bot");
    let reviews = authority.sigil_json(&["review", "list"]);
    let items = reviews["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "drift opens a review item at once: {reviews}"
    );
    assert_eq!(items[0]["agent"], "grant-bot");
    assert_eq!(items[0]["reason"], "privilege-drift");
    assert_eq!(items[0]["status"], "open");

    authority.sigil_ok(&["agent", "revoke-grant", "grant-bot", "invoke:tool:erp/*"]);
    assert_eq!(
        decision(&authority, "grant-bot", "invoke", "tool:erp/x")["decision"],
        "deny",
        "a revoked grant applies at once"
    );
    let drift = authority.sigil_json(&["findings", "--kind", "privilege-drift"]);
    assert_eq!(drift["findings"][0]["status"], "resolved", "{drift}");
}

#[test]
fn suspended_agent_denied_despite_policy() {
    let authority = Authority::start();
    register_with(&authority, "held-bot", &["invoke:tool:crm/*"]);
    let permissive = write(
        &authority,
        "allow-all.cedar",
        "permit(principal, action, resource);\n",
    );
    authority.sigil_ok(&["policy", "add", permissive.to_str().unwrap()]);

    authority.sigil_ok(&["agent", "suspend", "held-bot"]);
    let denied = decision(&authority, "held-bot", "invoke", "tool:crm/contacts");
    assert_eq!(
        denied["decision"], "deny",
        "suspension must win over any permit: {denied}"
    );

    authority.sigil_ok(&["agent", "resume", "held-bot"]);
    assert_eq!(
        decision(&authority, "held-bot", "invoke", "tool:crm/contacts")["decision"],
        "allow"
    );

    authority.sigil_ok(&["agent", "decommission", "held-bot"]);
    assert_eq!(
        decision(&authority, "held-bot", "anything", "at:all")["decision"],
        "deny"
    );
}

#[test]
fn forbid_policy_overrides_entitlement() {
    let authority = Authority::start();
    register_with(&authority, "forbid-bot", &["invoke:tool:crm/*"]);
    let forbid = write(
        &authority,
        "no-export.cedar",
        "forbid(principal, action == Sigil::Action::\"invoke\", resource)\nwhen { resource.id like \"tool:crm/export*\" };\n",
    );
    authority.sigil_ok(&["policy", "add", forbid.to_str().unwrap()]);
    assert_eq!(
        decision(&authority, "forbid-bot", "invoke", "tool:crm/export-all")["decision"],
        "deny"
    );
    assert_eq!(
        decision(&authority, "forbid-bot", "invoke", "tool:crm/contacts")["decision"],
        "allow"
    );

    let listed = authority.sigil_json(&["policy", "list"]);
    assert_eq!(listed["policies"][0]["id"], "no-export");
    authority.sigil_ok(&["policy", "remove", "no-export"]);
    assert_eq!(
        decision(&authority, "forbid-bot", "invoke", "tool:crm/export-all")["decision"],
        "allow",
        "removal applies at once"
    );
}

#[test]
fn invalid_policy_rejected_with_position() {
    let authority = Authority::start();
    register_with(&authority, "val-bot", &["invoke:tool:crm/*"]);
    let before = authority
        .sql("SELECT COUNT(*) FROM policies")
        .trim()
        .to_owned();

    let syntax = write(
        &authority,
        "broken.cedar",
        "permit(principal, action, resource)\nwhen { resource.id == };\n",
    );
    let output = authority.sigil(&["policy", "add", syntax.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2"),
        "the error must name the line: {stderr}"
    );
    assert!(
        stderr.contains("column"),
        "the error must name the column: {stderr}"
    );

    let unknown = write(
        &authority,
        "unknown.cedar",
        "permit(principal, action == Sigil::Action::\"teleport\", resource);\n",
    );
    let output = authority.sigil(&["policy", "add", unknown.to_str().unwrap()]);
    assert!(
        !output.status.success(),
        "an action the schema does not know must fail validation"
    );

    let attribute = write(
        &authority,
        "attr.cedar",
        "permit(principal, action, resource) when { principal.salary > 3 };\n",
    );
    let output = authority.sigil(&["policy", "add", attribute.to_str().unwrap()]);
    assert!(
        !output.status.success(),
        "an attribute the schema does not know must fail validation"
    );

    assert_eq!(
        authority.sql("SELECT COUNT(*) FROM policies").trim(),
        before,
        "nothing may be stored"
    );
}

#[test]
fn policy_test_reports_mismatches() {
    let authority = Authority::start();
    register_with(&authority, "test-bot", &["invoke:tool:crm/*"]);
    let passing = write(
        &authority,
        "passing.toml",
        r#"
[[case]]
principal = "test-bot"
action = "invoke"
resource = "tool:crm/contacts"
expect = "allow"

[[case]]
principal = "spiffe://example.org/agent/test-bot"
action = "invoke"
resource = "tool:erp/x"
expect = "deny"
"#,
    );
    let output = authority.sigil(&["policy", "test", passing.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let failing = write(
        &authority,
        "failing.toml",
        r#"
[[case]]
principal = "test-bot"
action = "invoke"
resource = "tool:erp/x"
expect = "allow"
"#,
    );
    let output = authority.sigil(&["policy", "test", failing.to_str().unwrap()]);
    assert!(!output.status.success(), "a mismatch must exit non-zero");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL test-bot invoke tool:erp/x: expected allow, got deny"),
        "{stdout}"
    );
}

#[test]
fn decision_api_callers_and_audit() {
    let authority = Authority::start();
    let out = authority.enrolled_agent("alice@example.org", "caller-bot");
    let body = r#"{"principal": "spiffe://example.org/agent/caller-bot", "action": "invoke", "resource": "tool:x"}"#;

    let (status, response) = authority.request(
        "POST",
        "/v1/authorize",
        Some(body),
        Some((&out.join("svid.pem"), &out.join("svid.key"))),
    );
    assert_eq!(
        status, 403,
        "an agent may not call the decision API: {response}"
    );
    assert!(response.contains("decision_caller_required"), "{response}");

    let before = authority
        .sql("SELECT COUNT(*) FROM audit_events WHERE action = 'authorize.denied'")
        .trim()
        .parse::<i64>()
        .unwrap();
    let (status, response) = authority.request(
        "POST",
        "/v1/authorize",
        Some(body),
        Some((&authority.admin_cert(), &authority.admin_key())),
    );
    assert_eq!(status, 200, "{response}");
    let response: serde_json::Value = serde_json::from_str(&response).unwrap();
    assert_eq!(response["decision"], "deny");
    // Denials are appended by a background writer in batches, so the event may land a few
    // milliseconds after the response.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let after = loop {
        let count = authority
            .sql("SELECT COUNT(*) FROM audit_events WHERE action = 'authorize.denied'")
            .trim()
            .parse::<i64>()
            .unwrap();
        if count > before || std::time::Instant::now() > deadline {
            break count;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(after, before + 1, "every denial is audited");

    let bad =
        r#"{"principal": "spiffe://example.org/agent/../admin", "action": "a", "resource": "r"}"#;
    let (status, response) = authority.request(
        "POST",
        "/v1/authorize",
        Some(bad),
        Some((&authority.admin_cert(), &authority.admin_key())),
    );
    assert_eq!(status, 400, "{response}");
    assert!(response.contains("invalid_principal"), "{response}");
}

#[test]
fn allowed_decisions_record_usage() {
    let authority = Authority::start();
    register_with(&authority, "used-bot", &["invoke:tool:crm/*", "read:doc:*"]);
    assert_eq!(
        decision(&authority, "used-bot", "invoke", "tool:crm/contacts")["decision"],
        "allow"
    );

    // The scan writes pending usage first; the 30-day period leaves both entitlements recent.
    authority.sigil_ok(&["findings", "--scan"]);
    let shown = authority.sigil_json(&["agent", "show", "used-bot"]);
    let entitlements = shown["entitlements"].as_array().unwrap();
    let used = entitlements
        .iter()
        .find(|e| e["entitlement"] == "invoke:tool:crm/*")
        .unwrap();
    let unused = entitlements
        .iter()
        .find(|e| e["entitlement"] == "read:doc:*")
        .unwrap();
    assert!(
        used["last_used_at"].is_string(),
        "the allowing entitlement records its use: {shown}"
    );
    assert!(
        unused["last_used_at"].is_null(),
        "other entitlements stay unused: {shown}"
    );
}

#[test]
fn unused_entitlement_found_by_scan() {
    let authority = Authority::start_with(&["--unused-entitlement-period", "1s"]);
    register_with(&authority, "idle-bot", &["invoke:tool:crm/*"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let findings = authority.sigil_json(&["findings", "--scan", "--kind", "unused-entitlement"]);
    let list = findings["findings"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{findings}");
    assert_eq!(list[0]["subject"], "idle-bot invoke:tool:crm/*");
}
