//! The agent's TOML configuration; every key is documented in `deploy/config/agent.toml`.

use ordo_model::ids::AgentId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Smallest `frame_bytes_max` accepted.
pub const FRAME_BYTES_MIN: usize = 64 * 1024;

/// The agent's configuration, with relative paths already resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub agent_id: AgentId,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub limits: Limits,
    /// `Some(director)`: the agent runs as a subagent of that director (`[subagent]`).
    pub subagent_of: Option<AgentId>,
    /// `[register]`: the agent registers itself with a join token ([`crate::register`]).
    pub register: Option<Register>,
    /// `Some`: the agent is one node of a director pair (`[pair]`, see [`crate::pair`]).
    pub pair: Option<PairSection>,
}

/// How a node of a director pair takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairVoter {
    /// A director: active (the agent the controller couples with) when it leads, passive
    /// otherwise.
    Director,
    /// The third voter: stores the log and votes, never directs; hands leadership on when
    /// elected.
    Watch,
}

/// One voter of a director pair, as every node's configuration lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairNode {
    /// Its raft id (1 or more), unique in the pair.
    pub id: u64,
    pub voter: PairVoter,
    /// Where its raft transport listens (`host:port`, mutual TLS with the agent's certificate).
    pub raft_address: String,
    /// A director's agent URL (`wss://host:port`, the agent object's `url` or
    /// `backupDirector`): named to a controller that reaches the passive one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `[pair]`: the agent is a node of a director pair — the director, the backup director and
/// a third voter (the watch) — whose journal is one raft log. The same `nodes` on every node;
/// only `node_id` differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSection {
    /// This node's id among `nodes`.
    pub node_id: u64,
    /// Where this node's raft transport listens.
    pub raft_listen: SocketAddr,
    /// Every voter, this node included: two directors and one watch.
    pub nodes: Vec<PairNode>,
    /// Raft's clock: one tick every this many milliseconds.
    #[serde(default = "PairSection::default_tick_ms")]
    pub tick_ms: u64,
    /// A follower that hears from no leader for `[election_ticks, 2 * election_ticks)` ticks
    /// starts an election (the watch waits three times as long).
    #[serde(default = "PairSection::default_election_ticks")]
    pub election_ticks: usize,
    /// A leader sends heartbeats every this many ticks.
    #[serde(default = "PairSection::default_heartbeat_ticks")]
    pub heartbeat_ticks: usize,
    /// Largest raft message read from a peer, in bytes.
    #[serde(default = "PairSection::default_message_bytes_max")]
    pub message_bytes_max: usize,
}

impl PairSection {
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
    pub fn me(&self) -> &PairNode {
        self.nodes
            .iter()
            .find(|n| n.id == self.node_id)
            .expect("a checked pair configuration lists its own node")
    }

    /// The settings every node must agree on, as text (compared when peers connect).
    pub fn shared_settings(&self, agent_id: &str) -> Vec<(String, String)> {
        let mut nodes = self.nodes.clone();
        nodes.sort_by_key(|n| n.id);
        let mut out = vec![("agent_id".to_owned(), agent_id.to_owned())];
        for n in nodes {
            out.push((
                format!("pair.nodes[id={}]", n.id),
                format!(
                    "{:?} {} {}",
                    n.voter,
                    n.raft_address,
                    n.url.as_deref().unwrap_or("-")
                ),
            ));
        }
        out
    }

    fn check(&self, frame_bytes_max: usize) -> Result<(), String> {
        let mut ids = std::collections::BTreeSet::new();
        for n in &self.nodes {
            if n.id == 0 {
                return Err("pair.nodes: an id must be 1 or more".into());
            }
            if !ids.insert(n.id) {
                return Err(format!("pair.nodes: id {} is listed twice", n.id));
            }
            if n.raft_address.is_empty() || n.raft_address.contains('/') {
                return Err(format!(
                    "pair.nodes[id={}].raft_address must be host:port, not {:?}",
                    n.id, n.raft_address
                ));
            }
            match (n.voter, &n.url) {
                (PairVoter::Director, None) => {
                    return Err(format!("pair.nodes[id={}]: a director needs its url", n.id));
                }
                (PairVoter::Watch, Some(_)) => {
                    return Err(format!(
                        "pair.nodes[id={}]: the watch has no url (it never directs)",
                        n.id
                    ));
                }
                _ => {}
            }
        }
        let directors = self
            .nodes
            .iter()
            .filter(|n| n.voter == PairVoter::Director)
            .count();
        if directors != 2 || self.nodes.len() != 3 {
            return Err(format!(
                "pair.nodes must list two directors and one watch, not {directors} directors of {} nodes",
                self.nodes.len()
            ));
        }
        if !ids.contains(&self.node_id) {
            return Err(format!(
                "pair.node_id {} is not one of pair.nodes",
                self.node_id
            ));
        }
        let positive = [
            ("tick_ms", self.tick_ms),
            ("election_ticks", self.election_ticks as u64),
            ("heartbeat_ticks", self.heartbeat_ticks as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("pair.{key} must be greater than 0"));
        }
        if self.heartbeat_ticks >= self.election_ticks {
            return Err("pair.heartbeat_ticks must be less than pair.election_ticks".into());
        }
        // An entry is one batch of journal records; a record may be twice a frame.
        if self.message_bytes_max < frame_bytes_max.saturating_mul(4) {
            return Err(format!(
                "pair.message_bytes_max must be at least 4 × limits.frame_bytes_max ({} bytes)",
                frame_bytes_max.saturating_mul(4)
            ));
        }
        Ok(())
    }
}

/// `[register]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSection {
    /// The controller's API, `https://host:port`.
    pub controller: String,
    /// The one-time join token, or `token_file`, a file holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The `wss://host:port` URL the controller (or the director) reaches this agent at.
    pub url: String,
    /// A subagent's priority (`selection: priority`).
    #[serde(default)]
    pub priority: i32,
    /// A subagent's process limit (the cluster's default when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_limit: Option<u32>,
    /// The CA the controller's API certificate is checked with; `tls.controller_ca` when not
    /// given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// `[register]`, checked, its token read.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    pub controller: String,
    pub token: String,
    pub url: String,
    pub priority: i32,
    pub process_limit: Option<u32>,
    pub ca: PathBuf,
}

/// The largest token file read, in bytes.
const TOKEN_FILE_BYTES_MAX: u64 = 4096;

/// `[subagent]`: the agent runs as a subagent — no journal, no controller session; it runs
/// the jobs its director sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubagentSection {
    /// The director's agent id (its certificate's URI SAN `ordo:agent:<id>`).
    pub director: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub controller_ca: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub processes_max: usize,
    pub outbox_bytes_max: u64,
    /// Bytes of records held in memory while the journal's file system is full; beyond it
    /// orders are not stepped (running jobs still end and their events are kept).
    pub pending_events_bytes_max: u64,
    pub frame_bytes_max: usize,
    pub log_chunk_bytes_max: usize,
    pub log_bytes_max: u64,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub connections_max: usize,
    pub unauthenticated_connections_max: usize,
    pub segment_bytes_max: u64,
    pub snapshot_interval_records: u64,
    pub journal_fsync: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            processes_max: 64,
            outbox_bytes_max: 1 << 30,
            pending_events_bytes_max: 64 << 20,
            frame_bytes_max: 16 << 20,
            log_chunk_bytes_max: 8192,
            log_bytes_max: 1 << 20,
            heartbeat_interval_ms: 5000,
            heartbeat_timeout_ms: 20_000,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            connections_max: 64,
            unauthenticated_connections_max: 32,
            segment_bytes_max: 64 << 20,
            snapshot_interval_records: 10_000,
            journal_fsync: true,
        }
    }
}

/// The configuration file as written: what [`Config::parse`] reads (then checks and resolves)
/// and what tools that set up an agent (`ordo up`) serialise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub agent_id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagent: Option<SubagentSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<RegisterSection>,
    pub pair: Option<PairSection>,
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
    #[error("bad agent configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
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
        let agent_id = AgentId::new(f.agent_id).map_err(|e| format!("agent_id {e}"))?;
        let l = &f.limits;
        let positive = [
            ("processes_max", l.processes_max as u64),
            ("outbox_bytes_max", l.outbox_bytes_max),
            ("pending_events_bytes_max", l.pending_events_bytes_max),
            ("frame_bytes_max", l.frame_bytes_max as u64),
            ("log_chunk_bytes_max", l.log_chunk_bytes_max as u64),
            ("heartbeat_interval_ms", l.heartbeat_interval_ms),
            ("heartbeat_timeout_ms", l.heartbeat_timeout_ms),
            ("handshake_timeout_ms", l.handshake_timeout_ms),
            ("idle_timeout_ms", l.idle_timeout_ms),
            ("connections_max", l.connections_max as u64),
            (
                "unauthenticated_connections_max",
                l.unauthenticated_connections_max as u64,
            ),
            ("segment_bytes_max", l.segment_bytes_max),
            ("snapshot_interval_records", l.snapshot_interval_records),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("limits.{key} must be greater than 0"));
        }
        if l.unauthenticated_connections_max > l.connections_max {
            return Err(
                "limits.unauthenticated_connections_max must be at most limits.connections_max"
                    .into(),
            );
        }
        if l.heartbeat_timeout_ms <= l.heartbeat_interval_ms {
            return Err(
                "limits.heartbeat_timeout_ms must be greater than limits.heartbeat_interval_ms"
                    .into(),
            );
        }
        if l.frame_bytes_max < FRAME_BYTES_MIN {
            return Err(format!(
                "limits.frame_bytes_max must be at least {FRAME_BYTES_MIN} bytes"
            ));
        }
        if l.log_chunk_bytes_max > ordo_model::wire::OUTPUT_CHUNK_BYTES_MAX {
            return Err(format!(
                "limits.log_chunk_bytes_max must be at most {} bytes, so that an output event fits the controller's event stream",
                ordo_model::wire::OUTPUT_CHUNK_BYTES_MAX
            ));
        }
        if l.log_chunk_bytes_max > l.frame_bytes_max / 4 {
            return Err(
                "limits.log_chunk_bytes_max must be at most a quarter of limits.frame_bytes_max, so that an output event fits a frame"
                    .into(),
            );
        }
        let subagent_of = match &f.subagent {
            None => None,
            Some(s) => Some(
                AgentId::new(s.director.clone()).map_err(|e| format!("subagent.director {e}"))?,
            ),
        };
        if let Some(pair) = &f.pair {
            if f.subagent.is_some() {
                return Err("a subagent is not a node of a director pair: [pair] and [subagent] exclude each other".into());
            }
            pair.check(l.frame_bytes_max)?;
        }
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let register = match f.register {
            None => None,
            Some(r) => Some(check_register(r, &abs, &f.tls.controller_ca)?),
        };
        Ok(Config {
            agent_id,
            listen: f.listen,
            data_dir: abs(f.data_dir),
            tls: TlsConfig {
                certificate: abs(f.tls.certificate),
                key: abs(f.tls.key),
                controller_ca: abs(f.tls.controller_ca),
            },
            limits: f.limits,
            subagent_of,
            register,
            pair: f.pair,
        })
    }
}

fn check_register(
    r: RegisterSection,
    abs: &dyn Fn(PathBuf) -> PathBuf,
    controller_ca: &Path,
) -> Result<Register, String> {
    if !r.controller.starts_with("https://") {
        return Err("register.controller must be an https:// URL".into());
    }
    if !r.url.starts_with("wss://") {
        return Err("register.url must be this agent's wss://host:port URL".into());
    }
    if r.process_limit == Some(0) {
        return Err("register.process_limit must be greater than 0".into());
    }
    let token = match (r.token, r.token_file) {
        (Some(t), None) => t,
        (None, Some(file)) => {
            let file = abs(file);
            let len = std::fs::metadata(&file)
                .map_err(|e| format!("register.token_file {}: {e}", file.display()))?
                .len();
            if len > TOKEN_FILE_BYTES_MAX {
                return Err(format!(
                    "register.token_file {} is larger than {TOKEN_FILE_BYTES_MAX} bytes",
                    file.display()
                ));
            }
            std::fs::read_to_string(&file)
                .map_err(|e| format!("register.token_file {}: {e}", file.display()))?
                .trim()
                .to_owned()
        }
        _ => return Err("register needs one of token and token_file".into()),
    };
    if token.is_empty() {
        return Err("register: the join token is empty".into());
    }
    Ok(Register {
        controller: r.controller,
        token,
        url: r.url,
        priority: r.priority,
        process_limit: r.process_limit,
        ca: abs(r.ca.unwrap_or_else(|| controller_ca.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
agent_id = "a1"
listen = "127.0.0.1:4444"
data_dir = "data"
[tls]
certificate = "a.pem"
key = "/abs/a.key"
controller_ca = "ca.pem"
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let c = Config::parse(GOOD, Path::new("/etc/ordo")).unwrap();
        assert_eq!(c.agent_id.as_str(), "a1");
        assert_eq!(c.data_dir, Path::new("/etc/ordo/data"));
        assert_eq!(c.tls.key, Path::new("/abs/a.key"));
        assert_eq!(c.limits.processes_max, 64);
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../deploy/config/agent.toml");
        Config::parse(text, Path::new("/x")).unwrap();
    }

    const PAIR: &str = r#"
[pair]
node_id = 2
raft_listen = "127.0.0.2:7500"
nodes = [
  { id = 1, voter = "director", raft_address = "127.0.0.1:7500", url = "wss://127.0.0.1:4444" },
  { id = 2, voter = "director", raft_address = "127.0.0.2:7500", url = "wss://127.0.0.2:4444" },
  { id = 3, voter = "watch", raft_address = "127.0.0.3:7500" },
]
"#;

    #[test]
    fn a_pair_section_is_checked() {
        let c = Config::parse(&format!("{GOOD}{PAIR}"), Path::new("/")).unwrap();
        let pair = c.pair.expect("the pair");
        assert_eq!(pair.me().voter, PairVoter::Director);
        assert_eq!(pair.tick_ms, 25);
        let e = Config::parse(
            &format!("{GOOD}{}", PAIR.replace("node_id = 2", "node_id = 4")),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.contains("pair.node_id 4"), "{e}");
        let e = Config::parse(
            &format!("{GOOD}{}", PAIR.replace("\"watch\"", "\"director\"")),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.contains("needs its url"), "{e}");
        let e = Config::parse(
            &format!("{GOOD}{PAIR}[subagent]\ndirector = \"d\"\n"),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.contains("exclude each other"), "{e}");
    }

    #[test]
    fn register_needs_a_token_and_urls() {
        let with = |section: &str| {
            Config::parse(
                &format!("{GOOD}[register]\n{section}"),
                Path::new("/etc/ordo"),
            )
        };
        let c = with("controller = \"https://c:1\"\ntoken = \"t\"\nurl = \"wss://a:2\"").unwrap();
        let r = c.register.unwrap();
        assert_eq!(r.token, "t");
        assert_eq!(r.ca, Path::new("/etc/ordo/ca.pem"));
        let e = with("controller = \"https://c:1\"\nurl = \"wss://a:2\"").unwrap_err();
        assert!(e.contains("token"), "{e}");
        let e =
            with("controller = \"http://c:1\"\ntoken = \"t\"\nurl = \"wss://a:2\"").unwrap_err();
        assert!(e.contains("https"), "{e}");
    }

    #[test]
    fn bad_keys_are_named() {
        let e = Config::parse(&format!("{GOOD}\nbogus = 1"), Path::new(".")).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = Config::parse(
            &format!("{GOOD}[limits]\nprocesses_max = 0"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("processes_max must be greater than 0"), "{e}");
        let e = Config::parse(&GOOD.replace("a1", "bad id"), Path::new(".")).unwrap_err();
        assert!(e.contains("agent_id"), "{e}");
        let e = Config::parse(&GOOD.replace("listen", "#"), Path::new(".")).unwrap_err();
        assert!(e.contains("listen"), "{e}");
    }
}
