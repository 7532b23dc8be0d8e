//! The revocation hub: publishes stored revocation events to open streams right after commit.
//!
//! The store writes each event in the transaction of the change that causes it and ticks
//! [`sigil_store::Store::commits`] after every commit. The hub's task wakes on that tick, reads
//! the events after the last one it published and sends them on a broadcast channel that every
//! `GET /v1/revocations` stream subscribes to. A stream that falls behind the channel reads the
//! missed events from the table instead, so no subscriber ever skips one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sigil_proto::RevocationEvent;
use sigil_store::{RevocationRow, Store, StoreError};
use tokio::sync::{broadcast, watch};

/// Events read from the table per query.
pub(crate) const READ_BATCH: i64 = 500;

/// Events the broadcast channel holds for a slow subscriber before it lags.
const CHANNEL_CAPACITY: usize = 1024;

/// Fans stored revocation events out to the open streams.
pub(crate) struct RevocationHub {
    sender: broadcast::Sender<Arc<RevocationEvent>>,
    /// The newest sequence number published.
    latest: AtomicU64,
    /// Becomes true at shutdown, so that open streams end and connections can drain.
    closing: watch::Sender<bool>,
}

impl RevocationHub {
    /// Creates a hub that publishes events after `latest`.
    pub fn new(latest: i64) -> Arc<Self> {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Arc::new(Self {
            sender,
            latest: AtomicU64::new(u64::try_from(latest).unwrap_or(0)),
            closing: watch::Sender::new(false),
        })
    }

    /// Subscribes to events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RevocationEvent>> {
        self.sender.subscribe()
    }

    /// Returns a receiver that changes to true when the authority shuts down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Ends every open stream.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Publishes new events after every commit until the store's notifier closes.
    pub async fn run(self: Arc<Self>, store: Store) {
        let mut commits = store.commits();
        loop {
            if let Err(err) = self.publish_new(&store).await {
                tracing::error!(error = %err, "failed to read revocation events; retrying at the next commit");
            }
            if commits.changed().await.is_err() {
                return;
            }
        }
    }

    async fn publish_new(&self, store: &Store) -> Result<(), StoreError> {
        loop {
            let after = i64::try_from(self.latest.load(Ordering::Acquire)).unwrap_or(i64::MAX);
            let rows = store.revocation_events_after(after, READ_BATCH).await?;
            let complete = rows.len() < usize::try_from(READ_BATCH).unwrap_or(usize::MAX);
            for event in events_from_rows(rows) {
                self.latest.store(event.seq(), Ordering::Release);
                // An error only means that no stream is open.
                let _ = self.sender.send(Arc::new(event));
            }
            if complete {
                return Ok(());
            }
        }
    }
}

/// Converts stored rows to stream events, merging consecutive `revoke` rows of one agent and
/// one instant (one transaction's revocations) into one event that carries the last row's
/// sequence number.
pub(crate) fn events_from_rows(rows: Vec<RevocationRow>) -> Vec<RevocationEvent> {
    let mut events: Vec<RevocationEvent> = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = u64::try_from(row.seq).unwrap_or(0);
        let event = match row.kind.as_str() {
            "revoke" => {
                let Some(serial) = row.serial else {
                    tracing::error!(seq, "stored revoke event has no serial; skipped");
                    continue;
                };
                if let Some(RevocationEvent::Revoke {
                    seq: last_seq,
                    at_ms,
                    serials,
                    agent,
                }) = events.last_mut()
                    && *at_ms == row.at_ms
                    && *agent == row.agent
                {
                    serials.push(serial);
                    *last_seq = seq;
                    continue;
                }
                RevocationEvent::Revoke {
                    seq,
                    at_ms: row.at_ms,
                    serials: vec![serial],
                    agent: row.agent,
                }
            }
            "agent-status" => match (row.agent, row.spiffe_id, row.status) {
                (Some(agent), Some(spiffe_id), Some(status)) => RevocationEvent::AgentStatus {
                    seq,
                    at_ms: row.at_ms,
                    agent,
                    spiffe_id,
                    status,
                },
                _ => {
                    tracing::error!(seq, "stored agent-status event is incomplete; skipped");
                    continue;
                }
            },
            "policy" => RevocationEvent::Policy {
                seq,
                at_ms: row.at_ms,
                policy_version: row
                    .policy_version
                    .and_then(|version| u64::try_from(version).ok())
                    .unwrap_or(0),
            },
            other => {
                tracing::error!(
                    seq,
                    kind = other,
                    "stored revocation event has an unknown kind; skipped"
                );
                continue;
            }
        };
        events.push(event);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke(seq: i64, at_ms: i64, agent: Option<&str>, serial: &str) -> RevocationRow {
        RevocationRow {
            seq,
            at_ms,
            kind: "revoke".into(),
            agent: agent.map(Into::into),
            spiffe_id: None,
            status: None,
            serial: Some(serial.into()),
            policy_version: None,
        }
    }

    #[test]
    fn revocations_of_one_change_merge() {
        let rows = vec![
            revoke(1, 10, Some("bot"), "aa"),
            revoke(2, 10, Some("bot"), "bb"),
            revoke(3, 10, Some("other"), "cc"),
            revoke(4, 11, Some("other"), "dd"),
        ];
        let events = events_from_rows(rows);
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0],
            RevocationEvent::Revoke {
                seq: 2,
                at_ms: 10,
                serials: vec!["aa".into(), "bb".into()],
                agent: Some("bot".into()),
            }
        );
        assert_eq!(events[1].seq(), 3);
        assert_eq!(events[2].seq(), 4);
    }

    #[test]
    fn incomplete_rows_are_skipped() {
        let mut row = revoke(1, 10, None, "aa");
        row.serial = None;
        let status = RevocationRow {
            kind: "agent-status".into(),
            ..revoke(2, 10, Some("bot"), "x")
        };
        assert!(events_from_rows(vec![row, status]).is_empty());
    }
}
