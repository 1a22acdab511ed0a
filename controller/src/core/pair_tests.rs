//! Three replicated cores in one process: the real driver and raft threads, with messages
//! routed between the raft threads through channels (the mTLS transport is tested on its
//! own). A node is "cut" by dropping every message to and from it.

use super::*;
use crate::cluster::raft::{self, RaftSettings, ToRaft};
use ordo_model::ids::{OrderId, WorkflowName};
use ordo_model::inventory::Agent;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use ordo_replica::{Message, Node, NodeConfig, Status as NodeStatus, StoreConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROMPT_WORKFLOW: &str = "workflow: p\nsteps:\n  - prompt: \"ok?\"\n";

struct NoLinks;

impl Links for NoLinks {
    fn ensure(&mut self, _: &Agent, _: &ordo_model::inventory::ClusterSettings, _: Option<&str>) {}
    fn send(&self, _: &AgentId, _: LinkMsg) {}
    fn reconnect_all(&mut self) {}
    fn stop_all(&mut self) {}
}

/// Routes raft messages between the nodes; cut nodes neither send nor receive.
#[derive(Clone, Default)]
struct Net {
    to: Arc<Mutex<BTreeMap<u64, std::sync::mpsc::Sender<ToRaft>>>>,
    cut: Arc<Mutex<BTreeSet<u64>>>,
}

impl Net {
    fn send(&self, m: Message) {
        let cut = self.cut.lock().unwrap();
        if cut.contains(&m.from()) || cut.contains(&m.to()) {
            return;
        }
        if let Some(tx) = self.to.lock().unwrap().get(&m.to()) {
            let _ = tx.send(ToRaft::Message(m));
        }
    }
}

struct Running {
    core: mpsc::Sender<Input>,
    view: Arc<Mutex<NodeView>>,
    raft: Arc<Mutex<NodeStatus>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

const IDS: [u64; 3] = [1, 2, 3];

fn url(id: u64) -> String {
    format!("https://node-{id}.test:1")
}

fn start_node(dir: &std::path::Path, id: u64, net: &Net, watch: bool) -> Running {
    let opened =
        ordo_journal::Journal::open(ordo_journal::Config::new(dir.join("journal"))).unwrap();
    let state = crate::recover(&opened).unwrap();
    let journal = opened.journal;
    let mut nc = NodeConfig::new(id, IDS);
    nc.election_ticks = 10;
    if watch {
        nc.candidacy_ticks_min = 30;
        nc.election_ticks_max = 60;
    } else {
        nc.election_ticks_max = 20;
    }
    nc.store = StoreConfig {
        fsync: false,
        ..StoreConfig::default()
    };
    nc.compact_keep_entries = 10;
    // A node just stopped may still hold its directory for a tick.
    let mut opened = None;
    for _ in 0..500 {
        match Node::open(&dir.join("raft"), nc.clone()) {
            Ok(o) => {
                opened = Some(o);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let (node, restored) = opened.expect("the raft directory opens");
    let journal_index = crate::record::index_of(journal.last_id());
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    if let Some(s) = restored.snapshot.filter(|s| !s.data.is_empty())
        && s.index > journal_index
    {
        let _ = out_tx.send(crate::cluster::raft::FromRaft::Snapshot {
            index: s.index,
            data: s.data,
        });
    }
    let (to_raft, raft_rx) = std::sync::mpsc::channel();
    net.to.lock().unwrap().insert(id, to_raft.clone());
    let status: Arc<Mutex<NodeStatus>> = Arc::new(Mutex::new(node.status()));
    let view = Arc::new(Mutex::new(NodeView::default()));
    let sender = net.clone();
    raft::start(
        node,
        RaftSettings {
            tick_ms: 10,
            watch,
            controllers: vec![1, 2],
            abstain_ms: 0,
        },
        raft_rx,
        out_tx,
        status.clone(),
        Box::new(move |m| sender.send(m)),
    )
    .unwrap();
    let applied = crate::record::index_of(journal.last_id());
    let written = journal.last_id();
    let replicated = Replicated {
        node_id: id,
        watch,
        api_urls: IDS.iter().map(|i| (*i, url(*i))).collect(),
        to_raft,
        from_raft: out_rx,
        raft_status: status.clone(),
        view: view.clone(),
        applied,
        written,
        snapshot: None,
        membership: Vec::new(),
    };
    let core = Core::follower(
        journal,
        state,
        NoLinks,
        Box::new(crate::now),
        100,
        u64::MAX,
        u64::MAX,
    )
    .with_replication(replicated);
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(core.run(rx));
    Running {
        core: tx,
        view,
        raft: status,
        task,
    }
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(t) = f() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 1000 looks");
}

fn active(nodes: &BTreeMap<u64, Running>) -> Option<u64> {
    let active: Vec<u64> = nodes
        .iter()
        .filter(|(_, r)| r.view.lock().unwrap().active)
        .map(|(id, _)| *id)
        .collect();
    (active.len() == 1).then(|| active[0])
}

async fn deploy(core: &mpsc::Sender<Input>) -> Result<DeployReply, Refused> {
    let inventory = parse_inventory(
        &[SourceFile::new("p.yaml", PROMPT_WORKFLOW)],
        &Limits::default(),
    )
    .unwrap();
    let (reply, answer) = oneshot::channel();
    core.send(Input::Deploy {
        inventory: Box::new(inventory),
        reply,
    })
    .await
    .unwrap();
    answer.await.unwrap()
}

async fn add(core: &mpsc::Sender<Input>, id: &str) -> Result<CommandReply, Refused> {
    let (reply, answer) = oneshot::channel();
    core.send(Input::Command {
        command: Command::Add {
            id: OrderId::new(id).unwrap(),
            workflow: WorkflowName::new("p").unwrap(),
            vars: Default::default(),
            scheduled_for: None,
        },
        reply,
    })
    .await
    .unwrap();
    answer.await.unwrap()
}

async fn orders(core: &mpsc::Sender<Input>) -> (u64, BTreeSet<String>) {
    let (tx, rx) = oneshot::channel();
    core.send(Input::Read(Box::new(move |s, _| {
        let _ = tx.send((
            s.last_event_id,
            s.world.orders.keys().map(|k| k.to_string()).collect(),
        ));
    })))
    .await
    .unwrap();
    rx.await.unwrap()
}

/// Adds `id` through whichever node is active, retrying a refusal (503) with the same id.
async fn add_somewhere(nodes: &BTreeMap<u64, Running>, id: &str) {
    for _ in 0..200 {
        if let Some(a) = active(nodes) {
            match add(&nodes[&a].core, id).await {
                Ok(_) => return,
                Err(Refused::NotActive(_)) => {}
                Err(e) => panic!("adding {id}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} was never added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_elects_one_active_replicates_and_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::default();
    let mut nodes = BTreeMap::new();
    for id in IDS {
        nodes.insert(
            id,
            start_node(&dir.path().join(id.to_string()), id, &net, id == 3),
        );
    }
    let first = until("an active controller", || active(&nodes)).await;
    assert_ne!(first, 3, "the watch never stays active");

    // A passive controller refuses commands, naming the active one.
    let passive = if first == 1 { 2 } else { 1 };
    match add(&nodes[&passive].core, "refused").await {
        Err(Refused::NotActive(n)) => assert_eq!(n.active, Some(url(first))),
        other => panic!("a passive controller took a command: {other:?}"),
    }

    deploy(&nodes[&first].core).await.unwrap();
    for i in 0..20 {
        add_somewhere(&nodes, &format!("o-{i}")).await;
    }
    // Every voter applies the same committed events.
    let (leader_last, leader_orders) = orders(&nodes[&first].core).await;
    assert_eq!(leader_orders.len(), 20);
    for id in IDS {
        let core = nodes[&id].core.clone();
        let mut seen = (0, BTreeSet::new());
        for _ in 0..500 {
            seen = orders(&core).await;
            if seen.0 >= leader_last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, (leader_last, leader_orders.clone()), "node {id}");
    }

    // The active one is cut off: another controller takes over, and orders carry on.
    net.cut.lock().unwrap().insert(first);
    let second = until("a new active controller", || {
        let others: BTreeMap<u64, &Running> = nodes
            .iter()
            .filter(|(id, _)| **id != first)
            .map(|(i, r)| (*i, r))
            .collect();
        let active: Vec<u64> = others
            .iter()
            .filter(|(_, r)| r.view.lock().unwrap().active)
            .map(|(id, _)| *id)
            .collect();
        (active.len() == 1).then(|| active[0])
    })
    .await;
    assert_ne!(second, first);
    assert_ne!(second, 3);
    // The deposed one stops acting within an election timeout (check quorum).
    until("the cut-off controller steps down", || {
        (!nodes[&first].view.lock().unwrap().active).then_some(())
    })
    .await;
    for i in 20..30 {
        add_somewhere(&nodes, &format!("o-{i}")).await;
    }
    // Healed, the old active one catches up and agrees.
    net.cut.lock().unwrap().clear();
    let (last, all) = orders(&nodes[&second].core).await;
    assert_eq!(all.len(), 30);
    let core = nodes[&first].core.clone();
    let mut seen = (0, BTreeSet::new());
    for _ in 0..500 {
        seen = orders(&core).await;
        if seen.0 >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, (last, all));
    for (id, r) in nodes {
        assert!(!r.task.is_finished(), "node {id} stopped");
        r.task.abort();
    }
}

/// Waits until node `id` has applied up to `last` and returns its orders.
async fn caught_up(nodes: &BTreeMap<u64, Running>, id: u64, last: u64) -> (u64, BTreeSet<String>) {
    let core = nodes[&id].core.clone();
    let mut seen = (0, BTreeSet::new());
    for _ in 0..1000 {
        seen = orders(&core).await;
        if seen.0 >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_rejoins_from_the_leaders_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::default();
    let mut nodes = BTreeMap::new();
    for id in IDS {
        nodes.insert(
            id,
            start_node(&dir.path().join(id.to_string()), id, &net, id == 3),
        );
    }
    let first = until("an active controller", || active(&nodes)).await;
    deploy(&nodes[&first].core).await.unwrap();
    let other = if first == 1 { 2 } else { 1 };
    // The other controller is stopped; its data goes.
    let stopped = nodes.remove(&other).unwrap();
    net.to.lock().unwrap().remove(&other);
    stopped.task.abort();
    let _ = stopped.task.await;
    std::fs::remove_dir_all(dir.path().join(other.to_string())).unwrap();

    // Enough entries for snapshots (every 100 events) and a compacted log (10 entries kept).
    for i in 0..300 {
        add_somewhere(&nodes, &format!("o-{i}")).await;
    }
    let (last, all) = orders(&nodes[&first].core).await;
    assert_eq!(all.len(), 300);
    let watch = caught_up(&nodes, 3, last).await;
    assert_eq!(watch, (last, all.clone()), "the watch applies every entry");

    // Back with an empty directory: the log it needs is gone, so the leader sends its
    // snapshot, and then the entries after it.
    until("the leader's log compacted", || {
        (nodes[&first].raft.lock().unwrap().compacted > 10).then_some(())
    })
    .await;
    nodes.insert(
        other,
        start_node(&dir.path().join(other.to_string()), other, &net, false),
    );
    let (_, rejoined) = caught_up(&nodes, other, last).await;
    assert_eq!(rejoined, all, "the rejoined node holds every order");
    add_somewhere(&nodes, "after").await;
    let (last, all) = orders(&nodes[&first].core).await;
    assert_eq!(caught_up(&nodes, other, last).await, (last, all));
    for (id, r) in &nodes {
        assert!(!r.task.is_finished(), "node {id} stopped");
    }
    // Its journal says where the snapshot took over, and starts there.
    let rejoined = nodes.remove(&other).unwrap();
    rejoined.task.abort();
    let _ = rejoined.task.await;
    let mut journal = None;
    for _ in 0..500 {
        let config = ordo_journal::Config::new(dir.path().join(other.to_string()).join("journal"));
        if let Ok(j) = ordo_journal::Journal::open(config) {
            journal = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = journal.expect("the rejoined node's journal opens");
    let snapshot = opened
        .snapshot
        .as_ref()
        .expect("a snapshot where the state was restored");
    let mut restored = 0;
    for record in opened.journal.read_after(0).unwrap() {
        let record = record.unwrap();
        let stored = crate::record::Record::decode(record.id, &record.data).unwrap();
        if let crate::record::Body::Restored { index } = stored.body {
            assert_eq!(
                record.id,
                crate::record::event_id(index, crate::record::BATCH_EVENTS_MAX - 1)
            );
            assert!(record.id <= snapshot.id);
            restored += 1;
        }
    }
    assert_eq!(restored, 1, "one Restored record");
    for (_, r) in nodes {
        r.task.abort();
    }
}

async fn membership(
    core: &mpsc::Sender<Input>,
    change: ordo_replica::MembershipChange,
) -> Result<u64, String> {
    let (reply, answer) = oneshot::channel();
    core.send(Input::Membership { change, reply })
        .await
        .unwrap();
    answer.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_is_removed_and_added_back_while_orders_go_on() {
    use ordo_replica::MembershipChange;
    let dir = tempfile::tempdir().unwrap();
    let net = Net::default();
    let mut nodes = BTreeMap::new();
    for id in IDS {
        nodes.insert(
            id,
            start_node(&dir.path().join(id.to_string()), id, &net, id == 3),
        );
    }
    let first = until("an active controller", || active(&nodes)).await;
    deploy(&nodes[&first].core).await.unwrap();
    let other = if first == 1 { 2 } else { 1 };
    add_somewhere(&nodes, "before").await;

    membership(&nodes[&first].core, MembershipChange::Remove(other))
        .await
        .unwrap();
    until("the membership without the other controller", || {
        let v = nodes[&first].view.lock().unwrap().members.clone();
        (!v.is_empty() && !v.contains(&other)).then_some(())
    })
    .await;
    // The two remaining voters commit on their own.
    net.cut.lock().unwrap().insert(other);
    add_somewhere(&nodes, "without").await;

    net.cut.lock().unwrap().clear();
    membership(&nodes[&first].core, MembershipChange::AddVoter(other))
        .await
        .unwrap();
    until("the other controller back in the membership", || {
        let v = nodes[&first].view.lock().unwrap().members.clone();
        v.contains(&other).then_some(())
    })
    .await;
    add_somewhere(&nodes, "with").await;
    let (last, all) = orders(&nodes[&first].core).await;
    assert_eq!(all.len(), 3);
    assert_eq!(caught_up(&nodes, other, last).await, (last, all));
    for (id, r) in nodes {
        assert!(!r.task.is_finished(), "node {id} stopped");
        r.task.abort();
    }
}
