//! The controller under clients that hold what it has: silent connections, and readers of the
//! whole state that do not read.

use anyhow::{Result, ensure};
use ordo_tests::Cluster;
use ordo_tests::raw::RawConnection;
use serde_json::{Value as Json, json};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const PROMPT_WORKFLOW: &str = "workflow: p\nsteps:\n  - prompt: \"ok?\"\n";

/// Most orders one request adds (the controller's default `orders_per_request_max`).
const ADD_BATCH_MAX: usize = 10_000;

async fn add_waiting_orders(c: &Cluster, prefix: &str, n: usize) -> Result<()> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in ids.chunks(ADD_BATCH_MAX) {
        let orders: Vec<Json> = chunk
            .iter()
            .map(|id| json!({"id": id, "workflow": "p"}))
            .collect();
        c.add_orders(&orders).await?;
    }
    Ok(())
}

/// The size a TCP send buffer may grow to here (`net.ipv4.tcp_wmem`), in bytes.
fn send_buffer_bytes_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

#[tokio::test]
async fn process_whole_state_answers_are_streamed_and_bounded() -> Result<()> {
    let mut c = Cluster::new(&[])?;
    c.edit_controller(|c| c.limits.state_reads_max = 2)?;
    c.start_controller().await?;
    c.deploy(&[("p.yaml", PROMPT_WORKFLOW.to_owned())]).await?;

    // The state must be larger than everything that can buffer an answer between the
    // controller and a reader that stops reading (send buffer, receive buffer, chunks), so
    // that such a reader keeps its answer unfinished.
    let enough = 2 * send_buffer_bytes_max() + (4 << 20);
    let mut orders = 2000;
    add_waiting_orders(&c, "first", orders).await?;
    let first = c
        .api
        .request(axum::http::Method::GET, &c.url("/state"), None)
        .await?;
    ensure!(first.status.as_u16() == 200, "{first:?}");
    let per_order = first.body.len().div_ceil(orders).max(1);
    let more = (enough / per_order + 1).saturating_sub(orders);
    add_waiting_orders(&c, "more", more).await?;
    orders += more;

    // Two readers that take the head and stop reading hold both places.
    let addr = c.controller_addr()?;
    let tls = c.client_tls()?;
    let token = c.local.viewer_token.clone();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut reader = RawConnection::connect(addr, tls.clone(), Some(4096)).await?;
        reader.send_get("/api/v1/state", Some(&token)).await?;
        let head = reader.read_head().await?;
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(head.header("content-type"), Some("application/json"));
        held.push(reader);
    }
    // A third whole-state answer is refused at once, /snapshot too; other reads go on.
    for path in ["/state", "/snapshot"] {
        let busy = c
            .viewer()
            .request(axum::http::Method::GET, &c.url(path), None)
            .await?;
        assert_eq!(busy.status.as_u16(), 503, "{path}: {busy:?}");
        assert_eq!(
            busy.headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let body: Json = serde_json::from_slice(&busy.body)?;
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("state_reads_max"))
        );
    }
    let health: Json = c.viewer().get_json(&c.url("/health")).await?;
    assert_eq!(health["orders"].as_u64(), Some(orders as u64));

    // Readers that go away give their places back; a whole answer is the state at its id.
    drop(held);
    let mut answer = None;
    for _ in 0..200 {
        let r = c
            .viewer()
            .request(axum::http::Method::GET, &c.url("/state"), None)
            .await?;
        match r.status.as_u16() {
            200 => {
                answer = Some(r);
                break;
            }
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => anyhow::bail!("GET /state answered {other}: {r:?}"),
        }
    }
    let answer = answer.expect("the places are free again once the readers are gone");
    let state: Json = serde_json::from_slice(&answer.body)?;
    assert!(state["eventId"].as_u64().is_some_and(|id| id > 0));
    let held_orders = state["state"]["world"]["orders"]
        .as_object()
        .map(|o| o.len());
    assert_eq!(held_orders, Some(orders));
    let snapshot: Json = c.viewer().get_json(&c.url("/snapshot")).await?;
    assert_eq!(snapshot["eventId"], state["eventId"]);
    assert_eq!(snapshot["orders"].as_array().map(Vec::len), Some(orders));
    Ok(())
}

#[tokio::test]
async fn process_silent_connections_do_not_crowd_out_authenticated_clients() -> Result<()> {
    let mut c = Cluster::new(&[])?;
    // Timeouts far beyond the test: only the connection limits make room.
    c.edit_controller(|c| {
        c.limits.handshake_timeout_ms = 600_000;
        c.limits.idle_timeout_ms = 600_000;
        c.limits.connections_max = 16;
        c.limits.unauthenticated_connections_max = 8;
    })?;
    c.start_controller().await?;
    let addr = c.controller_addr()?;
    let tls = c.client_tls()?;
    let token = c.local.viewer_token.clone();

    // A connection that authenticated before the flood.
    let mut kept = RawConnection::connect(addr, tls.clone(), None).await?;
    let (head, _) = kept.get("/api/v1/health", Some(&token)).await?;
    assert_eq!(head.status, 200);

    // Three times the limit of connections that send nothing, plain TCP and TLS.
    let silent_n = 48;
    let mut closed = JoinSet::new();
    for i in 0..silent_n {
        let tcp = TcpStream::connect(addr).await?;
        if i % 2 == 0 {
            closed.spawn(async move {
                let mut tcp = tcp;
                let mut buf = [0u8; 64];
                // Bounded: each read ends at the close, or takes bytes that never come.
                for _ in 0..1000 {
                    if matches!(tcp.read(&mut buf).await, Ok(0) | Err(_)) {
                        return;
                    }
                }
            });
        } else {
            let name = rustls::pki_types::ServerName::try_from("localhost")?;
            let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await?;
            closed.spawn(async move {
                let mut buf = [0u8; 64];
                for _ in 0..1000 {
                    if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                        return;
                    }
                }
            });
        }
    }

    // A new client with a token is answered, and so is the connection from before.
    let fresh =
        ordo_net::client::HttpsClient::new(tls.clone(), Default::default()).with_bearer(&token)?;
    let health: Json = fresh.get_json(&c.url("/health")).await?;
    assert_eq!(health["status"], "ok");
    let (head, _) = kept.get("/api/v1/health", Some(&token)).await?;
    assert_eq!(head.status, 200);

    // The silent connections beyond the unauthenticated share were closed.
    for _ in 0..silent_n - 8 {
        closed
            .join_next()
            .await
            .expect("a silent connection left")?;
    }
    closed.abort_all();
    Ok(())
}
