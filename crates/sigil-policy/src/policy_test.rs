//! The policy-test runner behind `sigil policy test FILE`.
//!
//! A test file is TOML: one `[[case]]` table per test case, with these keys:
//!
//! | key         | required | meaning                                                  |
//! |-------------|----------|----------------------------------------------------------|
//! | `principal` | yes      | an agent name, or an agent's SPIFFE ID (`spiffe://…`)    |
//! | `action`    | yes      | the entitlement action, such as `invoke`                 |
//! | `resource`  | yes      | the resource, such as `tool:crm/contacts`                |
//! | `expect`    | yes      | `"allow"` or `"deny"`                                    |
//! | `name`      | no       | a label shown in reports                                 |
//! | `context`   | no       | a table passed as the request context                    |
//!
//! ```toml
//! # The CRM bot invokes CRM tools but may not touch billing.
//! [[case]]
//! name = "crm contacts"
//! principal = "crm-bot"
//! action = "invoke"
//! resource = "tool:crm/contacts"
//! expect = "allow"
//!
//! [[case]]
//! principal = "spiffe://example.org/agent/crm-bot"
//! action = "invoke"
//! resource = "tool:billing/refund"
//! expect = "deny"
//! ```

use std::fmt;

use serde::Deserialize;
use sigil_core::{AgentName, SpiffeId};
use toml::Spanned;

use crate::decision::{Decision, PrincipalRef, Request, Verdict};
use crate::error::PolicyError;
use crate::snapshot::Snapshot;
use crate::source::line_column;

/// A whole test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(rename = "case", default)]
    cases: Vec<Spanned<CaseTable>>,
}

/// One `[[case]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseTable {
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
    /// 1-based position of the case among the file's `[[case]]` tables.
    pub case: usize,
    /// 1-based line where the case's table starts in the file.
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
        write!(f, "case {} (line {}", self.case, self.line)?;
        if let Some(name) = &self.name {
            write!(f, ", {name}")?;
        }
        write!(
            f,
            "): {status}: {} {} {}: expected {}, got {}",
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
/// Returns one result per case, passed or not. A file that is not valid TOML, has no case, or
/// has a case with a missing, unknown or invalid key is rejected as a whole, naming the line, so
/// that a typo cannot silently skip a case.
pub fn run_policy_tests(
    snapshot: &Snapshot,
    cases_text: &str,
) -> Result<Vec<CaseResult>, PolicyError> {
    let file: CaseFile = toml::from_str(cases_text).map_err(|error| {
        let line = error
            .span()
            .map_or(1, |span| line_column(cases_text, span.start).0);
        PolicyError::InvalidTestCase {
            line,
            reason: error.message().to_owned(),
        }
    })?;
    if file.cases.is_empty() {
        return Err(PolicyError::InvalidTestCase {
            line: 1,
            reason: "the file has no [[case]] tables".to_owned(),
        });
    }

    let mut results = Vec::with_capacity(file.cases.len());
    for (index, spanned) in file.cases.into_iter().enumerate() {
        let line = line_column(cases_text, spanned.span().start).0;
        let case = spanned.into_inner();
        let actual = decide(snapshot, &case, line)?;
        results.push(CaseResult {
            case: index + 1,
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

/// Parses the case's principal and decides the case with the snapshot.
fn decide(snapshot: &Snapshot, case: &CaseTable, line: usize) -> Result<Decision, PolicyError> {
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
