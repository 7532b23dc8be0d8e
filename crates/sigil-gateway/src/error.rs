use thiserror::Error;

/// Errors that stop the gateway from starting or from talking to the authority.
///
/// Request-level refusals are not errors of this type: they are [`crate::Denial`]s, answered
/// with a JSON body and reported to the authority.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A file could not be read. The message leaves the cause to the error's source, which
    /// error reports print after it.
    #[error("cannot read {path}")]
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

    /// The listening socket could not be bound; the cause is the error's source.
    #[error("cannot listen on {addr}")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_cause_reported_once() {
        let err = GatewayError::io(
            std::path::Path::new("/etc/missing.toml"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        // Prints the message and its sources as the `sigil` binary's error report does.
        let mut report = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            report.push_str(": ");
            report.push_str(&cause.to_string());
            source = cause.source();
        }
        assert_eq!(report.matches("not found").count(), 1, "{report}");
        assert!(
            report.starts_with("cannot read /etc/missing.toml: "),
            "{report}"
        );
    }
}
