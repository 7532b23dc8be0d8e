use thiserror::Error;

/// Errors of the governance rules and parsers.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GovernanceError {
    /// The name is not one of the finding kinds.
    #[error("unknown finding kind `{0}`; `sigil findings --help` lists the kinds")]
    UnknownKind(String),

    /// The inventory file cannot be read as a whole, such as a CSV file without the required
    /// header columns. Individual bad rows are reported in the import summary instead.
    #[error("invalid inventory: {0}")]
    InvalidInventory(String),

    /// The mapping file is not a JSON object of names to agent names.
    #[error("invalid mapping file: {0}")]
    InvalidMapping(String),

    /// The webhook signature header is missing parts, malformed or does not match.
    #[error("invalid webhook signature: {0}")]
    InvalidSignature(&'static str),
}
