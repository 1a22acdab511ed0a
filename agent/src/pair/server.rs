//! The HTTPS server of a node of a director pair: the routes of [`crate::server`], served by
//! the active director; a passive one (or the watch) refuses the controller's session and
//! answers `GET /health` with 503 and who is active.
//!
//! A passive node reads the controller's `Couple` (within `heartbeat_timeout_ms`) and answers
//! `Refused { reason }`: `this director is passive (term T); the active director is <url>`
//! (or `… is not known yet`), so that the controller's link moves to the other director.

use crate::session::Shared;
use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt;
use ordo_model::wire::{AGENT_WS_PATH, FromAgent, ToAgent};
use ordo_net::PeerIdentity;
use ordo_net::frame::{self, limit_upgrade};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// What the server knows of this node of the pair.
pub struct PairView {
    pub frame_bytes_max: usize,
    pub heartbeat_timeout_ms: u64,
    /// `director` or `watch`.
    pub voter: &'static str,
    /// Set once this node directs (it never stops directing while the process runs).
    pub active: OnceLock<Arc<Shared>>,
    pub passive: Mutex<Passive>,
}

/// Who leads the pair, as a passive node last heard from raft.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Passive {
    pub term: u64,
    /// The active director's URL, when known.
    pub active: Option<String>,
    /// This director leads the pair and is about to direct (it waits for its subagents'
    /// leases, or for its journal's first record).
    pub taking_over: bool,
}

/// `GET /health` of a passive node (503).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PassiveHealth {
    /// `passive`.
    status: &'static str,
    voter: &'static str,
    #[serde(flatten)]
    passive: Passive,
}

impl PairView {
    fn passive(&self) -> Passive {
        self.passive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why this node refuses the controller's session.
    fn refusal(&self) -> String {
        let p = self.passive();
        if p.taking_over {
            return format!(
                "this director takes over (term {}) and directs once the leases of its \
                 subagents' jobs have run out",
                p.term
            );
        }
        let whom = if self.voter == "watch" {
            "this node is the director pair's third voter and never directs".to_owned()
        } else {
            format!("this director is passive (term {})", p.term)
        };
        match p.active {
            Some(url) => format!("{whom}; the active director is {url}"),
            None => format!("{whom}; the active director is not known yet"),
        }
    }
}

pub fn router(view: Arc<PairView>) -> Router {
    Router::new()
        .route(AGENT_WS_PATH, get(agent_session))
        .route(crate::server::META_PATH, get(meta))
        .route(crate::server::HEALTH_PATH, get(health))
        .with_state(view)
}

async fn agent_session(
    State(view): State<Arc<PairView>>,
    peer: Option<Extension<PeerIdentity>>,
    remote: ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(shared) = view.active.get() {
        return crate::server::agent_session(State(shared.clone()), peer, remote, upgrade).await;
    }
    if peer
        .as_ref()
        .and_then(|Extension(p)| p.controller_cluster_id())
        .is_none()
    {
        return (
            StatusCode::FORBIDDEN,
            "only a controller (certificate URI SAN ordo:controller:<cluster-id>) may open the agent session\n",
        )
            .into_response();
    }
    let max = view.frame_bytes_max;
    limit_upgrade(upgrade, max)
        .on_upgrade(move |ws| refuse(ws, view, remote.0))
        .into_response()
}

/// Reads the `Couple` and refuses it, naming the active director.
async fn refuse(mut ws: WebSocket, view: Arc<PairView>, remote: SocketAddr) {
    let max = view.frame_bytes_max;
    let wait = Duration::from_millis(view.heartbeat_timeout_ms);
    let first = tokio::time::timeout(wait, frame::recv::<_, ToAgent>(&mut ws, max)).await;
    if !matches!(first, Ok(Ok(Some(ToAgent::Couple(_))))) {
        return;
    }
    let reason = view.refusal();
    tracing::info!(%remote, "controller session refused: {reason}");
    let _ = tokio::time::timeout(wait, async {
        let _ = frame::send(&mut ws, &FromAgent::Refused { reason }, max).await;
        let _ = ws.close().await;
    })
    .await;
}

async fn meta(
    State(view): State<Arc<PairView>>,
    peer: Option<Extension<PeerIdentity>>,
) -> Response {
    match view.active.get() {
        Some(shared) => crate::server::meta(State(shared.clone()), peer).await,
        None => health(State(view), peer).await,
    }
}

async fn health(
    State(view): State<Arc<PairView>>,
    peer: Option<Extension<PeerIdentity>>,
) -> Response {
    if let Some(shared) = view.active.get() {
        return crate::server::health(State(shared.clone()), peer).await;
    }
    if peer.is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "a client certificate is required\n",
        )
            .into_response();
    }
    let body = PassiveHealth {
        status: "passive",
        voter: view.voter,
        passive: view.passive(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}
