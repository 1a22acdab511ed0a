//! The raft transport between controller nodes on 127.0.0.1: messages both ways, two raft
//! nodes electing a leader over it, a restarted peer, and the refusals (different shared
//! settings, a foreign CA, a certificate without the controller URI, a node that is not a
//! peer, an oversized frame). Every wait is on the inbound channel, bounded by `WAIT`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ordo_net::certs::{IssueSpec, PemPair, TestPki};
use ordo_net::identity::controller_uri;
use ordo_replica::transport::{
    ALPN_RAFT, Answer, Hello, HelloV1, Inbound, Transport, TransportConfig, TransportTls,
    read_frame, write_frame,
};
use ordo_replica::{CommittedKind, MESSAGE_FORMAT_VERSION, Message, Node, NodeConfig};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;

const CLUSTER: &str = "main";
/// Bound of every wait; a healthy run needs a small fraction of it.
const WAIT: Duration = Duration::from_secs(20);
/// Bound of one round of a loop that sends again until something arrives.
const ROUND: Duration = Duration::from_millis(100);
const ROUNDS_MAX: usize = 200;

fn pair(pki: &TestPki, name: &str, uris: &[String]) -> PemPair {
    pki.issue(name, &IssueSpec::local(uris.to_vec()))
        .expect("a certificate")
}

fn tls_of(pki: &TestPki, server: &PemPair, client: &PemPair) -> TransportTls {
    TransportTls {
        ca: pki.ca_bundle().expect("the CA"),
        server: server.to_material().expect("server material"),
        client: client.to_material().expect("client material"),
    }
}

/// A controller's TLS material: one certificate, server and client, with the controller URI.
fn controller_tls(pki: &TestPki, name: &str) -> TransportTls {
    let cert = pair(pki, name, &[controller_uri(CLUSTER)]);
    tls_of(pki, &cert, &cert)
}

/// What `ClusterConfig::shared_settings` gives for nodes at `addrs`.
fn settings(addrs: &BTreeMap<u64, SocketAddr>) -> Vec<(String, String)> {
    let mut out = vec![("cluster_id".to_owned(), CLUSTER.to_owned())];
    for (id, addr) in addrs {
        out.push((
            format!("cluster.nodes[id={id}]"),
            format!("Controller {addr} https://127.0.0.1:4443"),
        ));
    }
    out
}

fn config(
    id: u64,
    addrs: &BTreeMap<u64, SocketAddr>,
    shared_settings: Vec<(String, String)>,
) -> TransportConfig {
    TransportConfig {
        node_id: id,
        cluster_id: CLUSTER.to_owned(),
        peer_uri: controller_uri(CLUSTER),
        listen: addrs[&id],
        peers: addrs
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(peer, addr)| (*peer, addr.to_string()))
            .collect(),
        shared_settings,
        message_bytes_max: 1 << 20,
        connect_timeout_ms: 2000,
        queue_messages_max: 1024,
    }
}

struct Running {
    transport: Transport,
    rx: UnboundedReceiver<Inbound>,
}

async fn start(config: TransportConfig, tls: TransportTls, listener: TcpListener) -> Running {
    let (tx, rx) = unbounded_channel();
    let transport = Transport::start_with_listener(config, tls, tx, listener)
        .await
        .expect("the transport starts");
    Running { transport, rx }
}

/// Listeners on 127.0.0.1, port 0, for nodes `ids`.
async fn listeners(ids: &[u64]) -> (BTreeMap<u64, TcpListener>, BTreeMap<u64, SocketAddr>) {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for &id in ids {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        addrs.insert(id, l.local_addr().expect("its address"));
        listeners.insert(id, l);
    }
    (listeners, addrs)
}

/// Waits for the first inbound report `pick` takes, skipping the others.
async fn wait_for<T>(
    rx: &mut UnboundedReceiver<Inbound>,
    what: &str,
    mut pick: impl FnMut(&Inbound) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("no {what} within {WAIT:?}"),
            Ok(None) => panic!("the inbound channel closed while waiting for {what}"),
            Ok(Some(inbound)) => {
                if let Some(t) = pick(&inbound) {
                    return t;
                }
            }
        }
    }
}

async fn next_message(rx: &mut UnboundedReceiver<Inbound>) -> Message {
    wait_for(rx, "message", |i| match i {
        Inbound::Message(m) => Some(m.clone()),
        _ => None,
    })
    .await
}

async fn refusal(rx: &mut UnboundedReceiver<Inbound>, from: u64) -> String {
    wait_for(rx, "refusal", |i| match i {
        Inbound::Refused { peer, why } if *peer == from => Some(why.clone()),
        _ => None,
    })
    .await
}

/// Sends `make()` every round until `rx` hands out what `pick` takes.
async fn send_until<T>(
    sender: &Transport,
    make: impl Fn() -> Message,
    rx: &mut UnboundedReceiver<Inbound>,
    what: &str,
    mut pick: impl FnMut(&Inbound) -> Option<T>,
) -> T {
    for _ in 0..ROUNDS_MAX {
        sender.send(make());
        let round_end = Instant::now() + ROUND;
        while let Ok(Some(inbound)) = tokio::time::timeout_at(round_end, rx.recv()).await {
            if let Some(t) = pick(&inbound) {
                return t;
            }
        }
    }
    panic!("no {what} after {ROUNDS_MAX} rounds");
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A raft message in the wire format of `ordo_replica::wire` (heartbeat, or a snapshot
/// message with `snapshot_bytes` bytes); `term` tags it.
fn raft_message(from: u64, to: u64, term: u64, snapshot_bytes: Option<usize>) -> Message {
    let kind = if snapshot_bytes.is_some() { 4 } else { 5 };
    let mut b = vec![0, kind];
    varint(&mut b, to);
    varint(&mut b, from);
    varint(&mut b, term);
    // log_term, index, no entries, commit, commit_term
    b.extend([0, 0, 0, 0, 0]);
    match snapshot_bytes {
        None => b.push(0),
        Some(n) => {
            b.push(1);
            varint(&mut b, n as u64);
            b.extend(std::iter::repeat_n(7u8, n));
        }
    }
    // request_snapshot, reject, reject_hint, context, deprecated_priority, priority
    b.extend([0, 0, 0, 0, 0, 0]);
    Message::decode(&b).expect("a raft message")
}

fn heartbeat(from: u64, to: u64, term: u64) -> Message {
    raft_message(from, to, term, None)
}

#[tokio::test]
async fn process_transport_carries_messages_both_ways_between_three_nodes() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2, 3]).await;
    let shared = settings(&addrs);
    let mut nodes = BTreeMap::new();
    for id in [1, 2, 3] {
        let tls = controller_tls(&pki, &format!("ctl-{id}"));
        let l = ls.remove(&id).unwrap();
        nodes.insert(id, start(config(id, &addrs, shared.clone()), tls, l).await);
    }
    for (&id, n) in &nodes {
        assert_eq!(n.transport.local_addr(), addrs[&id]);
    }

    // Every node sends to every other.
    for a in [1u64, 2, 3] {
        for b in [1u64, 2, 3].into_iter().filter(|b| *b != a) {
            nodes[&a].transport.send(heartbeat(a, b, 10 * a + b));
        }
    }
    for b in [1u64, 2, 3] {
        let node = nodes.get_mut(&b).unwrap();
        let mut got = BTreeSet::new();
        while got.len() < 2 {
            let m = next_message(&mut node.rx).await;
            assert_eq!(m.to(), b);
            assert_eq!(m.term(), 10 * m.from() + b, "{m:?}");
            got.insert(m.from());
        }
        let expected: BTreeSet<u64> = [1, 2, 3].into_iter().filter(|a| *a != b).collect();
        assert_eq!(got, expected);
    }

    // Order is kept on a connection.
    for term in 100..300 {
        nodes[&1].transport.send(heartbeat(1, 2, term));
    }
    for term in 100..300 {
        let m = next_message(&mut nodes.get_mut(&2).unwrap().rx).await;
        assert_eq!((m.from(), m.term()), (1, term));
    }

    // A message that claims another sender on node 1's connection is dropped.
    nodes[&1].transport.send(heartbeat(3, 2, 400));
    nodes[&1].transport.send(heartbeat(1, 2, 401));
    let m = next_message(&mut nodes.get_mut(&2).unwrap().rx).await;
    assert_eq!((m.from(), m.term()), (1, 401));

    // A snapshot message is delivered and its delivery reported to the sender.
    let snapshot = raft_message(3, 1, 500, Some(100_000));
    nodes[&3].transport.send(snapshot.clone());
    let delivered = wait_for(
        &mut nodes.get_mut(&3).unwrap().rx,
        "snapshot report",
        |i| match i {
            Inbound::SnapshotSent { to: 1, delivered } => Some(*delivered),
            _ => None,
        },
    )
    .await;
    assert!(delivered);
    assert_eq!(
        next_message(&mut nodes.get_mut(&1).unwrap().rx).await,
        snapshot
    );

    for (_, n) in nodes {
        n.transport.shutdown().await;
    }
}

#[tokio::test]
async fn process_transport_lets_two_raft_nodes_elect_a_leader_and_replicate() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2]).await;
    let shared = settings(&addrs);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut raft = Vec::new();
    let mut running = Vec::new();
    for (i, id) in [1u64, 2].into_iter().enumerate() {
        let mut c = NodeConfig::new(id, [1, 2]);
        c.store.fsync = false;
        raft.push(Node::open(dirs[i].path(), c).expect("the node opens").0);
        let tls = controller_tls(&pki, &format!("ctl-{id}"));
        let l = ls.remove(&id).unwrap();
        running.push(start(config(id, &addrs, shared.clone()), tls, l).await);
    }
    raft[0].campaign().unwrap();
    let batch = b"a batch over the transport".to_vec();
    let mut proposed = false;
    let mut applied_on_2 = false;
    let deadline = Instant::now() + WAIT;
    while !applied_on_2 {
        for (node, run) in raft.iter_mut().zip(&running) {
            while node.has_update() {
                let update = node.update(&mut |m| run.transport.send(m)).unwrap();
                if node.id() == 2 {
                    applied_on_2 |= update
                        .committed
                        .iter()
                        .any(|c| c.kind == CommittedKind::Batch(batch.clone()));
                }
            }
        }
        if !proposed && raft[0].is_leader() {
            raft[0].propose(batch.clone()).unwrap();
            proposed = true;
            continue;
        }
        if applied_on_2 {
            break;
        }
        let (r1, r2) = running.split_at_mut(1);
        let (i, inbound) = tokio::select! {
            Some(x) = r1[0].rx.recv() => (0, x),
            Some(x) = r2[0].rx.recv() => (1, x),
            () = tokio::time::sleep_until(deadline) => panic!("no leader and replication within {WAIT:?}"),
        };
        match inbound {
            Inbound::Message(m) => raft[i].step(m).unwrap(),
            Inbound::Unreachable(p) => raft[i].report_unreachable(p),
            Inbound::SnapshotSent { to, delivered } => raft[i].report_snapshot(to, delivered),
            Inbound::Refused { peer, why } => panic!("node {peer} refused: {why}"),
        }
    }
    assert!(raft[0].is_leader());
    assert_eq!(raft[1].leader(), Some(1));
    for r in running {
        r.transport.shutdown().await;
    }
}

#[tokio::test]
async fn process_transport_reaches_a_peer_restarted_on_the_same_port() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2]).await;
    let shared = settings(&addrs);
    let tls2 = controller_tls(&pki, "ctl-2");
    let mut n1 = start(
        config(1, &addrs, shared.clone()),
        controller_tls(&pki, "ctl-1"),
        ls.remove(&1).unwrap(),
    )
    .await;
    let mut n2 = start(
        config(2, &addrs, shared.clone()),
        tls2.clone(),
        ls.remove(&2).unwrap(),
    )
    .await;
    n1.transport.send(heartbeat(1, 2, 1));
    assert_eq!(next_message(&mut n2.rx).await.term(), 1);

    n2.transport.shutdown().await;
    // Sending to the stopped peer fails and is reported.
    send_until(
        &n1.transport,
        || heartbeat(1, 2, 2),
        &mut n1.rx,
        "unreachable report",
        |i| matches!(i, Inbound::Unreachable(2)).then_some(()),
    )
    .await;

    let listener = TcpListener::bind(addrs[&2]).await.expect("the same port");
    let mut n2 = start(config(2, &addrs, shared.clone()), tls2, listener).await;
    let m = send_until(
        &n1.transport,
        || heartbeat(1, 2, 3),
        &mut n2.rx,
        "message after the restart",
        |i| match i {
            Inbound::Message(m) => Some(m.clone()),
            _ => None,
        },
    )
    .await;
    // Messages sent while it was down may come first: they waited in the queue for the
    // attempt that reached it.
    assert!(m.from() == 1 && (2..=3).contains(&m.term()), "{m:?}");
    n2.transport.send(heartbeat(2, 1, 4));
    let m = next_message(&mut n1.rx).await;
    assert_eq!((m.from(), m.term()), (2, 4));
    n1.transport.shutdown().await;
    n2.transport.shutdown().await;
}

#[tokio::test]
async fn process_transport_refuses_a_peer_whose_shared_settings_differ() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2]).await;
    let mut s1 = settings(&addrs);
    s1.push(("cluster.tick_ms".to_owned(), "25".to_owned()));
    let mut s2 = settings(&addrs);
    s2.push(("cluster.tick_ms".to_owned(), "40".to_owned()));
    let mut n1 = start(
        config(1, &addrs, s1),
        controller_tls(&pki, "ctl-1"),
        ls.remove(&1).unwrap(),
    )
    .await;
    let mut n2 = start(
        config(2, &addrs, s2),
        controller_tls(&pki, "ctl-2"),
        ls.remove(&2).unwrap(),
    )
    .await;
    n1.transport.send(heartbeat(1, 2, 1));
    n2.transport.send(heartbeat(2, 1, 1));
    for (rx, peer) in [(&mut n1.rx, 2), (&mut n2.rx, 1)] {
        let why = refusal(rx, peer).await;
        assert!(
            why.contains("cluster.tick_ms") && why.contains("\"25\"") && why.contains("\"40\""),
            "{why}"
        );
    }
    // Nothing got through: every report so far is a refusal or an unreachable peer.
    for rx in [&mut n1.rx, &mut n2.rx] {
        while let Ok(i) = rx.try_recv() {
            assert!(!matches!(i, Inbound::Message(_)), "{i:?}");
        }
    }
    n1.transport.shutdown().await;
    n2.transport.shutdown().await;
}

#[tokio::test]
async fn process_transport_refuses_a_client_certificate_from_a_foreign_ca() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2]).await;
    let shared = settings(&addrs);
    let server2 = pair(&pki, "ctl-2", &[controller_uri(CLUSTER)]);
    let foreign = pki
        .issue_foreign("ctl-2-client", &IssueSpec::local([controller_uri(CLUSTER)]))
        .unwrap();
    let mut n1 = start(
        config(1, &addrs, shared.clone()),
        controller_tls(&pki, "ctl-1"),
        ls.remove(&1).unwrap(),
    )
    .await;
    let mut n2 = start(
        config(2, &addrs, shared.clone()),
        tls_of(&pki, &server2, &foreign),
        ls.remove(&2).unwrap(),
    )
    .await;
    n2.transport.send(heartbeat(2, 1, 1));
    let why = refusal(&mut n2.rx, 1).await;
    assert!(why.contains("client certificate"), "{why}");
    // Node 1's own certificate is fine: 1 -> 2 works, 2 -> 1 never did.
    n1.transport.send(heartbeat(1, 2, 2));
    assert_eq!(next_message(&mut n2.rx).await.from(), 1);
    while let Ok(i) = n1.rx.try_recv() {
        assert!(!matches!(i, Inbound::Message(_)), "{i:?}");
    }
    n1.transport.shutdown().await;
    n2.transport.shutdown().await;
}

#[tokio::test]
async fn process_transport_refuses_a_server_certificate_from_a_foreign_ca() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2]).await;
    let shared = settings(&addrs);
    let client2 = pair(&pki, "ctl-2", &[controller_uri(CLUSTER)]);
    let foreign = pki
        .issue_foreign("ctl-2-server", &IssueSpec::local([controller_uri(CLUSTER)]))
        .unwrap();
    let mut n1 = start(
        config(1, &addrs, shared.clone()),
        controller_tls(&pki, "ctl-1"),
        ls.remove(&1).unwrap(),
    )
    .await;
    let mut n2 = start(
        config(2, &addrs, shared.clone()),
        tls_of(&pki, &foreign, &client2),
        ls.remove(&2).unwrap(),
    )
    .await;
    n1.transport.send(heartbeat(1, 2, 1));
    let why = refusal(&mut n1.rx, 2).await;
    assert!(why.contains("server certificate"), "{why}");
    // Node 2 reaches node 1, whose server certificate is fine.
    n2.transport.send(heartbeat(2, 1, 2));
    assert_eq!(next_message(&mut n1.rx).await.from(), 2);
    while let Ok(i) = n2.rx.try_recv() {
        assert!(!matches!(i, Inbound::Message(_)), "{i:?}");
    }
    n1.transport.shutdown().await;
    n2.transport.shutdown().await;
}

#[tokio::test]
async fn process_transport_refuses_a_client_certificate_without_the_controller_uri() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2]).await;
    let shared = settings(&addrs);
    let server2 = pair(&pki, "ctl-2", &[controller_uri(CLUSTER)]);
    let plain = pair(&pki, "ctl-2-client", &[]);
    let mut n1 = start(
        config(1, &addrs, shared.clone()),
        controller_tls(&pki, "ctl-1"),
        ls.remove(&1).unwrap(),
    )
    .await;
    let mut n2 = start(
        config(2, &addrs, shared.clone()),
        tls_of(&pki, &server2, &plain),
        ls.remove(&2).unwrap(),
    )
    .await;
    n2.transport.send(heartbeat(2, 1, 1));
    for (rx, peer) in [(&mut n1.rx, 2), (&mut n2.rx, 1)] {
        let why = refusal(rx, peer).await;
        assert!(why.contains("ordo:controller:main"), "{why}");
    }
    while let Ok(i) = n1.rx.try_recv() {
        assert!(!matches!(i, Inbound::Message(_)), "{i:?}");
    }
    n1.transport.shutdown().await;
    n2.transport.shutdown().await;
}

#[tokio::test]
async fn process_transport_refuses_a_node_that_is_not_a_peer() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2, 3]).await;
    let shared = settings(&addrs);
    let only_1_2: BTreeMap<u64, SocketAddr> = addrs
        .iter()
        .filter(|(id, _)| **id != 3)
        .map(|(k, v)| (*k, *v))
        .collect();
    let only_1_3: BTreeMap<u64, SocketAddr> = addrs
        .iter()
        .filter(|(id, _)| **id != 2)
        .map(|(k, v)| (*k, *v))
        .collect();
    let mut n1 = start(
        config(1, &only_1_2, shared.clone()),
        controller_tls(&pki, "ctl-1"),
        ls.remove(&1).unwrap(),
    )
    .await;
    let mut n3 = start(
        config(3, &only_1_3, shared.clone()),
        controller_tls(&pki, "ctl-3"),
        ls.remove(&3).unwrap(),
    )
    .await;
    n3.transport.send(heartbeat(3, 1, 1));
    for (rx, peer) in [(&mut n1.rx, 3), (&mut n3.rx, 1)] {
        let why = refusal(rx, peer).await;
        assert!(why.contains("node 3 is not a peer of node 1"), "{why}");
    }
    n1.transport.shutdown().await;
    n3.transport.shutdown().await;
}

/// A raw client that speaks the transport's protocol as node `from`.
async fn raw_client(
    pki: &TestPki,
    to: SocketAddr,
    hello: HelloV1,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cert = pair(pki, "raw", &[controller_uri(CLUSTER)]);
    let mut client = (*ordo_net::tls::client_config(
        &pki.ca_bundle().unwrap(),
        Some(&cert.to_material().unwrap()),
    )
    .unwrap())
    .clone();
    client.alpn_protocols = vec![ALPN_RAFT.to_vec()];
    let tcp = TcpStream::connect(to).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::from(to.ip()), tcp)
        .await
        .expect("TLS");
    let hello = postcard::to_stdvec(&Hello::V1(hello)).unwrap();
    write_frame(&mut tls, &hello).await.unwrap();
    tls.flush().await.unwrap();
    let answer = tokio::time::timeout(WAIT, read_frame(&mut tls, 1 << 16))
        .await
        .expect("an answer in time")
        .unwrap()
        .expect("an answer");
    assert_eq!(
        postcard::from_bytes::<Answer>(&answer).unwrap(),
        Answer::Accept
    );
    tls
}

#[tokio::test]
async fn process_transport_refuses_oversized_frames_and_messages() {
    let pki = TestPki::new(CLUSTER).unwrap();
    let (mut ls, addrs) = listeners(&[1, 2]).await;
    let shared = settings(&addrs);
    let mut c1 = config(1, &addrs, shared.clone());
    c1.message_bytes_max = 1024;
    let mut n1 = start(c1, controller_tls(&pki, "ctl-1"), ls.remove(&1).unwrap()).await;

    // A peer that sends a frame over message_bytes_max is cut off.
    let mut raw = raw_client(
        &pki,
        addrs[&1],
        HelloV1 {
            message_format_version: MESSAGE_FORMAT_VERSION,
            cluster_id: CLUSTER.to_owned(),
            from: 2,
            to: 1,
            shared_settings: shared.clone(),
        },
    )
    .await;
    write_frame(&mut raw, &heartbeat(2, 1, 1).encode())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    assert_eq!(next_message(&mut n1.rx).await.term(), 1);
    raw.write_all(&1025u32.to_be_bytes()).await.unwrap();
    raw.write_all(&[0u8; 1025]).await.unwrap();
    raw.flush().await.unwrap();
    let mut buf = [0u8; 16];
    match tokio::time::timeout(WAIT, raw.read(&mut buf)).await {
        Err(_) => panic!("the connection stayed open after an oversized frame"),
        Ok(Ok(n)) => assert_eq!(n, 0, "the listener never writes after its answer"),
        Ok(Err(_)) => {}
    }
    drop(raw);

    // The sending side does not send a message over the limit: a snapshot is reported
    // undelivered, and what follows goes through.
    let mut c2 = config(2, &addrs, shared.clone());
    c2.message_bytes_max = 1024;
    let mut n2 = start(c2, controller_tls(&pki, "ctl-2"), ls.remove(&2).unwrap()).await;
    n2.transport.send(raft_message(2, 1, 2, Some(2000)));
    n2.transport.send(heartbeat(2, 1, 3));
    let delivered = wait_for(&mut n2.rx, "snapshot report", |i| match i {
        Inbound::SnapshotSent { to: 1, delivered } => Some(*delivered),
        _ => None,
    })
    .await;
    assert!(!delivered);
    let m = next_message(&mut n1.rx).await;
    assert_eq!((m.from(), m.term()), (2, 3));
    n1.transport.shutdown().await;
    n2.transport.shutdown().await;
}
