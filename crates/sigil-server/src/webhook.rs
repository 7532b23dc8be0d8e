//! Delivery of finding events to a webhook.
//!
//! Events come from the store's outbox, in order. Each is sent as one JSON
//! [`WebhookDelivery`](sigil_proto::WebhookDelivery) signed with HMAC-SHA256 (see
//! `sigil_governance::webhook`), and retried with exponential backoff until the receiver
//! answers 2xx. An event is deleted from the outbox only once delivered, so events survive a
//! restart. The secret is never logged.

use std::time::Duration;

use sigil_governance::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use sigil_proto::WebhookDelivery;
use sigil_store::FindingEvent;
use zeroize::Zeroizing;

use crate::state::AppState;

/// Events read from the outbox per round.
const BATCH: i64 = 100;
/// How often the worker looks at the outbox without being woken.
const POLL: Duration = Duration::from_secs(5);
/// Time allowed for one delivery attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where and how to deliver finding events.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    secret: Zeroizing<Vec<u8>>,
    /// Wait before the first retry; it doubles after each failure up to five minutes.
    pub initial_backoff: Duration,
}

/// Shows the URL only: the secret never reaches a log.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Shortest accepted webhook secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

impl WebhookConfig {
    /// Checks the URL (http or https) and the secret (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(url: &str, secret: Zeroizing<Vec<u8>>) -> Result<Self, String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|err| format!("invalid webhook URL: {err}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err("invalid webhook URL: use http:// or https:// with a host".into());
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the webhook secret is shorter than {MIN_SECRET_LEN} bytes; use a long random value"
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            secret,
            initial_backoff: Duration::from_secs(1),
        })
    }
}

/// Delivers queued events until the process stops. Without a webhook, events are discarded.
pub(crate) async fn deliver_forever(state: AppState, config: Option<WebhookConfig>) {
    let client = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the webhook HTTP client; webhooks are off");
            return;
        }
    };
    loop {
        match state.store.pending_finding_events(BATCH).await {
            Ok(events) if events.is_empty() => wait(&state).await,
            Ok(events) => {
                let full = events.len() as i64 == BATCH;
                deliver_batch(&state, &client, config.as_ref(), events).await;
                if !full {
                    wait(&state).await;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot read finding events; will retry");
                wait(&state).await;
            }
        }
    }
}

async fn wait(state: &AppState) {
    let _ = tokio::time::timeout(POLL, state.governance.events.notified()).await;
}

async fn deliver_batch(
    state: &AppState,
    client: &reqwest::Client,
    config: Option<&WebhookConfig>,
    events: Vec<FindingEvent>,
) {
    for event in events {
        let id = event.id;
        if let Some(config) = config {
            deliver_with_retries(client, config, event).await;
        }
        if let Err(err) = state.store.delete_finding_events(id).await {
            tracing::error!(error = %err, event = id, "cannot delete a delivered finding event");
        }
    }
}

/// Sends one event until the receiver accepts it.
async fn deliver_with_retries(
    client: &reqwest::Client,
    config: &WebhookConfig,
    event: FindingEvent,
) {
    let delivery = WebhookDelivery {
        event: format!("finding.{}", event.event),
        delivery_id: event.id,
        occurred_at: crate::clock::rfc3339_ms(event.at_ms),
        finding: crate::routes::finding_view(event.finding),
    };
    let body = match serde_json::to_vec(&delivery) {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(error = %err, delivery = event.id, "cannot encode a webhook delivery; dropping it");
            return;
        }
    };

    let mut backoff = config.initial_backoff;
    let mut attempt: u32 = 1;
    loop {
        match send(client, config, &delivery.event, event.id, &body).await {
            Ok(()) => {
                tracing::info!(delivery = event.id, event = %delivery.event, attempt, "webhook delivered");
                return;
            }
            Err(err) => {
                tracing::warn!(
                    delivery = event.id,
                    attempt,
                    retry_in_ms = backoff.as_millis(),
                    error = %err,
                    "webhook delivery failed; will retry"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt = attempt.saturating_add(1);
    }
}

async fn send(
    client: &reqwest::Client,
    config: &WebhookConfig,
    event: &str,
    delivery_id: i64,
    body: &[u8],
) -> Result<(), String> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = sign(&config.secret, timestamp, body);
    let response = client
        .post(&config.url)
        .header("Content-Type", "application/json")
        .header("X-Sigil-Event", event)
        .header("X-Sigil-Delivery", delivery_id.to_string())
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|err| format!("request failed: {}", without_url(&err)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("receiver answered {status}"))
    }
}

/// Describes a client error without its URL, which may carry credentials in its query.
fn without_url(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "error"
    };
    format!("{kind}: {}", err.without_url_ref())
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<webhook URL>");
        }
        text
    }
}
