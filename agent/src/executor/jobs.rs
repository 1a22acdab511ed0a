//! Jobs of the executor: the start queue, spawning, output, outcomes and kills.
//!
//! A job's environment is built by [`super::env`]. Every job runs in `<data_dir>/jobs`, and
//! the runner puts its `$ORDO_RETURN_VALUES` file in `<data_dir>/return-values` (both made
//! once, at start), so a start costs no directory. `$ORDO_WORK_DIR` names
//! `<data_dir>/work/<order id>`, which a job that wants a directory of its order's creates;
//! it is kept while the order is on this agent and removed when the order leaves the agent,
//! on a reset, and at recovery for every order that is gone.
//!
//! The life of a job (see the module doc of the executor for why): `spawn_job` journals
//! `ProcessingStarted` and queues the job as an effect; once that is durable `dispatch` hands
//! it to the workers' queue; a worker spawns it (`job_started` journals its `Process` record)
//! and reports its output and its end (`job_ended` journals `Processed`). Until a worker takes
//! it, `withdraw_job` can take it back (`ProcessingWithdrawn`).

use super::{Effect, Executor, FINAL_EVENTS_BYTES};
use crate::cluster::director::{Director, Note};
use crate::cluster::protocol;
use crate::config::Config;
use crate::now_ms;
use crate::record::Record;
use crate::runner::{
    Executable, JobSpec, KillHandle, KillMode, RETURN_VALUES_BYTES_MAX_DEFAULT, RunError, RunEvent,
    Runner, Started, Terminated,
};
use crate::survivors::marker;
use ordo_model::ids::{AgentId, JobName, OrderId, WorkflowName};
use ordo_model::inventory::{self, JobSelection, ReturnCodes};
use ordo_model::order::{
    Disruption, Exit, KeyedEvent, Kill, OrderEvent, OrderState, Outcome, Room, Start, StartJob,
    job_result,
};
use ordo_model::time::TimeMs;
use ordo_model::value::{Value, Vars};
use ordo_model::wire::{AgentEventBody, Stream};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::{Notify, mpsc};

/// A job the executor started (or is starting).
pub(super) struct Job {
    pub order: OrderId,
    pub attempt: u32,
    pub job: (WorkflowName, JobName),
    pub return_codes: ReturnCodes,
    pub kill: Option<KillHandle>,
    /// In the workers' queue or taken by a worker (its start is durable).
    pub dispatched: bool,
    /// The process exists (its `Process` record is journaled).
    pub spawned: bool,
    /// Its order is gone (reset) or changed: it is killed and its messages are ignored.
    pub orphan: bool,
}

/// What a job task tells the executor.
pub(super) enum JobMsg {
    Started {
        key: u64,
        started: Started,
        kill: KillHandle,
    },
    Output {
        key: u64,
        event: RunEvent,
    },
    Ended {
        key: u64,
        result: Result<Terminated, RunError>,
    },
}

/// Where every job runs (its current directory), created once.
pub(super) fn jobs_dir(config: &Config) -> PathBuf {
    config.data_dir.join("jobs")
}

/// Where the runner puts the files of `$ORDO_RETURN_VALUES`, created once.
pub(super) fn return_values_dir(config: &Config) -> PathBuf {
    config.data_dir.join("return-values")
}

/// The parent of the orders' work directories.
pub(super) fn work_root(config: &Config) -> PathBuf {
    config.data_dir.join("work")
}

/// The work directory of an order, `$ORDO_WORK_DIR`: a job that wants one creates it; it
/// is kept while the order is on this agent.
pub(super) fn work_dir(config: &Config, order: &OrderId) -> PathBuf {
    work_root(config).join(order.as_str())
}

impl Executor {
    /// Jobs handed to the runner: the running ones, plus up to `processes_max` more that wait
    /// for the runner's next free process slot, so that a slot is filled as soon as a job ends.
    fn dispatch_max(&self) -> usize {
        self.config.limits.processes_max.saturating_mul(2)
    }

    /// Starts the jobs of the orders the model's [`JobQueue`](ordo_model::order::JobQueue)
    /// lets go, while the workers' places and the outbox allow.
    pub(super) fn try_start(&mut self) {
        // A start must be durable before its spawn: nothing starts while the journal's file
        // system is full (the orders stay ready and start when the episode ends).
        if self.full.is_some() {
            return;
        }
        let limits = &self.config.limits;
        let room = Room {
            starts_max: self.dispatch_max().saturating_sub(self.jobs.len()),
            outbox_bytes: self.state.outbox.bytes,
            outbox_bytes_max: limits.outbox_bytes_max,
            headroom_per_job_bytes: limits.log_bytes_max.saturating_add(FINAL_EVENTS_BYTES),
        };
        let starts = self.job_queue.starts(&self.state.world, room);
        if starts.outbox_full && !self.outbox_blocked {
            tracing::warn!(
                outbox_bytes = self.state.outbox.bytes,
                outbox_bytes_max = self.config.limits.outbox_bytes_max,
                waiting = self.job_queue.waiting(),
                "the outbox is full: no new job starts until the controller releases events"
            );
        } else if self.outbox_blocked && !starts.outbox_full && !starts.starts.is_empty() {
            tracing::info!(
                outbox_bytes = self.state.outbox.bytes,
                "the outbox has room again: jobs start"
            );
        }
        if starts.outbox_full || !starts.starts.is_empty() {
            self.outbox_blocked = starts.outbox_full;
        }
        for start in starts.starts {
            match start {
                Start::Job(start) => self.spawn_job(*start),
                Start::Unrenderable { order, error } => {
                    tracing::warn!(%order, "the job cannot start: {error}");
                    let now = TimeMs(now_ms());
                    for event in [
                        OrderEvent::ProcessingStarted { at: now, pgid: 0 },
                        OrderEvent::Processed {
                            outcome: Outcome::disrupted(error.clone()),
                        },
                    ] {
                        self.order_event(KeyedEvent::order(&order, event));
                    }
                    self.job_queue.note(&self.state.world, [&order]);
                }
            }
        }
    }

    /// Journals the job's start (the order becomes `Processing`) and queues the job for the
    /// workers once that is durable.
    fn spawn_job(&mut self, start: StartJob) {
        let limits = &self.config.limits;
        let env = super::env::job_env(
            &start,
            marker(self.state.run_id, &start.order, start.attempt),
            &work_dir(&self.config, &start.order),
        );
        let executable = match &start.executable {
            inventory::Executable::Script(script) => Executable::Script(script.clone()),
            inventory::Executable::Command(argv) => Executable::Argv(argv.clone()),
        };
        let spec = JobSpec {
            executable,
            env,
            work_dir: jobs_dir(&self.config),
            return_values_dir: Some(return_values_dir(&self.config)),
            timeout_ms: start.timeout.map(|d| d.0),
            grace_timeout_ms: start.grace_timeout.0,
            log_chunk_bytes_max: limits.log_chunk_bytes_max,
            log_bytes_max: limits.log_bytes_max,
            return_values_bytes_max: RETURN_VALUES_BYTES_MAX_DEFAULT,
            die_with_agent: false,
        };
        // A job for a subagent: the lease horizon that covers it is journaled with its start.
        if let Some(taken_until) = self.director.renewal(now_ms()) {
            self.record(Record::Leased {
                taken_until: TimeMs(taken_until),
            });
        }
        let started = OrderEvent::ProcessingStarted {
            at: TimeMs(now_ms()),
            pgid: 0,
        };
        if !self.order_event(KeyedEvent::order(&start.order, started)) {
            // Not journaled (logged): the job does not start, and the queue counts again.
            self.job_queue.note(&self.state.world, [&start.order]);
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        let (order, attempt, subagent) = (start.order.clone(), start.attempt, start.subagent);
        let selection = start.subagent_selection;
        let job_key = (start.workflow.clone(), start.job.clone());
        self.by_order.insert(start.order.clone(), key);
        self.jobs.insert(
            key,
            Job {
                order: start.order,
                attempt: start.attempt,
                job: job_key,
                return_codes: start.return_codes,
                kill: None,
                dispatched: false,
                spawned: false,
                orphan: false,
            },
        );
        self.effect(Effect::Spawn(Box::new(Prepared {
            key,
            order,
            attempt,
            spec,
            subagent,
            selection,
        })));
    }

    /// Hands a job whose start is durable to the workers, unless it was withdrawn or its
    /// order is gone (reset) meanwhile.
    pub(super) fn dispatch(&mut self, prepared: Prepared) {
        let Some(job) = self.jobs.get_mut(&prepared.key) else {
            return;
        };
        if job.orphan {
            self.jobs.remove(&prepared.key);
            return;
        }
        job.dispatched = true;
        self.start_queue.push(prepared);
    }

    /// Takes back the order's job if no worker has taken it yet (a cancel or suspend mark
    /// came, or the agent stops) and journals `ProcessingWithdrawn`; `false` when the job is
    /// (being) spawned or there is none.
    pub(super) fn withdraw_job(&mut self, order: &OrderId, why: &str) -> bool {
        let Some(&key) = self.by_order.get(order) else {
            return false;
        };
        let Some(job) = self.jobs.get(&key) else {
            return false;
        };
        // Not yet dispatched: its `Effect::Spawn` finds no job and does nothing.
        if job.spawned || (job.dispatched && !self.start_queue.remove(key)) {
            return false;
        }
        let Some(job) = self.jobs.remove(&key) else {
            return false;
        };
        self.release_job_slot(&job.order, key);
        let world = &self.state.world;
        let processing = world.order(&job.order).is_some_and(|o| {
            o.holder.is_held_by(world.side())
                && matches!(o.state, OrderState::Processing { .. })
                && o.attempt == job.attempt
        });
        debug_assert!(
            processing,
            "a job waits for a worker, and its order {} is not processing",
            job.order
        );
        if processing {
            tracing::info!(order = %job.order, "the job's start is withdrawn before its spawn: {why}");
            self.order_event(KeyedEvent::order(
                &job.order,
                OrderEvent::ProcessingWithdrawn,
            ));
        }
        true
    }

    /// At shutdown: every job no worker has taken is withdrawn, so that it starts after the
    /// restart instead of being reported lost. Call before the workers are stopped.
    pub(super) fn withdraw_queued_jobs(&mut self) {
        for key in self.start_queue.clear() {
            if let Some(job) = self.jobs.get_mut(&key) {
                job.dispatched = false;
            }
        }
        let orders: Vec<OrderId> = self
            .jobs
            .values()
            .filter(|j| !j.dispatched && !j.spawned && !j.orphan)
            .map(|j| j.order.clone())
            .collect();
        for order in orders {
            self.withdraw_job(&order, "the agent stops");
        }
    }

    pub(super) fn kill_job(&mut self, order: &OrderId, kill: Kill) {
        let Some(job) = self.by_order.get(order).and_then(|key| self.jobs.get(key)) else {
            return;
        };
        if let Some(handle) = &job.kill {
            let mode = match kill {
                Kill::Term => KillMode::Term,
                Kill::Kill => KillMode::Kill,
            };
            if handle.kill(mode) {
                tracing::info!(%order, ?mode, "killing the job as the order's mark asks");
            }
        }
    }

    pub(super) fn on_job(&mut self, message: JobMsg) {
        match message {
            JobMsg::Started { key, started, kill } => self.job_started(key, started, kill),
            JobMsg::Output { key, event } => {
                let Some(job) = self.jobs.get(&key).filter(|j| !j.orphan) else {
                    return;
                };
                let order_id = job.order.clone();
                let body = match event {
                    RunEvent::Stdout(chunk) => AgentEventBody::Output {
                        order_id,
                        stream: Stream::Stdout,
                        chunk,
                    },
                    RunEvent::Stderr(chunk) => AgentEventBody::Output {
                        order_id,
                        stream: Stream::Stderr,
                        chunk,
                    },
                    RunEvent::LogTruncated { log_bytes_max, .. } => {
                        AgentEventBody::OutputTruncated {
                            order_id,
                            cap_bytes: log_bytes_max,
                        }
                    }
                };
                self.event(body);
            }
            JobMsg::Ended { key, result } => self.job_ended(key, result),
        }
    }

    fn event(&mut self, body: AgentEventBody) {
        self.record(Record::Event {
            ts: TimeMs(now_ms()),
            body,
        });
    }

    fn job_started(&mut self, key: u64, started: Started, kill: KillHandle) {
        let Some(job) = self.jobs.get_mut(&key) else {
            kill.kill(KillMode::Kill);
            return;
        };
        job.kill = Some(kill.clone());
        job.spawned = true;
        let (order, attempt, orphan) = (job.order.clone(), job.attempt, job.orphan);
        if orphan {
            kill.kill(KillMode::Kill);
            return;
        }
        let world = &self.state.world;
        let processing = world.order(&order).is_some_and(|o| {
            o.holder.is_held_by(world.side())
                && matches!(o.state, OrderState::Processing { .. })
                && o.attempt == attempt
        });
        // Nothing moves an order away from a job whose start is journaled but the job's end.
        debug_assert!(
            processing,
            "order {order} is not processing as its job is spawned"
        );
        if !processing {
            tracing::error!(%order, "the order changed while its job was spawned; the job is killed");
            if let Some(job) = self.jobs.get_mut(&key) {
                job.orphan = true;
            }
            if self.jobs.contains_key(&key) {
                self.release_job_slot(&order, key);
            }
            kill.kill(KillMode::Kill);
            return;
        }
        // A job on a subagent has no process group here (pgid 0): nothing for recovery to
        // kill; the subagent kills it when its lease runs out.
        if started.pgid != 0 {
            self.record(Record::Process {
                order_id: order.clone(),
                attempt,
                pgid: started.pgid,
                start_time_ticks: started.start_time_ticks,
            });
        }
        // A kill mark that came while the process did not exist yet is carried out now.
        self.push(order);
    }

    /// Removes the work directory of an order that left, if a job made one (one `stat` when
    /// none did).
    pub(super) fn remove_work_dir(&self, order: &OrderId) {
        let dir = work_dir(&self.config, order);
        if std::fs::symlink_metadata(&dir).is_err() {
            return;
        }
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove the work directory {}: {e}", dir.display());
            }
        });
    }

    /// At recovery: makes the directories every job uses, and removes the work directories of
    /// orders that are no longer on this agent (they left, or were lost with a reset, while
    /// the agent was down or before it could remove them).
    pub(super) fn recover_work_dirs(&mut self) {
        for dir in [jobs_dir(&self.config), return_values_dir(&self.config)] {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::error!(
                    "cannot create {}: jobs will fail to start: {e}",
                    dir.display()
                );
            }
        }
        let root = work_root(&self.config);
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(
                    "cannot list the work directories in {}: {e}",
                    root.display()
                );
                return;
            }
        };
        let mut removed = 0u64;
        for entry in entries.flatten() {
            // Names that are no order id are not the agent's: they are left alone.
            let Some(order) = entry
                .file_name()
                .to_str()
                .and_then(|name| OrderId::new(name).ok())
            else {
                continue;
            };
            if self.state.world.order(&order).is_some() {
                continue;
            }
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    "cannot remove the work directory {}: {e}",
                    entry.path().display()
                ),
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "removed the work directories of orders no longer on this agent"
            );
        }
    }

    /// Forgets the order's claim on a job (its process may still be running, as an orphan).
    fn release_job_slot(&mut self, order: &OrderId, key: u64) {
        self.job_queue.wake();
        if self.by_order.get(order) == Some(&key) {
            self.by_order.remove(order);
        }
    }

    fn job_ended(&mut self, key: u64, result: Result<Terminated, RunError>) {
        let Some(job) = self.jobs.remove(&key) else {
            return;
        };
        if job.orphan {
            return;
        }
        self.release_job_slot(&job.order, key);
        let name = format!("{}/{}", job.job.0, job.job.1);
        let world = &self.state.world;
        let state = world
            .order(&job.order)
            .filter(|o| o.holder.is_held_by(world.side()) && o.attempt == job.attempt)
            .map(|o| o.state.clone());
        let processing = matches!(state, Some(OrderState::Processing { .. }));
        let event = match (job.spawned, result) {
            (_, Err(RunError::ProcessLost { reason })) => {
                tracing::warn!(order = %job.order, "the job's process was lost: {reason}");
                processing.then_some(OrderEvent::Processed {
                    outcome: Outcome::Disrupted(Disruption::ProcessLost),
                })
            }
            (false, result) => {
                let message = match result {
                    Err(e) => format!("job {name} could not start: {e}"),
                    Ok(_) => format!("job {name} ended before it was reported started"),
                };
                tracing::warn!(order = %job.order, "{message}");
                processing.then(|| OrderEvent::Processed {
                    outcome: Outcome::failed(message),
                })
            }
            (true, result) => {
                let outcome = match result {
                    Ok(terminated) => {
                        self.status.jobs.record(&name, terminated.duration_ms);
                        for note in &terminated.notes {
                            self.event(AgentEventBody::Output {
                                order_id: job.order.clone(),
                                stream: Stream::Stderr,
                                chunk: format!("[ordo] {note}\n").into_bytes(),
                            });
                        }
                        outcome_of(&job.return_codes, terminated)
                    }
                    Err(e) => Outcome::failed(format!("job {name}: {e}")),
                };
                processing.then_some(OrderEvent::Processed { outcome })
            }
        };
        if let Some(event) = event {
            self.order_event(KeyedEvent::order(&job.order, event));
        }
        self.push(job.order);
    }
}

/// The outcome of a job that ran.
fn outcome_of(return_codes: &ReturnCodes, t: Terminated) -> Outcome {
    if t.killed {
        return Outcome::Killed;
    }
    if t.timed_out {
        return Outcome::TimedOut;
    }
    let values: Vars = t
        .return_values
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    match (t.exit_code, t.signal) {
        (Some(code), _) => job_result(return_codes, Exit::Code(code), values),
        (None, Some(signal)) => job_result(return_codes, Exit::Signal(signal), values),
        (None, None) => Outcome::failed("the job ended with neither an exit code nor a signal"),
    }
}

/// A job for the job workers.
pub(super) struct Prepared {
    key: u64,
    order: OrderId,
    attempt: u32,
    spec: JobSpec,
    /// The subagent the order is pinned to ([`Director::start`]).
    subagent: Option<AgentId>,
    /// The job's own subagent selection ([`Director::start`]).
    selection: Option<JobSelection>,
}

/// The jobs waiting for a job worker, first come first served.
#[derive(Default)]
pub(super) struct StartQueue {
    items: Mutex<VecDeque<Prepared>>,
    notify: Notify,
}

impl StartQueue {
    fn push(&self, job: Prepared) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
        self.notify.notify_one();
    }

    /// Takes out every job no worker has taken yet; their keys.
    pub(super) fn clear(&self) -> Vec<u64> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.drain(..).map(|p| p.key).collect()
    }

    /// Takes the job out if no worker has taken it yet.
    fn remove(&self, key: u64) -> bool {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        match items.iter().position(|p| p.key == key) {
            Some(i) => items.remove(i).is_some(),
            None => false,
        }
    }

    async fn pop(&self) -> Prepared {
        loop {
            // Made before looking, so that a push after the look is not missed.
            let notified = self.notify.notified();
            {
                let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(job) = items.pop_front() {
                    if !items.is_empty() {
                        self.notify.notify_one();
                    }
                    return job;
                }
            }
            notified.await;
        }
    }
}

/// One of `processes_max` job workers: takes the next job from the queue as soon as its
/// previous job ended, so a process slot is refilled without a round trip through the
/// executor.
pub(super) async fn job_worker(
    runner: Runner,
    director: std::sync::Arc<Director>,
    queue: std::sync::Arc<StartQueue>,
    tx: mpsc::Sender<JobMsg>,
) {
    loop {
        director.wait_object().await;
        if director.is_cluster() {
            director.wait_room().await;
        }
        let job = queue.pop().await;
        let done = if director.is_cluster() {
            run_remote(&director, &runner, job, &tx).await
        } else {
            run_job(&runner, job.key, job.spec, &tx).await
        };
        if !done {
            return;
        }
    }
}

/// Runs one job on a subagent the director picks (or here, when the agent directs no
/// cluster any more) and reports its start, output and end like a local job; a job whose
/// subagent is lost ends with [`RunError::ProcessLost`].
async fn run_remote(
    director: &std::sync::Arc<Director>,
    runner: &Runner,
    job: Prepared,
    tx: &mpsc::Sender<JobMsg>,
) -> bool {
    let Prepared {
        key,
        order,
        attempt,
        spec,
        subagent,
        selection,
    } = job;
    let start = protocol::Start {
        key,
        order_id: order,
        attempt,
        executable: match &spec.executable {
            Executable::Script(s) => protocol::Executable::Script(s.clone()),
            Executable::Argv(a) => protocol::Executable::Argv(a.clone()),
        },
        env: spec.env.clone(),
        timeout_ms: spec.timeout_ms,
        grace_timeout_ms: spec.grace_timeout_ms,
        log_chunk_bytes_max: spec.log_chunk_bytes_max as u64,
        log_bytes_max: spec.log_bytes_max,
        return_values_bytes_max: spec.return_values_bytes_max as u64,
    };
    let mut remote = match director
        .start(start, subagent.as_ref(), selection.as_ref())
        .await
    {
        Ok(Some(remote)) => remote,
        Ok(None) => return run_job(runner, key, spec, tx).await,
        Err(reason) => {
            let subagent = subagent.map(|s| s.to_string()).unwrap_or_default();
            let result = Err(RunError::Remote { subagent, reason });
            return tx.send(JobMsg::Ended { key, result }).await.is_ok();
        }
    };
    let kill = KillHandle::detached();
    let mut sent = None;
    let result = loop {
        tokio::select! {
            note = remote.next() => match note {
                Note::Started { pid } => {
                    let started = Started { pid, pgid: 0, start_time_ticks: 0 };
                    let msg = JobMsg::Started { key, started, kill: kill.clone() };
                    if tx.send(msg).await.is_err() {
                        return false;
                    }
                }
                Note::Output(event) => {
                    if tx.send(JobMsg::Output { key, event }).await.is_err() {
                        return false;
                    }
                }
                Note::Ended(protocol::End::Terminated(t)) => break Ok(t.into()),
                Note::Ended(protocol::End::Error(e)) => {
                    break Err(RunError::Remote { subagent: remote.subagent.to_string(), reason: e });
                }
                Note::Ended(protocol::End::LeaseLost) => {
                    break Err(RunError::ProcessLost {
                        reason: format!("subagent {} lost its lease", remote.subagent),
                    });
                }
                Note::Lost(reason) => break Err(RunError::ProcessLost { reason }),
            },
            mode = kill.requested(sent) => {
                remote.kill(mode);
                sent = Some(mode);
            }
        }
    };
    kill.finish();
    drop(remote);
    tx.send(JobMsg::Ended { key, result }).await.is_ok()
}

/// Spawns one job and reports its start, output and end, in that order; `false` when the
/// executor is gone.
async fn run_job(runner: &Runner, key: u64, spec: JobSpec, tx: &mpsc::Sender<JobMsg>) -> bool {
    let (output_tx, mut output) = mpsc::channel(64);
    let job = match runner.start(spec, output_tx).await {
        Ok(job) => job,
        Err(e) => {
            return tx
                .send(JobMsg::Ended {
                    key,
                    result: Err(e),
                })
                .await
                .is_ok();
        }
    };
    let started = *job.started();
    if tx
        .send(JobMsg::Started {
            key,
            started,
            kill: job.kill_handle(),
        })
        .await
        .is_err()
    {
        return false;
    }
    let wait = job.wait();
    tokio::pin!(wait);
    let result = loop {
        tokio::select! {
            biased;
            Some(event) = output.recv() => {
                if tx.send(JobMsg::Output { key, event }).await.is_err() {
                    return false;
                }
            }
            result = &mut wait => break result,
        }
    };
    while let Some(event) = output.recv().await {
        if tx.send(JobMsg::Output { key, event }).await.is_err() {
            return false;
        }
    }
    tx.send(JobMsg::Ended { key, result }).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminated() -> Terminated {
        Terminated {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            killed: false,
            kill_escalated: false,
            return_values: vec![("answer".into(), "42".into())],
            notes: Vec::new(),
            duration_ms: 1,
            log_bytes: 0,
            log_bytes_forwarded: 0,
            log_truncated: false,
        }
    }

    #[test]
    fn outcomes_follow_the_termination() {
        let codes = ReturnCodes::default();
        match outcome_of(&codes, terminated()) {
            Outcome::Succeeded { values } => {
                assert_eq!(values.get("answer"), Some(&Value::String("42".into())));
                assert!(values.contains_key("returnCode"));
            }
            other => panic!("{other:?}"),
        }
        // A failed job keeps the values it returned.
        let mut t = terminated();
        t.exit_code = Some(3);
        match outcome_of(&codes, t) {
            Outcome::Completed {
                succeeded: false,
                return_code: Some(3),
                values,
                ..
            } => assert_eq!(values.get("answer"), Some(&Value::String("42".into()))),
            other => panic!("{other:?}"),
        }
        let mut t = terminated();
        t.exit_code = Some(3);
        t.return_values.clear();
        assert!(matches!(
            outcome_of(&codes, t),
            Outcome::Failed {
                return_code: Some(3),
                ..
            }
        ));
        let mut t = terminated();
        t.timed_out = true;
        assert_eq!(outcome_of(&codes, t), Outcome::TimedOut);
        let mut t = terminated();
        t.killed = true;
        t.timed_out = true;
        assert_eq!(outcome_of(&codes, t), Outcome::Killed);
        let mut t = terminated();
        t.exit_code = None;
        t.signal = Some(9);
        t.return_values.clear();
        assert!(matches!(outcome_of(&codes, t), Outcome::Failed { .. }));
    }
}
