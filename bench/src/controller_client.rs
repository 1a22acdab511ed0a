//! A client of one controller's API (HTTPS with a bearer token) and its event follower.
//!
//! [`ControllerClient::at`] gives a client of another controller with the same CA and token
//! (the nodes of a pair share both).

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use ordo_api::view::ControllerHealth;
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Largest event frame read from the event stream.
const EVENT_FRAME_BYTES_MAX: usize = ordo_controller::streamed::EVENT_BYTES_MAX_DEFAULT;
/// Time for the WebSocket of the event stream to open.
const FOLLOW_CONNECT_TIMEOUT_MS: u64 = 5000;

/// The API of one controller.
#[derive(Clone)]
pub struct ControllerClient {
    pub http: HttpsClient,
    /// `https://host:port`.
    pub base_url: String,
    token: String,
    tls: Arc<rustls::ClientConfig>,
}

impl ControllerClient {
    /// A client trusting the CA in `ca` (PEM), sending `token`.
    pub fn new(
        ca: &Path,
        base_url: &str,
        token: &str,
        options: HttpsClientOptions,
    ) -> anyhow::Result<ControllerClient> {
        ordo_net::tls::install_crypto_provider();
        let ca = ordo_net::tls::CaBundle::from_pem_file(ca)?;
        let tls = ordo_net::tls::client_config(&ca, None)?;
        let http = HttpsClient::new(tls.clone(), options).with_bearer(token)?;
        Ok(ControllerClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            tls,
        })
    }

    /// The same credentials towards the controller at `base_url`.
    pub fn at(&self, base_url: &str) -> ControllerClient {
        ControllerClient {
            base_url: base_url.trim_end_matches('/').to_owned(),
            ..self.clone()
        }
    }

    /// The URL of an API path (`/orders` → `https://…/api/v1/orders`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base_url)
    }

    /// `GET /health`, typed.
    pub async fn health(&self) -> anyhow::Result<ControllerHealth> {
        self.http
            .get_json(&self.url("/health"))
            .await
            .map_err(|e| anyhow!("health of {}: {e}", self.base_url))
    }

    /// Deploys YAML files `(name, text)`.
    pub async fn deploy(&self, files: &[(&str, String)]) -> anyhow::Result<Json> {
        let files: Vec<Json> = files
            .iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect();
        self.http
            .post_json(&self.url("/deploy"), &json!({ "files": files }))
            .await
            .map_err(|e| anyhow!("deploying: {e}"))
    }

    /// Adds orders in one request; answers once they are journaled.
    pub async fn add_orders(&self, orders: &[Json]) -> anyhow::Result<Json> {
        self.http
            .post_json(&self.url("/orders"), &json!({ "orders": orders }))
            .await
            .map_err(|e| anyhow!("adding {} orders: {e}", orders.len()))
    }

    /// Adds one order (the single-order body); answers once it is journaled.
    pub async fn add_order(&self, order: &Json) -> anyhow::Result<Json> {
        self.http
            .post_json(&self.url("/orders"), order)
            .await
            .map_err(|e| anyhow!("adding order {}: {e}", order["id"]))
    }

    /// Waits until the controller reports agent `id` connected (`GET /agents`).
    pub async fn wait_connected(&self, id: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let agents: Json = self
                .http
                .get_json(&self.url("/agents"))
                .await
                .map_err(|e| anyhow!("listing agents: {e}"))?;
            let connected = agents["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["id"] == id && a["connected"] == true);
            if connected {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("agent {id} did not connect within {within:?}: {agents}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last event id that is durable.
    pub async fn last_event_id(&self) -> anyhow::Result<u64> {
        Ok(self.health().await?.last_event_id)
    }

    /// Follows the event stream (`/events/ws`) from after `after`.
    pub async fn follow(&self, after: u64) -> anyhow::Result<Follower> {
        let url = format!(
            "{}/api/v1/events/ws?after={after}",
            self.base_url.replacen("https://", "wss://", 1)
        );
        let mut request = url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        let ws = ordo_net::client::connect_ws_request(
            request,
            self.tls.clone(),
            EVENT_FRAME_BYTES_MAX,
            FOLLOW_CONNECT_TIMEOUT_MS,
        )
        .await
        .map_err(|e| anyhow!("following the events of {}: {e}", self.base_url))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(read_events(ws, tx));
        Ok(Follower { rx, task })
    }
}

/// One event of the stream, as the follower saw it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: u64,
    /// When the controller made it (ms since the epoch).
    pub ts_ms: i64,
    /// The order id, for order events.
    pub key: String,
    /// The event's type (`Added`, `ProcessingStarted`, `Finished`, …).
    pub kind: String,
    /// When this program received it.
    pub seen: Instant,
}

/// Events of the controller's stream, in order.
pub struct Follower {
    rx: mpsc::UnboundedReceiver<anyhow::Result<Event>>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// The next event; an error when none comes `within`, or the stream failed.
    pub async fn next(&mut self, within: Duration) -> anyhow::Result<Event> {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => bail!("the event stream ended"),
            Err(_) => bail!("no event within {within:?}"),
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_events(
    mut ws: ordo_net::client::WsStream,
    tx: mpsc::UnboundedSender<anyhow::Result<Event>>,
) {
    while let Some(message) = ws.next().await {
        let event = match message {
            Ok(Message::Text(text)) => parse_event(&text, Instant::now()),
            Ok(Message::Close(_)) => Err(anyhow!("the controller closed the event stream")),
            Ok(_) => continue,
            Err(e) => Err(anyhow!("reading the event stream: {e}")),
        };
        let failed = event.is_err();
        if tx.send(event).is_err() || failed {
            return;
        }
    }
    let _ = tx.send(Err(anyhow!("the event stream ended")));
}

/// One event line of the stream (`{"eventId","ts","key","type",…}`, or `{"error"}`).
pub fn parse_event(text: &str, seen: Instant) -> anyhow::Result<Event> {
    let v: Json = serde_json::from_str(text).context("an event that is not JSON")?;
    if let Some(error) = v.get("error") {
        bail!("the event stream failed: {error}");
    }
    let field = |name: &str| {
        v.get(name)
            .ok_or_else(|| anyhow!("event without {name}: {text}"))
    };
    Ok(Event {
        id: field("eventId")?
            .as_u64()
            .ok_or_else(|| anyhow!("bad eventId: {text}"))?,
        ts_ms: field("ts")?
            .as_i64()
            .ok_or_else(|| anyhow!("bad ts: {text}"))?,
        key: field("key")?.as_str().unwrap_or_default().to_owned(),
        kind: field("type")?.as_str().unwrap_or_default().to_owned(),
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stream_events_and_errors() {
        let now = Instant::now();
        let e = parse_event(
            r#"{"eventId":65537,"ts":1700000000123,"key":"o-1","type":"Finished","text":"x","event":{}}"#,
            now,
        )
        .unwrap();
        assert_eq!((e.id, e.ts_ms), (65537, 1_700_000_000_123));
        assert_eq!((e.key.as_str(), e.kind.as_str()), ("o-1", "Finished"));
        assert!(parse_event(r#"{"error":"gone"}"#, now).is_err());
        assert!(parse_event(r#"{"eventId":1}"#, now).is_err());
        assert!(parse_event("not json", now).is_err());
    }

    #[test]
    fn a_client_of_another_controller_keeps_the_credentials() {
        let pki = tempfile::tempdir().unwrap();
        let ca = ordo_net::certs::init_ca(pki.path(), "bench").unwrap();
        let a = ControllerClient::new(
            &ca.cert_path,
            "https://127.0.0.1:1/",
            "t0ken",
            HttpsClientOptions::default(),
        )
        .unwrap();
        assert_eq!(a.url("/health"), "https://127.0.0.1:1/api/v1/health");
        let b = a.at("https://127.0.0.1:2");
        assert_eq!(b.url("/orders"), "https://127.0.0.1:2/api/v1/orders");
        assert_eq!(b.token, a.token);
    }
}
