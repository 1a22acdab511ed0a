//! A simulated controller and agents that run the order state machine the way the real
//! executors must: journal every event, apply it, step to the fixpoint, carry out the
//! actions, forward agent events to the controller. Processes are simulated: they run until
//! the script ends them, time out, or are killed; time only moves when the script says so.

use crate::ids::{AgentId, OrderId, ScheduleName};
use crate::inventory::Inventory;
use crate::order::missed::add_planned;
use crate::order::{
    Action, AgentCommand, Command, Exit, Holder, JobQueue, KeyedEvent, Kill, OrderEvent,
    OrderLimits, OrderState, Outcome, Room, Settler, Side, Start, StartJob, World,
    accepts_from_agent, actions, agent_command, attach_command, command, deploy, expire_notices,
    job_result, lost_processes, step,
};
use crate::schedule::Missed;
use crate::time::{DurationMs, TimeMs};
use crate::value::Vars;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Most rounds of one settle before the simulation calls it a livelock.
const ROUNDS_MAX: usize = 10_000;
/// Most events one settler run makes before the round goes on with the other sides.
const EVENTS_PER_RUN_MAX: usize = 1_000;
/// Most timer instants one time advance visits.
const INSTANTS_MAX: usize = 100_000;

/// A job process of a simulated agent.
#[derive(Debug, Clone)]
pub struct Running {
    pub start: StartJob,
    pub since: TimeMs,
    pub pgid: u32,
}

pub struct AgentSim {
    pub world: World,
    /// Everything the agent journaled; `journal[forwarded..]` is its outbox.
    pub journal: Vec<KeyedEvent>,
    pub forwarded: usize,
    pub connected: bool,
    /// Stopped: it journals, steps and forwards nothing until it starts again.
    pub down: bool,
    pub running: BTreeMap<OrderId, Running>,
    settler: Settler,
    /// Which ready order starts next: the agent's own rule ([`JobQueue`]).
    queue: JobQueue,
    next_pgid: u32,
}

pub struct Sim {
    pub now: TimeMs,
    pub ctrl: World,
    pub ctrl_journal: Vec<KeyedEvent>,
    pub agents: BTreeMap<AgentId, AgentSim>,
    pub log: String,
    /// Log every event (golden files); the property test turns it off.
    pub verbose: bool,
    /// Every job start, in order, with the agent that made it.
    pub started: Vec<(AgentId, StartJob)>,
    settler: Settler,
}

fn label(side: &Side) -> String {
    match side {
        Side::Controller => "ctrl".to_owned(),
        Side::Agent(a) => a.to_string(),
    }
}

impl Sim {
    /// A controller with this inventory deployed, and one simulated agent per job agent.
    pub fn new(inventory: &Inventory) -> Sim {
        let mut sim = Sim {
            now: TimeMs(0),
            ctrl: World::new(Side::Controller),
            ctrl_journal: Vec::new(),
            agents: BTreeMap::new(),
            log: String::new(),
            verbose: true,
            started: Vec::new(),
            settler: Settler::new(),
        };
        let events = deploy(&sim.ctrl, inventory);
        for e in &events {
            sim.ctrl_apply(e, false);
        }
        let mut ids: Vec<AgentId> = inventory.agents.iter().map(|a| a.id.clone()).collect();
        for w in &inventory.workflows {
            ids.extend(w.jobs.values().map(|j| j.agent.clone()));
        }
        for id in ids {
            sim.agents.entry(id.clone()).or_insert_with(|| AgentSim {
                world: World::new(Side::Agent(id)),
                journal: Vec::new(),
                forwarded: 0,
                connected: true,
                down: false,
                running: BTreeMap::new(),
                settler: Settler::new(),
                queue: JobQueue::new(),
                next_pgid: 1000,
            });
        }
        sim
    }

    pub fn note(&mut self, line: &str) {
        if self.verbose {
            let _ = writeln!(self.log, "{line}");
        }
    }

    fn ctrl_apply(&mut self, event: &KeyedEvent, log: bool) {
        if log && self.verbose {
            let _ = writeln!(self.log, "  ctrl | {event}");
        }
        if let Err(e) = self.settler.apply(&mut self.ctrl, event) {
            panic!("controller cannot apply {event}: {e}\n{}", self.log);
        }
        self.ctrl_journal.push(event.clone());
    }

    fn agent_apply(&mut self, agent: &AgentId, event: &KeyedEvent) {
        if self.verbose {
            let _ = writeln!(self.log, "{:>6} | {event}", agent.to_string());
        }
        let a = self.agents.get_mut(agent).expect("known agent");
        if let Err(e) = a.settler.apply(&mut a.world, event) {
            panic!("agent {agent} cannot apply {event}: {e}\n{}", self.log);
        }
        a.journal.push(event.clone());
    }

    /// An operator command; a refusal is logged, not fatal.
    pub fn command(&mut self, cmd: Command) -> Result<bool, String> {
        match command(&self.ctrl, cmd, self.now, &OrderLimits::default()) {
            Ok(accepted) => {
                if accepted.duplicate {
                    self.note("  ctrl | (duplicate, ignored)");
                }
                for e in &accepted.events {
                    self.ctrl_apply(e, true);
                }
                self.settle();
                Ok(accepted.duplicate)
            }
            Err(e) => {
                self.note(&format!("  ctrl | refused: {e}"));
                Err(e.to_string())
            }
        }
    }

    /// The running job of `order` ends by itself.
    pub fn finish_job(&mut self, order: &OrderId, exit: Exit, values: Vars) -> Result<(), String> {
        let agent = self
            .agents
            .iter()
            .find(|(_, a)| a.running.contains_key(order))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| format!("no job of order {order} runs"))?;
        let running = self
            .agents
            .get_mut(&agent)
            .and_then(|a| a.running.remove(order))
            .ok_or_else(|| format!("no job of order {order} runs"))?;
        let outcome = job_result(&running.start.return_codes, exit, values);
        self.agent_apply(
            &agent,
            &KeyedEvent::order(order, OrderEvent::Processed { outcome }),
        );
        self.settle();
        Ok(())
    }

    /// The agent takes back the order's job start: its process was never spawned.
    pub fn withdraw_job(&mut self, order: &OrderId) -> Result<(), String> {
        let agent = self
            .agents
            .iter()
            .find(|(_, a)| a.running.contains_key(order))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| format!("no job of order {order} runs"))?;
        if let Some(a) = self.agents.get_mut(&agent) {
            a.running.remove(order);
        }
        self.agent_apply(
            &agent,
            &KeyedEvent::order(order, OrderEvent::ProcessingWithdrawn),
        );
        self.settle();
        Ok(())
    }

    /// The order of a planned instant of `schedule`, added with the plan's policy
    /// ([`crate::order::missed::add_planned`]); a refusal is logged, not fatal.
    pub fn add_planned(
        &mut self,
        add: Command,
        schedule: &ScheduleName,
        missed: Missed,
        late_ms: u64,
    ) -> Result<bool, String> {
        let limits = OrderLimits::default();
        match add_planned(
            &self.ctrl, add, schedule, missed, late_ms, self.now, &limits,
        ) {
            Ok(accepted) => {
                for e in &accepted.events {
                    self.ctrl_apply(e, true);
                }
                self.settle();
                Ok(accepted.duplicate)
            }
            Err(e) => {
                self.note(&format!("  ctrl | refused: {e}"));
                Err(e.to_string())
            }
        }
    }

    /// The agent stops (its processes with it): until [`Sim::start_agent`] it does nothing,
    /// and time passes without it.
    pub fn stop_agent(&mut self, agent: &AgentId) {
        let a = self.agents.get_mut(agent).expect("known agent");
        a.down = true;
        a.running.clear();
        self.note(&format!("{:>6} | (stopped)", agent.to_string()));
        self.settle();
    }

    /// A stopped agent starts again from its journal.
    pub fn start_agent(&mut self, agent: &AgentId) {
        self.agents.get_mut(agent).expect("known agent").down = false;
        self.crash_agent(agent);
    }

    /// The agent dies (its processes with it) and restarts from its journal.
    pub fn crash_agent(&mut self, agent: &AgentId) {
        let verbose = self.verbose;
        let a = self.agents.get_mut(agent).expect("known agent");
        let mut world = World::new(Side::Agent(agent.clone()));
        for e in &a.journal {
            world
                .apply(e)
                .unwrap_or_else(|err| panic!("agent {agent} replays {e}: {err}"));
        }
        a.world = world;
        a.running.clear();
        a.settler = Settler::new();
        a.queue = JobQueue::new();
        a.settler.push_held(&a.world);
        if verbose {
            let _ = writeln!(
                self.log,
                "{:>6} | (restarted from its journal)",
                agent.to_string()
            );
        }
        let lost = lost_processes(&self.agents[agent].world);
        for e in &lost {
            self.agent_apply(agent, e);
        }
        self.settle();
    }

    /// The controller restarts from its journal; the replayed world must equal the live one.
    pub fn restart_controller(&mut self) {
        let mut world = World::new(Side::Controller);
        for e in &self.ctrl_journal {
            world
                .apply(e)
                .unwrap_or_else(|err| panic!("controller replays {e}: {err}"));
        }
        assert_eq!(
            world, self.ctrl,
            "controller replay differs from the live state"
        );
        self.ctrl = world;
        self.settler = Settler::new();
        self.settler.push_held(&self.ctrl);
        self.note("  ctrl | (restarted from its journal)");
        self.settle();
    }

    pub fn set_connected(&mut self, agent: &AgentId, connected: bool) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.connected = connected;
        }
        self.settle();
    }

    /// Advances time by `d`, visiting every timer instant on the way.
    pub fn advance(&mut self, d: DurationMs) {
        let target = self.now.plus(d);
        for _ in 0..INSTANTS_MAX {
            match self.next_instant() {
                Some(t) if t <= target => {
                    self.now = t;
                    self.note(&format!("@ {}", t.0));
                    self.settle();
                }
                _ => break,
            }
        }
        if self.now != target {
            self.now = target;
            self.note(&format!("@ {}", target.0));
            self.settle();
        }
    }

    /// The earliest future instant at which something is due.
    pub fn next_instant(&self) -> Option<TimeMs> {
        let mut times = Vec::new();
        for action in actions(&self.ctrl) {
            match action {
                Action::WakeAt { at, .. } | Action::ExpireNotices { at, .. } => times.push(at),
                _ => {}
            }
        }
        for a in self.agents.values().filter(|a| !a.down) {
            for action in actions(&a.world) {
                if let Action::WakeAt { at, .. } = action {
                    times.push(at);
                }
            }
            for r in a.running.values() {
                if let Some(t) = r.start.timeout {
                    times.push(r.since.plus(t));
                }
            }
        }
        times.into_iter().filter(|t| *t > self.now).min()
    }

    /// Runs every side until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..ROUNDS_MAX {
            let mut made = self.settle_controller();
            made += self.controller_actions();
            let ids: Vec<AgentId> = self.agents.keys().cloned().collect();
            for id in &ids {
                if self.agents[id].down {
                    continue;
                }
                made += self.settle_agent(id);
                made += self.agent_actions(id);
                made += self.forward(id);
            }
            if made == 0 {
                self.check();
                return;
            }
        }
        panic!("no fixpoint after {ROUNDS_MAX} rounds\n{}", self.log);
    }

    fn settle_controller(&mut self) -> usize {
        let mut out = Vec::new();
        loop {
            let done = self
                .settler
                .run(&mut self.ctrl, self.now, EVENTS_PER_RUN_MAX, &mut out);
            if done {
                break;
            }
        }
        for e in &out {
            if self.verbose {
                let _ = writeln!(self.log, "  ctrl | {e}");
            }
        }
        self.ctrl_journal.extend(out.iter().cloned());
        out.len()
    }

    fn settle_agent(&mut self, id: &AgentId) -> usize {
        let a = self.agents.get_mut(id).expect("known agent");
        let mut out = Vec::new();
        loop {
            let done = a
                .settler
                .run(&mut a.world, self.now, EVENTS_PER_RUN_MAX, &mut out);
            if done {
                break;
            }
        }
        a.journal.extend(out.iter().cloned());
        if self.verbose {
            for e in &out {
                let _ = writeln!(self.log, "{:>6} | {e}", id.to_string());
            }
        }
        out.len()
    }

    fn send(&mut self, agent: &AgentId, cmd: AgentCommand) -> usize {
        let Some(a) = self.agents.get(agent) else {
            return 0;
        };
        if !a.connected || a.down {
            return 0;
        }
        let events = agent_command(&a.world, cmd)
            .unwrap_or_else(|e| panic!("agent {agent} refuses a command: {e}\n{}", self.log));
        for e in &events {
            self.agent_apply(agent, e);
        }
        events.len()
    }

    fn controller_actions(&mut self) -> usize {
        let mut made = 0;
        for action in actions(&self.ctrl) {
            match action {
                Action::Attach { order, agent } => {
                    if let Some(cmd) = attach_command(&self.ctrl, &order) {
                        made += self.send(&agent, cmd);
                    }
                }
                Action::Detach { order, agent } => {
                    made += self.send(&agent, AgentCommand::DetachOrder { id: order });
                }
                Action::Mark {
                    order,
                    agent,
                    mark,
                    seq,
                } => {
                    made += self.send(
                        &agent,
                        AgentCommand::MarkOrder {
                            id: order,
                            mark,
                            seq,
                        },
                    );
                }
                Action::WakeAt { order, at } if at <= self.now => {
                    for e in step(&self.ctrl, &order, self.now) {
                        self.ctrl_apply(&e, true);
                        made += 1;
                    }
                }
                Action::ExpireNotices { board, at } if at <= self.now => {
                    for e in expire_notices(&self.ctrl, &board, self.now) {
                        self.ctrl_apply(&e, true);
                        made += 1;
                    }
                }
                Action::Withdraw { .. } | Action::Kill { .. } => {
                    panic!("the controller was asked to {action:?}")
                }
                _ => {}
            }
        }
        made
    }

    fn agent_actions(&mut self, id: &AgentId) -> usize {
        let mut made = 0;
        let now = self.now;
        let timed_out: Vec<OrderId> = self.agents[id]
            .running
            .iter()
            .filter(|(_, r)| r.start.timeout.is_some_and(|t| r.since.plus(t) <= now))
            .map(|(o, _)| o.clone())
            .collect();
        for order in timed_out {
            self.agents
                .get_mut(id)
                .expect("known agent")
                .running
                .remove(&order);
            self.agent_apply(
                id,
                &KeyedEvent::order(
                    &order,
                    OrderEvent::Processed {
                        outcome: Outcome::TimedOut,
                    },
                ),
            );
            made += 1;
        }
        let starts = {
            let a = self.agents.get_mut(id).expect("known agent");
            a.queue.note_all(&a.world);
            a.queue.starts(&a.world, Room::unlimited()).starts
        };
        for start in starts {
            let start = match start {
                Start::Job(start) => start,
                Start::Unrenderable { order, error } => {
                    for event in [
                        OrderEvent::ProcessingStarted { at: now, pgid: 0 },
                        OrderEvent::Processed {
                            outcome: Outcome::disrupted(error.clone()),
                        },
                    ] {
                        self.agent_apply(id, &KeyedEvent::order(&order, event));
                    }
                    made += 2;
                    continue;
                }
            };
            let a = self.agents.get_mut(id).expect("known agent");
            assert!(
                !a.running.contains_key(&start.order),
                "agent {id} starts {} twice",
                start.order
            );
            a.next_pgid += 1;
            let pgid = a.next_pgid;
            let order = start.order.clone();
            if self.verbose {
                let env: Vec<String> = start.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(
                    self.log,
                    "{:>6} | (start {} of {order}{} attempt {}{}{})",
                    id.to_string(),
                    start.job,
                    start
                        .subagent
                        .as_ref()
                        .map(|s| format!(" on {s}"))
                        .unwrap_or_default(),
                    start.attempt,
                    if env.is_empty() { "" } else { "; env " },
                    env.join(" ")
                );
            }
            self.started.push((id.clone(), (*start).clone()));
            a.running.insert(
                order.clone(),
                Running {
                    start: *start,
                    since: now,
                    pgid,
                },
            );
            self.agent_apply(
                id,
                &KeyedEvent::order(&order, OrderEvent::ProcessingStarted { at: now, pgid }),
            );
            made += 1;
        }
        for action in actions(&self.agents[id].world) {
            match action {
                // Simulated processes exist from their start on: nothing is left to withdraw.
                Action::Withdraw { .. } => {}
                Action::Kill { order, kill, .. } => {
                    let a = self.agents.get_mut(id).expect("known agent");
                    if a.running.remove(&order).is_some() {
                        let how = match kill {
                            Kill::Term => "SIGTERM",
                            Kill::Kill => "SIGKILL",
                        };
                        if self.verbose {
                            let _ = writeln!(self.log, "{:>6} | ({how} {order})", id.to_string());
                        }
                        self.agent_apply(
                            id,
                            &KeyedEvent::order(
                                &order,
                                OrderEvent::Processed {
                                    outcome: Outcome::Killed,
                                },
                            ),
                        );
                        made += 1;
                    }
                }
                Action::WakeAt { order, at } if at <= now => {
                    for e in step(&self.agents[id].world, &order, now) {
                        self.agent_apply(id, &e);
                        made += 1;
                    }
                }
                Action::Attach { .. }
                | Action::Detach { .. }
                | Action::Mark { .. }
                | Action::ExpireNotices { .. } => {
                    panic!("agent {id} was asked to {action:?}")
                }
                _ => {}
            }
        }
        made
    }

    fn forward(&mut self, id: &AgentId) -> usize {
        let a = &self.agents[id];
        if !a.connected || a.down {
            return 0;
        }
        let events: Vec<KeyedEvent> = a.journal[a.forwarded..].to_vec();
        for e in &events {
            if let Err(why) = accepts_from_agent(&self.ctrl, id, e) {
                panic!("controller refuses {e} from {id}: {why}\n{}", self.log);
            }
            self.ctrl_apply(e, false);
        }
        let a = self.agents.get_mut(id).expect("known agent");
        a.forwarded = a.journal.len();
        events.len()
    }

    /// Invariants that hold whenever every side is settled.
    pub fn check(&self) {
        for (name, lock) in &self.ctrl.locks {
            assert!(
                lock.used() <= u64::from(lock.limit),
                "lock {name} is over its limit"
            );
            for holder in lock.holders.keys() {
                assert!(
                    self.ctrl
                        .order(holder)
                        .is_some_and(|o| !o.state.is_terminal()),
                    "lock {name} is held by {holder}, which is not live"
                );
            }
        }
        let up = self.agents.values().filter(|a| !a.down);
        for step_world in std::iter::once(&self.ctrl).chain(up.map(|a| &a.world)) {
            for id in step_world.orders.keys() {
                let more = step(step_world, id, self.now);
                assert!(
                    more.is_empty(),
                    "{} has not reached its fixpoint: {id} would emit {}",
                    label(step_world.side()),
                    more[0]
                );
            }
        }
        for (agent, a) in &self.agents {
            a.queue.check(&a.world);
            for (id, o) in &a.world.orders {
                assert!(
                    matches!(&o.holder, Holder::Agent(x) | Holder::Detaching(x) if x == agent),
                    "agent {agent} has {id} held by {}",
                    o.holder
                );
                let processing = matches!(o.state, OrderState::Processing { .. });
                if a.down {
                    continue;
                }
                assert_eq!(
                    processing,
                    a.running.contains_key(id),
                    "agent {agent}: order {id} is {} but its process {}",
                    o.state,
                    if a.running.contains_key(id) {
                        "runs"
                    } else {
                        "does not run"
                    }
                );
                // Once every event is forwarded, the controller's copy is the agent's.
                if a.connected && a.forwarded == a.journal.len() {
                    let mirror = self.ctrl.order(id);
                    assert_eq!(
                        mirror,
                        Some(o),
                        "the controller's copy of {id} differs from agent {agent}'s"
                    );
                }
            }
        }
        for (id, o) in &self.ctrl.orders {
            if let Holder::Agent(agent) = &o.holder {
                let a = &self.agents[agent];
                if a.connected && a.forwarded == a.journal.len() {
                    assert!(
                        a.world.order(id).is_some(),
                        "the controller thinks {agent} holds {id}, but it does not"
                    );
                }
            }
        }
    }

    /// The final states, for a golden file.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "orders:");
        for o in self.ctrl.orders.values() {
            let _ = write!(s, "  {}: {} at {}", o.id, o.state, o.position);
            if o.holder != Holder::Controller {
                let _ = write!(s, " [{}]", o.holder);
            }
            if let Some(m) = &o.mark {
                let _ = write!(s, " [mark: {m}]");
            }
            if o.attempt > 1 {
                let _ = write!(s, " attempt {}", o.attempt);
            }
            let _ = writeln!(s);
            if !o.vars.is_empty() {
                let vars: Vec<String> = o.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(s, "    vars: {}", vars.join(", "));
            }
            for h in &o.outcomes {
                let _ = writeln!(s, "    {}: {}", h.position, h.outcome);
            }
        }
        for (name, lock) in &self.ctrl.locks {
            if !lock.holders.is_empty() || !lock.queue.is_empty() {
                let holders: Vec<String> = lock
                    .holders
                    .iter()
                    .map(|(o, c)| format!("{o}×{c}"))
                    .collect();
                let queue: Vec<String> =
                    lock.queue.iter().map(|(o, c)| format!("{o}×{c}")).collect();
                let _ = writeln!(
                    s,
                    "lock {name}: held by [{}], queue [{}]",
                    holders.join(", "),
                    queue.join(", ")
                );
            }
        }
        for (name, board) in &self.ctrl.boards {
            for (key, until) in &board.notices {
                let _ = writeln!(s, "board {name}: notice {key:?} until {}", until.0);
            }
        }
        for (id, a) in &self.agents {
            if !a.world.orders.is_empty() {
                let ids: Vec<&str> = a.world.orders.keys().map(|o| o.as_str()).collect();
                let _ = writeln!(s, "agent {id} holds: {}", ids.join(", "));
            }
        }
        s
    }

    /// Replays every journal (through postcard) and compares with the live worlds.
    pub fn check_replay(&self) {
        let replay = |side: Side, journal: &[KeyedEvent]| {
            let mut world = World::new(side);
            for e in journal {
                let bytes = postcard::to_stdvec(e).expect("events serialise");
                let back: KeyedEvent = postcard::from_bytes(&bytes).expect("events deserialise");
                assert_eq!(&back, e, "postcard round trip changes {e}");
                serde_json::to_string(e).unwrap_or_else(|err| panic!("{e} as JSON: {err}"));
                world
                    .apply(&back)
                    .unwrap_or_else(|err| panic!("replay of {e}: {err}"));
            }
            world
        };
        assert_eq!(
            replay(Side::Controller, &self.ctrl_journal),
            self.ctrl,
            "the controller's journal does not replay to its state"
        );
        for (id, a) in &self.agents {
            assert_eq!(
                replay(Side::Agent(id.clone()), &a.journal),
                a.world,
                "agent {id}'s journal does not replay to its state"
            );
        }
    }
}
