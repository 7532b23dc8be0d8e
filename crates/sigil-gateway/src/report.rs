//! Reporting denials to the authority in batches, off the request path.
//!
//! A request hands its denial to a bounded queue and never waits. A background task sends what
//! the queue holds every second, or as soon as [`BATCH_SIZE`] denials are waiting. When the
//! authority cannot be reached the batch is kept and retried, up to [`MAX_PENDING`] denials;
//! beyond that the oldest are dropped and counted.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sigil_proto::{GatewayDenial, GatewayDenialBatch};
use tokio::sync::mpsc;

use crate::authority::{AuthorityClient, DenialReport};

/// Denials sent in one request.
pub const BATCH_SIZE: usize = 100;

/// How often waiting denials are sent.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Capacity of the queue between requests and the reporting task.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Denials kept for retry while the authority is unreachable.
pub const MAX_PENDING: usize = 10_000;

/// The request side of the queue.
#[derive(Debug, Clone)]
pub struct DenialReporter {
    queue: mpsc::Sender<GatewayDenial>,
    dropped: Arc<AtomicU64>,
}

impl DenialReporter {
    /// Creates a reporter and the receiving end for [`run_reporter`].
    pub fn new() -> (Self, mpsc::Receiver<GatewayDenial>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let reporter = Self {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (reporter, receiver)
    }

    /// Queues a denial without waiting; a full queue drops it and counts the drop.
    pub fn report(&self, denial: GatewayDenial) {
        if self.queue.try_send(denial).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "denial report queue is full; denials are dropped from the report"
                );
            }
        }
    }
}

/// Sends queued denials to the authority until `shutdown` completes, then makes one last
/// attempt for what is left.
pub async fn run_reporter(
    mut receiver: mpsc::Receiver<GatewayDenial>,
    client: Arc<AuthorityClient>,
    shutdown: impl Future<Output = ()>,
) {
    tracing::info!("denial reporter started");
    tokio::pin!(shutdown);
    let mut pending: VecDeque<GatewayDenial> = VecDeque::new();
    let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u64 = 0;
    let mut discarded: u64 = 0;

    loop {
        tokio::select! {
            received = receiver.recv() => {
                let Some(denial) = received else { break };
                pending.push_back(denial);
                if pending.len() > MAX_PENDING {
                    pending.pop_front();
                    discarded += 1;
                    if discarded.is_power_of_two() {
                        tracing::warn!(discarded, "too many unsent denials; the oldest are dropped");
                    }
                }
                if pending.len() < BATCH_SIZE || failures > 0 {
                    continue;
                }
            }
            _ = ticker.tick() => {}
            () = &mut shutdown => break,
        }
        flush(&client, &mut pending, &mut failures).await;
    }

    flush(&client, &mut pending, &mut failures).await;
    if !pending.is_empty() {
        tracing::warn!(
            unsent = pending.len(),
            "denial reporter stopped with denials the authority never received"
        );
    }
    tracing::info!("denial reporter stopped");
}

/// Sends `pending` in batches of at most [`BATCH_SIZE`]; stops at the first failure and keeps
/// the unsent denials.
async fn flush(
    client: &AuthorityClient,
    pending: &mut VecDeque<GatewayDenial>,
    failures: &mut u64,
) {
    while !pending.is_empty() {
        let count = pending.len().min(BATCH_SIZE);
        let batch = GatewayDenialBatch {
            denials: pending.iter().take(count).cloned().collect(),
        };
        match client.report_denials(&batch).await {
            Ok(DenialReport::Rejected(reason)) if count > 1 => {
                // The authority records all of a batch or none of it. Sending the denials one
                // at a time loses only the invalid ones.
                tracing::warn!(
                    count,
                    %reason,
                    "the authority rejected a batch of denial reports; sending them one at a time"
                );
                let batch: Vec<GatewayDenial> = pending.drain(..count).collect();
                if !send_one_by_one(client, batch, pending).await {
                    *failures += 1;
                    return;
                }
            }
            Ok(DenialReport::Rejected(reason)) => {
                // Retrying a denial the authority rejected would block every later one.
                pending.drain(..count);
                tracing::error!(
                    %reason,
                    "the authority rejected a denial report; it is dropped"
                );
            }
            Ok(DenialReport::Recorded) => {
                pending.drain(..count);
                if *failures > 0 {
                    tracing::info!(
                        failures = *failures,
                        "denial reports reach the authority again"
                    );
                }
                *failures = 0;
                tracing::debug!(count, "denials reported");
            }
            Err(err) => {
                *failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(
                        error = %err,
                        failures = *failures,
                        pending = pending.len(),
                        "denial report failed; retrying every second"
                    );
                }
                return;
            }
        }
    }
}

/// Sends each denial of `batch` on its own and drops those the authority rejects. When the
/// authority cannot be reached, puts the unsent ones back at the front of `pending` and returns
/// false.
async fn send_one_by_one(
    client: &AuthorityClient,
    batch: Vec<GatewayDenial>,
    pending: &mut VecDeque<GatewayDenial>,
) -> bool {
    let mut denials = batch.into_iter();
    while let Some(denial) = denials.next() {
        let single = GatewayDenialBatch {
            denials: vec![denial],
        };
        match client.report_denials(&single).await {
            Ok(DenialReport::Recorded) => {}
            Ok(DenialReport::Rejected(reason)) => {
                let denial = &single.denials[0];
                tracing::error!(
                    method = %denial.method,
                    path = %denial.path,
                    %reason,
                    "the authority rejected a denial report; it is dropped"
                );
            }
            Err(err) => {
                tracing::warn!(error = %err, "denial report failed; retrying every second");
                let unsent: Vec<GatewayDenial> =
                    single.denials.into_iter().chain(denials).collect();
                for denial in unsent.into_iter().rev() {
                    pending.push_front(denial);
                }
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(path: &str) -> GatewayDenial {
        GatewayDenial {
            at_ms: 0,
            principal: None,
            method: "GET".into(),
            path: path.into(),
            action: None,
            resource: None,
            reason: "no-route".into(),
            status: 403,
        }
    }

    #[test]
    fn full_queue_drops_without_blocking() {
        let (reporter, mut receiver) = DenialReporter::new();
        for index in 0..QUEUE_CAPACITY + 5 {
            reporter.report(denial(&format!("/{index}")));
        }
        assert_eq!(reporter.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(receiver.try_recv().unwrap().path, "/0");
    }
}
