//! A real agent process on a corrupt journal: one flipped bit before valid records makes it
//! refuse to start (non-zero exit, the message names the file and the offset and says the way
//! out), never start with an empty journal; on the restored journal it starts with its run.

mod common;

use common::{Ctl, Setup};
use ordo_model::value::Vars;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKFLOW: &str = r#"
workflow: quick
jobs:
  hello: { agent: a1, script: "echo hello" }
steps:
  - run: hello
"#;

fn start(setup: &Setup) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.dir.path().join("agent.log"))
        .unwrap();
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

fn log(setup: &Setup) -> String {
    std::fs::read_to_string(setup.dir.path().join("agent.log")).unwrap_or_default()
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

/// Start offsets of the records of a segment (a 32-byte header, then `u32 len | u32 crc32c |
/// payload` records).
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 32;
    while at + 8 <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        at += 8 + len as usize;
    }
    starts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_agent_refuses_a_corrupt_journal_and_never_starts_empty() {
    let setup = Setup::new("");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = std::fs::read_to_string(setup.config_path())
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(setup.config_path(), text).unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();

    let mut agent = start(&setup);
    let mut ctl = Ctl::new(addr, setup.controller_tls(), WORKFLOW);
    coupled(&mut ctl, &setup).await;
    let ids: Vec<String> = (0..8).map(|i| format!("q{i}")).collect();
    for id in &ids {
        ctl.add_order(id, "quick", Vars::new(), None).await;
    }
    ctl.until(20_000, "every job ran", |c| {
        ids.iter().all(|id| c.has(id, "Processed"))
    })
    .await;
    let run_id = ctl.run_id.unwrap();
    ctl.disconnect().await;
    agent.kill().unwrap();
    agent.wait().unwrap();

    let journal = setup.journal_dir();
    let mut segments: Vec<_> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let segment = segments.last().unwrap().clone();
    let original = std::fs::read(&segment).unwrap();
    let starts = record_starts(&original);
    assert!(starts.len() > 10, "{} records", starts.len());
    let start_of_bad = starts[starts.len() / 2];
    let mut bytes = original.clone();
    bytes[start_of_bad + 10] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    let mut refused = start(&setup);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent runs on a corrupt journal: {}",
            log(&setup)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success(), "{status}");
    let text = log(&setup);
    let named = format!(
        "journal file {} is corrupt at byte offset {start_of_bad}",
        segment.display()
    );
    assert!(text.contains(&named), "{text}");
    assert!(
        text.contains("restore the directory from a backup"),
        "{text}"
    );
    assert!(text.contains("valid record(s) follow it"), "{text}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing was cut");

    // The restored journal: the same run, with its orders.
    std::fs::write(&segment, &original).unwrap();
    let mut agent = start(&setup);
    coupled(&mut ctl, &setup).await;
    assert_eq!(ctl.run_id, Some(run_id), "{}", log(&setup));
    ctl.disconnect().await;
    agent.kill().unwrap();
    agent.wait().unwrap();
}
