use thiserror::Error;

/// Errors raised when untrusted input does not satisfy a domain rule.
///
/// Each message names the rule that failed and the offending value, so that it can be shown to
/// the caller unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A trust domain name broke the SPIFFE naming rules.
    #[error("invalid trust domain `{value}`: {reason}")]
    InvalidTrustDomain { value: String, reason: &'static str },

    /// A SPIFFE ID broke the SPIFFE ID rules.
    #[error("invalid SPIFFE ID `{value}`: {reason}")]
    InvalidSpiffeId { value: String, reason: &'static str },

    /// An agent or gateway name is not a single valid SPIFFE path segment.
    #[error("invalid name `{value}`: {reason}")]
    InvalidName { value: String, reason: &'static str },

    /// An owner e-mail address is malformed.
    #[error("invalid e-mail address `{value}`: {reason}")]
    InvalidEmail { value: String, reason: &'static str },

    /// An entitlement is not of the form `ACTION:RESOURCE`.
    #[error("invalid entitlement `{value}`: {reason}")]
    InvalidEntitlement { value: String, reason: &'static str },

    /// A duration could not be parsed or is outside the allowed range.
    #[error("invalid duration `{value}`: {reason}")]
    InvalidDuration { value: String, reason: String },

    /// A lifecycle change that the agent's current status does not allow.
    #[error("agent is {from} and cannot become {to}")]
    InvalidTransition {
        from: &'static str,
        to: &'static str,
    },

    /// A stored status string that names no known status.
    #[error("unknown status `{0}`")]
    UnknownStatus(String),
}
