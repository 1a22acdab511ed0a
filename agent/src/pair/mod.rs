//! A director pair: the agent's journal replicated with raft to a backup director and a third
//! voter, the director fenced by its raft term.
//!
//! An agent with a `[pair]` section ([`crate::config::PairSection`]) is one of three voters of
//! a raft log (`ordo-replica`: the log in `<data_dir>/raft`, the raft thread
//! `ordo_replica::driver`, the mutual-TLS transport `ordo_replica::transport` with the agent's
//! own certificate, URI SAN `ordo:agent:<agent id>` required of every peer): the director, the
//! backup director, and the watch, which stores the log, votes and never directs.
//!
//! - **One entry per batch.** The active director's executor hands each batch of journal
//!   records to the log instead of its journal ([`crate::executor::Sink::Replicated`],
//!   format in [`entry`]). Every node — the active one too — writes each *committed* entry to
//!   its own agent journal (`<data_dir>/journal`) under the records' own ids, in log order.
//!   So the journal holds committed records only, the executor's "durable" is "committed",
//!   and everything that waits for durability (a job's start before it is sent to a
//!   subagent, the answer to a controller command, the events streamed to the controller)
//!   waits for the replication.
//! - **Active.** The raft leader becomes the active director once raft says it leads a term
//!   and has applied every entry before it (`FromRaft::Leading`). An empty journal is given
//!   its `Created` record (a new run id) through the log first; then the journal is folded
//!   exactly as a restarted agent's ([`crate::open::fold`]) and the agent starts directing
//!   ([`crate::Active`]): every journaled start without an outcome becomes
//!   `Disrupted(ProcessLost)` once the journaled lease horizon has passed (a `restartable`
//!   job runs again, attempt + 1; any other fails), and it dedicates to its subagents with
//!   its term ([`crate::cluster::protocol::ToSubagent::DedicateInTerm`]): a subagent then
//!   kills the jobs of the older director's session and refuses that director from then on.
//!   The run id and the agent event ids are the journal's, the same on both directors, so the
//!   controller, which deduplicates by agent, run id and event id, journals each event once
//!   across a takeover.
//! - **Passive.** A director that does not lead (and the watch) writes committed entries to
//!   its journal and folds them into its state (`crate::state::AgentState`, as recovery
//!   does); every `snapshot_interval_records` records it writes a snapshot of that state and
//!   releases the segments below it and the controller's release, as the active one does; the
//!   agent's object the active one journaled (`Record::AgentObject`) it keeps where a director
//!   reads it at start, so it directs the same subagents when it takes over (until it knows
//!   the object, a director of a pair runs no job at all). Its
//!   server refuses the controller's `Couple`, naming the active director when known
//!   ([`server`]), so that the controller's link tries the other director.
//! - **Fencing.** A director that loses the lead (another node leads, or a proposal of its
//!   own was not placed) stops at once: the process ends with an error and its supervisor
//!   starts it again as a passive node. Its controller and subagent sessions die with it.
//!   The controller couples with the new active director, which fences older terms as a lone
//!   agent does.
//!
//! Left to later: raft log compaction and raft snapshots (the raft log grows until the node
//! starts from an empty data directory), adding or removing a node.

pub mod entry;
pub mod server;

use crate::config::{Config, PairSection, PairVoter};
use crate::executor::Sink;
use crate::{Active, AgentError};
use ordo_journal::Journal;
use ordo_net::tls::{CaBundle, TlsMaterial};
use ordo_replica::driver::{self, FromRaft, RaftSettings, ToRaft};
use ordo_replica::transport::{Transport, TransportConfig, TransportTls};
use ordo_replica::{CommittedKind, Node, NodeConfig, PairTiming, Position, Role};
use server::{PairView, Passive};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Proposes the executor's batches to the pair's log, each at the next position of the term
/// this director leads.
#[derive(Clone)]
pub struct Proposer {
    to_raft: std::sync::mpsc::Sender<ToRaft>,
    next: Arc<Mutex<Position>>,
}

impl Proposer {
    /// Proposes a batch of records (every id given, consecutive after `after`). A proposal
    /// that raft does not place where it was meant to go ends this director.
    pub fn propose(&self, after: u64, batch: Vec<(Option<u64>, Vec<u8>)>) {
        let records = batch
            .into_iter()
            .map(|(id, data)| (id.expect("the executor names every record's id"), data))
            .collect();
        let data = entry::encode(after, records);
        let position = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let position = *next;
            next.index += 1;
            position
        };
        // A raft thread that ended reports why.
        let _ = self.to_raft.send(ToRaft::Propose {
            position,
            batch: data,
        });
    }
}

/// Runs the agent as a node of its director pair on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let pair = config
        .pair
        .clone()
        .ok_or_else(|| AgentError::Config("no [pair] section".into()))?;
    let tls = crate::tls(&config)?;
    let config = Arc::new(config);
    let open_config = config.clone();
    let journal = tokio::task::spawn_blocking(move || crate::open::open_journal(&open_config))
        .await
        .map_err(|e| AgentError::Task(e.to_string()))??;
    let me = pair.me().clone();
    let mut node = Started::start(&config, &pair, &journal).await?;
    let view = Arc::new(PairView {
        frame_bytes_max: config.limits.frame_bytes_max,
        heartbeat_timeout_ms: config.limits.heartbeat_timeout_ms,
        voter: match me.voter {
            PairVoter::Director => "director",
            PairVoter::Watch => "watch",
        },
        active: OnceLock::new(),
        passive: Mutex::new(Passive::default()),
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(ordo_net::serve::serve_tls(
        listener,
        tls,
        server::router(view.clone()),
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
        crate::serve_limits(&config),
    ));
    tracing::info!(
        agent = %config.agent_id,
        node = pair.node_id,
        voter = view.voter,
        raft = %pair.raft_listen,
        "node of the director pair started; it is passive until raft makes it the active one"
    );
    let fold_config = config.clone();
    let fold_journal = journal.clone();
    let folded = tokio::task::spawn_blocking(move || crate::open::fold(&fold_config, fold_journal))
        .await
        .map_err(|e| AgentError::Task(e.to_string()))??;
    let mut pair_loop = PairLoop {
        config: config.clone(),
        pair,
        passive: Some(PassiveFold {
            config: config.clone(),
            snapshot_id: folded.as_ref().map_or(0, |r| r.snapshot_id),
            state: folded.map(|r| r.state),
            since_snapshot: 0,
            released: 0,
        }),
        journal,
        view: view.clone(),
        to_raft: node.to_raft.clone(),
        activating: None,
        directing: false,
    };
    let mut active: Option<Active> = None;
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("agent stopping");
                break Ok(());
            }
            report = node.from_raft.recv() => {
                let Some(report) = report else {
                    break Err(AgentError::Task("the raft thread stopped".into()));
                };
                match pair_loop.on_raft(report).await {
                    Ok(Some(started)) => active = Some(started),
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
            }
            result = async {
                match active.as_mut() {
                    Some(active) => active.stopped().await,
                    None => std::future::pending().await,
                }
            } => break result,
            result = &mut server => {
                break Err(AgentError::Server(match result {
                    Ok(Ok(())) => "it ended".into(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                }));
            }
        }
    };
    stop_tx.send_replace(true);
    // A stopping director's last records (withdrawn starts) are durable only once committed:
    // committed entries are still written while the executor ends.
    let finished = match active.take() {
        Some(active) => {
            let finish = active.finish();
            tokio::pin!(finish);
            loop {
                tokio::select! {
                    result = &mut finish => break result,
                    report = node.from_raft.recv() => match report {
                        Some(FromRaft::Committed(entries)) => {
                            if let Err(e) = pair_loop.write_committed(entries).await {
                                tracing::error!("while stopping: {e}");
                            }
                        }
                        Some(_) => {}
                        None => break finish.await,
                    }
                }
            }
        }
        None => Ok(()),
    };
    let _ = server.await;
    drop(node.transport);
    outcome.and(finished)
}

/// The raft side of a node, started.
struct Started {
    to_raft: std::sync::mpsc::Sender<ToRaft>,
    from_raft: mpsc::UnboundedReceiver<FromRaft>,
    /// Kept alive while the node runs.
    transport: Arc<Transport>,
}

impl Started {
    /// Opens the raft log and starts the transport and the raft thread.
    async fn start(
        config: &Config,
        pair: &PairSection,
        journal: &Journal,
    ) -> Result<Started, AgentError> {
        let watch = pair.me().voter == PairVoter::Watch;
        let nc = NodeConfig::for_pair(
            pair.node_id,
            pair.nodes.iter().map(|n| n.id),
            PairTiming {
                election_ticks: pair.election_ticks,
                heartbeat_ticks: pair.heartbeat_ticks,
                message_bytes_max: pair.message_bytes_max,
                segment_bytes_max: config.limits.segment_bytes_max,
                fsync: config.limits.journal_fsync,
                watch,
            },
        );
        let dir = config.data_dir.join("raft");
        std::fs::create_dir_all(&dir).map_err(|source| AgentError::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
        let fresh = !dir.join(ordo_replica::LOG_DIR_NAME).exists();
        if fresh && journal.last_id() > 0 {
            return Err(AgentError::Config(format!(
                "the agent journal in {} holds records but {} has no raft log: a node of a \
                 director pair starts from an empty data directory or its own",
                journal.dir().display(),
                dir.display()
            )));
        }
        // A wiped node may have voted in the current term: it abstains for two timeouts.
        let abstain_ms = nc.abstain_ms(fresh, pair.tick_ms);
        let (node, restored) = Node::open(&dir, nc)
            .map_err(|e| AgentError::Corrupt(format!("the raft log in {}: {e}", dir.display())))?;
        if restored.snapshot.is_some_and(|s| !s.data.is_empty()) {
            return Err(AgentError::Corrupt(format!(
                "the raft log in {} holds a snapshot with data, which this build never takes",
                dir.display()
            )));
        }
        let status = Arc::new(Mutex::new(node.status()));
        let (out_tx, from_raft) = mpsc::unbounded_channel();
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        let peers: BTreeMap<u64, String> = pair
            .nodes
            .iter()
            .filter(|n| n.id != pair.node_id)
            .map(|n| (n.id, n.raft_address.clone()))
            .collect();
        let material = TlsMaterial::from_pem_files(&config.tls.certificate, &config.tls.key)?;
        let agent_id = config.agent_id.to_string();
        let transport = Transport::start(
            TransportConfig {
                node_id: pair.node_id,
                cluster_id: agent_id.clone(),
                peer_uri: ordo_net::identity::agent_uri(&agent_id),
                listen: pair.raft_listen,
                peers,
                shared_settings: pair.shared_settings(&agent_id),
                message_bytes_max: pair.message_bytes_max,
                connect_timeout_ms: 1000,
                queue_messages_max: 4096,
            },
            TransportTls {
                ca: CaBundle::from_pem_file(&config.tls.controller_ca)?,
                server: material.clone(),
                client: material,
            },
            inbound_tx,
        )
        .await
        .map_err(|e| AgentError::Server(format!("the raft transport: {e}")))?;
        let transport = Arc::new(transport);
        let (to_raft, raft_rx) = std::sync::mpsc::channel();
        driver::forward_inbound(inbound_rx, to_raft.clone(), out_tx.clone(), status.clone());
        let sender = transport.clone();
        driver::start(
            node,
            RaftSettings {
                tick_ms: pair.tick_ms,
                watch,
                controllers: pair
                    .nodes
                    .iter()
                    .filter(|n| n.voter == PairVoter::Director)
                    .map(|n| n.id)
                    .collect(),
                abstain_ms,
            },
            raft_rx,
            out_tx,
            status,
            Box::new(move |m| sender.send(m)),
        )
        .map_err(|e| AgentError::Task(format!("cannot start the raft thread: {e}")))?;
        Ok(Started {
            to_raft,
            from_raft,
            transport,
        })
    }
}

struct PairLoop {
    config: Arc<Config>,
    pair: PairSection,
    journal: Journal,
    view: Arc<PairView>,
    to_raft: std::sync::mpsc::Sender<ToRaft>,
    /// This node leads `term` and waits for its journal's first record to be committed
    /// before it directs.
    activating: Option<(u64, Proposer)>,
    /// This node directs (from its activation to the end of the process).
    directing: bool,
    /// The state folded from the committed records while this node does not direct (then the
    /// executor owns it).
    passive: Option<PassiveFold>,
}

/// A passive node's fold of its journal.
struct PassiveFold {
    config: Arc<Config>,
    /// `None` while the journal is empty.
    state: Option<crate::state::AgentState>,
    since_snapshot: u64,
    /// The newest snapshot's id.
    snapshot_id: u64,
    /// Segments are released up to here.
    released: u64,
}

impl PassiveFold {
    fn apply(&mut self, id: u64, data: &[u8]) -> Result<(), String> {
        let record = crate::record::Record::decode(data)
            .map_err(|e| format!("committed record {id} does not decode: {e}"))?;
        if let crate::record::Record::AgentObject {
            agent,
            settings,
            priorities,
        } = &record
        {
            crate::cluster::director::keep_object(&self.config, agent, settings, priorities);
        }
        match &mut self.state {
            None => {
                self.state = Some(
                    crate::state::AgentState::from_first(id, &record)
                        .map_err(|e| format!("committed record {id}: {e}"))?,
                );
            }
            Some(state) => state
                .apply(id, &record, data.len())
                .map_err(|e| format!("committed record {id}: {e}"))?,
        }
        self.since_snapshot += 1;
        Ok(())
    }

    /// Writes a snapshot when one is due and releases what it and the controller allow.
    async fn snapshot_if_due(&mut self, journal: &Journal, interval: u64) -> Result<(), String> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if self.since_snapshot < interval {
            return Ok(());
        }
        self.since_snapshot = 0;
        let id = state.last_id;
        let bytes = state
            .to_snapshot()
            .map_err(|e| format!("encoding the state at record {id}: {e}"))?;
        let until = state.released.min(id);
        let j = journal.clone();
        let released = self.released;
        let done = tokio::task::spawn_blocking(move || {
            j.write_snapshot(id, &bytes)?;
            if until > released {
                j.release(until)?;
            }
            Ok::<_, ordo_journal::JournalError>(())
        })
        .await
        .map_err(|e| format!("the snapshot writer failed: {e}"))?;
        match done {
            Ok(()) => {
                self.snapshot_id = id;
                self.released = self.released.max(until);
            }
            // The journal goes on without it; the next one is tried later.
            Err(e) => tracing::error!("cannot write the snapshot at record {id}: {e}"),
        }
        Ok(())
    }
}

impl PairLoop {
    /// Handles one report of the raft thread; the agent directing, once this node starts to.
    async fn on_raft(&mut self, report: FromRaft) -> Result<Option<Active>, AgentError> {
        let mut started = None;
        match report {
            FromRaft::Committed(entries) => {
                self.write_committed(entries).await?;
                started = self.activate_once_created().await?;
            }
            FromRaft::Role { role, leader, term } => {
                let url = leader.and_then(|id| {
                    self.pair
                        .nodes
                        .iter()
                        .find(|n| n.id == id)
                        .and_then(|n| n.url.clone())
                });
                tracing::info!(?role, ?leader, term, "raft role");
                *self.view.passive.lock().unwrap_or_else(|e| e.into_inner()) = Passive {
                    term,
                    active: url,
                    taking_over: false,
                };
                if role != Role::Leader && (self.directing || self.activating.is_some()) {
                    return Err(AgentError::Task(format!(
                        "this director lost the lead of its pair (term {term}): it stops, and \
                         starts again as the passive one"
                    )));
                }
            }
            FromRaft::Refused { position, why } => {
                if self.directing || self.activating.is_some() {
                    return Err(AgentError::Task(format!(
                        "a batch of this director was not placed in the pair's log at index {} \
                         of term {}: {why}; it stops, and starts again as the passive one",
                        position.index, position.term
                    )));
                }
            }
            FromRaft::Leading { term, next_index } => {
                if !self.directing && self.activating.is_none() {
                    let proposer = Proposer {
                        to_raft: self.to_raft.clone(),
                        next: Arc::new(Mutex::new(Position {
                            term,
                            index: next_index,
                        })),
                    };
                    if self.journal.last_id() == 0 {
                        let run_id = crate::open::random_run_id()?;
                        tracing::info!(
                            run = %crate::status::run_id_hex(run_id),
                            "a new run of the director pair"
                        );
                        proposer.propose(
                            0,
                            vec![(Some(1), crate::open::created(&self.config, run_id)?)],
                        );
                    }
                    self.activating = Some((term, proposer));
                    self.view
                        .passive
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .taking_over = true;
                    started = self.activate_once_created().await?;
                }
            }
            FromRaft::Snapshot { index, data } => {
                if !data.is_empty() {
                    return Err(AgentError::Corrupt(format!(
                        "the pair's leader sent a snapshot at index {index}, which this build \
                         never takes"
                    )));
                }
            }
            FromRaft::SnapshotWanted => {
                tracing::warn!("a node of the pair needs a snapshot, which this build never takes");
            }
            FromRaft::Failed(why) => return Err(AgentError::JournalStopped(why)),
        }
        Ok(started)
    }

    /// Writes committed entries to the journal, in log order (a passive node folds them).
    async fn write_committed(
        &mut self,
        entries: Vec<ordo_replica::Committed>,
    ) -> Result<(), AgentError> {
        for entry in entries {
            if let CommittedKind::Batch(data) = &entry.kind {
                let passive = &mut self.passive;
                entry::apply(
                    &self.journal,
                    entry.index,
                    data,
                    |id, record| match passive.as_mut() {
                        Some(fold) => fold.apply(id, record),
                        None => Ok(()),
                    },
                )
                .await
                .map_err(AgentError::JournalStopped)?;
            }
        }
        if let Some(fold) = self.passive.as_mut() {
            fold.snapshot_if_due(&self.journal, self.config.limits.snapshot_interval_records)
                .await
                .map_err(AgentError::Corrupt)?;
        }
        Ok(())
    }

    /// Starts directing once this node leads and its journal holds its run's first record.
    async fn activate_once_created(&mut self) -> Result<Option<Active>, AgentError> {
        if self.journal.last_id() == 0 {
            return Ok(None);
        }
        let Some((term, proposer)) = self.activating.take() else {
            return Ok(None);
        };
        self.directing = true;
        // The executor owns the state, its snapshots and releases from now on.
        self.passive = None;
        let config = self.config.clone();
        let journal = self.journal.clone();
        let recovered = tokio::task::spawn_blocking(move || crate::open::fold(&config, journal))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))??
            .ok_or_else(|| AgentError::Corrupt("the journal is empty".into()))?;
        tracing::info!(term, "this director is now the active one of its pair");
        let active = Active::start(
            self.config.clone(),
            recovered,
            Sink::Replicated(proposer),
            term,
        )
        .await?;
        let _ = self.view.active.set(active.shared.clone());
        Ok(Some(active))
    }
}
