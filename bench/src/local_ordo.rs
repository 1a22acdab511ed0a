//! A controller and agents of this build running as separate processes on 127.0.0.1, set up
//! with [`ordo_cli::local::setup`] in a directory of their own, and a client of the
//! controller API with an event follower.
//!
//! Each server is its own process so that its CPU time can be read from `/proc/<pid>/stat`
//! ([`crate::proc_cpu`]). Servers are stopped with SIGTERM (SIGKILL after 10 s) by
//! [`LocalOrdo::stop`], and killed when dropped.

use crate::proc_cpu::{self, CpuTimes};
use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use ordo_cli::local::{self, Local, Options};
use ordo_net::client::{HttpsClient, HttpsClientOptions};
pub use ordo_tests::process::{Binaries, Process};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Time a server gets to answer after it was started.
const START_TIMEOUT_MS: u64 = 30_000;
/// Largest event frame read from the event stream.
const EVENT_FRAME_BYTES_MAX: usize = ordo_controller::streamed::EVENT_BYTES_MAX_DEFAULT;

/// What to start.
pub struct StartOptions {
    /// Where the installation's directory is made (on disk, so that fsync means something).
    pub parent_dir: PathBuf,
    pub agents: Vec<String>,
    pub journal_fsync: bool,
    /// `RUST_LOG` of the servers.
    pub log_filter: String,
    /// Lines added to every agent configuration's `[limits]` (e.g. `processes_max = 4`).
    pub agent_limits: Vec<String>,
    pub binaries: Binaries,
}

/// A running controller with its agents.
pub struct LocalOrdo {
    pub dir: tempfile::TempDir,
    pub local: Local,
    pub controller: Process,
    pub agents: Vec<(String, Process)>,
    pub api: HttpsClient,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl LocalOrdo {
    /// Sets up a fresh installation, starts the controller, waits until its API answers, and
    /// starts the agents.
    pub async fn start(o: &StartOptions) -> anyhow::Result<LocalOrdo> {
        ordo_net::tls::install_crypto_provider();
        std::fs::create_dir_all(&o.parent_dir)
            .with_context(|| format!("creating {}", o.parent_dir.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("ordo-bench-")
            .tempdir_in(&o.parent_dir)
            .with_context(|| format!("creating a directory in {}", o.parent_dir.display()))?;
        let mut agents = Vec::new();
        for id in &o.agents {
            agents.push((
                id.clone(),
                format!("127.0.0.1:{}", local::free_port()?).parse()?,
            ));
        }
        let local = local::setup(
            dir.path(),
            &Options {
                cluster_id: "bench".into(),
                controller_listen: format!("127.0.0.1:{}", local::free_port()?).parse()?,
                agents,
                journal_fsync: o.journal_fsync,
                cockpit_listen: None,
            },
        )
        .context("setting up the local installation")?;
        let ca = ordo_net::tls::CaBundle::from_pem_file(&local.ca)?;
        let tls = ordo_net::tls::client_config(&ca, None)?;
        let api = HttpsClient::new(
            tls.clone(),
            HttpsClientOptions {
                connect_timeout_ms: 5000,
                request_timeout_ms: 120_000,
                body_bytes_max: 256 << 20,
                allow_plain_http: false,
            },
        )
        .with_bearer(&local.admin_token)?;
        let mut controller = Process::start(
            "controller",
            &o.binaries.controller,
            &local.controller_config,
            dir.path().join("controller.log"),
            &o.log_filter,
        )?;
        let health = format!("{}/api/v1/health", local.controller_url);
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        while api.get_json::<Json>(&health).await.is_err() {
            if !controller.is_running() {
                bail!("the controller ended:\n{}", controller.log_tail(4000));
            }
            if Instant::now() > deadline {
                bail!(
                    "the controller did not answer in {START_TIMEOUT_MS} ms:\n{}",
                    controller.log_tail(4000)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut agent_processes = Vec::new();
        for (id, config, _) in &local.agent_configs {
            add_limits(config, &o.agent_limits)?;
            let process = Process::start(
                &format!("agent {id}"),
                &o.binaries.agent,
                config,
                dir.path().join(format!("agent-{id}.log")),
                &o.log_filter,
            )?;
            agent_processes.push((id.clone(), process));
        }
        Ok(LocalOrdo {
            dir,
            local,
            controller,
            agents: agent_processes,
            api,
            tls,
        })
    }

    /// Stops the controller (SIGTERM) and starts it again on the same configuration and
    /// journal; returns once its API answers.
    pub async fn restart_controller(&mut self, binaries: &Binaries) -> anyhow::Result<()> {
        let log_filter = std::env::var("ORDO_LOG").unwrap_or_else(|_| "warn".into());
        self.controller.stop();
        self.controller = Process::start(
            "controller",
            &binaries.controller,
            &self.local.controller_config,
            self.dir.path().join("controller.log"),
            &log_filter,
        )?;
        let health = self.url("/health");
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        while self.api.get_json::<Json>(&health).await.is_err() {
            if !self.controller.is_running() {
                bail!("the controller ended:\n{}", self.controller.log_tail(4000));
            }
            if Instant::now() > deadline {
                bail!("the controller did not answer in {START_TIMEOUT_MS} ms after a restart");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Kills an agent with SIGKILL and starts it again at once on the same configuration and
    /// journal (its jobs are lost; the controller's link reconnects by itself).
    pub fn kill9_and_restart_agent(&mut self, id: &str, binaries: &Binaries) -> anyhow::Result<()> {
        let log_filter = std::env::var("ORDO_LOG").unwrap_or_else(|_| "warn".into());
        let config = self
            .local
            .agent_configs
            .iter()
            .find(|(a, _, _)| a == id)
            .map(|(_, config, _)| config.clone())
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        let (_, process) = self
            .agents
            .iter_mut()
            .find(|(a, _)| a == id)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        process.kill9();
        *process = Process::start(
            &format!("agent {id}"),
            &binaries.agent,
            &config,
            self.dir.path().join(format!("agent-{id}.log")),
            &log_filter,
        )?;
        Ok(())
    }

    /// The URL of an API path (`/orders` → `https://…/api/v1/orders`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.local.controller_url)
    }

    pub fn agent(&self, id: &str) -> anyhow::Result<&Process> {
        self.agents
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, p)| p)
            .ok_or_else(|| anyhow!("no agent {id}"))
    }

    /// An `agent:` inventory document for one of the agents.
    pub fn agent_yaml(&self, id: &str) -> anyhow::Result<String> {
        let url = self
            .local
            .agent_configs
            .iter()
            .find(|(a, ..)| a == id)
            .map(|(_, _, url)| url)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        Ok(format!("agent: {id}\nurl: {url}\n"))
    }

    /// Deploys YAML files `(name, text)`.
    pub async fn deploy(&self, files: &[(&str, String)]) -> anyhow::Result<Json> {
        let files: Vec<Json> = files
            .iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect();
        self.api
            .post_json(&self.url("/deploy"), &json!({ "files": files }))
            .await
            .map_err(|e| anyhow!("deploying: {e}"))
    }

    /// Adds orders in one request; answers once they are journaled.
    pub async fn add_orders(&self, orders: &[Json]) -> anyhow::Result<Json> {
        self.api
            .post_json(&self.url("/orders"), &json!({ "orders": orders }))
            .await
            .map_err(|e| anyhow!("adding {} orders: {e}", orders.len()))
    }

    /// Adds one order (the single-order body); answers once it is journaled.
    pub async fn add_order(&self, order: &Json) -> anyhow::Result<Json> {
        self.api
            .post_json(&self.url("/orders"), order)
            .await
            .map_err(|e| anyhow!("adding order {}: {e}", order["id"]))
    }

    /// Waits until the controller reports agent `id` connected.
    pub async fn wait_connected(&self, id: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let agents: Json = self
                .api
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
                bail!(
                    "agent {id} did not connect within {within:?}: {agents}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last event id that is durable.
    pub async fn last_event_id(&self) -> anyhow::Result<u64> {
        let health: Json = self
            .api
            .get_json(&self.url("/health"))
            .await
            .map_err(|e| anyhow!("health: {e}"))?;
        health["lastEventId"]
            .as_u64()
            .ok_or_else(|| anyhow!("health has no lastEventId: {health}"))
    }

    /// Follows the event stream (`/events/ws`) from after `after`.
    pub async fn follow(&self, after: u64) -> anyhow::Result<Follower> {
        let url = format!(
            "{}/api/v1/events/ws?after={after}",
            self.local.controller_url.replacen("https://", "wss://", 1)
        );
        let mut request = url.as_str().into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.local.admin_token).parse()?,
        );
        let ws = ordo_net::client::connect_ws_request(
            request,
            self.tls.clone(),
            EVENT_FRAME_BYTES_MAX,
            5000,
        )
        .await
        .map_err(|e| anyhow!("following the events: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(read_events(ws, tx));
        Ok(Follower { rx, task })
    }

    /// The end of every server's log.
    pub fn logs(&self) -> String {
        let mut out = format!("--- controller\n{}", self.controller.log_tail(3000));
        for (id, p) in &self.agents {
            out.push_str(&format!("\n--- agent {id}\n{}", p.log_tail(3000)));
        }
        out
    }

    /// Stops the agents, then the controller (SIGTERM); false when one needed SIGKILL.
    pub fn stop(&mut self) -> bool {
        let mut clean = true;
        for (_, p) in &mut self.agents {
            clean &= p.stop();
        }
        clean & self.controller.stop()
    }
}

/// Sets the `[limits]` keys of `lines` (`key = value`, TOML) in an agent configuration
/// written by [`local::setup`], through the agent's own configuration type.
fn add_limits(config: &Path, lines: &[String]) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let keys: toml::Table = toml::from_str(&lines.join("\n")).context("agent limits")?;
    let mut merged = Ok(());
    local::edit_agent_config(config, |c| {
        merged = (|| {
            let mut limits = toml::Table::try_from(&c.limits)?;
            limits.extend(keys);
            c.limits = limits.try_into()?;
            anyhow::Ok(())
        })();
    })?;
    merged.with_context(|| format!("agent limits {lines:?} in {}", config.display()))
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

/// A server's CPU times now.
pub fn cpu_of(p: &Process, ticks_per_s: f64) -> anyhow::Result<CpuTimes> {
    proc_cpu::of_process(p.pid(), ticks_per_s)
        .with_context(|| format!("CPU time of the {}", p.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn process_orders_run_to_their_end_and_cpu_is_read() -> anyhow::Result<()> {
        let parent = tempfile::tempdir()?;
        let mut ordo = LocalOrdo::start(&StartOptions {
            parent_dir: parent.path().to_owned(),
            agents: vec!["a1".into()],
            journal_fsync: false,
            log_filter: "warn".into(),
            agent_limits: vec!["processes_max = 2".into()],
            binaries: Binaries::of_this_build(false)?,
        })
        .await?;
        let config = ordo_agent::config::Config::load(&ordo.local.agent_configs[0].1)?;
        assert_eq!(config.limits.processes_max, 2);
        ordo.deploy(&[
            ("agent.yaml", ordo.agent_yaml("a1")?),
            (
                "w.yaml",
                "workflow: w\njobs:\n  j: { agent: a1, command: [\"true\"], parallelism: 2 }\nsteps:\n  - run: j\n".into(),
            ),
        ])
        .await?;
        ordo.wait_connected("a1", Duration::from_secs(30)).await?;
        let mut follower = ordo.follow(ordo.last_event_id().await?).await?;
        let ids = ["p-1", "p-2", "p-3"];
        let orders: Vec<Json> = ids
            .iter()
            .map(|id| json!({"id": id, "workflow": "w"}))
            .collect();
        ordo.add_orders(&orders).await?;
        let mut finished = std::collections::BTreeSet::new();
        let mut last_id = 0;
        for _ in 0..1000 {
            let e = follower.next(Duration::from_secs(30)).await?;
            assert!(e.id > last_id, "events in order");
            last_id = e.id;
            assert_ne!(e.kind, "Failed", "{e:?}");
            if e.kind == "Finished" {
                finished.insert(e.key.clone());
            }
            if finished.len() == ids.len() {
                break;
            }
        }
        assert_eq!(finished.len(), ids.len(), "{finished:?}\n{}", ordo.logs());
        let cpu = cpu_of(ordo.agent("a1")?, proc_cpu::ticks_per_s())?;
        assert!(cpu.own_ms() >= 0.0);
        assert!(ordo.stop(), "the servers stop on SIGTERM");
        Ok(())
    }

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
}
