//! kill -9 of a real agent process in the middle of jobs, and its restart: surviving process
//! groups are killed, a restartable job runs again (attempt 2) and finishes, any other job's
//! order fails with `Disrupted(ProcessLost)`; no event is lost or repeated.

mod common;

use common::{Ctl, Setup};
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

    ctl.disconnect().await;
    agent.kill().unwrap();
    agent.wait().unwrap();
    // The jobs outlive the agent: they run in their own process groups.
    assert!(common::group_alive(lost_pgid));
    assert!(common::group_alive(again_pgid));

    let mut agent = start(&setup);
    coupled(&mut ctl, &setup).await;
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
