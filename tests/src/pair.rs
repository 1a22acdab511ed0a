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

use crate::history::{self, EventJournal, History, Verdict};
use crate::proxy::{Classifier, Proxy, socket_owner};
use crate::{Binaries, Clients, Server, pending_orders};
use anyhow::{Context, Result, anyhow, bail};
use axum::http::{Method, StatusCode};
use ordo_cli::local::{self, ControllerFile, Local, Options};
use ordo_controller::config::{ClusterConfig, ClusterNode, Voter as VoterKind};
use ordo_net::client::HttpsClient;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
/// Time for one command to be acknowledged, retries included.
const COMMAND_WAIT_MS: u64 = 60_000;
/// Requests sent for one command at most.
const COMMAND_ATTEMPTS_MAX: u32 = 2_000;
/// Time for a node to reach the leader's commit.
const CATCH_UP_WAIT_MS: u64 = 60_000;
/// Time for a node to stop saying it is active once cut off, in election timeouts.
pub const STEP_DOWN_ELECTION_TIMEOUTS: u64 = 20;
/// Time to connect to an agent and hear its answer to a `Couple`.
const PROBE_TIMEOUT_MS: u64 = 10_000;
/// Records read from one journal at most.
const JOURNAL_RECORDS_MAX: usize = 10_000_000;

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

/// The last `bytes` of a text file (nothing when it cannot be read).
fn file_tail(path: &Path, bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
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

/// A free TCP port on `ip` (free when asked; bind soon after).
fn free_port(ip: IpAddr) -> Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))
        .with_context(|| format!("binding {ip}:0"))?
        .local_addr()?
        .port())
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
            agents.push((id.to_string(), SocketAddr::new(ip, free_port(ip)?)));
        }
        let ids = [NODE_A, NODE_B, WATCH];
        let mut api_addrs = BTreeMap::new();
        let mut raft_addrs = BTreeMap::new();
        for id in ids {
            let ip = node_ip(id);
            api_addrs.insert(id, SocketAddr::new(ip, free_port(ip)?));
            raft_addrs.insert(id, SocketAddr::new(ip, free_port(ip)?));
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
        let orderer = Orderer {
            api: clients.admin.clone(),
            health: health_api.clone(),
            voters: voters
                .iter()
                .map(|v| (v.id, v.api_url.clone(), v.kind == VoterKind::Controller))
                .collect(),
            hint: Arc::default(),
            ledger: Arc::default(),
        };
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

    /// Every event node `id` serves after `after` (`/api/v1/events`, while it runs).
    pub async fn events(&self, id: u64, after: u64) -> Result<Vec<Json>> {
        crate::read_events(&self.clients.viewer, &self.voter(id).api_url, after).await
    }

    /// Sends agent `agent` a `Couple` at `term`, as a controller of the cluster would (with
    /// the controllers' client certificate), and returns its refusal. An agent that couples
    /// is an error: it would have taken commands of that term.
    pub async fn couple_refusal(&self, agent: &str, term: u64) -> Result<String> {
        use ordo_model::wire::{AGENT_WS_PATH, Couple, FromAgent, PROTOCOL_VERSION, ToAgent};
        let certs = self.local.dir.join("certs");
        let ca = ordo_net::tls::CaBundle::from_pem_file(&self.local.ca)?;
        let material = ordo_net::tls::TlsMaterial::from_pem_files(
            &certs.join("controller-client.pem"),
            &certs.join("controller-client.key"),
        )?;
        let tls = ordo_net::tls::client_config(&ca, Some(&material))?;
        let frame_bytes_max = 16 << 20;
        let url = format!("{}{AGENT_WS_PATH}", self.agent_url(agent)?);
        let mut ws =
            ordo_net::client::connect_ws(&url, tls, frame_bytes_max, PROBE_TIMEOUT_MS).await?;
        let couple = ToAgent::Couple(Couple {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: CLUSTER_ID.to_owned(),
            controller_id: "fencing-probe".to_owned(),
            term,
            agent_id: ordo_model::ids::AgentId::new(agent)?,
            agent_run_id: None,
            after: 0,
        });
        ordo_net::frame::send(&mut ws, &couple, frame_bytes_max).await?;
        let answer = tokio::time::timeout(
            Duration::from_millis(PROBE_TIMEOUT_MS),
            ordo_net::frame::recv::<_, FromAgent>(&mut ws, frame_bytes_max),
        )
        .await
        .map_err(|_| anyhow!("agent {agent} did not answer a Couple in {PROBE_TIMEOUT_MS} ms"))??;
        match answer {
            Some(FromAgent::Refused { reason }) => Ok(reason),
            Some(FromAgent::Coupled(_)) => {
                bail!("agent {agent} coupled with a controller of term {term}")
            }
            Some(other) => bail!("agent {agent} answered a Couple with {other:?}"),
            None => bail!("agent {agent} closed the session without an answer"),
        }
    }

    /// A stopped node's committed event journal (`<data_dir>/journal`), read from a copy so
    /// that the node's files stay as they are; `None` when the node has none.
    pub async fn journal(&self, id: u64) -> Result<Option<EventJournal>> {
        let v = self.voter(id);
        assert!(
            !v.is_started(),
            "{} must be stopped to read its journal",
            v.name()
        );
        let source = v.data_dir.join("journal");
        let name = v.name();
        let copy = self.dir.path().join(format!("journal-copy-{id}"));
        tokio::task::spawn_blocking(move || read_journal(&source, &copy, name)).await?
    }

    /// Ends a scenario (after the load stopped) and checks it: waits until every order the
    /// ledger has as acknowledged ended and every running node reached the leader's
    /// commit, stops every node, reads their journals, checks that they agree on their
    /// common prefix and hold every committed event, and runs the history checker over them
    /// (`jobs` jobs per order; `runs`: a file where each job run wrote a line starting with
    /// its order id, or none).
    pub async fn finish(
        &mut self,
        jobs: u32,
        runs: Option<&Path>,
        within: Duration,
    ) -> Result<(Verdict, History)> {
        let ledger = self.orderer.ledger();
        let acknowledged: Vec<String> = ledger.acknowledged().into_iter().collect();
        self.wait_ended(&acknowledged, within).await?;
        let running: Vec<u64> = self
            .voters
            .iter()
            .filter(|v| v.is_started())
            .map(|v| v.id)
            .collect();
        for id in &running {
            self.wait_caught_up(*id).await?;
        }
        let leader = self.active().await?;
        let committed = cluster_number(&self.health(leader).await?, "committedEventId")
            .ok_or_else(|| anyhow!("the active node's /health has no cluster.committedEventId"))?;
        // The passive nodes first, so that the leader's last commits reach them.
        for id in running.iter().filter(|id| **id != leader) {
            self.stop(*id).await?;
        }
        self.stop(leader).await?;

        let mut journals = Vec::new();
        for v in &self.voters {
            match self.journal(v.id).await? {
                Some(j) => journals.push((v.id, v.kind, j)),
                None if v.kind == VoterKind::Controller => {
                    bail!("{} has no event journal", v.name())
                }
                None => {}
            }
        }
        let only: Vec<EventJournal> = journals.iter().map(|(.., j)| j.clone()).collect();
        history::identical_prefixes(&only)
            .map_err(|e| anyhow!("the voters' committed journals disagree:\n{e}"))?;
        for (id, kind, j) in &journals {
            if *kind == VoterKind::Controller && j.last_id().unwrap_or(0) < committed {
                bail!(
                    "node {id}'s journal ends at event {:?}, before the committed event {committed} it had applied",
                    j.last_id()
                );
            }
        }
        let mut events = Vec::new();
        for (id, bytes) in history::merged(&only) {
            let stored = ordo_api::record::Record::decode(id, &bytes)?;
            let frame = ordo_api::frame::EventFrame::of(id, &stored);
            events.push(serde_json::to_value(&frame)?);
        }
        let history = History::from_events(&events);
        let mut verdict = history.verdict(&ledger.attempted(), &ledger.acknowledged(), jobs);
        if let Some(runs) = runs {
            let text = std::fs::read_to_string(runs).unwrap_or_default();
            let mut ran: BTreeMap<&str, u32> = BTreeMap::new();
            for line in text.lines() {
                let id = line.split_whitespace().next().unwrap_or_default();
                *ran.entry(id).or_default() += 1;
            }
            for (id, n) in ran {
                if n > jobs && !verdict.duplicated.iter().any(|d| d == id) {
                    verdict.duplicated.push(id.to_owned());
                }
            }
        }
        eprintln!(
            "checker: {verdict}; {} requests for {} orders; journals: {}",
            ledger.attempts(),
            ledger.orders.len(),
            journals
                .iter()
                .map(|(id, _, j)| format!(
                    "node {id} {} events {:?}..={:?}",
                    j.records.len(),
                    j.first_id(),
                    j.last_id()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok((verdict, history))
    }

    /// Waits until every order of `ids` ended, asking the active controller.
    pub async fn wait_ended(&mut self, ids: &[String], within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let active = self.active().await?;
            let url = format!("{}/api/v1/orders", self.voter(active).api_url);
            if let Ok(list) = self.clients.viewer.get_json::<Json>(&url).await {
                let all = list["orders"].as_array().cloned().unwrap_or_default();
                let (done, pending) = pending_orders(&all, ids, crate::ENDED);
                if done == ids.len() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!(
                        "{done} of {} acknowledged orders ended in {within:?}; e.g. {pending:?}\n{}\n{}",
                        ids.len(),
                        self.describe().await,
                        self.logs()
                    );
                }
            } else if Instant::now() > deadline {
                bail!("the active controller did not list its orders\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(4 * POLL_MS)).await;
        }
    }
}

/// Copies the journal at `source` (when there is one) to `copy` and reads every record.
fn read_journal(source: &Path, copy: &Path, name: String) -> Result<Option<EventJournal>> {
    if !source.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(copy)?;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let file_name = entry.file_name();
        if file_name == ordo_journal::LOCK_FILE_NAME || !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::copy(entry.path(), copy.join(&file_name))
            .with_context(|| format!("copying {}", entry.path().display()))?;
    }
    let mut config = ordo_journal::Config::new(copy);
    config.fsync = false;
    let opened = ordo_journal::Journal::open(config)
        .with_context(|| format!("opening a copy of {}", source.display()))?;
    let mut records = Vec::new();
    for record in opened.journal.read_after(0)? {
        let record = record?;
        records.push((record.id, record.data));
        if records.len() > JOURNAL_RECORDS_MAX {
            bail!("{} holds more than {JOURNAL_RECORDS_MAX} records", source.display());
        }
    }
    Ok(Some(EventJournal { name, records }))
}

/// Every order a client sent: how often, and whether a controller acknowledged it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub orders: BTreeMap<String, Sent>,
}

/// One order's requests.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Requests sent (the first and every retry).
    pub attempts: u32,
    pub acknowledged: bool,
    /// What the last request that was not acknowledged got.
    pub last_error: Option<String>,
}

impl Ledger {
    pub fn attempted(&self) -> BTreeSet<String> {
        self.orders.keys().cloned().collect()
    }

    pub fn acknowledged(&self) -> BTreeSet<String> {
        self.orders
            .iter()
            .filter(|(_, s)| s.acknowledged)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Requests sent in all.
    pub fn attempts(&self) -> u64 {
        self.orders.values().map(|s| u64::from(s.attempts)).sum()
    }
}

/// Sends commands to whichever controller is active: follows a 503's `active`, asks every
/// node's `/health` after a connection error, sends an unacknowledged command again.
#[derive(Clone)]
pub struct Orderer {
    api: HttpsClient,
    health: HttpsClient,
    /// Every node: id, API URL, whether it is a controller.
    voters: Vec<(u64, String, bool)>,
    /// The controller believed active.
    hint: Arc<Mutex<Option<String>>>,
    ledger: Arc<Mutex<Ledger>>,
}

/// How one request went.
enum Answer {
    Done(Json),
    /// Not the active controller, or the outcome is unknown: the active one, if named.
    Elsewhere(Option<String>),
    Unreachable(String),
}

impl Orderer {
    /// A copy of the ledger as it is now.
    pub fn ledger(&self) -> Ledger {
        lock(&self.ledger).clone()
    }

    /// The controller an answer or `/health` named as active, if any.
    async fn discover(&self) -> Option<String> {
        let mut named = None;
        for (_, url, _) in &self.voters {
            let Ok(h) = self
                .health
                .get_json::<Json>(&format!("{url}/api/v1/health"))
                .await
            else {
                continue;
            };
            if role(&h) == "active" {
                return Some(url.clone());
            }
            if named.is_none() {
                named = h["cluster"]["activeApiUrl"].as_str().map(str::to_owned);
            }
        }
        named.filter(|u| self.is_controller(u))
    }

    fn is_controller(&self, url: &str) -> bool {
        self.voters
            .iter()
            .any(|(_, u, controller)| *controller && u.trim_end_matches('/') == url.trim_end_matches('/'))
    }

    async fn send_once(&self, base: &str, method: &Method, path: &str, body: &Json) -> Answer {
        let url = format!("{}/api/v1{path}", base.trim_end_matches('/'));
        let bytes = match serde_json::to_vec(body) {
            Ok(b) => b,
            Err(e) => return Answer::Unreachable(format!("encoding the body: {e}")),
        };
        match self
            .api
            .request(method.clone(), &url, Some((bytes.into(), "application/json")))
            .await
        {
            Ok(r) if r.status.is_success() => {
                Answer::Done(serde_json::from_slice(&r.body).unwrap_or(Json::Null))
            }
            Ok(r) if r.status == StatusCode::SERVICE_UNAVAILABLE => {
                let answer: Json = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
                Answer::Elsewhere(answer["active"].as_str().map(str::to_owned))
            }
            Ok(r) => Answer::Done(json!({
                "refused": r.status.as_u16(),
                "body": String::from_utf8_lossy(&r.body),
            })),
            Err(e) => Answer::Unreachable(e.to_string()),
        }
    }

    /// Sends a command until a controller takes it (2xx); `on_attempt` is called before each
    /// request. Answers other than 2xx, 503 and no answer end it with an error.
    pub async fn command(
        &self,
        method: Method,
        path: &str,
        body: &Json,
        mut on_attempt: impl FnMut(),
    ) -> Result<Json> {
        let deadline = Instant::now() + Duration::from_millis(COMMAND_WAIT_MS);
        let mut last = String::from("no request sent");
        for _ in 0..COMMAND_ATTEMPTS_MAX {
            if Instant::now() > deadline {
                break;
            }
            let hint = lock(&self.hint).clone();
            let base = match hint {
                Some(url) => url,
                None => match self.discover().await {
                    Some(url) => {
                        *lock(&self.hint) = Some(url.clone());
                        url
                    }
                    None => {
                        last = "no node names an active controller".into();
                        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                        continue;
                    }
                },
            };
            on_attempt();
            match self.send_once(&base, &method, path, body).await {
                Answer::Done(answer) => {
                    if let Some(status) = answer.get("refused") {
                        bail!("{method} {path} at {base} answered {status}: {}", answer["body"]);
                    }
                    return Ok(answer);
                }
                Answer::Elsewhere(active) => {
                    last = format!("{base} answered 503 (active: {active:?})");
                    let next = active.filter(|a| self.is_controller(a) && *a != base);
                    let pause = next.is_none();
                    *lock(&self.hint) = next;
                    if pause {
                        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                    }
                }
                Answer::Unreachable(e) => {
                    last = e;
                    *lock(&self.hint) = None;
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
            }
        }
        bail!("{method} {path}: no controller took it in {COMMAND_WAIT_MS} ms; last: {last}")
    }

    /// Adds order `id` of `workflow`, retrying with the same id until a controller
    /// acknowledges it; every request is counted in the ledger.
    pub async fn add_order(&self, id: &str, workflow: &str) -> Result<()> {
        let body = json!({"orders": [{"id": id, "workflow": workflow}]});
        let ledger = self.ledger.clone();
        let answer = self
            .command(Method::POST, "/orders", &body, || {
                lock(&ledger).orders.entry(id.to_owned()).or_default().attempts += 1;
            })
            .await;
        let mut ledger = lock(&self.ledger);
        let sent = ledger.orders.entry(id.to_owned()).or_default();
        match answer {
            Ok(a) => {
                let result = &a["results"][0];
                if result["id"] == id && (result["added"] == true || result["duplicate"] == true) {
                    sent.acknowledged = true;
                    Ok(())
                } else {
                    sent.last_error = Some(a.to_string());
                    bail!("adding order {id}: {a}")
                }
            }
            Err(e) => {
                sent.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Sends order `id` to the controller at `base` once, without following anyone;
    /// counted in the ledger. Returns the HTTP status, or `None` when there was no answer.
    pub async fn add_order_at(&self, base: &str, id: &str, workflow: &str) -> Option<u16> {
        let body = json!({"orders": [{"id": id, "workflow": workflow}]});
        lock(&self.ledger).orders.entry(id.to_owned()).or_default().attempts += 1;
        let url = format!("{base}/api/v1/orders");
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let answer = self
            .api
            .request(Method::POST, &url, Some((bytes.into(), "application/json")))
            .await;
        let mut ledger = lock(&self.ledger);
        let sent = ledger.orders.entry(id.to_owned()).or_default();
        match answer {
            Ok(r) => {
                if r.status.is_success() {
                    sent.acknowledged = true;
                } else {
                    sent.last_error = Some(format!("{}", r.status));
                }
                Some(r.status.as_u16())
            }
            Err(e) => {
                sent.last_error = Some(e.to_string());
                None
            }
        }
    }
}

/// A steady load: orders `<prefix>-0`, `<prefix>-1`, ... added one after the other through
/// the [`Orderer`], each retried until acknowledged, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: watch::Receiver<usize>,
    /// `None` once its end was read.
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

/// Time for the load to reach a number of acknowledged orders.
const LOAD_WAIT_MS: u64 = 120_000;

impl Load {
    /// Starts adding orders of `workflow`, at most `orders_max`.
    pub fn start(orderer: &Orderer, workflow: &str, prefix: &str, orders_max: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, acknowledged) = watch::channel(0);
        let (orderer, workflow, prefix) =
            (orderer.clone(), workflow.to_owned(), prefix.to_owned());
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            for i in 0..orders_max {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                orderer
                    .add_order(&format!("{prefix}-{i}"), &workflow)
                    .await?;
                tx.send_replace(i + 1);
            }
            Ok(())
        });
        Load {
            stop,
            acknowledged,
            task: Some(task),
        }
    }

    /// Orders acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        *self.acknowledged.borrow()
    }

    /// Waits until `n` orders are acknowledged in all.
    pub async fn wait_acknowledged(&mut self, n: usize) -> Result<()> {
        let wait = self.acknowledged.wait_for(|a| *a >= n);
        let waited = tokio::time::timeout(Duration::from_millis(LOAD_WAIT_MS), wait)
            .await
            .map(|r| r.map(|_| ()));
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                // The load ended: say why.
                let reached = self.acknowledged();
                let why = match self.task.take() {
                    Some(task) => match task.await {
                        Ok(Ok(())) => "it sent all its orders".to_owned(),
                        Ok(Err(e)) => format!("{e:#}"),
                        Err(e) => format!("its task failed: {e}"),
                    },
                    None => "it ended before".to_owned(),
                };
                bail!("the load ended at {reached} acknowledged orders, before {n}: {why}")
            }
            Err(_) => bail!(
                "{} orders acknowledged in {LOAD_WAIT_MS} ms, waiting for {n}",
                self.acknowledged()
            ),
        }
    }

    /// Waits until `more` further orders are acknowledged.
    pub async fn wait_more(&mut self, more: usize) -> Result<()> {
        let n = self.acknowledged() + more;
        self.wait_acknowledged(n).await
    }

    /// Stops adding orders (the one being added is finished first) and says how the load
    /// ended.
    pub async fn stop(self) -> Result<usize> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task {
            task.await
                .map_err(|e| anyhow!("the load's task failed: {e}"))??;
        }
        Ok(*self.acknowledged.borrow())
    }
}
