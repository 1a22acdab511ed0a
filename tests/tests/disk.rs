//! The controller's and the agent's journals on a bad disk, with the real binaries: a corrupt
//! journal is refused (never cut, never replaced by an empty one); a full file system makes the
//! controller's commands answer 507 while reads go on, and makes the agent hold the events of
//! its running jobs in memory, start nothing and refuse commands, until space returns; nothing
//! acknowledged is lost, nothing runs twice, no server exits.

use anyhow::{Result, bail};
use ordo_net::client::{ClientError, HttpsClient, HttpsClientOptions};
use ordo_tests::history::History;
use ordo_tests::tmpfs::Tmpfs;
use ordo_tests::{Cluster, ENDED};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    files.sort();
    Ok(files)
}

/// Start offsets of the records of a segment file (documented layout: a 32-byte header, then
/// `u32 len | u32 crc32c | payload`).
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 32;
    while at + 8 <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        at += 8 + len as usize;
    }
    starts
}

/// Starts the controller and waits until it answers or exits: `None` when it answers, its log
/// when it exited (it must have failed).
async fn start_or_refuse(c: &mut Cluster) -> Result<Option<String>> {
    match c.start_controller().await {
        Ok(()) => Ok(None),
        Err(e) => {
            let Some(server) = c.controller.as_mut() else {
                bail!("no controller process: {e}")
            };
            let status = server
                .exit_status()
                .ok_or_else(|| anyhow::anyhow!("the controller neither answers nor exits: {e}"))?;
            assert!(!status.success(), "it exited with success: {status}");
            Ok(Some(server.log_tail(8000)))
        }
    }
}

#[tokio::test]
async fn process_controller_refuses_a_corrupt_journal_and_never_starts_empty() -> Result<()> {
    let mut c = Cluster::new(&[])?;
    c.start_controller().await?;
    c.deploy(&[(
        "w.yaml",
        "workflow: p\nsteps:\n  - prompt: \"ok?\"\n".to_owned(),
    )])
    .await?;
    let ids: Vec<String> = (0..300).map(|i| format!("c-{i}")).collect();
    let orders: Vec<Json> = ids
        .iter()
        .map(|id| json!({"id": id, "workflow": "p"}))
        .collect();
    c.add_orders(&orders).await?;
    assert!(c.controller.as_mut().unwrap().stop(), "stopped on SIGTERM");
    let journal = c.local.dir.join("controller").join("journal");
    let files = segment_files(&journal)?;
    assert_eq!(files.len(), 1, "{files:?}");
    let segment = &files[0];
    let original = std::fs::read(segment)?;
    let starts = record_starts(&original);
    assert!(starts.len() > 900, "{} records", starts.len());

    // One flipped bit at a time: in the header, and in records at a tenth, a third, half and
    // nine tenths of the file (all with valid records after them).
    let mut flips = vec![(20usize, None)];
    for fraction in [0.1, 0.33, 0.5, 0.9] {
        let at = 32 + ((original.len() - 32) as f64 * fraction) as usize;
        let start = starts.iter().copied().rev().find(|&s| s <= at).unwrap();
        assert!(start < *starts.last().unwrap(), "not in the last record");
        flips.push((at, Some(start)));
    }
    for (at, record) in flips {
        let mut bytes = original.clone();
        bytes[at] ^= 0x04;
        std::fs::write(segment, &bytes)?;
        let Some(log) = start_or_refuse(&mut c).await? else {
            bail!("the controller started on a journal with a flipped bit at {at}")
        };
        // A damaged header is named by its checksum's offset.
        let offset = record.unwrap_or(12);
        let named = format!(
            "journal file {} is corrupt at byte offset {offset}",
            segment.display()
        );
        assert!(log.contains(&named), "flip at {at}: {log}");
        assert!(
            log.contains("restore the directory from a backup"),
            "flip at {at}: {log}"
        );
        if record.is_some() {
            assert!(log.contains("valid record(s) follow it"), "{log}");
        }
        // Nothing was cut or rewritten.
        assert_eq!(std::fs::read(segment)?, bytes, "flip at {at}");
    }

    // The restored journal starts with every acknowledged order.
    std::fs::write(segment, &original)?;
    c.start_controller().await?;
    let listed = c.orders().await?;
    for id in &ids {
        assert!(
            listed.iter().any(|o| o["id"] == id.as_str()),
            "order {id} is missing"
        );
    }
    Ok(())
}

fn gate(agent: &str, dir: &Path) -> String {
    let go = dir.join("go");
    let done = dir.join("done.txt");
    format!(
        "workflow: gate\njobs:\n  wait:\n    agent: {agent}\n    restartable: false\n    parallelism: 1000\n    script: |\n      \
         for i in $(seq 1 1200); do [ -f {go} ] && break; sleep 0.05; done\n      \
         echo $ORDO_ORDER_ID >> {done}\nsteps:\n  - run: wait\n",
        go = go.display(),
        done = done.display(),
    )
}

/// `(status, body)` of a POST.
async fn post(c: &Cluster, path: &str, body: &Json) -> (u16, Json) {
    match c.api.post_json::<Json, Json>(&c.url(path), body).await {
        Ok(answer) => (200, answer),
        Err(ClientError::Status { status, body, .. }) => (
            status.as_u16(),
            serde_json::from_str(&body).unwrap_or(Json::String(body)),
        ),
        Err(e) => (0, json!(e.to_string())),
    }
}

#[tokio::test]
async fn process_controller_on_a_full_disk_answers_507_and_recovers_when_space_returns()
-> Result<()> {
    let mut c = Cluster::new(&["a1"])?;
    let data = c.local.dir.join("controller");
    std::fs::create_dir_all(&data)?;
    let Some(tmpfs) = Tmpfs::mount(&data, 4 << 20) else {
        return Ok(());
    };
    c.start_controller().await?;
    c.start_agent("a1")?;
    let work = c.dir.path().to_path_buf();
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("gate.yaml", gate("a1", &work)),
    ])
    .await?;
    let order = |id: &str| json!({"id": id, "workflow": "gate"});
    let mut acked: Vec<String> = (0..10).map(|i| format!("before-{i}")).collect();
    c.add_orders(&acked.iter().map(|id| order(id)).collect::<Vec<_>>())
        .await?;
    // The agent is coupled and runs the jobs (they wait for the `go` file).
    c.wait_states(&acked, &["processing"], Duration::from_secs(60))
        .await?;

    // Full: a command that does not fit gets 507 naming the journal directory and the cause.
    // (A small one may still fit into the last page the journal has.)
    let filler = data.join("filler");
    tmpfs.fill(&filler)?;
    let journal_dir = data.join("journal");
    let mut refusal = None;
    for i in 0..200 {
        let id = format!("full-{i}");
        match post(&c, "/orders", &order(&id)).await {
            (200, _) => acked.push(id),
            (507, body) => {
                refusal = Some(body);
                break;
            }
            other => bail!("unexpected answer {other:?}\n{}", c.logs()),
        }
    }
    let body = refusal.expect("a 507 once the disk is full");
    assert_eq!(
        body["journalDir"],
        journal_dir.display().to_string(),
        "{body}"
    );
    assert!(
        body["cause"].as_str().is_some_and(|c| c.contains("space")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("507") || e.contains("no space")),
        "{body}"
    );
    // Other commands too, while reads go on.
    let (status, body) = post(&c, "/orders/before-0/cancel", &json!({})).await;
    assert_eq!(status, 507, "{body}");
    let (status, body) = post(
        &c,
        "/deploy",
        &json!({"files": [{"name": "x.yaml", "text": "workflow: x\nsteps:\n  - prompt: \"x\"\n"}]}),
    )
    .await;
    assert_eq!(status, 507, "{body}");
    let health: Json = c.api.get_json(&c.url("/health")).await?;
    assert_eq!(health["status"], "ok");
    let listed = c.orders().await?;
    for id in &acked {
        assert!(
            listed.iter().any(|o| o["id"] == id.as_str()),
            "{id} not listed"
        );
    }
    let snapshot: Json = c.api.get_json(&c.url("/snapshot")).await?;
    assert!(snapshot["eventId"].as_u64().is_some(), "{snapshot}");
    c.order("before-3").await?;

    // The jobs end while the disk is full: the agent keeps their events until the controller
    // can journal them.
    std::fs::write(work.join("go"), "")?;
    let done = work.join("done.txt");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&done)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < acked.len()
    {
        if Instant::now() > deadline {
            bail!("the jobs did not end\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = post(&c, "/orders", &order("still-full")).await;
    assert_eq!(status, 507, "{body}");
    assert!(c.controller.as_mut().unwrap().is_running());

    // Space returns: commands work again without a restart.
    std::fs::remove_file(&filler)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after: Vec<String> = Vec::new();
    for i in 0.. {
        let id = format!("after-{i}");
        match post(&c, "/orders", &order(&id)).await {
            (200, _) => {
                after.push(id);
                break;
            }
            (507, _) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => bail!("no recovery: {other:?}\n{}", c.logs()),
        }
    }
    acked.extend(after);
    let finished = c
        .wait_states(&acked, ENDED, Duration::from_secs(60))
        .await?;
    assert!(
        finished.iter().all(|o| o["state"] == "finished"),
        "{finished:?}"
    );
    let log = c.controller_log();
    assert!(log.contains("the journal's file system is full"), "{log}");
    assert!(log.contains("journal writes work again"), "{log}");

    // Nothing acknowledged is lost, nothing ran twice, and a restart finds it all.
    let history = History::from_events(&c.events(0).await?);
    assert!(
        history.lost(&acked).is_empty(),
        "{:?}",
        history.lost(&acked)
    );
    assert!(
        history.duplicated(1).is_empty(),
        "{:?}",
        history.duplicated(1)
    );
    assert!(history.unexpected.is_empty(), "{:?}", history.unexpected);
    for id in &acked {
        assert_eq!(history.ended[id], vec!["Finished".to_owned()], "{id}");
    }
    assert!(c.controller.as_mut().unwrap().stop());
    c.start_controller().await?;
    let again = c.orders().await?;
    for id in &acked {
        let o = again.iter().find(|o| o["id"] == id.as_str());
        assert_eq!(o.map(|o| &o["state"]), Some(&json!("finished")), "{id}");
    }
    c.controller.as_mut().unwrap().stop();
    drop(tmpfs);
    Ok(())
}

/// A job that waits for the `go` file, then writes 64 numbered lines of about 1 KiB to stdout
/// (so that its output alone overflows whatever room a full file system has left in the last
/// page of a segment) and appends its order id to `done.txt`.
fn chatty_gate(agent: &str, dir: &Path) -> String {
    let go = dir.join("go");
    let done = dir.join("done.txt");
    format!(
        "workflow: gate\njobs:\n  wait:\n    agent: {agent}\n    restartable: false\n    parallelism: 1000\n    script: |\n      \
         for i in $(seq 1 1200); do [ -f {go} ] && break; sleep 0.05; done\n      \
         for i in $(seq 1 {CHATTY_LINES}); do printf '%s line %04d %0{CHATTY_PAD}d\\n' \"$ORDO_ORDER_ID\" $i 0; done\n      \
         echo $ORDO_ORDER_ID >> {done}\nsteps:\n  - run: wait\n",
        go = go.display(),
        done = done.display(),
    )
}

const CHATTY_LINES: usize = 64;
const CHATTY_PAD: usize = 1000;

/// The output `chatty_gate` writes for `order`.
fn chatty_output(order: &str) -> String {
    (1..=CHATTY_LINES)
        .map(|i| format!("{order} line {i:04} {}\n", "0".repeat(CHATTY_PAD)))
        .collect()
}

/// Order ids in `done.txt`, one line per run.
fn runs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("done.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A client with the controller's client certificate, for the agent's `/health`.
fn agent_client(c: &Cluster) -> Result<HttpsClient> {
    let certs = c.local.dir.join("certs");
    let material = ordo_net::tls::TlsMaterial::from_pem_files(
        &certs.join("controller-client.pem"),
        &certs.join("controller-client.key"),
    )?;
    let ca = ordo_net::tls::CaBundle::from_pem_file(&c.local.ca)?;
    let tls = ordo_net::tls::client_config(&ca, Some(&material))?;
    Ok(HttpsClient::new(
        tls,
        HttpsClientOptions {
            connect_timeout_ms: 5000,
            request_timeout_ms: 10_000,
            body_bytes_max: 1 << 20,
            allow_plain_http: false,
        },
    ))
}

/// Waits (bounded) until `done` says yes, or fails with `what` and the logs.
async fn wait_until(
    c: &mut Cluster,
    what: &str,
    within: Duration,
    mut done: impl AsyncFnMut(&mut Cluster) -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if done(c).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {within:?}\n{}", c.logs());
        }
        if !c.agent("a1").is_some_and(|a| a.is_running()) {
            bail!("the agent exited while waiting for {what}\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn process_agent_on_a_full_disk_keeps_its_running_jobs_and_recovers_when_space_returns()
-> Result<()> {
    let mut c = Cluster::new(&["a1"])?;
    // Only the agent's journal is on the small file system; the controller's is not.
    let journal = c.local.dir.join("agent-a1").join("journal");
    std::fs::create_dir_all(&journal)?;
    let Some(tmpfs) = Tmpfs::mount(&journal, 4 << 20) else {
        return Ok(());
    };
    c.start_controller().await?;
    c.start_agent("a1")?;
    let work = c.dir.path().to_path_buf();
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("gate.yaml", chatty_gate("a1", &work)),
    ])
    .await?;
    let order = |id: &str| json!({"id": id, "workflow": "gate"});
    let before: Vec<String> = (0..10).map(|i| format!("before-{i}")).collect();
    c.add_orders(&before.iter().map(|id| order(id)).collect::<Vec<_>>())
        .await?;
    // Their starts are durable and reported: the jobs run (they wait for the `go` file).
    c.wait_states(&before, &["processing"], Duration::from_secs(60))
        .await?;
    let health_url = format!(
        "{}/health",
        c.agent_url("a1")?.replacen("wss://", "https://", 1)
    );
    let agent_api = agent_client(&c)?;
    let health: Json = agent_api.get_json(&health_url).await?;
    assert_eq!(health["status"], "ok", "{health}");

    // Full. The jobs go on and write their output: the agent cannot journal it.
    let filler = journal.join("filler");
    tmpfs.fill(&filler)?;
    std::fs::write(work.join("go"), "")?;
    wait_until(
        &mut c,
        "the running jobs end",
        Duration::from_secs(60),
        async |_| Ok(runs(&work).len() >= before.len()),
    )
    .await?;
    let mut health = Json::Null;
    wait_until(
        &mut c,
        "the agent reports its full journal",
        Duration::from_secs(30),
        async |_| {
            health = agent_api.get_json(&health_url).await?;
            Ok(health["status"] == "degraded")
        },
    )
    .await?;
    let cause = format!("no space in {}", journal.display());
    assert!(
        health["journal"]
            .as_str()
            .is_some_and(|j| j.starts_with(&cause)),
        "{health}"
    );
    assert!(
        health["heldRecords"].as_u64().is_some_and(|n| n > 0),
        "{health}"
    );
    // The outcomes are held on the agent: the controller has not seen them yet.
    for o in c.orders().await? {
        assert_eq!(o["state"], "processing", "{o}");
    }

    // New orders: the controller takes them, the agent refuses their commands and says why;
    // they do not start.
    let during: Vec<String> = (0..5).map(|i| format!("during-{i}")).collect();
    c.add_orders(&during.iter().map(|id| order(id)).collect::<Vec<_>>())
        .await?;
    let controller_log = work.join("controller.log");
    wait_until(
        &mut c,
        "the controller is told why the agent refuses",
        Duration::from_secs(30),
        async |_| {
            let log = std::fs::read_to_string(&controller_log).unwrap_or_default();
            Ok(log.lines().any(|l| {
                l.contains("agent rejected a command") && l.contains(&format!("journal: {cause}"))
            }))
        },
    )
    .await?;
    let listed = c.orders().await?;
    for id in &during {
        let o = listed.iter().find(|o| o["id"] == id.as_str());
        let state = o.and_then(|o| o["state"].as_str()).unwrap_or("missing");
        assert!(
            !["processing", "finished", "failed", "cancelled", "missing"].contains(&state),
            "{id} is {state} while the agent's journal is full"
        );
    }
    assert_eq!(runs(&work).len(), before.len(), "{:?}", runs(&work));
    let health: Json = agent_api.get_json(&health_url).await?;
    assert_eq!(health["status"], "degraded", "{health}");

    // Space returns: the held events are written in order, the new orders run.
    std::fs::remove_file(&filler)?;
    let all: Vec<String> = before.iter().chain(&during).cloned().collect();
    let finished = c.wait_states(&all, ENDED, Duration::from_secs(90)).await?;
    assert!(
        finished.iter().all(|o| o["state"] == "finished"),
        "{finished:?}"
    );
    let mut ran = runs(&work);
    ran.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(ran, expected, "each job ran exactly once");
    for id in &all {
        let log = c
            .api
            .request(
                axum::http::Method::GET,
                &c.url(&format!("/orders/{id}/log")),
                None,
            )
            .await?;
        let log = String::from_utf8_lossy(&log.body).into_owned();
        assert!(log == chatty_output(id), "{id}: the output differs:\n{log}");
    }
    let history = History::from_events(&c.events(0).await?);
    assert!(history.lost(&all).is_empty(), "{:?}", history.lost(&all));
    assert!(
        history.duplicated(1).is_empty(),
        "{:?}",
        history.duplicated(1)
    );
    assert!(history.unexpected.is_empty(), "{:?}", history.unexpected);
    for id in &all {
        assert_eq!(history.ended[id], vec!["Finished".to_owned()], "{id}");
    }
    let health: Json = agent_api.get_json(&health_url).await?;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["journal"], "ok", "{health}");

    // The agent never exited, and said it once.
    let agent = c.agent("a1").expect("the agent was started");
    assert!(agent.is_running(), "the agent exited");
    let log = agent.log_tail(1 << 20);
    assert_eq!(
        log.matches("the events not written are held in memory")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("journal writes work again").count(), 1, "{log}");
    assert!(agent.stop(), "the agent stops on SIGTERM");
    c.controller.as_mut().unwrap().stop();
    drop(tmpfs);
    Ok(())
}
