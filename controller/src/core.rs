//! The controller's core: the tokio task that drives the [`Machine`](crate::machine).
//!
//! The machine decides (see [`crate::machine`]); this driver does the IO: it feeds the
//! machine inputs (API commands, deployments, agent events), the clock (timers, retention)
//! and durability (the journal's durable id: with one controller, an entry is committed once
//! it is durable), and carries out its actions: it appends each proposed batch to the journal
//! as one unit (group commit), chained to the one before (`append_batch_after`) without
//! waiting for it; it answers API requests through their reply channels (by token); it sends
//! to agent links; it writes snapshots and releases segments in the background. This node is
//! the leader of term 1 from the start.
//!
//! A batch that cannot be written because the journal's file system is full (`NoSpace`; the
//! batches chained behind it fail with it) is a lost proposal: the machine answers what
//! waited for it with [`NoSpace`] (HTTP 507) and asks for its state to be rebuilt from the
//! journal (newest snapshot + replay), which this driver does before taking any other input;
//! the episode of a full file system is then run by [`crate::full`] (writes paused, space
//! probe, links reconnect once writes work). Any other journal failure stops the controller,
//! with the journal's reason.

pub use crate::full::NoSpace;
pub use crate::machine::{CommandReply, DeployReply, LinkMsg, NotActive, Refused, Resume};

use crate::full::{Full, PROBE_BYTES};
use crate::machine::{Action, Machine, Position, Reply, Settings, Token};
use crate::record::{Record, Stored, index_of};
use crate::state::State;
use ordo_journal::{Journal, JournalError};
use ordo_model::ids::AgentId;
use ordo_model::inventory::Inventory;
use ordo_model::order::{AgentCommand, Command, OrderLimits};
use ordo_model::time::TimeMs;
use ordo_model::wire::{AgentEvent, AgentMeta};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot, watch};

/// The term this controller leads while it runs alone.
const SINGLE_TERM: u64 = 1;

/// Events after which the core asks the allocator to return its free memory to the system
/// (see [`Core::return_free_memory`]).
const TRIM_AFTER_EVENTS: u64 = 10_000;

/// How often the core looks whether it made [`TRIM_AFTER_EVENTS`] events since it last
/// returned free memory.
const TRIM_CHECK_MS: u64 = 1000;

/// A read of the state and the durable event id, run between batches.
pub type Reader = Box<dyn FnOnce(&State, u64) + Send>;

/// What the core is asked to do.
pub enum Input {
    Command {
        command: Command,
        reply: oneshot::Sender<Result<CommandReply, Refused>>,
    },
    /// A command on the daily plan.
    Plan {
        command: crate::plan::PlanCommand,
        reply: oneshot::Sender<Result<CommandReply, Refused>>,
    },
    Deploy {
        inventory: Box<Inventory>,
        reply: oneshot::Sender<Result<DeployReply, Refused>>,
    },
    /// Files checked against what is deployed, with removals; maybe a dry run.
    DeployFiles {
        request: Box<crate::machine::DeployRequest>,
        reply: oneshot::Sender<Result<DeployReply, Refused>>,
    },
    /// Journal a join token's hash (`ttl_ms` from now).
    JoinToken {
        hash: String,
        agent: Option<AgentId>,
        ttl_ms: u64,
        reply: oneshot::Sender<Result<CommandReply, Refused>>,
    },
    /// Deploy a registered agent or subagent (its `/meta` checked already).
    Register {
        registration: Box<crate::machine::Registration>,
        reply: oneshot::Sender<Result<DeployReply, Refused>>,
    },
    /// Deploy an agent without one of its subagents.
    RemoveSubagent {
        agent: AgentId,
        subagent: AgentId,
        kill: bool,
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
    /// A change of the pair's membership (the active controller of a pair only).
    Membership {
        change: ordo_replica::MembershipChange,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// Hand the pair's leadership to node `to` (a planned switchover).
    Transfer {
        to: u64,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What a link reports and the API shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    pub connected: bool,
    pub url: String,
    /// The URL the link is coupled with while connected: `url`, or the backup director's
    /// when that one is the active director of a director pair.
    pub coupled_url: Option<String>,
    pub connected_since_ms: Option<i64>,
    pub last_error: Option<String>,
    pub meta: Option<AgentMeta>,
    /// A director's last `SubagentHealth`.
    pub subagent_health: Vec<ordo_model::wire::SubagentHealth>,
}

/// Starts and stops agent links as agents are deployed.
pub trait Links: Send {
    /// Makes sure a link runs for `agent`, restarting it when the object changed (its URL, its
    /// subagents: the new object is sent to the agent after coupling), or its backup
    /// director's URL (`backup`: the link couples with whichever director is active).
    fn ensure(
        &mut self,
        agent: &ordo_model::inventory::Agent,
        settings: &ordo_model::inventory::ClusterSettings,
        backup: Option<&str>,
    );
    /// [`Links::ensure`] for an agent whose subagents have priority expressions (subagent →
    /// expression; empty: none), sent to it with its object; a change restarts the link too.
    fn ensure_with_priorities(
        &mut self,
        agent: &ordo_model::inventory::Agent,
        settings: &ordo_model::inventory::ClusterSettings,
        backup: Option<&str>,
        _priorities: &ordo_model::priority::Priorities,
    ) {
        self.ensure(agent, settings, backup);
    }
    fn send(&self, agent: &AgentId, msg: LinkMsg);
    /// Ends every session; each link connects again and resumes where the core says.
    fn reconnect_all(&mut self);
    /// Stops every link (this controller is no longer the active one).
    fn stop_all(&mut self);
    /// Stops the link of an agent that is no longer deployed.
    fn forget(&mut self, _agent: &AgentId) {}
}

type Clock = Box<dyn Fn() -> TimeMs + Send>;

/// A reply channel waiting for the machine's answer.
enum Waiting {
    Command(oneshot::Sender<Result<CommandReply, Refused>>),
    Deploy(oneshot::Sender<Result<DeployReply, Refused>>),
    Coupled(oneshot::Sender<Result<Vec<AgentCommand>, String>>),
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
    machine: Machine,
    clock: Clock,
    links: L,
    waiting: HashMap<Token, Waiting>,
    next_token: u64,
    /// When the machine's next timer is due.
    wake_at: Option<TimeMs>,
    /// Set when the machine asked for its state to be rebuilt.
    rebuild: bool,
    snapshot_tx: mpsc::UnboundedSender<(u64, TimeMs)>,
    snapshot_rx: mpsc::UnboundedReceiver<(u64, TimeMs)>,
    /// Bumped at every rollback; failures of batches from older generations are stale.
    generation: u64,
    generation_tx: watch::Sender<u64>,
    failed_tx: mpsc::UnboundedSender<AppendFailed>,
    failed_rx: mpsc::UnboundedReceiver<AppendFailed>,
    /// Set while the journal's file system is full.
    full: Option<Full>,
    /// Largest event streamed, as JSON ([`crate::streamed`]), for the log of oversized ones.
    event_bytes_max: usize,
    retention_ms: u64,
    events_retention_ms: u64,
    /// Events proposed since free memory was last returned to the system.
    since_trim: u64,
    /// Set when this core is a node of the replicated pair.
    replicated: Option<Replicated>,
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
        let mut core = Core::follower(
            journal,
            state,
            links,
            clock,
            snapshot_events,
            retention_ms,
            events_retention_ms,
        );
        core.machine.became_leader(SINGLE_TERM);
        core
    }

    /// Makes a follower a node of the replicated pair: it follows until raft makes it the
    /// active one.
    pub fn with_replication(mut self, replicated: Replicated) -> Core<L> {
        assert!(
            !self.machine.is_leader(),
            "a node of the pair starts as a follower"
        );
        self.replicated = Some(replicated);
        self
    }

    /// A core that does not act until it is made the leader.
    pub fn follower(
        journal: Journal,
        state: State,
        links: L,
        clock: Clock,
        snapshot_events: u64,
        retention_ms: u64,
        events_retention_ms: u64,
    ) -> Core<L> {
        debug_assert_eq!(
            journal.last_id(),
            state.last_event_id,
            "the state folds the journal"
        );
        let (failed_tx, failed_rx) = mpsc::unbounded_channel();
        let (snapshot_tx, snapshot_rx) = mpsc::unbounded_channel();
        let settings = Settings {
            snapshot_events,
            retention_ms,
            events_retention_ms,
            ..Settings::default()
        };
        let event_bytes_max = settings.event_bytes_max;
        Core {
            journal,
            machine: Machine::new(state, settings),
            clock,
            links,
            waiting: HashMap::new(),
            next_token: 0,
            wake_at: None,
            rebuild: false,
            snapshot_tx,
            snapshot_rx,
            generation: 0,
            generation_tx: watch::Sender::new(0),
            failed_tx,
            failed_rx,
            full: None,
            event_bytes_max,
            retention_ms,
            events_retention_ms,
            since_trim: 0,
            replicated: None,
        }
    }

    /// Checks what orders bring in (commands and `addOrder` steps) with `limits` instead of
    /// the defaults.
    pub fn with_order_limits(mut self, limits: OrderLimits) -> Core<L> {
        self.machine.settings_mut().order_limits = limits;
        self
    }

    /// Plans with `settings` instead of the defaults ([`crate::plan`]).
    pub fn with_plan(mut self, settings: crate::plan::PlanSettings) -> Core<L> {
        self.machine.settings_mut().plan = settings;
        self
    }

    /// A watch on the rollback generation: a read of the state is of durable events once the
    /// journal is durable up to its id and the generation has not changed since before the
    /// read.
    pub fn generation_watch(&self) -> watch::Receiver<u64> {
        self.generation_tx.subscribe()
    }

    pub fn state(&self) -> &State {
        self.machine.state()
    }

    /// Sets the largest event the core journals from a command or deployment: as JSON for
    /// the readers of the stream, and as a journal record (the journal's `record_bytes_max`).
    pub fn with_event_limits(mut self, event_bytes_max: usize, record_bytes_max: usize) -> Self {
        let settings = self.machine.settings_mut();
        settings.event_bytes_max = event_bytes_max;
        settings.record_bytes_max = record_bytes_max;
        self.event_bytes_max = event_bytes_max;
        self
    }

    fn token(&mut self, waiting: Waiting) -> Token {
        self.next_token += 1;
        let token = Token(self.next_token);
        self.waiting.insert(token, waiting);
        token
    }

    fn handle(&mut self, input: Input) {
        let now = (self.clock)();
        match input {
            Input::Command { command, reply } => {
                let token = self.token(Waiting::Command(reply));
                self.machine.command(token, command, now);
            }
            Input::Plan { command, reply } => {
                let token = self.token(Waiting::Command(reply));
                self.machine.plan_command(token, command, now);
            }
            Input::Deploy { inventory, reply } => {
                let token = self.token(Waiting::Deploy(reply));
                self.machine.deploy(token, &inventory, now);
            }
            Input::DeployFiles { request, reply } => {
                let token = self.token(Waiting::Deploy(reply));
                self.machine.deploy_files(token, &request, now);
            }
            Input::JoinToken {
                hash,
                agent,
                ttl_ms,
                reply,
            } => {
                let token = self.token(Waiting::Command(reply));
                self.machine
                    .issue_join_token(token, hash, agent, ttl_ms, now);
            }
            Input::Register {
                registration,
                reply,
            } => {
                let token = self.token(Waiting::Deploy(reply));
                self.machine.register(token, &registration, now);
            }
            Input::RemoveSubagent {
                agent,
                subagent,
                kill,
                reply,
            } => {
                let token = self.token(Waiting::Deploy(reply));
                self.machine
                    .remove_subagent(token, &agent, &subagent, kill, now);
            }
            Input::Cursor { agent, reply } => {
                let _ = reply.send(self.machine.cursor(&agent));
            }
            Input::Coupled {
                agent,
                run_id,
                epoch,
                reply,
            } => {
                let token = self.token(Waiting::Coupled(reply));
                self.machine.coupled(token, &agent, run_id, epoch, now);
            }
            Input::AgentEvents {
                agent,
                run_id,
                epoch,
                events,
            } => self
                .machine
                .agent_events(&agent, run_id, epoch, events, now),
            Input::Read(f) => f(self.machine.state(), self.journal.last_id()),
            Input::Membership { change, reply } => match &mut self.replicated {
                Some(r) => r.membership.push((change, reply)),
                None => drop(reply.send(Err("this controller runs alone, not in a pair".into()))),
            },
            Input::Transfer { to, reply } => {
                let result = match &self.replicated {
                    None => Err("this controller runs alone, not in a pair".to_owned()),
                    Some(_) if !self.machine.is_leader() => {
                        Err("this controller is not the active one".to_owned())
                    }
                    Some(r) if !r.api_urls.contains_key(&to) || to == r.node_id => Err(format!(
                        "node {to} is not another node of this cluster's configuration"
                    )),
                    Some(_) => {
                        self.transfer(to);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
        self.perform();
    }

    /// Carries out what the machine asked for.
    fn perform(&mut self) {
        for action in self.machine.take_actions() {
            match action {
                Action::Append {
                    position,
                    after,
                    events,
                } => {
                    self.since_trim += events.len() as u64;
                    if self.replicated.is_some() {
                        // Journaled once committed (see `replicated`).
                        self.propose(position, &events);
                    } else {
                        self.append(position, after, events)
                    }
                }
                Action::Reply { token, reply } => self.reply(token, reply),
                Action::Link { agent, msg } => self.links.send(&agent, msg),
                Action::EnsureLink(agent, settings, backup, priorities) => self
                    .links
                    .ensure_with_priorities(&agent, &settings, backup.as_deref(), &priorities),
                Action::ForgetLink(agent) => self.links.forget(&agent),
                Action::ReconnectLinks => self.links.reconnect_all(),
                Action::StopLinks => self.links.stop_all(),
                Action::Wake(at) => self.wake_at = at,
                Action::Rebuild { .. } => self.rebuild = true,
                Action::WriteSnapshot {
                    event_id,
                    at,
                    bytes,
                } => {
                    if self.replicated.is_some() {
                        self.keep_for_raft(event_id, &bytes);
                    }
                    self.write_snapshot(event_id, at, bytes)
                }
                Action::ReleaseSegments { until } => {
                    let journal = self.journal.clone();
                    tokio::task::spawn_blocking(move || match journal.release(until) {
                        Ok(n) if n > 0 => {
                            tracing::info!("released {n} journal segments up to event {until}")
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!("cannot release journal segments up to {until}: {e}")
                        }
                    });
                }
            }
        }
    }

    fn reply(&mut self, token: Token, reply: Reply) {
        let Some(waiting) = self.waiting.remove(&token) else {
            debug_assert!(false, "a reply to {token:?}, which waits for none");
            return;
        };
        // A caller that went away does not need the answer.
        match (waiting, reply) {
            (Waiting::Command(tx), Reply::Command(r)) => drop(tx.send(r)),
            (Waiting::Deploy(tx), Reply::Deploy(r)) => drop(tx.send(r)),
            (Waiting::Coupled(tx), Reply::Coupled(r)) => drop(tx.send(r)),
            _ => debug_assert!(false, "a reply of another kind than its request"),
        }
    }

    /// Appends a batch to the journal, chained after the batch before it.
    fn append(&mut self, position: Position, after: u64, events: Vec<(u64, Stored)>) {
        debug_assert!(events.iter().all(|(id, _)| index_of(*id) == position.index));
        let event_bytes_max = self.event_bytes_max;
        let records: Vec<(Option<u64>, Vec<u8>)> = events
            .into_iter()
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
        let appending = self.journal.append_batch_after(after, records);
        // The durable id watch drives the commits; a failure comes back through `failed`.
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

    /// Writes a snapshot in the background; segments it covers may be released once it is
    /// written.
    fn write_snapshot(&mut self, id: u64, at: TimeMs, bytes: Vec<u8>) {
        let journal = self.journal.clone();
        let written = self.snapshot_tx.clone();
        let mut durable = self.journal.durable_id_watch();
        tokio::spawn(async move {
            // A pair journals committed entries behind the machine: the snapshot waits for them.
            if durable.wait_for(|d| *d >= id).await.is_err() {
                return;
            }
            let wrote = tokio::task::spawn_blocking(move || journal.write_snapshot(id, &bytes));
            match wrote.await {
                Ok(Ok(())) => {
                    let _ = written.send((id, at));
                }
                Ok(Err(e @ JournalError::NoSpace { .. })) => {
                    tracing::warn!("no snapshot at event {id}, it is tried again later: {e}");
                }
                Ok(Err(e)) => tracing::error!("cannot write a snapshot at event {id}: {e}"),
                Err(e) => tracing::error!("cannot write a snapshot at event {id}: {e}"),
            }
        });
    }

    /// The journal is durable up to `durable`: with one controller, that is committed.
    fn durable(&mut self, durable: u64) {
        if self.replicated.is_some() {
            // Committed is raft's to say; the journal only holds committed entries.
            return;
        }
        let position = Position {
            term: self.machine.term(),
            index: index_of(durable),
        };
        self.machine.committed(position, (self.clock)());
        self.perform();
    }

    /// Rebuilds the machine's state from the journal, as it asked.
    async fn rebuild(&mut self) -> Result<(), String> {
        while self.rebuild {
            self.rebuild = false;
            if let Some(r) = &self.replicated {
                // Every applied entry is in the journal once it is durable up to the last.
                let written = r.written;
                self.journal
                    .durable_id_watch()
                    .wait_for(|d| *d >= written)
                    .await
                    .map_err(|_| "the journal stopped".to_owned())?;
            }
            let journal = self.journal.clone();
            let state = tokio::task::spawn_blocking(move || crate::recover_state(&journal))
                .await
                .map_err(|e| format!("rebuilding the state from the journal: {e}"))?
                .map_err(|e| {
                    format!("rebuilding the state from the journal after a failed write: {e}")
                })?;
            // Batches appended before this point are all settled by the journal: the one that
            // failed and every one chained behind it fail, so nothing changes the durable end.
            assert_eq!(
                state.last_event_id,
                self.journal.last_id(),
                "the rebuilt state folds the whole durable journal"
            );
            self.generation += 1;
            self.generation_tx.send_replace(self.generation);
            self.machine.rebuilt(state);
            self.perform();
        }
        Ok(())
    }

    /// A batch was not written: the machine drops the lost proposals and the state goes back
    /// to the fold of the durable journal.
    async fn lost(&mut self, cause: NoSpace) -> Result<(), String> {
        self.machine.proposal_lost(cause.clone());
        self.perform();
        self.rebuild().await?;
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
                full.refused += self.machine.resume_writes();
                full.ended();
                self.full = None;
                self.perform();
            }
            Err(JournalError::NoSpace { dir, reason }) => {
                let cause = NoSpace { dir, cause: reason };
                self.machine.still_paused(cause.clone());
                full.still_full(cause);
            }
            Err(e) => {
                tracing::warn!("cannot tell whether the journal has space again: {e}");
                full.still_full(full.cause.clone());
            }
        }
        Ok(())
    }

    /// After [`TRIM_AFTER_EVENTS`] events, asks the allocator (on a blocking thread) to return
    /// the memory it holds free to the system; true when it asked.
    ///
    /// glibc's malloc keeps what a thread freed in that thread's arena and returns only the top
    /// of a heap, so a burst of work (large requests, an agent's backlog, and the events,
    /// records and replies made of them on every thread) leaves the process well above what it
    /// then holds; a restart would not. Counting events keeps this off quiet controllers and
    /// bounds its cost under load: one walk of the free lists per [`TRIM_AFTER_EVENTS`]
    /// events at most (figures in `bench/README.md`).
    fn return_free_memory(&mut self) -> bool {
        if self.since_trim < TRIM_AFTER_EVENTS {
            return false;
        }
        self.since_trim = 0;
        tokio::task::spawn_blocking(|| {
            let started = std::time::Instant::now();
            ordo_net::process::release_free_memory();
            tracing::debug!(
                micros = started.elapsed().as_micros() as u64,
                "free memory returned to the system"
            );
        });
        true
    }

    /// One round: settle, propose the batch, plan the effects.
    fn flush(&mut self) {
        self.machine.flush((self.clock)());
        self.perform();
        if self.replicated.is_some() {
            self.propose_membership();
        }
    }

    /// Runs until `inputs` closes or the journal fails.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>) -> Result<(), String> {
        let mut durable: watch::Receiver<u64> = self.journal.durable_id_watch();
        let expiry_ms = (self.retention_ms.min(self.events_retention_ms) / 4).clamp(100, 60_000);
        let mut expiry = tokio::time::interval(std::time::Duration::from_millis(expiry_ms));
        let mut trim = tokio::time::interval(std::time::Duration::from_millis(TRIM_CHECK_MS));
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.perform();
        self.flush();
        loop {
            // Entries durable already (or effects that wait for none) are committed now.
            let id = *durable.borrow_and_update();
            self.durable(id);
            if self.full.as_ref().is_some_and(Full::probe_due) {
                self.probe().await?;
            }
            // While the journal is full, timers wait and the next look for space is the wake-up.
            let wake = match (&self.full, self.wake_at) {
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
                    self.durable(id);
                }
                _ = tokio::time::sleep_until(wake) => {
                    if self.full.is_none() {
                        self.machine.tick((self.clock)());
                        self.perform();
                    }
                }
                _ = expiry.tick() => {
                    self.machine.expire((self.clock)());
                    self.perform();
                }
                _ = trim.tick() => {
                    self.return_free_memory();
                }
                Some((id, at)) = self.snapshot_rx.recv() => {
                    self.machine.snapshot_written(id, at);
                    if self.replicated.is_some() {
                        self.snapshot_written_to_journal(id);
                    }
                }
                Some(report) = recv_raft(&mut self.replicated) => {
                    self.on_raft(report).await?;
                }
                failed = self.failed_rx.recv() => match failed {
                    Some(AppendFailed::Unwritten { cause, .. }) if self.replicated.is_some() => {
                        // Committed events that cannot be journaled: this node stops, and
                        // another one of the pair carries on.
                        return Err(format!("the journal cannot hold committed events: {cause}"));
                    }
                    Some(AppendFailed::Unwritten { generation, cause }) => {
                        if generation == self.generation {
                            self.lost(cause).await?;
                        }
                    }
                    Some(AppendFailed::Fatal(why)) => return Err(why),
                    None => return Err("the journal failed".into()),
                },
            }
            self.flush();
        }
    }
}

/// The next report of the raft thread; never ready for a core that runs alone.
async fn recv_raft(replicated: &mut Option<Replicated>) -> Option<crate::cluster::raft::FromRaft> {
    match replicated {
        Some(r) => match r.from_raft.recv().await {
            Some(report) => Some(report),
            None => Some(crate::cluster::raft::FromRaft::Failed(
                "the raft thread ended".into(),
            )),
        },
        None => std::future::pending().await,
    }
}

mod replicated;
pub use replicated::{NodeView, Replicated};

#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod tests;
