//! kill -9 of a real agent process in the middle of jobs, and its restart: surviving process
//! groups are killed, a restartable job runs again (attempt 2) and finishes, any other job's
//! order fails with `Disrupted(ProcessLost)`; no event is lost or repeated; work directories
//! of orders no longer on the agent are removed. A graceful stop withdraws the starts no job
//! worker has taken: they run after the restart.

mod common;

use common::{Agent, Ctl, Setup};
use ordo_model::order::{OrderEvent, OrderState, Outcome};
use ordo_model::value::Vars;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKFLOWS: &str = r#"
workflow: lost
jobs:
  wait: { agent: a1, script: "sleep 30" }
steps:
  - run: wait
---
workflow: again
jobs:
  twice:
    agent: a1
    restartable: true
    script: |
      mkdir -p "$ORDO_WORK_DIR"
      if [ "$ORDO_ATTEMPT" = 1 ]; then sleep 30; fi
      echo "done on attempt $ORDO_ATTEMPT"
steps:
  - run: twice
"#;

fn start(setup: &Setup) -> Child {
    let log = std::fs::File::create(setup.dir.path().join("agent.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ordo-agent"))
        .arg("--config")
        .arg(setup.config_path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start ordo-agent")
}

/// Connects until the agent accepts, at most 10 s.
async fn coupled(ctl: &mut Ctl, setup: &Setup) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = common::ws_url(ctl.addr);
        if ordo_net::client::connect_ws(&url, setup.controller_tls(), 1 << 20, 1_000)
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent does not listen: {}",
            log(setup)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctl.couple().await;
}

fn log(setup: &Setup) -> String {
    std::fs::read_to_string(setup.dir.path().join("agent.log")).unwrap_or_default()
}

async fn pgid_of(ctl: &Ctl, order: &str) -> u32 {
    common::job_pgid(ctl.run_id.unwrap(), order, 1, 5_000)
        .await
        .unwrap_or_else(|| panic!("no process of {order}'s job"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_kill9_mid_job_and_restart() {
    let setup = Setup::new("");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = std::fs::read_to_string(setup.config_path())
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace("journal_fsync = false", "journal_fsync = true");
    std::fs::write(setup.config_path(), text).unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();

    let mut agent = start(&setup);
    let mut ctl = Ctl::new(addr, setup.controller_tls(), WORKFLOWS);
    coupled(&mut ctl, &setup).await;
    ctl.add_order("lost", "lost", Vars::new(), None).await;
    ctl.add_order("again", "again", Vars::new(), None).await;
    ctl.until(10_000, "both jobs started", |c| {
        c.has("lost", "ProcessingStarted") && c.has("again", "ProcessingStarted")
    })
    .await;
    let (lost_pgid, again_pgid) = (pgid_of(&ctl, "lost").await, pgid_of(&ctl, "again").await);
    let run_id = ctl.run_id.unwrap();

    // A process that carries this run's marker but has no Process record (as if the agent
    // died right after spawning it): the restart must find it by its environment.
    let mut ghost = Command::new("sleep");
    ghost
        .arg("30")
        .env(
            "ORDO_RUN",
            ordo_agent::survivors::marker(run_id, &"ghost".parse_order(), 1),
        )
        .process_group(0);
    let mut ghost = ghost.spawn().unwrap();
    let ghost_pid = ghost.id();

    // A work directory of an order this agent does not hold (left by a crash), and one
    // the job of a held order made.
    let work = setup.dir.path().join("data").join("work");
    for _ in 0..1000 {
        if work.join("again").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        work.join("again").exists(),
        "the job made its work directory"
    );
    std::fs::create_dir_all(work.join("gone").join("sub")).unwrap();
    std::fs::write(work.join("gone").join("sub").join("file"), b"x").unwrap();

    ctl.disconnect().await;
    agent.kill().unwrap();
    agent.wait().unwrap();
    // The jobs outlive the agent: they run in their own process groups.
    assert!(common::group_alive(lost_pgid));
    assert!(common::group_alive(again_pgid));

    let mut agent = start(&setup);
    coupled(&mut ctl, &setup).await;
    assert!(
        !work.join("gone").exists(),
        "the stale work directory is left"
    );
    assert!(
        work.join("again").exists(),
        "the work directory of a held order is gone"
    );
    assert!(
        !common::group_alive(lost_pgid),
        "the old group of `lost` survived"
    );
    assert!(
        common::eventually(2_000, || !common::group_alive(again_pgid)).await,
        "the old group of `again` survived"
    );
    assert!(
        common::eventually(2_000, || matches!(ghost.try_wait(), Ok(Some(_)))).await,
        "the marked process {ghost_pid} survived"
    );

    ctl.until(15_000, "both orders ended", |c| {
        c.state("lost") == Some(OrderState::Failed)
            && c.state("again") == Some(OrderState::Finished)
    })
    .await;
    assert_eq!(
        ctl.names("lost"),
        [
            "Attached",
            "ProcessingStarted",
            "Processed",
            "Detachable",
            "Detached"
        ]
    );
    assert!(matches!(
        ctl.order_event("lost", "Processed"),
        Some(OrderEvent::Processed {
            outcome: Outcome::Disrupted(_)
        })
    ));
    assert_eq!(
        ctl.names("again"),
        [
            "Attached",
            "ProcessingStarted",
            "Processed",
            "Restarted",
            "ProcessingStarted",
            "Output",
            "Processed",
            "Moved",
            "Detachable",
            "Detached"
        ]
    );
    assert_eq!(ctl.output("again"), b"done on attempt 2\n");
    assert!(matches!(
        ctl.order_event("again", "Restarted"),
        Some(OrderEvent::Restarted { attempt: 2 })
    ));
    // The same run: the controller's position was valid, nothing was sent twice (checked on
    // every frame by the test controller).
    assert_eq!(ctl.run_id, Some(run_id));
    // The orders left the agent: their work directories went with them.
    assert!(
        common::eventually(2_000, || !work.join("lost").exists()
            && !work.join("again").exists())
        .await,
        "work directories of orders that left: {:?}",
        std::fs::read_dir(&work).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );

    ctl.disconnect().await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no graceful stop: {}",
            log(&setup)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}: {}", log(&setup));
    let _ = ghost.kill();
}

trait ParseOrder {
    fn parse_order(&self) -> ordo_model::ids::OrderId;
}

impl ParseOrder for str {
    fn parse_order(&self) -> ordo_model::ids::OrderId {
        ordo_model::ids::OrderId::new(self).unwrap()
    }
}

const QUEUED: &str = r#"
workflow: long
jobs:
  wait: { agent: a1, script: "sleep 30" }
steps:
  - run: wait
---
workflow: quick
jobs:
  hello: { agent: a1, script: "echo hello" }
steps:
  - run: hello
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_stop_withdraws_queued_starts_and_loses_running_jobs() {
    // One process slot: the quick job's start is journaled and waits for the slot.
    let setup = Setup::new("processes_max = 1");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), QUEUED);
    ctl.couple().await;
    ctl.add_order("running", "long", Vars::new(), None).await;
    ctl.until(5_000, "running started", |c| {
        c.has("running", "ProcessingStarted")
    })
    .await;
    let pgid = pgid_of(&ctl, "running").await;
    ctl.add_order("queued", "quick", Vars::new(), None).await;
    ctl.until(5_000, "queued started", |c| {
        c.has("queued", "ProcessingStarted")
    })
    .await;
    ctl.disconnect().await;
    agent.stop().await;
    assert!(
        common::eventually(2_000, || !common::group_alive(pgid)).await,
        "the running job outlived the stop"
    );

    let agent = Agent::start(setup.config()).await;
    ctl.addr = agent.addr;
    ctl.couple().await;
    ctl.until(10_000, "both orders ended", |c| {
        c.state("running") == Some(OrderState::Failed)
            && c.state("queued") == Some(OrderState::Finished)
    })
    .await;
    assert!(matches!(
        ctl.order_event("running", "Processed"),
        Some(OrderEvent::Processed {
            outcome: Outcome::Disrupted(_)
        })
    ));
    // The queued job never ran before the stop: it ran once, after the restart.
    assert_eq!(
        ctl.names("queued"),
        [
            "Attached",
            "ProcessingStarted",
            "ProcessingWithdrawn",
            "ProcessingStarted",
            "Output",
            "Processed",
            "Moved",
            "Detachable",
            "Detached"
        ]
    );
    assert_eq!(ctl.output("queued"), b"hello\n");
    ctl.disconnect().await;
    agent.stop().await;
}
