//! The policy-test runner behind `sigil policy test FILE`.
//!
//! A test file is JSON Lines: one JSON object per line, each one test case. Blank lines and lines
//! whose first non-blank character is `#` are skipped. The fields are:
//!
//! | field       | required | meaning                                                      |
//! |-------------|----------|--------------------------------------------------------------|
//! | `principal` | yes      | an agent name, or an agent's SPIFFE ID (`spiffe://…`)        |
//! | `action`    | yes      | the entitlement action, such as `invoke`                     |
//! | `resource`  | yes      | the resource, such as `tool:crm/contacts`                    |
//! | `expect`    | yes      | `"allow"` or `"deny"`                                        |
//! | `name`      | no       | a label shown in reports                                     |
//! | `context`   | no       | a JSON object passed as the request context                  |
//!
//! ```text
//! # The CRM bot reads contacts but may not touch billing.
//! {"name": "crm contacts", "principal": "crm-bot", "action": "invoke", "resource": "tool:crm/contacts", "expect": "allow"}
//! {"principal": "spiffe://example.org/agent/crm-bot", "action": "invoke", "resource": "tool:billing/refund", "expect": "deny"}
//! ```

use std::fmt;

use serde::Deserialize;
use sigil_core::{AgentName, SpiffeId};

use crate::decision::{Decision, PrincipalRef, Request, Verdict};
use crate::error::PolicyError;
use crate::snapshot::Snapshot;

/// One line of a test file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseLine {
    name: Option<String>,
    principal: String,
    action: String,
    resource: String,
    expect: Verdict,
    #[serde(default)]
    context: serde_json::Value,
}

/// The result of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// 1-based line of the case in the test file.
    pub line: usize,
    /// The case's label, if it has one.
    pub name: Option<String>,
    /// The principal as written in the file.
    pub principal: String,
    /// The requested action.
    pub action: String,
    /// The requested resource.
    pub resource: String,
    /// The expected verdict.
    pub expected: Verdict,
    /// The engine's decision.
    pub actual: Decision,
}

impl CaseResult {
    /// Returns true when the decision matches the expectation.
    pub fn passed(&self) -> bool {
        self.actual.decision == self.expected
    }
}

impl fmt::Display for CaseResult {
    /// Formats the case and its outcome; a mismatch also lists the determining policies and the
    /// diagnostics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.passed() { "ok" } else { "FAILED" };
        write!(f, "line {}", self.line)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        write!(
            f,
            ": {status}: {} {} {}: expected {}, got {}",
            self.principal, self.action, self.resource, self.expected, self.actual.decision
        )?;
        if !self.passed() {
            if self.actual.policies.is_empty() {
                f.write_str("; no policy determined the decision")?;
            } else {
                write!(
                    f,
                    "; determining policies: {}",
                    self.actual.policies.join(", ")
                )?;
            }
            if !self.actual.diagnostics.is_empty() {
                write!(f, "; diagnostics: {}", self.actual.diagnostics.join("; "))?;
            }
        }
        Ok(())
    }
}

/// Runs every case of `cases_text` (the format is in the module documentation) against
/// `snapshot`.
///
/// Returns one result per case, passed or not. A line that is not a valid case rejects the whole
/// file, naming the line, so that a typo cannot silently skip a case.
pub fn run_policy_tests(
    snapshot: &Snapshot,
    cases_text: &str,
) -> Result<Vec<CaseResult>, PolicyError> {
    let mut results = Vec::new();
    for (index, raw_line) in cases_text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }

        let case: CaseLine =
            serde_json::from_str(trimmed).map_err(|error| PolicyError::InvalidTestCase {
                line,
                reason: error.to_string(),
            })?;
        let actual = decide(snapshot, &case, line)?;
        results.push(CaseResult {
            line,
            name: case.name,
            principal: case.principal,
            action: case.action,
            resource: case.resource,
            expected: case.expect,
            actual,
        });
    }
    Ok(results)
}

/// Parses the case's principal and asks the snapshot.
fn decide(snapshot: &Snapshot, case: &CaseLine, line: usize) -> Result<Decision, PolicyError> {
    let invalid = |error: sigil_core::CoreError| PolicyError::InvalidTestCase {
        line,
        reason: format!("invalid principal: {error}"),
    };

    let context = case.context.clone();
    if case.principal.starts_with("spiffe://") {
        let id = SpiffeId::parse(&case.principal).map_err(invalid)?;
        Ok(snapshot.authorize(&Request {
            principal: PrincipalRef::SpiffeId(&id),
            action: &case.action,
            resource: &case.resource,
            context,
        }))
    } else {
        let name = AgentName::new(&case.principal).map_err(invalid)?;
        Ok(snapshot.authorize(&Request {
            principal: PrincipalRef::Agent(&name),
            action: &case.action,
            resource: &case.resource,
            context,
        }))
    }
}
