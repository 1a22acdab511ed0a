//! Raft nodes in one process, exchanging messages through an in-memory router whose links
//! can be cut. Time is ticks; every loop is bounded by a count. Each node runs a small
//! application whose state is the list of entries it applied, so replicas can be compared.

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    path::PathBuf,
};

use ordo_replica::{
    CommittedKind, Membership, Message, Node, NodeConfig, Proposed, ReplicaError, Restored, Role,
    Update,
};

/// One applied entry: index, term, the batch (`None` for a leader's empty entry or a
/// membership change).
pub type Applied = (u64, u64, Option<Vec<u8>>);

/// The application: the entries it applied, in order (restored from snapshots).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct App {
    /// Index of the snapshot it was restored from.
    pub base: u64,
    pub applied: Vec<Applied>,
    pub snapshots_installed: u64,
}

impl App {
    /// The state in a snapshot at `index` (empty data: the initial state).
    fn restore(index: u64, data: &[u8]) -> App {
        let applied = if data.is_empty() {
            Vec::new()
        } else {
            postcard::from_bytes(data).expect("the test's snapshot decodes")
        };
        App {
            base: index,
            applied,
            snapshots_installed: 0,
        }
    }

    pub fn snapshot_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(&self.applied).expect("encoding to a Vec cannot fail")
    }

    pub fn last_index(&self) -> u64 {
        self.applied.last().map_or(self.base, |a| a.0)
    }

    pub fn batches(&self) -> Vec<Vec<u8>> {
        self.applied.iter().filter_map(|a| a.2.clone()).collect()
    }

    fn apply(&mut self, update: &Update) {
        if let Some(snapshot) = &update.snapshot {
            let restored = App::restore(snapshot.index, &snapshot.data);
            assert_eq!(
                restored.last_index(),
                snapshot.index,
                "the snapshot's state ends at its index"
            );
            self.base = restored.base;
            self.applied = restored.applied;
            self.snapshots_installed += 1;
        }
        for c in &update.committed {
            assert_eq!(
                c.index,
                self.last_index() + 1,
                "committed entries come once each, in order"
            );
            let batch = match &c.kind {
                CommittedKind::Batch(b) => Some(b.clone()),
                CommittedKind::Empty | CommittedKind::Membership(_) => None,
            };
            self.applied.push((c.index, c.term, batch));
        }
    }
}

pub struct Peer {
    pub node: Node,
    pub app: App,
    pub restored: Restored,
}

/// The nodes, the router and its faults.
pub struct Sim {
    root: tempfile::TempDir,
    pub ids: Vec<u64>,
    pub peers: BTreeMap<u64, Peer>,
    /// Directed links that drop every message.
    pub cut: BTreeSet<(u64, u64)>,
    queue: VecDeque<Message>,
    config: Box<dyn Fn(u64) -> NodeConfig>,
    /// Nodes added after the start: they have no membership until a snapshot brings it.
    joining: BTreeSet<u64>,
    /// The leader seen in each term: there is never more than one.
    pub leaders: BTreeMap<u64, u64>,
    pub delivered: u64,
    pub dropped: u64,
    pub refused: u64,
    pub round: u64,
}

impl Sim {
    /// `n` nodes with ids 1..=n, all voters, configured by `tweak` on the defaults (no fsync:
    /// the nodes are never killed with the machine).
    pub fn new(n: u64, tweak: impl Fn(&mut NodeConfig) + 'static) -> Sim {
        let ids: Vec<u64> = (1..=n).collect();
        let voters = ids.clone();
        let config = move |id: u64| {
            let mut c = NodeConfig::new(id, voters.iter().copied());
            c.store.fsync = false;
            tweak(&mut c);
            c
        };
        let mut sim = Sim {
            root: tempfile::tempdir().expect("a temp dir"),
            ids: ids.clone(),
            peers: BTreeMap::new(),
            cut: BTreeSet::new(),
            queue: VecDeque::new(),
            config: Box::new(config),
            joining: BTreeSet::new(),
            leaders: BTreeMap::new(),
            delivered: 0,
            dropped: 0,
            refused: 0,
            round: 0,
        };
        for id in ids {
            sim.start(id);
        }
        sim
    }

    pub fn dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.peers.contains_key(&id)
    }

    /// Opens node `id` from its directory (a restart when it ran before).
    pub fn start(&mut self, id: u64) {
        assert!(!self.is_up(id), "node {id} is already up");
        let mut config = (self.config)(id);
        if self.joining.contains(&id) {
            config.bootstrap = Membership::default();
        }
        let (node, restored) =
            Node::open(&self.dir(id), config).unwrap_or_else(|e| panic!("node {id} opens: {e}"));
        let app = match &restored.snapshot {
            Some(s) => App::restore(s.index, &s.data),
            None => App::default(),
        };
        self.peers.insert(
            id,
            Peer {
                node,
                app,
                restored,
            },
        );
    }

    /// Starts a new node `id` with an empty directory and no membership (to be added to the
    /// cluster with a membership change).
    pub fn add_node(&mut self, id: u64) {
        assert!(!self.ids.contains(&id), "node {id} exists");
        self.ids.push(id);
        self.joining.insert(id);
        self.start(id);
    }

    /// Stops node `id` (drops it: its journal closes; what it made durable stays).
    pub fn stop(&mut self, id: u64) -> Peer {
        self.peers.remove(&id).expect("the node is up")
    }

    pub fn peer(&self, id: u64) -> &Peer {
        &self.peers[&id]
    }

    pub fn peer_mut(&mut self, id: u64) -> &mut Peer {
        self.peers.get_mut(&id).expect("the node is up")
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_between(&mut self, a: u64, b: u64) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Cuts `id` off from every other node.
    pub fn isolate(&mut self, id: u64) {
        for other in self.ids.clone() {
            if other != id {
                self.cut_between(id, other);
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Every node ticks once, then messages flow until nothing moves.
    pub fn tick(&mut self) {
        self.tick_some(&self.ids.clone());
    }

    /// The nodes in `ids` (those up) tick once, then messages flow until nothing moves.
    pub fn tick_some(&mut self, ids: &[u64]) {
        self.round += 1;
        for id in ids {
            if let Some(p) = self.peers.get_mut(id) {
                p.node.tick();
            }
        }
        self.settle();
    }

    /// Runs updates and delivers messages until no node has anything to do (bounded).
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for id in self.ids.clone() {
                moved |= self.update(id);
            }
            while let Some(m) = self.queue.pop_front() {
                moved = true;
                self.deliver(m);
            }
            if !moved {
                return;
            }
        }
        panic!("the nodes did not settle within 10,000 rounds of updates");
    }

    fn update(&mut self, id: u64) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let mut moved = false;
        for _ in 0..1000 {
            if !peer.node.has_update() {
                return moved;
            }
            moved = true;
            let queue = &mut self.queue;
            let update = peer
                .node
                .update(&mut |m| queue.push_back(m))
                .unwrap_or_else(|e| panic!("node {id} update: {e}"));
            peer.app.apply(&update);
            if update.snapshot_wanted {
                take_snapshot(id, peer);
            }
            if let Some(change) = update.role_change
                && change.role == Role::Leader
            {
                let term = update.hard_state.term;
                if let Some(other) = self.leaders.insert(term, id) {
                    assert_eq!(other, id, "two leaders in term {term}");
                }
            }
        }
        panic!("node {id} kept having updates");
    }

    fn deliver(&mut self, m: Message) {
        let (from, to) = (m.from(), m.to());
        let reachable = self.is_up(to) && !self.cut.contains(&(from, to));
        if !reachable {
            self.dropped += 1;
            if let Some(sender) = self.peers.get_mut(&from) {
                if m.is_snapshot() {
                    sender.node.report_snapshot(to, false);
                } else {
                    sender.node.report_unreachable(to);
                }
            }
            return;
        }
        self.delivered += 1;
        let is_snapshot = m.is_snapshot();
        // Through the wire format, as a transport would carry it.
        let m = Message::decode(&m.encode()).expect("a message decodes");
        match self.peer_mut(to).node.step(m) {
            Ok(()) => {}
            Err(e) if !e.is_fatal() => self.refused += 1,
            Err(e) => panic!("node {to} failed on a message: {e}"),
        }
        if is_snapshot && let Some(sender) = self.peers.get_mut(&from) {
            sender.node.report_snapshot(to, true);
        }
    }

    /// The leader of the highest term among the nodes up, if one is known.
    pub fn leader(&self) -> Option<u64> {
        self.peers
            .iter()
            .filter(|(_, p)| p.node.is_leader())
            .max_by_key(|(_, p)| p.node.status().term)
            .map(|(&id, _)| id)
    }

    /// Ticks (everyone) until `done` holds; false when `ticks_max` ticks did not do it.
    pub fn run_until(&mut self, ticks_max: u64, done: impl Fn(&Sim) -> bool) -> bool {
        for _ in 0..ticks_max {
            if done(self) {
                return true;
            }
            self.tick();
        }
        done(self)
    }

    /// Ticks until a leader that every node up and reachable follows is elected; returns it.
    pub fn elect(&mut self, ticks_max: u64) -> u64 {
        let elected = self.run_until(ticks_max, |sim| {
            let Some(leader) = sim.leader() else {
                return false;
            };
            sim.peers
                .iter()
                .all(|(&id, p)| sim.cut.contains(&(leader, id)) || p.node.leader() == Some(leader))
        });
        assert!(elected, "no leader within {ticks_max} ticks");
        self.leader().expect("a leader")
    }

    /// Ticks until one of `ids` is a leader that the others of `ids` follow; returns it.
    pub fn elect_among(&mut self, ids: &[u64], ticks_max: u64) -> u64 {
        let leader_of = |sim: &Sim| {
            ids.iter().copied().find(|&id| {
                sim.peer(id).node.is_leader()
                    && ids.iter().all(|&o| sim.peer(o).node.leader() == Some(id))
            })
        };
        assert!(
            self.run_until(ticks_max, |sim| leader_of(sim).is_some()),
            "no leader among {ids:?} within {ticks_max} ticks"
        );
        leader_of(self).expect("a leader")
    }

    pub fn propose(&mut self, id: u64, batch: Vec<u8>) -> Result<Proposed, ReplicaError> {
        self.peer_mut(id).node.propose(batch)
    }

    /// Ticks until every node up has applied at least up to `index`.
    pub fn applied_everywhere(&mut self, index: u64, ticks_max: u64) -> bool {
        self.run_until(ticks_max, |sim| {
            sim.peers.values().all(|p| p.app.last_index() >= index)
        })
    }

    /// Takes a snapshot of node `id`'s application at what it applied, and compacts.
    pub fn snapshot(&mut self, id: u64) {
        take_snapshot(id, self.peer_mut(id));
    }

    /// Asserts that the nodes up applied the same entries, up to the shortest of them.
    pub fn assert_same_prefixes(&self) {
        let apps: Vec<(u64, &App)> = self.peers.iter().map(|(&id, p)| (id, &p.app)).collect();
        for (a, app_a) in &apps {
            for (b, app_b) in &apps {
                let n = app_a.applied.len().min(app_b.applied.len());
                if let Some(k) = (0..n).find(|&k| app_a.applied[k] != app_b.applied[k]) {
                    panic!(
                        "nodes {a} and {b} applied different entries at position {k}: {:?} and {:?}",
                        app_a.applied[k], app_b.applied[k]
                    );
                }
            }
        }
    }
}

fn take_snapshot(id: u64, peer: &mut Peer) {
    let index = peer.app.last_index();
    if index > peer.node.store().snapshot_point().0 {
        let data = peer.app.snapshot_bytes();
        peer.node
            .snapshot(index, &data)
            .unwrap_or_else(|e| panic!("node {id} snapshot: {e}"));
    }
}

/// A batch named by a number.
pub fn batch(n: u64) -> Vec<u8> {
    format!("batch {n}").into_bytes()
}
