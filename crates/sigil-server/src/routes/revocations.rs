//! `GET /v1/revocations`: the revocation stream, as server-sent events.
//!
//! Each connection gets a task that first replays the stored events after the client's resume
//! point, then forwards the hub's broadcast, with a heartbeat whenever the interval passes. The
//! task ends when the client goes away or the authority shuts down.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use serde::Deserialize;
use sigil_proto::RevocationEvent;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::extract::EnforcementCaller;
use crate::revocations::{READ_BATCH, events_from_rows};
use crate::state::AppState;

/// SSE messages buffered per connection before the stream task waits for the client.
const STREAM_BUFFER: usize = 64;

/// Query parameters of `GET /v1/revocations`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    /// Resume after this sequence number; `Last-Event-ID` takes precedence.
    since: Option<String>,
}

type EventStream = Sse<ReceiverStream<Result<Event, Infallible>>>;

/// `GET /v1/revocations`: streams revocation events to an admin or a gateway.
pub(super) async fn stream(
    State(state): State<AppState>,
    caller: EnforcementCaller,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<EventStream, ApiError> {
    let Query(query) = query.map_err(|err| {
        ApiError::bad_request(
            "invalid_request",
            format!("invalid query: {}", err.body_text()),
        )
    })?;
    let since = resume_point(&headers, query.since.as_deref())?;

    // Subscribing before reading the table means that every event is either in the replay or
    // in the broadcast (or both; the cursor drops duplicates).
    let live = state.revocations.subscribe();
    let window = state.store.revocation_window().await?;
    let (start, resync) = match since {
        Some(since) if window.can_resume_from(since) => (since, false),
        Some(_) => (window.latest, true),
        None => (window.latest, false),
    };

    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
    tracing::info!(caller = %caller.spiffe_id, since, start, resync, "revocation stream opened");
    tokio::spawn(run_stream(
        state,
        caller.spiffe_id,
        live,
        start,
        resync,
        sender,
    ));
    Ok(Sse::new(ReceiverStream::new(receiver)))
}

/// Reads the resume point from `Last-Event-ID`, or else from `?since=`.
fn resume_point(headers: &HeaderMap, since: Option<&str>) -> Result<Option<i64>, ApiError> {
    let header = headers
        .get("last-event-id")
        .map(|value| {
            value.to_str().map_err(|_| {
                ApiError::bad_request("invalid_since", "`Last-Event-ID` is not a sequence number")
            })
        })
        .transpose()?;
    let Some(text) = header.or(since) else {
        return Ok(None);
    };
    let text = text.trim();
    text.parse::<u64>()
        .ok()
        .and_then(|value| i64::try_from(value).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_since",
                format!(
                    "the resume point `{}` is not a sequence number (a non-negative integer)",
                    text.chars().take(40).collect::<String>()
                ),
            )
        })
}

/// The reason a stream task stopped sending.
enum Stop {
    ClientGone,
    Failed,
}

async fn run_stream(
    state: AppState,
    caller: String,
    mut live: broadcast::Receiver<Arc<RevocationEvent>>,
    start: i64,
    resync: bool,
    sender: mpsc::Sender<Result<Event, Infallible>>,
) {
    let mut closing = state.revocations.closing();
    let mut heartbeat = tokio::time::interval(state.revocation_heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor = start;
    if *closing.borrow() {
        return;
    }

    if resync {
        let event = RevocationEvent::Resync {
            seq: to_seq(cursor),
            at_ms: state.clock.now_ms(),
        };
        if send(&sender, &event).await.is_err() {
            return;
        }
    }

    let stopped = loop {
        // Replays from the table: at the start, and after the broadcast dropped events for us.
        if let Err(stop) = replay(&state, &sender, &mut cursor).await {
            break stop;
        }
        let lagged = loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) => {
                        let seq = i64::try_from(event.seq()).unwrap_or(i64::MAX);
                        if seq <= cursor {
                            continue;
                        }
                        if send(&sender, &event).await.is_err() {
                            break Err(Stop::ClientGone);
                        }
                        cursor = seq;
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(caller = %caller, missed, "revocation stream fell behind; replaying from the table");
                        break Ok(());
                    }
                    Err(broadcast::error::RecvError::Closed) => break Err(Stop::ClientGone),
                },
                _ = heartbeat.tick() => {
                    let event = RevocationEvent::Heartbeat { seq: to_seq(cursor), at_ms: state.clock.now_ms() };
                    if send(&sender, &event).await.is_err() {
                        break Err(Stop::ClientGone);
                    }
                }
                // The value only ever changes to true, and an error means the hub is gone.
                _ = closing.changed() => break Err(Stop::ClientGone),
                () = sender.closed() => break Err(Stop::ClientGone),
            }
        };
        if let Err(stop) = lagged {
            break stop;
        }
    };
    match stopped {
        Stop::ClientGone => tracing::info!(caller = %caller, cursor, "revocation stream closed"),
        Stop::Failed => {
            tracing::error!(caller = %caller, cursor, "revocation stream ended after a registry error")
        }
    }
}

/// Sends every stored event after `cursor`, advancing it.
async fn replay(
    state: &AppState,
    sender: &mpsc::Sender<Result<Event, Infallible>>,
    cursor: &mut i64,
) -> Result<(), Stop> {
    loop {
        let rows = match state
            .store
            .revocation_events_after(*cursor, READ_BATCH)
            .await
        {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(error = %err, cursor = *cursor, "failed to read revocation events");
                return Err(Stop::Failed);
            }
        };
        let complete = rows.len() < usize::try_from(READ_BATCH).unwrap_or(usize::MAX);
        let last_row = rows.last().map(|row| row.seq);
        for event in events_from_rows(rows) {
            send(sender, &event).await.map_err(|()| Stop::ClientGone)?;
            *cursor = i64::try_from(event.seq()).unwrap_or(i64::MAX);
        }
        // Rows skipped as unreadable still move the cursor, so they are not read again.
        if let Some(last_row) = last_row {
            *cursor = (*cursor).max(last_row);
        }
        if complete {
            return Ok(());
        }
    }
}

/// Formats one event as an SSE message: `id: <seq>`, `event: <kind>`, `data: <JSON>`.
async fn send(
    sender: &mpsc::Sender<Result<Event, Infallible>>,
    event: &RevocationEvent,
) -> Result<(), ()> {
    let data = match serde_json::to_string(event) {
        Ok(data) => data,
        Err(err) => {
            tracing::error!(error = %err, seq = event.seq(), "failed to encode a revocation event");
            return Ok(());
        }
    };
    let message = Event::default()
        .id(event.seq().to_string())
        .event(event.kind())
        .data(data);
    sender.send(Ok(message)).await.map_err(|_| ())
}

fn to_seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(last_event_id: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = last_event_id {
            headers.insert("last-event-id", axum::http::HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn header_wins_over_query() {
        assert_eq!(
            resume_point(&headers(Some("7")), Some("3")).ok(),
            Some(Some(7))
        );
        assert_eq!(resume_point(&headers(None), Some("3")).ok(), Some(Some(3)));
        assert_eq!(resume_point(&headers(None), None).ok(), Some(None));
    }

    #[test]
    fn malformed_resume_points_rejected() {
        for bad in ["-1", "x", "1.5", "", "99999999999999999999"] {
            let result = resume_point(&headers(None), Some(bad));
            assert!(
                matches!(&result, Err(err) if err.code == "invalid_since"),
                "`{bad}` was accepted"
            );
        }
    }
}
