//! Property tests of the order state machine on random workflows and random inputs:
//! - every event applies (no `ApplyError`), on the controller and on the agents;
//! - every side reaches its fixpoint after every input (`step` then gives no events) within
//!   a bounded number of rounds;
//! - folding each journal (through postcard) from the empty world gives the live world
//!   (replay = live), also after controller and agent restarts;
//! - the controller's copy of an order an agent holds equals the agent's once every event
//!   is forwarded; lock limits hold.

use ordo_model::inventory::{CycleRepeat, Instruction};
use ordo_model::order::Command;
use ordo_model::order::{OrderEvent, STEP_EVENTS_MAX, Settler, Side, World, command, deploy, step};
use ordo_model::testkit::generate::{apply_input, input, instruction, inventory, name};
use ordo_model::testkit::sim::Sim;
use ordo_model::time::{DurationMs, TimeMs};
use ordo_model::value::Vars;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replay_equals_live(
        steps in prop::collection::vec(instruction(), 1..5),
        inputs in prop::collection::vec(input(), 1..80),
    ) {
        let mut sim = Sim::new(&inventory(steps));
        sim.verbose = false;
        for input in &inputs {
            apply_input(&mut sim, input);
        }
        sim.set_connected(&name("a1"), true);
        sim.set_connected(&name("a2"), true);
        sim.check_replay();
    }
}

/// A cycle of a million runs without a job: one `step` emits at most `STEP_EVENTS_MAX`
/// events, and a bounded settler run stops and says it has not reached the fixpoint.
#[test]
fn a_long_cycle_is_stepped_in_bounded_pieces() {
    let steps = vec![Instruction::Cycle {
        repeat: CycleRepeat::Times(1_000_000),
        steps: vec![Instruction::Sleep {
            duration: DurationMs(0),
        }],
    }];
    let mut world = World::new(Side::Controller);
    for e in deploy(&world, &inventory(steps)) {
        world.apply(&e).expect("deploys");
    }
    let accepted = command(
        &world,
        Command::Add {
            id: name("o"),
            workflow: name("main"),
            vars: Vars::new(),
            scheduled_for: None,
        },
        TimeMs(0),
        &ordo_model::order::OrderLimits::default(),
    )
    .expect("adds");
    for e in &accepted.events {
        world.apply(e).expect("applies");
    }
    let events = step(&world, &name("o"), TimeMs(0));
    assert_eq!(events.len(), STEP_EVENTS_MAX);
    let mut settler = Settler::new();
    settler.push(name("o"));
    let mut out = Vec::new();
    let done = settler.run(&mut world, TimeMs(0), 10_000, &mut out);
    assert!(!done, "a million runs do not fit in 10 000 events");
    assert!(out.len() < 10_000 + STEP_EVENTS_MAX);
    let runs = out
        .iter()
        .filter(|e| {
            matches!(
                e,
                ordo_model::order::KeyedEvent::Order {
                    event: OrderEvent::CycleContinued { .. },
                    ..
                }
            )
        })
        .count();
    assert!(runs > 1000, "the cycle advanced {runs} runs");
}
