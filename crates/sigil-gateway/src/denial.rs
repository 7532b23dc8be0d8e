//! Reasons the gateway rejects a request, and the JSON error response it sends.

use bytes::Bytes;
use http::StatusCode;

/// The kinds of refusal, each with its HTTP status, error code and reported reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// No event or heartbeat arrived from the authority within the staleness bound.
    Stale,
    /// Neither a client certificate nor a Bearer token was presented.
    NoCredential,
    /// The client certificate failed the chain or SPIFFE checks.
    BadCertificate,
    /// The Bearer token failed JWT-SVID verification.
    BadToken,
    /// The caller's SPIFFE ID names no agent in the gateway state.
    UnknownAgent,
    /// The client certificate's serial is revoked.
    Revoked,
    /// The agent is not active.
    InactiveAgent,
    /// The request path is not in canonical form (dot or empty segments, escaped separators).
    InvalidPath,
    /// The request's header section is larger than the gateway accepts.
    HeadersTooLarge,
    /// No route matches the request's method and path.
    NoRoute,
    /// The policy set denies the route's action on its resource.
    Policy,
}

impl DenyKind {
    /// Returns the HTTP status of the error response.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Stale => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoCredential | Self::BadCertificate | Self::BadToken => StatusCode::UNAUTHORIZED,
            Self::InvalidPath => StatusCode::BAD_REQUEST,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnknownAgent
            | Self::Revoked
            | Self::InactiveAgent
            | Self::NoRoute
            | Self::Policy => StatusCode::FORBIDDEN,
        }
    }

    /// Returns the stable snake_case `code` of the JSON error body.
    pub fn code(self) -> &'static str {
        match self {
            Self::Stale => "stale_view",
            Self::NoCredential => "unauthenticated",
            Self::BadCertificate => "invalid_certificate",
            Self::BadToken => "invalid_token",
            Self::UnknownAgent => "unknown_agent",
            Self::Revoked => "revoked",
            Self::InactiveAgent => "agent_inactive",
            Self::InvalidPath => "invalid_path",
            Self::HeadersTooLarge => "headers_too_large",
            Self::NoRoute => "no_route",
            Self::Policy => "forbidden",
        }
    }

    /// Returns the short reason reported to the authority in a denial batch.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::NoCredential => "no-credential",
            Self::BadCertificate => "bad-certificate",
            Self::BadToken => "bad-token",
            Self::UnknownAgent => "unknown-agent",
            Self::Revoked => "revoked",
            Self::InactiveAgent => "inactive-agent",
            Self::InvalidPath => "invalid-path",
            Self::HeadersTooLarge => "headers-too-large",
            Self::NoRoute => "no-route",
            Self::Policy => "policy",
        }
    }
}

/// A refused request: what to answer and what to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenyKind,
    /// A sentence for the caller; it never contains a token or key.
    pub message: String,
    /// The caller's SPIFFE ID, when a credential named one.
    pub principal: Option<String>,
}

impl Denial {
    pub fn new(kind: DenyKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            principal: None,
        }
    }

    /// Names the caller the denial concerns.
    pub fn for_principal(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_owned());
        self
    }
}

/// Serialises `{"error": {"code", "message"}}`.
pub fn error_body(code: &str, message: &str) -> Bytes {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    Bytes::from(body.to_string())
}
