//! The CLI against a plain-HTTP API on 127.0.0.1 that has the cockpit's extra routes (the
//! live log WebSocket) or lacks them: a small in-process server with canned answers.

mod common;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const TOKEN: &str = "stub-token";

#[derive(Default)]
struct Stub {
    /// Polls of the order so far; it finishes at the fourth.
    polls: AtomicU32,
    /// Event WebSockets opened so far.
    feeds: AtomicU32,
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn unauthorized() -> Response {
    let e = json!({"error": "unknown token"});
    (StatusCode::UNAUTHORIZED, axum::Json(e)).into_response()
}

async fn order(State(s): State<Arc<Stub>>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    if id != "o1" {
        let e = json!({"error": format!("order {id} does not exist")});
        return (StatusCode::NOT_FOUND, axum::Json(e)).into_response();
    }
    let n = s.polls.fetch_add(1, Ordering::SeqCst);
    let state = if n >= 3 { "finished" } else { "processing" };
    axum::Json(json!({"id": id, "state": state, "position": "0"})).into_response()
}

async fn log(State(s): State<Arc<Stub>>, h: HeaderMap) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    let n = s.polls.load(Ordering::SeqCst);
    (1..=n)
        .map(|i| format!("line {i}\n"))
        .collect::<String>()
        .into_response()
}

async fn log_ws(h: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    ws.on_upgrade(|mut ws: WebSocket| async move {
        let frames = [
            json!({"eventId": 5, "type": "Stdout", "text": "out\n"}),
            json!({"type": "Gap", "text": "earlier output is gone"}),
            json!({"eventId": 6, "type": "Stderr", "text": "err\n"}),
            json!({"eventId": 7, "type": "OutputTruncated", "text": "output truncated after 9 bytes"}),
            json!({"type": "End", "state": "finished"}),
            json!({"eventId": 8, "type": "Stdout", "text": "never shown\n"}),
        ]
        .map(|f| Message::Text(f.to_string().into()));
        for f in frames {
            if ws.send(f).await.is_err() {
                return;
            }
        }
        let _ = ws.send(Message::Close(None)).await;
    })
}

fn event(id: u64) -> String {
    json!({"eventId": id, "ts": 0, "key": "o1", "type": "Moved", "text": format!("event {id}\nmore"), "event": {}})
        .to_string()
}

/// First socket: events 1 and 2, then closed; later sockets: what follows `after`.
async fn events_ws(
    State(s): State<Arc<Stub>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    let after: u64 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let first = s.feeds.fetch_add(1, Ordering::SeqCst) == 0;
    ws.on_upgrade(move |mut ws: WebSocket| async move {
        let ids: Vec<u64> = if first { vec![1, 2] } else { vec![3, 4] };
        for id in ids.into_iter().filter(|i| *i > after) {
            if ws.send(Message::Text(event(id).into())).await.is_err() {
                return;
            }
        }
        if first {
            let _ = ws.send(Message::Close(None)).await;
        } else {
            // Keep the socket open as a quiet feed would.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
    })
}

async fn health(h: HeaderMap) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    axum::Json(json!({"status": "degraded", "lastEventId": 0, "controllers": ["a", "b"]}))
        .into_response()
}

/// A stub API on a free port, until the returned guard is dropped.
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(with_log_ws: bool) -> Server {
    let stub = Arc::new(Stub::default());
    let mut v1 = Router::new()
        .route("/health", get(health))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/log", get(log))
        .route("/events/ws", get(events_ws));
    if with_log_ws {
        v1 = v1.route("/orders/{id}/log/ws", get(log_ws));
    }
    let app = Router::new().nest("/api/v1", v1).with_state(stub);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let shutdown = async {
                let _ = stopped.await;
            };
            let limits = ordo_net::serve::ServeLimits::default();
            let _ = ordo_net::serve::serve_plain(listener, app, shutdown, limits).await;
        });
    });
    Server {
        url,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn ordo(dir: &std::path::Path, url: &str) -> assert_cmd::Command {
    let mut cmd = bare(dir);
    cmd.args(["--api", url, "--token", TOKEN]);
    cmd
}

#[test]
fn process_logs_follow_the_live_log_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(true);
    ordo(dir.path(), &s.url)
        .args(["logs", "--follow", "o1"])
        .assert()
        .success()
        .stdout("out\nerr\n\n[output truncated after 9 bytes]\n")
        .stderr("ordo: earlier output is gone\n");
}

#[test]
fn process_logs_follow_polls_without_the_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(false);
    // Polls 1..=4: the log grows a line per poll; the fourth sees the order finished.
    ordo(dir.path(), &s.url)
        .args(["logs", "--follow", "o1"])
        .assert()
        .success()
        .stdout("line 1\nline 2\nline 3\nline 4\n");
    ordo(dir.path(), &s.url)
        .args(["logs", "--follow", "o2"])
        .assert()
        .code(1)
        .stderr("ordo: order o2 does not exist\n");
    bare(dir.path())
        .args(["--api", &s.url, "--token", "bad", "logs", "-f", "o1"])
        .assert()
        .code(3);
}

#[test]
fn process_watch_resumes_after_a_closed_feed() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(false);
    let out = ordo(dir.path(), &s.url)
        .args(["watch", "--after", "0", "--count", "4"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [1, 2, 3, 4].map(|i| format!("1970-01-01T00:00:00.000Z [{i}] o1: event {i}\\nmore"))
    );
}

#[test]
fn process_cluster_status_exits_1_when_no_controller_is_active() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(false);
    let out = ordo(dir.path(), &s.url)
        .args(["cluster", "status"])
        .assert()
        .code(1);
    // No /cluster route: its /health makes the one row, and it names no active controller.
    let text = stdout(out.get_output());
    assert!(text.contains("no controller is active"), "{text}");
    assert!(text.contains(&s.url), "{text}");
    let out = ordo(dir.path(), &s.url)
        .args(["cluster", "status", "--json"])
        .assert()
        .code(1);
    let view: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(view["active"], serde_json::Value::Null, "{view}");
    assert_eq!(view["members"][0]["health"]["status"], "degraded", "{view}");
}
