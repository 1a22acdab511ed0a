//! The agent as the director of a cluster: keeps a session with every subagent of its
//! inventory object and runs the jobs the executor hands to its workers there instead of
//! locally.
//!
//! The executor does not change: a job's start is journaled before it is handed to a worker,
//! its output and end are journaled as they come, and the model decides what an outcome means.
//! Only the worker differs (`executor::jobs::run_remote`): it asks [`Director::start`] for a
//! subagent — the agent's `selection` over the live subagents with room under their
//! `processLimit` ([`super::select`]), waiting while none is — sends the start, and relays what
//! the subagent reports.
//!
//! Leases: a subagent holds every job it runs for as long as the director hears from it; one
//! not heard from for the agent's `leaseTimeout` (it died, or it is cut off), or whose session
//! ends, is lost: each of its jobs ends with [`Note::Lost`], which the worker turns into
//! `Disrupted(ProcessLost)` (a `restartable` job starts again, attempt + 1, on a live
//! subagent; any other fails the order). The subagent kills those jobs itself before the lease
//! is up ([`super::protocol`]), so no job runs on two subagents at once.
//!
//! Ring (`selection: ring`): the director holds the token (the one place that knows who is
//! live). It is settled whenever a subagent joins or leaves ([`super::select::ring_settle`]:
//! the token leaves a lost member for the next live one; a member that comes back is in the
//! ring at its listed place again) and passed on by every pick. Joins and departures are
//! journaled (`Record::SubagentJoined`/`SubagentLeft`) through the executor's inputs, for
//! every selection, and [`Director::meta`] shows each member's place and the token holder.
//!
//! Health: [`Director::health`] gives each subagent's last report of its host
//! (`FromSubagent::Report`), the average duration of the jobs it ran to their end (from the
//! start sent to the end received) and since when its session is up.
//!
//! The agent's object comes from the controller after every coupling (`ToAgent::Cluster`, or
//! `ToAgent::ClusterWithPriorities` with its subagents' priority expressions) and is kept in
//! `<data_dir>/cluster` (postcard, [`ClusterFile`]), so that a restarted director runs jobs on
//! its subagents before a controller couples.
//!
//! Priorities: with `selection: priority`, each candidate's priority is computed whenever the
//! candidates are listed — a subagent's priority expression over its live metrics
//! ([`super::priority`]), else its whole number.

use super::priority::{Metrics, Warned};
use super::protocol::{
    Dedicate, End, FromSubagent, PROTOCOL_VERSION, Report, SUBAGENT_WS_PATH, Start, ToSubagent,
    heartbeat_interval_ms,
};
use super::select::{Candidate, for_job, pick, ring_settle};
use crate::config::Config;
use crate::executor::Input;
use crate::record::Record;
use crate::runner::{KillMode, RunEvent};
use ordo_model::ids::AgentId;
use ordo_model::inventory::{Agent, ClusterSettings, JobSelection, Selection, Subagent};
use ordo_model::priority::Priorities;
use ordo_model::time::TimeMs;
use ordo_model::wire::{HostFigures, SubagentHealth, SubagentMeta};
use ordo_net::frame::{self, Received};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The shortest wait before a subagent is connected again after a failure.
const RECONNECT_MIN_MS: u64 = 100;
/// The longest wait before a subagent is connected again after a failure.
const RECONNECT_MAX_MS: u64 = 5_000;
/// The largest file of the agent's object accepted at start.
const CLUSTER_FILE_BYTES_MAX: u64 = 16 << 20;

/// What a subagent reports about one job, for the worker that runs it.
#[derive(Debug)]
pub enum Note {
    Started {
        pid: u32,
    },
    Output(RunEvent),
    Ended(End),
    /// The subagent's lease ran out or its session ended: the job is lost.
    Lost(String),
}

/// A subagent's state as `GET /meta` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubagentStatus {
    pub id: AgentId,
    pub url: String,
    pub live: bool,
    /// Taken out of the agent's object while it ran jobs: `draining` (they end there) or
    /// `killing` (they were told to die); `None` while it is a member.
    pub leaving: Option<&'static str>,
    pub running: u32,
    pub processed: u64,
    pub last_error: Option<String>,
    /// Its place in the ring (0 = first listed) when the selection is `ring`.
    pub ring_position: Option<u32>,
    /// It holds the ring's token.
    pub token: bool,
    /// Over the jobs it ran to their end, from the start sent to the end received, in ms.
    pub average_job_duration_ms: u64,
    /// When its current session began, ms since the epoch (while it is live).
    pub connected_since_ms: Option<i64>,
    /// Its last report of its host.
    pub host: Option<HostFigures>,
}

struct Sub {
    spec: Subagent,
    live: bool,
    processed: u64,
    last_error: Option<String>,
    out: Option<mpsc::UnboundedSender<ToSubagent>>,
    /// The cluster's `leaseTimeout` for its session, in ms: a change goes to the live session
    /// as [`ToSubagent::Lease`] (its jobs keep running).
    lease_ms: watch::Sender<u64>,
    /// The jobs it runs, by the executor's key.
    jobs: HashMap<u64, mpsc::UnboundedSender<Note>>,
    /// When each of its jobs was sent to it.
    sent: HashMap<u64, Instant>,
    /// The time its `processed` jobs took, from the start sent to the end received, in ms.
    busy_ms: u64,
    connected_since_ms: Option<i64>,
    host: Option<HostFigures>,
    task: Option<JoinHandle<()>>,
    /// Taken out of the agent's object while it ran jobs: it gets no new job and goes once
    /// they ended (drained); `killing`: its jobs were told to die and count as lost.
    leaving: bool,
    killing: bool,
    /// The last error of its priority expression that was logged.
    priority_warned: Warned,
}

#[derive(Default)]
struct Inner {
    agent: Option<Agent>,
    settings: ClusterSettings,
    /// The subagents' priority expressions (the others have their whole number).
    priorities: Priorities,
    subs: Vec<Sub>,
    /// Where the round robin goes on next; for `ring`, the token (the member holding it).
    cursor: usize,
    /// The longest `leaseTimeout` this director has run sessions with: a subagent may still
    /// hold jobs by it while a shorter one is on its way, so the journaled horizon covers it.
    lease_high_ms: u64,
}

impl Inner {
    fn selection(&self) -> Option<Selection> {
        self.agent.as_ref().map(|a| a.selection)
    }

    /// Every subagent as the selection sees it now; with `selection: priority`, their
    /// priority expressions are evaluated over their metrics at this moment.
    fn candidates(&mut self) -> Vec<Candidate> {
        let computed = self.selection() == Some(Selection::Priority);
        let cluster_processes = self.subs.iter().map(|s| s.jobs.len() as u32).sum();
        let (settings, priorities) = (&self.settings, &self.priorities);
        self.subs
            .iter_mut()
            .map(|s| {
                let running = s.jobs.len() as u32;
                let process_limit = settings.process_limit(&s.spec.id);
                let priority = match priorities.get(&s.spec.id).filter(|_| computed) {
                    Some(expr) => {
                        let metrics = Metrics {
                            processes: running,
                            cluster_processes,
                            process_limit,
                            processed: s.processed,
                            host: s.host.as_ref(),
                        };
                        s.priority_warned.priority(&s.spec.id, expr, &metrics)
                    }
                    None => f64::from(s.spec.priority),
                };
                Candidate {
                    priority,
                    live: s.live && s.out.is_some() && !s.leaving,
                    running,
                    process_limit,
                }
            })
            .collect()
    }

    /// Ends the sessions of removed subagents whose jobs have all ended. They are listed
    /// after the agent's own, so no other index moves.
    fn retire_drained(&mut self) {
        self.subs.retain_mut(|s| {
            if s.leaving && s.jobs.is_empty() {
                if let Some(task) = s.task.take() {
                    task.abort();
                }
                tracing::info!(subagent = %s.spec.id, "removed subagent drained: its session ends");
                false
            } else {
                true
            }
        });
    }

    /// After a join or a departure: the ring's token leaves a member that is not live.
    fn settle_ring(&mut self) {
        if self.selection() == Some(Selection::Ring) {
            self.cursor = ring_settle(&self.candidates(), self.cursor);
        }
    }
}

/// The director's view of its subagents, shared by the session (which sets the cluster), the
/// executor's workers and the subagent links.
pub struct Director {
    config: Arc<Config>,
    tls: Arc<rustls::ClientConfig>,
    inner: Mutex<Inner>,
    changed: Notify,
    /// Bumped whenever what [`Director::meta`] shows changes.
    version: AtomicU64,
    /// The lease horizon journaled (or being journaled), ms since the epoch.
    horizon_ms: AtomicI64,
    /// Where renewals of the horizon are journaled.
    journal: OnceLock<mpsc::Sender<Input>>,
    /// The raft term of this director when it is the active one of a director pair (0: a
    /// lone director): sent with every dedication, so subagents refuse older directors.
    term: AtomicU64,
}

/// How long a job whose subagents (`live`: one of them is) are all lost may still wait:
/// `Some(None)` while one is live (the clock is reset), `Some(Some(ms))` while none has been
/// for less than a lease of `lease_ms`, `None` once none has been for a whole lease (the job
/// is refused rather than waiting unseen for subagents that may never return).
fn lease_wait(live: bool, lost_since: &mut Option<Instant>, lease_ms: u64) -> Option<Option<u64>> {
    if live {
        *lost_since = None;
        return Some(None);
    }
    let since = *lost_since.get_or_insert_with(Instant::now);
    let waited_ms = since.elapsed().as_millis() as u64;
    (waited_ms < lease_ms).then(|| Some(lease_ms - waited_ms))
}

/// A job running on a subagent; dropping it forgets the job (its process is the subagent's
/// to end: a kill was sent, or the job ended or was lost).
pub struct RemoteJob {
    director: Arc<Director>,
    pub subagent: AgentId,
    key: u64,
    notes: mpsc::UnboundedReceiver<Note>,
}

impl RemoteJob {
    /// The next report; `Lost` when the subagent's session is gone without a word.
    pub async fn next(&mut self) -> Note {
        self.notes
            .recv()
            .await
            .unwrap_or_else(|| Note::Lost("the subagent's session ended".into()))
    }

    /// Asks the subagent to stop the job.
    pub fn kill(&self, mode: KillMode) {
        let inner = self.director.peek();
        if let Some(out) = inner
            .subs
            .iter()
            .find(|s| s.spec.id == self.subagent)
            .and_then(|s| s.out.as_ref())
        {
            let _ = out.send(ToSubagent::Kill {
                key: self.key,
                immediately: mode == KillMode::Kill,
            });
        }
    }
}

impl Drop for RemoteJob {
    fn drop(&mut self) {
        let mut inner = self.director.lock();
        if let Some(sub) = inner.subs.iter_mut().find(|s| s.spec.id == self.subagent) {
            sub.jobs.remove(&self.key);
            sub.sent.remove(&self.key);
        }
        inner.retire_drained();
        drop(inner);
        self.director.changed.notify_waiters();
    }
}

fn cluster_file(config: &Config) -> PathBuf {
    config.data_dir.join("cluster")
}

/// What `<data_dir>/cluster` holds: the agent's object, its cluster settings and its
/// subagents' priority expressions. Postcard: without expressions its bytes are those of the
/// pair `(agent, settings)` a build before them wrote, and such a file reads with none.
#[derive(serde::Serialize, serde::Deserialize)]
struct ClusterFile {
    agent: Agent,
    settings: ClusterSettings,
    #[serde(
        default,
        deserialize_with = "ordo_model::order::trailing_or_default",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    priorities: Priorities,
}

/// Keeps the agent's object in `<data_dir>/cluster`, where [`Director::new`] reads it.
pub fn keep_object(
    config: &Config,
    agent: &Agent,
    settings: &ClusterSettings,
    priorities: &Priorities,
) {
    let path = cluster_file(config);
    let file = ClusterFile {
        agent: agent.clone(),
        settings: settings.clone(),
        priorities: priorities.clone(),
    };
    match postcard::to_allocvec(&file) {
        Ok(bytes) => {
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path))
            {
                tracing::warn!("cannot keep the agent's object in {}: {e}", path.display());
            }
        }
        Err(e) => tracing::warn!("cannot encode the agent's object: {e}"),
    }
}

impl Director {
    /// The director of `config`'s agent, with the cluster it kept from its last run.
    pub fn new(config: Arc<Config>) -> Result<Arc<Director>, crate::AgentError> {
        let material =
            ordo_net::tls::TlsMaterial::from_pem_files(&config.tls.certificate, &config.tls.key)?;
        let ca = ordo_net::tls::CaBundle::from_pem_file(&config.tls.controller_ca)?;
        let tls = ordo_net::tls::client_config(&ca, Some(&material))?;
        let director = Arc::new(Director {
            config,
            tls,
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            version: AtomicU64::new(0),
            horizon_ms: AtomicI64::new(0),
            journal: OnceLock::new(),
            term: AtomicU64::new(0),
        });
        let path = cluster_file(&director.config);
        let read = std::fs::metadata(&path).and_then(|m| {
            if m.len() > CLUSTER_FILE_BYTES_MAX {
                Err(std::io::Error::other(format!(
                    "larger than {CLUSTER_FILE_BYTES_MAX} bytes"
                )))
            } else {
                std::fs::read(&path)
            }
        });
        match read {
            Ok(bytes) => match postcard::from_bytes::<ClusterFile>(&bytes) {
                Ok(file) => {
                    director.set_cluster_with_priorities(file.agent, file.settings, file.priorities)
                }
                Err(e) => tracing::warn!(
                    "{} is not an agent object ({e}); the cluster comes with the controller",
                    path.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot read {}: {e}", path.display()),
        }
        Ok(director)
    }

    /// This director leads its pair in `term` (see [`ToSubagent::DedicateInTerm`]). Until it
    /// knows its object, its workers run no job (a backup director must not run locally what
    /// its subagents are for).
    pub fn set_term(&self, term: u64) {
        self.term.store(term, Ordering::Release);
    }

    /// Waits, in a director pair, until the agent's object is known.
    pub async fn wait_object(&self) {
        if self.term.load(Ordering::Acquire) == 0 {
            return;
        }
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.peek().agent.is_some() {
                return;
            }
            changed.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.version.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Journals renewals of the lease horizon through `inputs` (the executor's), starting
    /// from the horizon the journal holds.
    pub fn journal_leases(&self, inputs: mpsc::Sender<Input>, horizon: Option<TimeMs>) {
        self.horizon_ms
            .fetch_max(horizon.map_or(0, |h| h.0), Ordering::AcqRel);
        let _ = self.journal.set(inputs);
    }

    /// A new lease horizon to journal when the one journaled does not cover a lease from
    /// `now_ms` with room to spare (half a lease): `now_ms` + 3 leases. `None` when it does, or
    /// when the agent directs no cluster. Every subagent's hold on a job ends within a lease
    /// of the director hearing from it, so the journaled horizon is never passed by one.
    pub fn renewal(&self, now_ms: i64) -> Option<i64> {
        let lease = {
            let inner = self.peek();
            inner.agent.as_ref().filter(|a| !a.subagents.is_empty())?;
            let lease = inner.settings.lease_timeout.0.max(inner.lease_high_ms);
            i64::try_from(lease).unwrap_or(i64::MAX / 8)
        };
        let horizon = self.horizon_ms.load(Ordering::Acquire);
        if horizon >= now_ms.saturating_add(lease.saturating_mul(3) / 2) {
            return None;
        }
        let new = now_ms.saturating_add(lease.saturating_mul(3));
        self.horizon_ms.fetch_max(new, Ordering::AcqRel);
        Some(new)
    }

    /// Renews the journaled horizon from a session while its subagent runs jobs.
    fn renew(&self) {
        if let Some(taken_until) = self.renewal(crate::now_ms())
            && let Some(inputs) = self.journal.get()
            && inputs
                .try_send(Input::Leased {
                    taken_until: TimeMs(taken_until),
                })
                .is_err()
        {
            // Asked again at the next heartbeat.
            self.horizon_ms.store(0, Ordering::Release);
        }
    }

    /// The state, to read only.
    fn peek(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes with every change of [`Director::meta`] (and some that change nothing).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The subagents with their state, for the agent's metadata.
    pub fn meta(&self) -> Vec<SubagentMeta> {
        self.status()
            .into_iter()
            .map(|s| SubagentMeta {
                id: s.id,
                url: s.url,
                // A removed subagent that still runs jobs says so while it is reachable.
                state: match (s.live, s.leaving) {
                    (false, _) => "lost",
                    (true, Some(leaving)) => leaving,
                    (true, None) => "live",
                }
                .to_owned(),
                running_processes: u64::from(s.running),
                processed: s.processed,
                last_error: s.last_error,
                ring_position: s.ring_position.map(|p| p.saturating_add(1)),
                token: s.token,
            })
            .collect()
    }

    /// The subagents' figures, beside [`Director::meta`] (`FromAgent::SubagentHealth`).
    pub fn health(&self) -> Vec<SubagentHealth> {
        self.status()
            .into_iter()
            .map(|s| SubagentHealth {
                id: s.id,
                average_job_duration_ms: s.average_job_duration_ms,
                connected_since_ms: s.connected_since_ms,
                host: s.host,
            })
            .collect()
    }

    /// Whether this agent directs subagents (its jobs run there).
    pub fn is_cluster(&self) -> bool {
        self.peek()
            .agent
            .as_ref()
            .is_some_and(|a| !a.subagents.is_empty())
    }

    /// Takes the agent's inventory object: starts sessions with new subagents, ends those of
    /// removed ones (their jobs are lost), keeps the others. A changed `leaseTimeout` goes to
    /// the live sessions ([`ToSubagent::Lease`]); their jobs run on.
    pub fn set_cluster(self: &Arc<Self>, agent: Agent, settings: ClusterSettings) {
        self.set_cluster_with_priorities(agent, settings, Priorities::new());
    }

    /// [`Director::set_cluster`] with the subagents' priority expressions (the others have
    /// their whole number), used from the next pick on.
    pub fn set_cluster_with_priorities(
        self: &Arc<Self>,
        agent: Agent,
        settings: ClusterSettings,
        priorities: Priorities,
    ) {
        let mut inner = self.lock();
        if inner.agent.as_ref() == Some(&agent)
            && inner.settings == settings
            && inner.priorities == priorities
        {
            return;
        }
        if agent.id != self.config.agent_id {
            tracing::warn!(object = %agent.id, "the controller sent another agent's object; ignored");
            return;
        }
        keep_object(&self.config, &agent, &settings, &priorities);
        if inner.priorities != priorities {
            tracing::info!(
                expressions = priorities.len(),
                "the subagents' priority expressions changed"
            );
        }
        inner.priorities = priorities;
        let lease_ms = settings.lease_timeout.0;
        let holder = inner.subs.get(inner.cursor).map(|s| s.spec.id.clone());
        let mut old: Vec<Sub> = std::mem::take(&mut inner.subs);
        let mut subs = Vec::new();
        for spec in &agent.subagents {
            let kept = old
                .iter()
                .position(|s| s.spec.id == spec.id && s.spec.url == spec.url);
            match kept {
                Some(i) => {
                    let mut sub = old.swap_remove(i);
                    sub.spec = spec.clone();
                    sub.leaving = false;
                    sub.killing = false;
                    sub.lease_ms
                        .send_if_modified(|l| std::mem::replace(l, lease_ms) != lease_ms);
                    subs.push(sub);
                }
                None => {
                    let (lease_tx, lease_rx) = watch::channel(lease_ms);
                    let task = tokio::spawn(link(self.clone(), spec.clone(), lease_rx));
                    subs.push(Sub {
                        spec: spec.clone(),
                        live: false,
                        processed: 0,
                        last_error: None,
                        out: None,
                        lease_ms: lease_tx,
                        jobs: HashMap::new(),
                        sent: HashMap::new(),
                        busy_ms: 0,
                        connected_since_ms: None,
                        host: None,
                        task: Some(task),
                        leaving: false,
                        killing: false,
                        priority_warned: Warned::default(),
                    });
                }
            }
        }
        // A removed subagent drains: no new job, its running jobs end there (or are killed,
        // see `remove_subagent`), then its session ends; it holds its lease meanwhile.
        let mut leaving = Vec::new();
        for mut sub in old {
            if sub.jobs.is_empty() || sub.task.is_none() {
                if let Some(task) = sub.task.take() {
                    task.abort();
                }
                continue;
            }
            if !sub.leaving {
                tracing::info!(subagent = %sub.spec.id, jobs = sub.jobs.len(), "subagent removed: it drains");
            }
            sub.leaving = true;
            leaving.push(sub);
        }
        tracing::info!(
            subagents = subs.len(),
            selection = ?agent.selection,
            lease_timeout_ms = lease_ms,
            "the agent directs a cluster"
        );
        subs.extend(leaving);
        inner.subs = subs;
        inner.agent = Some(agent);
        inner.lease_high_ms = inner.lease_high_ms.max(lease_ms);
        inner.settings = settings;
        // The token stays with its holder when it is still listed.
        inner.cursor = holder
            .and_then(|id| inner.subs.iter().position(|s| s.spec.id == id))
            .unwrap_or(0);
        inner.settle_ring();
        drop(inner);
        self.changed.notify_waiters();
    }

    /// The controller removed `subagent` with `kill`: its jobs are killed there and count as
    /// lost (`Disrupted(ProcessLost)`); without `kill` it drains (nothing to do here).
    pub fn remove_subagent(&self, subagent: &AgentId, kill: bool) {
        if !kill {
            return;
        }
        let mut inner = self.lock();
        if let Some(sub) = inner
            .subs
            .iter_mut()
            .find(|s| s.spec.id == *subagent && s.leaving)
        {
            tracing::info!(subagent = %subagent, jobs = sub.jobs.len(), "removed subagent: its jobs are killed");
            sub.killing = true;
            if let Some(out) = &sub.out {
                for key in sub.jobs.keys() {
                    let _ = out.send(ToSubagent::Kill {
                        key: *key,
                        immediately: true,
                    });
                }
            }
        }
    }

    /// Waits until some subagent could take a job (or the agent directs no cluster): a worker
    /// takes a job from the queue only then, so that a job waiting for a subagent can still
    /// be withdrawn (cancel, suspend) like one waiting for a process slot.
    pub async fn wait_room(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut inner = self.peek();
                let cluster = inner
                    .agent
                    .as_ref()
                    .is_some_and(|a| !a.subagents.is_empty());
                let room = inner.candidates().iter().any(Candidate::available);
                if !cluster || room {
                    return;
                }
            }
            changed.await;
        }
    }

    /// Waits for a subagent by the agent's selection and sends it the job; `Ok(None)` when
    /// the agent directs no cluster (any more): the job runs locally.
    ///
    /// `pin`: the subagent the order is pinned to (a child of `forkList: { subagentsOf }`).
    /// When it names one of this cluster's subagents the job waits for room there and nowhere
    /// else; when that subagent stays lost for a whole lease the job is refused (`Err`, the
    /// order fails visibly rather than waiting unseen for a subagent that may never return).
    /// A pin naming none of them (another agent's subagent) leaves the selection free.
    ///
    /// `job`: the job's own subagent selection ([`JobSelection`]), if it has one: only its
    /// subagents take the job, with its priorities and by its `selection`; while none of
    /// them is live the job waits, and after a whole lease without one it is refused too.
    pub async fn start(
        self: &Arc<Self>,
        start: Start,
        pin: Option<&AgentId>,
        job: Option<&JobSelection>,
    ) -> Result<Option<RemoteJob>, String> {
        let mut lost_since: Option<Instant> = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let mut wait_ms = None;
            {
                let mut inner = self.lock();
                let Some(selection) = inner.agent.as_ref().map(|a| a.selection) else {
                    return Ok(None);
                };
                if inner.subs.is_empty() {
                    return Ok(None);
                }
                let mut candidates = inner.candidates();
                let pinned = pin.and_then(|p| inner.subs.iter().position(|s| s.spec.id == *p));
                let mut selection = selection;
                if let Some(job) = job.filter(|_| pinned.is_none()) {
                    let ids: Vec<&AgentId> = inner.subs.iter().map(|s| &s.spec.id).collect();
                    selection = for_job(job, &ids, &mut candidates, selection);
                    let live = candidates.iter().any(|c| c.live && c.process_limit > 0);
                    let lease_ms = inner.settings.lease_timeout.0;
                    match lease_wait(live, &mut lost_since, lease_ms) {
                        Some(ms) => wait_ms = wait_ms.or(ms),
                        None => {
                            let names: Vec<&str> =
                                job.subagents.iter().map(|s| s.id.as_str()).collect();
                            return Err(format!(
                                "none of the subagents the job may run on ({}) is live",
                                names.join(", ")
                            ));
                        }
                    }
                }
                let mut cursor = inner.cursor;
                let picked = match pinned {
                    Some(i) if candidates[i].available() => Some(i),
                    Some(i) => {
                        let lease_ms = inner.settings.lease_timeout.0;
                        match lease_wait(candidates[i].live, &mut lost_since, lease_ms) {
                            Some(ms) => wait_ms = wait_ms.or(ms),
                            None => {
                                return Err(format!(
                                    "subagent {}, which the order is pinned to, is not live",
                                    inner.subs[i].spec.id
                                ));
                            }
                        }
                        None
                    }
                    None => pick(selection, &candidates, &mut cursor),
                };
                if let Some(i) = picked {
                    if pinned.is_none() {
                        inner.cursor = cursor;
                    }
                    let sub = &mut inner.subs[i];
                    let (tx, notes) = mpsc::unbounded_channel();
                    let key = start.key;
                    debug_assert!(!sub.jobs.contains_key(&key), "job {key} runs twice");
                    sub.jobs.insert(key, tx);
                    sub.sent.insert(key, Instant::now());
                    let subagent = sub.spec.id.clone();
                    if let Some(out) = &sub.out {
                        let _ = out.send(ToSubagent::Start(Box::new(start)));
                    }
                    return Ok(Some(RemoteJob {
                        director: self.clone(),
                        subagent,
                        key,
                        notes,
                    }));
                }
            }
            match wait_ms {
                Some(ms) => {
                    let _ = tokio::time::timeout(Duration::from_millis(ms), changed).await;
                }
                None => changed.await,
            }
        }
    }

    /// Every subagent with its state.
    pub fn status(&self) -> Vec<SubagentStatus> {
        let mut inner = self.peek();
        let ring = inner.selection() == Some(Selection::Ring);
        let holder = ring
            .then(|| ring_settle(&inner.candidates(), inner.cursor))
            .filter(|&t| inner.subs.get(t).is_some_and(|s| s.live && s.out.is_some()));
        inner
            .subs
            .iter()
            .enumerate()
            .map(|(i, s)| SubagentStatus {
                id: s.spec.id.clone(),
                url: s.spec.url.clone(),
                live: s.live,
                leaving: s
                    .leaving
                    .then_some(if s.killing { "killing" } else { "draining" }),
                running: s.jobs.len() as u32,
                processed: s.processed,
                last_error: s.last_error.clone(),
                ring_position: ring.then(|| u32::try_from(i).unwrap_or(u32::MAX)),
                token: holder == Some(i),
                average_job_duration_ms: s.busy_ms.checked_div(s.processed).unwrap_or(0),
                connected_since_ms: s.connected_since_ms,
                host: s.host.clone(),
            })
            .collect()
    }

    /// Journals a join or departure of a subagent (once the executor takes its inputs),
    /// without holding up the session: when the inputs are full, a task waits for room.
    fn journal_membership(&self, record: Record) {
        let Some(inputs) = self.journal.get() else {
            tracing::debug!(
                record = record.name(),
                "not journaled: the executor is not up yet"
            );
            return;
        };
        match inputs.try_send(Input::Membership(record)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(input)) => {
                let inputs = inputs.clone();
                tokio::spawn(async move {
                    let _ = inputs.send(input).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("not journaled: the executor has stopped");
            }
        }
    }

    /// Ends every session (at shutdown).
    pub fn stop(&self) {
        let mut inner = self.lock();
        for sub in &mut inner.subs {
            if let Some(task) = sub.task.take() {
                task.abort();
            }
        }
    }

    fn with_sub(&self, id: &AgentId, f: impl FnOnce(&mut Sub)) {
        let mut inner = self.lock();
        if let Some(sub) = inner.subs.iter_mut().find(|s| s.spec.id == *id) {
            f(sub);
        }
    }

    /// The subagent's session ended: no job goes to it (the ring's token leaves it); those it
    /// runs wait for their lease. True when it was live (it left).
    fn disconnected(&self, id: &AgentId, why: &str) -> bool {
        let mut inner = self.lock();
        let mut was_live = false;
        if let Some(sub) = inner.subs.iter_mut().find(|s| s.spec.id == *id) {
            was_live = sub.live;
            sub.live = false;
            sub.out = None;
            sub.connected_since_ms = None;
            sub.last_error = Some(why.to_owned());
        }
        inner.settle_ring();
        was_live
    }

    /// Keeps a subagent's last report of its host.
    fn reported(&self, id: &AgentId, r: Report) {
        self.with_sub(id, |sub| {
            sub.host = Some(HostFigures {
                cores: r.cores,
                load: r.load,
                memory_total_bytes: r.memory_total_bytes,
                memory_available_bytes: r.memory_available_bytes,
                reported_ms: crate::now_ms(),
            });
        });
    }

    fn running_on(&self, id: &AgentId) -> usize {
        let inner = self.peek();
        inner
            .subs
            .iter()
            .find(|s| s.spec.id == *id)
            .map_or(0, |s| s.jobs.len())
    }

    /// The subagent's lease expired: every job it ran is lost.
    fn lost(&self, id: &AgentId, why: &str) {
        self.with_sub(id, |sub| {
            sub.sent.clear();
            for (_, job) in sub.jobs.drain() {
                let _ = job.send(Note::Lost(format!("subagent {id}: {why}")));
            }
        });
        self.lock().retire_drained();
        self.changed.notify_waiters();
    }

    fn job_note(&self, id: &AgentId, key: u64, note: Note) {
        let ended = matches!(note, Note::Ended(_));
        let mut inner = self.lock();
        if let Some(sub) = inner.subs.iter_mut().find(|s| s.spec.id == *id) {
            let job = if ended {
                sub.processed += 1;
                let took = sub.sent.remove(&key).map_or(0, |t| t.elapsed().as_millis());
                sub.busy_ms = sub
                    .busy_ms
                    .saturating_add(u64::try_from(took).unwrap_or(u64::MAX));
                sub.jobs.remove(&key)
            } else {
                sub.jobs.get(&key).cloned()
            };
            // A job killed because its subagent was removed with `kill` is lost, not killed:
            // the model decides whether it starts again elsewhere. One that ended by itself
            // meanwhile keeps its outcome.
            let killed =
                matches!(&note, Note::Ended(End::Terminated(t)) if t.killed || t.signal.is_some());
            let note = if killed && sub.killing {
                Note::Lost(format!("subagent {id} was removed and its jobs killed"))
            } else {
                note
            };
            if let Some(job) = job {
                let _ = job.send(note);
            }
        }
        if ended {
            inner.retire_drained();
        }
        drop(inner);
        if ended {
            self.changed.notify_waiters();
        }
    }
}

/// The session with one subagent, connected again after every failure. When a session that
/// was dedicated ends, the subagent's lease on its jobs runs until `leaseTimeout` after it was
/// last heard from (its `takenUntil`); only then are they lost and started elsewhere.
async fn link(director: Arc<Director>, spec: Subagent, mut lease: watch::Receiver<u64>) {
    let mut backoff_ms = RECONNECT_MIN_MS;
    loop {
        let started = Instant::now();
        let mut last_heard = None;
        // The lease the director judges the session by (the longer one while a change is on
        // its way to the subagent).
        let mut judged_ms = *lease.borrow_and_update();
        let why = match session(
            &director,
            &spec,
            &mut lease,
            &mut judged_ms,
            &mut last_heard,
        )
        .await
        {
            Ok(()) => "the subagent closed the session".to_owned(),
            Err(e) => e,
        };
        tracing::warn!(subagent = %spec.id, "subagent session ended: {why}");
        if director.disconnected(&spec.id, &why) {
            director.journal_membership(Record::SubagentLeft {
                subagent: spec.id.clone(),
                reason: why.clone(),
            });
        }
        if let Some(heard) = last_heard {
            let taken_until = heard + Duration::from_millis(judged_ms);
            if director.running_on(&spec.id) > 0 {
                tracing::info!(subagent = %spec.id, "its jobs are lost when its lease expires");
            }
            tokio::time::sleep_until(taken_until).await;
            director.lost(&spec.id, &why);
        }
        if started.elapsed() > Duration::from_millis(judged_ms) {
            backoff_ms = RECONNECT_MIN_MS;
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(RECONNECT_MAX_MS);
    }
}

fn heartbeats(lease_ms: u64) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(heartbeat_interval_ms(lease_ms)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

async fn session(
    director: &Arc<Director>,
    spec: &Subagent,
    lease: &mut watch::Receiver<u64>,
    judged_ms: &mut u64,
    last_heard: &mut Option<Instant>,
) -> Result<(), String> {
    let max = director.config.limits.frame_bytes_max;
    let url = format!("{}{}", spec.url.trim_end_matches('/'), SUBAGENT_WS_PATH);
    let mut lease_ms = *judged_ms;
    let mut ws = ordo_net::client::connect_ws(&url, director.tls.clone(), max, lease_ms)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let dedicate = Dedicate {
        protocol_version: PROTOCOL_VERSION,
        director: director.config.agent_id.clone(),
        subagent: spec.id.clone(),
        lease_timeout_ms: lease_ms,
    };
    let dedicate = match director.term.load(Ordering::Acquire) {
        0 => ToSubagent::Dedicate(dedicate),
        term => ToSubagent::DedicateInTerm { dedicate, term },
    };
    frame::send(&mut ws, &dedicate, max)
        .await
        .map_err(|e| e.to_string())?;
    let answer = Duration::from_millis(lease_ms);
    match tokio::time::timeout(answer, frame::recv::<_, FromSubagent>(&mut ws, max)).await {
        Err(_) => return Err("no answer to Dedicate within the lease".into()),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(None)) => return Err("closed before answering Dedicate".into()),
        Ok(Ok(Some(FromSubagent::Dedicated { subagent }))) if subagent == spec.id => {}
        Ok(Ok(Some(FromSubagent::Refused { reason }))) => {
            return Err(format!("the subagent refused: {reason}"));
        }
        Ok(Ok(Some(other))) => return Err(format!("unexpected answer to Dedicate: {other:?}")),
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut inner = director.lock();
        if let Some(sub) = inner.subs.iter_mut().find(|s| s.spec.id == spec.id) {
            sub.live = true;
            sub.out = Some(tx);
            sub.connected_since_ms = Some(crate::now_ms());
            sub.last_error = None;
        }
        inner.settle_ring();
    }
    director.changed.notify_waiters();
    tracing::info!(subagent = %spec.id, "subagent live");
    director.journal_membership(Record::SubagentJoined {
        subagent: spec.id.clone(),
    });
    let mut tick = heartbeats(lease_ms);
    // A new lease sent and not yet confirmed by the subagent.
    let mut pending: Option<u64> = None;
    *last_heard = Some(Instant::now());
    loop {
        tokio::select! {
            received = frame::recv_any::<_, FromSubagent>(&mut ws, max) => {
                *last_heard = Some(Instant::now());
                match received.map_err(|e| e.to_string())? {
                    Received::Frame(FromSubagent::Heartbeat) => {}
                    Received::Frame(FromSubagent::Started { key, pid }) => {
                        director.job_note(&spec.id, key, Note::Started { pid });
                    }
                    Received::Frame(FromSubagent::Output { key, stderr, chunk }) => {
                        let event = if stderr { RunEvent::Stderr(chunk) } else { RunEvent::Stdout(chunk) };
                        director.job_note(&spec.id, key, Note::Output(event));
                    }
                    Received::Frame(FromSubagent::OutputTruncated { key, log_bytes_max }) => {
                        director.job_note(&spec.id, key, Note::Output(RunEvent::LogTruncated {
                            log_bytes_max,
                            dropped_bytes_so_far: 0,
                        }));
                    }
                    Received::Frame(FromSubagent::Ended { key, end }) => {
                        director.job_note(&spec.id, key, Note::Ended(end));
                    }
                    Received::Frame(FromSubagent::LeaseSet { lease_timeout_ms }) if pending == Some(lease_timeout_ms) => {
                        tracing::info!(subagent = %spec.id, lease_timeout_ms, "the subagent holds its jobs by the new lease");
                        pending = None;
                        lease_ms = lease_timeout_ms;
                        *judged_ms = lease_ms;
                        tick = heartbeats(lease_ms);
                    }
                    Received::Frame(FromSubagent::LeaseSet { .. }) => {}
                    Received::Frame(FromSubagent::Report(report)) => {
                        director.reported(&spec.id, report);
                    }
                    Received::Frame(other) => {
                        return Err(format!("unexpected message: {other:?}"));
                    }
                    Received::Ping(_) | Received::Pong(_) => {}
                    Received::Closed => return Ok(()),
                }
            }
            Ok(()) = lease.changed() => {
                let new = *lease.borrow_and_update();
                if new != pending.unwrap_or(lease_ms) {
                    frame::send(&mut ws, &ToSubagent::Lease { lease_timeout_ms: new }, max)
                        .await
                        .map_err(|e| e.to_string())?;
                    pending = Some(new);
                    *judged_ms = lease_ms.max(new);
                    tick = heartbeats(lease_ms.min(new));
                }
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                frame::send(&mut ws, &msg, max).await.map_err(|e| e.to_string())?;
            }
            _ = tick.tick() => {
                if last_heard.is_some_and(|heard| heard.elapsed() > Duration::from_millis(*judged_ms)) {
                    return Err(format!("not heard from within the lease of {} ms", *judged_ms));
                }
                if director.running_on(&spec.id) > 0 {
                    director.renew();
                }
                frame::send(&mut ws, &ToSubagent::Heartbeat, max).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::expr::parse;

    fn id(s: &str) -> AgentId {
        AgentId::new(s).unwrap()
    }

    fn sub(name: &str, priority: i32, jobs: u64) -> Sub {
        let (lease_ms, _) = watch::channel(1_000);
        let (out, _) = mpsc::unbounded_channel();
        Sub {
            spec: Subagent {
                id: id(name),
                url: format!("wss://{name}:1"),
                priority,
            },
            live: true,
            processed: 0,
            last_error: None,
            out: Some(out),
            lease_ms,
            jobs: (0..jobs)
                .map(|key| (key, mpsc::unbounded_channel().0))
                .collect(),
            sent: HashMap::new(),
            busy_ms: 0,
            connected_since_ms: None,
            host: None,
            task: None,
            leaving: false,
            killing: false,
            priority_warned: Warned::default(),
        }
    }

    fn inner(selection: Selection, s1_jobs: u64) -> Inner {
        let subs = vec![sub("s1", 0, s1_jobs), sub("s2", 5, 0)];
        Inner {
            agent: Some(Agent {
                id: id("dir"),
                url: "wss://dir:1".into(),
                certificate_name: None,
                subagents: subs.iter().map(|s| s.spec.clone()).collect(),
                selection,
            }),
            priorities: [(id("s1"), parse("10 - 10 * $processes").unwrap())].into(),
            subs,
            ..Inner::default()
        }
    }

    fn priorities(inner: &mut Inner) -> Vec<f64> {
        inner.candidates().iter().map(|c| c.priority).collect()
    }

    /// With `selection: priority`, a subagent's expression is evaluated over its metrics at
    /// each listing (its jobs now), the others keep their number; another selection does not
    /// evaluate it.
    #[test]
    fn candidates_evaluate_priority_expressions_at_each_listing() {
        let mut idle = inner(Selection::Priority, 0);
        assert_eq!(priorities(&mut idle), [10.0, 5.0]);
        let mut cursor = 0;
        assert_eq!(
            pick(Selection::Priority, &idle.candidates(), &mut cursor),
            Some(0)
        );
        let mut busy = inner(Selection::Priority, 1);
        assert_eq!(priorities(&mut busy), [0.0, 5.0]);
        assert_eq!(
            pick(Selection::Priority, &busy.candidates(), &mut cursor),
            Some(1)
        );
        // `$cores` is not set before the first report: the lowest priority.
        busy.priorities = [(id("s1"), parse("$cores").unwrap())].into();
        assert_eq!(priorities(&mut busy), [f64::NEG_INFINITY, 5.0]);
        assert!(busy.subs[0].priority_warned.last().is_some());
        let mut round = inner(Selection::RoundRobin, 1);
        assert_eq!(priorities(&mut round), [0.0, 5.0]);
    }

    /// `<data_dir>/cluster` without priority expressions has the bytes of the pair
    /// `(agent, settings)` written before they existed, and such a file reads with none.
    #[test]
    fn the_cluster_file_keeps_its_old_form() {
        let agent = inner(Selection::Priority, 0).agent.unwrap();
        let settings = ClusterSettings::default();
        let old = postcard::to_allocvec(&(&agent, &settings)).unwrap();
        let file = ClusterFile {
            agent: agent.clone(),
            settings: settings.clone(),
            priorities: Priorities::new(),
        };
        assert_eq!(postcard::to_allocvec(&file).unwrap(), old);
        let read: ClusterFile = postcard::from_bytes(&old).unwrap();
        assert!(read.priorities.is_empty());
        assert_eq!(read.agent, agent);
        let with = ClusterFile {
            priorities: [(id("s1"), parse("10 - $load").unwrap())].into(),
            ..file
        };
        let read: ClusterFile =
            postcard::from_bytes(&postcard::to_allocvec(&with).unwrap()).unwrap();
        assert_eq!(read.priorities, with.priorities);
    }
}
