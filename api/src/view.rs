//! The typed JSON views of the controller's API: orders, agents, locks, boards, snapshots and
//! the one-line description of an event. The controller answers with them and the cockpit
//! serves the same shapes from its view, so the two cannot drift.
//!
//! JSON-first: camelCase keys, unset fields left out, variable values as plain JSON (`null`,
//! `true`, `3`, `"x"`, `[…]`), enums as `{"type": "<camelCase>", …}` (see [`crate::json`]).

use crate::record::Body;
use crate::state::State;
use ordo_model::ids::OrderId;
use ordo_model::order::{Holder, KeyedEvent, Order, World};
use ordo_model::value::{Value, Vars};
use ordo_model::wire::{AgentEventBody, AgentMeta, Stream, SubagentHealth, SubagentMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::io::{self, Write};

/// The deepest nesting of lists in a variable given from outside: a value at this depth may
/// be a list only when it is empty.
pub const VALUE_DEPTH_MAX: usize = 8;

/// Every name [`ordo_model::order::OrderState::name`] gives, in the order the UI shows them;
/// the `state` filters of the controller's and the cockpit's order lists accept these.
pub const STATE_NAMES: [&str; 9] = [
    "fresh",
    "ready",
    "processing",
    "waiting",
    "prompting",
    "suspended",
    "failed",
    "cancelled",
    "finished",
];

/// Checks a `state` filter: one of [`STATE_NAMES`].
pub fn check_state_name(state: &str) -> Result<(), String> {
    if STATE_NAMES.contains(&state) {
        Ok(())
    } else {
        Err(format!(
            "unknown state {state:?}; use one of {}",
            STATE_NAMES.join(", ")
        ))
    }
}

/// Variables given from outside: a JSON object of numbers, strings, booleans, `null`, and
/// lists and objects (maps) of those, nested at most [`VALUE_DEPTH_MAX`] deep.
pub fn vars_from_json(json: &Json) -> Result<Vars, String> {
    let Json::Object(map) = json else {
        return Err("variables must be a JSON object".into());
    };
    let mut vars = Vars::new();
    for (k, v) in map {
        vars.insert(
            k.clone(),
            value_from_json(v, 0).map_err(|e| format!("variable {k:?}: {e}"))?,
        );
    }
    Ok(vars)
}

fn value_from_json(json: &Json, depth: usize) -> Result<Value, String> {
    if depth > VALUE_DEPTH_MAX {
        return Err(format!(
            "nested deeper than {VALUE_DEPTH_MAX} lists or objects"
        ));
    }
    Ok(match json {
        Json::Null => Value::Missing,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.as_f64().ok_or("number out of range")?),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(
            items
                .iter()
                .map(|i| value_from_json(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), value_from_json(v, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// An outcome and where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutcomeView {
    pub position: String,
    pub outcome: String,
}

/// An order as the API shows it (`GET /api/v1/orders/{id}` of the controller and the cockpit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub id: String,
    pub workflow: String,
    pub version: u64,
    /// fresh, ready, processing, waiting, prompting, suspended, failed, cancelled, finished
    /// ([`STATE_NAMES`]).
    pub state: String,
    /// The state in words, e.g. `prompting "Deploy 1.4 to production?"`.
    pub state_detail: String,
    /// Where the order is in its workflow, e.g. `2/try/0`.
    pub position: String,
    pub attempt: u32,
    /// The order's variables, as plain JSON values.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub vars: Vars,
    /// When it starts, ms since the epoch, if scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<i64>,
    /// `{"type": "controller"}`, or `{"type": "attaching"|"agent"|"detaching", "<type>":
    /// agent id}`.
    #[serde(with = "crate::json")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub holder: Holder,
    /// A pending cancel, suspend or go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    /// The forked order this one is a branch of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub outcomes: Vec<OutcomeView>,
    /// What it waits for, in words (a process slot, a lock and its holders, a notice, an
    /// answer, a time, a handover; [`crate::why`]); only in the answer for one order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// The instant it waits until, ms since the epoch, when it waits for a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_until_ms: Option<i64>,
    /// Higher first in lock queues and job queues (default 0; a fork child has its parent's).
    #[serde(default)]
    pub priority: i32,
    /// Removed at once when it has finished or was cancelled (as it was added, else as its
    /// workflow says).
    #[serde(default)]
    pub delete_when_terminated: bool,
}

/// The view of one order with what it waits for in `world` ([`crate::why`]): for the answer
/// about one order (the reason is worked out from the whole world).
pub fn order_view_waiting(world: &World, o: &Order) -> OrderView {
    let mut view = order_view_in(world, o);
    if let Some(why) = crate::why::why_waiting(world, o) {
        view.waiting_for = Some(why.text);
        view.waiting_until_ms = why.until_ms;
    }
    view
}

/// The one view of an order, with its priority and removal from the world that holds it.
pub fn order_view_in(world: &World, o: &Order) -> OrderView {
    OrderView {
        priority: world.priority(&o.id),
        delete_when_terminated: world.deletes_when_terminated(o),
        ..order_view(o)
    }
}

/// The view of an order without its world: priority and removal are the defaults (use
/// [`order_view_in`] where the world is at hand).
pub fn order_view(o: &Order) -> OrderView {
    OrderView {
        id: o.id.to_string(),
        workflow: o.workflow.to_string(),
        version: o.version.0,
        state: o.state.name().to_owned(),
        state_detail: o.state.to_string(),
        position: o.position.to_string(),
        attempt: o.attempt,
        vars: o.vars.clone(),
        scheduled_for: o.scheduled_for.map(|t| t.0),
        holder: o.holder.clone(),
        mark: o.mark.as_ref().map(|m| m.to_string()),
        parent: o.parent.as_ref().map(|p| p.to_string()),
        outcomes: o
            .outcomes
            .iter()
            .map(|h| OutcomeView {
                position: h.position.to_string(),
                outcome: h.outcome.to_string(),
            })
            .collect(),
        waiting_for: None,
        waiting_until_ms: None,
        priority: 0,
        delete_when_terminated: false,
    }
}

/// The name of an output stream, as event types and log frames give it.
pub fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "Stdout",
        Stream::Stderr => "Stderr",
    }
}

/// The key, type name and one-line text of an event (the `key`, `type` and `text` of its
/// frame, [`crate::frame::EventFrame`]).
pub fn describe(body: &Body) -> (String, &'static str, String) {
    match body {
        Body::Event(e) => keyed(e),
        Body::Agent { agent, body, .. } => match body {
            AgentEventBody::Order(e) => {
                let (key, kind, text) = keyed(e);
                (key, kind, format!("{text} (agent {agent})"))
            }
            AgentEventBody::Output {
                order_id,
                stream,
                chunk,
            } => (
                order_id.to_string(),
                stream_name(*stream),
                String::from_utf8_lossy(chunk).into_owned(),
            ),
            AgentEventBody::OutputTruncated {
                order_id,
                cap_bytes,
            } => (
                order_id.to_string(),
                "OutputTruncated",
                format!("output truncated after {cap_bytes} bytes"),
            ),
        },
        Body::AgentRunChanged { agent, old, new } => (
            format!("agent:{agent}"),
            "AgentRunChanged",
            format!(
                "agent {agent} run {} (was {})",
                format_args!("{new:032x}"),
                old.map(|r| format!("{r:032x}"))
                    .unwrap_or_else(|| "none".into())
            ),
        ),
        Body::Restored { index } => (
            "controller".to_owned(),
            "Restored",
            format!("state restored from a snapshot of the replicated log at entry {index}"),
        ),
        Body::Plan(e) => (e.key(), e.name(), e.to_string()),
        Body::Join(e) => e.describe(),
    }
}

fn keyed(e: &KeyedEvent) -> (String, &'static str, String) {
    let kind = match e {
        KeyedEvent::Order { event, .. } => event.name(),
        KeyedEvent::Board { .. } => "Board",
        KeyedEvent::Item(_) => "Item",
    };
    let text = match e {
        KeyedEvent::Order { event, .. } => event.to_string(),
        other => other.to_string(),
    };
    (e.key(), kind, text)
}

/// The order event inside a body, if it is one (the controller's or an agent's).
pub fn order_event(body: &Body) -> Option<&KeyedEvent> {
    match body {
        Body::Event(e @ KeyedEvent::Order { .. }) => Some(e),
        Body::Agent {
            body: AgentEventBody::Order(e @ KeyedEvent::Order { .. }),
            ..
        } => Some(e),
        _ => None,
    }
}

/// The orders an event may change (the model's [`ordo_model::order::affected`]): call it
/// before applying the event to `state`.
pub fn affected(state: &State, body: &Body) -> Vec<OrderId> {
    match body {
        Body::Event(e)
        | Body::Agent {
            body: AgentEventBody::Order(e),
            ..
        } => ordo_model::order::affected(&state.world, e),
        _ => Vec::new(),
    }
}

/// A workflow and its deployed versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowSummary {
    pub name: String,
    pub versions: Vec<u64>,
}

/// A deployed agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSummary {
    pub id: String,
    pub url: String,
}

/// An order holding or waiting for a lock, and how much of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockUse {
    pub order: String,
    pub count: u32,
}

/// A lock with its holders and queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockView {
    pub name: String,
    pub limit: u32,
    pub holders: Vec<LockUse>,
    /// Waiting orders, first come first served.
    pub queue: Vec<LockUse>,
}

/// A live notice: its key and until when it lives (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeView {
    pub key: String,
    pub until: i64,
}

/// A notice board with its live notices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BoardView {
    pub name: String,
    /// How long a posted notice lives, ms.
    pub lifetime_ms: u64,
    pub notices: Vec<NoticeView>,
}

pub fn workflow_summaries(w: &World) -> Vec<WorkflowSummary> {
    w.workflows
        .iter()
        .map(|(name, versions)| WorkflowSummary {
            name: name.to_string(),
            versions: versions.keys().map(|v| v.0).collect(),
        })
        .collect()
}

pub fn agent_summaries(w: &World) -> Vec<AgentSummary> {
    w.agents
        .values()
        .map(|a| AgentSummary {
            id: a.id.to_string(),
            url: a.url.clone(),
        })
        .collect()
}

pub fn lock_views(w: &World) -> Vec<LockView> {
    let uses = |entries: &mut dyn Iterator<Item = (&OrderId, &u32)>| {
        entries
            .map(|(o, c)| LockUse {
                order: o.to_string(),
                count: *c,
            })
            .collect()
    };
    w.locks
        .iter()
        .map(|(name, l)| LockView {
            name: name.to_string(),
            limit: l.limit,
            holders: uses(&mut l.holders.iter()),
            queue: uses(&mut l.queue.iter().map(|(o, c)| (o, c))),
        })
        .collect()
}

pub fn board_views(w: &World) -> Vec<BoardView> {
    w.boards
        .iter()
        .map(|(name, b)| BoardView {
            name: name.to_string(),
            lifetime_ms: b.lifetime.0,
            notices: b
                .notices
                .iter()
                .map(|(k, until)| NoticeView {
                    key: k.clone(),
                    until: until.0,
                })
                .collect(),
        })
        .collect()
}

/// The summaries of a state at an event id (`GET /api/v1/snapshot`); continue with the
/// events after `eventId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SnapshotView {
    pub event_id: u64,
    pub workflows: Vec<WorkflowSummary>,
    pub agents: Vec<AgentSummary>,
    pub locks: Vec<LockView>,
    pub boards: Vec<BoardView>,
    pub orders: Vec<OrderView>,
}

/// Writes the [`SnapshotView`] of `world` at `event_id`, one order at a time (the orders are
/// the bulk; their views are never all held at once).
pub fn write_snapshot<W: Write>(mut w: W, event_id: u64, world: &World) -> io::Result<()> {
    let field = |w: &mut W, name: &str, value: &dyn erased::Json| -> io::Result<()> {
        write!(w, "\"{name}\":")?;
        value.write(w)?;
        w.write_all(b",")
    };
    write!(w, "{{\"eventId\":{event_id},")?;
    field(&mut w, "workflows", &workflow_summaries(world))?;
    field(&mut w, "agents", &agent_summaries(world))?;
    field(&mut w, "locks", &lock_views(world))?;
    field(&mut w, "boards", &board_views(world))?;
    w.write_all(b"\"orders\":[")?;
    for (i, order) in world.orders.values().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut w, &order_view_in(world, order)).map_err(io::Error::from)?;
    }
    w.write_all(b"]}")
}

mod erased {
    use std::io::{self, Write};

    /// A value written as JSON into any writer.
    pub trait Json {
        fn write(&self, w: &mut dyn Write) -> io::Result<()>;
    }

    impl<T: serde::Serialize> Json for T {
        fn write(&self, w: &mut dyn Write) -> io::Result<()> {
            serde_json::to_writer(w, self).map_err(io::Error::from)
        }
    }
}

/// A controller's health (`GET /api/v1/health` of the controller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ControllerHealth {
    /// `ok`.
    pub status: String,
    pub cluster_id: String,
    pub controller_id: String,
    /// `active` (it acts: the only controller, or the leader of a pair), `passive` (a
    /// controller of a pair that follows the active one), `watch` (the pair's third voter),
    /// `candidate` (an election is under way).
    pub role: String,
    /// The newest durable event id: the stream has every event up to it.
    pub last_event_id: u64,
    /// Orders in the state.
    pub orders: usize,
    /// The largest event frame the controller streams (its `limits.event_bytes_max`).
    pub event_bytes_max: usize,
    /// The replicated pair, when this controller is one of its nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterHealth>,
}

/// One node of a replicated pair, as it sees itself (`GET /health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// Its raft id.
    pub node_id: u64,
    /// `controller` or `watch`.
    pub voter: String,
    /// The raft term it is in.
    pub term: u64,
    /// The node it knows as leader, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    /// The API of the active controller, if known: where commands go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_api_url: Option<String>,
    /// Highest raft index known committed.
    pub commit: u64,
    /// Highest raft index applied to its state.
    pub applied: u64,
    /// The last event id applied (what its reads and stream show).
    pub committed_event_id: u64,
    /// Agents it has coupled (only the active one couples).
    pub agents_coupled: usize,
    /// Every voter of the cluster's membership, with its configured API.
    pub nodes: Vec<ClusterNodeView>,
}

/// A voter of the pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterNodeView {
    pub id: u64,
    /// `controller` or `watch`.
    pub voter: String,
    pub api_url: String,
    /// Whether it is a voter in the committed membership (false: only configured).
    pub member: bool,
}

/// An agent with the controller's link to it (`GET /api/v1/agents` of the controller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentLinkView {
    pub id: String,
    pub url: String,
    pub connected: bool,
    /// While connected: the URL of the agent the controller is coupled with — `url`, or the
    /// backup director's when that one is the active director of a director pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupled_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the agent told about itself (host, cores, memory, load, version, jobs).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::json")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<AgentMeta>,
    /// A director's subagents with their figures (empty for an agent that runs its jobs
    /// itself, or before its director reported them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subagent_health: Vec<SubagentView>,
}

/// A subagent of a director with its figures: what `meta.subagents` says of it and the
/// director's `SubagentHealth` (`GET /agents` of the controller and the cockpit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SubagentView {
    pub id: String,
    pub url: String,
    /// `live` (its session with the director is up) or `lost`.
    pub state: String,
    /// Jobs it runs now.
    pub running_processes: u64,
    /// Jobs it ran to their end since the director started.
    pub processed: u64,
    /// Their average duration, from the start the director sent to the end it received, in
    /// ms (0 before the first).
    pub average_job_duration_ms: u64,
    /// When its current session with the director began, ms since the epoch (while live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since_ms: Option<i64>,
    /// Its place in the ring (1 = first listed), with `selection: ring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_position: Option<u32>,
    /// It holds the ring's token (takes the next job).
    #[serde(default)]
    pub token: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Its host as it last reported it (absent before its first report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// Load averages over 1, 5 and 15 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<[f64; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_available_bytes: Option<u64>,
    /// When the director received that report, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_ms: Option<i64>,
}

/// A director's subagents as `meta.subagents` lists them, each with its figures from
/// `health` (matched by id; none when the director has not sent them).
pub fn subagent_views(meta: &[SubagentMeta], health: &[SubagentHealth]) -> Vec<SubagentView> {
    meta.iter()
        .map(|m| {
            let h = health.iter().find(|h| h.id == m.id);
            let host = h.and_then(|h| h.host.as_ref());
            SubagentView {
                id: m.id.to_string(),
                url: m.url.clone(),
                state: m.state.clone(),
                running_processes: m.running_processes,
                processed: m.processed,
                average_job_duration_ms: h.map_or(0, |h| h.average_job_duration_ms),
                connected_since_ms: h.and_then(|h| h.connected_since_ms),
                ring_position: m.ring_position,
                token: m.token,
                last_error: m.last_error.clone(),
                cores: host.map(|x| x.cores),
                load: host.map(|x| x.load),
                memory_total_bytes: host.map(|x| x.memory_total_bytes),
                memory_available_bytes: host.map(|x| x.memory_available_bytes),
                reported_ms: host.map(|x| x.reported_ms),
            }
        })
        .collect()
}

/// `GET /api/v1/agents` of the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentLinks {
    pub agents: Vec<AgentLinkView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_state_name_is_listed() {
        use ordo_model::order::OrderState;
        let states = [
            OrderState::Fresh,
            OrderState::Ready,
            OrderState::Failed,
            OrderState::FailedInFork,
            OrderState::Cancelled,
            OrderState::Finished,
        ];
        for s in &states {
            assert!(check_state_name(s.name()).is_ok(), "{}", s.name());
        }
        let e = check_state_name("bogus").unwrap_err();
        assert!(e.contains("bogus") && e.contains("finished"), "{e}");
    }

    #[test]
    fn subagent_views_join_the_listed_subagents_with_their_figures() {
        use ordo_model::ids::AgentId;
        use ordo_model::wire::HostFigures;
        let meta = |id: &str, state: &str| SubagentMeta {
            id: AgentId::new(id).unwrap(),
            url: format!("wss://{id}"),
            state: state.into(),
            running_processes: 1,
            processed: 4,
            last_error: None,
            ring_position: Some(2),
            token: true,
        };
        let health = [SubagentHealth {
            id: AgentId::new("s1").unwrap(),
            average_job_duration_ms: 250,
            connected_since_ms: Some(1_000),
            host: Some(HostFigures {
                cores: 8,
                load: [1.0, 0.5, 0.25],
                memory_total_bytes: 16,
                memory_available_bytes: 8,
                reported_ms: 2_000,
            }),
        }];
        let views = subagent_views(&[meta("s1", "live"), meta("s2", "lost")], &health);
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].average_job_duration_ms, 250);
        assert_eq!(views[0].cores, Some(8));
        assert_eq!(views[0].memory_available_bytes, Some(8));
        assert_eq!(views[0].ring_position, Some(2));
        let json = serde_json::to_value(&views[0]).unwrap();
        assert_eq!(json["memoryTotalBytes"], 16);
        assert_eq!(json["connectedSinceMs"], 1_000);
        assert_eq!(json["load"], json!([1.0, 0.5, 0.25]));
        // A subagent without figures yet shows what its director lists.
        assert_eq!(views[1].state, "lost");
        assert_eq!(views[1].cores, None);
        assert_eq!(views[1].average_job_duration_ms, 0);
        let json = serde_json::to_value(&views[1]).unwrap();
        assert!(json.get("cores").is_none(), "{json}");
    }

    #[test]
    fn variables_convert_both_ways() {
        let j = json!({"n": 3, "s": "x", "b": true, "l": [1, "a"], "m": null, "f": 1.5,
            "o": {"x": 1, "y": [{"z": "w"}]}});
        let vars = vars_from_json(&j).unwrap();
        assert_eq!(vars["n"], Value::Number(3.0));
        assert_eq!(vars["o"].type_name(), "map");
        // Variables serialise as the plain JSON they were given as.
        assert_eq!(serde_json::to_value(&vars).unwrap(), j);
        let mut deep = json!(1);
        for _ in 0..=VALUE_DEPTH_MAX {
            deep = json!({ "k": deep });
        }
        assert!(
            vars_from_json(&json!({ "o": deep }))
                .unwrap_err()
                .contains("\"o\"")
        );
        assert!(vars_from_json(&json!([1])).is_err());
    }

    #[test]
    fn an_order_view_is_json_first() {
        let mut o = Order::fresh(
            OrderId::new("o1").unwrap(),
            ordo_model::ids::WorkflowName::new("w").unwrap(),
            ordo_model::ids::VersionId(2),
            Vars::from([("v".to_owned(), Value::from("x"))]),
            None,
        );
        o.holder = Holder::Attaching(ordo_model::ids::AgentId::new("far").unwrap());
        let json = serde_json::to_value(order_view(&o)).unwrap();
        assert_eq!(
            json["holder"],
            json!({"type": "attaching", "attaching": "far"})
        );
        assert_eq!(json["vars"], json!({"v": "x"}));
        assert_eq!(json["stateDetail"], "fresh");
        for unset in ["scheduledFor", "mark", "parent"] {
            assert!(json.get(unset).is_none(), "{unset} is left out");
        }
        let back: OrderView = serde_json::from_value(json).unwrap();
        assert_eq!(back, order_view(&o));
    }
}
