//! The controller ↔ agent protocol (design §4).
//!
//! Transport: one WebSocket over mTLS per agent, opened by the controller to
//! `wss://<agent>/agent`; every message is one binary frame holding one postcard-encoded
//! [`ToAgent`] or [`FromAgent`], at most `frame_bytes_max` bytes. WebSocket pings keep the
//! session alive; a session without any frame for `heartbeat_timeout_ms` is closed.
//!
//! Session:
//! 1. The controller sends [`ToAgent::Couple`] with its cluster id, its raft term and the last
//!    agent event id it has journaled (`after`), and the agent run id that id belongs to.
//! 2. The agent answers [`FromAgent::Coupled`] (its run id, attached orders, metadata) or
//!    [`FromAgent::Refused`] and closes: another cluster id, an older term than one seen
//!    (fencing), or a protocol version it does not speak.
//! 3. The agent streams [`FromAgent::Events`]: every event with an id greater than `after`
//!    (when the controller named the agent's current run; else from the start of what it
//!    keeps), in id order, then new ones as they become durable.
//! 4. The controller sends [`ToAgent::Command`]s (the model's [`AgentCommand`]: attach or
//!    detach an order, mark one); the agent journals each before it answers
//!    [`FromAgent::Ack`] (or [`FromAgent::Rejected`] with the reason), in `seq` order.
//! 5. Right after coupling, before its first command, the controller sends
//!    [`ToAgent::Cluster`], the agent's inventory object and its cluster settings (a changed
//!    object or setting starts a new session): one with subagents makes the agent their
//!    director. An agent whose subagents have priority expressions gets
//!    [`ToAgent::ClusterWithPriorities`] instead, the same with the expressions.
//! 6. After journaling the agent's events (replicated), the controller sends
//!    [`ToAgent::Release`]; the agent may then delete events with ids up to `until`.
//!
//! Every enum here is append-only: new variants at the end, never reordered or removed.

use crate::ids::{AgentId, OrderId};
use crate::inventory::Agent;
use crate::order::{AgentCommand, KeyedEvent};
use crate::time::TimeMs;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket path of the agent session.
pub const AGENT_WS_PATH: &str = "/agent";

/// The most job output one [`AgentEventBody::Output`] carries, in bytes (an agent's
/// `log_chunk_bytes_max` is at most this), so that its event fits every reader of the
/// controller's event stream.
pub const OUTPUT_CHUNK_BYTES_MAX: usize = 1 << 20;

/// A message from the controller to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToAgent {
    Couple(Couple),
    Command {
        seq: u64,
        term: u64,
        command: AgentCommand,
    },
    Release {
        until: u64,
    },
    /// Ask for a fresh [`FromAgent::Meta`].
    GetMeta,
    /// Forget every order, workflow and event and the dedication to a cluster; the agent
    /// starts a new run. Only for an agent taken out of service or moved to another cluster.
    Reset {
        seq: u64,
        term: u64,
    },
    /// The agent's inventory object, sent after coupling and whenever it is deployed anew:
    /// an agent with `subagents` is the director of a cluster and runs its jobs on them.
    Cluster {
        agent: Box<Agent>,
        settings: crate::inventory::ClusterSettings,
    },
    /// Sent after the [`ToAgent::Cluster`] without `subagent` when it was removed with
    /// `kill`: the director kills its jobs there (they count as lost) instead of letting them
    /// end (a removal without it drains the subagent).
    SubagentRemoved {
        subagent: AgentId,
        kill: bool,
    },
    /// [`ToAgent::Cluster`] of an agent whose subagents have priorities given as expressions
    /// (subagent → expression, [`crate::priority`]): the controller sends it instead of
    /// `Cluster` for such an agent only, so an agent of an older build still takes every
    /// other object.
    ClusterWithPriorities {
        agent: Box<Agent>,
        settings: crate::inventory::ClusterSettings,
        priorities: crate::priority::Priorities,
    },
}

/// The first message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Couple {
    pub protocol_version: u32,
    pub cluster_id: String,
    pub controller_id: String,
    pub term: u64,
    /// The agent the controller means to talk to.
    pub agent_id: AgentId,
    /// The agent run the controller's `after` belongs to; `None` for a new agent.
    pub agent_run_id: Option<u128>,
    /// The last agent event id the controller has journaled.
    pub after: u64,
}

/// A message from an agent to the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromAgent {
    Coupled(Coupled),
    Refused {
        reason: String,
    },
    Ack {
        seq: u64,
    },
    Rejected {
        seq: u64,
        message: String,
    },
    Events(Vec<AgentEvent>),
    Meta(AgentMeta),
    /// A director's figures of its subagents, sent right after each [`FromAgent::Meta`] and
    /// [`FromAgent::Coupled`] of an agent that directs a cluster (beside
    /// [`AgentMeta::subagents`], whose positional shape stays as it is). A controller that
    /// does not know this message refuses it: controllers are upgraded before agents.
    SubagentHealth(Vec<SubagentHealth>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coupled {
    pub agent_id: AgentId,
    pub agent_run_id: u128,
    /// The oldest event id the agent still keeps (0 when it keeps none).
    pub first_event_id: u64,
    /// The newest durable event id.
    pub last_event_id: u64,
    pub attached_orders: Vec<OrderId>,
    pub meta: AgentMeta,
}

/// One durable agent event with its id in the agent's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub id: u64,
    pub ts: TimeMs,
    pub body: AgentEventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentEventBody {
    /// An order event the controller applies to its state.
    Order(KeyedEvent),
    /// A chunk of a job's output (not part of the state).
    Output {
        order_id: OrderId,
        stream: Stream,
        chunk: Vec<u8>,
    },
    /// The job's output passed its cap of `cap_bytes`; the rest was not kept.
    OutputTruncated { order_id: OrderId, cap_bytes: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What an agent tells about itself (design §4, metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMeta {
    pub agent_id: String,
    #[serde(with = "crate::ids::run_id")]
    pub agent_run_id: u128,
    pub version: String,
    pub hostname: String,
    pub os: String,
    pub cores: u32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    pub disk_free_bytes: u64,
    pub running_processes: u64,
    pub waiting_jobs: u64,
    /// Bytes of events not yet released by the controller.
    pub outbox_bytes: u64,
    pub connected_since_ms: Option<i64>,
    pub jobs: Vec<JobStats>,
    /// The subagents of a director, with their state; empty for an agent that runs its jobs
    /// itself.
    #[serde(default)]
    pub subagents: Vec<SubagentMeta>,
}

/// A subagent as its director sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubagentMeta {
    pub id: AgentId,
    pub url: String,
    /// `live` (its session is up) or `lost`.
    pub state: String,
    pub running_processes: u64,
    /// Jobs it ran to their end since the director started.
    pub processed: u64,
    pub last_error: Option<String>,
    /// Its place in the ring (1 = first listed) when the agent's `selection` is `ring`.
    #[serde(default)]
    pub ring_position: Option<u32>,
    /// It holds the ring's token: it takes the next job (`selection: ring` only).
    #[serde(default)]
    pub token: bool,
}

/// A subagent's figures as its director keeps them (beside [`SubagentMeta`], by `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubagentHealth {
    pub id: AgentId,
    /// The average time from sending a job to the subagent to its end, over the jobs it ran
    /// to their end since the director started, in ms (0 before the first).
    pub average_job_duration_ms: u64,
    /// When its current session began, ms since the epoch; `None` while it is lost.
    pub connected_since_ms: Option<i64>,
    /// What it last measured of its host; `None` before its first report.
    pub host: Option<HostFigures>,
}

/// What a host measured of itself (design §4, metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFigures {
    pub cores: u32,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    /// When the director received it, ms since the epoch.
    pub reported_ms: i64,
}

/// Processed count and average duration of one job on this agent since it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStats {
    /// `workflow/job`.
    pub job: String,
    pub processed: u64,
    pub average_duration_ms: u64,
}
