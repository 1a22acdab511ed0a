//! kill -9 of the agent under load: many short jobs that may not run twice, the agent killed
//! at random moments while they run and started again each time, then everything runs to
//! its end. Promise 4: a job that is not `restartable` runs at most once per attempt; an order
//! whose job was lost with the agent fails visibly with `Disrupted(ProcessLost)`; no order is
//! left stuck; no work directory is left behind.
//!
//! Default size: 2,000 orders, 3 kills. `ORDO_LONG=1`: 10,000 orders, 8 kills. The kill
//! moments come from a seed printed at the start (`ORDO_SEED=<n>` repeats a run).

use anyhow::{Result, bail};
use ordo_tests::history::History;
use ordo_tests::{Cluster, ENDED};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long one wait for the jobs to reach a kill moment may take.
const KILL_MOMENT_WAIT_MS: u64 = 120_000;

/// How long a work directory of an ended order may take to go.
const WORK_DIRS_GONE_WAIT_MS: u64 = 10_000;

/// A small deterministic generator (splitmix64) for the kill moments.
struct Moments(u64);

impl Moments {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    fn within(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

fn seed() -> u64 {
    match std::env::var("ORDO_SEED") {
        Ok(s) => s.parse().unwrap_or(0),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    }
}

/// Lines in the file of job runs (0 while it does not exist).
fn runs_so_far(runs: &Path) -> u64 {
    std::fs::read(runs)
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count() as u64)
        .unwrap_or(0)
}

/// Order ids that still have a work directory.
fn work_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn process_agent_killed_under_load_runs_no_job_twice() -> Result<()> {
    let long = std::env::var("ORDO_LONG").is_ok_and(|v| v == "1");
    let (orders, kills) = if long { (10_000, 8) } else { (2_000, 3) };
    let seed = seed();
    eprintln!("{orders} orders, {kills} kills of the agent, ORDO_SEED={seed}");
    let mut moments = Moments(seed);

    let mut c = Cluster::new(&["a1"])?;
    c.start_controller().await?;
    c.start_agent("a1")?;
    let runs = c.dir.path().join("runs.txt");
    let work = c.dir.path().join("agent-a1").join("work");
    let workflow = format!(
        r#"workflow: short
jobs:
  job:
    agent: a1
    parallelism: 64
    restartable: false
    script: |
      echo "$ORDO_ORDER_ID $ORDO_ATTEMPT" >> {}
      sleep 0.05
steps:
  - run: job
"#,
        runs.display()
    );
    c.deploy(&[("agent.yaml", c.agent_yaml("a1")?), ("w.yaml", workflow)])
        .await?;
    let ids: Vec<String> = (0..orders).map(|i| format!("o-{i}")).collect();
    let body: Vec<Json> = ids
        .iter()
        .map(|id| json!({"id": id, "workflow": "short"}))
        .collect();
    c.add_orders(&body).await?;

    // Kill moments: after a random number of job runs, spread over the first 60 % of the
    // orders (some orders fail with each kill and never run, so the runs may end short of
    // the number of orders).
    let span = orders as u64 * 55 / 100 / kills;
    for k in 0..kills {
        let low = orders as u64 * 5 / 100 + k * span;
        let at = moments.within(low, low + span);
        let deadline = Instant::now() + Duration::from_millis(KILL_MOMENT_WAIT_MS);
        while runs_so_far(&runs) < at {
            if Instant::now() > deadline {
                bail!(
                    "{} job runs in {KILL_MOMENT_WAIT_MS} ms, waiting for {at}\n{}",
                    runs_so_far(&runs),
                    c.logs()
                );
            }
            if !c.agent("a1").is_some_and(|a| a.is_running()) {
                bail!("the agent exited by itself\n{}", c.logs());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!(
            "kill {} of the agent after {} job runs",
            k + 1,
            runs_so_far(&runs)
        );
        if let Some(agent) = c.agent("a1") {
            agent.kill9();
        }
        c.start_agent("a1")?;
    }

    let within = Duration::from_secs(if long { 900 } else { 240 });
    let ended = c.wait_states(&ids, ENDED, within).await?;

    // No job ran twice at the same attempt, and none ran again at another attempt (the
    // job is not restartable).
    let text = std::fs::read_to_string(&runs)?;
    let mut ran: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines() {
        let (id, attempt) = line.split_once(' ').unwrap_or((line, ""));
        ran.entry(id).or_default().push(attempt);
    }
    let twice: Vec<_> = ran.iter().filter(|(_, a)| a.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{} orders' jobs ran more than once, e.g. {:?}",
        twice.len(),
        twice.iter().take(10).collect::<Vec<_>>()
    );

    // Every order ended: finished after its one run, or failed because its job was lost.
    let mut finished = 0;
    let mut lost = Vec::new();
    for o in &ended {
        let id = o["id"].as_str().unwrap_or_default();
        match o["state"].as_str() {
            Some("finished") => {
                assert_eq!(ran.get(id).map(Vec::len), Some(1), "{o}");
                finished += 1;
            }
            Some("failed") => {
                let last = o["outcomes"]
                    .as_array()
                    .and_then(|a| a.last())
                    .and_then(|h| h["outcome"].as_str())
                    .unwrap_or_default();
                assert_eq!(last, "disrupted (process lost)", "{o}");
                lost.push(id.to_owned());
            }
            _ => panic!("an order ended otherwise: {o}"),
        }
    }
    eprintln!(
        "{finished} finished, {} failed with a lost process ({} of them had run)",
        lost.len(),
        lost.iter()
            .filter(|id| ran.contains_key(id.as_str()))
            .count()
    );

    let history = History::from_events(&c.events(0).await?);
    assert!(history.lost(&ids).is_empty(), "{:?}", history.lost(&ids));
    assert!(
        history.duplicated(1).is_empty(),
        "{:?}",
        history.duplicated(1)
    );
    assert!(history.unexpected.is_empty(), "{:?}", history.unexpected);

    // No work directory of an ended order is left (they go when the order leaves the
    // agent, or at the agent's next start).
    let ended_ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_millis(WORK_DIRS_GONE_WAIT_MS);
    loop {
        let left: Vec<String> = work_dirs(&work)
            .into_iter()
            .filter(|d| ended_ids.contains(d.as_str()))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} work directories of ended orders are left, e.g. {:?}",
            left.len(),
            &left[..left.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
