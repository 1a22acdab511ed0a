//! The event stream: a snapshot at an event id, then every event after it, in order.

use super::{Api, ApiError};
use crate::record::Record;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordo_api::frame::{ErrorFrame, EventFrame};
use ordo_journal::{Follower, JournalError};
use serde::Deserialize;

use std::time::Duration;

/// Events in one long-poll answer at most (and, past the first, at most `event_bytes_max`
/// bytes).
const EVENTS_PER_ANSWER_MAX: usize = 10_000;

/// Reads of the state at a durable point tried at most.
const DURABLE_READ_ATTEMPTS: usize = 3;
/// Time a read waits for the journal to make what it saw durable.
const DURABLE_READ_WAIT_MS: u64 = 10_000;

/// Runs `f` on the state and answers with the id of the last event it saw once that event is
/// durable: a read between batches may see events not yet on disk, and a reader must be able
/// to resume from its id. When the core rolled back meanwhile (a batch could not be written,
/// so those events never will be), it reads again.
pub(super) async fn read_durable<T: Send + 'static>(
    api: &Api,
    f: impl Fn(&crate::state::State) -> T + Clone + Send + 'static,
) -> Result<(u64, T), ApiError> {
    for _ in 0..DURABLE_READ_ATTEMPTS {
        let mut generation = api.generation.clone();
        let before = *generation.borrow_and_update();
        let f = f.clone();
        let (id, value) = api.read(move |s, _| (s.last_event_id, f(s))).await?;
        let mut durable = api.journal.durable_id_watch();
        let waited = tokio::time::timeout(Duration::from_millis(DURABLE_READ_WAIT_MS), async {
            tokio::select! {
                reached = durable.wait_for(|d| *d >= id) => reached.is_ok(),
                _ = generation.changed() => false,
            }
        })
        .await;
        match waited {
            Ok(true) if *api.generation.borrow() == before => return Ok((id, value)),
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the state could not be read at a point the journal made durable; try again",
    ))
}

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

/// Where a reader that asks for the events after `after` starts: `0` is just before the
/// oldest event kept; an `after` whose next events are no longer kept is 410. Any `after` at
/// or beyond the newest event is valid: the reader waits for greater ids.
fn start(api: &Api, after: u64) -> Result<u64, ApiError> {
    let after = match (after, api.journal.first_id()) {
        (0, Some(first)) => first.saturating_sub(1),
        _ => after,
    };
    match api.journal.read_after(after) {
        Err(e @ JournalError::Released { .. }) => Err(gone(e)),
        _ => Ok(after),
    }
}

/// The next event's frame, as JSON text.
async fn next_json(follower: &mut Follower) -> Option<Result<String, ApiError>> {
    let record = follower.next().await?;
    let internal = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e);
    Some(record.map_err(gone).and_then(|r| {
        let stored = Record::decode(r.id, &r.data).map_err(|e| internal(e.to_string()))?;
        EventFrame::of(r.id, &stored)
            .to_json()
            .map_err(|e| internal(format!("event {} as JSON: {e}", r.id)))
    }))
}

/// `GET /events?after=&timeout=`: NDJSON.
pub async fn long_poll(
    AxState(api): AxState<Api>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let after = start(&api, q.after)?;
    let timeout = Duration::from_millis(q.timeout.unwrap_or(30_000).min(api.long_poll_ms_max));
    let mut follower = api.journal.follow(after);
    if q.stream {
        let deadline = tokio::time::Instant::now() + timeout;
        let lines = futures_util::stream::unfold(follower, move |mut f| async move {
            match tokio::time::timeout_at(deadline, next_json(&mut f)).await {
                Ok(Some(Ok(line))) => Some((Ok::<_, std::io::Error>(line + "\n"), f)),
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
            Ok(Some(Ok(line))) => {
                // Past the first event, an answer stays within one event's size; the reader
                // asks again after the last id it got.
                if n > 0 && out.len() + line.len() >= api.event_bytes_max {
                    break;
                }
                out.push_str(&line);
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
    let after = start(&api, q.after)?;
    let follower = api.journal.follow(after);
    Ok(upgrade.on_upgrade(move |ws| stream(ws, follower)))
}

async fn stream(mut ws: WebSocket, mut follower: Follower) {
    loop {
        tokio::select! {
            next = next_json(&mut follower) => {
                let text = match next {
                    Some(Ok(text)) => text,
                    Some(Err(e)) => {
                        let _ = ws.send(Message::Text(ErrorFrame { error: e.message }.to_json().into())).await;
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
