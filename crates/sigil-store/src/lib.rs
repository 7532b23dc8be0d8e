//! Persistence for Sigil: schema migrations and transactional operations over SQLite.
//!
//! Every write that changes state appends its audit event in the same transaction, so the
//! registry and the audit chain can never disagree. Write transactions start with
//! `BEGIN IMMEDIATE`, which takes SQLite's write lock up front: writers queue on the busy
//! timeout instead of failing when two of them upgrade a read lock at the same time, and the
//! audit chain's head is read and extended by one writer at a time.
//!
//! NOTE: only SQLite is implemented. The operations are written against plain SQL so that a
//! PostgreSQL backend can follow behind the same methods.

#![forbid(unsafe_code)]

mod agents;
mod audit;
mod credentials;
mod error;
mod external;
mod finding_events;
mod findings;
mod gateways;
mod offboarding;
mod owners;
mod policies;
mod reviews;
mod revocations;
mod rows;
mod scan;
mod tokens;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

pub use agents::Transition;
pub use error::StoreError;
pub use external::{ExternalCredentialRow, ImportOutcome};
pub use finding_events::FindingEvent;
pub use findings::ReviewItemRow;
pub use gateways::{GatewayRenewOutcome, GatewayRow, GatewayTokenState, NewGatewayToken};
pub use policies::PolicyRow;
pub use reviews::Certification;
pub use revocations::{GatewaySnapshot, RevocationRow, RevocationWindow};
pub use rows::{
    AgentRow, AttestOutcome, CredentialRow, EntitlementRow, FindingRow, NewAgent, NewCredential,
    OwnerRow, RenewOutcome,
};
pub use scan::ScanReport;
pub use tokens::TokenState;

/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "sigil.db";

/// How long a writer waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to Sigil's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Serialises this process's writers. SQLite allows one writer at a time anyway, and
    /// queueing here replaces its busy-timeout polling, which sleeps up to 100 ms per retry and
    /// so dominated tail latency under concurrent renewals.
    write_lock: Arc<Mutex<()>>,
    /// Counts committed write transactions, so that readers of derived data (the revocation
    /// stream) can wake up after each one.
    commits: Arc<watch::Sender<u64>>,
}

/// A write transaction that holds the process-wide write lock until it ends.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    commits: Arc<watch::Sender<u64>>,
    _guard: OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        self.commits
            .send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        Self::connect(options).await
    }

    /// Opens a database from a `sqlite:` URL, such as `sqlite::memory:` in tests.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StoreError::InvalidUrl(err.to_string()))?
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        tracing::debug!("database opened and migrated");
        Ok(Self {
            pool,
            write_lock: Arc::new(Mutex::new(())),
            commits: Arc::new(watch::Sender::new(0)),
        })
    }

    /// Starts a write transaction that holds SQLite's write lock from its first statement.
    async fn write(&self) -> Result<WriteTx, StoreError> {
        let guard = self.write_lock.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            commits: self.commits.clone(),
            _guard: guard,
        })
    }

    /// Closes every connection, flushing the write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
