//! The controllers as the cockpit reaches them: HTTPS requests with the service token, the
//! state download, pages of the long-poll event stream, and the WebSocket event stream.
//!
//! Of a pair, the cockpit keeps which controller it believes active: the one whose `/health`
//! says `role: "active"` (the highest term wins when two do), or the one a controller names
//! in a 503 `{"active": url}` answer, if that URL is one of `controllers`. [`Upstream::forward`]
//! sends there first; a 503 naming another configured controller as active is sent there
//! once more; a controller that cannot be connected to is skipped for the next one.
//!
//! Event frames and the state snapshot are the published [`ordo_api::frame`] types: a frame
//! gives back the `(eventId, Stored)` the controller journaled, which folds into a [`State`]
//! exactly as the controller folds its journal; a frame or snapshot of a newer format is
//! refused, naming both versions. A frame `{"error": "..."}` ends a stream.

use axum::http::{HeaderValue, Method, header};
use bytes::Bytes;
use ordo_api::frame::{StateSnapshot, StreamMessage};
use ordo_api::record::Stored;
use ordo_api::state::State;
use ordo_api::view::ControllerHealth;
use ordo_net::client::{ClientError, HttpResponse, HttpsClient, HttpsClientOptions, WsStream};
use rustls::ClientConfig;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Why a request to a controller failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The events after the asked id are no longer kept: reload the state.
    #[error("the controller no longer keeps the events after {after}: {message}")]
    Gone { after: u64, message: String },
    #[error("controller {url} sent an event that does not parse: {reason}")]
    BadEvent { url: String, reason: String },
    #[error("controller {url} sent a state that does not parse: {reason}")]
    BadState { url: String, reason: String },
    /// The next event is larger than this cockpit takes.
    #[error(
        "the event after {after} is {bytes} bytes, larger than limits.frame_bytes_max ({frame_bytes_max} bytes)"
    )]
    FrameTooLarge {
        after: u64,
        bytes: usize,
        frame_bytes_max: usize,
    },
}

/// One event as the stream carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: u64,
    pub stored: Stored,
}

#[derive(Deserialize)]
struct ErrorFrame {
    error: String,
}

/// What one stream message holds.
#[derive(Debug)]
pub enum Message {
    Event(Event),
    /// The controller ended the stream with this reason.
    Error(String),
}

/// Parses one text frame (or NDJSON line) of the event stream.
pub fn parse_message(text: &str) -> Result<Message, String> {
    match ordo_api::frame::parse_message(text).map_err(|e| e.to_string())? {
        StreamMessage::Event(frame) => {
            let (event_id, stored) = (*frame).into_stored();
            Ok(Message::Event(Event { event_id, stored }))
        }
        StreamMessage::Error(reason) => Ok(Message::Error(reason)),
    }
}

/// The controllers of one cluster.
pub struct Upstream {
    urls: Vec<String>,
    http: HttpsClient,
    tls: Arc<ClientConfig>,
    authorization: HeaderValue,
    frame_bytes_max: usize,
    connect_timeout_ms: u64,
    /// The controller last followed; commands go there first when no active one is known.
    current: AtomicUsize,
    /// The controller believed active (its index), if any.
    active: watch::Sender<Option<usize>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

/// Limits of the connections to the controllers.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamLimits {
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub body_bytes_max: usize,
    pub frame_bytes_max: usize,
}

impl Upstream {
    pub fn new(
        urls: Vec<String>,
        tls: Arc<ClientConfig>,
        token: &str,
        limits: UpstreamLimits,
    ) -> Result<Upstream, ClientError> {
        let http = HttpsClient::new(
            tls.clone(),
            HttpsClientOptions {
                connect_timeout_ms: limits.connect_timeout_ms,
                request_timeout_ms: limits.request_timeout_ms,
                body_bytes_max: limits.body_bytes_max,
                allow_plain_http: false,
            },
        )
        .with_bearer(token)?;
        let mut authorization =
            HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| ClientError::BadToken)?;
        authorization.set_sensitive(true);
        Ok(Upstream {
            urls,
            http,
            tls,
            authorization,
            frame_bytes_max: limits.frame_bytes_max,
            connect_timeout_ms: limits.connect_timeout_ms,
            current: AtomicUsize::new(0),
            active: watch::Sender::new(None),
        })
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The largest event frame taken from a controller.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// The index of the controller last followed.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub fn set_current(&self, i: usize) {
        self.current.store(i % self.urls.len(), Ordering::Relaxed);
    }

    /// The controller believed active, if any.
    pub fn active(&self) -> Option<usize> {
        *self.active.borrow()
    }

    /// The active controller's URL, if one is known.
    pub fn active_url(&self) -> Option<String> {
        self.active().map(|i| self.urls[i].clone())
    }

    /// Records which controller is active (`None`: none is known); watchers are told only of
    /// a change.
    pub fn set_active(&self, active: Option<usize>) {
        let active = active.filter(|i| *i < self.urls.len());
        self.active.send_if_modified(|a| {
            let changed = *a != active;
            if changed {
                match active {
                    Some(i) => tracing::info!(controller = %self.urls[i], "the active controller"),
                    None => tracing::info!("no controller is known to be active"),
                }
            }
            *a = active;
            changed
        });
    }

    /// Tells of every change of [`Upstream::active`].
    pub fn watch_active(&self) -> watch::Receiver<Option<usize>> {
        self.active.subscribe()
    }

    /// The index of a configured controller URL (a trailing `/` and the case of scheme and
    /// host do not matter); `None` for any other URL.
    pub fn index_of(&self, url: &str) -> Option<usize> {
        let norm = |u: &str| u.trim().trim_end_matches('/').to_ascii_lowercase();
        let url = norm(url);
        self.urls.iter().position(|u| norm(u) == url)
    }

    /// Learns from controller `i`'s `/health`: it is active, or it names the active one (a
    /// configured URL), or it is not active.
    pub fn note_health(&self, i: usize, h: &ControllerHealth) {
        if h.role == "active" {
            self.set_active(Some(i));
            return;
        }
        let named = h
            .cluster
            .as_ref()
            .and_then(|c| c.active_api_url.as_deref())
            .and_then(|u| self.index_of(u))
            .filter(|j| *j != i);
        match named {
            Some(j) => self.set_active(Some(j)),
            None if self.active() == Some(i) => self.set_active(None),
            None => {}
        }
    }

    /// Where requests go first: the active controller, else the one last followed.
    pub fn preferred(&self) -> usize {
        self.active().unwrap_or_else(|| self.current())
    }

    fn url(&self, i: usize, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.urls[i % self.urls.len()])
    }

    /// `GET /api/v1/state` of controller `i`: the event id and the state at it.
    pub async fn state(&self, i: usize) -> Result<(u64, State), UpstreamError> {
        let url = self.url(i, "/api/v1/state");
        let r = self.http.request(Method::GET, &url, None).await?;
        if !r.status.is_success() {
            return Err(ClientError::Status {
                method: Method::GET,
                url,
                status: r.status,
                body: error_text(&r),
            }
            .into());
        }
        let snapshot = StateSnapshot::from_slice(&r.body).map_err(|e| UpstreamError::BadState {
            url,
            reason: e.to_string(),
        })?;
        Ok((snapshot.event_id, snapshot.state))
    }

    /// `GET /api/v1/health` of controller `i`.
    pub async fn health(&self, i: usize) -> Result<ControllerHealth, UpstreamError> {
        Ok(self.http.get_json(&self.url(i, "/api/v1/health")).await?)
    }

    /// `GET /api/v1/health` of a voter that is not configured (the watch a controller names).
    pub async fn health_at(&self, base_url: &str) -> Result<ControllerHealth, UpstreamError> {
        let base = base_url.trim_end_matches('/');
        Ok(self.http.get_json(&format!("{base}/api/v1/health")).await?)
    }

    /// One long-poll page of events after `after` from controller `i` (empty after
    /// `timeout_ms` without events).
    pub async fn events_page(
        &self,
        i: usize,
        after: u64,
        timeout_ms: u64,
    ) -> Result<Vec<Event>, UpstreamError> {
        let url = self.url(
            i,
            &format!("/api/v1/events?after={after}&timeout={timeout_ms}"),
        );
        let r = self.http.request(Method::GET, &url, None).await?;
        if r.status == axum::http::StatusCode::GONE {
            return Err(UpstreamError::Gone {
                after,
                message: error_text(&r),
            });
        }
        if !r.status.is_success() {
            return Err(ClientError::Status {
                method: Method::GET,
                url,
                status: r.status,
                body: error_text(&r),
            }
            .into());
        }
        let text = String::from_utf8_lossy(&r.body);
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_message(line) {
                Ok(Message::Event(e)) => out.push(e),
                Ok(Message::Error(reason)) | Err(reason) => {
                    return Err(UpstreamError::BadEvent { url, reason });
                }
            }
        }
        Ok(out)
    }

    /// Opens `GET /api/v1/events/ws?after=` on controller `i`.
    pub async fn events_ws(&self, i: usize, after: u64) -> Result<WsStream, UpstreamError> {
        let url = self
            .url(i, &format!("/api/v1/events/ws?after={after}"))
            .replacen("https://", "wss://", 1);
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Url {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, self.authorization.clone());
        ordo_net::client::connect_ws_request(
            request,
            self.tls.clone(),
            self.frame_bytes_max,
            self.connect_timeout_ms,
        )
        .await
        .map_err(|e| match e {
            ClientError::WsHandshake { reason, .. } if reason.contains("410") => {
                UpstreamError::Gone {
                    after,
                    message: "reload the snapshot".into(),
                }
            }
            other => other.into(),
        })
    }

    /// Sends a request to the active controller (or, when none is known, the one last
    /// followed); when it cannot be connected to, to the others in turn. A 503 answer that
    /// names another configured controller as `active` is sent there once more. The answer is
    /// returned whatever its status.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<HttpResponse, ClientError> {
        let n = self.urls.len();
        let first = self.preferred();
        let mut tried = vec![false; n];
        let mut last_error = None;
        for k in 0..n {
            let i = (first + k) % n;
            if tried[i] {
                continue;
            }
            tried[i] = true;
            let r = match self.send(i, &method, path_and_query, body.clone()).await {
                Ok(r) => r,
                Err(e) if is_connect_error(&e) => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(named) = not_active(&r) else {
                return Ok(r);
            };
            // Refused by a controller that is not the active one: once to the one it names.
            let Some(j) = named
                .as_deref()
                .and_then(|u| self.index_of(u))
                .filter(|j| *j != i)
            else {
                return Ok(r);
            };
            self.set_active(Some(j));
            tried[j] = true;
            return match self.send(j, &method, path_and_query, body.clone()).await {
                Ok(again) => Ok(again),
                // The one named is gone too: the first answer says what is known.
                Err(e) if is_connect_error(&e) => Ok(r),
                Err(e) => Err(e),
            };
        }
        Err(last_error.unwrap_or(ClientError::Url {
            url: path_and_query.to_owned(),
            reason: "no controller is configured".into(),
        }))
    }

    /// One request to controller `i`; what it tells of who is active is noted.
    async fn send(
        &self,
        i: usize,
        method: &Method,
        path_and_query: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<HttpResponse, ClientError> {
        match self
            .http
            .request(method.clone(), &self.url(i, path_and_query), body)
            .await
        {
            Ok(r) => {
                if not_active(&r).is_some() {
                    if self.active() == Some(i) {
                        self.set_active(None);
                    }
                } else if r.status.is_success() && method != Method::GET {
                    // Only the active controller carries out a command.
                    self.set_active(Some(i));
                }
                Ok(r)
            }
            Err(e) => {
                if is_connect_error(&e) && self.active() == Some(i) {
                    self.set_active(None);
                }
                Err(e)
            }
        }
    }
}

/// A controller's refusal because it is not the active one: 503 with `{"active": url | null}`;
/// gives the URL it names.
pub fn not_active(r: &HttpResponse) -> Option<Option<String>> {
    if r.status != axum::http::StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    match v.get("active")? {
        serde_json::Value::String(u) => Some(Some(u.clone())),
        serde_json::Value::Null => Some(None),
        _ => None,
    }
}

/// A connection that could not be made: nothing reached the controller, so the request may
/// be sent elsewhere (a request that may have reached one is not sent twice).
fn is_connect_error(e: &ClientError) -> bool {
    if matches!(
        e,
        ClientError::Connect { .. } | ClientError::ConnectTimeout { .. }
    ) {
        return true;
    }
    if !matches!(e, ClientError::Request { .. }) {
        return false;
    }
    let text = e.to_string();
    text.contains("Connect") || text.contains("connection refused") || text.contains("tcp connect")
}

/// The `error` of a JSON error answer, or its text.
pub fn error_text(r: &HttpResponse) -> String {
    let text = String::from_utf8_lossy(&r.body);
    serde_json::from_str::<ErrorFrame>(&text)
        .map(|e| e.error)
        .unwrap_or_else(|_| text.chars().take(1024).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_api::frame::{ErrorFrame, EventFrame};
    use ordo_api::record::Body;
    use ordo_model::time::TimeMs;

    #[test]
    fn frames_parse_into_what_the_controller_journaled() {
        let stored = Stored {
            term: 4,
            ts: TimeMs(5),
            body: Body::AgentRunChanged {
                agent: ordo_model::ids::AgentId::new("a").unwrap(),
                old: None,
                new: 7,
            },
        };
        let text = EventFrame::of(65536, &stored).to_json().unwrap();
        match parse_message(&text).unwrap() {
            Message::Event(e) => assert_eq!(
                e,
                Event {
                    event_id: 65536,
                    stored
                }
            ),
            other => panic!("{other:?}"),
        }
        let error = ErrorFrame {
            error: "reload the snapshot".into(),
        };
        assert!(matches!(
            parse_message(&error.to_json()).unwrap(),
            Message::Error(e) if e.contains("reload")
        ));
        assert!(parse_message("{}").is_err());
    }
}
