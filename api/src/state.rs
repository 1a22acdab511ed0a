//! The controller's state: the fold of its journal.
//!
//! [`State::apply`] takes every journaled record in id order; the state holds the model's
//! [`World`] (orders, workflows, agents, locks, boards), each agent's journaled position
//! (for `Couple { after }` and deduplication), an index of job output by order, and when each
//! terminated order ended (for the retention). It is written as a journal snapshot with
//! postcard, so its types are append-only like the records'.

use crate::join::Joins;
use crate::record::{Body, Stored};
use ordo_model::ids::{AgentId, OrderId, WorkflowName};
use ordo_model::inventory::JobSettingsMap;
use ordo_model::order::{
    Extras, KeyedEvent, OrderEvent, Side, World, accepts_from_agent, extras_or_empty,
};
use ordo_model::priority::Priorities;
use ordo_model::schedule::{Plan, PlanEvent, Skip};
use ordo_model::time::TimeMs;
use ordo_model::wire::AgentEventBody;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the controller has journaled of one agent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentCursor {
    /// The agent's run id, once known.
    #[serde(default, with = "ordo_model::ids::run_id::option")]
    pub run_id: Option<u128>,
    /// The last agent event id journaled for that run.
    pub last_event_id: u64,
}

/// The controller's state.
///
/// Its serde writes the fields in this order, then the world's
/// [`extras`](ordo_model::order::Extras) last and only when they are not empty (the world's
/// own serde leaves them out): a snapshot written before they existed reads as "none", and a
/// state without any writes the bytes it wrote before.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "Stored_")]
pub struct State {
    pub world: World,
    pub agents: BTreeMap<AgentId, AgentCursor>,
    /// The id of the last applied event.
    pub last_event_id: u64,
    /// Event ids of each order's job output, in order.
    pub logs: BTreeMap<OrderId, Vec<u64>>,
    /// When each terminated order ended.
    pub terminated: BTreeMap<OrderId, TimeMs>,
    /// The daily plan. Added last: a snapshot written before it ends where it begins and
    /// reads as an empty plan ([`plan_or_empty`]).
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    pub plan: Plan,
    /// Join tokens and registered subagents ([`crate::join`]). Written after the world's
    /// extras, and only when not empty (the extras are then written even when empty): a
    /// snapshot written before it ends before it.
    #[serde(default)]
    pub joins: Joins,
    // The world's `extras.backup_directors`, then its `extras.jobs`, then its
    // `extras.priorities` are written last, each only when it or one after it is not empty
    // (the extras and the joins are then written even when empty): see [`Stored_`].
}

/// The serde form of [`State`]: its fields, then the world's extras.
#[derive(Deserialize)]
#[serde(rename = "State")]
struct Stored_ {
    world: World,
    agents: BTreeMap<AgentId, AgentCursor>,
    last_event_id: u64,
    logs: BTreeMap<OrderId, Vec<u64>>,
    terminated: BTreeMap<OrderId, TimeMs>,
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    plan: Plan,
    #[serde(default, deserialize_with = "extras_or_empty")]
    extras: Extras,
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    joins: Joins,
    /// The world's `extras.backup_directors`. Added after the joins: a snapshot written before
    /// it ends before it.
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    backup_directors: BTreeMap<AgentId, String>,
    /// The world's `extras.jobs`. Added after the backup directors: a snapshot written before
    /// it ends before it.
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    jobs: BTreeMap<WorkflowName, JobSettingsMap>,
    /// The world's `extras.priorities`. Added after the jobs: a snapshot written before it
    /// ends before it.
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    priorities: BTreeMap<AgentId, Priorities>,
}

impl From<Stored_> for State {
    fn from(s: Stored_) -> State {
        let mut world = s.world;
        world.extras = s.extras;
        world.extras.backup_directors = s.backup_directors;
        world.extras.jobs = s.jobs;
        world.extras.priorities = s.priorities;
        State {
            world,
            agents: s.agents,
            last_event_id: s.last_event_id,
            logs: s.logs,
            terminated: s.terminated,
            plan: s.plan,
            joins: s.joins,
        }
    }
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let extras = &self.world.extras;
        let priorities = !extras.priorities.is_empty();
        let jobs = priorities || !extras.jobs.is_empty();
        let directors = jobs || !extras.backup_directors.is_empty();
        let joins = directors || !self.joins.is_empty();
        let with_extras = joins || !extras.is_empty();
        let fields = 6
            + usize::from(with_extras)
            + usize::from(joins)
            + usize::from(directors)
            + usize::from(jobs)
            + usize::from(priorities);
        let mut st = s.serialize_struct("State", fields)?;
        st.serialize_field("world", &self.world)?;
        st.serialize_field("agents", &self.agents)?;
        st.serialize_field("last_event_id", &self.last_event_id)?;
        st.serialize_field("logs", &self.logs)?;
        st.serialize_field("terminated", &self.terminated)?;
        st.serialize_field("plan", &self.plan)?;
        if with_extras {
            st.serialize_field("extras", extras)?;
        }
        if joins {
            st.serialize_field("joins", &self.joins)?;
        }
        if directors {
            st.serialize_field("backup_directors", &extras.backup_directors)?;
        }
        if jobs {
            st.serialize_field("jobs", &extras.jobs)?;
        }
        if priorities {
            st.serialize_field("priorities", &extras.priorities)?;
        }
        st.end()
    }
}

/// The keys of `map` that are fork children of `parent` (`parent|…`, at any depth).
fn children_of<V>(map: &BTreeMap<OrderId, V>, parent: &OrderId) -> Vec<OrderId> {
    let prefix = format!("{parent}|");
    map.range::<str, _>((
        std::ops::Bound::Included(prefix.as_str()),
        std::ops::Bound::Unbounded,
    ))
    .take_while(|(k, _)| k.as_str().starts_with(&prefix))
    .map(|(k, _)| k.clone())
    .collect()
}

/// A journaled record that did not apply (the state is unchanged by it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub event_id: u64,
    pub why: String,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    pub fn new() -> State {
        State {
            world: World::new(Side::Controller),
            agents: BTreeMap::new(),
            last_event_id: 0,
            logs: BTreeMap::new(),
            terminated: BTreeMap::new(),
            plan: Plan::default(),
            joins: Joins::default(),
        }
    }

    /// Whether an agent event is new: of the journaled run and after its last journaled id.
    pub fn is_new_agent_event(&self, agent: &AgentId, run_id: u128, agent_event_id: u64) -> bool {
        match self.agents.get(agent) {
            Some(c) => c.run_id == Some(run_id) && agent_event_id > c.last_event_id,
            None => false,
        }
    }

    /// Applies one journaled record. A record whose event does not fit the state (an agent's
    /// event for an order it does not hold, say) changes nothing but the cursors, and is
    /// reported, never fatal: the journal is the truth and replay must reach the same state.
    pub fn apply(&mut self, event_id: u64, stored: &Stored) -> Result<(), Skipped> {
        self.last_event_id = event_id;
        let skipped = |why: String| Skipped { event_id, why };
        match &stored.body {
            Body::Event(event) => self.apply_event(event, stored.ts).map_err(skipped),
            Body::Agent {
                agent,
                run_id,
                agent_event_id,
                body,
            } => {
                let cursor = self.agents.entry(agent.clone()).or_default();
                cursor.run_id = Some(*run_id);
                cursor.last_event_id = *agent_event_id;
                match body {
                    AgentEventBody::Order(event) => {
                        accepts_from_agent(&self.world, agent, event).map_err(skipped)?;
                        self.apply_event(event, stored.ts).map_err(skipped)
                    }
                    AgentEventBody::Output { order_id, .. }
                    | AgentEventBody::OutputTruncated { order_id, .. } => {
                        if self.world.order(order_id).is_some() {
                            self.logs
                                .entry(order_id.clone())
                                .or_default()
                                .push(event_id);
                        }
                        Ok(())
                    }
                }
            }
            Body::AgentRunChanged { agent, new, .. } => {
                self.agents.insert(
                    agent.clone(),
                    AgentCursor {
                        run_id: Some(*new),
                        last_event_id: 0,
                    },
                );
                Ok(())
            }
            Body::Restored { .. } => Ok(()),
            Body::Plan(event) => self.plan.apply(event).map_err(skipped),
            Body::Join(event) => self.joins.apply(event, stored.ts).map_err(skipped),
        }
    }

    fn apply_event(&mut self, event: &KeyedEvent, ts: TimeMs) -> Result<(), String> {
        self.world.apply(event).map_err(|e| e.to_string())?;
        if let KeyedEvent::Order { id, event } = event {
            match event {
                OrderEvent::Removed => {
                    self.logs.remove(id);
                    self.terminated.remove(id);
                    // A fork's children's logs stay until their parent goes.
                    for c in children_of(&self.logs, id) {
                        self.logs.remove(&c);
                    }
                }
                // Joined children left the world with the join: the retention is their
                // parent's (their logs stay until it is removed).
                OrderEvent::Joined { .. } => {
                    for c in children_of(&self.terminated, id) {
                        self.terminated.remove(&c);
                    }
                }
                OrderEvent::Missed { .. } => self.plan_missed(id),
                _ => {
                    if let Some(o) = self.world.order(id)
                        && o.state.is_terminal()
                    {
                        self.terminated.entry(id.clone()).or_insert(ts);
                    }
                }
            }
        }
        Ok(())
    }

    /// The instant of the planned order `id` was missed on its holder: the plan shows it as
    /// skipped (missed), as if the planner had skipped it.
    fn plan_missed(&mut self, id: &OrderId) {
        let Some(o) = self.world.order(id) else {
            return;
        };
        let (Some(p), Some(at)) = (ordo_model::order::missed::policy(o), o.scheduled_for) else {
            return;
        };
        let event = PlanEvent::Skipped {
            schedule: p.schedule.clone(),
            at,
            why: Skip::Missed,
        };
        // An instant the plan has forgotten (or a schedule gone) stays as it is.
        let _ = self.plan.apply(&event);
    }

    /// Terminated orders whose retention ended at `now`.
    pub fn expired_orders(&self, now: TimeMs, retention_ms: u64) -> Vec<OrderId> {
        let limit = i64::try_from(retention_ms).unwrap_or(i64::MAX);
        self.terminated
            .iter()
            .filter(|(_, at)| now.0.saturating_sub(at.0) >= limit)
            // A fork child goes with its join, never on its own; an id no longer in the
            // world (a child joined before its entry was dropped at the join) has nothing to
            // remove.
            .filter(|(id, _)| self.world.order(id).is_some_and(|o| o.parent.is_none()))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Body, Stored};
    use ordo_model::order::{Command, command, deploy};
    use ordo_model::yaml::{Limits, SourceFile, parse_inventory};

    fn apply_body(s: &mut State, id: u64, body: Body) {
        let stored = Stored {
            term: 1,
            ts: TimeMs(0),
            body,
        };
        let json = crate::json::to_value(&stored.body).unwrap();
        assert_eq!(crate::json::from_value::<Body>(json).unwrap(), stored.body);
        let bytes = postcard::to_allocvec(&stored.body).unwrap();
        assert_eq!(postcard::from_bytes::<Body>(&bytes).unwrap(), stored.body);
        s.apply(id, &stored).unwrap();
    }

    /// The cockpit folds the JSON of `/state` and of every event; both must be lossless.
    #[test]
    fn state_and_events_survive_json() {
        let yaml = "workflow: w\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n";
        let inv = parse_inventory(&[SourceFile::new("w.yaml", yaml)], &Limits::default()).unwrap();
        let mut s = State::new();
        let mut id = 0;
        let mut apply = |s: &mut State, e| {
            id += 1;
            let stored = Stored {
                term: 1,
                ts: TimeMs(id as i64),
                body: Body::Event(e),
            };
            let json = crate::json::to_value(&stored.body).unwrap();
            let back: Body = crate::json::from_value(json).unwrap();
            assert_eq!(back, stored.body);
            s.apply(id, &stored).unwrap();
        };
        for e in deploy(&s.world, &inv) {
            apply(&mut s, e);
        }
        let add = Command::Add {
            id: OrderId::new("o1").unwrap(),
            workflow: ordo_model::ids::WorkflowName::new("w").unwrap(),
            vars: Default::default(),
            scheduled_for: None,
        };
        for e in command(&s.world, add, TimeMs(0), &Default::default())
            .unwrap()
            .events
        {
            apply(&mut s, e);
        }
        let agent = ordo_model::ids::AgentId::new("a").unwrap();
        apply_body(
            &mut s,
            10,
            Body::AgentRunChanged {
                agent: agent.clone(),
                old: None,
                new: u128::MAX - 1,
            },
        );
        apply_body(
            &mut s,
            11,
            Body::Agent {
                agent,
                run_id: u128::MAX - 1,
                agent_event_id: 7,
                body: AgentEventBody::Output {
                    order_id: OrderId::new("o1").unwrap(),
                    stream: ordo_model::wire::Stream::Stdout,
                    chunk: b"hi".to_vec(),
                },
            },
        );
        let json = crate::json::to_string(&s).unwrap();
        let back: State = crate::json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.logs[&OrderId::new("o1").unwrap()], vec![11]);
    }

    /// A planned order its holder found missed: the plan shows its instant as skipped
    /// (missed); the order carries its policy through JSON and postcard.
    #[test]
    fn a_missed_planned_order_marks_its_instant_in_the_plan() {
        use ordo_model::schedule::{PlannedFire, Status};
        let yaml = "workflow: w\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n---\nschedule: s\nworkflow: w\ncron: '0 * * * *'\nmissed: skip\n";
        let inv = parse_inventory(&[SourceFile::new("w.yaml", yaml)], &Limits::default()).unwrap();
        let schedule = inv.schedules[0].clone();
        let name = schedule.name.clone();
        let mut s = State::new();
        let mut id = 0;
        let mut next = || {
            id += 1;
            id
        };
        for e in deploy(&s.world, &inv) {
            apply_body(&mut s, next(), Body::Event(e));
        }
        let at = TimeMs(3_600_000);
        for e in [
            PlanEvent::ScheduleDeployed(Box::new(schedule)),
            PlanEvent::Replanned {
                schedule: name.clone(),
                from: TimeMs(0),
            },
            PlanEvent::Planned {
                schedule: name.clone(),
                until: TimeMs(7_200_000),
                fires: vec![PlannedFire {
                    at,
                    offset_seconds: 0,
                }],
            },
        ] {
            apply_body(&mut s, next(), Body::Plan(e));
        }
        let order = PlannedFire {
            at,
            offset_seconds: 0,
        }
        .order_id(&name)
        .unwrap();
        let add = Command::Add {
            id: order.clone(),
            workflow: ordo_model::ids::WorkflowName::new("w").unwrap(),
            vars: Default::default(),
            scheduled_for: Some(at),
        };
        let accepted = ordo_model::order::missed::add_planned(
            &s.world,
            add,
            &name,
            ordo_model::schedule::Missed::Skip,
            60_000,
            TimeMs(0),
            &Default::default(),
        )
        .unwrap();
        for e in accepted.events {
            apply_body(&mut s, next(), Body::Event(e));
        }
        apply_body(
            &mut s,
            next(),
            Body::Plan(PlanEvent::Ordered {
                schedule: name.clone(),
                at,
            }),
        );
        let o = s.world.order(&order).unwrap();
        assert!(ordo_model::order::missed::policy(o).is_some());
        assert_eq!(s.plan.schedules[&name].status(at), Some(&Status::Ordered));
        let late = ordo_model::order::step(&s.world, &order, TimeMs(at.0 + 120_000));
        assert!(
            matches!(
                &late[0],
                KeyedEvent::Order {
                    event: OrderEvent::Missed {
                        late_by_ms: 120_000
                    },
                    ..
                }
            ),
            "{late:?}"
        );
        for e in late {
            apply_body(&mut s, next(), Body::Event(e));
        }
        assert_eq!(
            s.world.order(&order).unwrap().state,
            ordo_model::order::OrderState::Cancelled
        );
        assert_eq!(
            s.plan.schedules[&name].status(at),
            Some(&Status::Skipped(Skip::Missed))
        );
        let json = crate::json::to_string(&s).unwrap();
        let back: State = crate::json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<State>(&bytes).unwrap(), s);
    }

    #[test]
    fn a_snapshot_from_before_the_plan_reads_with_an_empty_plan() {
        let mut state = State::new();
        state.last_event_id = 7;
        let bytes = postcard::to_allocvec(&state).unwrap();
        // An empty plan is two bytes: no schedules, no calendars.
        let old = &bytes[..bytes.len() - 2];
        let read: State = postcard::from_bytes(old).unwrap();
        assert_eq!(read, state);
        assert_eq!(postcard::from_bytes::<State>(&bytes).unwrap(), state);
    }

    /// Join tokens survive a snapshot (postcard and JSON) with or without extras; a state
    /// without them writes the bytes it wrote before they existed.
    #[test]
    fn join_tokens_survive_snapshots() {
        use crate::join::JoinEvent;
        let mut state = State::new();
        let before = postcard::to_allocvec(&state).unwrap();
        apply_body(
            &mut state,
            1,
            Body::Join(JoinEvent::Issued {
                hash: crate::auth::token_hash("t"),
                agent: Some(ordo_model::ids::AgentId::new("dir").unwrap()),
                expires: TimeMs(1000),
            }),
        );
        let bytes = postcard::to_allocvec(&state).unwrap();
        assert!(bytes.len() > before.len());
        assert_eq!(postcard::from_bytes::<State>(&bytes).unwrap(), state);
        let json = crate::json::to_string(&state).unwrap();
        assert_eq!(crate::json::from_str::<State>(&json).unwrap(), state);
        let mut empty = State::new();
        empty.last_event_id = 1;
        let plain = postcard::to_allocvec(&empty).unwrap();
        assert_eq!(plain.len(), before.len(), "no bytes for empty joins");
        assert_eq!(postcard::from_bytes::<State>(&plain).unwrap(), empty);
    }

    /// Job settings survive a snapshot (postcard and JSON) after everything else; a snapshot
    /// written before them (ending after the backup directors) reads with none.
    #[test]
    fn job_settings_survive_snapshots_and_older_ones_read_without() {
        use ordo_model::ids::JobName;
        use ordo_model::inventory::JobSettings;
        let mut state = State::new();
        state
            .world
            .extras
            .backup_directors
            .insert(AgentId::new("dir").unwrap(), "wss://127.0.0.1:1".to_owned());
        let older = postcard::to_allocvec(&state).unwrap();
        let settings = JobSettings {
            restart_budget: Some(2),
            subagent_selection: None,
        };
        state.world.extras.jobs.insert(
            WorkflowName::new("w").unwrap(),
            [(JobName::new("j").unwrap(), settings)].into(),
        );
        let bytes = postcard::to_allocvec(&state).unwrap();
        assert!(bytes.starts_with(&older), "the jobs come after all else");
        assert_eq!(postcard::from_bytes::<State>(&bytes).unwrap(), state);
        let json = crate::json::to_string(&state).unwrap();
        assert_eq!(crate::json::from_str::<State>(&json).unwrap(), state);
        let read = postcard::from_bytes::<State>(&older).unwrap();
        assert!(read.world.extras.jobs.is_empty());
        assert_eq!(read.world.extras.backup_directors.len(), 1);
    }
}
