//! Self-registration of subagents and agents, and the removal of a subagent, with real
//! processes: a controller, a director `dir` and subagents (the agent binary with `[subagent]`).
//!
//! - A subagent started with a join token (`[register]`) registers: the controller pings it
//!   back, deploys `dir` with it added, the director dedicates it and runs jobs there.
//! - The token does not work twice; an agent started with a used token stops with the reason.
//! - A registration whose URL leads to another agent than the id it claims is refused, saying
//!   what the ping-back saw.
//! - `remove-subagent --kill` (the controller's API): the subagent's running restartable jobs
//!   are killed there and start again on the other subagent (attempt 2); every job ends once.
//! - `remove-subagent` without kill: the subagent drains (its running job ends there) and gets
//!   no new job.
//! - A standalone agent registers with a token that names no agent and runs jobs.

use anyhow::{Result, anyhow, bail};
use ordo_tests::{Cluster, ENDED};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the orders and agents of a test may take.
const WAIT_MS: u64 = 120_000;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A join token from the controller (admin).
async fn join_token(c: &Cluster, agent: Option<&str>) -> Result<String> {
    let body = match agent {
        Some(a) => json!({ "agent": a }),
        None => json!({}),
    };
    let answer = c.post("/agents/join-tokens", &body).await?;
    answer["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no token in {answer}"))
}

/// Gives agent `id` a `[register]` section with `token` (before it starts).
fn make_registering(c: &Cluster, id: &str, token: &str) -> Result<()> {
    let (_, config, url) = c
        .local
        .agent_configs
        .iter()
        .find(|(a, ..)| a == id)
        .ok_or_else(|| anyhow!("no agent {id}"))?;
    let controller = c.local.controller_url.clone();
    let url = url.clone();
    let token = token.to_owned();
    ordo_cli::local::edit_agent_config(config, |f| {
        f.register = Some(ordo_agent::config::RegisterSection {
            controller,
            token: Some(token),
            token_file: None,
            url,
            priority: 0,
            process_limit: None,
            ca: None,
        });
    })?;
    Ok(())
}

/// `POST /agents/register` by hand: the status and the answer.
async fn register(c: &Cluster, token: &str, id: &str, url: &str) -> Result<(u16, String)> {
    let body = json!({ "token": token, "id": id, "url": url }).to_string();
    let r = c
        .anonymous()
        .request(
            axum::http::Method::POST,
            &c.url("/agents/register"),
            Some((body.into(), "application/json")),
        )
        .await
        .map_err(|e| anyhow!("register: {e}"))?;
    Ok((
        r.status.as_u16(),
        String::from_utf8_lossy(&r.body).into_owned(),
    ))
}

/// The director's subagents as its metadata shows them: id → state.
async fn subagents(c: &Cluster, director: &str) -> Result<BTreeMap<String, String>> {
    let agents: Json = c.api.get_json(&c.url("/agents")).await?;
    let d = agents["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == director))
        .cloned()
        .unwrap_or_default();
    Ok(d["meta"]["subagents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_owned(),
                s["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Waits until `ok` holds for the director's subagents.
async fn wait_subagents(
    c: &Cluster,
    what: &str,
    ok: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let subs = subagents(c, "dir").await.unwrap_or_default();
        if ok(&subs) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: subagents {subs:?}\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `path` has `count` lines.
async fn wait_lines(c: &Cluster, path: &Path, count: usize) -> Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let found = lines(path);
        if found.len() >= count {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {count} lines in {}\n{}",
                found.len(),
                path.display(),
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A workflow `again` of a restartable job on `dir` that logs its start and end in `runs`
/// and waits for the file `go`.
fn workflow(runs: &Path, go: &Path) -> String {
    format!(
        r#"workflow: again
jobs:
  job:
    agent: dir
    parallelism: 64
    restartable: true
    script: |
      echo "start $ORDO_ORDER_ID $ORDO_ATTEMPT $ORDO_SUBAGENT" >> {runs}
      for i in $(seq 1 2400); do [ -e {go} ] && break; sleep 0.05; done
      echo "end $ORDO_ORDER_ID $ORDO_ATTEMPT $ORDO_SUBAGENT" >> {runs}
steps:
  - run: job
"#,
        runs = runs.display(),
        go = go.display()
    )
}

/// Waits until agent `id`'s process has exited; its log.
async fn wait_exit(c: &mut Cluster, id: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let Some(agent) = c.agent(id) else {
            bail!("{id} was not started");
        };
        if !agent.is_running() {
            return Ok(agent.log_tail(1 << 20));
        }
        if Instant::now() > deadline {
            bail!("{id} still runs\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn process_register_and_remove_a_subagent() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let runs = dir.path().join("runs.txt");
    let go = dir.path().join("go");
    let mut c = Cluster::new(&["dir", "s1", "s2", "s3"])?;
    for s in ["s1", "s2", "s3"] {
        c.make_subagent(s, "dir")?;
    }
    c.start_controller().await?;
    c.start_agent("dir")?;
    c.start_agent("s1")?;
    let agent = c.cluster_yaml("dir", "round-robin", "2s", &[("s1", 16)])?;
    c.deploy(&[("agent.yaml", agent), ("w.yaml", workflow(&runs, &go))])
        .await?;
    wait_subagents(&c, "s1 live", |s| s.get("s1").is_some_and(|x| x == "live")).await?;

    // s2 registers with a join token for dir and becomes live.
    let token = join_token(&c, Some("dir")).await?;
    make_registering(&c, "s2", &token)?;
    c.start_agent("s2")?;
    wait_subagents(&c, "s2 registered and live", |s| {
        s.get("s2").is_some_and(|x| x == "live")
    })
    .await?;
    let events = c.events(0).await?;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "Registered"
                && e["text"].as_str().is_some_and(|t| t.contains("s2"))),
        "the registration is journaled"
    );

    // Restarted with the same `[register]` section, s2 does not ask again (its token is used
    // up): it serves and is live again.
    if let Some(s2) = c.agent("s2") {
        s2.kill9();
    }
    wait_subagents(&c, "s2 lost", |s| s.get("s2").is_some_and(|x| x == "lost")).await?;
    c.start_agent("s2")?;
    wait_subagents(&c, "s2 live again", |s| {
        s.get("s2").is_some_and(|x| x == "live")
    })
    .await?;
    let s2 = c.agent("s2").ok_or_else(|| anyhow::anyhow!("no s2"))?;
    let log = s2.log_tail(1 << 20);
    assert!(s2.is_running(), "{log}");
    assert!(log.contains("registered before"), "{log}");

    // The token does not work twice: refused before any ping-back, and an agent started with
    // it stops with the reason.
    let s3_url = c.agent_url("s3")?;
    let (status, answer) = register(&c, &token, "s3", &s3_url).await?;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("already used"), "{answer}");
    make_registering(&c, "s3", &token)?;
    c.start_agent("s3")?;
    let log = wait_exit(&mut c, "s3").await?;
    assert!(log.contains("already used"), "{log}");

    // A registration claiming to be s9 at s1's URL: the ping-back sees s1 and refuses.
    let other = join_token(&c, Some("dir")).await?;
    let s1_url = c.agent_url("s1")?;
    let (status, answer) = register(&c, &other, "s9", &s1_url).await?;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains("ping-back failed") && answer.contains("s1"),
        "{answer}"
    );
    let (status, answer) = register(&c, "ordo-join-unknown", "s9", &s1_url).await?;
    assert_eq!(status, 401, "{answer}");

    // Jobs run on both subagents.
    let ids: Vec<String> = (0..6).map(|i| format!("o-{i}")).collect();
    let body: Vec<Json> = ids
        .iter()
        .map(|id| json!({"id": id, "workflow": "again"}))
        .collect();
    c.add_orders(&body).await?;
    let started = wait_lines(&c, &runs, ids.len()).await?;
    let on_s2: Vec<String> = started
        .iter()
        .filter_map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            (p.len() == 4 && p[3] == "s2").then(|| p[1].to_owned())
        })
        .collect();
    assert!(!on_s2.is_empty(), "s2 runs jobs: {started:?}");

    // Removed with kill: its jobs start again on s1.
    c.post("/agents/dir/subagents/s2/remove", &json!({ "kill": true }))
        .await?;
    wait_lines(&c, &runs, ids.len() + on_s2.len()).await?;
    wait_subagents(&c, "s2 gone", |s| !s.contains_key("s2")).await?;
    std::fs::write(&go, "")?;
    let ended = c
        .wait_states(&ids, ENDED, Duration::from_millis(WAIT_MS))
        .await?;
    let all = lines(&runs);
    for o in &ended {
        let id = o["id"].as_str().unwrap_or_default();
        assert_eq!(o["state"], "finished", "{o}");
        let ends: Vec<&String> = all
            .iter()
            .filter(|l| l.starts_with(&format!("end {id} ")))
            .collect();
        assert_eq!(ends.len(), 1, "{id} ended once: {ends:?}");
        assert!(ends[0].ends_with(" s1"), "{id}: {ends:?}");
        if on_s2.iter().any(|s| s == id) {
            assert!(
                ends[0].starts_with(&format!("end {id} 2 ")),
                "{id}: {ends:?}"
            );
            let outcomes: Vec<&str> = o["outcomes"]
                .as_array()
                .map(|a| a.iter().filter_map(|h| h["outcome"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(outcomes.first(), Some(&"disrupted (process lost)"), "{o}");
        } else {
            assert!(
                ends[0].starts_with(&format!("end {id} 1 ")),
                "{id}: {ends:?}"
            );
            assert_eq!(o["outcomes"].as_array().map(Vec::len), Some(1), "{o}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn process_a_removed_subagent_drains() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let runs = dir.path().join("runs.txt");
    let go = dir.path().join("go");
    let mut c = Cluster::new(&["dir", "s1", "s2"])?;
    for s in ["s1", "s2"] {
        c.make_subagent(s, "dir")?;
    }
    c.start_controller().await?;
    c.start_agent("dir")?;
    c.start_agent("s1")?;
    c.start_agent("s2")?;
    let agent = c.cluster_yaml("dir", "round-robin", "2s", &[("s1", 16), ("s2", 16)])?;
    c.deploy(&[("agent.yaml", agent), ("w.yaml", workflow(&runs, &go))])
        .await?;
    wait_subagents(&c, "both live", |s| {
        s.values().filter(|x| *x == "live").count() == 2
    })
    .await?;
    let first: Vec<String> = (0..4).map(|i| format!("a-{i}")).collect();
    let body: Vec<Json> = first
        .iter()
        .map(|id| json!({"id": id, "workflow": "again"}))
        .collect();
    c.add_orders(&body).await?;
    let started = wait_lines(&c, &runs, first.len()).await?;
    assert!(started.iter().any(|l| l.ends_with(" s2")), "{started:?}");
    // Drained: s2's jobs go on there; new jobs go to s1 only.
    c.post("/agents/dir/subagents/s2/remove", &json!({}))
        .await?;
    wait_subagents(&c, "s2 draining while its jobs run", |s| {
        s.get("s2").map(String::as_str) == Some("draining")
    })
    .await?;
    let later: Vec<String> = (0..4).map(|i| format!("b-{i}")).collect();
    let body: Vec<Json> = later
        .iter()
        .map(|id| json!({"id": id, "workflow": "again"}))
        .collect();
    c.add_orders(&body).await?;
    let started = wait_lines(&c, &runs, first.len() + later.len()).await?;
    for l in &started[first.len()..] {
        assert!(
            l.ends_with(" s1"),
            "a new job on the drained subagent: {started:?}"
        );
    }
    std::fs::write(&go, "")?;
    let mut ids = first.clone();
    ids.extend(later);
    let ended = c
        .wait_states(&ids, ENDED, Duration::from_millis(WAIT_MS))
        .await?;
    let all = lines(&runs);
    for o in &ended {
        let id = o["id"].as_str().unwrap_or_default();
        assert_eq!(o["state"], "finished", "{o}");
        assert_eq!(
            o["outcomes"].as_array().map(Vec::len),
            Some(1),
            "{o}: drained, not lost"
        );
        let runs_of = all
            .iter()
            .filter(|l| l.starts_with(&format!("start {id} ")))
            .count();
        assert_eq!(runs_of, 1, "{id}: {all:?}");
    }
    wait_subagents(&c, "s2 gone once drained", |s| !s.contains_key("s2")).await?;
    Ok(())
}

#[tokio::test]
async fn process_a_standalone_agent_registers_and_runs_jobs() -> Result<()> {
    let mut c = Cluster::new(&["a1"])?;
    c.start_controller().await?;
    let token = join_token(&c, None).await?;
    make_registering(&c, "a1", &token)?;
    c.start_agent("a1")?;
    let workflow = "workflow: hello\njobs:\n  job:\n    agent: a1\n    script: echo hi\nsteps:\n  - run: job\n";
    // The workflow deploys once the agent is in the inventory.
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    while c.deploy(&[("w.yaml", workflow.to_owned())]).await.is_err() {
        if Instant::now() > deadline {
            bail!("a1 never registered\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.add_orders(&[json!({"id": "o-1", "workflow": "hello"})])
        .await?;
    let ended = c
        .wait_states(&["o-1".to_owned()], ENDED, Duration::from_millis(WAIT_MS))
        .await?;
    assert_eq!(ended[0]["state"], "finished", "{}", ended[0]);
    Ok(())
}
