//! The policy-test runner: TOML `[[case]]` tables, mismatches reported with the actual decision.

#![allow(clippy::unwrap_used, reason = "tests fail on unexpected errors")]

mod common;

use common::{agent, store_with};
use sigil_core::AgentStatus;
use sigil_policy::{PolicyError, Verdict, run_policy_tests};

const CASES: &str = r#"# The CRM bot invokes CRM tools only.
[[case]]
name = "crm contacts"
principal = "crm-bot"
action = "invoke"
resource = "tool:crm/contacts"
expect = "allow"

[[case]]
principal = "spiffe://example.org/agent/crm-bot"
action = "invoke"
resource = "tool:erp/x"
expect = "deny"

[[case]]
name = "wrong expectation"
principal = "crm-bot"
action = "invoke"
resource = "tool:billing/refund"
expect = "allow"

[[case]]
name = "suspended"
principal = "old-bot"
action = "invoke"
resource = "tool:crm/contacts"
expect = "allow"
context = {}
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
    let cases: Vec<usize> = results.iter().map(|result| result.case).collect();
    assert_eq!(cases, [1, 2, 3, 4]);
    let lines: Vec<usize> = results.iter().map(|result| result.line).collect();
    assert_eq!(lines, [2, 9, 15, 22]);
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
        "case 3 (line 15, wrong expectation): FAILED: crm-bot invoke tool:billing/refund: \
         expected allow, got deny; no policy determined the decision"
    );

    let report = results[3].to_string();
    assert!(
        report.starts_with("case 4 (line 22, suspended): FAILED:"),
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
        "case 1 (line 2, crm contacts): ok: crm-bot invoke tool:crm/contacts: \
         expected allow, got allow"
    );
}

#[test]
fn malformed_file_rejected_with_line() {
    let case = |body: &str| format!("[[case]]\n{body}\n");
    for (text, line) in [
        (case("principal = \"crm-bot\""), 1),
        (
            case(
                "principal = \"crm-bot\"\naction = \"invoke\"\nresource = \"x\"\nexpect = \"maybe\"",
            ),
            5,
        ),
        (
            case(
                "principal = \"crm-bot\"\naction = \"invoke\"\nresource = \"x\"\nexpect = \"allow\"\nextra = 1",
            ),
            6,
        ),
        (
            case(
                "principal = \"bad name\"\naction = \"invoke\"\nresource = \"x\"\nexpect = \"allow\"",
            ),
            1,
        ),
        (
            case(
                "principal = \"spiffe://Bad/agent/x\"\naction = \"invoke\"\nresource = \"x\"\nexpect = \"allow\"",
            ),
            1,
        ),
        ("not toml at all".to_owned(), 1),
        ("# only a comment\n".to_owned(), 1),
        ("[[cases]]\nprincipal = \"x\"\n".to_owned(), 1),
    ] {
        let error = run_policy_tests(&snapshot(), &text).unwrap_err();
        match &error {
            PolicyError::InvalidTestCase { line: actual, .. } => {
                assert_eq!(*actual, line, "{text}: {error}");
            }
            other => panic!("{text}: expected an invalid test case, got {other:?}"),
        }
    }
}
