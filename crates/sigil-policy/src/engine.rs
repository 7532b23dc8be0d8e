//! The decision engine: the current snapshot behind an atomic pointer.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::decision::{Decision, Request};
use crate::error::PolicyError;
use crate::snapshot::Snapshot;

/// Decides requests with the current snapshot and swaps in new snapshots atomically.
///
/// Each decision loads the snapshot pointer once and evaluates only that snapshot, so a request
/// is decided by either the whole old version or the whole new one. Loading the pointer takes no
/// lock.
#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Snapshot>,
}

impl Engine {
    /// Creates an engine that starts with `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// Decides `request` with the current snapshot.
    pub fn authorize(&self, request: &Request<'_>) -> Decision {
        self.current.load().authorize(request)
    }

    /// Returns the current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Returns the version of the current snapshot.
    pub fn version(&self) -> u64 {
        self.current.load().version()
    }

    /// Makes `snapshot` current and returns the snapshot it replaced.
    ///
    /// Rejects a snapshot whose version is not greater than the current one, so that two
    /// concurrent rebuilds cannot roll the engine back. The check and the swap are one atomic
    /// compare-and-swap, retried if another replacement wins the race.
    pub fn replace(&self, snapshot: Snapshot) -> Result<Arc<Snapshot>, PolicyError> {
        let new = Arc::new(snapshot);
        loop {
            let current = self.current.load_full();
            if new.version() <= current.version() {
                return Err(PolicyError::StaleSnapshot {
                    current: current.version(),
                    offered: new.version(),
                });
            }
            let previous = self.current.compare_and_swap(&current, Arc::clone(&new));
            if Arc::ptr_eq(&*previous, &current) {
                return Ok(current);
            }
        }
    }
}
