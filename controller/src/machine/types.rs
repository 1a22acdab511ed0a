//! What goes into and comes out of the [`Machine`](super::Machine): positions in the log,
//! request tokens, replies, refusals and the actions the driver carries out.

use crate::full::NoSpace;
use crate::record::Stored;
use ordo_model::ids::AgentId;
use ordo_model::order::{AgentCommand, CommandError};
use ordo_model::time::TimeMs;

/// A place in the replicated log: the term and index of one entry (a batch of events).
pub use ordo_replica::Position;

/// One entry of the log: the events of a batch with their ids (`index << 16 | offset`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub position: Position,
    pub events: Vec<(u64, Stored)>,
}

/// Names a request whose answer the driver holds (a reply channel, say) until the machine
/// answers it with [`Action::Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u64);

/// Why a command or deployment was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The model refused it.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// One of its events would be larger than readers of the event stream accept.
    #[error(
        "the {kind} event of {key} would be {bytes} bytes as JSON; the event stream carries at most event_bytes_max ({event_bytes_max}) bytes"
    )]
    EventTooLarge {
        key: String,
        kind: &'static str,
        bytes: usize,
        event_bytes_max: usize,
    },
    /// One of its events would be larger than one journal record holds.
    #[error(
        "the {kind} event of {key} would be {bytes} bytes in the journal; a journal record holds at most {record_bytes_max} bytes"
    )]
    RecordTooLarge {
        key: String,
        kind: &'static str,
        bytes: usize,
        record_bytes_max: usize,
    },
    /// It was valid, but its events could not be written: nothing of it happened.
    #[error(transparent)]
    NoSpace(#[from] NoSpace),
    /// This controller is not (or no longer) the active one: its events may or may not take
    /// effect.
    #[error(transparent)]
    NotActive(#[from] NotActive),
    /// A deployment that does not check against what is deployed, or that would strand
    /// orders or remove what something needs.
    #[error(transparent)]
    Deploy(Box<DeployRefused>),
    /// A join token, a registration or the removal of a subagent.
    #[error(transparent)]
    Agents(super::AgentsRefused),
}

/// Why a deployment was refused before any of it happened.
#[derive(Debug, thiserror::Error)]
pub enum DeployRefused {
    /// The files, checked together with what is deployed, have errors (`file:line:col`).
    #[error("the inventory has {} problem(s)", .0.iter().filter(|d| d.severity == ordo_model::yaml::Severity::Error).count())]
    Invalid(Vec<ordo_model::yaml::Diagnostic>),
    /// A removal something needs, or orders the change would strand (without `force`).
    #[error("{message}")]
    Conflict {
        message: String,
        diff: Box<ordo_model::deploy::Diff>,
    },
}

/// A deployment as the API hands it in: the files (checked here against what is deployed),
/// what to remove, and how.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    pub files: Vec<ordo_model::yaml::SourceFile>,
    pub removed: ordo_model::deploy::Removals,
    /// Answer the diff and change nothing.
    pub dry_run: bool,
    /// Deploy even when orders would be stranded (they keep running on their version).
    pub force: bool,
}

/// A controller that is not the active one was asked to act, or stopped being the active one
/// before what it was asked was committed. Whether it happened is unknown: the entry may still
/// be committed by the new active controller. Retrying with the same order id is safe, since
/// adding an order whose id exists changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this controller is not the active one{}; the outcome is unknown (it may still take effect): retry with the same order id",
    match active { Some(a) => format!(" (the active one is {a})"), None => " (no active one is known)".to_owned() }
)]
pub struct NotActive {
    /// The active controller, when known.
    pub active: Option<String>,
}

/// The answer to a command: its events' ids (empty for a duplicate add).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandReply {
    pub duplicate: bool,
    pub last_event_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReply {
    pub changes: Vec<String>,
    pub last_event_id: u64,
    /// What the deployment adds, changes and removes and the orders it affects (a
    /// deployment of files; a dry run answers this alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Box<ordo_model::deploy::Diff>>,
    /// Nothing was deployed: the answer of a dry run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The warnings of the check (`file:line:col: warning: …`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where a link resumes an agent's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub run_id: Option<u128>,
    /// The last agent event id journaled (or about to be).
    pub after: u64,
    /// Sessions started from an older epoch are stale: the machine dropped agent events since
    /// (or lost them in a batch that could not be written), so their events are not taken.
    pub epoch: u64,
    /// The term the session speaks in: agents refuse commands of a term older than the
    /// newest they have seen (a deposed controller is fenced).
    pub term: u64,
}

/// Messages to an agent link.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkMsg {
    Command(AgentCommand),
    Release(u64),
    /// A subagent was taken out of the agent's object: with `kill`, its jobs are killed.
    SubagentRemoved {
        subagent: AgentId,
        kill: bool,
    },
}

/// The answer to a request, by its kind.
#[derive(Debug)]
pub enum Reply {
    Command(Result<CommandReply, Refused>),
    Deploy(Result<DeployReply, Refused>),
    /// The commands to (re)send after a coupling, or why the session must start again.
    Coupled(Result<Vec<AgentCommand>, String>),
}

/// What the driver is asked to do.
#[derive(Debug)]
pub enum Action {
    /// Append (propose) the entry at `position`, chained after the event id `after`. The
    /// driver reports it with [`Machine::committed`](super::Machine::committed) once
    /// committed, or with [`Machine::proposal_lost`](super::Machine::proposal_lost).
    Append {
        position: Position,
        after: u64,
        events: Vec<(u64, Stored)>,
    },
    /// Answer the request `token`.
    Reply { token: Token, reply: Reply },
    /// Send to an agent's link.
    Link { agent: AgentId, msg: LinkMsg },
    /// Make sure a link runs for this agent (restarted when its object, its cluster
    /// settings, its backup director or its subagents' priority expressions changed).
    EnsureLink(
        Box<ordo_model::inventory::Agent>,
        ordo_model::inventory::ClusterSettings,
        Option<String>,
        ordo_model::priority::Priorities,
    ),
    /// Stop the link of an agent that was removed.
    ForgetLink(AgentId),
    /// End every link's session: each connects again and resumes where the machine says.
    ReconnectLinks,
    /// Stop every link: this node is no longer the active controller.
    StopLinks,
    /// The next instant a timer is due, `None` for no timer; replaces the one before.
    Wake(Option<TimeMs>),
    /// Rebuild the state from the committed log (newest snapshot + replay, up to at least
    /// event `committed`) and hand it to [`Machine::rebuilt`](super::Machine::rebuilt)
    /// before any other input.
    Rebuild { committed: u64 },
    /// Write a snapshot of the committed state at `event_id`; report it with
    /// [`Machine::snapshot_written`](super::Machine::snapshot_written).
    WriteSnapshot {
        event_id: u64,
        at: TimeMs,
        bytes: Vec<u8>,
    },
    /// Release the journal segments up to `until` (a snapshot covers them).
    ReleaseSegments { until: u64 },
}
