//! Streams: the controller's event stream (long-poll and WebSocket, proxied, resumable by
//! `after`) and an order's job output, live.
//!
//! `GET /api/v1/orders/{id}/log/ws` sends JSON text frames:
//! - `{"eventId", "type": "Stdout"|"Stderr"|"OutputTruncated", "text"}`: output, in order,
//!   from the order's first chunk on (earlier chunks are read from the controller's stream,
//!   later ones come from the events the cockpit follows; none is sent twice);
//! - `{"type": "Gap", "text"}`: output the controller no longer keeps was skipped;
//! - `{"type": "End", "state"}`: the order finished, was cancelled or removed; the stream
//!   closes;
//! - `{"error"}`: the stream cannot go on (the client was too slow, the controller is gone);
//!   reconnect to start again.

use super::read::{check_order_id, query};
use super::{ApiError, App};
use crate::follow::Live;
use crate::upstream::UpstreamError;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use ordo_api::record::Body;
use ordo_api::view::describe;
use ordo_model::wire::AgentEventBody;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message as UpMessage;
use utoipa::IntoParams;

/// Time a client gets to take one frame before it is dropped as too slow.
const SEND_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events after this id (0, the default: from the oldest the controller keeps).
    pub after: Option<u64>,
    /// Wait at most this long for the first event (or, with `stream`, in all), ms; default
    /// 30000, at most `long_poll_ms_max`.
    pub timeout: Option<u64>,
    /// Keep the answer open and send events as they come until `timeout`.
    pub stream: Option<bool>,
}

/// `GET /api/v1/events`: NDJSON from the controller's stream.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, description = "NDJSON events `{formatVersion, eventId, term, ts, key, type, text, event}` (ordo_api::frame::EventFrame) after `after` (empty after the timeout)", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A bad parameter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 410, description = "Events after `after` are no longer kept: reload the snapshot", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn events_long_poll(
    AxState(app): AxState<App>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let after = q.after.unwrap_or(0);
    let timeout_ms = q.timeout.unwrap_or(30_000).min(app.limits.long_poll_ms_max);
    if q.stream != Some(true) {
        let path = format!("/api/v1/events?after={after}&timeout={timeout_ms}");
        return super::commands::forward(&app, Method::GET, &path, None).await;
    }
    let upstream = connect_upstream(&app, after).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let lines = futures_util::stream::unfold(upstream, move |mut up| async move {
        loop {
            match tokio::time::timeout_at(deadline, up.next()).await {
                Ok(Some(Ok(UpMessage::Text(t)))) => {
                    return Some((Ok::<_, std::io::Error>(format!("{}\n", t.as_str())), up));
                }
                Ok(Some(Ok(UpMessage::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    let _ = up.close(None).await;
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// Events after this id (0, the default: from the oldest the controller keeps).
    pub after: Option<u64>,
    /// The token, for browsers (which cannot send an Authorization header here).
    pub access_token: Option<String>,
}

fn upgrade(
    u: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    u.map_err(|e| {
        ApiError::bad(format!(
            "this route needs a WebSocket upgrade: {}",
            e.body_text()
        ))
    })
}

/// `GET /api/v1/events/ws`: the controller's event stream, one event per text frame.
#[utoipa::path(get, path = "/api/v1/events/ws", tag = "events", security(("bearer" = [])),
    params(WsQuery),
    responses((status = 101, description = "WebSocket: text frames `{formatVersion, eventId, term, ts, key, type, text, event}` (ordo_api::frame::EventFrame); a frame `{error}` ends it"),
        (status = 400, description = "Not a WebSocket upgrade, or a bad parameter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 410, description = "Events after `after` are no longer kept: reload the snapshot", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn events_ws(
    AxState(app): AxState<App>,
    q: Result<Query<WsQuery>, QueryRejection>,
    u: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let u = upgrade(u)?;
    let after = q.after.unwrap_or(0);
    let upstream = connect_upstream(&app, after).await?;
    Ok(u.on_upgrade(move |ws| relay(ws, upstream)))
}

async fn connect_upstream(app: &App, after: u64) -> Result<ordo_net::client::WsStream, ApiError> {
    let n = app.upstream.urls().len();
    // The active controller first (a passive one serves the same events, a little later).
    let first = app.upstream.preferred();
    let mut last = None;
    for k in 0..n {
        match app.upstream.events_ws((first + k) % n, after).await {
            Ok(ws) => return Ok(ws),
            Err(UpstreamError::Gone { after, .. }) => {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    format!(
                        "events after {after} are no longer kept; reload the snapshot (GET /api/v1/snapshot) and continue from its eventId"
                    ),
                ));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(ApiError::upstream(
        last.map(|e| e.to_string()).unwrap_or_default(),
    ))
}

async fn relay(mut client: WebSocket, mut upstream: ordo_net::client::WsStream) {
    let send_timeout = Duration::from_millis(SEND_TIMEOUT_MS);
    loop {
        tokio::select! {
            from_up = upstream.next() => {
                let text = match from_up {
                    Some(Ok(UpMessage::Text(t))) => t,
                    Some(Ok(UpMessage::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        let msg = json!({"error": format!("the controller's stream broke: {e}; resume with after=<last eventId>")});
                        let _ = client.send(Message::Text(msg.to_string().into())).await;
                        break;
                    }
                };
                let sent = tokio::time::timeout(send_timeout, client.send(Message::Text(text.as_str().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            from_client = client.recv() => match from_client {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    let _ = upstream.close(None).await;
    let _ = client.close().await;
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogWsQuery {
    /// The token, for browsers (which cannot send an Authorization header here).
    pub access_token: Option<String>,
}

/// `GET /api/v1/orders/{id}/log/ws`: the order's job output, from its start, then live.
#[utoipa::path(get, path = "/api/v1/orders/{id}/log/ws", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id"), LogWsQuery),
    responses((status = 101, description = "WebSocket: text frames `{eventId, type, text}` (Stdout, Stderr, OutputTruncated), `{type: Gap}`, `{type: End, state}`, `{error}`"),
        (status = 400, description = "Not a WebSocket upgrade, or not an order id", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 404, description = "No such order", body = super::ErrorBody)))]
pub async fn order_log_ws(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
    q: Result<Query<LogWsQuery>, QueryRejection>,
    u: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    query(q)?;
    check_order_id(&id)?;
    let u = upgrade(u)?;
    // Under the read lock: the view's id, the order's first output, and a subscription
    // that sees every event after that id.
    let (from, first_chunk, ended, rx) = {
        let v = app.shared.read();
        let Some(order) = v.order(&id) else {
            return Err(ApiError::not_found(format!("order {id} does not exist")));
        };
        let ended = order.state.is_terminal().then(|| order.state.name());
        let first = v
            .state
            .logs
            .get(id.as_str())
            .and_then(|ids| ids.first().copied());
        (v.last_event_id(), first, ended, app.shared.live.subscribe())
    };
    Ok(u.on_upgrade(move |ws| async move {
        log_stream(ws, app, id, from, first_chunk, ended, rx).await;
    }))
}

fn output_frame(event_id: u64, body: &Body, order: &str) -> Option<String> {
    match body {
        Body::Agent {
            body:
                AgentEventBody::Output { order_id, .. }
                | AgentEventBody::OutputTruncated { order_id, .. },
            ..
        } if order_id.as_str() == order => {
            let (_, kind, text) = describe(body);
            Some(json!({"eventId": event_id, "type": kind, "text": text}).to_string())
        }
        _ => None,
    }
}

async fn send(ws: &mut WebSocket, text: String) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(SEND_TIMEOUT_MS),
            ws.send(Message::Text(text.into()))
        )
        .await,
        Ok(Ok(()))
    )
}

/// Pages of the controller's stream read for one log's earlier output, at most.
const CATCH_UP_PAGES_MAX: usize = 10_000;

async fn log_stream(
    mut ws: WebSocket,
    app: App,
    id: String,
    from: u64,
    first_chunk: Option<u64>,
    ended: Option<&'static str>,
    mut rx: broadcast::Receiver<Arc<Live>>,
) {
    // Earlier output: chunks with ids up to `from`, read from the controller.
    if let Some(first) = first_chunk {
        let mut cursor = first - 1;
        let mut pages = 0;
        'catch_up: while cursor < from && pages < CATCH_UP_PAGES_MAX {
            pages += 1;
            let n = app.upstream.urls().len();
            let page = app
                .upstream
                .events_page(app.upstream.current() % n, cursor, 1000)
                .await;
            let events = match page {
                Ok(p) if p.is_empty() => break,
                Ok(p) => p,
                Err(UpstreamError::Gone { .. }) => {
                    let gap = json!({"type": "Gap", "text": "earlier output is no longer kept by the controller"});
                    if !send(&mut ws, gap.to_string()).await {
                        return;
                    }
                    break;
                }
                Err(e) => {
                    let _ = send(
                        &mut ws,
                        json!({"error": format!("reading the earlier output failed: {e}")})
                            .to_string(),
                    )
                    .await;
                    return;
                }
            };
            for e in events {
                if e.event_id > from {
                    break 'catch_up;
                }
                cursor = e.event_id;
                if let Some(frame) = output_frame(e.event_id, &e.stored.body, &id)
                    && !send(&mut ws, frame).await
                {
                    return;
                }
            }
        }
    }
    if let Some(state) = ended {
        let _ = send(&mut ws, json!({"type": "End", "state": state}).to_string()).await;
        let _ = ws.close().await;
        return;
    }
    // Later output, from the events the cockpit applies.
    loop {
        tokio::select! {
            live = rx.recv() => match live {
                Ok(live) => {
                    if live.event_id <= from {
                        continue;
                    }
                    if let Some(frame) = output_frame(live.event_id, &live.stored.body, &id)
                        && !send(&mut ws, frame).await
                    {
                        return;
                    }
                    if live.ended.as_deref() == Some(id.as_str()) {
                        let state = app
                            .shared
                            .read()
                            .order(&id)
                            .map_or("removed", |o| o.state.name());
                        let _ = send(&mut ws, json!({"type": "End", "state": state}).to_string()).await;
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let _ = send(&mut ws, json!({"error": format!("the client fell {n} events behind; reconnect")}).to_string()).await;
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            from_client = ws.recv() => match from_client {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    }
    let _ = ws.close().await;
}
