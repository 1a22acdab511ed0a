//! Three raft nodes in one process over an in-memory router: election, replication, loss
//! of the leader, restart from disk, catch-up by snapshot, truncation of a deposed leader's
//! entries. No network, no clock: time is ticks, every wait is bounded by a tick count.

mod common;

use common::{Sim, batch};
use ordo_journal::Journal;
use ordo_replica::{LOG_DIR_NAME, Membership, MembershipChange, ReplicaError, Role};

/// Reads a stopped node's journal: `(raft index, record bytes)` of every entry.
fn journal_records(sim: &Sim, id: u64) -> Vec<(u64, Vec<u8>)> {
    let journal = Journal::open(ordo_journal::Config::new(sim.dir(id).join(LOG_DIR_NAME)))
        .expect("the journal opens")
        .journal;
    journal
        .read_after(0)
        .expect("the journal reads")
        .map(|r| {
            let r = r.expect("a record");
            (r.id, r.data)
        })
        .collect()
}

/// Proposes batches `range` on the leader, a few per tick, and waits until all are applied
/// everywhere up.
fn replicate(sim: &mut Sim, leader: u64, range: std::ops::Range<u64>) -> u64 {
    let mut last = 0;
    let mut next = range.start;
    for _ in 0..10_000 {
        if next >= range.end {
            break;
        }
        for _ in 0..25 {
            if next >= range.end {
                break;
            }
            last = sim
                .propose(leader, batch(next))
                .unwrap_or_else(|e| panic!("proposal {next}: {e}"))
                .index;
            next += 1;
        }
        sim.settle();
    }
    assert_eq!(next, range.end, "every batch was proposed");
    assert!(
        sim.applied_everywhere(last, 200),
        "batches up to index {last} applied everywhere"
    );
    last
}

#[test]
fn three_nodes_elect_a_leader_and_apply_identical_sequences() {
    let mut sim = Sim::new(3, |_| {});
    let leader = sim.elect(500);
    assert!(sim.leaders.len() <= 3);
    replicate(&mut sim, leader, 0..1000);
    sim.assert_same_prefixes();
    let expected: Vec<Vec<u8>> = (0..1000).map(batch).collect();
    for id in 1..=3 {
        let app = &sim.peer(id).app;
        assert_eq!(
            app.batches(),
            expected,
            "node {id} applied every batch once, in order"
        );
        assert_eq!(app.applied, sim.peer(leader).app.applied);
    }
    // Followers refuse proposals and name the leader.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    match sim.propose(follower, b"x".to_vec()) {
        Err(ReplicaError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader),
        other => panic!("a follower took a proposal: {other:?}"),
    }
}

#[test]
fn a_new_leader_is_elected_and_commits_after_the_leader_is_lost() {
    let mut sim = Sim::new(3, |_| {});
    let old = sim.elect(500);
    let old_term = sim.peer(old).node.status().term;
    replicate(&mut sim, old, 0..50);
    sim.stop(old);
    let new = sim.elect(500);
    assert_ne!(new, old);
    assert!(sim.peer(new).node.status().term > old_term);
    let last = replicate(&mut sim, new, 50..100);
    sim.assert_same_prefixes();
    for id in sim.peers.keys() {
        assert_eq!(
            sim.peer(*id).app.batches(),
            (0..100).map(batch).collect::<Vec<_>>()
        );
    }
    // The old leader comes back as a follower and catches up.
    sim.start(old);
    assert!(sim.applied_everywhere(last, 300));
    assert_eq!(sim.peer(old).node.role(), Role::Follower);
    sim.assert_same_prefixes();
}

#[test]
fn a_restarted_node_recovers_its_log_and_hard_state_and_catches_up() {
    let mut sim = Sim::new(3, |c| c.store.fsync = true);
    let leader = sim.elect(500);
    replicate(&mut sim, leader, 0..100);
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let before = sim.peer(follower).node.status();
    let stopped = sim.stop(follower);
    let hard_before = stopped.node.store().hard_state();
    drop(stopped);

    let last = replicate(&mut sim, leader, 100..200);
    sim.start(follower);
    let restored = &sim.peer(follower).restored;
    assert_eq!(restored.last_index, before.last_index, "the log is back");
    assert_eq!(restored.hard_state.term, hard_before.term);
    assert_eq!(restored.hard_state.vote, hard_before.vote);
    assert!(restored.hard_state.commit <= before.commit);
    assert!(
        sim.applied_everywhere(last, 300),
        "the restarted node caught up"
    );
    sim.assert_same_prefixes();
    assert_eq!(
        sim.peer(follower).app.applied,
        sim.peer(leader).app.applied,
        "it re-applied from its own log and the leader's"
    );
}

#[test]
fn a_lagging_node_whose_entries_were_compacted_catches_up_by_snapshot() {
    let mut sim = Sim::new(3, |c| c.compact_keep_entries = 10);
    let leader = sim.elect(500);
    replicate(&mut sim, leader, 0..20);
    let lagging = (1..=3).find(|&id| id != leader).unwrap();
    sim.isolate(lagging);
    let lagging_last = sim.peer(lagging).node.status().last_index;

    let mut last = 0;
    for n in 20..300 {
        last = sim.propose(leader, batch(n)).unwrap().index;
        if n % 50 == 0 {
            sim.tick();
        }
    }
    sim.settle();
    let others: Vec<u64> = (1..=3).filter(|&id| id != lagging).collect();
    assert!(sim.run_until(100, |s| {
        others.iter().all(|&id| s.peer(id).app.last_index() >= last)
    }));
    for &id in &others {
        sim.snapshot(id);
        let store = sim.peer(id).node.store();
        assert!(
            store.compacted_index() > lagging_last + 1,
            "the entries it lacks are gone"
        );
    }

    sim.heal();
    assert!(
        sim.applied_everywhere(last, 300),
        "the lagging node caught up"
    );
    assert_eq!(
        sim.peer(lagging).app.snapshots_installed,
        1,
        "by a snapshot"
    );
    assert!(sim.peer(lagging).node.store().snapshot_point().0 > lagging_last);
    sim.assert_same_prefixes();
    assert_eq!(sim.peer(lagging).app.applied, sim.peer(leader).app.applied);

    // It restarts from the installed snapshot and its log.
    sim.stop(lagging);
    sim.start(lagging);
    assert!(sim.peer(lagging).restored.snapshot.is_some());
    let last = replicate(&mut sim, leader, 300..310);
    assert!(sim.applied_everywhere(last, 300));
    sim.assert_same_prefixes();
}

#[test]
fn a_deposed_leaders_uncommitted_entries_are_truncated() {
    let mut sim = Sim::new(3, |_| {});
    let old = sim.elect(500);
    replicate(&mut sim, old, 0..10);
    sim.isolate(old);
    // Appended to the old leader's log (durable there), never committed.
    for n in 1000..1005 {
        sim.propose(old, batch(n))
            .expect("the old leader still takes proposals");
    }
    sim.settle();
    let old_last = sim.peer(old).node.status().last_index;
    let old_store = sim.peer(old).node.store();
    assert_eq!(
        old_store.durable_last_index(),
        old_last,
        "the isolated entries are durable"
    );
    assert!(
        old_store.hard_state().commit < old_last,
        "and not committed"
    );

    let others: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    let new = sim.elect_among(&others, 500);
    let last = {
        let mut last = 0;
        for n in 10..20 {
            last = sim.propose(new, batch(n)).unwrap().index;
        }
        assert!(sim.run_until(100, |s| {
            others.iter().all(|&id| s.peer(id).app.last_index() >= last)
        }));
        last
    };
    // Check-quorum: the isolated leader steps down on its own within two election timeouts
    // (raft checks the quorum once per election timeout).
    assert!(sim.run_until(2 * 10, |s| s.peer(old).node.role() != Role::Leader));
    assert!(sim.peer(old).node.status().last_index >= old_last);

    sim.heal();
    assert!(sim.applied_everywhere(last, 300));
    sim.assert_same_prefixes();
    for id in 1..=3 {
        let batches = sim.peer(id).app.batches();
        assert_eq!(batches, (0..20).map(batch).collect::<Vec<_>>(), "node {id}");
    }
    // The journals themselves hold the same entries: the conflicting ones were cut.
    for id in 1..=3 {
        sim.stop(id);
    }
    let reference = journal_records(&sim, new);
    assert!(reference.last().is_some_and(|r| r.0 >= last));
    for id in 1..=3 {
        assert_eq!(journal_records(&sim, id), reference, "node {id}'s journal");
    }
}

#[test]
fn a_node_added_to_the_cluster_joins_by_snapshot_and_votes() {
    let mut sim = Sim::new(3, |_| {});
    let leader = sim.elect(500);
    replicate(&mut sim, leader, 0..50);
    sim.add_node(4);
    let change = sim
        .peer_mut(leader)
        .node
        .propose_membership_change(MembershipChange::AddVoter(4))
        .expect("the leader takes the change");
    assert!(
        sim.applied_everywhere(change.index, 300),
        "node 4 caught up"
    );
    assert_eq!(
        sim.peer(4).app.snapshots_installed,
        1,
        "by a snapshot naming it"
    );
    for id in 1..=4 {
        assert_eq!(
            sim.peer(id).node.membership(),
            &Membership::voters([1, 2, 3, 4])
        );
    }
    // A second change waits for the first to be applied; this one is.
    let last = replicate(&mut sim, leader, 50..100);
    sim.assert_same_prefixes();
    assert_eq!(sim.peer(4).app.applied, sim.peer(leader).app.applied);
    // Node 4 counts in the quorum: with one old follower down, a commit needs three acks of
    // four, node 4's among them.
    let down: Vec<u64> = (1..=3).filter(|&id| id != leader).take(1).collect();
    for &id in &down {
        sim.stop(id);
    }
    let last = replicate(&mut sim, leader, 100..110).max(last);
    assert!(sim.applied_everywhere(last, 300));
    sim.assert_same_prefixes();
}
