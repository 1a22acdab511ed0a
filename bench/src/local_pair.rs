//! The controller pair of this build as separate processes on 127.0.0.1: controller A
//! (raft node 1), controller B (node 2) and the watch (node 3), each an `ordo-controller`
//! with a `[cluster]` section, on distinct API and raft ports, plus the agents of an
//! installation made by [`crate::local_ordo::install`].
//!
//! Layout (under the installation's directory, next to what `ordo_cli::local::setup` wrote):
//!
//! ```text
//! certs/node-<id>.pem/.key      node <id>'s server and client certificate: 127.0.0.1,
//!                               localhost, URI ordo:controller:<cluster id>
//! controller-<id>.toml          its configuration: the installation's controller.toml with
//!                               its own id, port, data dir, certificates and [cluster]
//! node-<id>/                    its data dir (journal/, raft/)
//! node-<id>.log                 its stdout and stderr
//! ```
//!
//! The same `[[cluster.nodes]]` list is in every node's configuration; `[cluster]` keys not
//! given in [`PairOptions::cluster_settings`] keep the controller's defaults. Roles are read
//! from each node's `GET /api/v1/health` (`role`, `cluster`).

use crate::controller_client::ControllerClient;
use crate::local_ordo::{
    self, Binaries, CLUSTER_ID, Process, START_TIMEOUT_MS, StartOptions, wait_answering,
};
use anyhow::{Context, anyhow, bail};
use ordo_api::view::ControllerHealth;
use ordo_cli::local::{self, Local};
use ordo_controller::config::{ClusterConfig, ClusterNode, Voter};
use ordo_net::certs::{self, IssueSpec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often roles are polled while waiting for one.
const POLL_MS: u64 = 10;

/// What to start.
pub struct PairOptions {
    pub start: StartOptions,
    /// `[cluster]` keys set on every node (`key = value`, TOML), e.g. `tick_ms = 10`.
    pub cluster_settings: Vec<String>,
}

/// One voter of the pair.
pub struct Node {
    /// Its raft id.
    pub id: u64,
    pub voter: Voter,
    /// `controller A`, `controller B` or `watch`.
    pub name: String,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Its API, with the admin token.
    pub client: ControllerClient,
    /// The running process; `None` after [`LocalPair::kill9`].
    pub process: Option<Process>,
}

/// A running pair with its agents.
pub struct LocalPair {
    pub dir: tempfile::TempDir,
    pub local: Local,
    /// Controller A, controller B, the watch (raft ids 1, 2, 3).
    pub nodes: Vec<Node>,
    pub agents: Vec<(String, Process)>,
    binaries: Binaries,
    log_filter: String,
}

/// `n` distinct free ports of 127.0.0.1.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n * 20 {
        if ports.len() == n {
            break;
        }
        let port = local::free_port()?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    if ports.len() < n {
        bail!("found only {} distinct free ports of {n}", ports.len());
    }
    Ok(ports)
}

/// The `[cluster]` section of node `node_id`: `nodes`, its raft listener, and `settings`
/// (`key = value` lines) over the controller's defaults.
fn cluster_config(
    node_id: u64,
    nodes: &[ClusterNode],
    settings: &[String],
) -> anyhow::Result<ClusterConfig> {
    let me = nodes
        .iter()
        .find(|n| n.id == node_id)
        .ok_or_else(|| anyhow!("node {node_id} is not among the nodes"))?;
    let mut table: toml::Table =
        toml::from_str(&settings.join("\n")).context("the [cluster] settings")?;
    table.insert("node_id".into(), toml::Value::Integer(node_id as i64));
    table.insert(
        "raft_listen".into(),
        toml::Value::String(me.raft_address.clone()),
    );
    table.insert("nodes".into(), toml::Value::try_from(nodes)?);
    table
        .try_into()
        .with_context(|| format!("the [cluster] section of node {node_id} with {settings:?}"))
}

impl LocalPair {
    /// Sets up a fresh installation with three voters, starts them, waits until one of them
    /// is active, and starts the agents.
    pub async fn start(o: &PairOptions) -> anyhow::Result<LocalPair> {
        let (dir, local) = local_ordo::install(&o.start)?;
        let certs_dir = local
            .ca
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", local.ca.display()))?
            .to_owned();
        let ports = free_ports(6)?;
        let roles = [
            (1, Voter::Controller, "controller A", "a"),
            (2, Voter::Controller, "controller B", "b"),
            (3, Voter::Watch, "watch", "watch"),
        ];
        let cluster_nodes: Vec<ClusterNode> = roles
            .iter()
            .zip(ports.chunks(2))
            .map(|((id, voter, ..), ports)| ClusterNode {
                id: *id,
                voter: *voter,
                raft_address: format!("127.0.0.1:{}", ports[1]),
                api_url: format!("https://127.0.0.1:{}", ports[0]),
            })
            .collect();
        let mut nodes = Vec::new();
        for ((id, voter, name, short), node) in roles.iter().zip(&cluster_nodes) {
            let cert_name = format!("node-{id}");
            let cert = certs::issue(
                &certs_dir,
                &cert_name,
                &IssueSpec::local([ordo_net::identity::controller_uri(CLUSTER_ID)]),
            )?;
            let config = dir.path().join(format!("controller-{id}.toml"));
            std::fs::copy(&local.controller_config, &config)
                .with_context(|| format!("writing {}", config.display()))?;
            let cluster = cluster_config(*id, &cluster_nodes, &o.cluster_settings)?;
            let listen = node
                .api_url
                .trim_start_matches("https://")
                .parse()
                .with_context(|| format!("the API address of {}", node.api_url))?;
            local::edit_controller_config(&config, |c| {
                c.controller_id = format!("controller-{short}");
                c.data_dir = dir.path().join(format!("node-{id}"));
                c.listen = listen;
                c.tls.certificate = cert.cert_path.clone();
                c.tls.key = cert.key_path.clone();
                c.tls.client_certificate = cert.cert_path.clone();
                c.tls.client_key = cert.key_path.clone();
                c.cluster = Some(cluster);
            })?;
            nodes.push(Node {
                id: *id,
                voter: *voter,
                name: (*name).to_owned(),
                log: dir.path().join(format!("node-{id}.log")),
                client: local_ordo::admin_client(&local, &node.api_url)?,
                config,
                process: None,
            });
        }
        let mut pair = LocalPair {
            dir,
            local,
            nodes,
            agents: Vec::new(),
            binaries: o.start.binaries.clone(),
            log_filter: o.start.log_filter.clone(),
        };
        for i in 0..pair.nodes.len() {
            pair.start_node(i)?;
        }
        for i in 0..pair.nodes.len() {
            pair.wait_answering(i).await?;
        }
        pair.active(Duration::from_millis(START_TIMEOUT_MS))
            .await
            .context("after the start")?;
        pair.agents = local_ordo::start_agents(
            &pair.local,
            pair.dir.path(),
            &pair.binaries,
            &pair.log_filter,
        )?;
        Ok(pair)
    }

    /// Starts node `i` (again) on its configuration and data; its output is appended to its
    /// log.
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        assert!(node.process.is_none(), "{} is already running", node.name);
        node.process = Some(Process::start(
            &node.name,
            &self.binaries.controller,
            &node.config,
            node.log.clone(),
            &self.log_filter,
        )?);
        Ok(())
    }

    /// Waits until node `i` answers `/health`.
    pub async fn wait_answering(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let process = node
            .process
            .as_mut()
            .ok_or_else(|| anyhow!("{} is not running", node.name))?;
        wait_answering(
            &node.client,
            process,
            Duration::from_millis(START_TIMEOUT_MS),
        )
        .await
    }

    /// Kills node `i` with SIGKILL and waits until it is gone.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill9();
        }
    }

    /// Node `i`'s `/health`.
    pub async fn health(&self, i: usize) -> anyhow::Result<ControllerHealth> {
        self.nodes[i].client.health().await
    }

    /// Every running node's `/health` (an error for one that does not answer).
    pub async fn healths(&self) -> Vec<anyhow::Result<ControllerHealth>> {
        let asks = self.nodes.iter().map(|n| async {
            if n.process.is_none() {
                bail!("{} is not running", n.name);
            }
            n.client.health().await
        });
        futures_util::future::join_all(asks).await
    }

    /// The node that is active, once exactly one says so.
    pub async fn active(&self, within: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            let healths = self.healths().await;
            let active: Vec<usize> = (0..healths.len())
                .filter(|i| matches!(&healths[*i], Ok(h) if h.role == "active"))
                .collect();
            if let [one] = active[..] {
                return Ok(one);
            }
            if Instant::now() > deadline {
                bail!(
                    "not exactly one active node within {} ms: {}\n{}",
                    within.as_millis(),
                    describe(&self.nodes, &healths),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Waits until node `i` is active with `agents` agents coupled.
    pub async fn wait_coupled(
        &self,
        i: usize,
        agents: usize,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let health = self.health(i).await;
            if let Ok(h) = &health
                && h.role == "active"
                && h.cluster
                    .as_ref()
                    .is_some_and(|c| c.agents_coupled >= agents)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} is not active with {agents} agents coupled within {} ms: {}\n{}",
                    self.nodes[i].name,
                    within.as_millis(),
                    describe(&self.nodes[i..=i], &[health]),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Waits until node `i` is passive (or the watch) and has applied what the active node
    /// had committed just before it was asked.
    pub async fn wait_caught_up(&self, i: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let follower_role = match self.nodes[i].voter {
            Voter::Controller => "passive",
            Voter::Watch => "watch",
        };
        loop {
            let active = self.active(deadline.saturating_duration_since(Instant::now()));
            let commit = match active.await {
                Ok(a) if a != i => self
                    .health(a)
                    .await
                    .ok()
                    .and_then(|h| h.cluster)
                    .map(|c| c.commit),
                _ => None,
            };
            let health = self.health(i).await;
            if let (Some(commit), Ok(h)) = (commit, &health)
                && h.role == follower_role
                && h.cluster.as_ref().is_some_and(|c| c.applied >= commit)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not catch up as {follower_role} within {} ms (the active node's commit {commit:?}): {}\n{}",
                    self.nodes[i].name,
                    within.as_millis(),
                    describe(&self.nodes[i..=i], &[health]),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// An `agent:` inventory document for one of the agents.
    pub fn agent_yaml(&self, id: &str) -> anyhow::Result<String> {
        local_ordo::agent_yaml(&self.local, id)
    }

    pub fn agent(&self, id: &str) -> anyhow::Result<&Process> {
        self.agents
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, p)| p)
            .ok_or_else(|| anyhow!("no agent {id}"))
    }

    /// Every running server process (nodes, then agents).
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.nodes
            .iter()
            .filter_map(|n| n.process.as_ref())
            .chain(self.agents.iter().map(|(_, p)| p))
    }

    /// The end of every server's log.
    pub fn logs(&self) -> String {
        let tail = |path: &PathBuf| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let start = text.len().saturating_sub(3000);
            let start = (start..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            text[start..].to_owned()
        };
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!(
                "--- {} (node {}, {})\n{}\n",
                n.name,
                n.id,
                n.log.display(),
                tail(&n.log)
            ));
        }
        for (id, p) in &self.agents {
            out.push_str(&format!("--- agent {id}\n{}\n", p.log_tail(3000)));
        }
        out
    }

    /// Stops the agents, then the nodes (SIGTERM); false when one needed SIGKILL.
    pub fn stop(&mut self) -> bool {
        let mut clean = true;
        for (_, p) in &mut self.agents {
            clean &= p.stop();
        }
        for n in &mut self.nodes {
            if let Some(p) = &mut n.process {
                clean &= p.stop();
            }
        }
        clean
    }
}

/// One line per node: its name and what its `/health` said.
fn describe(nodes: &[Node], healths: &[anyhow::Result<ControllerHealth>]) -> String {
    nodes
        .iter()
        .zip(healths)
        .map(|(n, h)| match h {
            Ok(h) => format!(
                "\n  {} (node {}): role {}, cluster {}",
                n.name,
                n.id,
                h.role,
                h.cluster
                    .as_ref()
                    .and_then(|c| serde_json::to_string(c).ok())
                    .unwrap_or_else(|| "none".into())
            ),
            Err(e) => format!("\n  {} (node {}): {e:#}", n.name, n.id),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<ClusterNode> {
        (1..=3)
            .map(|id| ClusterNode {
                id,
                voter: if id == 3 {
                    Voter::Watch
                } else {
                    Voter::Controller
                },
                raft_address: format!("127.0.0.1:{}", 4450 + id),
                api_url: format!("https://127.0.0.1:{}", 4440 + id),
            })
            .collect()
    }

    #[test]
    fn a_cluster_section_keeps_the_defaults_unless_set() {
        let plain = cluster_config(2, &nodes(), &[]).unwrap();
        assert_eq!(plain.node_id, 2);
        assert_eq!(plain.raft_listen, "127.0.0.1:4452".parse().unwrap());
        assert_eq!(plain.nodes, nodes());
        let set = cluster_config(2, &nodes(), &["tick_ms = 7".into()]).unwrap();
        assert_eq!(set.tick_ms, 7);
        assert_eq!(set.election_ticks, plain.election_ticks);
        assert!(cluster_config(4, &nodes(), &[]).is_err());
        assert!(cluster_config(1, &nodes(), &["no_such_key = 1".into()]).is_err());
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(6).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 6);
    }

    #[tokio::test]
    async fn process_pair_elects_one_active_that_a_kill_moves_to_the_other_controller()
    -> anyhow::Result<()> {
        let parent = tempfile::tempdir()?;
        let mut pair = LocalPair::start(&PairOptions {
            start: StartOptions {
                parent_dir: parent.path().to_owned(),
                agents: vec!["a1".into()],
                journal_fsync: false,
                log_filter: "warn".into(),
                agent_limits: vec![],
                binaries: Binaries::of_this_build(false)?,
            },
            cluster_settings: vec![],
        })
        .await?;
        // Every node's configuration is one the controller accepts.
        for n in &pair.nodes {
            let config = ordo_controller::config::Config::load(&n.config)?;
            assert_eq!(config.cluster.map(|c| c.node_id), Some(n.id));
        }
        let within = Duration::from_secs(60);
        let first = pair.active(within).await?;
        assert_eq!(pair.nodes[first].voter, Voter::Controller);
        pair.nodes[first]
            .client
            .deploy(&[("agent.yaml", pair.agent_yaml("a1")?)])
            .await?;
        pair.wait_coupled(first, 1, within).await?;
        pair.kill9(first);
        let second = pair.active(within).await?;
        assert_ne!(second, first);
        assert_eq!(pair.nodes[second].voter, Voter::Controller);
        pair.wait_coupled(second, 1, within).await?;
        pair.start_node(first)?;
        pair.wait_answering(first).await?;
        pair.wait_caught_up(first, within).await?;
        assert!(pair.stop(), "the servers stop on SIGTERM");
        Ok(())
    }
}
