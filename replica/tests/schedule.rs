//! Random schedules of ticks, proposals, cut links, restarts and snapshots over three nodes:
//! after every step the entries the nodes applied agree on their common prefix, no term
//! has two leaders, no batch is applied twice; once the faults are healed the nodes elect a
//! leader, commit, and end with identical sequences.
//!
//! Election timeouts are fixed (no randomness inside raft), and which nodes tick is part of
//! the schedule, so a case replays the same way.

mod common;

use std::collections::BTreeSet;

use common::{Sim, batch};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// The nodes in the mask (bit `i` for node `i + 1`) tick `times` times.
    Tick {
        mask: u8,
        times: u8,
    },
    /// The leader of the highest term (if any) takes `count` batches.
    Propose {
        count: u8,
    },
    /// Both directions between two nodes drop everything.
    Cut(u64, u64),
    /// Messages from the first node to the second are dropped.
    CutOneWay(u64, u64),
    Isolate(u64),
    Heal,
    /// The node stops (or, when down, starts again from its directory).
    StopOrStart(u64),
    /// The node stops and starts again from its directory.
    Restart(u64),
    /// The node snapshots its application and compacts its log.
    Snapshot(u64),
}

fn node() -> impl Strategy<Value = u64> {
    1..=3u64
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1..8u8, 1..12u8).prop_map(|(mask, times)| Op::Tick { mask, times }),
        4 => (1..10u8).prop_map(|count| Op::Propose { count }),
        1 => (node(), node()).prop_filter("two nodes", |(a, b)| a != b).prop_map(|(a, b)| Op::Cut(a, b)),
        1 => (node(), node()).prop_filter("two nodes", |(a, b)| a != b).prop_map(|(a, b)| Op::CutOneWay(a, b)),
        1 => node().prop_map(Op::Isolate),
        2 => Just(Op::Heal),
        1 => node().prop_map(Op::StopOrStart),
        1 => node().prop_map(Op::Restart),
        2 => node().prop_map(Op::Snapshot),
    ]
}

fn check(sim: &Sim) {
    sim.assert_same_prefixes();
    for (id, peer) in &sim.peers {
        let batches = peer.app.batches();
        let unique: BTreeSet<&Vec<u8>> = batches.iter().collect();
        assert_eq!(
            unique.len(),
            batches.len(),
            "node {id} applied a batch twice"
        );
    }
}

fn run(ops: &[Op]) {
    let mut sim = Sim::new(3, |c| {
        c.election_ticks = 5;
        c.election_ticks_max = 6;
        c.heartbeat_ticks = 1;
        c.compact_keep_entries = 2;
    });
    let mut next_batch = 0u64;
    for op in ops {
        match *op {
            Op::Tick { mask, times } => {
                let ids: Vec<u64> = (1..=3).filter(|i| mask & (1 << (i - 1)) != 0).collect();
                for _ in 0..times {
                    sim.tick_some(&ids);
                }
            }
            Op::Propose { count } => {
                if let Some(leader) = sim.leader() {
                    for _ in 0..count {
                        match sim.propose(leader, batch(next_batch)) {
                            Ok(_) => next_batch += 1,
                            Err(e) => assert!(!e.is_fatal(), "{e}"),
                        }
                    }
                    sim.settle();
                }
            }
            Op::Cut(a, b) => sim.cut_between(a, b),
            Op::CutOneWay(a, b) => {
                sim.cut.insert((a, b));
            }
            Op::Isolate(n) => sim.isolate(n),
            Op::Heal => sim.heal(),
            Op::StopOrStart(n) => {
                if sim.is_up(n) {
                    sim.stop(n);
                } else {
                    sim.start(n);
                }
            }
            Op::Restart(n) => {
                if sim.is_up(n) {
                    sim.stop(n);
                }
                sim.start(n);
            }
            Op::Snapshot(n) => {
                if sim.is_up(n) {
                    sim.snapshot(n);
                }
            }
        }
        sim.settle();
        check(&sim);
    }

    // Heal everything and tick the nodes at different rates (fixed timeouts on lockstep
    // ticks could split the vote forever), until a leader's final batch is applied
    // everywhere. A leader may lose its term before its batch commits; the next one
    // proposes its own.
    sim.heal();
    for id in 1..=3 {
        if !sim.is_up(id) {
            sim.start(id);
        }
    }
    let mut proposed_in = None;
    let mut converged = false;
    for round in 0..3000u64 {
        let applied_final = |id: u64| {
            sim.peer(id)
                .app
                .batches()
                .iter()
                .any(|b| b.starts_with(b"final"))
        };
        let last = sim.peer(1).app.last_index();
        if (1..=3).all(|id| applied_final(id) && sim.peer(id).app.last_index() == last) {
            converged = true;
            break;
        }
        if let Some(leader) = sim.leader()
            && (1..=3).all(|id| sim.peer(id).node.leader() == Some(leader))
        {
            let term = sim.peer(leader).node.status().term;
            if proposed_in != Some(term) {
                let final_batch = format!("final {term}").into_bytes();
                match sim.propose(leader, final_batch) {
                    Ok(_) => proposed_in = Some(term),
                    Err(e) => assert!(!e.is_fatal(), "{e}"),
                }
            }
        }
        let ids: Vec<u64> = (1..=3).filter(|&i| round % (i + 1) != 0).collect();
        sim.tick_some(&ids);
    }
    assert!(
        converged,
        "once healed, a final batch is applied everywhere"
    );
    check(&sim);
    let reference = &sim.peer(1).app.applied;
    for id in 2..=3 {
        assert_eq!(
            &sim.peer(id).app.applied,
            reference,
            "node {id} ends equal to node 1"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn committed_prefixes_stay_identical_under_random_faults(ops in proptest::collection::vec(op(), 1..100)) {
        run(&ops);
    }
}

#[test]
fn a_long_fixed_schedule_with_every_fault() {
    let mut ops = Vec::new();
    for k in 0..20u8 {
        let n = u64::from(k % 3) + 1;
        ops.push(Op::Tick { mask: 7, times: 8 });
        ops.push(Op::Propose { count: 5 });
        ops.push(Op::Tick { mask: 7, times: 2 });
        match k % 5 {
            0 => ops.push(Op::Isolate(n)),
            1 => ops.push(Op::Snapshot(n % 3 + 1)),
            2 => ops.push(Op::Restart(n)),
            3 => ops.push(Op::CutOneWay(n, n % 3 + 1)),
            _ => ops.push(Op::Heal),
        }
    }
    run(&ops);
}
