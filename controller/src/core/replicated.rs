//! The core as a node of the replicated pair: the machine's entries go through raft.
//!
//! The raft thread ([`crate::cluster::raft`]) owns the log; this side proposes each batch the
//! machine seals at the (term, index) the machine gave it, and applies what raft commits, in
//! log order: each committed batch is written to the event journal (the committed events,
//! with their ids: what readers follow and what a restart folds) and handed to the machine
//! (its own proposals commit, others' are applied). The journal therefore only ever holds
//! committed events; a restart skips the entries it already holds.
//!
//! Roles: the machine acts only after [`FromRaft::Leading`] (this node leads and has applied
//! every entry before its term); any other role change, or a refused proposal, makes it
//! follow (its pending replies answered 503, its speculative state rebuilt from the journal).
//! The watch never acts.

use super::{Core, Links};
use crate::cluster::batch;
use crate::cluster::raft::{FromRaft, ToRaft};
use crate::machine::Position;
use crate::record::{BATCH_EVENTS_MAX, Body, Record, Stored, event_id};
use crate::state::State;
use ordo_replica::{Committed, CommittedKind, MembershipChange, Role, Status as NodeStatus};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// What the API shows of this node (see `GET /health`).
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    /// The machine acts (this node is the active controller).
    pub active: bool,
    /// The API of the active controller, when known.
    pub active_api_url: Option<String>,
    /// The last raft entry applied to the state and the journal.
    pub applied: u64,
    pub committed_event_id: u64,
    /// The voters of the membership as last applied.
    pub members: Vec<u64>,
}

/// The parts of a replicated core.
pub struct Replicated {
    pub node_id: u64,
    pub watch: bool,
    /// Every configured node's API URL, by node id.
    pub api_urls: BTreeMap<u64, String>,
    pub to_raft: std::sync::mpsc::Sender<ToRaft>,
    pub from_raft: mpsc::UnboundedReceiver<FromRaft>,
    pub raft_status: Arc<Mutex<NodeStatus>>,
    pub view: Arc<Mutex<NodeView>>,
    /// Entries up to this index are in the journal and the state (at start: the index of the
    /// journal's last event).
    pub applied: u64,
    /// The last event id given to the journal.
    pub written: u64,
    /// The snapshot the machine asked for, kept until the journal has it: (event id, raft
    /// index, state). `None` at start.
    pub snapshot: Option<(u64, u64, Vec<u8>)>,
    /// Membership changes asked for, proposed after the round. Empty at start.
    pub membership: Vec<(MembershipChange, oneshot::Sender<Result<u64, String>>)>,
}

impl<L: Links> Core<L> {
    fn rep(&mut self) -> &mut Replicated {
        self.replicated
            .as_mut()
            .expect("only a replicated core runs this")
    }

    /// Proposes a batch the machine sealed.
    pub(super) fn propose(&mut self, position: Position, events: &[(u64, Stored)]) {
        let data = batch::encode(events.iter().map(|(_, s)| s));
        // A raft thread that ended reports why through `from_raft`.
        let _ = self.rep().to_raft.send(ToRaft::Propose {
            position,
            batch: data,
        });
    }

    /// Handles one report of the raft thread.
    pub(super) async fn on_raft(&mut self, report: FromRaft) -> Result<(), String> {
        match report {
            FromRaft::Snapshot { index, data } => self.install(index, data).await?,
            FromRaft::Committed(entries) => {
                for entry in entries {
                    self.apply_entry(entry)?;
                    // A lost leadership asks for a rebuild before the next entry applies.
                    self.perform();
                    self.rebuild().await?;
                }
            }
            FromRaft::Role { role, leader, term } => {
                let r = self.rep();
                let active = leader.and_then(|id| r.api_urls.get(&id).cloned());
                tracing::info!(?role, ?leader, term, "raft role");
                if self.machine.is_leader() && role != Role::Leader {
                    tracing::warn!(term, "no longer the active controller");
                    self.machine.lost_leadership(term, active.clone());
                }
                self.machine.set_active(active.clone());
                self.update_view(|v| v.active_api_url = active);
            }
            FromRaft::Refused { position, why } => {
                if self.machine.is_leader() {
                    tracing::warn!(
                        index = position.index,
                        term = position.term,
                        "a proposal was refused, the active controller starts over from the committed state: {why}"
                    );
                    self.machine.lost_leadership(position.term, None);
                }
            }
            FromRaft::Leading { term, next_index } => {
                if !self.rep().watch && !self.machine.is_leader() {
                    tracing::info!(term, "this controller is now the active one");
                    self.machine.became_leader_at(term, next_index);
                    let me = self.rep().node_id;
                    let url = self.rep().api_urls.get(&me).cloned();
                    self.update_view(|v| v.active_api_url = url);
                }
            }
            FromRaft::SnapshotWanted => self.machine.want_snapshot(),
            FromRaft::Failed(why) => return Err(why),
        }
        self.perform();
        self.rebuild().await?;
        let active = self.machine.is_leader();
        let committed = self.machine.committed_event_id();
        self.update_view(|v| {
            v.active = active;
            v.committed_event_id = committed;
        });
        Ok(())
    }

    fn update_view(&mut self, f: impl FnOnce(&mut NodeView)) {
        let r = self.rep();
        let mut view = r.view.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut view);
        view.applied = r.applied;
    }

    /// Applies one committed entry: to the journal, then to the machine.
    fn apply_entry(&mut self, entry: Committed) -> Result<(), String> {
        let r = self.rep();
        if entry.index <= r.applied {
            // Already in the journal (a restart hands out committed entries again).
            return Ok(());
        }
        r.applied = entry.index;
        let position = Position {
            term: entry.term,
            index: entry.index,
        };
        match entry.kind {
            CommittedKind::Batch(data) => {
                let entry = batch::decode(position, &data)?;
                let after = self.rep().written;
                let last = entry.events.last().map(|(id, _)| *id).unwrap_or(after);
                self.rep().written = last;
                self.append(position, after, entry.events.clone());
                self.machine.apply_committed(&entry, (self.clock)());
            }
            CommittedKind::Empty => {}
            CommittedKind::Membership(m) => {
                tracing::info!(index = entry.index, voters = ?m.voters, "membership applied");
                self.update_view(|v| v.members = m.voters.clone());
            }
        }
        Ok(())
    }

    /// Replaces the state with a snapshot from the leader (this node lagged behind what the
    /// log still holds): the journal gets a [`Body::Restored`] record at the end of entry
    /// `index` and a journal snapshot there; older segments are released, so a reader that
    /// follows this node from before it reloads the state.
    async fn install(&mut self, index: u64, data: Vec<u8>) -> Result<(), String> {
        assert!(
            !self.machine.is_leader(),
            "a leader never takes a snapshot from another node"
        );
        // Empty data is the founding snapshot: the initial state (a node that joins gets it
        // while the leader's log is still whole).
        let mut state: State = if data.is_empty() {
            State::new()
        } else {
            postcard::from_bytes(&data).map_err(|e| {
                format!("the snapshot at entry {index} from the leader does not decode: {e}")
            })?
        };
        let marker = event_id(index, BATCH_EVENTS_MAX - 1);
        let after = self.rep().written;
        assert!(
            marker > after && marker > state.last_event_id,
            "a snapshot from the leader is ahead of this node"
        );
        let stored = Stored {
            term: self.machine.term(),
            ts: (self.clock)(),
            body: Body::Restored { index },
        };
        if state.apply(marker, &stored).is_err() {
            return Err("the Restored record does not apply".into());
        }
        let bytes = postcard::to_allocvec(&state)
            .map_err(|e| format!("cannot encode the restored state: {e}"))?;
        let record = Record::V1(stored).encode();
        self.journal
            .append_batch_after(after, vec![(Some(marker), record)])
            .await
            .map_err(|e| format!("cannot journal the restored state: {e}"))?;
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            journal.write_snapshot(marker, &bytes)?;
            journal.release(marker)
        })
        .await
        .map_err(|e| format!("writing the restored state: {e}"))?
        .map_err(|e| format!("writing the restored state: {e}"))?;
        tracing::warn!(
            index,
            "this controller lagged behind the log and took the leader's snapshot"
        );
        let r = self.rep();
        r.applied = index;
        r.written = marker;
        self.machine.restore(state);
        Ok(())
    }

    /// The machine wrote a snapshot of the state at `event_id` (the state after entry
    /// `applied`): once the journal holds it, raft gets it too and compacts its log.
    pub(super) fn keep_for_raft(&mut self, event_id: u64, bytes: &[u8]) {
        let r = self.rep();
        let index = r.applied;
        r.snapshot = Some((event_id, index, bytes.to_vec()));
    }

    /// The journal snapshot at `event_id` is written.
    pub(super) fn snapshot_written_to_journal(&mut self, event_id: u64) {
        let r = self.rep();
        if let Some((id, index, data)) = r.snapshot.take() {
            if id == event_id {
                let _ = r.to_raft.send(ToRaft::Snapshot { index, data });
            } else {
                r.snapshot = Some((id, index, data));
            }
        }
    }

    /// Proposes the membership changes asked for during the round (the machine's batch is
    /// sealed: each takes the next index).
    pub(super) fn propose_membership(&mut self) {
        let pending = std::mem::take(&mut self.rep().membership);
        for (change, reply) in pending {
            if !self.machine.is_leader() {
                let _ = reply.send(Err("this controller is not the active one".into()));
                continue;
            }
            let index = self.machine.next_index();
            self.machine.skip_index();
            let _ = self.rep().to_raft.send(ToRaft::Membership {
                change,
                index,
                reply,
            });
        }
    }

    /// Hands leadership to `to` (a planned switchover).
    pub(super) fn transfer(&mut self, to: u64) {
        let _ = self.rep().to_raft.send(ToRaft::Transfer(to));
    }
}
