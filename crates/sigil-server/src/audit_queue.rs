//! Audit events written in batches, for hot paths such as denied decisions.
//!
//! A denied decision must be audited, but one SQLite transaction per denial would cap the
//! decision rate at the disk's commit rate. Events pushed here are appended by one background
//! writer, up to `MAX_BATCH` per transaction, in the order they were pushed. The queue is bounded,
//! so a flood of denials slows callers down instead of growing memory. At shutdown the writer
//! drains the queue before the store closes.

use sigil_core::AuditRecord;
use sigil_store::Store;
use tokio::sync::{mpsc, watch};

/// Most events appended in one transaction.
const MAX_BATCH: usize = 512;

/// Events waiting for the writer before `push` waits.
const CAPACITY: usize = 16 * 1024;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct AuditQueue {
    sender: mpsc::Sender<AuditRecord>,
}

/// The writer task's state.
pub(crate) struct AuditWriter {
    receiver: mpsc::Receiver<AuditRecord>,
    store: Store,
}

impl AuditQueue {
    pub fn new(store: Store) -> (Self, AuditWriter) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        (Self { sender }, AuditWriter { receiver, store })
    }

    /// Queues an event; waits while the queue is full.
    pub async fn push(&self, record: AuditRecord) {
        if self.sender.send(record).await.is_err() {
            tracing::error!("audit writer has stopped; an audit event was lost");
        }
    }
}

impl AuditWriter {
    /// Writes queued events until `stop` turns true, then writes what is left and returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                first = self.receiver.recv() => {
                    let Some(first) = first else { return };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match self.receiver.try_recv() {
                            Ok(record) => batch.push(record),
                            Err(_) => break,
                        }
                    }
                    self.write(batch).await;
                }
                _ = stopped(&mut stop) => {
                    let mut rest = Vec::new();
                    while let Ok(record) = self.receiver.try_recv() {
                        rest.push(record);
                    }
                    self.write(rest).await;
                    return;
                }
            }
        }
    }

    async fn write(&self, batch: Vec<AuditRecord>) {
        let count = batch.len();
        if let Err(err) = self.store.record_audits(batch).await {
            tracing::error!(error = %err, count, "failed to write audit events");
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
