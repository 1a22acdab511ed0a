//! The raft thread: the one owner of a node's [`Node`] (the replicated log), shared by the
//! controller pair and an agent's director pair.
//!
//! A raft `update` writes and fsyncs the log, so the node runs on a thread of its own, never on
//! the async runtime. It takes [`ToRaft`] messages (proposals from the core, messages from the
//! transport, snapshots, leadership transfers, membership changes), ticks raft's clock every
//! `tick_ms`, runs every update raft has, sends what raft sends through the transport, and
//! reports to the application (the controller's core, the agent's director) with [`FromRaft`]: committed entries in log order, role changes, refused
//! proposals, and [`FromRaft::Leading`] once this node leads a term *and* has applied every
//! entry before that term's first one (only then is the core's state the whole committed
//! log, so only then may it act).
//!
//! **Positions.** The application numbers its own entries; a proposal carries the
//! (term, index) the machine gave it and is refused unless raft would put it exactly there
//! (this node leads that term, and the index is the log's next). A refused proposal tells the
//! core that its plans from that entry on are void; while this node still leads, `Leading` is
//! announced again once the log's end is applied, so the core can start over from the
//! committed state.
//!
//! **The watch** (the third voter) never acts: when elected it hands leadership to the
//! voter of [`RaftSettings::controllers`] whose log matches furthest, and tries again every
//! election timeout while it still leads.

use crate::{Committed, MembershipChange, Message, Node, Role, RoleChange, Status as NodeStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A place in the replicated log: the term and index of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub term: u64,
    pub index: u64,
}

/// Inputs of the raft thread.
pub enum ToRaft {
    /// A batch the machine sealed at `position`.
    Propose { position: Position, batch: Vec<u8> },
    /// A message from a peer.
    Message(Message),
    /// A peer could not be reached.
    Unreachable(u64),
    /// A snapshot message was delivered to a peer, or not.
    SnapshotSent { to: u64, delivered: bool },
    /// The application's state after entry `index`, to send lagging followers; the log is
    /// compacted below it.
    Snapshot { index: u64, data: Vec<u8> },
    /// Hand leadership to `to` (a planned switchover).
    Transfer(u64),
    /// Propose a membership change; it takes the log index `index` (the machine skips it).
    Membership {
        change: MembershipChange,
        index: u64,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}

/// Reports of the raft thread, in the order things happened.
#[derive(Debug)]
pub enum FromRaft {
    /// A snapshot from the leader replaced this node's log: restore the state from `data`
    /// (the state after entry `index`) before applying anything after it.
    Snapshot { index: u64, data: Vec<u8> },
    /// Entries committed, in log order.
    Committed(Vec<Committed>),
    /// This node's role or known leader changed.
    Role {
        role: Role,
        leader: Option<u64>,
        term: u64,
    },
    /// A proposal was not made at its position: plans from it on are void.
    Refused { position: Position, why: String },
    /// This node leads `term` and has applied the log up to its end: act, proposing from
    /// `next_index`.
    Leading { term: u64, next_index: u64 },
    /// Raft wants a snapshot taken (a follower needs one the node does not have).
    SnapshotWanted,
    /// The node failed (its log could not be written): the process must stop.
    Failed(String),
}

/// How the raft thread runs.
pub struct RaftSettings {
    pub tick_ms: u64,
    /// This node is the watch: it never acts, and passes leadership on.
    pub watch: bool,
    /// The node ids that may act (whom the watch passes leadership to).
    pub controllers: Vec<u64>,
    /// The node's raft directory was new (founding, or wiped): it grants no vote for this
    /// long, so that a node that lost its vote of a term to a wipe cannot vote again in an
    /// election of that term (0: no abstention).
    pub abstain_ms: u64,
}

/// Hands the transport's reports to the raft thread until either side is gone. A peer that
/// refuses this node (or that this node refuses) stops it while no leader is known — a node
/// that disagrees with its peers stops at start — and is only logged once it is part of an
/// elected group, which keeps serving.
pub fn forward_inbound(
    mut inbound: mpsc::UnboundedReceiver<crate::transport::Inbound>,
    to_raft: std::sync::mpsc::Sender<ToRaft>,
    out: mpsc::UnboundedSender<FromRaft>,
    status: Arc<Mutex<NodeStatus>>,
) -> tokio::task::JoinHandle<()> {
    use crate::transport::Inbound;
    tokio::spawn(async move {
        while let Some(report) = inbound.recv().await {
            let input = match report {
                Inbound::Message(m) => ToRaft::Message(m),
                Inbound::Unreachable(peer) => ToRaft::Unreachable(peer),
                Inbound::SnapshotSent { to, delivered } => ToRaft::SnapshotSent { to, delivered },
                Inbound::Refused { peer, why } => {
                    let leader = status.lock().unwrap_or_else(|e| e.into_inner()).leader;
                    if leader.is_none() {
                        let _ = out.send(FromRaft::Failed(format!(
                            "node {peer} and this node refuse each other: {why}"
                        )));
                    } else {
                        tracing::error!(peer, "a node of the group is refused: {why}");
                    }
                    continue;
                }
            };
            if to_raft.send(input).is_err() {
                return;
            }
        }
    })
}

/// Starts the raft thread. `send` carries a message to its peer (it must not block).
pub fn start(
    mut node: Node,
    settings: RaftSettings,
    inputs: Receiver<ToRaft>,
    out: mpsc::UnboundedSender<FromRaft>,
    status: Arc<Mutex<NodeStatus>>,
    send: Box<dyn Fn(Message) + Send>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let abstain_until = Instant::now() + Duration::from_millis(settings.abstain_ms);
            let mut r = RaftLoop {
                abstain_until,
                node: &mut node,
                settings,
                out,
                status,
                send,
                leading: None,
                announced: None,
                transfer_ticks: 0,
            };
            if let Err(why) = r.run(inputs) {
                tracing::error!("the replicated log stopped: {why}");
                let _ = r.out.send(FromRaft::Failed(why));
            }
        })
}

struct RaftLoop<'a> {
    node: &'a mut Node,
    /// Vote requests are dropped until then (see [`RaftSettings::abstain_ms`]).
    abstain_until: Instant,
    settings: RaftSettings,
    out: mpsc::UnboundedSender<FromRaft>,
    status: Arc<Mutex<NodeStatus>>,
    send: Box<dyn Fn(Message) + Send>,
    /// This node leads (term, index of its term's first entry) and has not yet announced it.
    leading: Option<(u64, u64)>,
    /// The term last announced with `Leading`.
    announced: Option<u64>,
    /// Ticks until the watch tries another leadership transfer.
    transfer_ticks: usize,
}

/// Inputs taken in one go before raft's update runs.
const INPUTS_PER_ROUND_MAX: usize = 4096;

impl RaftLoop<'_> {
    fn run(&mut self, inputs: Receiver<ToRaft>) -> Result<(), String> {
        let tick = Duration::from_millis(self.settings.tick_ms);
        let mut next_tick = Instant::now() + tick;
        self.publish_status();
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inputs.recv_timeout(wait) {
                Ok(input) => {
                    self.handle(input)?;
                    for _ in 0..INPUTS_PER_ROUND_MAX {
                        match inputs.try_recv() {
                            Ok(input) => self.handle(input)?,
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The application is gone: the process stops.
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if Instant::now() >= next_tick {
                next_tick += tick;
                if next_tick < Instant::now() {
                    // Late (a long fsync): the clock goes on from now, without a burst of ticks.
                    next_tick = Instant::now() + tick;
                }
                self.node.tick();
                self.watch_hands_on();
            }
            self.updates()?;
            self.publish_status();
            if self.out.is_closed() {
                return Ok(());
            }
        }
    }

    fn handle(&mut self, input: ToRaft) -> Result<(), String> {
        match input {
            ToRaft::Propose { position, batch } => self.propose(position, batch),
            ToRaft::Message(m) => {
                if m.is_vote_request() && Instant::now() < self.abstain_until {
                    return Ok(());
                }
                if let Err(e) = self.node.step(m) {
                    tracing::debug!("a raft message was refused: {e}");
                }
            }
            ToRaft::Unreachable(peer) => self.node.report_unreachable(peer),
            ToRaft::SnapshotSent { to, delivered } => self.node.report_snapshot(to, delivered),
            ToRaft::Snapshot { index, data } => {
                if let Err(e) = self.node.snapshot(index, &data) {
                    if e.is_fatal() {
                        return Err(format!("taking a snapshot at entry {index}: {e}"));
                    }
                    tracing::warn!("no raft snapshot at entry {index}: {e}");
                }
            }
            ToRaft::Transfer(to) => self.node.transfer_leader(to),
            ToRaft::Membership {
                change,
                index,
                reply,
            } => {
                let result = if self.node.last_index() + 1 != index {
                    Err(format!(
                        "the log moved on (next entry {}, not {index}); try again",
                        self.node.last_index() + 1
                    ))
                } else {
                    self.node
                        .propose_membership_change(change)
                        .map(|p| p.index)
                        .map_err(|e| e.to_string())
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    fn propose(&mut self, position: Position, batch: Vec<u8>) {
        let (term, next) = (self.node.term(), self.node.last_index() + 1);
        let refused = if !self.node.is_leader() || term != position.term {
            Some(format!(
                "this node no longer leads term {} (term {term})",
                position.term
            ))
        } else if next != position.index {
            Some(format!(
                "the log's next entry is {next}, not {}",
                position.index
            ))
        } else {
            match self.node.propose(batch) {
                Ok(p) if p.index == position.index && p.term == position.term => None,
                Ok(p) => Some(format!(
                    "raft placed the batch at ({}, {}), not ({}, {})",
                    p.term, p.index, position.term, position.index
                )),
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(why) = refused {
            if self.node.is_leader() {
                // The core starts over once the log's end is applied.
                self.leading = Some((self.node.term(), self.node.last_index()));
                self.announced = None;
            }
            let _ = self.out.send(FromRaft::Refused { position, why });
        }
    }

    /// Runs raft's updates until none is due.
    fn updates(&mut self) -> Result<(), String> {
        for _ in 0..INPUTS_PER_ROUND_MAX {
            if !self.node.has_update() {
                break;
            }
            let send = &self.send;
            let update = self
                .node
                .update(&mut |m| send(m))
                .map_err(|e| format!("the raft log failed: {e}"))?;
            if let Some(RoleChange { role, leader }) = update.role_change {
                if role == Role::Leader {
                    // A new leader's first entry is the empty one raft just appended.
                    self.leading = Some((self.node.term(), self.node.last_index()));
                    self.announced = None;
                    self.transfer_ticks = 0;
                } else {
                    self.leading = None;
                    self.announced = None;
                }
                let _ = self.out.send(FromRaft::Role {
                    role,
                    leader,
                    term: self.node.term(),
                });
            }
            if let Some(snapshot) = update.snapshot {
                let _ = self.out.send(FromRaft::Snapshot {
                    index: snapshot.index,
                    data: snapshot.data,
                });
            }
            if !update.committed.is_empty() {
                let _ = self.out.send(FromRaft::Committed(update.committed));
            }
            if update.snapshot_wanted {
                let _ = self.out.send(FromRaft::SnapshotWanted);
            }
        }
        if let Some((term, first)) = self.leading
            && self.node.is_leader()
            && self.node.term() == term
            && self.node.applied() >= first
            && self.announced != Some(term)
        {
            self.announced = Some(term);
            if self.settings.watch {
                self.transfer_ticks = 0;
                self.watch_hands_on();
            } else {
                let _ = self.out.send(FromRaft::Leading {
                    term,
                    next_index: self.node.last_index() + 1,
                });
            }
        }
        Ok(())
    }

    /// The watch, when it leads, hands leadership to the most up-to-date controller; it tries
    /// again every election timeout (a transfer to a dead node is abandoned by raft).
    fn watch_hands_on(&mut self) {
        if !self.settings.watch || !self.node.is_leader() {
            return;
        }
        if self.transfer_ticks > 0 {
            self.transfer_ticks -= 1;
            return;
        }
        self.transfer_ticks = self.node.config().election_ticks;
        if let Some(to) = self.node.most_up_to_date(&self.settings.controllers) {
            tracing::info!(
                to,
                "the watch was elected and hands leadership to controller {to}"
            );
            self.node.transfer_leader(to);
        }
    }

    fn publish_status(&self) {
        let status = self.node.status();
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }
}
