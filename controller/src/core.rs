//! The controller's core: one task that owns the state, turns inputs into journaled events,
//! and carries out the actions the state asks for.
//!
//! The loop: inputs (API commands, deployments, agent events, timers) become events through the
//! model; each event gets its id (`index << 16 | offset`, see [`crate::record`]), is applied to
//! the state at once and queued in the current batch; affected orders are stepped until
//! nothing moves (the model's fixpoint). The batch is appended to the journal as one unit
//! (group commit), chained to the batch before it (`append_batch_after`), without waiting for
//! that one. Everything the outside sees waits until the batch is durable: replies to
//! commands, commands to agents, releases of agent events. Events are therefore applied in
//! memory before they are durable, but nothing acts on them before.
//!
//! A batch that cannot be written because the journal's file system is full (`NoSpace`; the
//! batches chained behind it fail with it) is undone: the state is rebuilt from the journal
//! (newest snapshot + replay), so it is again exactly the fold of what is durable; replies
//! waiting for the lost events get [`NoSpace`] (HTTP 507); commands to agents planned from
//! them are dropped; timers and pending steps are worked out again from the rebuilt state;
//! agent links reconnect once writes work again, so that agents send again what was not
//! journaled. Until then the core writes nothing (see [`crate::full`]). Any other journal
//! failure stops the controller, with the journal's reason.

pub use crate::full::NoSpace;

use crate::full::{Full, PROBE_BYTES};
use crate::record::{BATCH_EVENTS_MAX, Body, Record, Stored, event_id};
use crate::state::State;
use ordo_journal::{Journal, JournalError};
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
        reply: oneshot::Sender<Resume>,
    },
    /// A link coupled with an agent; the reply lists the commands to (re)send, or says why the
    /// session must start again.
    Coupled {
        agent: AgentId,
        run_id: u128,
        /// From the [`Resume`] the session started with.
        epoch: u64,
        reply: oneshot::Sender<Result<Vec<AgentCommand>, String>>,
    },
    AgentEvents {
        agent: AgentId,
        run_id: u128,
        /// From the [`Resume`] the session started with.
        epoch: u64,
        events: Vec<AgentEvent>,
    },
    /// Read access: the function runs on the state between batches.
    Read(Reader),
}

/// Where a link resumes an agent's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub run_id: Option<u128>,
    /// The last agent event id journaled (or about to be).
    pub after: u64,
    /// Sessions started from an older epoch are stale: the core dropped agent events since
    /// (or lost them in a batch that could not be written), so their events are not taken.
    pub epoch: u64,
}

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
    /// Ends every session; each link connects again and resumes where the core says.
    fn reconnect_all(&mut self);
}

type Clock = Box<dyn Fn() -> TimeMs + Send>;

/// What a timer wakes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Order(OrderId),
    Board(ordo_model::ids::BoardName),
}

/// A reply waiting for durability: called with `None` once its events are durable, or with
/// the reason they never will be.
type ReplyFn = Box<dyn FnOnce(Option<&NoSpace>) + Send>;

/// Something to do once the journal is durable up to an id.
enum Effect {
    Reply(ReplyFn),
    Link(AgentId, LinkMsg),
}

/// How an append of a batch ended badly.
enum AppendFailed {
    /// Not written for lack of space; the generation of the batch says whether the core
    /// already rolled back past it.
    Unwritten { generation: u64, cause: NoSpace },
    /// Anything else stops the controller.
    Fatal(String),
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
    snapshot_tx: mpsc::UnboundedSender<(u64, TimeMs)>,
    snapshot_rx: mpsc::UnboundedReceiver<(u64, TimeMs)>,
    /// The last event id handed to the journal: the next batch is chained after it.
    sealed_last: u64,
    /// Bumped at every rollback; failures of batches from older generations are stale.
    generation: u64,
    generation_tx: watch::Sender<u64>,
    failed_tx: mpsc::UnboundedSender<AppendFailed>,
    failed_rx: mpsc::UnboundedReceiver<AppendFailed>,
    /// See [`Resume::epoch`].
    link_epoch: u64,
    /// Links must reconnect once writes work again.
    reconnect: bool,
    /// Set while the journal's file system is full.
    full: Option<Full>,
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
        let sealed_last = journal.last_id();
        debug_assert_eq!(
            sealed_last, state.last_event_id,
            "the state folds the journal"
        );
        let (failed_tx, failed_rx) = mpsc::unbounded_channel();
        let (snapshot_tx, snapshot_rx) = mpsc::unbounded_channel();
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
            snapshot_tx,
            snapshot_rx,
            sealed_last,
            generation: 0,
            generation_tx: watch::Sender::new(0),
            failed_tx,
            failed_rx,
            link_epoch: 0,
            reconnect: false,
            full: None,
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
        core.step_everything();
        core
    }

    /// Checks what orders bring in (commands and `addOrder` steps) with `limits` instead of
    /// the defaults.
    pub fn with_order_limits(mut self, limits: OrderLimits) -> Core<L> {
        self.order_limits = limits;
        self
    }

    /// Every order is stepped and its actions worked out again (after a start or a rollback).
    fn step_everything(&mut self) {
        let held: Vec<OrderId> = self.state.world.orders.keys().cloned().collect();
        for id in held {
            self.push(id.clone());
            self.touched.insert(id);
        }
    }

    /// A watch on the rollback generation: a read of the state is of durable events once the
    /// journal is durable up to its id and the generation has not changed since before the
    /// read.
    pub fn generation_watch(&self) -> watch::Receiver<u64> {
        self.generation_tx.subscribe()
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
            let (key, kind, _) = ordo_api::view::describe(&stored.body);
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

    /// Appends the current batch to the journal, chained after the batch before it.
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
        let after = self.sealed_last;
        self.sealed_last = self.state.last_event_id;
        self.since_snapshot += records.len() as u64;
        self.index += 1;
        let appending = self.journal.append_batch_after(after, records);
        // The durable id watch drives the effects; a failure comes back through `failed`.
        let failed = self.failed_tx.clone();
        let generation = self.generation;
        tokio::spawn(async move {
            let report = match appending.await {
                Ok(_) => return,
                Err(JournalError::NoSpace { dir, reason }) => AppendFailed::Unwritten {
                    generation,
                    cause: NoSpace { dir, cause: reason },
                },
                // Chained behind a batch that failed: that batch reports the failure (no space,
                // or a fatal one), and the rollback it causes covers this one.
                Err(JournalError::Discontinuous { .. }) => return,
                Err(e) => AppendFailed::Fatal(format!("the journal failed: {e}")),
            };
            let _ = failed.send(report);
        });
    }

    /// The effects wait for the last event id journaled so far.
    fn after_batch(&mut self, effect: Effect) {
        let id = self.state.last_event_id;
        self.effects.entry(id).or_default().push(effect);
    }

    /// Why inputs that write are refused now, if they are.
    fn refusing(&self) -> Option<&NoSpace> {
        self.full.as_ref().map(|f| &f.cause)
    }

    /// Refuses an input that would write, while the journal is full; `None` if not refused.
    fn refuse(&mut self) -> Option<NoSpace> {
        let cause = self.refusing()?.clone();
        if let Some(full) = &mut self.full {
            full.refused += 1;
        }
        Some(cause)
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Command { command, reply } => {
                if let Some(cause) = self.refuse() {
                    let _ = reply.send(Err(Refused::NoSpace(cause)));
                    return;
                }
                let now = (self.clock)();
                let accepted = order::command(&self.state.world, command, now, &self.order_limits)
                    .map_err(Refused::from)
                    .and_then(|a| self.check_sizes(&a.events).map(|()| a));
                match accepted {
                    Ok(Accepted { events, duplicate }) => {
                        let last = self.emit_events(events);
                        self.after_batch(Effect::Reply(Box::new(move |unwritten| {
                            let _ = reply.send(match unwritten {
                                None => Ok(CommandReply {
                                    duplicate,
                                    last_event_id: last,
                                }),
                                Some(cause) => Err(Refused::NoSpace(cause.clone())),
                            });
                        })));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Input::Deploy { inventory, reply } => {
                if let Some(cause) = self.refuse() {
                    let _ = reply.send(Err(Refused::NoSpace(cause)));
                    return;
                }
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
                self.after_batch(Effect::Reply(Box::new(move |unwritten| {
                    let _ = reply.send(match unwritten {
                        None => Ok(DeployReply {
                            changes,
                            last_event_id: last,
                        }),
                        Some(cause) => Err(Refused::NoSpace(cause.clone())),
                    });
                })));
            }
            Input::Cursor { agent, reply } => {
                let c = self.state.agents.get(&agent).cloned().unwrap_or_default();
                let _ = reply.send(Resume {
                    run_id: c.run_id,
                    after: c.last_event_id,
                    epoch: self.link_epoch,
                });
            }
            Input::Coupled {
                agent,
                run_id,
                epoch,
                reply,
            } => {
                if epoch != self.link_epoch {
                    let _ = reply.send(Err(
                        "the controller rolled back its state since this session asked where \
                         to resume; the session starts again"
                            .into(),
                    ));
                    return;
                }
                let old = self.state.agents.get(&agent).and_then(|c| c.run_id);
                if old != Some(run_id) {
                    if let Some(cause) = self.refusing() {
                        let _ = reply.send(Err(cause.to_string()));
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
                let commands = self.resend(&agent);
                self.after_batch(Effect::Reply(Box::new(move |unwritten| {
                    let _ = reply.send(match unwritten {
                        None => Ok(commands),
                        Some(cause) => Err(cause.to_string()),
                    });
                })));
            }
            Input::AgentEvents {
                agent,
                run_id,
                epoch,
                events,
            } => {
                if epoch != self.link_epoch {
                    // A stale session: what it sends after events that were dropped or lost
                    // would leave a gap. The agent sends it again after reconnecting.
                    return;
                }
                if self.refusing().is_some() {
                    // Not journaled, so not released: the agent keeps them. The sessions go
                    // stale and reconnect once writes work again.
                    self.link_epoch += 1;
                    self.reconnect = true;
                    return;
                }
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
        // Removals wait while the journal is full; releasing segments frees space.
        if self.refusing().is_none() {
            for id in self.state.expired_orders(now, self.retention_ms) {
                self.emit(Body::Event(KeyedEvent::order(&id, OrderEvent::Removed)));
            }
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
                    Effect::Reply(f) => f(None),
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

    /// Writes a snapshot of the state (all durable) in the background; segments it covers may
    /// be released once it is written.
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
        let journal = self.journal.clone();
        let written = self.snapshot_tx.clone();
        let at = (self.clock)();
        tokio::task::spawn_blocking(move || match journal.write_snapshot(id, &bytes) {
            Ok(()) => {
                let _ = written.send((id, at));
            }
            Err(e @ JournalError::NoSpace { .. }) => {
                tracing::warn!("no snapshot at event {id}, it is tried again later: {e}");
            }
            Err(e) => tracing::error!("cannot write a snapshot at event {id}: {e}"),
        });
    }

    /// A batch was not written: the state goes back to the fold of the durable journal, and
    /// everything planned from the lost events is dropped or answered with `cause`.
    async fn roll_back(&mut self, cause: NoSpace) -> Result<(), String> {
        let journal = self.journal.clone();
        let state = tokio::task::spawn_blocking(move || crate::recover_state(&journal))
            .await
            .map_err(|e| format!("rebuilding the state from the journal: {e}"))?
            .map_err(|e| {
                format!("rebuilding the state from the journal after a failed write: {e}")
            })?;
        let durable = state.last_event_id;
        // Batches sealed before this point are all settled by the journal: the one that
        // failed and every one chained behind it fail, so nothing changes the durable end.
        assert_eq!(
            durable,
            self.journal.last_id(),
            "the rebuilt state folds the whole durable journal"
        );
        self.generation += 1;
        self.generation_tx.send_replace(self.generation);
        for effects in self.effects.split_off(&(durable + 1)).into_values() {
            for effect in effects {
                if let Effect::Reply(f) = effect {
                    f(Some(&cause));
                }
            }
        }
        debug_assert!(self.batch.is_empty(), "rollbacks happen between rounds");
        self.batch.clear();
        self.state = state;
        self.index = crate::record::index_of(durable) + 1;
        self.sealed_last = durable;
        self.queue.clear();
        self.queued.clear();
        self.touched.clear();
        self.timers.clear();
        self.timer_of.clear();
        self.step_everything();
        self.link_epoch += 1;
        self.reconnect = true;
        match &mut self.full {
            Some(full) => full.still_full(cause),
            None => self.full = Some(Full::start(cause)),
        }
        Ok(())
    }

    /// Asks the journal whether space is back; ends the episode when it is.
    async fn probe(&mut self) -> Result<(), String> {
        let journal = self.journal.clone();
        let probed = tokio::task::spawn_blocking(move || journal.probe_space(PROBE_BYTES))
            .await
            .map_err(|e| format!("looking for space for the journal: {e}"))?;
        let Some(full) = &mut self.full else {
            return Ok(());
        };
        match probed {
            Ok(()) => {
                full.ended();
                self.full = None;
            }
            Err(JournalError::NoSpace { dir, reason }) => {
                full.still_full(NoSpace { dir, cause: reason })
            }
            Err(e) => {
                tracing::warn!("cannot tell whether the journal has space again: {e}");
                full.still_full(full.cause.clone());
            }
        }
        Ok(())
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
            if self.full.as_ref().is_some_and(Full::probe_due) {
                self.probe().await?;
            }
            if self.reconnect && self.full.is_none() {
                self.reconnect = false;
                self.links.reconnect_all();
            }
            // While the journal is full, timers wait and the next look for space is the wake-up.
            let wake = match (&self.full, self.next_timer()) {
                (Some(full), _) => full.retry_at,
                (None, Some(at)) => {
                    let now = (self.clock)();
                    let ms = u64::try_from(at.0.saturating_sub(now.0)).unwrap_or(0);
                    tokio::time::Instant::now() + std::time::Duration::from_millis(ms)
                }
                (None, None) => tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
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
                        let why = self.journal.failure().unwrap_or_else(|| {
                            "its writer thread ended".to_owned()
                        });
                        return Err(format!("the journal stopped: {why}"));
                    }
                    let id = *durable.borrow_and_update();
                    self.run_effects(id);
                }
                _ = tokio::time::sleep_until(wake) => {
                    if self.full.is_none() {
                        self.fire_timers();
                    }
                }
                _ = expiry.tick() => self.expire(),
                Some(written) = self.snapshot_rx.recv() => self.snapshots.push_back(written),
                failed = self.failed_rx.recv() => match failed {
                    Some(AppendFailed::Unwritten { generation, cause }) => {
                        if generation == self.generation {
                            self.roll_back(cause).await?;
                        }
                    }
                    Some(AppendFailed::Fatal(why)) => return Err(why),
                    None => return Err("the journal failed".into()),
                },
            }
            if self.full.is_none() {
                self.flush();
            } else {
                // Nothing is written; what the durable state asks of agents still goes out.
                self.act();
            }
        }
    }
}
