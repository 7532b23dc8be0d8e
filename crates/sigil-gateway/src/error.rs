use thiserror::Error;

/// Errors that stop the gateway from starting or from talking to the authority.
///
/// Request-level refusals are not errors of this type: they are [`crate::Denial`]s, answered
/// with a JSON body and reported to the authority.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The routes file is not valid TOML or breaks a rule of the format.
    #[error("invalid routes file: {0}")]
    Routes(String),

    /// A command-line value or derived setting is invalid.
    #[error("{0}")]
    Config(String),

    /// The TLS configuration could not be built from the SVID or the bundle.
    #[error("TLS configuration: {0}")]
    Tls(String),

    /// The gateway's own SVID could not be obtained or read.
    #[error(transparent)]
    Identity(#[from] sigil_agent::AgentError),

    /// The authority could not be reached or answered with an error.
    #[error("authority request {url} failed: {detail}")]
    Authority { url: String, detail: String },

    /// The authority's gateway state could not be turned into a decision engine.
    #[error("invalid gateway state from the authority: {0}")]
    State(String),

    /// A request could not be forwarded to the upstream.
    #[error("{0}")]
    Upstream(String),

    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl GatewayError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
