//! The policy-test runner: JSON Lines cases, mismatches reported with the actual decision.

#![allow(clippy::unwrap_used, reason = "tests fail on unexpected errors")]

mod common;

use common::{agent, store_with};
use sigil_core::AgentStatus;
use sigil_policy::{PolicyError, Verdict, run_policy_tests};

const CASES: &str = r#"
# The CRM bot invokes CRM tools only.
{"name": "crm contacts", "principal": "crm-bot", "action": "invoke", "resource": "tool:crm/contacts", "expect": "allow"}
{"principal": "spiffe://example.org/agent/crm-bot", "action": "invoke", "resource": "tool:erp/x", "expect": "deny"}

{"name": "wrong expectation", "principal": "crm-bot", "action": "invoke", "resource": "tool:billing/refund", "expect": "allow"}
{"name": "suspended", "principal": "old-bot", "action": "invoke", "resource": "tool:crm/contacts", "expect": "allow", "context": {}}
"#;

fn snapshot() -> sigil_policy::Snapshot {
    store_with(vec![
        agent(
            "crm-bot",
            "alice@example.org",
            AgentStatus::Active,
            &["invoke:tool:crm/*"],
        ),
        agent(
            "old-bot",
            "alice@example.org",
            AgentStatus::Suspended,
            &["invoke:tool:crm/*"],
        ),
    ])
    .build_snapshot(1)
    .unwrap()
}

#[test]
fn runner_reports_each_case() {
    let results = run_policy_tests(&snapshot(), CASES).unwrap();

    assert_eq!(results.len(), 4);
    let lines: Vec<usize> = results.iter().map(|result| result.line).collect();
    assert_eq!(lines, [3, 4, 6, 7]);
    let passed: Vec<bool> = results.iter().map(|result| result.passed()).collect();
    assert_eq!(passed, [true, true, false, false]);
    assert_eq!(results[0].name.as_deref(), Some("crm contacts"));
    assert_eq!(results[1].actual.decision, Verdict::Deny);
}

#[test]
fn mismatch_report_names_case_and_decision() {
    let results = run_policy_tests(&snapshot(), CASES).unwrap();

    let report = results[2].to_string();
    assert_eq!(
        report,
        "line 6 (wrong expectation): FAILED: crm-bot invoke tool:billing/refund: \
         expected allow, got deny; no policy determined the decision"
    );

    let report = results[3].to_string();
    assert!(
        report.starts_with("line 7 (suspended): FAILED:"),
        "{report}"
    );
    assert!(
        report.contains("determining policies: builtin/deny-inactive-agent"),
        "{report}"
    );
    assert!(
        report.contains("diagnostics: agent `old-bot` is suspended"),
        "{report}"
    );

    assert_eq!(
        results[0].to_string(),
        "line 3 (crm contacts): ok: crm-bot invoke tool:crm/contacts: expected allow, got allow"
    );
}

#[test]
fn malformed_case_rejects_file() {
    for (text, line) in [
        ("{\"principal\": \"crm-bot\"}", 1),
        (
            "\n\n{\"principal\": \"crm-bot\", \"action\": \"invoke\", \"resource\": \"x\", \"expect\": \"maybe\"}",
            3,
        ),
        (
            "{\"principal\": \"crm-bot\", \"action\": \"invoke\", \"resource\": \"x\", \"expect\": \"allow\", \"extra\": 1}",
            1,
        ),
        (
            "{\"principal\": \"bad name\", \"action\": \"invoke\", \"resource\": \"x\", \"expect\": \"allow\"}",
            1,
        ),
        (
            "{\"principal\": \"spiffe://Bad/agent/x\", \"action\": \"invoke\", \"resource\": \"x\", \"expect\": \"allow\"}",
            1,
        ),
        ("not json", 1),
    ] {
        let error = run_policy_tests(&snapshot(), text).unwrap_err();
        match &error {
            PolicyError::InvalidTestCase { line: actual, .. } => {
                assert_eq!(*actual, line, "{text}: {error}");
            }
            other => panic!("{text}: expected an invalid test case, got {other:?}"),
        }
    }
}

#[test]
fn empty_file_has_no_results() {
    let results = run_policy_tests(&snapshot(), "\n# only a comment\n   \n").unwrap();
    assert!(results.is_empty());
}
