//! Test servers on 127.0.0.1 built from `ordo_net`'s pieces.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ordo_net::PeerIdentity;
use ordo_net::certs::{IssueSpec, PemPair, TestPki};
use ordo_net::frame::{self, FrameError};
use ordo_net::serve::{ConnectionInfo, ServeLimits, serve_plain, serve_tls};
use ordo_net::tls::TlsMaterial;
use rustls::ServerConfig;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Upper bound for any single test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Frame limit of the test WebSocket endpoint.
pub const SERVER_FRAME_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    V1 { seq: u64, payload: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    V1 {
        seq: u64,
        payload_len: usize,
        peer_agent: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub uri_sans: Vec<String>,
    pub common_name: Option<String>,
    pub remote_ip: String,
    pub bearer: Option<String>,
}

/// What the WebSocket endpoint saw when a session ended with an error.
pub type WsErrors = mpsc::UnboundedReceiver<FrameError>;

pub fn pem(pki: &TestPki, name: &str, uri: &str) -> PemPair {
    pki.issue(name, &IssueSpec::local([uri])).expect("issue")
}

pub fn material(pair: &PemPair) -> TlsMaterial {
    pair.to_material().expect("material")
}

/// `/whoami` (GET), `/echo` (POST JSON), `/big` (GET, 4 KiB of JSON) and `/ws` (postcard echo).
pub fn app() -> (Router, WsErrors) {
    let (errors_tx, errors_rx) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/echo", post(echo))
        .route("/big", get(|| async { Json("x".repeat(4096)) }))
        .route("/ws", get(ws))
        .layer(Extension(errors_tx));
    (router, errors_rx)
}

async fn ws(
    upgrade: WebSocketUpgrade,
    peer: Option<Extension<PeerIdentity>>,
    Extension(errors): Extension<mpsc::UnboundedSender<FrameError>>,
) -> Response {
    let peer_agent = peer.and_then(|p| p.agent_id().map(str::to_owned));
    frame::limit_upgrade(upgrade, SERVER_FRAME_BYTES_MAX).on_upgrade(move |mut ws| async move {
        loop {
            let reply = match frame::recv::<_, Wire>(&mut ws, SERVER_FRAME_BYTES_MAX).await {
                Ok(Some(Wire::V1 { seq, payload })) => Reply::V1 {
                    seq,
                    payload_len: payload.len(),
                    peer_agent: peer_agent.clone(),
                },
                Ok(None) => return,
                Err(e) => {
                    let _ = errors.send(e);
                    return;
                }
            };
            if let Err(e) = frame::send(&mut ws, &reply, SERVER_FRAME_BYTES_MAX).await {
                let _ = errors.send(e);
                return;
            }
        }
    })
}

async fn whoami(
    peer: Option<Extension<PeerIdentity>>,
    Extension(conn): Extension<ConnectionInfo>,
    headers: HeaderMap,
) -> Json<WhoAmI> {
    assert_eq!(peer.as_ref().map(|p| &p.0), conn.peer.as_ref());
    let peer = peer.map(|p| p.0).unwrap_or_default();
    Json(WhoAmI {
        uri_sans: peer.uri_sans,
        common_name: peer.common_name,
        remote_ip: conn.remote_addr.ip().to_string(),
        bearer: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}

async fn echo(Json(value): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(value)
}

pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops the server and waits (bounded) for `serve_*` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task");
        result.expect("serve returns Ok");
    }
}

pub async fn start_tls(tls: Arc<ServerConfig>, app: Router, limits: ServeLimits) -> Server {
    start(move |listener, shutdown| async move {
        serve_tls(listener, tls, app, shutdown, limits).await
    })
    .await
}

pub async fn start_plain(app: Router, limits: ServeLimits) -> Server {
    start(
        move |listener, shutdown| async move { serve_plain(listener, app, shutdown, limits).await },
    )
    .await
}

async fn start<F, Fut>(run: F) -> Server
where
    F: FnOnce(TcpListener, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let shutdown = Box::pin(async move {
        let _ = stop_rx.await;
    });
    let task = tokio::spawn(run(listener, shutdown));
    Server {
        addr,
        stop: Some(stop_tx),
        task,
    }
}
