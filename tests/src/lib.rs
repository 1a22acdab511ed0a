//! Test harness for Ordo: real server processes on 127.0.0.1, started from the binaries of the
//! same build, with a local installation ([`ordo_cli::local`]) in a temporary directory.
//!
//! [`Cluster`] starts a controller and agents, kills them with SIGKILL or stops them with
//! SIGTERM, and talks to the controller's HTTPS API; [`pair::Pair`] does the same for a
//! replicated pair (two controllers and the watch, their raft traffic through fault proxies,
//! [`proxy`]); [`inproc::InProcess`] runs a controller and agents inside the test process,
//! from their library entry points. Every wait is bounded in time.

pub mod docker;
pub mod history;
pub mod inproc;
pub mod pair;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod tmpfs;

use anyhow::{Result, anyhow, bail};
use ordo_cli::local::{self, Local, Options};
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::time::{Duration, Instant};

pub use process::{Binaries, Process as Server};

/// HTTPS clients of a local installation's controllers: without a token, with the admin
/// token, with the viewer token.
#[derive(Clone, Debug)]
pub struct Clients {
    pub plain: HttpsClient,
    pub admin: HttpsClient,
    pub viewer: HttpsClient,
}

impl Clients {
    /// Clients that trust the installation's CA; a request (body included) may take
    /// `request_timeout_ms`.
    pub fn new(local: &Local, request_timeout_ms: u64) -> Result<Clients> {
        let ca = ordo_net::tls::CaBundle::from_pem_file(&local.ca)?;
        let tls = ordo_net::tls::client_config(&ca, None)?;
        let options = HttpsClientOptions {
            connect_timeout_ms: 5000,
            request_timeout_ms,
            // A long poll of events: at most the default event_bytes_max (64 MiB) and a line.
            body_bytes_max: 65 << 20,
            allow_plain_http: false,
        };
        let plain = HttpsClient::new(tls, options);
        Ok(Clients {
            admin: plain.clone().with_bearer(&local.admin_token)?,
            viewer: plain.clone().with_bearer(&local.viewer_token)?,
            plain,
        })
    }
}

/// Lowest port [`listen_port`] hands out.
const LISTEN_PORT_MIN: u16 = 10_000;
/// Candidates [`listen_port`] tries at most.
const LISTEN_PORT_ATTEMPTS_MAX: u32 = 1_000;

/// The ports the kernel picks for outgoing connections (`ip_local_port_range`).
fn ephemeral_ports() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => (low, high),
        _ => (32_768, 60_999),
    }
}

/// A free port on `ip` for a server that is stopped and started again, below the kernel's
/// range of ports for outgoing connections: while the server is down, no outgoing connection
/// (to it, as a self-connection, or anywhere) can take its port, so it binds it again. Free
/// when asked, never handed out twice by this process.
pub fn listen_port(ip: std::net::IpAddr) -> Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let (ephemeral_low, _) = ephemeral_ports();
    let high = ephemeral_low.saturating_sub(1);
    if high <= LISTEN_PORT_MIN + 1_000 {
        // No room below the range: a port from the kernel.
        return Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port());
    }
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..LISTEN_PORT_ATTEMPTS_MAX {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        let port = LISTEN_PORT_MIN + (hasher.finish() % u64::from(high - LISTEN_PORT_MIN)) as u16;
        if !given.contains(&port) && std::net::TcpListener::bind((ip, port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    bail!(
        "no free port on {ip} in {LISTEN_PORT_MIN}..{high} after {LISTEN_PORT_ATTEMPTS_MAX} tries"
    )
}

/// Starts agent `id` of a local installation, its log in `dir/agent-<id>.log`.
pub fn start_agent(local: &Local, dir: &Path, id: &str) -> Result<Server> {
    let bin = Binaries::of_this_build(false)?.agent;
    let (_, config, _) = local
        .agent_configs
        .iter()
        .find(|(a, ..)| a == id)
        .ok_or_else(|| anyhow!("no agent {id}"))?;
    let log = dir.join(format!("agent-{id}.log"));
    Server::start(&format!("agent {id}"), &bin, config, log, "info")
}

/// Every event after `after` from the controller at `base_url` (`https://host:port`), read
/// with the long-poll API until none are left.
pub async fn read_events(api: &HttpsClient, base_url: &str, after: u64) -> Result<Vec<Json>> {
    let mut out = Vec::new();
    let mut after = after;
    for _ in 0..100_000 {
        let url = format!("{base_url}/api/v1/events?after={after}&timeout=200");
        let resp = api
            .request(axum::http::Method::GET, &url, None)
            .await
            .map_err(|e| anyhow!("events: {e}"))?;
        if !resp.status.is_success() {
            bail!(
                "events from {base_url}: {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
        }
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        let before = out.len();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let e: Json = serde_json::from_str(line)?;
            after = e["eventId"].as_u64().unwrap_or(after);
            out.push(e);
        }
        if out.len() == before {
            return Ok(out);
        }
    }
    bail!("more events than a test reads")
}

/// The orders of `ids` that are not in one of `states` in a list of orders (`GET /orders`):
/// how many are, and up to five of the others described.
pub fn pending_orders(all: &[Json], ids: &[String], states: &[&str]) -> (usize, Vec<String>) {
    let by_id: std::collections::BTreeMap<&str, &Json> = all
        .iter()
        .filter_map(|o| o["id"].as_str().map(|id| (id, o)))
        .collect();
    let mut done = 0;
    let mut pending = Vec::new();
    for id in ids {
        match by_id.get(id.as_str()) {
            Some(o) if states.contains(&o["state"].as_str().unwrap_or("")) => done += 1,
            Some(o) if pending.len() < 5 => pending.push(format!(
                "{} {} at {}",
                o["id"], o["stateDetail"], o["position"]
            )),
            None if pending.len() < 5 => pending.push(format!("{id} unknown")),
            _ => {}
        }
    }
    (done, pending)
}

/// A controller and agents on 127.0.0.1, in a temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub local: Local,
    pub controller: Option<Server>,
    pub agents: Vec<(String, Option<Server>)>,
    pub api: HttpsClient,
    viewer_api: HttpsClient,
    plain_api: HttpsClient,
}

/// Orders in a terminal state: finished, cancelled, failed.
pub const ENDED: &[&str] = &["finished", "cancelled", "failed"];

impl Cluster {
    /// Sets up a controller and agents with these ids (not started yet).
    pub fn new(agent_ids: &[&str]) -> Result<Cluster> {
        ordo_net::tls::install_crypto_provider();
        let dir = tempfile::Builder::new().prefix("ordo-test-").tempdir()?;
        let mut agents = Vec::new();
        for id in agent_ids {
            agents.push((
                id.to_string(),
                format!("127.0.0.1:{}", listen_port([127, 0, 0, 1].into())?).parse()?,
            ));
        }
        let local = local::setup(
            dir.path(),
            &Options {
                cluster_id: "test".into(),
                controller_listen: format!("127.0.0.1:{}", listen_port([127, 0, 0, 1].into())?)
                    .parse()?,
                agents,
                journal_fsync: true,
                cockpit_listen: None,
            },
        )?;
        let clients = Clients::new(&local, 30_000)?;
        let agents = agent_ids.iter().map(|id| (id.to_string(), None)).collect();
        Ok(Cluster {
            dir,
            local,
            controller: None,
            agents,
            api: clients.admin,
            viewer_api: clients.viewer,
            plain_api: clients.plain,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.local.controller_url)
    }

    /// The agent's `wss://` URL.
    pub fn agent_url(&self, id: &str) -> Result<String> {
        self.local
            .agent_configs
            .iter()
            .find(|(a, ..)| a == id)
            .map(|(_, _, url)| url.clone())
            .ok_or_else(|| anyhow!("no agent {id}"))
    }

    /// Starts the controller and waits until its API answers.
    pub async fn start_controller(&mut self) -> Result<()> {
        let bin = Binaries::of_this_build(false)?.controller;
        let log = self.dir.path().join("controller.log");
        self.controller = Some(Server::start(
            "controller",
            &bin,
            &self.local.controller_config,
            log,
            "info",
        )?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self
                .api
                .get_json::<Json>(&self.url("/health"))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the controller did not answer in 30 s:\n{}",
                    self.controller_log()
                );
            }
            if let Some(c) = self.controller.as_mut()
                && !c.is_running()
            {
                bail!("the controller exited:\n{}", self.controller_log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn controller_log(&self) -> String {
        self.controller
            .as_ref()
            .map(|c| c.log_tail(4000))
            .unwrap_or_default()
    }

    pub fn start_agent(&mut self, id: &str) -> Result<()> {
        let server = start_agent(&self.local, self.dir.path(), id)?;
        let slot = self
            .agents
            .iter_mut()
            .find(|(a, _)| a == id)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        slot.1 = Some(server);
        Ok(())
    }

    /// Makes agent `id` a subagent of `director` (its configuration gets a `[subagent]`
    /// section); before it starts.
    pub fn make_subagent(&self, id: &str, director: &str) -> Result<()> {
        let (_, config, _) = self
            .local
            .agent_configs
            .iter()
            .find(|(a, ..)| a == id)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        ordo_cli::local::edit_agent_config(config, |f| {
            f.subagent = Some(ordo_agent::config::SubagentSection {
                director: director.to_owned(),
            });
        })?;
        Ok(())
    }

    /// An `agent:` document for the director `id` of a cluster of `subagents`
    /// (`(id, processLimit)`, each one of this cluster's agents made a subagent).
    pub fn cluster_yaml(
        &self,
        id: &str,
        selection: &str,
        lease_timeout: &str,
        subagents: &[(&str, u32)],
    ) -> Result<String> {
        let mut text = format!(
            "agent: {id}\nurl: {}\nselection: {selection}\nleaseTimeout: {lease_timeout}\nsubagents:\n",
            self.agent_url(id)?
        );
        for (sub, limit) in subagents {
            text.push_str(&format!(
                "  - id: {sub}\n    url: {}\n    processLimit: {limit}\n",
                self.agent_url(sub)?
            ));
        }
        Ok(text)
    }

    pub fn agent(&mut self, id: &str) -> Option<&mut Server> {
        self.agents
            .iter_mut()
            .find(|(a, _)| a == id)
            .and_then(|(_, s)| s.as_mut())
    }

    pub fn logs(&self) -> String {
        let mut out = format!("--- controller\n{}", self.controller_log());
        for (id, s) in &self.agents {
            if let Some(s) = s {
                out.push_str(&format!("\n--- agent {id}\n{}", s.log_tail(3000)));
            }
        }
        out
    }

    /// Deploys YAML files `(name, text)`; `agent:` objects get the agents' real URLs when they
    /// name one of this cluster's agents.
    pub async fn deploy(&self, files: &[(&str, String)]) -> Result<Json> {
        let files: Vec<Json> = files
            .iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect();
        self.api
            .post_json(&self.url("/deploy"), &json!({ "files": files }))
            .await
            .map_err(|e| anyhow!("deploy failed: {e}"))
    }

    /// An `agent:` document for one of this cluster's agents.
    pub fn agent_yaml(&self, id: &str) -> Result<String> {
        Ok(format!("agent: {id}\nurl: {}\n", self.agent_url(id)?))
    }

    pub async fn add_orders(&self, orders: &[Json]) -> Result<Json> {
        self.api
            .post_json(&self.url("/orders"), &json!({ "orders": orders }))
            .await
            .map_err(|e| anyhow!("adding orders failed: {e}"))
    }

    pub async fn order(&self, id: &str) -> Result<Json> {
        self.api
            .get_json(&self.url(&format!("/orders/{id}")))
            .await
            .map_err(|e| anyhow!("order {id}: {e}"))
    }

    pub async fn post(&self, path: &str, body: &Json) -> Result<Json> {
        self.api
            .post_json(&self.url(path), body)
            .await
            .map_err(|e| anyhow!("POST {path}: {e}"))
    }

    pub async fn orders(&self) -> Result<Vec<Json>> {
        let j: Json = self
            .api
            .get_json(&self.url("/orders"))
            .await
            .map_err(|e| anyhow!("listing orders: {e}"))?;
        Ok(j["orders"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `ids` are all in one of `states`; returns their final JSON.
    pub async fn wait_states(
        &self,
        ids: &[String],
        states: &[&str],
        within: Duration,
    ) -> Result<Vec<Json>> {
        let deadline = Instant::now() + within;
        loop {
            let all = self.orders().await.unwrap_or_default();
            let (done, pending) = pending_orders(&all, ids, states);
            if done == ids.len() {
                let wanted: std::collections::BTreeSet<&str> =
                    ids.iter().map(String::as_str).collect();
                let mut found: Vec<Json> = all
                    .into_iter()
                    .filter(|o| o["id"].as_str().is_some_and(|id| wanted.contains(id)))
                    .collect();
                found.sort_by_key(|o| {
                    let id = o["id"].as_str().unwrap_or_default();
                    ids.iter().position(|i| i == id)
                });
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!(
                    "{done} of {} orders reached {states:?} in {within:?}; e.g. {pending:?}\n{}",
                    ids.len(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every event after `after`, read with the long-poll API until none are left.
    pub async fn events(&self, after: u64) -> Result<Vec<Json>> {
        read_events(&self.api, &self.local.controller_url, after).await
    }

    /// The controller's address.
    pub fn controller_addr(&self) -> Result<std::net::SocketAddr> {
        let url = self.local.controller_url.trim_start_matches("https://");
        Ok(url.trim_end_matches('/').parse()?)
    }

    /// A TLS client configuration that trusts the cluster's CA.
    pub fn client_tls(&self) -> Result<std::sync::Arc<rustls::ClientConfig>> {
        let ca = ordo_net::tls::CaBundle::from_pem_file(&self.local.ca)?;
        Ok(ordo_net::tls::client_config(&ca, None)?)
    }

    /// Changes the controller configuration (its own configuration type); before the
    /// controller starts.
    pub fn edit_controller(
        &self,
        edit: impl FnOnce(&mut ordo_cli::local::ControllerFile),
    ) -> Result<()> {
        ordo_cli::local::edit_controller_config(&self.local.controller_config, edit)?;
        Ok(())
    }

    /// The viewer-role client, for authorisation tests.
    pub fn viewer(&self) -> &HttpsClient {
        &self.viewer_api
    }

    /// A client without a token.
    pub fn anonymous(&self) -> &HttpsClient {
        &self.plain_api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_ports_are_free_distinct_and_below_the_ephemeral_range() {
        let (low, _) = ephemeral_ports();
        let ip: std::net::IpAddr = [127, 0, 0, 1].into();
        let ports: Vec<u16> = (0..20).map(|_| listen_port(ip).unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!((LISTEN_PORT_MIN..low).contains(&port), "{port}");
            std::net::TcpListener::bind((ip, port)).unwrap();
        }
    }
}
