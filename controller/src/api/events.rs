//! The event stream: a snapshot at an event id, then every event after it, in order.

use super::convert::event_json;
use super::{Api, ApiError};
use crate::record::Record;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordo_journal::{Follower, JournalError};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::time::Duration;

/// Events in one long-poll answer at most.
const EVENTS_PER_ANSWER_MAX: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    timeout: Option<u64>,
    /// Keep the answer open and stream events as they come until `timeout`.
    #[serde(default)]
    stream: bool,
}

fn gone(e: JournalError) -> ApiError {
    match e {
        JournalError::Released { .. } => ApiError::new(
            StatusCode::GONE,
            format!(
                "{e}; reload the snapshot (GET /api/v1/snapshot) and continue from its eventId"
            ),
        ),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn check_retained(api: &Api, after: u64) -> Result<(), ApiError> {
    if let Some(first) = api.journal.first_id()
        && after + 1 < first
        && after != 0
    {
        return Err(ApiError::new(
            StatusCode::GONE,
            format!(
                "events after {after} are no longer kept (the oldest is {first}); reload the snapshot (GET /api/v1/snapshot) and continue from its eventId"
            ),
        ));
    }
    Ok(())
}

async fn next_json(follower: &mut Follower) -> Option<Result<Json, ApiError>> {
    let record = follower.next().await?;
    Some(record.map_err(gone).and_then(|r| {
        Record::decode(r.id, &r.data)
            .map(|s| event_json(r.id, &s))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }))
}

/// `GET /events?after=&timeout=`: NDJSON.
pub async fn long_poll(
    AxState(api): AxState<Api>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    check_retained(&api, q.after)?;
    let timeout = Duration::from_millis(q.timeout.unwrap_or(30_000).min(api.long_poll_ms_max));
    let mut follower = api.journal.follow(q.after);
    if q.stream {
        let deadline = tokio::time::Instant::now() + timeout;
        let lines = futures_util::stream::unfold(follower, move |mut f| async move {
            match tokio::time::timeout_at(deadline, next_json(&mut f)).await {
                Ok(Some(Ok(event))) => Some((Ok::<_, std::io::Error>(format!("{event}\n")), f)),
                _ => None,
            }
        });
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            axum::body::Body::from_stream(lines),
        )
            .into_response());
    }
    let mut out = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut n = 0;
    while n < EVENTS_PER_ANSWER_MAX {
        // Wait for the first event until the deadline; then take only what is there already.
        let wait = if n == 0 {
            deadline
        } else {
            tokio::time::Instant::now() + Duration::from_millis(1)
        };
        match tokio::time::timeout_at(wait, next_json(&mut follower)).await {
            Ok(Some(Ok(event))) => {
                out.push_str(&event.to_string());
                out.push('\n');
                n += 1;
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

/// `GET /events/ws?after=`: WebSocket text frames, one event each.
pub async fn websocket(
    AxState(api): AxState<Api>,
    Query(q): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_retained(&api, q.after)?;
    let follower = api.journal.follow(q.after);
    Ok(upgrade.on_upgrade(move |ws| stream(ws, follower)))
}

async fn stream(mut ws: WebSocket, mut follower: Follower) {
    loop {
        tokio::select! {
            next = next_json(&mut follower) => {
                let text = match next {
                    Some(Ok(event)) => event.to_string(),
                    Some(Err(e)) => {
                        let _ = ws.send(Message::Text(json!({"error": e.message}).to_string().into())).await;
                        return;
                    }
                    None => return,
                };
                // A subscriber that does not take a frame within 10 s is too slow: it is
                // disconnected and may resume from its last event id.
                match tokio::time::timeout(Duration::from_secs(10), ws.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
            incoming = ws.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    }
}
