//! What the core keeps after a large round: the buffers of the round go back to
//! [`ROUND_SLOTS_KEPT`](crate::machine::ROUND_SLOTS_KEPT), and free memory is returned after [`TRIM_AFTER_EVENTS`] events.

use super::*;
use crate::machine::ROUND_SLOTS_KEPT;
use ordo_model::ids::OrderId;
use ordo_model::inventory::Agent;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};

/// Orders that wait for an answer on the controller: an add makes a few events, then nothing
/// moves them.
const PROMPT_WORKFLOW: &str = "workflow: p\nsteps:\n  - prompt: \"ok?\"\n";

struct NoLinks;

impl Links for NoLinks {
    fn ensure(&mut self, _: &Agent, _: &ordo_model::inventory::ClusterSettings, _: Option<&str>) {}
    fn send(&self, _: &AgentId, _: LinkMsg) {}
    fn reconnect_all(&mut self) {}
    fn stop_all(&mut self) {}
}

fn core(dir: &std::path::Path) -> Core<NoLinks> {
    let opened = ordo_journal::Journal::open(ordo_journal::Config::new(dir)).unwrap();
    let state = crate::recover(&opened).unwrap();
    Core::new(
        opened.journal,
        state,
        NoLinks,
        Box::new(|| TimeMs(1_000)),
        u64::MAX,
        u64::MAX,
        u64::MAX,
    )
}

fn deploy(core: &mut Core<NoLinks>) {
    let inventory = parse_inventory(
        &[SourceFile::new("p.yaml", PROMPT_WORKFLOW)],
        &Limits::default(),
    )
    .unwrap();
    let (reply, _) = oneshot::channel();
    core.handle(Input::Deploy {
        inventory: Box::new(inventory),
        reply,
    });
    core.flush();
}

/// Adds `n` orders in one round, as one request of `n` orders would.
fn add_in_one_round(core: &mut Core<NoLinks>, first: usize, n: usize) {
    for i in first..first + n {
        let (reply, _) = oneshot::channel();
        core.handle(Input::Command {
            command: Command::Add {
                id: OrderId::new(format!("o-{i}")).unwrap(),
                workflow: ordo_model::ids::WorkflowName::new("p").unwrap(),
                vars: Default::default(),
                scheduled_for: None,
            },
            reply,
        });
    }
    core.flush();
}

#[tokio::test]
async fn a_large_round_gives_its_buffers_back_once_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = core(dir.path());
    deploy(&mut core);
    let before = core.since_trim;
    let orders = ROUND_SLOTS_KEPT * 2;
    add_in_one_round(&mut core, 0, orders);
    let round = core.since_trim - before;
    assert!(
        round > (ROUND_SLOTS_KEPT * 2) as u64,
        "the round must be larger than what is kept: {round} events"
    );
    assert_eq!(core.machine.state().world.orders.len(), orders);
    let (batch, queue, _) = core.machine.round_capacities();
    assert!(
        batch <= ROUND_SLOTS_KEPT,
        "the batch kept {batch} slots after a round of {round} events"
    );
    assert!(
        queue <= ROUND_SLOTS_KEPT,
        "the order queue kept {queue} slots after {orders} orders were stepped"
    );

    // A restart steps every held order at once: its queue is given back too.
    let last = core.machine.state().last_event_id;
    core.journal
        .durable_id_watch()
        .wait_for(|durable| *durable >= last)
        .await
        .unwrap();
    drop(core);
    let mut restarted = self::core(dir.path());
    assert!(restarted.machine.round_capacities().2 >= orders);
    restarted.flush();
    assert_eq!(restarted.machine.state().world.orders.len(), orders);
    assert!(restarted.machine.round_capacities().1 <= ROUND_SLOTS_KEPT);
}

#[tokio::test]
async fn free_memory_is_returned_after_enough_events_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = core(dir.path());
    deploy(&mut core);
    add_in_one_round(&mut core, 0, 10);
    assert!(core.since_trim < TRIM_AFTER_EVENTS);
    assert!(
        !core.return_free_memory(),
        "a quiet controller is left alone"
    );

    let mut added = 10;
    while core.since_trim < TRIM_AFTER_EVENTS {
        add_in_one_round(&mut core, added, 1000);
        added += 1000;
    }
    assert!(core.return_free_memory());
    assert_eq!(core.since_trim, 0);
    assert!(
        !core.return_free_memory(),
        "once per TRIM_AFTER_EVENTS events"
    );
}
