//! The cockpit against two stand-in controllers of a pair (axum on TLS, each on its own
//! runtime, so that dropping the runtime closes every socket of it as a kill -9 would): which
//! controller commands go to, the retry after a 503 that names the active one, skipping one
//! that is gone, and the event stream going on at the other one at the last applied id.

mod common;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{ADMIN, Cockpit, OPERATOR, VIEWER, cockpit_config, json_of, text, until};
use ordo_api::frame::EventFrame;
use ordo_api::record::{Body, Stored};
use ordo_api::view::{ClusterHealth, ControllerHealth};
use ordo_net::certs::{IssueSpec, TestPki};
use ordo_net::tls::ClientAuth;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The journal both stand-ins serve from: event ids shaped as raft's (index << 16 | offset).
fn journal(n: u64) -> Vec<(u64, Stored)> {
    (1..=n)
        .map(|k| {
            let id = ((k + 1) << 16) | (k % 2);
            let stored = Stored {
                term: 1,
                ts: ordo_model::time::TimeMs(1_000 + k as i64),
                body: Body::AgentRunChanged {
                    agent: ordo_model::ids::AgentId::new("a").expect("an agent id"),
                    old: None,
                    new: u128::from(k),
                },
            };
            (id, stored)
        })
        .collect()
}

/// What a stand-in does and what it was asked.
struct Stub {
    url: String,
    node_id: u64,
    /// `active`, `passive`, ...
    role: Mutex<String>,
    /// What its 503 names as active (`None`: null).
    names_active: Mutex<Option<String>>,
    /// Events of the journal it has committed (a prefix).
    upto: watch::Sender<usize>,
    journal: Vec<(u64, Stored)>,
    /// Sends the event at `after` again before the later ones (a stream that overlaps).
    resend_last: bool,
    /// Commands it was sent, by path.
    commands: Mutex<HashMap<String, usize>>,
    /// The `after` of every event stream it was asked for.
    streams: Mutex<Vec<u64>>,
    health_reads: AtomicUsize,
}

impl Stub {
    fn commands(&self, path: &str) -> usize {
        self.commands
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
    fn set_role(&self, role: &str, names_active: Option<&str>) {
        *self.role.lock().unwrap() = role.to_owned();
        *self.names_active.lock().unwrap() = names_active.map(str::to_owned);
    }
    fn streams(&self) -> Vec<u64> {
        self.streams.lock().unwrap().clone()
    }
}

type S = Arc<Stub>;

async fn stub_health(AxState(s): AxState<S>) -> Response {
    s.health_reads.fetch_add(1, Ordering::Relaxed);
    let role = s.role.lock().unwrap().clone();
    let upto = *s.upto.borrow();
    let last = s.journal[..upto].last().map_or(0, |(id, _)| *id);
    axum::Json(ControllerHealth {
        status: "ok".into(),
        cluster_id: "main".into(),
        controller_id: format!("node-{}", s.node_id),
        role: role.clone(),
        last_event_id: last,
        orders: 0,
        event_bytes_max: 1 << 20,
        cluster: Some(ClusterHealth {
            node_id: s.node_id,
            voter: "controller".into(),
            term: 3,
            leader: None,
            active_api_url: (role != "active")
                .then(|| s.names_active.lock().unwrap().clone())
                .flatten(),
            commit: upto as u64,
            applied: upto as u64,
            committed_event_id: last,
            agents_coupled: 0,
            nodes: Vec::new(),
        }),
    })
    .into_response()
}

async fn state(AxState(_): AxState<S>) -> Response {
    let mut body = Vec::new();
    ordo_api::frame::write_state_snapshot(&mut body, 0, &ordo_api::state::State::default())
        .expect("a snapshot");
    ([("content-type", "application/json")], body).into_response()
}

async fn events_page() -> Response {
    ([("content-type", "application/x-ndjson")], "").into_response()
}

async fn agents() -> Response {
    axum::Json(json!({"agents": []})).into_response()
}

async fn command(AxState(s): AxState<S>, uri: axum::http::Uri) -> Response {
    *s.commands
        .lock()
        .unwrap()
        .entry(uri.path().to_owned())
        .or_default() += 1;
    if *s.role.lock().unwrap() != "active" {
        let active = s.names_active.lock().unwrap().clone();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": "this controller is not the active one",
                "active": active,
            })),
        )
            .into_response();
    }
    if uri.path().ends_with("/switchover") {
        return (
            StatusCode::ACCEPTED,
            axum::Json(json!({"from": s.node_id, "to": 9})),
        )
            .into_response();
    }
    axum::Json(json!({"results": [{"id": "o1", "added": true}], "lastEventId": 0})).into_response()
}

#[derive(serde::Deserialize)]
struct After {
    after: Option<u64>,
}

async fn events_ws(
    AxState(s): AxState<S>,
    Query(q): Query<After>,
    ws: WebSocketUpgrade,
) -> Response {
    let after = q.after.unwrap_or(0);
    s.streams.lock().unwrap().push(after);
    ws.on_upgrade(move |socket| stream(s, after, socket))
}

/// Sends every committed event after `after` (with `resend_last`, from `after` on), then each
/// one as it is committed, until the socket closes.
async fn stream(s: S, after: u64, mut socket: WebSocket) {
    let mut upto = s.upto.subscribe();
    let mut sent = 0;
    loop {
        let n = *upto.borrow_and_update();
        for (id, stored) in &s.journal[sent.min(n)..n] {
            let wanted = *id > after || (s.resend_last && *id == after);
            let frame = EventFrame::of(*id, stored).to_json().expect("a frame");
            if wanted && socket.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
        sent = n;
        // Reading answers the cockpit's pings, as a controller does.
        tokio::select! {
            changed = upto.changed() => if changed.is_err() { return },
            message = socket.recv() => match message {
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            },
        }
    }
}

/// A stand-in controller on 127.0.0.1, served from its own runtime until [`Running::kill`].
struct Running {
    stub: S,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(
        pki: &TestPki,
        node_id: u64,
        role: &str,
        journal: Vec<(u64, Stored)>,
        upto: usize,
        resend_last: bool,
    ) -> Running {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stub = Arc::new(Stub {
            url: format!("https://127.0.0.1:{port}"),
            node_id,
            role: Mutex::new(role.to_owned()),
            names_active: Mutex::new(None),
            upto: watch::Sender::new(upto),
            journal,
            resend_last,
            commands: Mutex::new(HashMap::new()),
            streams: Mutex::new(Vec::new()),
            health_reads: AtomicUsize::new(0),
        });
        let pair = pki
            .issue("controller", &IssueSpec::local(Vec::<String>::new()))
            .expect("a certificate");
        let tls =
            ordo_net::tls::server_config(&pair.to_material().expect("material"), ClientAuth::None)
                .expect("server TLS");
        let app = axum::Router::new()
            .route("/api/v1/health", get(stub_health))
            .route("/api/v1/state", get(state))
            .route("/api/v1/events", get(events_page))
            .route("/api/v1/events/ws", get(events_ws))
            .route("/api/v1/agents", get(agents))
            .route("/api/v1/orders", post(command))
            .route("/api/v1/cluster/switchover", post(command))
            .with_state(stub.clone());
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let limits = ordo_net::serve::ServeLimits {
                    handshake_timeout_ms: 5_000,
                    idle_timeout_ms: 60_000,
                    connections_max: 64,
                    unauthenticated_connections_max: 64,
                };
                let _ =
                    ordo_net::serve::serve_tls(listener, tls, app, std::future::pending(), limits)
                        .await;
            });
            // Until killed (or the test ends): then every task and socket of it goes at once.
            let _ = killed.recv();
            runtime.shutdown_background();
        });
        Running {
            stub,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Gone at once, as after a kill -9: its listener and every connection close.
    fn kill(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Setup {
    pki: TestPki,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    ordo_net::tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("a temp dir");
    let pki = TestPki::new("main").expect("a test CA");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).expect("write the CA");
    Setup { pki, ca, _dir: dir }
}

/// A cockpit of `a` and `b` that reads their roles every `cluster_poll_ms`.
async fn cockpit(s: &Setup, a: &Running, b: &Running, cluster_poll_ms: u64) -> Cockpit {
    let text = cockpit_config(&[a.stub.url.clone(), b.stub.url.clone()], &s.ca, "").replace(
        "[follow]\n",
        &format!("[follow]\ncluster_poll_ms = {cluster_poll_ms}\n"),
    );
    Cockpit::start_text(text, None).await
}

async fn health(c: &Cockpit) -> Value {
    json_of(&c.call(None, "GET", "/health", None).await)
}

/// Waits until the cockpit's `/health` satisfies `f`.
async fn health_until(c: &Cockpit, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    until(what, 20_000, || async {
        let h = health(c).await;
        f(&h).then_some(h)
    })
    .await
}

fn add_order() -> Value {
    json!({"id": "o1", "workflow": "w"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_to_the_active_controller_and_a_503_naming_another_is_retried_there_once() {
    let s = setup();
    let a = Running::start(&s.pki, 1, "passive", journal(3), 3, false);
    let b = Running::start(&s.pki, 2, "active", journal(3), 3, false);
    a.stub.set_role("passive", Some(&b.stub.url));
    // Roles are read once at start; after that only answers teach the cockpit.
    let c = cockpit(&s, &a, &b, 3_600_000).await;
    let h = health_until(&c, "the cockpit to know B is active", |h| {
        h["activeController"] == b.stub.url.as_str()
    })
    .await;
    let roles: Vec<&str> = h["controllers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["passive", "active"], "{h}");
    let overview = c.get("/api/v1/overview").await;
    assert_eq!(overview["activeController"], b.stub.url.as_str());

    // Straight to the active one.
    let r = c
        .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(add_order()))
        .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        (
            a.stub.commands("/api/v1/orders"),
            b.stub.commands("/api/v1/orders")
        ),
        (0, 1)
    );

    // The roles change; the cockpit learns it from B's 503 and sends the command to A once.
    a.stub.set_role("active", None);
    b.stub.set_role("passive", Some(&a.stub.url));
    let r = c
        .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(add_order()))
        .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        (
            a.stub.commands("/api/v1/orders"),
            b.stub.commands("/api/v1/orders")
        ),
        (1, 2)
    );
    assert_eq!(health(&c).await["activeController"], a.stub.url.as_str());
    // Now A comes first.
    let r = c
        .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(add_order()))
        .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        (
            a.stub.commands("/api/v1/orders"),
            b.stub.commands("/api/v1/orders")
        ),
        (2, 2)
    );

    // A 503 that names a controller outside the list is passed back, not followed.
    a.stub.set_role("passive", Some("https://127.0.0.9:1"));
    let r = c
        .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(add_order()))
        .await;
    assert_eq!(r.status, 503, "{}", text(&r));
    assert_eq!(json_of(&r)["active"], "https://127.0.0.9:1");
    assert_eq!(
        (
            a.stub.commands("/api/v1/orders"),
            b.stub.commands("/api/v1/orders")
        ),
        (3, 2)
    );
    // So is one that names none (an election), and one naming the controller itself.
    a.stub.set_role("passive", None);
    let r = c
        .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(add_order()))
        .await;
    assert_eq!(r.status, 503, "{}", text(&r));
    assert_eq!(json_of(&r)["active"], Value::Null);
    // Two 503s that name each other: one retry, no loop.
    a.stub.set_role("passive", Some(&b.stub.url));
    b.stub.set_role("passive", Some(&a.stub.url));
    let before = (
        a.stub.commands("/api/v1/orders"),
        b.stub.commands("/api/v1/orders"),
    );
    let r = c
        .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(add_order()))
        .await;
    assert_eq!(r.status, 503, "{}", text(&r));
    let after = (
        a.stub.commands("/api/v1/orders"),
        b.stub.commands("/api/v1/orders"),
    );
    assert_eq!(
        after.0 + after.1,
        before.0 + before.1 + 2,
        "{before:?} → {after:?}"
    );

    // Cluster operations need the admin role and go the same way.
    a.stub.set_role("active", None);
    b.stub.set_role("passive", Some(&a.stub.url));
    let r = c
        .call(
            Some(OPERATOR),
            "POST",
            "/api/v1/cluster/switchover",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", text(&r));
    let r = c
        .call(
            Some(ADMIN),
            "POST",
            "/api/v1/cluster/switchover",
            Some(json!({"to": 0})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = c
        .call(
            Some(ADMIN),
            "POST",
            "/api/v1/cluster/switchover",
            Some(json!({"to": 2, "x": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = c
        .call(
            Some(ADMIN),
            "POST",
            "/api/v1/cluster/switchover",
            Some(json!({"to": 2})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(json_of(&r)["from"], 1);
    let r = c
        .call(Some(ADMIN), "DELETE", "/api/v1/cluster/nodes/x", None)
        .await;
    assert_eq!(r.status, 400, "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_skip_a_controller_that_is_gone_and_the_cluster_route_shows_it() {
    let s = setup();
    let mut a = Running::start(&s.pki, 1, "active", journal(2), 2, false);
    let b = Running::start(&s.pki, 2, "passive", journal(2), 2, false);
    b.stub.set_role("passive", Some(&a.stub.url));
    let c = cockpit(&s, &a, &b, 3_600_000).await;
    health_until(&c, "the cockpit to know A is active", |h| {
        h["activeController"] == a.stub.url.as_str()
    })
    .await;
    a.kill();
    b.stub.set_role("active", None);
    let r = c
        .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(add_order()))
        .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(b.stub.commands("/api/v1/orders"), 1);
    assert_eq!(health(&c).await["activeController"], b.stub.url.as_str());

    let view = c.get("/api/v1/cluster").await;
    assert_eq!(view["active"], b.stub.url.as_str(), "{view}");
    let members = view["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{view}");
    assert_eq!(members[0]["url"], a.stub.url.as_str());
    assert!(members[0]["error"].is_string(), "{view}");
    assert!(members[0].get("health").is_none(), "{view}");
    assert_eq!(members[1]["health"]["role"], "active");
    assert_eq!(members[1]["health"]["cluster"]["nodeId"], 2);
    assert_eq!(members[1]["configured"], true);
    // A viewer may read it; no token may not.
    let r = c.call(None, "GET", "/api/v1/cluster", None).await;
    assert_eq!(r.status, 401);
    let r = c.call(Some(VIEWER), "GET", "/api/v1/cluster", None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_the_stream_goes_on_at_the_other_controller_at_the_last_applied_id() {
    let s = setup();
    let events = journal(8);
    let last_of_a = events[4].0;
    // A has committed five events; B, which sends the event at `after` again, has them all.
    let mut a = Running::start(&s.pki, 1, "active", events.clone(), 5, false);
    let b = Running::start(&s.pki, 2, "passive", events.clone(), 5, true);
    b.stub.set_role("passive", Some(&a.stub.url));
    let c = cockpit(&s, &a, &b, 100).await;
    let h = health_until(&c, "the view to hold A's five events", |h| {
        h["lastEventId"] == last_of_a
    })
    .await;
    assert_eq!(
        h["controller"],
        a.stub.url.as_str(),
        "it follows the active one: {h}"
    );
    assert!(b.stub.streams().is_empty(), "B's stream was not read");

    a.kill();
    b.stub.set_role("active", None);
    b.stub.upto.send_replace(8);
    let h = health_until(&c, "the view to hold all eight events", |h| {
        h["lastEventId"] == events[7].0
    })
    .await;
    assert_eq!(h["controller"], b.stub.url.as_str(), "{h}");
    assert_eq!(h["activeController"], b.stub.url.as_str(), "{h}");
    // B was asked for what came after the last event applied from A...
    assert_eq!(b.stub.streams(), [last_of_a]);
    // ...and the event it sent again was dropped, not applied twice.
    assert_eq!(h["duplicates"], 1, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_moves_to_the_controller_that_becomes_active() {
    let s = setup();
    let events = journal(6);
    let a = Running::start(&s.pki, 1, "active", events.clone(), 3, false);
    let b = Running::start(&s.pki, 2, "passive", events.clone(), 3, false);
    b.stub.set_role("passive", Some(&a.stub.url));
    let c = cockpit(&s, &a, &b, 100).await;
    health_until(&c, "the view to hold three events from A", |h| {
        h["lastEventId"] == events[2].0 && h["controller"] == a.stub.url.as_str()
    })
    .await;
    // A switchover: both stay up, B becomes the active one.
    a.stub.set_role("passive", Some(&b.stub.url));
    b.stub.set_role("active", None);
    let h = health_until(&c, "the cockpit to follow B", |h| {
        h["controller"] == b.stub.url.as_str() && h["following"] == true
    })
    .await;
    assert_eq!(h["activeController"], b.stub.url.as_str());
    b.stub.upto.send_replace(6);
    let h = health_until(&c, "the view to hold B's events", |h| {
        h["lastEventId"] == events[5].0
    })
    .await;
    assert_eq!(b.stub.streams(), [events[2].0]);
    assert_eq!(h["duplicates"], 0, "{h}");
    let roles: Vec<&str> = h["controllers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["passive", "active"], "{h}");
}
