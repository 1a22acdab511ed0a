//! The controller as a sans-IO state machine: inputs in, [`Action`]s out, no IO, no clock
//! (every input that needs the time is given `now`), no tokio, no randomness.
//!
//! **The log.** Events are grouped in entries (batches); entry `index` of `term` holds up to
//! [`BATCH_EVENTS_MAX`] events, event `k` of it has the id `index << 16 | k` (see
//! [`crate::record`]). The driver appends (proposes) entries when the machine asks
//! ([`Action::Append`]) and says which are committed ([`Machine::committed`] for its own,
//! [`Machine::apply_committed`] for entries made elsewhere), or that a proposal was lost
//! ([`Machine::proposal_lost`]). With one controller, committed means durable in the journal.
//!
//! **State: applied at once, rebuilt on loss.** A leader computes new events from the state
//! plus its own in-flight proposals, so it applies each event the moment it makes it; the
//! state is then the fold of the committed entries followed by the in-flight ones, and equals
//! the fold of the committed entries whenever nothing is in flight. When a proposal is lost
//! (no space for the journal, leadership lost) the machine drops what it planned from it and
//! asks the driver to rebuild the state from the committed log ([`Action::Rebuild`]). The
//! other way, a committed state plus a speculative copy, would hold every order twice; this
//! way holds it once, and a loss (rare: a full disk, a failover) pays a replay instead.
//! A follower never proposes: its state is exactly the fold of the committed entries.
//! Readers learn how far the state is committed with [`Machine::committed_event_id`].
//!
//! **Effects wait for commit.** Replies to commands, commands to agents and releases of agent
//! events are keyed by the (term, index) of the newest entry they depend on, and become
//! actions only once that entry is committed and applied *and* the machine is still the
//! leader of that term. [`Machine::lost_leadership`] answers every pending reply with
//! [`NotActive`] (the outcome is unknown: the entry may still be committed), and
//! [`Machine::proposal_lost`] answers the replies of the lost entries with [`NoSpace`] (nothing
//! of it happened) and pauses writes until [`Machine::resume_writes`].
//!
//! **Only the leader acts.** Stepping orders, timers, notice expiry, retention and agent links
//! run on the leader only ([`Machine::became_leader`] starts them).

mod agents;
mod deploy;
mod timers;
pub mod types;

#[cfg(test)]
mod tests;

pub use agents::{AgentsRefused, Registration, check_url as agents_check_url};
pub use types::{
    Action, CommandReply, DeployRefused, DeployReply, DeployRequest, Entry, LinkMsg, NotActive,
    Position, Refused, Reply, Resume, Token,
};

use crate::full::NoSpace;
use crate::record::{BATCH_EVENTS_MAX, Body, Stored, event_id, index_of};
use crate::state::State;
use ordo_model::driver::Pending;
use ordo_model::ids::AgentId;
use ordo_model::inventory::Inventory;
use ordo_model::order::{
    self, Accepted, AgentCommand, Command, ItemEvent, KeyedEvent, OrderEvent, OrderLimits, Settler,
};
use ordo_model::time::TimeMs;
use ordo_model::wire::{AgentEvent, AgentEventBody};
use std::collections::{BTreeSet, VecDeque};
use timers::{Timer, Timers};

/// Events one order may make in one settling round before others get their turn.
const SETTLE_EVENTS_MAX: usize = 100_000;

/// Slots the batch and the order queue keep between rounds. A larger round (10,000 orders
/// added by one request, an agent's backlog) gives the rest back when it is sealed, so that
/// it does not hold its peak for the life of the process (a batch slot is about 200 bytes).
pub(crate) const ROUND_SLOTS_KEPT: usize = 4096;

/// Bytes of a journal record around its event (version, term, time), at most.
const RECORD_OVERHEAD_BYTES: usize = 32;

/// Settings of the machine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Events committed between two snapshots.
    pub snapshot_events: u64,
    /// How long terminated orders stay.
    pub retention_ms: u64,
    /// How long events stay in the journal for the event stream.
    pub events_retention_ms: u64,
    /// What an order may bring in: for commands and `addOrder` steps.
    pub order_limits: OrderLimits,
    /// Largest event streamed, as JSON ([`crate::streamed`]).
    pub event_bytes_max: usize,
    /// Largest journal record.
    pub record_bytes_max: usize,
    /// The daily planner's.
    pub plan: crate::plan::PlanSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            snapshot_events: 100_000,
            retention_ms: 24 * 3600 * 1000,
            events_retention_ms: 24 * 3600 * 1000,
            order_limits: OrderLimits::default(),
            event_bytes_max: crate::streamed::EVENT_BYTES_MAX_DEFAULT,
            record_bytes_max: usize::MAX,
            plan: crate::plan::PlanSettings::default(),
        }
    }
}

/// Something to do once an entry is committed.
#[derive(Debug)]
enum Effect {
    Command(Token, CommandReply),
    Deploy(Token, DeployReply),
    Coupled(Token, Vec<AgentCommand>),
    Link(AgentId, LinkMsg),
}

impl Effect {
    /// The refusal of a reply whose entry will not be committed by this node; `None` for
    /// messages to agents, which are dropped.
    fn refused(self, why: &Failure) -> Option<Action> {
        let reply = match self {
            Effect::Command(token, _) => (token, Reply::Command(Err(why.refused()))),
            Effect::Deploy(token, _) => (token, Reply::Deploy(Err(why.refused()))),
            Effect::Coupled(token, _) => (token, Reply::Coupled(Err(why.to_string()))),
            Effect::Link(..) => return None,
        };
        Some(Action::Reply {
            token: reply.0,
            reply: reply.1,
        })
    }

    fn done(self) -> Action {
        match self {
            Effect::Command(token, r) => Action::Reply {
                token,
                reply: Reply::Command(Ok(r)),
            },
            Effect::Deploy(token, r) => Action::Reply {
                token,
                reply: Reply::Deploy(Ok(r)),
            },
            Effect::Coupled(token, commands) => Action::Reply {
                token,
                reply: Reply::Coupled(Ok(commands)),
            },
            Effect::Link(agent, msg) => Action::Link { agent, msg },
        }
    }
}

/// Why pending effects will not run.
enum Failure {
    NoSpace(NoSpace),
    NotActive(NotActive),
}

impl Failure {
    fn refused(&self) -> Refused {
        match self {
            Failure::NoSpace(e) => Refused::NoSpace(e.clone()),
            Failure::NotActive(e) => Refused::NotActive(e.clone()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoSpace(e) => e.fmt(f),
            Failure::NotActive(e) => e.fmt(f),
        }
    }
}

/// The controller's state machine. See the module doc.
pub struct Machine {
    state: State,
    settings: Settings,
    /// The current term, and whether this node leads it.
    term: u64,
    leader: bool,
    /// The active controller when another one is, if known.
    active: Option<String>,
    /// The last committed entry and its last event id.
    committed: u64,
    committed_id: u64,
    /// Proposals not yet committed, oldest first: position and last event id.
    in_flight: VecDeque<(Position, u64)>,
    /// Index of the entry being filled.
    index: u64,
    batch: Vec<(u64, Stored)>,
    /// The last event id proposed: the next entry is chained after it.
    sealed_last: u64,
    /// Set between [`Action::Rebuild`] and [`Machine::rebuilt`].
    rebuilding: bool,
    /// Orders to step, and the orders whose actions must be worked out after this round.
    settler: Settler,
    /// By entry index: what waits for it, with the term it was proposed in.
    effects: Pending<(u64, Effect)>,
    timers: Timers,
    /// The wake-up last announced with [`Action::Wake`].
    announced_wake: Option<TimeMs>,
    since_snapshot: u64,
    /// Snapshots written, with when: segments a snapshot covers are released once the
    /// snapshot is older than the event retention.
    snapshots: VecDeque<(u64, TimeMs)>,
    /// See [`Resume::epoch`].
    link_epoch: u64,
    /// Links must reconnect once writes work again.
    reconnect: bool,
    /// Set while proposals cannot be written (the journal's file system is full).
    paused: Option<NoSpace>,
    /// Why the proposals beyond the committed ones were lost, until the state is rebuilt.
    lost: Option<NoSpace>,
    /// Commands and deployments refused while paused.
    refused: u64,
    /// The latest time given with an input.
    now: TimeMs,
    actions: Vec<Action>,
    planner: crate::plan::Planner,
}

impl Machine {
    /// A follower over `state`, the fold of the committed log.
    pub fn new(state: State, settings: Settings) -> Machine {
        let committed_id = state.last_event_id;
        Machine {
            settings,
            term: 0,
            leader: false,
            active: None,
            committed: index_of(committed_id),
            committed_id,
            in_flight: VecDeque::new(),
            index: index_of(committed_id) + 1,
            batch: Vec::new(),
            sealed_last: committed_id,
            rebuilding: false,
            settler: Settler::new(),
            effects: Pending::default(),
            timers: Timers::default(),
            announced_wake: None,
            since_snapshot: 0,
            snapshots: VecDeque::new(),
            link_epoch: 0,
            reconnect: false,
            paused: None,
            lost: None,
            refused: 0,
            now: TimeMs(0),
            actions: Vec::new(),
            planner: crate::plan::Planner::default(),
            state,
        }
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// The state: committed entries, then this node's in-flight proposals.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The id of the last committed event.
    pub fn committed_event_id(&self) -> u64 {
        self.committed_id
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Whether proposals wait for space; the reason.
    pub fn paused(&self) -> Option<&NoSpace> {
        self.paused.as_ref()
    }

    /// The actions asked for since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    // ---- leadership -------------------------------------------------------------------

    /// This node leads `term` from now on: it starts the agent links, steps every order and
    /// arms the timers. Its state must be the committed one (nothing in flight).
    pub fn became_leader(&mut self, term: u64) {
        self.became_leader_at(term, index_of(self.state.last_event_id) + 1);
    }

    /// [`Machine::became_leader`] in a replicated log, where entries without events (a new
    /// leader's empty entry, membership changes) take indexes too: its first proposal goes at
    /// `next_index`, the log's next index.
    pub fn became_leader_at(&mut self, term: u64, next_index: u64) {
        assert!(
            self.in_flight.is_empty() && self.batch.is_empty() && !self.rebuilding,
            "a new leader starts from the committed state"
        );
        assert!(term >= self.term, "terms only grow");
        assert!(
            next_index > index_of(self.state.last_event_id),
            "the next entry ({next_index}) comes after the last applied one"
        );
        self.term = term;
        self.leader = true;
        self.active = None;
        self.index = next_index;
        self.sealed_last = self.state.last_event_id;
        for agent in self.state.world.agents.values() {
            let settings = self.state.world.cluster_settings(&agent.id);
            let backup = self.state.world.extras.backup_directors.get(&agent.id);
            let priorities = self.state.world.extras.priorities.get(&agent.id);
            self.actions.push(Action::EnsureLink(
                Box::new(agent.clone()),
                settings,
                backup.cloned(),
                priorities.cloned().unwrap_or_default(),
            ));
        }
        self.step_everything();
    }

    /// This node no longer leads (`active` leads, when known): every pending effect is
    /// answered with [`NotActive`]; a state that holds proposals not committed is rebuilt.
    pub fn lost_leadership(&mut self, term: u64, active: Option<String>) {
        debug_assert!(self.batch.is_empty(), "leadership changes between rounds");
        self.term = self.term.max(term);
        self.leader = false;
        self.active = active.clone();
        let why = Failure::NotActive(NotActive { active });
        for (_, effect) in self.effects.take_all() {
            if let Some(a) = effect.refused(&why) {
                self.actions.push(a);
            }
        }
        self.forget_plans();
        self.link_epoch += 1;
        self.actions.push(Action::StopLinks);
        if !self.in_flight.is_empty() || !self.batch.is_empty() {
            self.in_flight.clear();
            self.batch.clear();
            self.rebuild();
        }
        self.announce_wake();
    }

    /// The index the next proposal takes (between rounds).
    pub fn next_index(&self) -> u64 {
        debug_assert!(self.batch.is_empty(), "asked between rounds");
        self.index
    }

    /// The log's next index went to an entry of the driver's own (a membership change): the
    /// next proposal takes the one after. Between rounds, on the leader.
    pub fn skip_index(&mut self) {
        assert!(
            self.leader && self.batch.is_empty(),
            "an index is skipped by the leader between rounds"
        );
        self.index += 1;
    }

    /// Takes a snapshot as soon as the state is the committed one (a new node needs one).
    pub fn want_snapshot(&mut self) {
        self.since_snapshot = self.since_snapshot.max(self.settings.snapshot_events);
        self.maybe_snapshot();
    }

    /// A follower learns which controller is active (`None`: none known): the one commands
    /// are sent to.
    pub fn set_active(&mut self, active: Option<String>) {
        if !self.leader {
            self.active = active;
        }
    }

    /// A follower's state replaced by a snapshot of the committed log (from the leader, when
    /// this node lagged behind what the log still holds).
    pub fn restore(&mut self, state: State) {
        assert!(
            !self.leader && self.in_flight.is_empty() && self.batch.is_empty(),
            "only a follower restores a snapshot"
        );
        assert!(
            state.last_event_id >= self.committed_id,
            "a snapshot (event {}) older than the applied state (event {})",
            state.last_event_id,
            self.committed_id
        );
        self.rebuilding = false;
        self.state = state;
        self.committed_id = self.state.last_event_id;
        self.committed = index_of(self.committed_id);
        self.index = self.committed + 1;
        self.sealed_last = self.committed_id;
        self.since_snapshot = 0;
    }

    // ---- the log ----------------------------------------------------------------------

    /// Entries of this node up to `upto` are committed: their effects run (if still leader
    /// of their term), and a snapshot may be due.
    pub fn committed(&mut self, upto: Position, now: TimeMs) {
        self.now = now;
        if upto.index <= self.committed {
            return;
        }
        while let Some((position, last)) = self.in_flight.front().copied() {
            if position.index > upto.index {
                break;
            }
            debug_assert!(position.term <= upto.term);
            self.in_flight.pop_front();
            self.committed = position.index;
            self.committed_id = last;
        }
        assert!(
            self.committed == upto.index,
            "committed entry {} is not one this node proposed (its last is {})",
            upto.index,
            self.committed
        );
        self.run_effects();
    }

    /// An entry committed elsewhere (this node follows, or replays): applied to the state.
    pub fn apply_committed(&mut self, entry: &Entry, now: TimeMs) {
        self.now = now;
        if self.in_flight.front().map(|(p, _)| *p) == Some(entry.position) {
            // Its own proposal, applied when it was made.
            self.committed(entry.position, now);
            return;
        }
        assert!(
            self.in_flight.is_empty() && self.batch.is_empty() && !self.rebuilding,
            "entry {} applied over proposals of this node: it must lose them first",
            entry.position.index
        );
        assert!(
            entry.position.index > self.committed,
            "entry {} applied twice",
            entry.position.index
        );
        for (id, stored) in &entry.events {
            if let Err(skip) = self.state.apply(*id, stored) {
                tracing::warn!(
                    event_id = skip.event_id,
                    "journaled event did not apply: {}",
                    skip.why
                );
            }
        }
        self.term = self.term.max(entry.position.term);
        self.committed = entry.position.index;
        self.committed_id = self.state.last_event_id;
        self.index = self.committed + 1;
        self.sealed_last = self.committed_id;
        self.since_snapshot += entry.events.len() as u64;
        self.maybe_snapshot();
    }

    /// The proposals not yet committed were not written for lack of space (a failed batch
    /// fails every one chained behind it): their replies get `cause`, what was planned from
    /// them is dropped, the state is rebuilt, and proposals pause until
    /// [`Machine::resume_writes`].
    pub fn proposal_lost(&mut self, cause: NoSpace) {
        // Proposals written before the one that failed are in the rebuilt state: their
        // effects run then, the others' are answered with `cause`.
        self.lost = Some(cause.clone());
        debug_assert!(self.batch.is_empty(), "proposals are lost between rounds");
        self.batch.clear();
        self.in_flight.clear();
        self.forget_plans();
        self.link_epoch += 1;
        self.reconnect = true;
        self.paused = Some(cause);
        self.rebuild();
        self.announce_wake();
    }

    /// Still no space, for this reason.
    pub fn still_paused(&mut self, cause: NoSpace) {
        if self.paused.is_some() {
            self.paused = Some(cause);
        }
    }

    /// Proposals may be written again; the links reconnect so that agents send again what
    /// was not journaled. Returns how many commands and deployments were refused meanwhile.
    pub fn resume_writes(&mut self) -> u64 {
        self.paused = None;
        if self.reconnect {
            self.reconnect = false;
            self.actions.push(Action::ReconnectLinks);
        }
        std::mem::take(&mut self.refused)
    }

    /// The state rebuilt from the committed log, as [`Action::Rebuild`] asked.
    pub fn rebuilt(&mut self, state: State) {
        assert!(self.rebuilding, "a rebuilt state that was not asked for");
        assert!(
            state.last_event_id >= self.committed_id,
            "the rebuilt state (event {}) misses committed events (up to {})",
            state.last_event_id,
            self.committed_id
        );
        self.rebuilding = false;
        self.state = state;
        self.committed_id = self.state.last_event_id;
        self.committed = index_of(self.committed_id);
        self.index = self.committed + 1;
        self.sealed_last = self.committed_id;
        if let Some(cause) = self.lost.take() {
            let why = Failure::NoSpace(cause);
            for (_, effect) in self.effects.take_after(self.committed) {
                if let Some(a) = effect.refused(&why) {
                    self.actions.push(a);
                }
            }
        }
        if self.leader {
            self.step_everything();
        }
        self.run_effects();
    }

    // ---- inputs -----------------------------------------------------------------------

    /// A command; answered with [`Reply::Command`] once its events are committed.
    pub fn command(&mut self, token: Token, command: Command, now: TimeMs) {
        self.now = now;
        if let Some(refused) = self.refuse_writes() {
            self.reply(token, Reply::Command(Err(refused)));
            return;
        }
        let accepted = order::command(&self.state.world, command, now, &self.settings.order_limits)
            .map_err(Refused::from)
            .and_then(|a| self.check_sizes(&a.events).map(|()| a));
        match accepted {
            Ok(Accepted { events, duplicate }) => {
                let last = self.emit_events(events);
                self.after_commit(Effect::Command(
                    token,
                    CommandReply {
                        duplicate,
                        last_event_id: last,
                    },
                ));
            }
            Err(e) => self.reply(token, Reply::Command(Err(e))),
        }
    }

    /// A deployment; answered with [`Reply::Deploy`] once its events are committed.
    pub fn deploy(&mut self, token: Token, inventory: &Inventory, now: TimeMs) {
        self.now = now;
        if let Some(refused) = self.refuse_writes() {
            self.reply(token, Reply::Deploy(Err(refused)));
            return;
        }
        let reply = DeployReply {
            changes: Vec::new(),
            last_event_id: 0,
            diff: None,
            dry_run: false,
            warnings: Vec::new(),
        };
        let removals = ordo_model::deploy::Removals::default();
        self.commit_deploy(token, inventory, &removals, reply, now, Vec::new());
    }

    /// Journals a deployment checked already, with the removals' events after the
    /// deployment's (the world's, then the plan's), and answers `reply` with the changes once
    /// committed; `extra` records go in the same batch after them. False when refused
    /// (answered already, nothing journaled).
    fn commit_deploy(
        &mut self,
        token: Token,
        inventory: &Inventory,
        removed: &ordo_model::deploy::Removals,
        mut reply: DeployReply,
        now: TimeMs,
        extra: Vec<Body>,
    ) -> bool {
        let removals = ordo_model::deploy::removal_events(&self.state.world, removed);
        let mut events = order::deploy(&self.state.world, inventory);
        let removed_agents: Vec<AgentId> = removals
            .iter()
            .filter_map(|e| match e {
                KeyedEvent::Item(ItemEvent::AgentRemoved(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        events.extend(removals);
        if let Err(e) = self.check_sizes(&events) {
            self.reply(token, Reply::Deploy(Err(e)));
            return false;
        }
        let mut changes: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        let mut last = self.emit_events(events);
        for body in crate::plan::deploy(&self.state, inventory, removed, now) {
            changes.push(ordo_api::view::describe(&body).2);
            last = self.emit(body);
        }
        for body in extra {
            changes.push(ordo_api::view::describe(&body).2);
            last = self.emit(body);
        }
        self.planner.touch();
        for agent in &inventory.agents {
            let settings = self.state.world.cluster_settings(&agent.id);
            let backup = self.state.world.extras.backup_directors.get(&agent.id);
            let priorities = self.state.world.extras.priorities.get(&agent.id);
            self.actions.push(Action::EnsureLink(
                Box::new(agent.clone()),
                settings,
                backup.cloned(),
                priorities.cloned().unwrap_or_default(),
            ));
        }
        for id in removed_agents {
            self.actions.push(Action::ForgetLink(id));
        }
        reply.changes = changes;
        reply.last_event_id = last;
        self.after_commit(Effect::Deploy(token, reply));
        true
    }

    /// A command on the daily plan; answered like a [`Machine::command`].
    pub fn plan_command(&mut self, token: Token, command: crate::plan::PlanCommand, now: TimeMs) {
        self.now = now;
        if let Some(refused) = self.refuse_writes() {
            self.reply(token, Reply::Command(Err(refused)));
            return;
        }
        match crate::plan::command(&self.state, command, now) {
            Ok(bodies) => {
                let mut last = self.state.last_event_id;
                for body in bodies {
                    last = self.emit(body);
                }
                self.planner.touch();
                let reply = CommandReply {
                    duplicate: false,
                    last_event_id: last,
                };
                self.after_commit(Effect::Command(token, reply));
            }
            Err(e) => self.reply(token, Reply::Command(Err(e.into()))),
        }
    }

    /// Where a link resumes `agent`.
    pub fn cursor(&self, agent: &AgentId) -> Resume {
        let c = self.state.agents.get(agent).cloned().unwrap_or_default();
        Resume {
            run_id: c.run_id,
            after: c.last_event_id,
            epoch: self.link_epoch,
            term: self.term,
        }
    }

    /// A link coupled with an agent; answered with [`Reply::Coupled`]: the commands to
    /// (re)send, or why the session must start again.
    pub fn coupled(
        &mut self,
        token: Token,
        agent: &AgentId,
        run_id: u128,
        epoch: u64,
        now: TimeMs,
    ) {
        self.now = now;
        if !self.leader {
            let why = NotActive {
                active: self.active.clone(),
            };
            self.reply(token, Reply::Coupled(Err(why.to_string())));
            return;
        }
        if epoch != self.link_epoch {
            self.reply(
                token,
                Reply::Coupled(Err(
                    "the controller rolled back its state since this session \
                                    asked where to resume; the session starts again"
                        .into(),
                )),
            );
            return;
        }
        let old = self.state.agents.get(agent).and_then(|c| c.run_id);
        if old != Some(run_id) {
            if let Some(cause) = &self.paused {
                let why = cause.to_string();
                self.reply(token, Reply::Coupled(Err(why)));
                return;
            }
            if old.is_some() {
                tracing::error!(
                    %agent,
                    "agent answered with a new run id: events it had not delivered are lost"
                );
            }
            self.emit(Body::AgentRunChanged {
                agent: agent.clone(),
                old,
                new: run_id,
            });
        }
        let commands = self.resend(agent);
        self.after_commit(Effect::Coupled(token, commands));
    }

    /// Events from an agent's session; each new one is journaled, and released to the agent
    /// once committed.
    pub fn agent_events(
        &mut self,
        agent: &AgentId,
        run_id: u128,
        epoch: u64,
        events: Vec<AgentEvent>,
        now: TimeMs,
    ) {
        self.now = now;
        if !self.leader || epoch != self.link_epoch {
            // Not the active controller, or a stale session: what it sends after events that
            // were dropped or lost would leave a gap. The agent sends them again.
            return;
        }
        if self.paused.is_some() {
            // Not journaled, so not released: the agent keeps them. The sessions go stale
            // and reconnect once writes work again.
            self.link_epoch += 1;
            self.reconnect = true;
            return;
        }
        let mut last = None;
        for e in events {
            if !self.state.is_new_agent_event(agent, run_id, e.id) {
                continue;
            }
            last = Some(e.id);
            self.emit(Body::Agent {
                agent: agent.clone(),
                run_id,
                agent_event_id: e.id,
                body: e.body,
            });
        }
        if let Some(until) = last {
            self.after_commit(Effect::Link(agent.clone(), LinkMsg::Release(until)));
        }
    }

    /// Wakes the orders whose timers are due at `now` and expires the boards' notices.
    pub fn tick(&mut self, now: TimeMs) {
        self.now = now;
        if !self.leader || self.paused.is_some() || self.rebuilding {
            return;
        }
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Order(id) => self.settler.push(id),
                Timer::Board(board) => {
                    // `act` arms the board's next expiry after this round.
                    let events = order::expire_notices(&self.state.world, &board, now);
                    self.emit_events(events);
                }
            }
        }
    }

    /// Retention: removes terminated orders whose time is up (leader, writes working), and
    /// releases the journal segments that snapshots older than the event retention cover.
    pub fn expire(&mut self, now: TimeMs) {
        self.now = now;
        if self.leader && self.paused.is_none() && !self.rebuilding {
            for id in self.state.expired_orders(now, self.settings.retention_ms) {
                self.emit(Body::Event(KeyedEvent::order(&id, OrderEvent::Removed)));
            }
        }
        let limit = i64::try_from(self.settings.events_retention_ms).unwrap_or(i64::MAX);
        let mut release = None;
        while let Some((id, at)) = self.snapshots.front().copied() {
            if now.0.saturating_sub(at.0) < limit {
                break;
            }
            release = Some(id);
            self.snapshots.pop_front();
        }
        if let Some(until) = release {
            self.actions.push(Action::ReleaseSegments { until });
        }
    }

    /// A snapshot asked for with [`Action::WriteSnapshot`] was written.
    pub fn snapshot_written(&mut self, event_id: u64, at: TimeMs) {
        self.snapshots.push_back((event_id, at));
    }

    /// Ends a round: steps the orders that may move, works out their actions, proposes the
    /// batch, and runs the effects already committed. While writes are paused only what the
    /// committed state asks of agents goes out.
    pub fn flush(&mut self, now: TimeMs) {
        self.now = now;
        if self.leader && !self.rebuilding {
            if self.paused.is_none() {
                self.plan();
                self.settle();
                self.act();
                self.seal();
                self.shrink_round_buffers();
            } else {
                self.act();
            }
        }
        self.run_effects();
        self.announce_wake();
    }

    // ---- inside -----------------------------------------------------------------------

    /// A round of the daily planner, when one is due ([`crate::plan`]).
    fn plan(&mut self) {
        if self.planner.is_due(self.now) {
            let s = &self.settings;
            let bodies = self
                .planner
                .run(&self.state, self.now, &s.plan, &s.order_limits);
            for body in bodies {
                self.emit(body);
            }
            self.planner.done(&self.state.plan, &self.settings.plan);
        }
    }

    /// Gives back the slots of a large round beyond [`ROUND_SLOTS_KEPT`].
    fn shrink_round_buffers(&mut self) {
        debug_assert!(self.batch.is_empty(), "the round's batch is sealed");
        if self.batch.capacity() > ROUND_SLOTS_KEPT {
            self.batch.shrink_to(ROUND_SLOTS_KEPT);
        }
        if self.settler.capacity() > ROUND_SLOTS_KEPT {
            self.settler.shrink_to(ROUND_SLOTS_KEPT);
        }
    }

    /// Capacities of the round's batch and order queue (for tests of what a round keeps).
    #[cfg(test)]
    pub(crate) fn round_capacities(&self) -> (usize, usize, usize) {
        (
            self.batch.capacity(),
            self.settler.capacity(),
            self.settler.len(),
        )
    }

    fn reply(&mut self, token: Token, reply: Reply) {
        self.actions.push(Action::Reply { token, reply });
    }

    /// Why a command or deployment is refused now, if it is.
    fn refuse_writes(&mut self) -> Option<Refused> {
        if !self.leader || self.rebuilding {
            return Some(Refused::NotActive(NotActive {
                active: self.active.clone(),
            }));
        }
        let cause = self.paused.clone()?;
        self.refused += 1;
        Some(Refused::NoSpace(cause))
    }

    /// Drops what was planned from the state: queued steps, timers.
    fn forget_plans(&mut self) {
        self.settler.clear();
        self.timers.clear();
    }

    fn rebuild(&mut self) {
        self.rebuilding = true;
        self.actions.push(Action::Rebuild {
            committed: self.committed_id,
        });
    }

    fn announce_wake(&mut self) {
        let next = if self.leader {
            let plan = self.planner.next_wake();
            self.timers.next().into_iter().chain(plan).min()
        } else {
            None
        };
        if next != self.announced_wake {
            self.announced_wake = next;
            self.actions.push(Action::Wake(next));
        }
    }

    /// Every order is stepped and its actions worked out again (a new leader, a rebuild).
    fn step_everything(&mut self) {
        self.planner.touch();
        self.settler.push_all(&self.state.world);
    }

    /// Refuses events that the journal or the readers of the stream could not take, before
    /// any is journaled.
    fn check_sizes(&self, events: &[KeyedEvent]) -> Result<(), Refused> {
        for e in events {
            let postcard = postcard::experimental::serialized_size(e).unwrap_or(usize::MAX);
            let record = postcard.saturating_add(RECORD_OVERHEAD_BYTES);
            if record <= self.settings.record_bytes_max
                && !crate::streamed::may_exceed(record, self.settings.event_bytes_max)
            {
                continue;
            }
            let stored = Stored {
                term: self.term,
                ts: self.now,
                body: Body::Event(e.clone()),
            };
            let (key, kind, _) = ordo_api::view::describe(&stored.body);
            if record > self.settings.record_bytes_max {
                return Err(Refused::RecordTooLarge {
                    key,
                    kind,
                    bytes: record,
                    record_bytes_max: self.settings.record_bytes_max,
                });
            }
            if let Some(bytes) = crate::streamed::oversize(&stored, self.settings.event_bytes_max) {
                return Err(Refused::EventTooLarge {
                    key,
                    kind,
                    bytes,
                    event_bytes_max: self.settings.event_bytes_max,
                });
            }
        }
        Ok(())
    }

    /// Adds one event to the current batch and applies it; the orders it affects are
    /// stepped and their actions worked out again.
    fn emit(&mut self, body: Body) -> u64 {
        let event = match &body {
            Body::Event(e) => Some(e),
            Body::Agent {
                body: AgentEventBody::Order(e),
                ..
            } => Some(e),
            _ => None,
        };
        if let Some(e) = event {
            self.settler.note(&self.state.world, e);
        }
        self.journal(body)
    }

    /// Adds one event to the current batch and applies it. An event of its own that the
    /// state refuses is not journaled ([`order::refused`]); an agent's is, for its cursor
    /// (the state reports it and changes nothing but the cursor, as replay will).
    fn journal(&mut self, body: Body) -> u64 {
        debug_assert!(self.leader && !self.rebuilding, "only a leader proposes");
        if self.batch.len() == BATCH_EVENTS_MAX {
            self.seal();
        }
        let id = event_id(self.index, self.batch.len());
        let stored = Stored {
            term: self.term,
            ts: self.now,
            body,
        };
        let before = self.state.last_event_id;
        if let Err(skip) = self.state.apply(id, &stored) {
            if let Body::Event(e) = &stored.body {
                // Nothing of the state changed but the last id, which goes back.
                self.state.last_event_id = before;
                tracing::error!("{}", order::refused(e, &skip.why));
                return before;
            }
            tracing::warn!(
                event_id = skip.event_id,
                "an agent's event is journaled for its cursor but does not apply: {}",
                skip.why
            );
        }
        self.batch.push((id, stored));
        id
    }

    fn emit_events(&mut self, events: Vec<KeyedEvent>) -> u64 {
        let mut last = self.state.last_event_id;
        for e in events {
            last = self.emit(Body::Event(e));
        }
        last
    }

    /// Steps queued orders until nothing moves (or [`SETTLE_EVENTS_MAX`] events: the rest
    /// goes on next round).
    fn settle(&mut self) {
        let mut settler = std::mem::take(&mut self.settler);
        let done = settler.settle(
            self,
            self.now,
            &self.settings.order_limits.clone(),
            SETTLE_EVENTS_MAX,
        );
        debug_assert!(
            self.settler.is_empty(),
            "nothing queues orders while settling"
        );
        self.settler = settler;
        if !done {
            tracing::warn!(
                "settling made {SETTLE_EVENTS_MAX} events in one round; continuing next round"
            );
        }
    }

    /// Proposes the current batch, chained after the one before it.
    fn seal(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.batch);
        let position = Position {
            term: self.term,
            index: self.index,
        };
        let after = self.sealed_last;
        self.sealed_last = self.state.last_event_id;
        self.since_snapshot += events.len() as u64;
        self.in_flight.push_back((position, self.sealed_last));
        self.index += 1;
        self.actions.push(Action::Append {
            position,
            after,
            events,
        });
    }

    /// The entry an effect waits for: the batch being filled, else the newest proposal, else
    /// the newest committed entry.
    fn after_commit(&mut self, effect: Effect) {
        let index = if !self.batch.is_empty() {
            self.index
        } else if let Some((p, _)) = self.in_flight.back() {
            p.index
        } else {
            self.committed
        };
        self.effects.push(index, (self.term, effect));
    }

    /// Runs the effects of committed entries (while leader of their term), then snapshots if
    /// one is due.
    fn run_effects(&mut self) {
        let why = Failure::NotActive(NotActive {
            active: self.active.clone(),
        });
        for (term, effect) in self.effects.take_due(self.committed) {
            let action = if self.leader && term == self.term {
                Some(effect.done())
            } else {
                effect.refused(&why)
            };
            self.actions.extend(action);
        }
        self.maybe_snapshot();
    }

    fn maybe_snapshot(&mut self) {
        if self.in_flight.is_empty()
            && self.batch.is_empty()
            && !self.rebuilding
            && self.committed_id == self.state.last_event_id
            && self.since_snapshot >= self.settings.snapshot_events
        {
            self.since_snapshot = 0;
            match postcard::to_allocvec(&self.state) {
                Ok(bytes) => self.actions.push(Action::WriteSnapshot {
                    event_id: self.committed_id,
                    at: self.now,
                    bytes,
                }),
                Err(e) => tracing::error!("cannot encode the state for a snapshot: {e}"),
            }
        }
    }

    /// The commands an agent must get again after (re)coupling: attachments, detachments and
    /// marks that the state still waits for.
    fn resend(&self, agent: &AgentId) -> Vec<AgentCommand> {
        let mut out = Vec::new();
        for action in order::actions(&self.state.world) {
            if let Some((a, cmd)) = link_command(&self.state, &action)
                && &a == agent
            {
                out.push(cmd);
            }
        }
        out
    }

    /// Works out the actions of the orders this round touched, and arms the boards' notice
    /// expiry timers.
    fn act(&mut self) {
        let touched = self.settler.take_touched();
        let mut actions = order::actions_for(&self.state.world, &touched);
        actions.extend(order::board_actions(&self.state.world));
        let mut timed = BTreeSet::new();
        for action in actions {
            match &action {
                order::Action::WakeAt { order, at } => {
                    timed.insert(order.clone());
                    self.timers.set(Timer::Order(order.clone()), *at);
                }
                order::Action::ExpireNotices { board, at } => {
                    self.timers.set(Timer::Board(board.clone()), *at);
                }
                _ => {
                    if let Some((agent, cmd)) = link_command(&self.state, &action) {
                        self.after_commit(Effect::Link(agent, LinkMsg::Command(cmd)));
                    }
                }
            }
        }
        for id in touched {
            if !timed.contains(&id) {
                self.timers.clear_one(&Timer::Order(id));
            }
        }
    }
}

/// The command an action sends to an agent, if it sends one.
fn link_command(state: &State, action: &order::Action) -> Option<(AgentId, AgentCommand)> {
    match action {
        order::Action::Attach { order, agent } => {
            order::attach_command(&state.world, order).map(|c| (agent.clone(), c))
        }
        order::Action::Detach { order, agent } => Some((
            agent.clone(),
            AgentCommand::DetachOrder { id: order.clone() },
        )),
        order::Action::Mark {
            order,
            agent,
            mark,
            seq,
        } => Some((
            agent.clone(),
            AgentCommand::MarkOrder {
                id: order.clone(),
                mark: mark.clone(),
                seq: *seq,
            },
        )),
        _ => None,
    }
}

impl order::Driver for Machine {
    fn world(&self) -> &ordo_model::order::World {
        &self.state.world
    }

    fn emit(&mut self, event: KeyedEvent) {
        self.journal(Body::Event(event));
    }
}
