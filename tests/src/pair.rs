//! A replicated controller pair as processes of this build: controller A (node 1 on
//! 127.0.0.1), controller B (node 2 on 127.0.0.2) and the watch (node 3 on 127.0.0.3), with
//! agents on 127.0.0.1, in a temporary directory.
//!
//! Every node's raft traffic comes in through a fault [`Proxy`] on its own address: the
//! `raft_address` of node n in every configuration is the proxy in front of node n's
//! `raft_listen`. The proxies know which node's process opened a connection
//! ([`socket_owner`]), so [`Pair::partition`] cuts a node off in both directions: its own
//! proxy drops everything and the other proxies refuse connections from it.
//!
//! Clients follow the active controller the way a careful client does ([`Orderer`]): a 503
//! names the active one (or nobody, during an election), a connection error sends it to every
//! node's `/health`; a command whose outcome is unknown is sent again with the same order id.
//! Every attempt and acknowledgement is counted in a [`Ledger`], which the history checker
//! compares with the voters' committed event journals, read from their data directories once
//! they are stopped ([`Pair::finish`]).
//!
//! The proxies run on the test's tokio runtime: tests use a multi-threaded runtime, and the
//! harness does its blocking work (stopping a process, reading files) off the runtime's
//! threads. Every wait polls a signal (`/health`, an order's state) and is bounded.

mod check;
mod fence;
mod load;

pub use check::{Finished, VoterJournal, read_journal};
pub use load::{Ledger, Load, Orderer, Sent};

use crate::proxy::{Classifier, Proxy, socket_owner};
use crate::{Binaries, Clients, Server, listen_port};
use anyhow::{Context, Result, anyhow, bail};
use axum::http::Method;
use ordo_cli::local::{self, ControllerFile, Local, Options};
use ordo_controller::config::{ClusterConfig, ClusterNode, Voter as VoterKind};
use ordo_net::client::HttpsClient;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cluster id of the test PKI.
pub const CLUSTER_ID: &str = "test";
/// Node ids: controller A, controller B, the watch.
pub const NODE_A: u64 = 1;
pub const NODE_B: u64 = 2;
pub const WATCH: u64 = 3;
/// Raft's clock in the configurations (the controller's defaults).
pub const TICK_MS: u64 = 25;
pub const ELECTION_TICKS: usize = 12;
pub const HEARTBEAT_TICKS: usize = 2;
/// Largest raft message.
pub const MESSAGE_BYTES_MAX: usize = 256 << 20;

/// Pause between two polls of a signal.
const POLL_MS: u64 = 50;
/// Time for one `/health` request (a node cut off from the others still answers it).
const HEALTH_TIMEOUT_MS: u64 = 2_000;
/// Time for one command request (a controller that lost leadership answers 503 once it
/// knows; a hung one is left for another).
const COMMAND_TIMEOUT_MS: u64 = 10_000;
/// Time for a started node's API to answer.
const START_WAIT_MS: u64 = 30_000;
/// Time for exactly one node to say it is active.
const ACTIVE_WAIT_MS: u64 = 30_000;
/// Time for a membership change to be applied on the active node.
const MEMBERSHIP_WAIT_MS: u64 = 30_000;
/// Time for a node to reach the leader's commit.
const CATCH_UP_WAIT_MS: u64 = 60_000;
/// Time for a node to stop saying it is active once cut off, in election timeouts.
pub const STEP_DOWN_ELECTION_TIMEOUTS: u64 = 20;

/// One voter: its configuration, data and process.
pub struct Voter {
    pub id: u64,
    pub kind: VoterKind,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    /// `https://127.0.0.n:port`.
    pub api_url: String,
    pub raft_listen: SocketAddr,
    pub log: PathBuf,
    process: Option<Server>,
}

impl Voter {
    /// `node 1 (controller)`.
    pub fn name(&self) -> String {
        let kind = match self.kind {
            VoterKind::Controller => "controller",
            VoterKind::Watch => "watch",
        };
        format!("node {} ({kind})", self.id)
    }

    pub fn is_started(&self) -> bool {
        self.process.is_some()
    }

    fn log_tail(&self, bytes: usize) -> String {
        file_tail(&self.log, bytes)
    }
}

/// The last `bytes` of a text file (nothing when it cannot be read), without the frames of
/// backtraces (a panic's message and the log lines around it are what tell).
fn file_tail(path: &Path, bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text: String = text
        .lines()
        .filter(|line| {
            let t = line.trim_start();
            let frame = t
                .split_once(": ")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok());
            !(frame || t.starts_with("at ") || t == "Stack backtrace:")
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    let start = text.len().saturating_sub(bytes);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

/// Which process is which node, for the proxies' [`Classifier`].
type Owners = Arc<Mutex<BTreeMap<u32, u64>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A controller pair and its agents.
pub struct Pair {
    pub dir: tempfile::TempDir,
    pub local: Local,
    pub voters: Vec<Voter>,
    /// The raft proxy in front of each node, by node id.
    pub proxies: BTreeMap<u64, Proxy>,
    pub agents: Vec<(String, Option<Server>)>,
    pub clients: Clients,
    /// Sends commands to whichever controller is active and counts them.
    pub orderer: Orderer,
    health_api: HttpsClient,
    owners: Owners,
}

/// Kills the servers; with `ORDO_KEEP=1` (or when a test panics) the pair's directory, with
/// every node's configuration, data and log, is kept and its path printed.
impl Drop for Pair {
    fn drop(&mut self) {
        // The servers go first (killed when dropped): running, they would write into the
        // directory while it is removed.
        for v in &mut self.voters {
            drop(v.process.take());
        }
        for (_, agent) in &mut self.agents {
            drop(agent.take());
        }
        if std::env::var("ORDO_KEEP").is_ok_and(|v| v == "1") || std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the pair's directory is kept: {}",
                self.dir.path().display()
            );
        }
    }
}

fn node_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, id as u8))
}

/// The role a `/health` answer says (`active`, `passive`, `watch`, `candidate`).
pub fn role(health: &Json) -> &str {
    health["role"].as_str().unwrap_or("")
}

/// A number of the `cluster` part of a `/health` answer (`term`, `commit`, `applied`,
/// `committedEventId`, `agentsCoupled`, ...).
pub fn cluster_number(health: &Json, key: &str) -> Option<u64> {
    health["cluster"][key].as_u64()
}

impl Pair {
    /// Sets up three voters and agents with these ids (nothing started yet): a test PKI
    /// whose controller certificates cover 127.0.0.1..3 and carry the controller identity,
    /// one configuration per node, one raft proxy per node.
    pub async fn new(agent_ids: &[&str]) -> Result<Pair> {
        ordo_net::tls::install_crypto_provider();
        let dir = tempfile::Builder::new().prefix("ordo-pair-").tempdir()?;
        let mut agents = Vec::new();
        for id in agent_ids {
            let ip = node_ip(1);
            agents.push((id.to_string(), SocketAddr::new(ip, listen_port(ip)?)));
        }
        let ids = [NODE_A, NODE_B, WATCH];
        let mut api_addrs = BTreeMap::new();
        let mut raft_addrs = BTreeMap::new();
        for id in ids {
            let ip = node_ip(id);
            api_addrs.insert(id, SocketAddr::new(ip, listen_port(ip)?));
            raft_addrs.insert(id, SocketAddr::new(ip, listen_port(ip)?));
        }
        let local = local::setup(
            dir.path(),
            &Options {
                cluster_id: CLUSTER_ID.into(),
                controller_listen: api_addrs[&NODE_A],
                agents,
                journal_fsync: true,
                cockpit_listen: None,
            },
        )?;
        // Every node's server and client certificates: reached at 127.0.0.1..3, and the
        // controller identity on both (the raft transport checks it both ways).
        let certs = local.dir.join("certs");
        let spec = ordo_net::certs::IssueSpec {
            dns_names: vec!["localhost".to_owned()],
            ip_addresses: ids.iter().map(|id| node_ip(*id)).collect(),
            uri_sans: vec![ordo_net::identity::controller_uri(CLUSTER_ID)],
            server: true,
            client: true,
            validity_days: 30,
        };
        for name in ["controller", "controller-client"] {
            ordo_net::certs::issue(&certs, name, &spec)?;
        }

        let owners: Owners = Arc::default();
        let known = owners.clone();
        let classify: Classifier = Arc::new(move |peer, local| {
            let owners = lock(&known).clone();
            let pids: Vec<u32> = owners.keys().copied().collect();
            socket_owner(peer, local, &pids).and_then(|pid| owners.get(&pid).copied())
        });
        let mut proxies = BTreeMap::new();
        for id in ids {
            let proxy = Proxy::start(
                SocketAddr::new(node_ip(id), 0),
                raft_addrs[&id],
                Some(classify.clone()),
            )
            .await
            .with_context(|| format!("starting the raft proxy of node {id}"))?;
            proxies.insert(id, proxy);
        }

        let kind = |id: u64| {
            if id == WATCH {
                VoterKind::Watch
            } else {
                VoterKind::Controller
            }
        };
        let api_url = |id: u64| format!("https://{}", api_addrs[&id]);
        let nodes: Vec<ClusterNode> = ids
            .iter()
            .map(|id| ClusterNode {
                id: *id,
                voter: kind(*id),
                raft_address: proxies[id].addr().to_string(),
                api_url: api_url(*id),
            })
            .collect();
        let base_text = std::fs::read_to_string(&local.controller_config)?;
        let base = ControllerFile::parse(&base_text).map_err(|e| anyhow!("{e}"))?;
        let mut voters = Vec::new();
        for id in ids {
            let mut file = base.clone();
            file.controller_id = match id {
                NODE_A => "controller-a".to_owned(),
                NODE_B => "controller-b".to_owned(),
                _ => "watch".to_owned(),
            };
            file.data_dir = local.dir.join(format!("node-{id}"));
            file.listen = api_addrs[&id];
            file.cluster = Some(ClusterConfig {
                node_id: id,
                raft_listen: raft_addrs[&id],
                nodes: nodes.clone(),
                tick_ms: TICK_MS,
                election_ticks: ELECTION_TICKS,
                heartbeat_ticks: HEARTBEAT_TICKS,
                message_bytes_max: MESSAGE_BYTES_MAX,
                join: false,
            });
            let config = local.dir.join(format!("node-{id}.toml"));
            let text = file.to_toml().map_err(|e| anyhow!("{e}"))?;
            std::fs::write(&config, text)
                .with_context(|| format!("writing {}", config.display()))?;
            voters.push(Voter {
                id,
                kind: kind(id),
                config,
                data_dir: file.data_dir.clone(),
                api_url: api_url(id),
                raft_listen: raft_addrs[&id],
                log: local.dir.join(format!("node-{id}.log")),
                process: None,
            });
        }

        let clients = Clients::new(&local, COMMAND_TIMEOUT_MS)?;
        let health_api = Clients::new(&local, HEALTH_TIMEOUT_MS)?.viewer;
        let orderer = Orderer::new(
            clients.admin.clone(),
            health_api.clone(),
            voters
                .iter()
                .map(|v| (v.id, v.api_url.clone(), v.kind == VoterKind::Controller))
                .collect(),
        );
        let agents = agent_ids.iter().map(|id| (id.to_string(), None)).collect();
        Ok(Pair {
            dir,
            local,
            voters,
            proxies,
            agents,
            clients,
            orderer,
            health_api,
            owners,
        })
    }

    /// The longest a follower waits for a leader before it stands: `2 * election_ticks`
    /// ticks.
    pub fn election_timeout_ms(&self) -> u64 {
        2 * ELECTION_TICKS as u64 * TICK_MS
    }

    pub fn voter(&self, id: u64) -> &Voter {
        self.voters
            .iter()
            .find(|v| v.id == id)
            .unwrap_or_else(|| panic!("no node {id} in the pair"))
    }

    fn voter_mut(&mut self, id: u64) -> &mut Voter {
        self.voters
            .iter_mut()
            .find(|v| v.id == id)
            .unwrap_or_else(|| panic!("no node {id} in the pair"))
    }

    /// The other controller.
    pub fn other_controller(id: u64) -> u64 {
        if id == NODE_A { NODE_B } else { NODE_A }
    }

    /// Starts node `id` (not waiting for it).
    pub fn start(&mut self, id: u64) -> Result<()> {
        let bin = Binaries::of_this_build(false)?.controller;
        let owners = self.owners.clone();
        let v = self.voter_mut(id);
        assert!(v.process.is_none(), "{} is already started", v.name());
        let server = Server::start(&v.name(), &bin, &v.config, v.log.clone(), "info")?;
        lock(&owners).insert(server.pid(), id);
        v.process = Some(server);
        Ok(())
    }

    /// Starts every node that is not running and waits until each API answers.
    pub async fn start_all(&mut self) -> Result<()> {
        let ids: Vec<u64> = self.voters.iter().map(|v| v.id).collect();
        for id in &ids {
            if !self.voter(*id).is_started() {
                self.start(*id)?;
            }
        }
        for id in ids {
            self.wait_up(id).await?;
        }
        Ok(())
    }

    /// Waits until node `id`'s API answers `/health` (whatever its role).
    pub async fn wait_up(&mut self, id: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS);
        loop {
            if self.health(id).await.is_ok() {
                return Ok(());
            }
            self.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer in {START_WAIT_MS} ms:\n{}",
                    self.voter(id).name(),
                    self.voter(id).log_tail(4000)
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Starts node `id` and waits until its API answers.
    pub async fn start_and_wait(&mut self, id: u64) -> Result<()> {
        self.start(id)?;
        self.wait_up(id).await
    }

    fn take_process(&mut self, id: u64) -> Option<Server> {
        let owners = self.owners.clone();
        let process = self.voter_mut(id).process.take()?;
        lock(&owners).remove(&process.pid());
        Some(process)
    }

    /// SIGKILL to node `id`; returns once it is gone.
    pub async fn kill9(&mut self, id: u64) -> Result<()> {
        let Some(mut process) = self.take_process(id) else {
            bail!("{} is not running", self.voter(id).name());
        };
        tokio::task::spawn_blocking(move || process.kill9()).await?;
        Ok(())
    }

    /// SIGTERM to node `id` (SIGKILL after a grace); true when it ended on SIGTERM.
    pub async fn stop(&mut self, id: u64) -> Result<bool> {
        let Some(mut process) = self.take_process(id) else {
            return Ok(true);
        };
        Ok(tokio::task::spawn_blocking(move || process.stop()).await?)
    }

    /// Stops node `id` and starts it again.
    pub async fn restart(&mut self, id: u64) -> Result<()> {
        self.stop(id).await?;
        self.start_and_wait(id).await
    }

    /// Removes node `id`'s data directory (it must be stopped); it starts empty next time.
    pub fn wipe(&mut self, id: u64) -> Result<()> {
        let v = self.voter(id);
        assert!(!v.is_started(), "{} must be stopped to be wiped", v.name());
        match std::fs::remove_dir_all(&v.data_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", v.data_dir.display())),
        }
    }

    /// Changes node `id`'s configuration (its own configuration type), for its next start.
    pub fn edit_config(&self, id: u64, edit: impl FnOnce(&mut ControllerFile)) -> Result<()> {
        local::edit_controller_config(&self.voter(id).config, edit)?;
        Ok(())
    }

    /// Fails, with its log, when a started node has exited.
    pub fn check_running(&mut self) -> Result<()> {
        for v in &mut self.voters {
            let name = v.name();
            if let Some(p) = v.process.as_mut()
                && !p.is_running()
            {
                let status = p.exit_status();
                bail!(
                    "{name} exited by itself ({status:?}):\n{}",
                    v.log_tail(6000)
                );
            }
        }
        Ok(())
    }

    /// Node `id`'s `GET /api/v1/health`.
    pub async fn health(&self, id: u64) -> Result<Json> {
        let url = format!("{}/api/v1/health", self.voter(id).api_url);
        self.health_api
            .get_json(&url)
            .await
            .map_err(|e| anyhow!("{}: {e}", self.voter(id).name()))
    }

    /// One line per node: its role, term, leader, commit and applied, or why it did not
    /// answer.
    pub async fn describe(&self) -> String {
        let mut out = Vec::new();
        for v in &self.voters {
            let line = if !v.is_started() {
                "stopped".to_owned()
            } else {
                match self.health(v.id).await {
                    Ok(h) => format!(
                        "{} term {} leader {} commit {} applied {} event {} agents {}",
                        role(&h),
                        h["cluster"]["term"],
                        h["cluster"]["leader"],
                        h["cluster"]["commit"],
                        h["cluster"]["applied"],
                        h["cluster"]["committedEventId"],
                        h["cluster"]["agentsCoupled"],
                    ),
                    Err(e) => format!("no answer: {e}"),
                }
            };
            out.push(format!("{}: {line}", v.name()));
        }
        for (id, proxy) in &self.proxies {
            out.push(format!(
                "raft proxy of node {id}: {:?}, {:?}",
                proxy.mode(),
                proxy.stats()
            ));
        }
        out.join("\n")
    }

    /// The logs of every node and agent (their ends).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for v in &self.voters {
            out.push_str(&format!("--- {}\n{}\n", v.name(), v.log_tail(5000)));
        }
        for (id, _) in &self.agents {
            let tail = file_tail(&self.dir.path().join(format!("agent-{id}.log")), 3000);
            out.push_str(&format!("--- agent {id}\n{tail}\n"));
        }
        out
    }

    /// Polls every started node's `/health` until exactly one says `active` and `accept` takes
    /// it; returns its id.
    pub async fn wait_active(&mut self, accept: impl Fn(u64) -> bool) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_millis(ACTIVE_WAIT_MS);
        loop {
            self.check_running()?;
            let mut actives = Vec::new();
            for v in &self.voters {
                if v.is_started()
                    && let Ok(h) = self.health(v.id).await
                    && role(&h) == "active"
                {
                    actives.push(v.id);
                }
            }
            if let [one] = actives[..]
                && accept(one)
            {
                return Ok(one);
            }
            if Instant::now() > deadline {
                bail!(
                    "no single accepted active node in {ACTIVE_WAIT_MS} ms (active: {actives:?}):\n{}\n{}",
                    self.describe().await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// The active node, once exactly one says so.
    pub async fn active(&mut self) -> Result<u64> {
        self.wait_active(|_| true).await
    }

    /// Waits until node `id`'s `/health` says something other than `active` (bounded by
    /// [`STEP_DOWN_ELECTION_TIMEOUTS`] election timeouts); returns that health.
    pub async fn wait_not_active(&self, id: u64) -> Result<Json> {
        let bound = STEP_DOWN_ELECTION_TIMEOUTS * self.election_timeout_ms();
        let deadline = Instant::now() + Duration::from_millis(bound);
        loop {
            match self.health(id).await {
                Ok(h) if role(&h) != "active" => return Ok(h),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still says active after {bound} ms ({STEP_DOWN_ELECTION_TIMEOUTS} election timeouts):\n{}\n{}",
                    self.voter(id).name(),
                    self.describe().await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Waits until node `id`'s commit and applied index reach the active node's commit as
    /// it is now.
    pub async fn wait_caught_up(&mut self, id: u64) -> Result<()> {
        let leader = self.active().await?;
        let target = cluster_number(&self.health(leader).await?, "commit")
            .ok_or_else(|| anyhow!("the active node's /health has no cluster.commit"))?;
        let deadline = Instant::now() + Duration::from_millis(CATCH_UP_WAIT_MS);
        loop {
            self.check_running()?;
            if let Ok(h) = self.health(id).await
                && cluster_number(&h, "commit").is_some_and(|c| c >= target)
                && cluster_number(&h, "applied").is_some_and(|a| a >= target)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not reach the leader's commit {target} in {CATCH_UP_WAIT_MS} ms:\n{}\n{}",
                    self.voter(id).name(),
                    self.describe().await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Cuts node `id` off from the others through the proxies, both ways: nothing reaches
    /// it, and the others refuse what it sends. Its API stays reachable.
    pub fn partition(&self, id: u64) {
        for (node, proxy) in &self.proxies {
            if *node == id {
                proxy.drop_all();
            } else {
                proxy.block_source(id);
            }
        }
    }

    /// Every proxy back to passing everything.
    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    /// Starts agent `id`.
    pub fn start_agent(&mut self, id: &str) -> Result<()> {
        let server = crate::start_agent(&self.local, self.dir.path(), id)?;
        let slot = self
            .agents
            .iter_mut()
            .find(|(a, _)| a == id)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        slot.1 = Some(server);
        Ok(())
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

    /// An `agent:` document for one of the pair's agents.
    pub fn agent_yaml(&self, id: &str) -> Result<String> {
        Ok(format!("agent: {id}\nurl: {}\n", self.agent_url(id)?))
    }

    /// Deploys YAML files `(name, text)` through the active controller.
    pub async fn deploy(&self, files: &[(&str, String)]) -> Result<Json> {
        let files: Vec<Json> = files
            .iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect();
        self.orderer
            .command(Method::POST, "/deploy", &json!({ "files": files }), || {})
            .await
    }

    /// Takes voter `id` out of the cluster's membership, through the active controller.
    pub async fn remove_node(&self, id: u64) -> Result<Json> {
        self.orderer
            .command(
                Method::DELETE,
                &format!("/cluster/nodes/{id}"),
                &Json::Null,
                || {},
            )
            .await
    }

    /// Makes voter `id` (in every node's configuration) a member again, through the active
    /// controller.
    pub async fn add_node(&self, id: u64) -> Result<Json> {
        self.orderer
            .command(Method::POST, "/cluster/nodes", &json!({ "id": id }), || {})
            .await
    }

    /// Waits until the active controller's applied membership has voter `id` in it
    /// (`member`) or not: a membership change is answered once proposed, and takes effect
    /// once applied.
    pub async fn wait_member(&mut self, id: u64, member: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(MEMBERSHIP_WAIT_MS);
        loop {
            let active = self.active().await?;
            let health = self.health(active).await?;
            let is_member = health["cluster"]["nodes"]
                .as_array()
                .and_then(|nodes| nodes.iter().find(|n| n["id"] == id))
                .map(|n| n["member"] == true);
            if is_member == Some(member) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {id} is {}a member after {MEMBERSHIP_WAIT_MS} ms, as the active node {active} says:\n{health}\n{}\n{}",
                    if member { "not " } else { "still " },
                    self.describe().await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Every event node `id` serves after `after` (`/api/v1/events`, while it runs).
    pub async fn events(&self, id: u64, after: u64) -> Result<Vec<Json>> {
        crate::read_events(&self.clients.viewer, &self.voter(id).api_url, after).await
    }
}
