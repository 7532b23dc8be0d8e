use thiserror::Error;

/// Errors of the storage layer.
///
/// The caller-facing variants (`NotFound`, `Conflict`, `Rejected`) carry a message that can be
/// shown unchanged; `Database` and `Migration` are internal failures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named record does not exist.
    #[error("{0}")]
    NotFound(String),

    /// The record already exists, or a concurrent change won.
    #[error("{0}")]
    Conflict(String),

    /// The change breaks a rule of the registry (for example a departed owner).
    #[error("{0}")]
    Rejected(String),

    /// A stored value failed to parse; the database was edited or is corrupt.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),

    /// The database URL could not be parsed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),

    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// A schema migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<sigil_core::CoreError> for StoreError {
    fn from(err: sigil_core::CoreError) -> Self {
        Self::Rejected(err.to_string())
    }
}
