//! The controller's core: one task that owns the state, turns inputs into journaled events,
//! and carries out the actions the state asks for.
//!
//! The loop: inputs (API commands, deployments, agent events, timers) become events through the
//! model; each event gets its id (`index << 16 | offset`, see [`crate::record`]), is applied to
//! the state at once and queued in the current batch; affected orders are stepped until
//! nothing moves (the model's fixpoint). The batch is appended to the journal as one unit
//! (group commit). Everything the outside sees waits until the batch is durable: replies to
//! commands, commands to agents, releases of agent events. Events are therefore applied in
//! memory before they are durable, but nothing acts on them before; a failed journal write
//! stops the controller.

use crate::record::{BATCH_EVENTS_MAX, Body, Record, Stored, event_id};
use crate::state::State;
use ordo_journal::Journal;
use ordo_model::ids::{AgentId, OrderId};
use ordo_model::inventory::Inventory;
use ordo_model::order::{
    self, Accepted, Action, AgentCommand, Command, CommandError, KeyedEvent, OrderEvent,
    OrderLimits, affected,
};
use ordo_model::time::TimeMs;
use ordo_model::wire::{AgentEvent, AgentEventBody, AgentMeta};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tokio::sync::{mpsc, oneshot, watch};

/// Events one order may make in one settling round before others get their turn.
const SETTLE_EVENTS_MAX: usize = 100_000;

/// A read of the state and the durable event id, run between batches.
pub type Reader = Box<dyn FnOnce(&State, u64) + Send>;

/// What the core is asked to do.
pub enum Input {
    Command {
        command: Command,
        reply: oneshot::Sender<Result<CommandReply, Refused>>,
    },
    Deploy {
        inventory: Box<Inventory>,
        reply: oneshot::Sender<Result<DeployReply, Refused>>,
    },
    /// A link asks where to resume an agent.
    Cursor {
        agent: AgentId,
        reply: oneshot::Sender<(Option<u128>, u64)>,
    },
    /// A link coupled with an agent; the reply lists the commands to (re)send.
    Coupled {
        agent: AgentId,
        run_id: u128,
        reply: oneshot::Sender<Vec<AgentCommand>>,
    },
    AgentEvents {
        agent: AgentId,
        run_id: u128,
        events: Vec<AgentEvent>,
    },
    /// Read access: the function runs on the state between batches.
    Read(Reader),
}

/// Why a command or deployment was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
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
}

/// Bytes of a journal record around its event (version, term, time), at most.
const RECORD_OVERHEAD_BYTES: usize = 32;

/// The answer to a command: its events' ids (empty for a duplicate add).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandReply {
    pub duplicate: bool,
    pub last_event_id: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReply {
    pub changes: Vec<String>,
    pub last_event_id: u64,
}

/// Messages to an agent link.
#[derive(Debug)]
pub enum LinkMsg {
    Command(AgentCommand),
    Release(u64),
}

/// What a link reports and the API shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    pub connected: bool,
    pub url: String,
    pub connected_since_ms: Option<i64>,
    pub last_error: Option<String>,
    pub meta: Option<AgentMeta>,
}

/// Starts and stops agent links as agents are deployed.
pub trait Links: Send {
    /// Makes sure a link runs for `agent` at `url`, restarting it when the URL changed.
    fn ensure(&mut self, agent: &ordo_model::inventory::Agent);
    fn send(&self, agent: &AgentId, msg: LinkMsg);
}

type Clock = Box<dyn Fn() -> TimeMs + Send>;

/// What a timer wakes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Order(OrderId),
    Board(ordo_model::ids::BoardName),
}

/// Something to do once the journal is durable up to an id.
enum Effect {
    Reply(Box<dyn FnOnce() + Send>),
    Link(AgentId, LinkMsg),
}

pub struct Core<L: Links> {
    journal: Journal,
    state: State,
    term: u64,
    index: u64,
    clock: Clock,
    links: L,
    batch: Vec<(u64, Stored)>,
    queue: VecDeque<OrderId>,
    queued: BTreeSet<OrderId>,
    /// Orders whose actions must be recomputed after this batch.
    touched: BTreeSet<OrderId>,
    effects: BTreeMap<u64, Vec<Effect>>,
    timers: BTreeSet<(TimeMs, Timer)>,
    timer_of: BTreeMap<Timer, TimeMs>,
    snapshot_events: u64,
    since_snapshot: u64,
    retention_ms: u64,
    /// How long events stay in the journal for the event stream.
    events_retention_ms: u64,
    /// Snapshots written, with when: segments a snapshot covers are released once the
    /// snapshot is older than the event retention.
    snapshots: VecDeque<(u64, TimeMs)>,
    fatal_tx: mpsc::UnboundedSender<String>,
    fatal_rx: mpsc::UnboundedReceiver<String>,
    /// What an order may bring in: for commands and `addOrder` steps.
    order_limits: OrderLimits,
    /// Largest event streamed, as JSON ([`crate::streamed`]).
    event_bytes_max: usize,
    /// Largest journal record.
    record_bytes_max: usize,
}

impl<L: Links> Core<L> {
    pub fn new(
        journal: Journal,
        state: State,
        links: L,
        clock: Clock,
        snapshot_events: u64,
        retention_ms: u64,
        events_retention_ms: u64,
    ) -> Core<L> {
        let index = crate::record::index_of(state.last_event_id) + 1;
        let (fatal_tx, fatal_rx) = mpsc::unbounded_channel();
        let mut core = Core {
            journal,
            state,
            term: 1,
            index,
            clock,
            links,
            batch: Vec::new(),
            queue: VecDeque::new(),
            queued: BTreeSet::new(),
            touched: BTreeSet::new(),
            effects: BTreeMap::new(),
            timers: BTreeSet::new(),
            timer_of: BTreeMap::new(),
            snapshot_events,
            since_snapshot: 0,
            retention_ms,
            events_retention_ms,
            snapshots: VecDeque::new(),
            fatal_tx,
            fatal_rx,
            order_limits: OrderLimits::default(),
            event_bytes_max: crate::streamed::EVENT_BYTES_MAX_DEFAULT,
            record_bytes_max: usize::MAX,
        };
        for agent in core
            .state
            .world
            .agents
            .values()
            .cloned()
            .collect::<Vec<_>>()
        {
            core.links.ensure(&agent);
        }
        let held: Vec<OrderId> = core.state.world.orders.keys().cloned().collect();
        for id in held {
            core.push(id.clone());
            core.touched.insert(id);
        }
        core
    }

    /// Checks what orders bring in (commands and `addOrder` steps) with `limits` instead of
    /// the defaults.
    pub fn with_order_limits(mut self, limits: OrderLimits) -> Core<L> {
        self.order_limits = limits;
        self
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Sets the largest event the core journals from a command or deployment: as JSON for
    /// the readers of the stream, and as a journal record (the journal's `record_bytes_max`).
    pub fn with_event_limits(mut self, event_bytes_max: usize, record_bytes_max: usize) -> Self {
        self.event_bytes_max = event_bytes_max;
        self.record_bytes_max = record_bytes_max;
        self
    }

    /// Refuses events that the journal or the readers of the stream could not take, before
    /// any is journaled.
    fn check_sizes(&self, events: &[KeyedEvent]) -> Result<(), Refused> {
        let ts = (self.clock)();
        for e in events {
            let postcard = postcard::experimental::serialized_size(e).unwrap_or(usize::MAX);
            let record = postcard.saturating_add(RECORD_OVERHEAD_BYTES);
            if record <= self.record_bytes_max
                && !crate::streamed::may_exceed(record, self.event_bytes_max)
            {
                continue;
            }
            let stored = Stored {
                term: self.term,
                ts,
                body: Body::Event(e.clone()),
            };
            let (key, kind, _) = crate::api::convert::describe(&stored.body);
            if record > self.record_bytes_max {
                return Err(Refused::RecordTooLarge {
                    key,
                    kind,
                    bytes: record,
                    record_bytes_max: self.record_bytes_max,
                });
            }
            if let Some(bytes) = crate::streamed::oversize(&stored, self.event_bytes_max) {
                return Err(Refused::EventTooLarge {
                    key,
                    kind,
                    bytes,
                    event_bytes_max: self.event_bytes_max,
                });
            }
        }
        Ok(())
    }

    fn push(&mut self, id: OrderId) {
        if self.queued.insert(id.clone()) {
            self.queue.push_back(id);
        }
    }

    /// Journals (in the current batch) and applies one event.
    fn emit(&mut self, body: Body) -> u64 {
        if self.batch.len() == BATCH_EVENTS_MAX {
            self.seal();
        }
        let id = event_id(self.index, self.batch.len());
        let stored = Stored {
            term: self.term,
            ts: (self.clock)(),
            body,
        };
        let event = match &stored.body {
            Body::Event(e) => Some(e),
            Body::Agent {
                body: AgentEventBody::Order(e),
                ..
            } => Some(e),
            _ => None,
        };
        if let Some(e) = event {
            for o in affected(&self.state.world, e) {
                self.touched.insert(o.clone());
                self.push(o);
            }
            if let KeyedEvent::Order { id, .. } = e {
                self.touched.insert(id.clone());
            }
        }
        if let Err(skip) = self.state.apply(id, &stored) {
            tracing::warn!(
                event_id = skip.event_id,
                "journaled event did not apply: {}",
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

    /// Steps queued orders until nothing moves.
    fn settle(&mut self) {
        let now = (self.clock)();
        let mut made = 0;
        while let Some(id) = self.queue.pop_front() {
            self.queued.remove(&id);
            let events = order::step_with(&self.state.world, &id, now, &self.order_limits);
            made += events.len();
            self.emit_events(events);
            if made > SETTLE_EVENTS_MAX {
                tracing::warn!("settling made {made} events in one round; continuing next round");
                break;
            }
        }
    }

    /// Appends the current batch to the journal.
    fn seal(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let event_bytes_max = self.event_bytes_max;
        let records: Vec<(Option<u64>, Vec<u8>)> = self
            .batch
            .drain(..)
            .map(|(id, s)| {
                let record = Record::V1(s);
                let bytes = record.encode();
                let Record::V1(stored) = &record;
                if crate::streamed::may_exceed(bytes.len(), event_bytes_max)
                    && let Some(n) = crate::streamed::oversize(stored, event_bytes_max)
                {
                    // Commands and deployments were checked; this came from an agent or from
                    // stepping an order, and cannot be refused any more.
                    tracing::error!(
                        event_id = id,
                        bytes = n,
                        event_bytes_max,
                        "an event is larger than limits.event_bytes_max: readers with a smaller frame limit cannot take it"
                    );
                }
                (Some(id), bytes)
            })
            .collect();
        self.since_snapshot += records.len() as u64;
        self.index += 1;
        let appending = self.journal.append_batch(records);
        // The durable id watch drives the effects; a failed append stops the core.
        let fatal = self.fatal_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = appending.await {
                let _ = fatal.send(format!("the journal failed: {e}"));
            }
        });
    }

    /// The effects wait for the last event id journaled so far.
    fn after_batch(&mut self, effect: Effect) {
        let id = self.state.last_event_id;
        self.effects.entry(id).or_default().push(effect);
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Command { command, reply } => {
                let now = (self.clock)();
                let accepted = order::command(&self.state.world, command, now, &self.order_limits)
                    .map_err(Refused::from)
                    .and_then(|a| self.check_sizes(&a.events).map(|()| a));
                match accepted {
                    Ok(Accepted { events, duplicate }) => {
                        let last = self.emit_events(events);
                        self.after_batch(Effect::Reply(Box::new(move || {
                            let _ = reply.send(Ok(CommandReply {
                                duplicate,
                                last_event_id: last,
                            }));
                        })));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Input::Deploy { inventory, reply } => {
                let events = order::deploy(&self.state.world, &inventory);
                if let Err(e) = self.check_sizes(&events) {
                    let _ = reply.send(Err(e));
                    return;
                }
                let changes: Vec<String> = events.iter().map(|e| e.to_string()).collect();
                let last = self.emit_events(events);
                for agent in &inventory.agents {
                    self.links.ensure(agent);
                }
                self.after_batch(Effect::Reply(Box::new(move || {
                    let _ = reply.send(Ok(DeployReply {
                        changes,
                        last_event_id: last,
                    }));
                })));
            }
            Input::Cursor { agent, reply } => {
                let c = self.state.agents.get(&agent).cloned().unwrap_or_default();
                let _ = reply.send((c.run_id, c.last_event_id));
            }
            Input::Coupled {
                agent,
                run_id,
                reply,
            } => {
                let old = self.state.agents.get(&agent).and_then(|c| c.run_id);
                if old != Some(run_id) {
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
                let commands = self.resend(&agent);
                self.after_batch(Effect::Reply(Box::new(move || {
                    let _ = reply.send(commands);
                })));
            }
            Input::AgentEvents {
                agent,
                run_id,
                events,
            } => {
                let mut last = None;
                for e in events {
                    if !self.state.is_new_agent_event(&agent, run_id, e.id) {
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
                    self.after_batch(Effect::Link(agent, LinkMsg::Release(until)));
                }
            }
            Input::Read(f) => f(&self.state, self.journal.last_id()),
        }
    }

    /// The commands an agent must get again after (re)coupling: attachments, detachments and
    /// marks that the state still waits for.
    fn resend(&self, agent: &AgentId) -> Vec<AgentCommand> {
        let mut out = Vec::new();
        for action in order::actions(&self.state.world) {
            if let Some((a, cmd)) = self.link_command(&action)
                && &a == agent
            {
                out.push(cmd);
            }
        }
        out
    }

    fn link_command(&self, action: &Action) -> Option<(AgentId, AgentCommand)> {
        match action {
            Action::Attach { order, agent } => {
                order::attach_command(&self.state.world, order).map(|c| (agent.clone(), c))
            }
            Action::Detach { order, agent } => Some((
                agent.clone(),
                AgentCommand::DetachOrder { id: order.clone() },
            )),
            Action::Mark {
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

    /// Carries out the actions of the orders this batch touched, and arms the boards' notice
    /// expiry timers.
    fn act(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        let mut actions = order::actions_for(&self.state.world, &touched);
        actions.extend(order::board_actions(&self.state.world));
        let mut timed = BTreeSet::new();
        for action in actions {
            match &action {
                Action::WakeAt { order, at } => {
                    timed.insert(order.clone());
                    self.set_timer(Timer::Order(order.clone()), *at);
                }
                Action::ExpireNotices { board, at } => {
                    self.set_timer(Timer::Board(board.clone()), *at);
                }
                _ => {
                    if let Some((agent, cmd)) = self.link_command(&action) {
                        self.after_batch(Effect::Link(agent, LinkMsg::Command(cmd)));
                    }
                }
            }
        }
        for id in touched {
            if !timed.contains(&id) {
                self.clear_timer(&Timer::Order(id));
            }
        }
    }

    fn set_timer(&mut self, timer: Timer, at: TimeMs) {
        self.clear_timer(&timer);
        self.timers.insert((at, timer.clone()));
        self.timer_of.insert(timer, at);
    }

    fn clear_timer(&mut self, timer: &Timer) {
        if let Some(at) = self.timer_of.remove(timer) {
            self.timers.remove(&(at, timer.clone()));
        }
    }

    /// Wakes the orders whose timers are due and expires the boards' notices.
    fn fire_timers(&mut self) {
        let now = (self.clock)();
        while let Some((at, timer)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.timer_of.remove(&timer);
            match timer {
                Timer::Order(id) => {
                    self.touched.insert(id.clone());
                    self.push(id);
                }
                Timer::Board(board) => {
                    // `act` arms the board's next expiry after this round.
                    let events = order::expire_notices(&self.state.world, &board, now);
                    self.emit_events(events);
                }
            }
        }
    }

    fn expire(&mut self) {
        let now = (self.clock)();
        for id in self.state.expired_orders(now, self.retention_ms) {
            self.emit(Body::Event(KeyedEvent::order(&id, OrderEvent::Removed)));
        }
        // Events older than the retention go once a snapshot covers them.
        let limit = i64::try_from(self.events_retention_ms).unwrap_or(i64::MAX);
        let mut release = None;
        while let Some((id, at)) = self.snapshots.front().copied() {
            if now.0.saturating_sub(at.0) < limit {
                break;
            }
            release = Some(id);
            self.snapshots.pop_front();
        }
        if let Some(id) = release {
            let journal = self.journal.clone();
            tokio::task::spawn_blocking(move || match journal.release(id) {
                Ok(n) if n > 0 => tracing::info!("released {n} journal segments up to event {id}"),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot release journal segments up to {id}: {e}"),
            });
        }
    }

    /// The next instant a timer is due.
    fn next_timer(&self) -> Option<TimeMs> {
        self.timers.first().map(|(at, _)| *at)
    }

    fn run_effects(&mut self, durable: u64) {
        while let Some(entry) = self.effects.first_entry() {
            if *entry.key() > durable {
                break;
            }
            for effect in entry.remove() {
                match effect {
                    Effect::Reply(f) => f(),
                    Effect::Link(agent, msg) => self.links.send(&agent, msg),
                }
            }
        }
        if durable == self.state.last_event_id
            && self.batch.is_empty()
            && self.since_snapshot >= self.snapshot_events
        {
            self.snapshot();
        }
    }

    fn snapshot(&mut self) {
        self.since_snapshot = 0;
        let id = self.state.last_event_id;
        let bytes = match postcard::to_allocvec(&self.state) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot encode the state for a snapshot: {e}");
                return;
            }
        };
        self.snapshots.push_back((id, (self.clock)()));
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = journal.write_snapshot(id, &bytes) {
                tracing::error!("cannot write a snapshot at event {id}: {e}");
            }
        });
    }

    /// One round: settle, seal the batch, plan the effects.
    fn flush(&mut self) {
        self.settle();
        self.act();
        self.seal();
    }

    /// Runs until `inputs` closes or the journal fails.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>) -> Result<(), String> {
        let mut durable: watch::Receiver<u64> = self.journal.durable_id_watch();
        let expiry_ms = (self.retention_ms.min(self.events_retention_ms) / 4).clamp(100, 60_000);
        let mut expiry = tokio::time::interval(std::time::Duration::from_millis(expiry_ms));
        self.flush();
        loop {
            // Effects whose events were durable already (or that made no events) run now.
            let id = *durable.borrow_and_update();
            self.run_effects(id);
            let sleep = match self.next_timer() {
                Some(at) => {
                    let now = (self.clock)();
                    std::time::Duration::from_millis(u64::try_from(at.0 - now.0).unwrap_or(0))
                }
                None => std::time::Duration::from_secs(3600),
            };
            tokio::select! {
                input = inputs.recv() => {
                    let Some(input) = input else { return Ok(()) };
                    self.handle(input);
                    // Take what else is waiting, up to a bound, into the same batch.
                    for _ in 0..4096 {
                        match inputs.try_recv() {
                            Ok(input) => self.handle(input),
                            Err(_) => break,
                        }
                    }
                }
                changed = durable.changed() => {
                    if changed.is_err() {
                        return Err("the journal stopped".into());
                    }
                    let id = *durable.borrow_and_update();
                    self.run_effects(id);
                }
                _ = tokio::time::sleep(sleep) => self.fire_timers(),
                _ = expiry.tick() => self.expire(),
                fatal = self.fatal_rx.recv() => {
                    return Err(fatal.unwrap_or_else(|| "the journal failed".into()));
                }
            }
            self.flush();
        }
    }
}
