//! The controller's TOML configuration; every key is documented in
//! `deploy/config/controller.toml`.

use ordo_model::ids::ORDER_ID_BYTES_MAX;
use ordo_model::order::{OrderLimits, input};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Largest accepted `limits.state_reads_max`.
pub const STATE_READS_MAX: usize = 1024;

/// The controller's configuration, with relative paths resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub controller_id: String,
    pub cluster_id: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub tls: TlsConfig,
    pub tokens: Vec<TokenConfig>,
    pub limits: Limits,
    pub retention: Retention,
    pub agents: AgentLinks,
    pub plan: PlanConfig,
    /// The replicated pair (controller A, controller B, the watch); `None`: one controller.
    pub cluster: Option<ClusterConfig>,
}

/// How a voter takes part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Voter {
    /// A controller: active when it leads, passive otherwise.
    Controller,
    /// The watch: stores the log and votes, never acts; hands leadership on when elected.
    Watch,
}

/// One voter of the cluster, as every node's configuration lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterNode {
    /// Its raft id (1 or more), unique in the cluster.
    pub id: u64,
    pub voter: Voter,
    /// Where its raft transport listens (`host:port`, mutual TLS).
    pub raft_address: String,
    /// Its API base URL (`https://host:port`): where clients are sent when it is active.
    pub api_url: String,
}

/// The `[cluster]` section: the same `nodes` on every node; only `node_id` differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id among `nodes`.
    pub node_id: u64,
    /// Where this node's raft transport listens.
    pub raft_listen: SocketAddr,
    /// Every voter, this node included.
    pub nodes: Vec<ClusterNode>,
    /// Raft's clock: one tick every this many milliseconds.
    #[serde(default = "ClusterConfig::default_tick_ms")]
    pub tick_ms: u64,
    /// A follower that hears from no leader for a random time in
    /// `[election_ticks, 2 * election_ticks)` ticks starts an election (the watch waits three
    /// times as long, so that a controller is elected first).
    #[serde(default = "ClusterConfig::default_election_ticks")]
    pub election_ticks: usize,
    /// A leader sends heartbeats every this many ticks.
    #[serde(default = "ClusterConfig::default_heartbeat_ticks")]
    pub heartbeat_ticks: usize,
    /// Largest raft message read from a peer (a snapshot is the big one), in bytes.
    #[serde(default = "ClusterConfig::default_message_bytes_max")]
    pub message_bytes_max: usize,
    /// This node joins a running cluster (added with `ordo cluster add-node`): it starts with
    /// an empty log and waits for the leader's snapshot instead of founding the cluster with
    /// `nodes`. Only read when its data directory is new.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join: bool,
}

impl ClusterConfig {
    fn default_tick_ms() -> u64 {
        25
    }
    fn default_election_ticks() -> usize {
        12
    }
    fn default_heartbeat_ticks() -> usize {
        2
    }
    fn default_message_bytes_max() -> usize {
        256 << 20
    }

    /// This node's entry.
    pub fn me(&self) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|n| n.id == self.node_id)
            .expect("a checked cluster configuration lists its own node")
    }

    /// The settings every node must agree on, as text: compared between peers when they
    /// connect (a disagreement is named and refused).
    pub fn shared_settings(&self, cluster_id: &str) -> Vec<(String, String)> {
        let mut nodes = self.nodes.clone();
        nodes.sort_by_key(|n| n.id);
        let mut out = vec![("cluster_id".to_owned(), cluster_id.to_owned())];
        for n in nodes {
            out.push((
                format!("cluster.nodes[id={}]", n.id),
                format!("{:?} {} {}", n.voter, n.raft_address, n.api_url),
            ));
        }
        out
    }

    fn check(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("cluster.node_id must be 1 or more".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        for n in &self.nodes {
            if n.id == 0 {
                return Err("cluster.nodes: an id must be 1 or more".into());
            }
            if !ids.insert(n.id) {
                return Err(format!("cluster.nodes: id {} is listed twice", n.id));
            }
            if n.raft_address.is_empty() || n.raft_address.contains('/') {
                return Err(format!(
                    "cluster.nodes[id={}].raft_address must be host:port, not {:?}",
                    n.id, n.raft_address
                ));
            }
            if !n.api_url.starts_with("https://") {
                return Err(format!(
                    "cluster.nodes[id={}].api_url must be an https:// URL, not {:?}",
                    n.id, n.api_url
                ));
            }
        }
        if !ids.contains(&self.node_id) {
            return Err(format!(
                "cluster.node_id {} is not one of cluster.nodes",
                self.node_id
            ));
        }
        if !self.nodes.iter().any(|n| n.voter == Voter::Controller) {
            return Err("cluster.nodes must list at least one controller".into());
        }
        if self.tick_ms == 0 || self.election_ticks < 3 || self.heartbeat_ticks == 0 {
            return Err(
                "cluster.tick_ms must be > 0, cluster.election_ticks at least 3 and cluster.heartbeat_ticks > 0"
                    .into(),
            );
        }
        if self.heartbeat_ticks >= self.election_ticks {
            return Err("cluster.heartbeat_ticks must be less than cluster.election_ticks".into());
        }
        if self.message_bytes_max < 1 << 20 {
            return Err("cluster.message_bytes_max must be at least 1 MiB".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_certificate: PathBuf,
    pub client_key: PathBuf,
    pub ca: PathBuf,
}

/// An API token: its SHA-256 (hex) and role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub sha256: String,
    pub role: Role,
}

/// What a token may do (the published roles).
pub use ordo_api::auth::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub request_bytes_max: usize,
    pub frame_bytes_max: usize,
    /// Largest event streamed to readers, in bytes of JSON (see [`crate::streamed`]).
    pub event_bytes_max: usize,
    pub orders_per_request_max: usize,
    pub subscriber_events_max: usize,
    pub long_poll_ms_max: u64,
    pub state_reads_max: usize,
    pub segment_bytes_max: u64,
    pub snapshot_events: u64,
    pub journal_fsync: bool,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub connections_max: usize,
    /// What one order may bring in (see `ordo_model::order::input`).
    pub order_args_bytes_max: usize,
    pub arg_name_bytes_max: usize,
    pub arg_value_bytes_max: usize,
    pub order_id_bytes_max: usize,
    pub unauthenticated_connections_max: usize,
}

impl Limits {
    /// The limits the model checks an order's input against.
    pub fn order_limits(&self) -> OrderLimits {
        OrderLimits {
            order_args_bytes_max: self.order_args_bytes_max,
            arg_name_bytes_max: self.arg_name_bytes_max,
            arg_value_bytes_max: self.arg_value_bytes_max,
            order_id_bytes_max: self.order_id_bytes_max,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_bytes_max: 16 << 20,
            frame_bytes_max: 16 << 20,
            event_bytes_max: ordo_api::limits::EVENT_BYTES_MAX_DEFAULT,
            orders_per_request_max: 10_000,
            subscriber_events_max: 100_000,
            long_poll_ms_max: 60_000,
            state_reads_max: 2,
            segment_bytes_max: 64 << 20,
            snapshot_events: 100_000,
            journal_fsync: true,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            connections_max: 1024,
            order_args_bytes_max: input::ORDER_ARGS_BYTES_MAX_DEFAULT,
            arg_name_bytes_max: input::ARG_NAME_BYTES_MAX_DEFAULT,
            arg_value_bytes_max: input::ARG_VALUE_BYTES_MAX_DEFAULT,
            order_id_bytes_max: input::ORDER_ID_BYTES_MAX_DEFAULT,
            unauthenticated_connections_max: 512,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub terminated_orders_ms: u64,
    pub events_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            terminated_orders_ms: 7 * 24 * 3600 * 1000,
            events_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentLinks {
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
}

impl Default for AgentLinks {
    fn default() -> Self {
        AgentLinks {
            reconnect_min_ms: 200,
            reconnect_max_ms: 10_000,
            heartbeat_interval_ms: 5000,
            heartbeat_timeout_ms: 20_000,
        }
    }
}

/// The `[plan]` section: the daily planner ([`crate::plan`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanConfig {
    /// How many days ahead the plan is kept.
    pub days_ahead: u32,
    /// How long before its instant a planned order is added and handed to its agent.
    pub attach_ahead_ms: u64,
    /// An instant passed by more than this when its order would be added counts as missed.
    pub late_ms: u64,
    /// Planned instants of one schedule not yet decided, at most.
    pub fires_per_schedule_max: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        let d = crate::plan::PlanSettings::default();
        PlanConfig {
            days_ahead: d.days_ahead,
            attach_ahead_ms: d.attach_ahead_ms,
            late_ms: d.late_ms,
            fires_per_schedule_max: d.fires_per_schedule_max,
        }
    }
}

impl Config {
    /// The planner's settings: `[plan]`, with the order retention as its history.
    pub fn plan_settings(&self) -> crate::plan::PlanSettings {
        crate::plan::PlanSettings {
            days_ahead: self.plan.days_ahead,
            attach_ahead_ms: self.plan.attach_ahead_ms,
            late_ms: self.plan.late_ms,
            fires_per_schedule_max: self.plan.fires_per_schedule_max,
            history_ms: self.retention.terminated_orders_ms,
        }
    }
}

/// The configuration file as written: what [`Config::parse`] reads (then checks and resolves)
/// and what tools that set up a controller (`ordo up`) serialise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub controller_id: String,
    pub cluster_id: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub tls: TlsConfig,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub agents: AgentLinks,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    #[serde(default)]
    pub plan: PlanConfig,
}

impl ConfigFile {
    /// Reads configuration text (unchecked: [`Config::from_file`] checks it).
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(#[from] ordo_net::config::ReadError),
    #[error("bad controller configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn check_id(key: &str, id: &str) -> Result<(), String> {
    ordo_model::ids::AgentId::new(id)
        .map(|_| ())
        .map_err(|e| format!("{key} {e}"))
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (text, base) = ordo_net::config::read(path)?;
        Config::parse(&text, &base).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration text; relative paths are taken relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        Config::from_file(ConfigFile::parse(text)?, base)
    }

    /// Checks a configuration; relative paths are taken relative to `base`.
    pub fn from_file(f: ConfigFile, base: &Path) -> Result<Config, String> {
        check_id("controller_id", &f.controller_id)?;
        check_id("cluster_id", &f.cluster_id)?;
        for t in &f.tokens {
            if !ordo_api::auth::is_token_hash(&t.sha256) {
                return Err(format!(
                    "token {:?}: sha256 must be 64 hex digits (the SHA-256 of the token)",
                    t.name
                ));
            }
        }
        let l = &f.limits;
        let positive = [
            ("request_bytes_max", l.request_bytes_max as u64),
            ("frame_bytes_max", l.frame_bytes_max as u64),
            ("orders_per_request_max", l.orders_per_request_max as u64),
            ("subscriber_events_max", l.subscriber_events_max as u64),
            ("long_poll_ms_max", l.long_poll_ms_max),
            ("state_reads_max", l.state_reads_max as u64),
            ("segment_bytes_max", l.segment_bytes_max),
            ("snapshot_events", l.snapshot_events),
            ("handshake_timeout_ms", l.handshake_timeout_ms),
            ("idle_timeout_ms", l.idle_timeout_ms),
            ("connections_max", l.connections_max as u64),
            ("order_args_bytes_max", l.order_args_bytes_max as u64),
            ("arg_name_bytes_max", l.arg_name_bytes_max as u64),
            ("arg_value_bytes_max", l.arg_value_bytes_max as u64),
            ("order_id_bytes_max", l.order_id_bytes_max as u64),
            (
                "unauthenticated_connections_max",
                l.unauthenticated_connections_max as u64,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("limits.{key} must be greater than 0"));
        }
        if l.order_id_bytes_max > ORDER_ID_BYTES_MAX {
            return Err(format!(
                "limits.order_id_bytes_max is {}; an order id is never longer than {ORDER_ID_BYTES_MAX} bytes",
                l.order_id_bytes_max
            ));
        }
        if l.event_bytes_max < crate::streamed::EVENT_BYTES_MIN {
            return Err(format!(
                "limits.event_bytes_max must be at least {} bytes (an agent's output event can be that large)",
                crate::streamed::EVENT_BYTES_MIN
            ));
        }
        if l.state_reads_max > STATE_READS_MAX {
            return Err(format!(
                "limits.state_reads_max must be at most {STATE_READS_MAX}"
            ));
        }
        if l.unauthenticated_connections_max > l.connections_max {
            return Err(
                "limits.unauthenticated_connections_max must be at most limits.connections_max"
                    .into(),
            );
        }
        let a = &f.agents;
        if a.reconnect_min_ms == 0 || a.reconnect_max_ms < a.reconnect_min_ms {
            return Err(
                "agents.reconnect_min_ms must be > 0 and at most agents.reconnect_max_ms".into(),
            );
        }
        if a.heartbeat_interval_ms == 0 || a.heartbeat_timeout_ms <= a.heartbeat_interval_ms {
            return Err(
                "agents.heartbeat_timeout_ms must be greater than agents.heartbeat_interval_ms > 0"
                    .into(),
            );
        }
        if let Some(c) = &f.cluster {
            c.check()?;
        }
        let p = &f.plan;
        if p.days_ahead == 0 || p.days_ahead > 365 {
            return Err("plan.days_ahead must be 1 to 365".into());
        }
        if p.fires_per_schedule_max == 0 {
            return Err("plan.fires_per_schedule_max must be greater than 0".into());
        }
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        Ok(Config {
            controller_id: f.controller_id,
            cluster_id: f.cluster_id,
            data_dir: abs(f.data_dir),
            listen: f.listen,
            tls: TlsConfig {
                certificate: abs(f.tls.certificate),
                key: abs(f.tls.key),
                client_certificate: abs(f.tls.client_certificate),
                client_key: abs(f.tls.client_key),
                ca: abs(f.tls.ca),
            },
            tokens: f.tokens,
            limits: f.limits,
            retention: f.retention,
            agents: f.agents,
            plan: f.plan,
            cluster: f.cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../deploy/config/controller.toml");
        let c = Config::parse(text, Path::new("/etc/ordo")).unwrap();
        assert_eq!(c.cluster_id, "main");
        assert_eq!(c.tokens[0].role, Role::Admin);
        assert!(c.tls.ca.starts_with("/etc/ordo"));
        // The documented values are the defaults.
        assert_eq!(c.limits.order_limits(), OrderLimits::default());
    }

    #[test]
    fn a_written_file_reads_back() {
        let text = include_str!("../../deploy/config/controller.toml");
        let mut file = ConfigFile::parse(text).unwrap();
        file.limits.journal_fsync = false;
        let written = file.to_toml().unwrap();
        assert_eq!(ConfigFile::parse(&written).unwrap(), file);
        let c = Config::parse(&written, Path::new("/etc/ordo")).unwrap();
        assert!(!c.limits.journal_fsync);
    }

    #[test]
    fn bad_values_are_named() {
        let text = include_str!("../../deploy/config/controller.toml");
        let e = Config::parse(
            &text.replace("sha256 = \"0000", "sha256 = \"zz00"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = Config::parse(
            &text.replace("role = \"admin\"", "role = \"root\""),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("root"), "{e}");
        let e = Config::parse(
            &text.replace("snapshot_events = 100000", "snapshot_events = 0"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("snapshot_events"), "{e}");
        let e = Config::parse(
            &text.replace("order_id_bytes_max = 255", "order_id_bytes_max = 256"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("order_id_bytes_max"), "{e}");
        let c = Config::parse(
            &text.replace(
                "order_args_bytes_max = 65536",
                "order_args_bytes_max = 1000",
            ),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.limits.order_limits().order_args_bytes_max, 1000);
        let e = Config::parse(
            &text.replace("event_bytes_max = 67108864", "event_bytes_max = 1000"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("event_bytes_max"), "{e}");
        let e = Config::parse(&format!("{text}\n[extra]\n"), Path::new(".")).unwrap_err();
        assert!(e.contains("extra"), "{e}");
    }
}
