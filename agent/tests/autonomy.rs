//! Autonomy: a scheduled order starts on time with no controller connected, its events wait
//! in the outbox and arrive exactly once on reconnect, and a release deletes segments; a full
//! outbox holds back new jobs but keeps every event.

mod common;

use common::{Agent, Ctl, Setup};
use ordo_model::order::{OrderEvent, OrderState};
use ordo_model::value::Vars;
use ordo_model::wire::{FromAgent, ToAgent};
use std::time::Duration;

const WORKFLOWS: &str = r#"
workflow: later
jobs:
  work:
    agent: a1
    script: |
      echo "ran at $(date +%s)"
      head -c 4000 /dev/zero | tr '\0' 'y'
steps:
  - run: work
  - run: work
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_scheduled_order_runs_while_disconnected_and_events_arrive_once() {
    let setup = Setup::new(
        "segment_bytes_max = 2048\nsnapshot_interval_records = 20\nlog_chunk_bytes_max = 128",
    );
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), WORKFLOWS);
    ctl.couple().await;
    let at = common::now_ms() + 1_500;
    ctl.add_order("s", "later", Vars::new(), Some(at)).await;
    ctl.until(3_000, "attached", |c| c.has("s", "Attached"))
        .await;
    assert_eq!(ctl.state("s"), Some(OrderState::Fresh));
    ctl.disconnect().await;
    let disconnected_at = common::now_ms();

    // No controller: the agent starts the order at its instant and runs both jobs.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let reconnected_at = common::now_ms();
    let coupled = ctl.couple().await.clone();
    assert!(coupled.meta.outbox_bytes > 8_000, "{:?}", coupled.meta);
    ctl.until(5_000, "s finished", |c| {
        c.state("s") == Some(OrderState::Finished)
    })
    .await;
    let names = ctl.names("s");
    let outputs = names.iter().filter(|n| *n == "Output").count();
    assert!(outputs >= 2 * 4000 / 128, "{outputs} output events");
    let compact: Vec<&String> = names.iter().filter(|n| *n != "Output").collect();
    assert_eq!(
        compact,
        [
            "Attached",
            "Started",
            "ProcessingStarted",
            "Processed",
            "Moved",
            "ProcessingStarted",
            "Processed",
            "Moved",
            "Detachable",
            "Detached"
        ]
    );
    let Some(OrderEvent::ProcessingStarted { at: started, .. }) =
        ctl.order_event("s", "ProcessingStarted")
    else {
        panic!("not started");
    };
    assert!(
        started.0 >= at,
        "started at {} before its instant {at}",
        started.0
    );
    assert!(started.0 > disconnected_at && started.0 < reconnected_at);
    assert_eq!(
        ctl.output("s").len(),
        2 * (4000 + "ran at 1234567890\n".len())
    );

    // Release everything: segments below the newest snapshot go.
    let before = common::segments(&setup.journal_dir());
    assert!(before.len() > 3, "{before:?}");
    assert_eq!(before[0], "00000000000000000001.seg");
    let until = ctl.last_id();
    ctl.send(&ToAgent::Release { until }).await;
    let dir = setup.journal_dir();
    assert!(
        common::eventually(3_000, || {
            common::segments(&dir)
                .first()
                .is_some_and(|first| first != "00000000000000000001.seg")
        })
        .await,
        "no segment deleted: {:?}",
        common::segments(&dir)
    );
    ctl.send(&ToAgent::GetMeta).await;
    ctl.until(3_000, "meta", |c| {
        c.replies.iter().any(|r| matches!(r, FromAgent::Meta(_)))
    })
    .await;
    let Some(FromAgent::Meta(meta)) = ctl.replies.pop_back() else {
        panic!("no meta");
    };
    assert!(meta.outbox_bytes < 1_000, "released: {}", meta.outbox_bytes);
    ctl.disconnect().await;
    agent.stop().await;

    // After a restart the released events are gone and nothing is sent twice.
    let agent = Agent::start(setup.config()).await;
    ctl.addr = agent.addr;
    let coupled = ctl.couple().await.clone();
    assert_eq!(coupled.attached_orders.len(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(ctl.ws.is_some());
    ctl.disconnect().await;
    agent.stop().await;
}

const OUTBOX: &str = r#"
workflow: loud
jobs:
  shout:
    agent: a1
    script: head -c 4000 /dev/zero | tr '\0' 'z'
steps:
  - run: shout
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_full_outbox_starts_no_new_job_and_keeps_events() {
    let setup =
        Setup::new("outbox_bytes_max = 4000\nlog_bytes_max = 4000\nlog_chunk_bytes_max = 512");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), OUTBOX);
    ctl.couple().await;
    ctl.add_order("first", "loud", Vars::new(), None).await;
    ctl.until(10_000, "first finished", |c| {
        c.state("first") == Some(OrderState::Finished)
    })
    .await;
    assert_eq!(ctl.output("first").len(), 4000, "every event is kept");

    // The outbox holds more than 4000 bytes now: the next job waits.
    ctl.add_order("second", "loud", Vars::new(), None).await;
    ctl.until(3_000, "second attached", |c| c.has("second", "Attached"))
        .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    ctl.send(&ToAgent::GetMeta).await;
    ctl.until(3_000, "meta", |c| {
        c.replies.iter().any(|r| matches!(r, FromAgent::Meta(_)))
    })
    .await;
    assert!(
        !ctl.has("second", "ProcessingStarted"),
        "{:?}",
        ctl.names("second")
    );
    let Some(FromAgent::Meta(meta)) = ctl.replies.pop_back() else {
        panic!("no meta");
    };
    assert!(meta.outbox_bytes >= 4000, "{}", meta.outbox_bytes);
    assert_eq!(meta.waiting_jobs, 1);
    assert_eq!(meta.running_processes, 0);

    // A release makes room: the job starts and finishes.
    let until = ctl.last_id();
    ctl.send(&ToAgent::Release { until }).await;
    ctl.until(10_000, "second finished", |c| {
        c.state("second") == Some(OrderState::Finished)
    })
    .await;
    assert_eq!(ctl.output("second").len(), 4000);
    ctl.disconnect().await;
    agent.stop().await;
}
