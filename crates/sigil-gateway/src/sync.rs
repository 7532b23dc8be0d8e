//! Keeping the view current: load the gateway state, follow the revocation stream, reconnect.
//!
//! ```text
//!   load state ──ok──> open stream (Last-Event-ID = view seq) ──> read events ──┐
//!      ^  │                  │                                        │          │
//!      │  └─fail─> backoff ──┘<──── fail / end / silence ─────────────┘          │
//!      └──────────────── policy newer | resync | agent active again <────────────┘
//! ```
//!
//! Every event and heartbeat refreshes the view's contact time. While the stream is down the
//! view ages, and once it is older than the staleness bound every request is refused with 503.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sigil_proto::RevocationEvent;

use crate::GatewayError;
use crate::authority::AuthorityClient;
use crate::sse::{SseMessage, SseParser};
use crate::view::{Followup, View};

/// First wait after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Maximum wait between attempts. It is well below the default staleness bound, so that a short
/// outage of the authority does not make the gateway refuse requests.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows the authority until `shutdown` completes.
pub async fn run_sync(
    view: Arc<View>,
    client: Arc<AuthorityClient>,
    staleness: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tracing::info!(server = %client.url(""), "revocation sync started");
    tokio::pin!(shutdown);
    let silence_limit = silence_limit(staleness);
    let mut failures: u32 = 0;
    let mut needs_state = true;

    loop {
        let attempt = async {
            if needs_state {
                let state = client.state().await?;
                view.install(state)?;
                view.touch();
                needs_state = false;
            }
            follow_stream(
                &view,
                &client,
                silence_limit,
                &mut needs_state,
                &mut failures,
            )
            .await
        };
        let result = tokio::select! {
            result = attempt => result,
            () = &mut shutdown => break,
        };

        failures += 1;
        let wait = backoff(failures);
        match result {
            Ok(()) => tracing::info!(retry_in = ?wait, "revocation stream ended; reconnecting"),
            Err(err) if failures == 1 || failures.is_multiple_of(10) => {
                tracing::warn!(error = %err, failures, retry_in = ?wait, "revocation sync failed; retrying");
            }
            Err(err) => {
                tracing::debug!(error = %err, failures, retry_in = ?wait, "revocation sync still failing");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!("revocation sync stopped");
}

/// Reads the stream until it ends, fails or falls silent; applies each event.
async fn follow_stream(
    view: &View,
    client: &AuthorityClient,
    silence_limit: Duration,
    needs_state: &mut bool,
    failures: &mut u32,
) -> Result<(), GatewayError> {
    let since = view.seq();
    let mut response = client.revocations(since).await?;
    tracing::info!(since, "revocation stream open");
    let url = client.url("/v1/revocations");
    let mut parser = SseParser::new();

    loop {
        let chunk = match tokio::time::timeout(silence_limit, response.chunk()).await {
            Err(_) => {
                return Err(GatewayError::Authority {
                    url,
                    detail: format!("no event or heartbeat for {} ms", silence_limit.as_millis()),
                });
            }
            Ok(Err(err)) => {
                return Err(GatewayError::Authority {
                    url,
                    detail: err.to_string(),
                });
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let messages = parser.push(&chunk).map_err(|err| GatewayError::Authority {
            url: url.clone(),
            detail: err.to_string(),
        })?;
        for message in messages {
            *failures = 0;
            if apply_message(view, &message) == Followup::ReloadState {
                let state = client.state().await.inspect_err(|_| *needs_state = true)?;
                view.install(state).inspect_err(|_| *needs_state = true)?;
            }
        }
    }
}

/// Applies one message; an event the gateway cannot read makes it reload the whole state, so
/// that nothing the event said is missed.
fn apply_message(view: &View, message: &SseMessage) -> Followup {
    match serde_json::from_str::<RevocationEvent>(&message.data) {
        Ok(event) => {
            if event.kind() != message.event {
                tracing::warn!(
                    event = %message.event,
                    kind = event.kind(),
                    "event name and data kind differ; applying the data"
                );
            }
            view.apply(&event)
        }
        Err(err) => {
            view.touch();
            tracing::warn!(event = %message.event, id = message.id.as_deref(), error = %err, "unreadable revocation event; reloading the state");
            Followup::ReloadState
        }
    }
}

/// How long the stream may stay silent before the gateway reconnects: half the staleness
/// bound, between 1 and 5 seconds, so that a dead connection is replaced before the view goes
/// stale. The authority sends a heartbeat about every second.
fn silence_limit(staleness: Duration) -> Duration {
    (staleness / 2).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// Exponential backoff from [`MIN_BACKOFF`] to [`MAX_BACKOFF`], with each wait drawn uniformly
/// from its upper half so that gateways that lost the authority together do not return in
/// lockstep.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(10);
    let base = MIN_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    base.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) <= MIN_BACKOFF);
        assert!(backoff(1) >= MIN_BACKOFF / 2);
        assert!(backoff(4) >= Duration::from_millis(400));
        assert!(backoff(100) <= MAX_BACKOFF);
        assert!(backoff(100) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn silence_limit_bounds() {
        assert_eq!(
            silence_limit(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(
            silence_limit(Duration::from_millis(500)),
            Duration::from_secs(1)
        );
        assert_eq!(
            silence_limit(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
    }
}
