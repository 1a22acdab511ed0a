//! Cockpit benchmark: order-list queries with 100,000 orders in the view, event lag under a
//! steady stream of new orders, and memory per order.
//!
//! `cargo run --release -p ordo-bench --bin cockpit`; prints one JSON object per line:
//! - `cockpit_fold`: building the view of `ORDERS` synthetic orders from their events (made
//!   with the model's own `command` and `step`, no processes): events/s, and the heap the
//!   controller's state and the cockpit's view hold per order (a counting allocator);
//! - `cockpit_list`: `GET /api/v1/orders` pages of 100 (JSON included), for several filters,
//!   in-process (one thread) and over HTTP (`CLIENTS` connections to a cockpit serving that
//!   view): queries/s and p50/p99 latency;
//! - `cockpit_lag`: a real controller (journal fsync on) and a cockpit following it while
//!   orders that stop at a prompt are added at `RATE` orders/s for `SECONDS` s: for every
//!   event, the time from the controller's event time (set just before it is journaled) to its
//!   application in the cockpit's view; p50/p99/max.
//!
//! Env: `ORDERS` (default 100000), `RATE` (default 1000), `SECONDS` (default 10), `CLIENTS`
//! (default 4), `BENCH_DIR` (parent of the controller's data; default /var/tmp, on disk).

use anyhow::{Context, Result, bail};
use ordo_api::record::{Body, Stored};
use ordo_api::state::State;
use ordo_cockpit_api::api::token_hash;
use ordo_cockpit_api::view::{OrderQuery, View};
use ordo_model::ids::{OrderId, WorkflowName};
use ordo_model::order::{Command, KeyedEvent, affected, command, deploy, step};
use ordo_model::time::TimeMs;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Counts the bytes live on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn env(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn round(v: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (v * s).round() / s
}

const INVENTORY: &str = r#"
workflow: ask
steps:
  - prompt: "ok?"
---
workflow: locked
steps:
  - lock: gate
    do:
      - prompt: "release?"
---
lock: gate
limit: 1
---
workflow: job
jobs:
  j: { agent: a, script: "true" }
steps:
  - run: j
---
agent: a
url: wss://127.0.0.1:9
"#;

/// Folds events into a controller state the way the controller makes them, and keeps them.
struct Folder {
    state: State,
    events: Vec<(u64, Stored)>,
    queue: VecDeque<OrderId>,
    index: u64,
    t0: i64,
}

impl Folder {
    fn push(&mut self, e: KeyedEvent) -> Result<()> {
        self.queue.extend(affected(&self.state.world, &e));
        self.index += 1;
        let id = self.index << 16;
        let stored = Stored {
            term: 1,
            ts: TimeMs(self.t0 + self.index as i64),
            body: Body::Event(e),
        };
        self.state
            .apply(id, &stored)
            .map_err(|s| anyhow::anyhow!("event {id}: {}", s.why))?;
        self.events.push((id, stored));
        Ok(())
    }

    /// Steps the affected orders until nothing moves.
    fn settle(&mut self) -> Result<()> {
        let mut steps = 0;
        while let Some(id) = self.queue.pop_front() {
            steps += 1;
            if steps > 1000 {
                bail!("no fixpoint after 1000 steps");
            }
            for e in step(&self.state.world, &id, TimeMs(self.t0)) {
                self.push(e)?;
            }
        }
        Ok(())
    }

    fn command(&mut self, c: Command) -> Result<()> {
        let accepted = command(&self.state.world, c, TimeMs(self.t0), &Default::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for e in accepted.events {
            self.push(e)?;
        }
        self.settle()
    }
}

/// Makes the events of `n` orders the way the controller would: 60 % stop at a prompt (one
/// in six of those is answered and finishes), 30 % queue for a lock, 10 % wait to be attached
/// to an agent.
fn synthetic_events(n: usize) -> Result<Vec<(u64, Stored)>> {
    let inv = parse_inventory(
        &[SourceFile::new("bench.yaml", INVENTORY)],
        &Limits::default(),
    )
    .map_err(|d| anyhow::anyhow!("inventory: {d:?}"))?;
    let mut f = Folder {
        state: State::new(),
        events: Vec::new(),
        queue: VecDeque::new(),
        index: 0,
        t0: 1_800_000_000_000,
    };
    for e in deploy(&f.state.world, &inv) {
        f.push(e)?;
    }
    f.settle()?;
    for i in 0..n {
        let workflow = match i % 10 {
            0..=5 => "ask",
            6..=8 => "locked",
            _ => "job",
        };
        let id = OrderId::new(format!("order-{i:07}"))?;
        f.command(Command::Add {
            id: id.clone(),
            workflow: WorkflowName::new(workflow)?,
            vars: Default::default(),
            scheduled_for: None,
        })?;
        if i % 10 == 0 {
            f.command(Command::Answer {
                id,
                vars: Default::default(),
            })?;
        }
    }
    Ok(f.events)
}

fn list_json(view: &View, q: &OrderQuery) -> usize {
    let (page, next) = view.list(q, 100_000);
    let orders: Vec<_> = page.into_iter().map(|o| view.order_row(o)).collect();
    serde_json::to_vec(&ordo_cockpit_api::api::read::OrderList { orders, next })
        .map(|b| b.len())
        .unwrap_or(0)
}

fn queries() -> Vec<(&'static str, OrderQuery, String)> {
    let q = |state: Option<&str>, workflow: Option<&str>, after: Option<&str>| OrderQuery {
        state: state.map(str::to_owned),
        workflow: workflow.map(str::to_owned),
        after: after.map(str::to_owned),
        limit: 100,
        ..Default::default()
    };
    vec![
        ("first_page", q(None, None, None), "limit=100".to_owned()),
        (
            "middle_page",
            q(None, None, Some("order-0050000")),
            "limit=100&after=order-0050000".to_owned(),
        ),
        (
            "state_prompting",
            q(Some("prompting"), None, Some("order-0050000")),
            "limit=100&state=prompting&after=order-0050000".to_owned(),
        ),
        (
            "state_failed_none",
            q(Some("failed"), None, None),
            "limit=100&state=failed".to_owned(),
        ),
        (
            "workflow_job",
            q(None, Some("job"), None),
            "limit=100&workflow=job".to_owned(),
        ),
    ]
}

fn bench_dir() -> PathBuf {
    std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

struct Certs {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ca: PathBuf,
}

fn certs() -> Result<Certs> {
    let dir = tempfile::Builder::new()
        .prefix("ordo-bench-cockpit-")
        .tempdir_in(bench_dir())?;
    let root = dir.path().to_owned();
    let pki = ordo_net::certs::TestPki::new("main")?;
    let spec = ordo_net::certs::IssueSpec::local(["ordo:controller:main"]);
    let server = pki.issue("controller", &spec)?;
    let ca = root.join("ca.pem");
    std::fs::write(&ca, pki.ca_pem())?;
    for (name, text) in [
        ("controller.pem", &server.cert_pem),
        ("controller.key", &server.key_pem),
    ] {
        std::fs::write(root.join(name), text)?;
    }
    Ok(Certs {
        _dir: dir,
        root,
        ca,
    })
}

fn cockpit_config(
    controller: &str,
    ca: &Path,
    buffered: usize,
) -> Result<ordo_cockpit_api::config::Config> {
    let text = format!(
        r#"
controllers = ["{controller}"]
controller_ca = {ca:?}
controller_token = "bench-service"
listen = "127.0.0.1:0"
[[users]]
name = "bench"
sha256 = "{viewer}"
role = "viewer"
[limits]
stream_events_buffered_max = {buffered}
"#,
        ca = ca.display().to_string(),
        viewer = token_hash("bench-viewer"),
    );
    ordo_cockpit_api::config::Config::parse(&text, Path::new("/")).map_err(|e| anyhow::anyhow!(e))
}

async fn http_list(view: View, clients: usize, ca: &Path) -> Result<()> {
    let cockpit = ordo_cockpit_api::Cockpit::new(cockpit_config("https://127.0.0.1:9", ca, 16)?)?;
    *cockpit
        .shared
        .view
        .write()
        .unwrap_or_else(|e| e.into_inner()) = view;
    let router = ordo_cockpit_api::api::router(cockpit.app());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ordo_net::serve::serve_plain(
        listener,
        router,
        async {
            let _ = stop_rx.await;
        },
        Default::default(),
    ));
    let tls = ordo_net::tls::client_config(&ordo_net::tls::CaBundle::from_pem_file(ca)?, None)?;
    let http = HttpsClient::new(
        tls,
        HttpsClientOptions {
            allow_plain_http: true,
            ..Default::default()
        },
    )
    .with_bearer("bench-viewer")?;
    for (name, _, query) in queries() {
        let url = format!("http://127.0.0.1:{port}/api/v1/orders?{query}");
        let first = http.request("GET".parse()?, &url, None).await?;
        if !first.status.is_success() {
            bail!("{url}: {}", first.status);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let http = http.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = http.request("GET".parse()?, &url, None).await;
                    if !matches!(&r, Ok(r) if r.status.is_success()) {
                        return Err(anyhow::anyhow!("{url}: {r:?}"));
                    }
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(lat)
            }));
        }
        let started = Instant::now();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let secs = started.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        println!(
            "{}",
            json!({
                "name": "cockpit_list", "via": "http", "query": name, "clients": clients,
                "orders_in_view": ORDERS_IN_VIEW.load(Ordering::Relaxed),
                "queries_per_s": round(all.len() as f64 / secs, 0),
                "p50_ms": round(quantile(&all, 0.5), 3), "p99_ms": round(quantile(&all, 0.99), 3),
                "body_bytes": first.body.len(),
            })
        );
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

static ORDERS_IN_VIEW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn lag(rate: u64, seconds: u64, certs: &Certs) -> Result<()> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let data = certs.root.join("controller-data");
    let text = format!(
        r#"
controller_id = "primary"
cluster_id = "main"
data_dir = {data:?}
listen = "127.0.0.1:{port}"
[tls]
certificate = "controller.pem"
key = "controller.key"
client_certificate = "controller.pem"
client_key = "controller.key"
ca = "ca.pem"
[[tokens]]
name = "cockpit"
sha256 = "{service}"
role = "admin"
"#,
        data = data.display().to_string(),
        service = token_hash("bench-service"),
    );
    let config = ordo_controller::config::Config::parse(&text, &certs.root)
        .map_err(|e| anyhow::anyhow!(e))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(ordo_controller::run(config, async {
        let _ = stop_rx.await;
    }));
    let url = format!("https://127.0.0.1:{port}");
    let tls =
        ordo_net::tls::client_config(&ordo_net::tls::CaBundle::from_pem_file(&certs.ca)?, None)?;
    let http = HttpsClient::new(tls, HttpsClientOptions::default()).with_bearer("bench-service")?;
    let mut up = false;
    for _ in 0..200 {
        if http
            .get_json::<serde_json::Value>(&format!("{url}/api/v1/health"))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        bail!("the controller did not start");
    }
    let _: serde_json::Value = http
        .post_json(
            &format!("{url}/api/v1/deploy"),
            &json!({"files": [{"name": "bench.yaml", "text": INVENTORY}]}),
        )
        .await?;
    let cockpit = ordo_cockpit_api::Cockpit::new(cockpit_config(&url, &certs.ca, 1 << 20)?)?;
    let follower = tokio::spawn(cockpit.follow());
    let shared = cockpit.shared.clone();
    for _ in 0..200 {
        if shared.status().following {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !shared.status().following {
        bail!("the cockpit does not follow");
    }
    // Every applied event's lag, from the live broadcast.
    let mut live = shared.live.subscribe();
    let collector = tokio::spawn(async move {
        let mut lags = Vec::new();
        loop {
            match live.recv().await {
                Ok(e) => {
                    let now = ordo_cockpit_api::follow::now_ms();
                    lags.push((now - e.stored.ts.0) as f64);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("lag collector missed {n} events");
                }
                Err(_) => return lags,
            }
        }
    });
    // Batches every 20 ms.
    let per_batch = (rate / 50).max(1) as usize;
    let batches = seconds * 50;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n = 0usize;
    let mut in_flight = Vec::new();
    for b in 0..batches {
        tick.tick().await;
        let orders: Vec<_> = (0..per_batch)
            .map(|i| json!({"id": format!("lag-{b:06}-{i:04}"), "workflow": if i % 4 == 0 { "locked" } else { "ask" }}))
            .collect();
        n += orders.len();
        let http = http.clone();
        let url = format!("{url}/api/v1/orders");
        in_flight.push(tokio::spawn(async move {
            http.post_json::<_, serde_json::Value>(&url, &json!({"orders": orders}))
                .await
        }));
    }
    for t in in_flight {
        t.await??;
    }
    let offered_secs = started.elapsed().as_secs_f64();
    // Let the cockpit catch up with the last event.
    let target = http
        .get_json::<serde_json::Value>(&format!("{url}/api/v1/health"))
        .await?["lastEventId"]
        .as_u64()
        .unwrap_or(0);
    for _ in 0..400 {
        if shared.read().last_event_id() >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let caught_up = shared.read().last_event_id() >= target;
    let orders_in_view = shared.read().state.world.orders.len();
    follower.abort();
    let _ = follower.await;
    drop(cockpit);
    drop(shared);
    let mut lags = tokio::time::timeout(Duration::from_secs(10), collector).await??;
    lags.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "name": "cockpit_lag", "orders": n, "orders_per_s": round(n as f64 / offered_secs, 0),
            "events": lags.len(), "caught_up": caught_up, "orders_in_view": orders_in_view,
            "lag_p50_ms": quantile(&lags, 0.5), "lag_p99_ms": quantile(&lags, 0.99),
            "lag_max_ms": lags.last().copied().unwrap_or(f64::NAN),
            "journal_fsync": true,
        })
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), controller).await;
    Ok(())
}

fn main() -> Result<()> {
    let orders = env("ORDERS", 100_000)? as usize;
    let rate = env("RATE", 1000)?;
    let seconds = env("SECONDS", 10)?;
    let clients = env("CLIENTS", 4)? as usize;
    ordo_net::tls::install_crypto_provider();

    // Fold.
    let t = Instant::now();
    let events = synthetic_events(orders)?;
    let make_s = t.elapsed().as_secs_f64();
    let before_state = live();
    let mut state = State::new();
    for (id, e) in &events {
        let _ = state.apply(*id, e);
    }
    let state_bytes = live() - before_state;
    drop(state);
    let before_view = live();
    let t = Instant::now();
    let mut view = View::new(50);
    for (id, e) in &events {
        let _ = view.apply(*id, e);
    }
    let fold_s = t.elapsed().as_secs_f64();
    let view_bytes = live() - before_view;
    let counts = view.counts();
    println!(
        "{}",
        json!({
            "name": "cockpit_fold", "orders": orders, "events": events.len(),
            "make_events_s": round(make_s, 2), "fold_s": round(fold_s, 3),
            "events_per_s": round(events.len() as f64 / fold_s, 0),
            "state_bytes_per_order": round(state_bytes as f64 / orders as f64, 0),
            "view_bytes_per_order": round(view_bytes as f64 / orders as f64, 0),
            "history_events_per_order_max": 50,
            "counts": counts,
        })
    );
    drop(events);
    ORDERS_IN_VIEW.store(view.state.world.orders.len(), Ordering::Relaxed);

    // Queries in-process.
    for (name, q, _) in queries() {
        let mut lat = Vec::new();
        let mut bytes = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let t = Instant::now();
            bytes = list_json(&view, &q);
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let total: f64 = lat.iter().sum();
        lat.sort_by(f64::total_cmp);
        println!(
            "{}",
            json!({
                "name": "cockpit_list", "via": "in_process", "query": name, "clients": 1,
                "orders_in_view": view.state.world.orders.len(),
                "queries_per_s": round(lat.len() as f64 / (total / 1000.0), 0),
                "p50_ms": round(quantile(&lat, 0.5), 3), "p99_ms": round(quantile(&lat, 0.99), 3),
                "body_bytes": bytes,
            })
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let certs = certs()?;
    runtime.block_on(http_list(view, clients, &certs.ca))?;
    runtime.block_on(lag(rate, seconds, &certs))?;
    Ok(())
}
