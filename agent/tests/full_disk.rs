//! The agent on a full file system: its journal on a small tmpfs (mounting needs root; without
//! it the test says so and passes). A running job goes on and its events are held in memory
//! (beyond `pending_events_bytes_max` too); `/health` says why; a command is refused with the cause; a `Couple` is answered at once
//! from what is durable, or refused when it would need a record; once space returns the held
//! events arrive in order, with increasing ids and nothing missing, and the agent asks to be
//! coupled again.

mod common;

use common::{Agent, Ctl, Setup};
use ordo_model::ids::{AgentId, OrderId};
use ordo_model::order::{AgentCommand, Holder, OrderState};
use ordo_model::value::Vars;
use ordo_model::wire::FromAgent;
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

const LINES: usize = 64;

/// A tmpfs on a directory, unmounted (lazily if busy) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs on {} (needs root or CAP_SYS_ADMIN): {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes `file` until the file system is full.
fn fill(file: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(file).expect("filler");
    for size in [64 << 10, 512] {
        let chunk = vec![0u8; size];
        // Bounded: the tmpfs is small.
        for _ in 0..100_000 {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", file.display()),
            }
        }
    }
}

fn workflow(dir: &Path) -> String {
    format!(
        r#"
workflow: chatty
jobs:
  talk:
    agent: a1
    script: |
      for i in $(seq 1 1200); do [ -f {go} ] && break; sleep 0.05; done
      for i in $(seq 1 {LINES}); do printf 'line %04d %0200d\n' $i 0; done
      touch {done}
steps:
  - run: talk
"#,
        go = dir.join("go").display(),
        done = dir.join("done").display(),
    )
}

fn expected_output() -> Vec<u8> {
    (1..=LINES)
        .map(|i| format!("line {i:04} {}\n", "0".repeat(200)))
        .collect::<String>()
        .into_bytes()
}

async fn health(client: &HttpsClient, url: &str) -> Json {
    client.get_json(url).await.expect("GET /health")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_full_journal_holds_a_running_jobs_events_in_order_and_writes_them_when_space_returns()
 {
    // The job's output alone exceeds the bound on held records: the agent goes on anyway.
    let setup = Setup::new("log_chunk_bytes_max = 1024\npending_events_bytes_max = 4096");
    let journal = setup.journal_dir();
    std::fs::create_dir_all(&journal).unwrap();
    let Some(tmpfs) = Tmpfs::mount(&journal, 2 << 20) else {
        return;
    };
    let dir = setup.dir.path().to_path_buf();
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), &workflow(&dir));
    ctl.couple().await;
    ctl.add_order("o1", "chatty", Vars::new(), None).await;
    ctl.until(5_000, "the job started", |c| {
        c.has("o1", "ProcessingStarted")
    })
    .await;
    let client = HttpsClient::new(
        setup.controller_tls(),
        HttpsClientOptions {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            body_bytes_max: 1 << 20,
            allow_plain_http: false,
        },
    );
    let url = format!("https://{}/health", agent.addr);
    assert_eq!(health(&client, &url).await["status"], "ok");

    // Full: the job writes 13 KiB of output and ends; nothing of it can be journaled.
    let filler = journal.join("filler");
    fill(&filler);
    std::fs::write(dir.join("go"), "").unwrap();
    assert!(
        common::eventually(30_000, || dir.join("done").exists()).await,
        "the running job ends"
    );
    let mut degraded = Json::Null;
    for _ in 0..600 {
        degraded = health(&client, &url).await;
        if degraded["status"] == "degraded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cause = format!("no space in {}", journal.display());
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert!(
        degraded["journal"]
            .as_str()
            .is_some_and(|j| j.starts_with(&cause)),
        "{degraded}"
    );
    // Job messages are still taken beyond the bound, so that the job keeps its outcome.
    assert!(
        degraded["heldBytes"].as_u64().unwrap_or(0) > 4096,
        "{degraded}"
    );
    assert_eq!(degraded["pendingEventsBytesMax"], 4096, "{degraded}");

    // A command is refused, with the cause.
    let answer = ctl
        .command(AgentCommand::DetachOrder {
            id: OrderId::new("o1").unwrap(),
        })
        .await;
    match &answer {
        FromAgent::Rejected { message, .. } => {
            assert!(
                message.starts_with(&format!("journal: {cause}")),
                "{message}"
            )
        }
        other => panic!("a command while full: {other:?}"),
    }
    assert!(
        matches!(ctl.state("o1"), Some(OrderState::Processing { .. })),
        "the outcome is held: {:?}",
        ctl.state("o1")
    );

    // A Couple that would need a record (a newer term) is refused; one that needs none is
    // answered at once, with the newest durable event.
    ctl.disconnect().await;
    ctl.term = 2;
    let refused = ctl
        .try_couple()
        .await
        .expect_err("a newer term needs a record");
    assert!(
        refused.starts_with(&format!("journal: {cause}")),
        "{refused}"
    );
    ctl.term = 1;
    let coupled = ctl.couple().await.clone();
    assert!(
        coupled.last_event_id >= ctl.last_id(),
        "{} < {}",
        coupled.last_event_id,
        ctl.last_id()
    );

    // Space returns: the held events arrive, in order; the agent ends the session that had a
    // command refused, and the controller couples again.
    std::fs::remove_file(&filler).unwrap();
    let o1 = OrderId::new("o1").unwrap();
    let mut closed = 0;
    for _ in 0..1_000 {
        if ctl.state("o1") == Some(OrderState::Finished) {
            break;
        }
        if !ctl.recv(15_000).await {
            closed += 1;
            ctl.couple().await;
            // As a controller does after coupling: send again what its state waits for (a
            // detach sent as the session ended may not have been taken).
            let detaching = ctl
                .world
                .order(&o1)
                .is_some_and(|o| o.holder == Holder::Detaching(AgentId::new("a1").unwrap()));
            if detaching {
                ctl.command(AgentCommand::DetachOrder { id: o1.clone() })
                    .await;
            }
        }
    }
    assert_eq!(ctl.state("o1"), Some(OrderState::Finished));
    // The session that had a command refused ends (if the order finished before it did).
    for _ in 0..100 {
        if closed > 0 || !ctl.recv(15_000).await {
            closed += 1;
            break;
        }
    }
    assert!(closed >= 1, "the agent asks to be coupled again");
    assert_eq!(ctl.output("o1"), expected_output());
    let names = ctl.names("o1");
    let last_output = names.iter().rposition(|n| n == "Output");
    let processed = names.iter().position(|n| n == "Processed");
    assert!(
        last_output.is_some() && processed > last_output,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "ProcessingStarted").count(),
        1,
        "{names:?}"
    );
    assert_eq!(health(&client, &url).await["status"], "ok");
    agent.stop().await;
    drop(tmpfs);
}
