//! Errors of the authority, and their mapping to HTTP responses.

use std::path::Path;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sigil_ca::CaError;
use sigil_store::StoreError;
use thiserror::Error;

/// Errors of setting up or running the authority.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The data directory or an option is not usable.
    #[error("{0}")]
    Config(String),

    /// The certificate authority failed.
    #[error("certificate authority: {0}")]
    Ca(#[from] CaError),

    /// The registry failed.
    #[error("registry: {0}")]
    Store(#[from] StoreError),

    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl ServerError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// An error returned to an API caller as `{"error": {"code", "message"}}`.
///
/// `code` is a stable snake_case string that clients and metrics can match on; `message` says
/// what was wrong and what to do. Neither ever contains a token or key.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// Attached to error responses so that the audit middleware can record the rejection.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the authority's log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(Rejection {
            code: self.code,
            message: self.message,
        });
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(message) => Self::not_found(message),
            StoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Rejected(message) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", message)
            }
            other => {
                tracing::error!(error = %other, "registry operation failed");
                Self::internal()
            }
        }
    }
}

impl From<CaError> for ApiError {
    fn from(err: CaError) -> Self {
        tracing::error!(error = %err, "certificate authority operation failed");
        Self::internal()
    }
}
