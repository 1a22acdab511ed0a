//! [`Node`]: one raft node over a [`LogStore`], without clock or network.
//!
//! The caller owns time and transport: it calls [`Node::tick`] on a fixed cadence,
//! [`Node::step`] for every message from a peer, [`Node::propose`] for new batches, and after
//! any of them [`Node::update`] while [`Node::has_update`] says so. One `update` handles one
//! raft `Ready`, in the order raft-rs requires:
//!
//! 1. messages that depend on nothing unpersisted (a leader's appends, so replication runs
//!    alongside its own fsync) go to `send` at once;
//! 2. a snapshot from the leader is installed (before any entry is written);
//! 3. committed entries (already durable here) are taken for the caller to apply;
//! 4. new entries are made durable (conflicting ones cut first), then the hard state;
//! 5. only then the messages that depend on them (votes, append responses) go to `send`;
//! 6. raft is advanced, and what that releases (commit index, messages, more committed
//!    entries) is handled the same way.
//!
//! Every committed entry is handed out exactly once while the node runs; the caller applies
//! them in order, after restoring [`Update::snapshot`] when there is one. On restart the
//! application restores the snapshot [`Node::open`] returns and raft hands out the committed
//! entries after it again. Pre-vote and check-quorum are always on; proposals are refused on
//! a node that is not the leader (never forwarded), so the caller learns the (term, index)
//! of each of its batches.

use std::path::Path;

use protobuf::Message as _;
use raft::{RawNode, SnapshotStatus, StateRole, eraftpb};

use crate::{
    codec::Membership,
    error::{ReplicaError, Result},
    logger,
    snapshot::Snapshot,
    storage::{HardState, LogStore, OpenedStore, StoreConfig},
    wire::{Message, MessageLimits},
};

/// How a node runs. Ticks are the caller's unit of time (see [`Node::tick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node's id, not 0, unique in the cluster.
    pub id: u64,
    /// The membership a new (empty) replica directory starts with: the same on every node
    /// of a new cluster; empty for a node that joins an existing cluster and waits for the
    /// leader's snapshot. Ignored once the directory holds a raft state.
    pub bootstrap: Membership,
    /// A follower that hears from no leader for a random number of ticks in
    /// `[election_ticks, election_ticks_max)` starts a pre-vote. Default 10.
    pub election_ticks: usize,
    /// Upper bound (exclusive) of the random election timeout; 0 means `2 * election_ticks`.
    pub election_ticks_max: usize,
    /// Lower bound of the random election timeout when it is to be longer than
    /// `election_ticks` (0: `election_ticks`). `election_ticks` stays the leader lease: a node
    /// ignores vote requests for that many ticks after it heard from a leader. A node that
    /// should stand late (the watch) waits longer before it stands without keeping a longer
    /// lease, which would make it refuse the votes of the others after a leader died.
    pub candidacy_ticks_min: usize,
    /// A leader sends heartbeats every this many ticks. Default 2.
    pub heartbeat_ticks: usize,
    /// Largest append message to a follower (its entries), in bytes. Default 1 MiB.
    pub append_bytes_max: u64,
    /// Append messages in flight to one follower. Default 256.
    pub inflight_appends_max: usize,
    /// A leader's proposed but uncommitted entries, in bytes; proposals beyond are dropped.
    /// Default 64 MiB.
    pub uncommitted_bytes_max: u64,
    /// Committed entries one `update` hands out, in bytes (at least one entry). Default 16 MiB.
    pub apply_bytes_per_update_max: u64,
    /// Entries [`Node::snapshot`] keeps in the log below the snapshot, so that a follower a
    /// little behind catches up from the log rather than by snapshot. Default 1024.
    pub compact_keep_entries: u64,
    /// The log's storage.
    pub store: StoreConfig,
}

/// What a pair's configuration sets of a node ([`NodeConfig::for_pair`]).
#[derive(Debug, Clone, Copy)]
pub struct PairTiming {
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Largest message between the nodes, in bytes.
    pub message_bytes_max: usize,
    pub segment_bytes_max: u64,
    pub fsync: bool,
    /// This node is the watch (it stores the log and votes, never acts).
    pub watch: bool,
}

impl NodeConfig {
    /// Defaults for node `id` of a new cluster with the voters `voters`.
    pub fn new(id: u64, voters: impl IntoIterator<Item = u64>) -> NodeConfig {
        NodeConfig {
            id,
            bootstrap: Membership::voters(voters),
            election_ticks: 10,
            election_ticks_max: 0,
            candidacy_ticks_min: 0,
            heartbeat_ticks: 2,
            append_bytes_max: 1 << 20,
            inflight_appends_max: 256,
            uncommitted_bytes_max: 64 << 20,
            apply_bytes_per_update_max: 16 << 20,
            compact_keep_entries: 1024,
            store: StoreConfig::default(),
        }
    }

    /// The settings of a node of a pair (the controller pair or an agent's director pair):
    /// `pair` gives the timing and sizes, and whether this node is the watch.
    ///
    /// The watch waits three to six times as long before it stands, so that an acting node is
    /// elected first; its leader lease stays the others' (a longer one would make it ignore
    /// the surviving node's first vote request after the active one died). An entry travels
    /// in one message of at most `message_bytes_max`, with a MiB left for the envelope.
    pub fn for_pair(
        id: u64,
        voters: impl IntoIterator<Item = u64>,
        pair: PairTiming,
    ) -> NodeConfig {
        let mut nc = NodeConfig::new(id, voters);
        nc.election_ticks = pair.election_ticks;
        if pair.watch {
            nc.candidacy_ticks_min = 3 * pair.election_ticks;
            nc.election_ticks_max = 6 * pair.election_ticks;
        } else {
            nc.election_ticks_max = 2 * pair.election_ticks;
        }
        nc.heartbeat_ticks = pair.heartbeat_ticks;
        let payload_bytes_max = (pair.message_bytes_max as u64).saturating_sub(1 << 20);
        nc.store = StoreConfig {
            segment_bytes_max: pair.segment_bytes_max,
            entry_bytes_max: u32::try_from(payload_bytes_max).unwrap_or(u32::MAX / 2),
            snapshot_bytes_max: payload_bytes_max,
            fsync: pair.fsync,
            ..StoreConfig::default()
        };
        nc
    }

    /// How long a node whose raft directory is new (`fresh`) grants no vote, in ms: two of
    /// its longest election timeouts. A wiped node may have voted in the current term before
    /// and must not vote twice in it; an old one abstains for 0 ms.
    pub fn abstain_ms(&self, fresh: bool, tick_ms: u64) -> u64 {
        if fresh {
            2 * self.election_ticks_max as u64 * tick_ms
        } else {
            0
        }
    }

    fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            max_size_per_msg: self.append_bytes_max,
            max_inflight_msgs: self.inflight_appends_max,
            check_quorum: true,
            pre_vote: true,
            min_election_tick: self.candidacy_ticks_min.max(self.election_ticks),
            max_election_tick: self.election_ticks_max,
            max_uncommitted_size: self.uncommitted_bytes_max,
            max_committed_size_per_ready: self.apply_bytes_per_update_max,
            ..raft::Config::default()
        }
    }
}

/// A node's role in its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl From<StateRole> for Role {
    fn from(r: StateRole) -> Role {
        match r {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        }
    }
}

/// Where a proposal went in the log: it is committed (or lost) at this index, and it is this
/// proposal only if the entry committed there has this term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposed {
    pub term: u64,
    pub index: u64,
}

/// A committed entry, for the application to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
    pub kind: CommittedKind,
}

/// What a committed entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommittedKind {
    /// A proposed batch.
    Batch(Vec<u8>),
    /// The empty entry a new leader appends at the start of its term.
    Empty,
    /// A membership change, applied: the membership from this entry on.
    Membership(Membership),
}

/// A change of role or leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChange {
    pub role: Role,
    /// The leader this node knows of, if any.
    pub leader: Option<u64>,
}

/// What one [`Node::update`] produced for the application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// A snapshot installed from the leader: replace the application's state with it before
    /// applying `committed`.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply, in log order.
    pub committed: Vec<Committed>,
    /// The node's role or the known leader changed.
    pub role_change: Option<RoleChange>,
    /// The hard state after this update (its commit may be ahead of the one on disk).
    pub hard_state: HardState,
    /// Raft wants a newer snapshot than the one in use (see [`Node::snapshot_wanted`]).
    pub snapshot_wanted: bool,
}

/// A change of membership to propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    AddVoter(u64),
    AddLearner(u64),
    Remove(u64),
}

/// A node's view of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: u64,
    pub role: Role,
    pub term: u64,
    pub leader: Option<u64>,
    /// Highest index known to be committed.
    pub commit: u64,
    /// Highest index handed out by `update`.
    pub applied: u64,
    /// The log holds entries after this index.
    pub compacted: u64,
    /// Index of the last entry (durable or not).
    pub last_index: u64,
    /// Index of the snapshot in use (0: none).
    pub snapshot_index: u64,
    /// The membership as of `applied`.
    pub membership: Membership,
}

/// What [`Node::open`] found on disk.
#[derive(Debug)]
pub struct Restored {
    /// The snapshot to restore the application's state from (committed entries after it
    /// follow through `update`).
    pub snapshot: Option<Snapshot>,
    pub hard_state: HardState,
    /// Index of the last durable entry.
    pub last_index: u64,
    /// What the journal's recovery found.
    pub recovery: ordo_journal::RecoveryReport,
}

/// One raft node: see the module documentation.
pub struct Node {
    raw: RawNode<LogStore>,
    config: NodeConfig,
    limits: MessageLimits,
    /// The membership as of `applied`.
    membership: Membership,
    /// The index from which `membership` holds (its change entry, or the snapshot).
    membership_since: u64,
    applied: u64,
}

fn leader_of(id: u64) -> Option<u64> {
    (id != raft::INVALID_ID).then_some(id)
}

impl Node {
    /// Opens (or creates) the replica directory `dir` and starts raft on it, as a follower.
    pub fn open(dir: &Path, config: NodeConfig) -> Result<(Node, Restored)> {
        if config.id == 0 {
            return Err(ReplicaError::Invalid("a node id must not be 0".to_string()));
        }
        let OpenedStore {
            store,
            snapshot,
            recovery,
        } = LogStore::open(dir, config.store.clone(), &config.bootstrap)?;
        let (applied, _) = store.snapshot_point();
        let membership = store.snapshot_membership().clone();
        let hard_state = store.hard_state();
        let last_index = store.durable_last_index();
        let raft_config = config.raft_config(applied);
        raft_config
            .validate()
            .map_err(|e| ReplicaError::Invalid(format!("raft configuration: {e}")))?;
        let limits = MessageLimits {
            entry_bytes_max: config.store.entry_bytes_max,
            snapshot_bytes_max: config.store.snapshot_bytes_max,
        };
        let raw = RawNode::new(&raft_config, store, &logger::logger())?;
        let node = Node {
            raw,
            config,
            limits,
            membership,
            membership_since: applied,
            applied,
        };
        Ok((
            node,
            Restored {
                snapshot,
                hard_state,
                last_index,
                recovery,
            },
        ))
    }

    pub fn id(&self) -> u64 {
        self.config.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Advances raft's clock by one tick. Returns whether an update may be due.
    pub fn tick(&mut self) -> bool {
        self.raw.tick()
    }

    /// Proposes one batch (opaque bytes, not empty). Only the leader takes proposals.
    pub fn propose(&mut self, batch: Vec<u8>) -> Result<Proposed> {
        if batch.is_empty() {
            return Err(ReplicaError::Invalid(
                "an empty batch cannot be proposed (it would read as a new leader's empty entry)"
                    .to_string(),
            ));
        }
        let max = u64::from(self.config.store.entry_bytes_max);
        if batch.len() as u64 > max {
            return Err(ReplicaError::ProposalTooLarge {
                bytes: batch.len() as u64,
                max,
            });
        }
        self.check_leader()?;
        self.raw.propose(Vec::new(), batch).map_err(|e| match e {
            raft::Error::ProposalDropped => ReplicaError::ProposalDropped(
                "a leader transfer is under way, or the uncommitted entries reach \
                     uncommitted_bytes_max"
                    .to_string(),
            ),
            e => e.into(),
        })?;
        Ok(self.last_proposed())
    }

    /// Proposes a change of membership (one node at a time). Refused while an earlier change
    /// is not yet applied.
    pub fn propose_membership_change(&mut self, change: MembershipChange) -> Result<Proposed> {
        self.check_leader()?;
        let mut cc = eraftpb::ConfChange::default();
        let (kind, id) = match change {
            MembershipChange::AddVoter(id) => (eraftpb::ConfChangeType::AddNode, id),
            MembershipChange::AddLearner(id) => (eraftpb::ConfChangeType::AddLearnerNode, id),
            MembershipChange::Remove(id) => (eraftpb::ConfChangeType::RemoveNode, id),
        };
        if id == 0 {
            return Err(ReplicaError::Invalid("a node id must not be 0".to_string()));
        }
        cc.set_change_type(kind);
        cc.node_id = id;
        let pending_before = self.raw.raft.pending_conf_index;
        self.raw.propose_conf_change(Vec::new(), cc)?;
        let proposed = self.last_proposed();
        if self.raw.raft.pending_conf_index == pending_before {
            // Raft appended an empty entry instead (a change is pending, or the membership is
            // joint).
            return Err(ReplicaError::ProposalDropped(format!(
                "the membership change {change:?} was refused: an earlier change (index \
                 {pending_before}) is not applied yet"
            )));
        }
        Ok(proposed)
    }

    fn check_leader(&self) -> Result<()> {
        if self.raw.raft.state != StateRole::Leader {
            return Err(ReplicaError::NotLeader {
                leader: leader_of(self.raw.raft.leader_id),
            });
        }
        Ok(())
    }

    fn last_proposed(&self) -> Proposed {
        Proposed {
            term: self.raw.raft.term,
            index: self.raw.raft.raft_log.last_index(),
        }
    }

    /// Takes a message from a peer. A refused message (not for this node, damaged, too large,
    /// of a newer format, from a node outside the membership) is an error the node survives.
    pub fn step(&mut self, message: Message) -> Result<()> {
        if message.to() != self.config.id {
            return Err(ReplicaError::BadMessage(format!(
                "{} from node {} is for node {}, not this node {}",
                message.kind_name(),
                message.from(),
                message.to(),
                self.config.id
            )));
        }
        let from = message.from();
        let mut m = message.into_raft(&self.limits)?;
        if m.get_msg_type() == eraftpb::MessageType::MsgHeartbeat {
            // A leader tells a follower the commit up to what the follower once matched; a
            // follower whose directory was wiped has less now, and raft would abort on it.
            // Its own end is all it can know to be committed; the leader learns of the loss
            // from its next append's rejection and sends what is missing (or a snapshot).
            let last = self.raw.raft.raft_log.last_index();
            if m.commit > last {
                m.commit = last;
            }
        }
        self.raw.step(m).map_err(|e| match e {
            raft::Error::StepPeerNotFound => ReplicaError::BadMessage(format!(
                "a response from node {from}, which is not a member"
            )),
            e => e.into(),
        })
    }

    /// Whether [`Node::update`] has something to do.
    pub fn has_update(&self) -> bool {
        self.raw.has_ready()
    }

    /// Handles one raft `Ready` (see the module documentation): persists, calls `send` for
    /// each message as soon as it may leave, and returns what the application must apply.
    /// An error is fatal when [`ReplicaError::is_fatal`] says so; the node must then stop.
    pub fn update(&mut self, send: &mut dyn FnMut(Message)) -> Result<Update> {
        let mut out = Update::default();
        if !self.raw.has_ready() {
            out.hard_state = self.raw.store().hard_state();
            return Ok(out);
        }
        let mut rd = self.raw.ready();

        for m in rd.take_messages() {
            send(Message::from_raft(m)?);
        }
        if let Some(ss) = rd.ss() {
            out.role_change = Some(RoleChange {
                role: ss.raft_state.into(),
                leader: leader_of(ss.leader_id),
            });
        }
        if !rd.snapshot().is_empty() {
            let installed = self.raw.mut_store().apply_snapshot(rd.snapshot())?;
            self.applied = installed.index;
            self.membership = installed.membership.clone();
            self.membership_since = installed.index;
            out.snapshot = Some(installed);
        }
        let committed = rd.take_committed_entries();
        self.take_committed(committed, &mut out.committed)?;
        if !rd.entries().is_empty() {
            self.raw.mut_store().append(rd.entries())?;
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
        }
        for m in rd.take_persisted_messages() {
            send(Message::from_raft(m)?);
        }

        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        for m in light.take_messages() {
            send(Message::from_raft(m)?);
        }
        let committed = light.take_committed_entries();
        self.take_committed(committed, &mut out.committed)?;
        self.raw.advance_apply();
        out.hard_state = self.raw.store().hard_state();
        out.snapshot_wanted = self.raw.store().snapshot_wanted();
        Ok(out)
    }

    fn take_committed(
        &mut self,
        entries: Vec<eraftpb::Entry>,
        out: &mut Vec<Committed>,
    ) -> Result<()> {
        for e in entries {
            debug_assert!(
                e.index == self.applied + 1,
                "entry {} after {}",
                e.index,
                self.applied
            );
            let kind = match e.get_entry_type() {
                eraftpb::EntryType::EntryNormal if e.data.is_empty() => CommittedKind::Empty,
                eraftpb::EntryType::EntryNormal => CommittedKind::Batch(e.data.to_vec()),
                eraftpb::EntryType::EntryConfChange => {
                    let mut cc = eraftpb::ConfChange::default();
                    cc.merge_from_bytes(&e.data)
                        .map_err(|err| self.bad_conf_change(e.index, &err.to_string()))?;
                    let applied = self.raw.apply_conf_change(&cc);
                    self.applied_membership(e.index, applied)
                }
                eraftpb::EntryType::EntryConfChangeV2 => {
                    let mut cc = eraftpb::ConfChangeV2::default();
                    cc.merge_from_bytes(&e.data)
                        .map_err(|err| self.bad_conf_change(e.index, &err.to_string()))?;
                    let applied = self.raw.apply_conf_change(&cc);
                    self.applied_membership(e.index, applied)
                }
            };
            self.applied = e.index;
            out.push(Committed {
                index: e.index,
                term: e.term,
                kind,
            });
        }
        Ok(())
    }

    fn applied_membership(
        &mut self,
        index: u64,
        applied: raft::Result<eraftpb::ConfState>,
    ) -> CommittedKind {
        self.membership_since = index;
        match applied {
            Ok(cs) => self.membership = Membership::from(&cs),
            // Raft refuses the same changes on every node, so skipping it keeps replicas equal.
            Err(e) => {
                tracing::warn!(index, error = %e, "a committed membership change is refused; it has no effect")
            }
        }
        CommittedKind::Membership(self.membership.clone())
    }

    fn bad_conf_change(&self, index: u64, reason: &str) -> ReplicaError {
        ReplicaError::corrupt(
            self.raw.store().dir(),
            format!("the committed membership change at index {index} does not decode: {reason}"),
        )
    }

    /// Stores `data` (not empty), the application's state after applying every entry up to
    /// `index`, as the snapshot followers that lag behind the log get; then compacts the log up
    /// to `compact_keep_entries` below it. `index` is at most the last index `update` handed
    /// out, and no membership change lies after it (the snapshot carries the membership as of
    /// `applied`), so an application that applies behind `update` can snapshot what it has.
    pub fn snapshot(&mut self, index: u64, data: &[u8]) -> Result<()> {
        if index > self.applied || index < self.membership_since {
            return Err(ReplicaError::Invalid(format!(
                "a snapshot must be taken at an index from {} (the last membership change) to                  {} (the last applied), not {index}",
                self.membership_since, self.applied
            )));
        }
        let membership = self.membership.clone();
        let keep = self.config.compact_keep_entries;
        let store = self.raw.mut_store();
        store.create_snapshot(index, &membership, data)?;
        store.compact(index.saturating_sub(keep))?;
        Ok(())
    }

    /// Whether raft wanted to send a follower a snapshot that the one in use cannot be (none
    /// taken yet, or taken before that follower joined): take one with [`Node::snapshot`].
    pub fn snapshot_wanted(&self) -> bool {
        self.raw.store().snapshot_wanted()
    }

    /// Reports that a message to `to` could not be delivered (raft then probes it again).
    pub fn report_unreachable(&mut self, to: u64) {
        self.raw.report_unreachable(to);
    }

    /// Reports whether a snapshot message to `to` was delivered. A leader sends no more to
    /// a follower with a snapshot in flight until this is reported (or the follower answers).
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        let status = if delivered {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        self.raw.report_snapshot(to, status);
    }

    /// Starts an election now (pre-vote first).
    pub fn campaign(&mut self) -> Result<()> {
        Ok(self.raw.campaign()?)
    }

    /// Asks the leader to hand leadership to `to` (forwarded when this node is not the
    /// leader).
    pub fn transfer_leader(&mut self, to: u64) {
        self.raw.transfer_leader(to);
    }

    pub fn role(&self) -> Role {
        self.raw.raft.state.into()
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        leader_of(self.raw.raft.leader_id)
    }

    /// Highest index handed out by `update` (or restored from the snapshot).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Index of the last entry in the log (durable or not).
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// On the leader: of `candidates`, the voter whose log matches the leader's furthest (the
    /// one a leadership transfer completes soonest with); `None` when not leader or none is
    /// known.
    pub fn most_up_to_date(&self, candidates: &[u64]) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let prs = self.raw.raft.prs();
        candidates
            .iter()
            .filter(|id| **id != self.config.id)
            .filter_map(|id| prs.get(*id).map(|p| (p.matched, *id)))
            .max_by_key(|(matched, id)| (*matched, std::cmp::Reverse(*id)))
            .map(|(_, id)| id)
    }

    /// The membership as of `applied`.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn status(&self) -> Status {
        let raft = &self.raw.raft;
        let store = self.raw.store();
        Status {
            id: self.config.id,
            role: raft.state.into(),
            term: raft.term,
            leader: leader_of(raft.leader_id),
            commit: raft.raft_log.committed,
            applied: self.applied,
            compacted: store.compacted_index(),
            last_index: raft.raft_log.last_index(),
            snapshot_index: store.snapshot_point().0,
            membership: self.membership.clone(),
        }
    }

    /// The log's storage (read only).
    pub fn store(&self) -> &LogStore {
        self.raw.store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(watch: bool) -> PairTiming {
        PairTiming {
            election_ticks: 10,
            heartbeat_ticks: 3,
            message_bytes_max: 5 << 20,
            segment_bytes_max: 1 << 20,
            fsync: false,
            watch,
        }
    }

    #[test]
    fn a_pair_node_elects_before_the_watch_and_fits_an_entry_in_a_message() {
        let director = NodeConfig::for_pair(1, [1, 2, 3], timing(false));
        let watch = NodeConfig::for_pair(3, [1, 2, 3], timing(true));
        // A voter that may act stands within [10, 20) ticks; the watch not before 30, and
        // both keep the same leader lease.
        assert_eq!(
            (director.election_ticks, director.election_ticks_max),
            (10, 20)
        );
        assert_eq!(director.candidacy_ticks_min, 0);
        assert_eq!(
            (watch.candidacy_ticks_min, watch.election_ticks_max),
            (30, 60)
        );
        assert_eq!(watch.election_ticks, director.election_ticks);
        assert_eq!(director.heartbeat_ticks, 3);
        assert_eq!(director.store.entry_bytes_max, 4 << 20);
        assert_eq!(director.store.snapshot_bytes_max, 4 << 20);
        assert_eq!(director.store.segment_bytes_max, 1 << 20);
        assert!(!director.store.fsync);
        // A wiped node abstains for two of its longest election timeouts.
        assert_eq!(director.abstain_ms(true, 50), 2 * 20 * 50);
        assert_eq!(watch.abstain_ms(true, 50), 2 * 60 * 50);
        assert_eq!(director.abstain_ms(false, 50), 0);
    }
}
