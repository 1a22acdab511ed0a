//! The executor: the one task that owns the agent's state, and the agent's driver of the
//! model.
//!
//! Its inputs are the controller's requests (couple, commands, release, reset) from the
//! session, the messages of job tasks (started, output, ended), timers and shutdown. For each
//! input it makes records (events from [`agent_command`], the model's `step` and the job's
//! outcome), applies them to the state at once, and collects them into one journal batch per
//! round (appended without waiting). What must not happen before those records are durable is
//! queued as an effect with the id it waits for ([`Pending`]), and run once the journal's
//! durable id reaches it: the answer to a command (`Ack`) or a `Couple`, handing a job to the
//! job workers, killing a job, writing a snapshot, releasing segments.
//!
//! **One rule book.** The executor decides nothing about orders itself. A round settles with
//! the model's [`Settler`] (at most [`SETTLE_EVENTS_PER_ROUND`] events), then carries out the
//! model's [`actions_for`] the orders the round touched — timers (schedule, sleep, retry delay,
//! cycle pause), kills, withdrawals — and the starts the model's [`JobQueue`] lets go within
//! the room the executor reports (places among the workers, outbox). An event the executor
//! made that its state refuses is the model's [`refused`] case.
//!
//! # Starting a job: the start is durable before the spawn
//!
//! Orders ready at a job of this agent wait in the model's [`JobQueue`] (first ready, first
//! started) for their job's `parallelism` and a place among the jobs handed to the
//! `processes_max` job workers (as many again wait in the workers' queue, so that a worker
//! whose job ended starts the next one at once). When an
//! order gets its place, the executor journals `ProcessingStarted` (pgid 0: not known yet) in
//! the round's batch — the order is `Processing` from then on, so nothing steps it away from
//! its job — and hands the job to the workers only once that record is durable. A worker
//! spawns it, and the executor journals a `Process` record with the pgid and start time (what
//! a restart needs to kill a surviving group). So:
//!
//! - Every job the agent may have spawned has a durable start. After a crash, every order
//!   still `Processing` gets `Processed(Disrupted(ProcessLost))` from the model's
//!   [`lost_processes`] once surviving groups are killed ([`crate::survivors`]); a job whose
//!   process ended before the crash is lost too, and never runs again unless it is
//!   `restartable`.
//! - A job whose start is journaled but which no worker has taken yet is **withdrawn** when
//!   its order gets a cancel or suspend mark: it leaves the workers' queue (or never enters
//!   it) and `ProcessingWithdrawn` makes the order ready again, without an outcome and at the
//!   same attempt, so the mark is honoured at once. A job a worker has taken is spawned and
//!   reported as usual (a kill mark then kills it).
//! - A job that was never spawned because the agent died first is reported lost like one
//!   that ran: that the spawn did not happen cannot be known.
//! - The durability costs no fsync of its own: the start goes into the batch of the events
//!   that brought the order to its job when it can start at once, else into the next round's
//!   batch (group commit), and the workers' queue hides the wait from the process slots.
//! - The `Process` record (and a `Released` record) needs no write of its own: after a crash
//!   the `ORDO_RUN` marker finds a surviving group, and released events are sent again. It
//!   rides with the next record that must be written, or goes by itself after
//!   [`LAZY_RECORD_WAIT_MS`].
//!
//! No new job starts while the outbox (unreleased event bytes plus a headroom of
//! `log_bytes_max` + [`FINAL_EVENTS_BYTES`] per running job) has reached `outbox_bytes_max`;
//! running jobs go on and every event is kept.
//!
//! When an append fails for lack of space, the agent does not stop: see [`full`]. The records
//! not durable yet are held, in order ([`unwritten`]), running jobs go on, nothing starts, and
//! the held records are appended again once a space probe succeeds.
//!
//! Shutdown withdraws the jobs no worker has taken (they start after the restart) and kills
//! the running jobs' process groups without journaling an outcome: after the restart they are
//! reported lost like after a crash (`Disrupted(ProcessLost)`). Recovery also removes the
//! work directories of orders that are no longer on this agent.

mod env;
mod full;
mod jobs;
mod unwritten;

use crate::config::Config;
use crate::open::{Recovered, random_run_id};
use crate::record::{RECORD_FORMAT, Record};
use crate::state::AgentState;
use crate::status::Status;
use crate::survivors::Found;
use crate::{AgentError, now_ms};
use full::{Full, REWRITE_BATCH_BYTES_MAX, Trying};
use jobs::{Job, JobMsg, Prepared, StartQueue, job_worker};
use ordo_journal::{Journal, JournalError};
use ordo_model::driver::{Pending, Timers};
use ordo_model::ids::OrderId;
use ordo_model::order::{
    Action, AgentCommand, Driver, JobQueue, KeyedEvent, Kill, OrderEvent, OrderLimits, OrderState,
    Settler, World, actions_for, agent_command, lost_processes, refused,
};
use ordo_model::time::TimeMs;
use ordo_model::wire::{AgentEventBody, Couple, FromAgent, PROTOCOL_VERSION};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use unwritten::{Kind, Unwritten};

/// Most events one round makes by stepping orders; the rest waits for the next round, so
/// inputs are served between rounds.
pub const SETTLE_EVENTS_PER_ROUND: usize = 4096;

/// Records appended but not yet durable above which no more orders are stepped until the
/// journal catches up (a bound on memory in the journal's queue).
pub const INFLIGHT_RECORDS_MAX: u64 = 65_536;

/// Outbox headroom per running job for its final events, beyond its `log_bytes_max`.
pub const FINAL_EVENTS_BYTES: u64 = 16 * 1024;

/// Orders up to which debug builds recount the job queue after every round.
const BOOKKEEPING_CHECK_ORDERS_MAX: usize = 4096;

/// How long a `Process` or `Released` record waits for another record to share its write.
const LAZY_RECORD_WAIT_MS: u64 = 50;

/// Inputs served per round at most, per channel.
const DRAIN_PER_ROUND: usize = 256;

/// The longest sleep of the executor without a timer due (it looks again after it).
const IDLE_SLEEP_MS: i64 = 60_000;

/// How long shutdown waits for the last records to be durable.
const SHUTDOWN_DURABLE_WAIT_MS: u64 = 5_000;

/// A request from a controller session.
pub enum Input {
    Couple {
        couple: Couple,
        /// The cluster id of the controller's certificate.
        peer_cluster: String,
        reply: oneshot::Sender<Result<Coupling, String>>,
    },
    Command {
        seq: u64,
        term: u64,
        command: AgentCommand,
        reply: oneshot::Sender<FromAgent>,
    },
    Reset {
        seq: u64,
        term: u64,
        reply: oneshot::Sender<FromAgent>,
    },
    Release {
        until: u64,
    },
    SessionEnded {
        generation: u64,
    },
    /// The director's lease horizon moves on (journaled before it is relied on).
    Leased {
        taken_until: TimeMs,
    },
    /// A director's subagent joined or left (`Record::SubagentJoined`/`SubagentLeft`), or a
    /// director of a pair got its object (`Record::AgentObject`).
    Membership(Record),
}

/// An accepted `Couple`.
#[derive(Debug, Clone)]
pub struct Coupling {
    /// The session's number; a newer accepted `Couple` ends sessions with a smaller one.
    pub generation: u64,
    pub run_id: u128,
    /// Id of the record that began the run.
    pub run_start: u64,
    /// Stream the events with ids greater than this.
    pub stream_after: u64,
    pub first_event_id: u64,
    pub last_event_id: u64,
    pub attached_orders: Vec<OrderId>,
}

/// Work that waits until the journal is durable up to an id.
enum Effect {
    Reply(oneshot::Sender<FromAgent>, Box<FromAgent>),
    Coupled(oneshot::Sender<Result<Coupling, String>>, Coupling),
    /// Hand a job to the job workers: its `ProcessingStarted` is durable.
    Spawn(Box<Prepared>),
    Kill(OrderId, Kill),
    Snapshot(u64, Vec<u8>),
    Release(u64),
}

/// Journal housekeeping, done in order by one task.
enum Maintenance {
    Snapshot(u64, Vec<u8>),
    Release(u64),
}

/// What the executor needs from the rest of the agent.
pub struct Channels {
    pub inputs: mpsc::Receiver<Input>,
    pub generation: watch::Sender<u64>,
    pub status: Arc<Status>,
    /// Runs the jobs on subagents while the agent directs a cluster.
    pub director: Arc<crate::cluster::director::Director>,
    /// Where the records go.
    pub sink: Sink,
}

/// Where the executor's batches of records go: the one seam between a lone agent and a node
/// of a director pair. Either way the executor waits for the journal's durable id, and the
/// journal holds only what may be acted on.
#[derive(Clone)]
pub enum Sink {
    /// Appended to the agent's journal: durable means written.
    Journal,
    /// Proposed to the director pair's replicated log, which writes a batch to the journal
    /// once it is committed: durable means committed (replicated). A proposal that is not
    /// committed ends this director (see [`crate::pair`]).
    Replicated(crate::pair::Proposer),
}

pub struct Executor {
    config: Arc<Config>,
    journal: Journal,
    durable: watch::Receiver<u64>,
    state: AgentState,
    next_id: u64,
    /// Records made but not durable yet, in id order; normally only those in flight.
    unwritten: Unwritten,
    /// The journal's file system is full: records are held, nothing starts.
    full: Option<Full>,
    /// Bumped by every append failure that is handled: a failure of an append handed on in
    /// an older epoch is one that the held records are written again for anyway.
    epoch: u64,
    record_bytes_max: usize,
    records_since_snapshot: u64,

    /// Orders to step, and the orders a round touched (the model's fixpoint loop).
    settler: Settler,
    /// Which ready order starts its job next (the model's rule).
    job_queue: JobQueue,
    /// Effects waiting for the journal to be durable up to their record's id.
    effects: Pending<Effect>,

    runner: crate::runner::Runner,
    jobs: HashMap<u64, Job>,
    by_order: HashMap<OrderId, u64>,
    next_key: u64,
    job_tasks: JoinSet<()>,
    start_queue: Arc<StartQueue>,
    job_rx: mpsc::Receiver<JobMsg>,
    outbox_blocked: bool,

    timers: Timers<OrderId>,
    /// Records that need no write of their own (`Process`, `Released`) wait for one until
    /// this instant: then they are appended by themselves.
    lazy_until: Option<tokio::time::Instant>,
    /// A record that must be appended this round was made.
    urgent: bool,

    inputs: mpsc::Receiver<Input>,
    failures_tx: mpsc::UnboundedSender<(u64, JournalError)>,
    failures: mpsc::UnboundedReceiver<(u64, JournalError)>,
    probes_tx: mpsc::UnboundedSender<Result<(), JournalError>>,
    probes: mpsc::UnboundedReceiver<Result<(), JournalError>>,
    maintenance: mpsc::UnboundedSender<Maintenance>,
    maintenance_task: Option<tokio::task::JoinHandle<()>>,
    generation_tx: watch::Sender<u64>,
    generation: u64,
    status: Arc<Status>,
    director: Arc<crate::cluster::director::Director>,
    sink: Sink,
}

impl Executor {
    pub fn new(config: Arc<Config>, recovered: Recovered, channels: Channels) -> Executor {
        let Recovered {
            journal,
            state,
            snapshot_id,
            ..
        } = recovered;
        let (job_tx, job_rx) = mpsc::channel(1024);
        let (failures_tx, failures) = mpsc::unbounded_channel();
        let (probes_tx, probes) = mpsc::unbounded_channel();
        let (maintenance, maintenance_rx) = mpsc::unbounded_channel();
        let maintenance_task = tokio::spawn(maintain(journal.clone(), maintenance_rx, snapshot_id));
        let _ = maintenance.send(Maintenance::Release(state.released));
        let runner = crate::runner::Runner::new(config.limits.processes_max);
        let start_queue = Arc::new(StartQueue::default());
        let mut job_tasks = JoinSet::new();
        for _ in 0..config.limits.processes_max {
            job_tasks.spawn(job_worker(
                runner.clone(),
                channels.director.clone(),
                start_queue.clone(),
                job_tx.clone(),
            ));
        }
        Executor {
            durable: journal.durable_id_watch(),
            next_id: journal.last_id() + 1,
            unwritten: Unwritten::new(journal.last_id(), state.outbox.last_event_id),
            full: None,
            epoch: 0,
            record_bytes_max: crate::open::record_bytes_max(config.limits.frame_bytes_max) as usize,
            journal,
            state,
            records_since_snapshot: 0,
            settler: Settler::new(),
            job_queue: JobQueue::new(),
            effects: Pending::default(),
            runner,
            jobs: HashMap::new(),
            by_order: HashMap::new(),
            next_key: 1,
            job_tasks,
            start_queue,
            job_rx,
            outbox_blocked: false,
            timers: Timers::default(),
            lazy_until: None,
            urgent: false,
            inputs: channels.inputs,
            failures_tx,
            failures,
            probes_tx,
            probes,
            maintenance,
            maintenance_task: Some(maintenance_task),
            generation_tx: channels.generation,
            generation: 0,
            status: channels.status,
            director: channels.director,
            sink: channels.sink,
            config,
        }
    }

    /// Runs until `stop` turns true, or the journal fails.
    pub async fn run(
        mut self,
        found: Vec<Found>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), AgentError> {
        self.recover(found);
        let result = self.serve(&mut stop).await;
        self.shut_down().await;
        result
    }

    async fn serve(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), AgentError> {
        loop {
            self.round();
            if *stop.borrow() {
                return Ok(());
            }
            let busy = !self.settler.is_empty()
                && self.inflight() < INFLIGHT_RECORDS_MAX
                && !self.over_bound();
            let sleep = self.timer_sleep();
            let probe_at = self.full.as_ref().and_then(Full::probe_at);
            let lazy_until = self.lazy_until;
            // Unbiased: job output, controller requests and timers are all served.
            tokio::select! {
                _ = stop.changed() => {}
                Some((epoch, error)) = self.failures.recv() => {
                    self.on_append_failure(epoch, error)?;
                }
                Some(probed) = self.probes.recv() => self.on_probe(probed)?,
                _ = tokio::time::sleep_until(probe_at.unwrap_or_else(tokio::time::Instant::now)),
                    if probe_at.is_some() => self.probe(),
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        return Err(AgentError::JournalStopped(
                            "the journal writer stopped".into(),
                        ));
                    }
                }
                Some(message) = self.job_rx.recv() => {
                    self.on_job(message);
                    for _ in 0..DRAIN_PER_ROUND {
                        match self.job_rx.try_recv() {
                            Ok(message) => self.on_job(message),
                            Err(_) => break,
                        }
                    }
                }
                Some(input) = self.inputs.recv() => {
                    self.on_input(input);
                    for _ in 0..DRAIN_PER_ROUND {
                        match self.inputs.try_recv() {
                            Ok(input) => self.on_input(input),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep(sleep) => self.fire_timers(),
                _ = tokio::time::sleep_until(lazy_until.unwrap_or_else(tokio::time::Instant::now)),
                    if lazy_until.is_some() => {
                    // Once: while the file system is full, `flush` holds the records anyway.
                    self.lazy_until = None;
                    self.urgent = true;
                }
                _ = std::future::ready(()), if busy => {}
            }
        }
    }

    /// After a restart: surviving processes were killed; report the processes of every
    /// order whose start is journaled without an outcome as lost, remove the work
    /// directories of orders that are gone, then step every order this agent holds.
    fn recover(&mut self, found: Vec<Found>) {
        let now = TimeMs(now_ms());
        for f in found {
            let ready = self.state.world.order(&f.order).is_some_and(|o| {
                o.holder.is_held_by(self.state.world.side())
                    && o.state == OrderState::Ready
                    && o.attempt == f.attempt
            });
            if ready {
                // A process of an order whose start is not journaled: only a journal of
                // format 1 (which journaled a start after its spawn) can leave one.
                self.order_event(KeyedEvent::order(
                    &f.order,
                    OrderEvent::ProcessingStarted {
                        at: now,
                        pgid: f.pgid,
                    },
                ));
            }
        }
        for event in lost_processes(&self.state.world) {
            if let KeyedEvent::Order { id, .. } = &event {
                tracing::warn!(order = %id, "the job's process was lost with the agent");
            }
            self.order_event(event);
        }
        self.recover_work_dirs();
        self.settler.push_held(&self.state.world);
        self.job_queue = JobQueue::of(&self.state.world);
    }

    /// One round: step, journal, look at touched orders, run due effects, start jobs.
    fn round(&mut self) {
        self.catch_up();
        // Timers are looked at every round, so that a busy executor still runs them on time.
        self.fire_timers();
        let now = now_ms();
        self.settle(TimeMs(now));
        self.act();
        // Before the flush: starts go into the batch of the events that led to them.
        self.try_start();
        self.check_bookkeeping();
        self.flush();
        self.note_bound();
        self.snapshot_if_due();
        self.run_due_effects();
        self.publish_status();
    }

    /// Logs once per episode that the held records reached their bound.
    fn note_bound(&mut self) {
        if !self.over_bound() {
            return;
        }
        let held = self.unwritten.bytes();
        if let Some(full) = self.full.as_mut()
            && !full.over_bound
        {
            full.over_bound = true;
            tracing::warn!(
                held_bytes = held,
                pending_events_bytes_max = self.config.limits.pending_events_bytes_max,
                "journal: the events held while the file system is full reached \
                 pending_events_bytes_max: orders are not moved on until space returns; \
                 running jobs go on and their events are kept"
            );
        }
    }

    fn inflight(&self) -> u64 {
        (self.next_id - 1).saturating_sub(*self.durable.borrow())
    }

    fn push(&mut self, id: OrderId) {
        self.settler.push(id);
    }

    /// Steps queued orders and journals their events, up to the round's limit (none while
    /// too many records are in flight, or held while the file system is full).
    fn settle(&mut self, now: TimeMs) {
        if self.inflight() >= INFLIGHT_RECORDS_MAX || self.over_bound() {
            return;
        }
        let mut settler = std::mem::take(&mut self.settler);
        settler.settle(self, now, &OrderLimits::default(), SETTLE_EVENTS_PER_ROUND);
        debug_assert!(
            self.settler.is_empty(),
            "nothing queues orders while settling"
        );
        self.settler = settler;
    }

    /// Journals an order event, applies it and queues the orders it concerns; whether it
    /// was journaled (see [`Executor::record`]).
    fn order_event(&mut self, event: KeyedEvent) -> bool {
        self.settler.note(&self.state.world, &event);
        self.journal_order_event(event)
    }

    fn journal_order_event(&mut self, event: KeyedEvent) -> bool {
        let record = Record::Event {
            ts: TimeMs(now_ms()),
            body: AgentEventBody::Order(event),
        };
        self.record(record).is_some()
    }

    /// In debug builds: the job queue agrees with the orders (skipped for very many orders,
    /// where the recount would dominate).
    fn check_bookkeeping(&self) {
        if cfg!(debug_assertions) && self.state.world.orders.len() <= BOOKKEEPING_CHECK_ORDERS_MAX {
            self.job_queue.check(&self.state.world);
        }
    }

    /// Encodes, applies and queues a record for the round's journal batch; its id, or
    /// `None` (logged) when it does not fit the state or the size limit — then nothing
    /// changed and nothing is journaled.
    fn record(&mut self, record: Record) -> Option<u64> {
        let bytes = match record.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!("cannot encode a {} record: {e}", record.name());
                return None;
            }
        };
        if bytes.len() > self.record_bytes_max {
            tracing::error!(
                bytes = bytes.len(),
                max = self.record_bytes_max,
                "a {} record is larger than the journal's record limit; it is dropped",
                record.name()
            );
            return None;
        }
        let id = self.next_id;
        if let Err(e) = self.state.apply(id, &record, bytes.len()) {
            // The one policy for what this side made and its state refuses (a bug): debug
            // builds stop, release builds journal nothing, so that state and journal agree.
            let message = match (&record, &e) {
                (
                    Record::Event {
                        body: AgentEventBody::Order(event),
                        ..
                    },
                    crate::state::StateError::Apply { source, .. },
                ) => refused(event, source),
                _ => {
                    let message = format!(
                        "a {} record this agent made does not apply to its state and is not journaled: {e}",
                        record.name()
                    );
                    debug_assert!(false, "{message}");
                    message
                }
            };
            tracing::error!("{message}");
            return None;
        }
        match &record {
            Record::Process { .. } | Record::Released { .. } => {
                if self.lazy_until.is_none() {
                    self.lazy_until = Some(
                        tokio::time::Instant::now() + Duration::from_millis(LAZY_RECORD_WAIT_MS),
                    );
                }
            }
            _ => self.urgent = true,
        }
        self.next_id += 1;
        self.records_since_snapshot += 1;
        let kind = match &record {
            Record::Created { .. } => Kind::Created,
            Record::Event { .. } => Kind::Event,
            _ => Kind::Other,
        };
        self.unwritten.push(id, bytes, kind);
        Some(id)
    }

    /// Appends the round's records as one batch (not while the file system is full: they
    /// are held until space returns).
    ///
    /// A round that made only records that need no write of their own (`Process`,
    /// `Released`: after a crash, markers find the processes and the controller's events are
    /// sent again) appends nothing: they ride with the next write, or go by themselves after
    /// [`LAZY_RECORD_WAIT_MS`].
    fn flush(&mut self) {
        if self.full.is_some() || !self.urgent {
            return;
        }
        self.urgent = false;
        self.lazy_until = None;
        while let Some((after, batch)) = self.unwritten.next_batch(u64::MAX) {
            self.append(after, batch);
        }
    }

    /// Appends a batch chained to the one before (ids are consecutive): behind one that
    /// failed, nothing is written. A failure is reported with the epoch it was sent in.
    fn append(&self, after: u64, batch: unwritten::Batch) {
        if let Sink::Replicated(proposer) = &self.sink {
            proposer.propose(after, batch);
            return;
        }
        let appending = self.journal.append_batch_after(after, batch);
        let failures = self.failures_tx.clone();
        let epoch = self.epoch;
        tokio::spawn(async move {
            if let Err(e) = appending.await {
                let _ = failures.send((epoch, e));
            }
        });
    }

    /// Takes note of what is durable now; a rewrite that is durable ends the episode.
    fn catch_up(&mut self) {
        let durable = *self.durable.borrow();
        self.unwritten.durable(durable);
        if let Some(full) = &self.full
            && let Trying::Writing { until } = full.trying
            && durable >= until
        {
            self.end_full();
        }
    }

    /// Whether the held records have reached `pending_events_bytes_max`: then orders are
    /// not stepped and releases are not recorded until space returns (job messages are
    /// still taken, so that running jobs end and keep their outcome).
    fn over_bound(&self) -> bool {
        self.full.is_some() && self.unwritten.bytes() >= self.config.limits.pending_events_bytes_max
    }

    /// An append failed: lack of space starts (or goes on with) an episode; any other
    /// failure stops the agent.
    fn on_append_failure(&mut self, epoch: u64, error: JournalError) -> Result<(), AgentError> {
        let cause = match &error {
            JournalError::NoSpace { dir, reason } => {
                Some(format!("no space in {}: {reason}", dir.display()))
            }
            // Queued behind an append that failed: that one's failure says why.
            JournalError::Discontinuous { .. } => None,
            _ => return Err(AgentError::JournalStopped(error.to_string())),
        };
        let held = self.unwritten.bytes();
        let bound = self.config.limits.pending_events_bytes_max;
        if epoch != self.epoch {
            // Handed on before the failure that was handled: written again anyway.
            if let (Some(full), Some(cause)) = (self.full.as_mut(), cause) {
                full.learn(cause, held, bound);
            }
            return Ok(());
        }
        self.epoch += 1;
        self.catch_up();
        // Nothing after the durable id is in the journal now.
        self.unwritten.unsend();
        match self.full.as_mut() {
            Some(full) => {
                if let Some(cause) = cause {
                    full.learn(cause, held, bound);
                }
                full.still_full();
            }
            None => {
                self.full = Some(Full::start(cause, held, bound));
            }
        }
        self.publish_status();
        Ok(())
    }

    /// Asks the journal whether the held records would fit now.
    fn probe(&mut self) {
        let Some(full) = self.full.as_mut() else {
            return;
        };
        full.trying = Trying::Probing;
        let bytes = Full::probe_bytes(self.unwritten.bytes());
        let journal = self.journal.clone();
        let probes = self.probes_tx.clone();
        tokio::task::spawn_blocking(move || {
            let _ = probes.send(journal.probe_space(bytes));
        });
    }

    fn on_probe(&mut self, probed: Result<(), JournalError>) -> Result<(), AgentError> {
        let Some(full) = self.full.as_mut() else {
            return Ok(());
        };
        match probed {
            Ok(()) => self.rewrite(),
            Err(JournalError::NoSpace { dir, reason }) => {
                let (held, bound) = (
                    self.unwritten.bytes(),
                    self.config.limits.pending_events_bytes_max,
                );
                full.learn(
                    format!("no space in {}: {reason}", dir.display()),
                    held,
                    bound,
                );
                full.still_full();
            }
            Err(e @ JournalError::Failed(_)) => {
                return Err(AgentError::JournalStopped(e.to_string()));
            }
            Err(e) => {
                tracing::warn!("journal: the space probe failed: {e}");
                full.still_full();
            }
        }
        Ok(())
    }

    /// Appends every held record again, in order, in bounded batches; the episode ends
    /// when the last of them is durable.
    fn rewrite(&mut self) {
        self.catch_up();
        if self.full.is_none() {
            return;
        }
        let mut until = None;
        let held = (self.unwritten.len() as u64, self.unwritten.bytes());
        while let Some((after, batch)) = self.unwritten.next_batch(REWRITE_BATCH_BYTES_MAX) {
            until = batch.last().and_then(|(id, _)| *id);
            self.append(after, batch);
        }
        match (until, self.full.as_mut()) {
            (Some(until), Some(full)) => {
                full.trying = Trying::Writing { until };
                full.rewritten = held;
            }
            _ => self.end_full(),
        }
    }

    /// Space is back and the held records are durable: jobs start, the rest is appended,
    /// and a controller whose commands were refused is asked to couple again.
    fn end_full(&mut self) {
        let Some(full) = self.full.take() else {
            return;
        };
        full.ended();
        self.job_queue.wake();
        self.urgent = true;
        if full.refused > 0 {
            self.generation += 1;
            self.generation_tx.send_replace(self.generation);
            self.status.set_connected_since(None);
        }
        self.flush();
        self.publish_status();
    }

    /// Queues an effect that runs once everything journaled so far is durable.
    /// An effect other than housekeeping makes the round's records go out now, even if they
    /// could wait ([`LAZY_RECORD_WAIT_MS`]).
    fn effect(&mut self, effect: Effect) {
        if !matches!(effect, Effect::Snapshot(..) | Effect::Release(_)) {
            self.urgent = true;
        }
        self.effects.push(self.next_id - 1, effect);
    }

    fn run_due_effects(&mut self) {
        let durable = *self.durable.borrow();
        for effect in self.effects.take_due(durable) {
            match effect {
                Effect::Reply(reply, message) => {
                    let _ = reply.send(*message);
                }
                Effect::Coupled(reply, coupling) => {
                    let _ = reply.send(Ok(coupling));
                }
                Effect::Spawn(prepared) => self.dispatch(*prepared),
                Effect::Kill(id, kill) => self.kill_job(&id, kill),
                Effect::Snapshot(id, bytes) => {
                    let _ = self.maintenance.send(Maintenance::Snapshot(id, bytes));
                }
                Effect::Release(until) => {
                    let _ = self.maintenance.send(Maintenance::Release(until));
                }
            }
        }
    }

    fn snapshot_if_due(&mut self) {
        // While the file system is full a snapshot could not be written, and each one kept
        // waiting would hold a copy of the state: the next one is taken once space is back.
        if self.records_since_snapshot < self.config.limits.snapshot_interval_records
            || self.full.is_some()
        {
            return;
        }
        self.records_since_snapshot = 0;
        match self.state.to_snapshot() {
            Ok(bytes) => {
                let id = self.state.last_id;
                self.effect(Effect::Snapshot(id, bytes));
            }
            Err(e) => tracing::error!("cannot encode a snapshot: {e}"),
        }
    }

    fn publish_status(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let running = self.jobs.values().filter(|j| j.spawned).count();
        self.status.running.store(running as u64, Relaxed);
        self.status.waiting.store(
            (self.job_queue.waiting() + self.jobs.len() - running) as u64,
            Relaxed,
        );
        self.status
            .outbox_bytes
            .store(self.state.outbox.bytes, Relaxed);
        let held = self.full.as_ref().map(|full| {
            (
                full.cause().to_owned(),
                self.unwritten.len() as u64,
                self.unwritten.bytes(),
            )
        });
        self.status.set_journal_full(held);
    }

    // ----- orders: timers, kills, starts -----

    /// Carries out the model's actions for the orders this round touched: timers, withdrawals
    /// and kills ([`actions_for`]); notes them in the job queue; removes the work directory of
    /// an order that left.
    fn act(&mut self) {
        let touched = self.settler.take_touched();
        self.job_queue.note(&self.state.world, &touched);
        let mut timed = HashSet::new();
        for action in actions_for(&self.state.world, &touched) {
            match action {
                Action::WakeAt { order, at } => {
                    self.timers.set(order.clone(), at);
                    timed.insert(order);
                }
                Action::Withdraw { order } => {
                    if self.withdraw_job(&order, "a cancel or suspend mark came") {
                        self.job_queue.note(&self.state.world, [&order]);
                    }
                }
                // After a withdrawal of the same order it finds no job: nothing happens.
                Action::Kill { order, kill, .. } => self.effect(Effect::Kill(order, kill)),
                Action::Attach { .. }
                | Action::Detach { .. }
                | Action::Mark { .. }
                | Action::ExpireNotices { .. } => {
                    debug_assert!(false, "the agent was asked to {action:?}");
                }
            }
        }
        for id in touched {
            if !timed.contains(&id) {
                self.timers.clear_one(&id);
            }
            if self.state.world.order(&id).is_none() {
                self.remove_work_dir(&id);
            }
        }
    }

    fn timer_sleep(&self) -> Duration {
        let wait_ms = match self.timers.next() {
            Some(at) => (at.0 - now_ms()).clamp(0, IDLE_SLEEP_MS),
            None => IDLE_SLEEP_MS,
        };
        Duration::from_millis(wait_ms as u64)
    }

    fn fire_timers(&mut self) {
        let now = TimeMs(now_ms());
        while let Some(id) = self.timers.pop_due(now) {
            self.push(id);
        }
    }

    // ----- controller requests -----

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Couple {
                couple,
                peer_cluster,
                reply,
            } => self.couple(couple, peer_cluster, reply),
            Input::Command {
                seq,
                term,
                command,
                reply,
            } => self.command(seq, term, command, reply),
            Input::Reset { seq, term, reply } => self.reset(seq, term, reply),
            Input::Release { until } => self.release(until),
            Input::SessionEnded { generation } => {
                if generation == self.generation {
                    self.status.set_connected_since(None);
                }
            }
            Input::Leased { taken_until } => {
                self.record(Record::Leased { taken_until });
            }
            Input::Membership(record) => {
                debug_assert!(matches!(
                    record,
                    Record::SubagentJoined { .. }
                        | Record::SubagentLeft { .. }
                        | Record::AgentObject { .. }
                ));
                self.record(record);
            }
        }
    }

    fn couple(
        &mut self,
        couple: Couple,
        peer_cluster: String,
        reply: oneshot::Sender<Result<Coupling, String>>,
    ) {
        let mut refusal = self.couple_refusal(&couple, &peer_cluster);
        if refusal.is_none()
            && let Some(full) = self.full.as_mut()
            && (self.state.cluster_id.is_none()
                || couple.term > self.state.term
                || self.unwritten.holds_created())
        {
            // The coupling would need a record, or rest on one that is not durable.
            full.refused += 1;
            refusal = Some(full.refusal("this coupling"));
        }
        if let Some(reason) = refusal {
            tracing::warn!(controller = %couple.controller_id, "Couple refused: {reason}");
            let _ = reply.send(Err(reason));
            return;
        }
        let stream_after = match couple.agent_run_id {
            Some(run) if run == self.state.run_id => couple.after,
            other => {
                if let Some(run) = other {
                    tracing::warn!(
                        controller = %couple.controller_id,
                        "the controller knows agent run {}, and this agent runs {}: every kept event is sent again",
                        crate::status::run_id_hex(run),
                        crate::status::run_id_hex(self.state.run_id)
                    );
                }
                self.state.run_start
            }
        };
        if self.state.cluster_id.is_none() {
            tracing::info!(cluster = %couple.cluster_id, "the agent is dedicated to its first controller cluster");
            self.record(Record::Dedicated {
                cluster_id: couple.cluster_id.clone(),
            });
        }
        if couple.term > self.state.term {
            self.record(Record::Term { term: couple.term });
        }
        self.generation += 1;
        self.generation_tx.send_replace(self.generation);
        self.status.set_connected_since(Some(now_ms()));
        // While the journal cannot write, the answer goes at once and tells what is durable
        // (only durable events are streamed); otherwise it waits until all is durable.
        let last_event_id = match self.full {
            Some(_) => self.unwritten.durable_event(),
            None => self.state.outbox.last_event_id,
        };
        let first_event_id = if last_event_id == 0 {
            0
        } else {
            self.journal
                .first_id()
                .unwrap_or(0)
                .max(self.state.run_start + 1)
        };
        let coupling = Coupling {
            generation: self.generation,
            run_id: self.state.run_id,
            run_start: self.state.run_start,
            stream_after,
            first_event_id,
            last_event_id,
            attached_orders: self.state.world.orders.keys().cloned().collect(),
        };
        tracing::info!(
            controller = %couple.controller_id,
            term = couple.term,
            after = stream_after,
            "controller coupled"
        );
        if self.full.is_some() {
            let _ = reply.send(Ok(coupling));
        } else {
            self.effect(Effect::Coupled(reply, coupling));
        }
    }

    fn couple_refusal(&self, couple: &Couple, peer_cluster: &str) -> Option<String> {
        if couple.protocol_version != PROTOCOL_VERSION {
            return Some(format!(
                "protocol version {} is not spoken here; this agent speaks version {PROTOCOL_VERSION}",
                couple.protocol_version
            ));
        }
        if couple.agent_id != self.state.agent_id {
            return Some(format!(
                "this is agent {}, not {}",
                self.state.agent_id, couple.agent_id
            ));
        }
        if couple.cluster_id != peer_cluster {
            return Some(format!(
                "the controller's certificate is for cluster {peer_cluster}, and its Couple names cluster {}",
                couple.cluster_id
            ));
        }
        if let Some(mine) = &self.state.cluster_id
            && mine != &couple.cluster_id
        {
            return Some(format!(
                "this agent is dedicated to cluster {mine} and refuses cluster {} until it is reset",
                couple.cluster_id
            ));
        }
        if couple.term < self.state.term {
            return Some(format!(
                "term {} is older than term {} seen before",
                couple.term, self.state.term
            ));
        }
        if couple.agent_run_id == Some(self.state.run_id) && couple.after > self.next_id - 1 {
            return Some(format!(
                "the controller has events up to id {}, and this agent's journal ends at id {}",
                couple.after,
                self.next_id - 1
            ));
        }
        None
    }

    /// Accepts the term of a request, or says why it is refused (fencing).
    fn check_term(&mut self, term: u64) -> Result<(), String> {
        if term < self.state.term {
            return Err(format!(
                "term {term} is older than term {} seen before",
                self.state.term
            ));
        }
        if term > self.state.term {
            self.record(Record::Term { term });
        }
        Ok(())
    }

    fn command(
        &mut self,
        seq: u64,
        term: u64,
        command: AgentCommand,
        reply: oneshot::Sender<FromAgent>,
    ) {
        if let Some(full) = self.full.as_mut() {
            full.refused += 1;
            let message = full.refusal("controller commands");
            tracing::debug!(seq, "command refused: {message}");
            let _ = reply.send(FromAgent::Rejected { seq, message });
            return;
        }
        if let Err(message) = self.check_term(term) {
            tracing::warn!(seq, "command refused: {message}");
            let _ = reply.send(FromAgent::Rejected { seq, message });
            return;
        }
        match agent_command(&self.state.world, command.clone()) {
            Err(e) => {
                tracing::warn!(seq, "command rejected: {e}");
                let _ = reply.send(FromAgent::Rejected {
                    seq,
                    message: e.to_string(),
                });
            }
            Ok(events) => {
                self.record(Record::Command { seq, command });
                for event in events {
                    self.order_event(event);
                }
                self.effect(Effect::Reply(reply, Box::new(FromAgent::Ack { seq })));
            }
        }
    }

    fn release(&mut self, until: u64) {
        if self.over_bound() {
            // Not recorded: a later release covers these events too.
            tracing::debug!(until, "release not recorded: too many records are held");
            return;
        }
        let until = until.min(self.state.outbox.last_event_id);
        if until <= self.state.released {
            return;
        }
        if self.record(Record::Released { until }).is_some() {
            self.effect(Effect::Release(until));
            self.job_queue.wake();
        }
    }

    /// Forgets every order and event and the dedication: a new run begins.
    fn reset(&mut self, seq: u64, term: u64, reply: oneshot::Sender<FromAgent>) {
        if let Some(full) = self.full.as_mut() {
            full.refused += 1;
            let message = full.refusal("a reset");
            tracing::warn!(seq, "reset refused: {message}");
            let _ = reply.send(FromAgent::Rejected { seq, message });
            return;
        }
        if let Err(message) = self.check_term(term) {
            let _ = reply.send(FromAgent::Rejected { seq, message });
            return;
        }
        let run_id = match random_run_id() {
            Ok(run_id) => run_id,
            Err(e) => {
                let _ = reply.send(FromAgent::Rejected {
                    seq,
                    message: e.to_string(),
                });
                return;
            }
        };
        for key in self.start_queue.clear() {
            self.jobs.remove(&key);
        }
        for job in self.jobs.values_mut() {
            job.orphan = true;
            if let Some(kill) = &job.kill {
                kill.kill(crate::runner::KillMode::Kill);
            }
        }
        self.by_order.clear();
        self.job_queue.clear();
        self.timers.clear();
        self.settler.clear();
        // Every order is forgotten, and with them their work directories.
        let root = jobs::work_root(&self.config);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::remove_dir_all(&root)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(
                    "cannot remove the work directories in {}: {e}",
                    root.display()
                );
            }
        });
        let created = Record::Created {
            format: RECORD_FORMAT,
            agent_id: self.state.agent_id.clone(),
            run_id,
        };
        if let Some(id) = self.record(created) {
            tracing::warn!(run = %crate::status::run_id_hex(run_id), "the agent was reset: a new run begins");
            self.status.set_run_id(run_id);
            self.status.set_connected_since(None);
            self.effect(Effect::Release(id));
        }
        self.effect(Effect::Reply(reply, Box::new(FromAgent::Ack { seq })));
    }

    async fn shut_down(&mut self) {
        self.withdraw_queued_jobs();
        self.runner.close();
        self.job_tasks.abort_all();
        while self.job_tasks.join_next().await.is_some() {}
        self.round_without_starts();
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(SHUTDOWN_DURABLE_WAIT_MS);
        if self.full.is_some() {
            self.last_rewrite(deadline).await;
        }
        let last = self.next_id - 1;
        let wait = self.durable.wait_for(|id| *id >= last);
        let _ = tokio::time::timeout_at(deadline, wait).await;
        self.catch_up();
        if self.unwritten.len() > 0 {
            tracing::error!(
                records = self.unwritten.len(),
                bytes = self.unwritten.bytes(),
                "the agent stops with records it could not write (journal: {}): after the \
                 restart, a job whose end only they held is reported lost, and a start only \
                 they held did not happen",
                self.full
                    .as_ref()
                    .map_or("not durable in time", |f| f.cause())
            );
        }
        // The housekeeping task holds the journal open; let it finish what it was given.
        self.maintenance = mpsc::unbounded_channel().0;
        if let Some(task) = self.maintenance_task.take() {
            let _ = task.await;
        }
    }

    /// At shutdown during an episode: one more try to write the held records (without a
    /// probe), waiting for a rewrite in flight first; until `deadline`.
    async fn last_rewrite(&mut self, deadline: tokio::time::Instant) {
        let mut tried = false;
        // Bounded: each pass waits for a change, until the deadline.
        for _ in 0..1000 {
            self.catch_up();
            let Some(full) = &self.full else {
                return;
            };
            match full.trying {
                // The one try failed: nothing more before the restart.
                Trying::Wait if tried => return,
                Trying::Wait => {
                    tried = true;
                    self.rewrite();
                    continue;
                }
                Trying::Probing | Trying::Writing { .. } => {}
            }
            let going = tokio::select! {
                changed = self.durable.changed() => changed.is_ok(),
                Some((epoch, error)) = self.failures.recv() => {
                    self.on_append_failure(epoch, error).is_ok()
                }
                Some(_) = self.probes.recv() => {
                    if let Some(full) = self.full.as_mut() {
                        full.trying = Trying::Wait;
                    }
                    true
                }
                _ = tokio::time::sleep_until(deadline) => false,
            };
            if !going {
                return;
            }
        }
    }

    /// Journals what is pending without starting anything (shutdown).
    fn round_without_starts(&mut self) {
        self.urgent = true;
        self.flush();
        self.run_due_effects();
    }
}

/// Writes snapshots and releases segments below min(newest snapshot, released) (design §7).
async fn maintain(journal: Journal, mut rx: mpsc::UnboundedReceiver<Maintenance>, snapshot: u64) {
    let mut snapshot_id = snapshot;
    let mut released = 0;
    let mut done_until = 0;
    while let Some(task) = rx.recv().await {
        match task {
            Maintenance::Snapshot(id, bytes) => {
                let journal = journal.clone();
                let written =
                    tokio::task::spawn_blocking(move || journal.write_snapshot(id, &bytes)).await;
                match written {
                    Ok(Ok(())) => snapshot_id = snapshot_id.max(id),
                    Ok(Err(e)) => tracing::error!("cannot write the snapshot at id {id}: {e}"),
                    Err(e) => tracing::error!("the snapshot writer failed: {e}"),
                }
            }
            Maintenance::Release(until) => released = released.max(until),
        }
        let until = snapshot_id.min(released);
        if until > done_until {
            let journal = journal.clone();
            match tokio::task::spawn_blocking(move || journal.release(until)).await {
                Ok(Ok(segments)) => {
                    done_until = until;
                    if segments > 0 {
                        tracing::info!(until, segments, "released journal segments deleted");
                    }
                }
                Ok(Err(e)) => tracing::error!("cannot delete released journal segments: {e}"),
                Err(e) => tracing::error!("the segment release failed: {e}"),
            }
        }
    }
}

impl Driver for Executor {
    fn world(&self) -> &World {
        &self.state.world
    }

    fn emit(&mut self, event: KeyedEvent) {
        self.journal_order_event(event);
    }
}
