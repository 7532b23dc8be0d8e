use std::fmt;

use thiserror::Error;

/// Errors raised while building policies, snapshots and policy-test runs.
///
/// Each message names the rule that failed and the offending value, so the server can show it to
/// an administrator unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A custom policy id is empty, too long or contains characters outside `[A-Za-z0-9._-]`.
    #[error("invalid policy id `{id}`: {reason}")]
    InvalidPolicyId { id: String, reason: &'static str },

    /// A custom policy with this id was already added.
    #[error("a custom policy with id `{id}` already exists; remove it first or choose another id")]
    DuplicatePolicyId { id: String },

    /// No custom policy has this id.
    #[error("custom policy `{id}` not found")]
    PolicyNotFound { id: String },

    /// The text of a custom policy is not valid Cedar syntax.
    #[error("custom policy `{id}` has invalid Cedar syntax: {}", DiagnosticList(.diagnostics))]
    InvalidSyntax {
        id: String,
        diagnostics: Vec<SourceDiagnostic>,
    },

    /// The text of a custom policy contains no policy.
    #[error("custom policy `{id}` contains no policy statement")]
    EmptyPolicy { id: String },

    /// A custom policy is a template (it has `?principal` or `?resource` slots).
    #[error(
        "custom policy `{id}` is a template with slots, which Sigil does not support; \
         write a static policy without `?principal` or `?resource`"
    )]
    TemplateNotSupported { id: String },

    /// A custom policy does not validate against Sigil's schema.
    #[error("custom policy `{id}` failed schema validation: {}", DiagnosticList(.diagnostics))]
    ValidationFailed {
        id: String,
        diagnostics: Vec<SourceDiagnostic>,
    },

    /// An action name is not a valid entitlement action.
    #[error("invalid action `{action}`: {reason}")]
    InvalidAction {
        action: String,
        reason: &'static str,
    },

    /// A context attribute name is not a plain Cedar identifier.
    #[error("invalid context attribute `{name}`: {reason}")]
    InvalidContextAttribute { name: String, reason: &'static str },

    /// A context attribute was declared twice with different types.
    #[error("context attribute `{name}` is already declared as {existing}, not {requested}")]
    ConflictingContextAttribute {
        name: String,
        existing: &'static str,
        requested: &'static str,
    },

    /// Sigil generated Cedar text that Cedar rejected. This is a bug in Sigil, not in the input.
    #[error("internal error: generated Cedar for {subject} was rejected: {message}")]
    Internal { subject: String, message: String },

    /// `Engine::replace` received a snapshot that is not newer than the current one.
    #[error("snapshot version {offered} is not newer than the current version {current}")]
    StaleSnapshot { current: u64, offered: u64 },

    /// A line of a policy-test file is not a valid test case.
    #[error("invalid policy test case on line {line}: {reason}")]
    InvalidTestCase { line: usize, reason: String },
}

/// A message from Cedar's parser or validator, with the position it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDiagnostic {
    /// 1-based line in the submitted text, when Cedar reported a position.
    pub line: Option<usize>,
    /// 1-based column in characters, when Cedar reported a position.
    pub column: Option<usize>,
    /// Cedar's message, followed by its help text when it has one.
    pub message: String,
}

impl fmt::Display for SourceDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "line {line}, column {column}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

/// Joins diagnostics with `; ` for an error message.
struct DiagnosticList<'a>(&'a [SourceDiagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}
