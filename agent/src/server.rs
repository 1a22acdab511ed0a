//! The agent's HTTPS server (mTLS): the controller session at `/agent`, `GET /meta` and
//! `GET /health`.
//!
//! Every connection must present a client certificate from the controller CA (the TLS layer
//! refuses others, and plaintext). The session additionally needs the URI SAN
//! `ordo:controller:<cluster-id>`; `GET /meta` answers any verified peer (the controller's
//! ping-back when it registers the agent) with [`MetaJson`](crate::status::MetaJson), and
//! `GET /health` any verified peer with [`Health`](crate::status::Health): `degraded`, and
//! why, while the journal's file system is full.

use crate::session::{self, Shared};
use crate::status::MetaJson;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ordo_model::wire::AGENT_WS_PATH;
use ordo_net::PeerIdentity;
use ordo_net::frame::limit_upgrade;
use std::net::SocketAddr;
use std::sync::Arc;

/// The path of the metadata endpoint.
pub const META_PATH: &str = "/meta";

/// The path of the health endpoint.
pub const HEALTH_PATH: &str = "/health";

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(AGENT_WS_PATH, get(agent_session))
        .route(META_PATH, get(meta))
        .route(HEALTH_PATH, get(health))
        .with_state(shared)
}

pub(crate) async fn agent_session(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerIdentity>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let cluster = peer
        .as_ref()
        .and_then(|Extension(p)| p.controller_cluster_id().map(str::to_owned));
    let Some(cluster) = cluster else {
        tracing::warn!(%remote, "agent session refused: the client certificate is not a controller's");
        return (
            StatusCode::FORBIDDEN,
            "only a controller (certificate URI SAN ordo:controller:<cluster-id>) may open the agent session\n",
        )
            .into_response();
    };
    let max = shared.config.limits.frame_bytes_max;
    limit_upgrade(upgrade, max)
        .on_upgrade(move |ws| session::run(ws, shared, cluster, remote))
        .into_response()
}

pub(crate) async fn meta(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerIdentity>>,
) -> Response {
    if peer.is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "a client certificate is required\n",
        )
            .into_response();
    }
    let status = shared.status.clone();
    match tokio::task::spawn_blocking(move || status.meta()).await {
        Ok(meta) => axum::Json(MetaJson::from(meta)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("gathering metadata failed: {e}\n"),
        )
            .into_response(),
    }
}

pub(crate) async fn health(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerIdentity>>,
) -> Response {
    if peer.is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "a client certificate is required\n",
        )
            .into_response();
    }
    let bound = shared.config.limits.pending_events_bytes_max;
    axum::Json(shared.status.health(bound)).into_response()
}
