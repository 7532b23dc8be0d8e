use thiserror::Error;

/// Errors of the agent daemon.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// No usable SVID on disk and no join token to bootstrap one.
    #[error(
        "no valid SVID in {0} and no join token: pass --join-token with a token from `sigil token create AGENT`"
    )]
    NeedsJoinToken(String),

    /// A key or CSR could not be generated, or a certificate could not be parsed.
    #[error("{0}")]
    Crypto(String),

    /// The authority rejected the request or could not be reached.
    #[error(transparent)]
    Client(#[from] sigil_client::ClientError),
}

impl AgentError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
