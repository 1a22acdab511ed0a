//! Agent-cluster benchmark: one-job orders through a controller and a director with 1, 2 and
//! 3 subagents, then the takeover of a killed subagent's jobs.
//!
//! `cargo run --release -p ordo-bench --bin subagents`; JSON lines on stdout (progress on
//! stderr). Every server is its own process of this build (`target/release/ordo-controller`,
//! `ordo-agent`, rebuilt first unless `BUILD=0`), fsync on, under `BENCH_DIR`; the cluster is
//! `ordo_bench::agent_cluster`'s: the director `bench` and subagents `s1`…, round-robin, each
//! with `processLimit` `PROCESS_LIMIT`.
//!
//! - `subagents_throughput`, one per cluster size (1, 2, 3 subagents, each a fresh
//!   installation): 50 warm-up orders, then `N` orders of `ordo_bench::workload`'s workflow
//!   (`true`, no shell, `parallelism` `PARALLELISM`) added in bulk (`ADD_BATCH` a request);
//!   `jobs_per_s` = `N` / (first `Added` → last `Finished`, event `ts`); CPU of the
//!   controller, the director and the subagents over the phase (user + system; the jobs' own
//!   CPU apart as `jobs_cpu_ms`), and the stage percentiles.
//! - `subagents_takeover`: a fresh cluster of 3 subagents with `leaseTimeout`
//!   `LEASE_TIMEOUT_MS`; `TAKEOVER_ORDERS` orders of a `restartable` job (a script that writes
//!   `$ORDO_ORDER_ID $ORDO_ATTEMPT $ORDO_SUBAGENT` to a file, then waits for a go file, at
//!   most 60 s) are added; once every job runs, the subagent running the most of them gets
//!   SIGKILL. Per order of that subagent, `takeover_*_ms` runs from the kill to its second
//!   `ProcessingStarted` received on the event stream (this program's clock), the restart on
//!   another subagent (checked in the file: attempt 2 ran elsewhere). It is dominated by the
//!   lease: the director declares the subagent lost `leaseTimeout` after it last heard from
//!   it. Then the go file is written and every order must finish.
//! - `subagents`: the summary, `{"name":"subagents","jobs_per_s_1","jobs_per_s_2",
//!   "jobs_per_s_3","takeover_p50_ms","takeover_p99_ms","lease_timeout_ms"}` (percentiles by
//!   nearest rank).
//!
//! Env: `N` (5000), `PARALLELISM` (8), `PROCESS_LIMIT` (16), `ADD_BATCH` (1000),
//! `LEASE_TIMEOUT_MS` (1000; at least 500), `TAKEOVER_ORDERS` (30), `BENCH_DIR` (/var/tmp: on
//! disk), `BUILD` (1; 0 uses the server binaries as they are), `ORDO_LOG` (the servers'
//! `RUST_LOG`, "warn"), `KEEP` (0; 1 keeps the installation directories).

use anyhow::{Context, anyhow, bail};
use ordo_bench::agent_cluster::{self, DIRECTOR, subagent_ids};
use ordo_bench::local_ordo::{Binaries, LocalOrdo, StartOptions, cpu_of, keep_dir};
use ordo_bench::proc_cpu::{self, CpuTimes};
use ordo_bench::program::{env_flag, env_number, env_text, print_line as print};
use ordo_bench::stats::{json_line, quantile, round as round_to};
use ordo_bench::workload::{self, ADD_BATCH_MAX, bulk_phase, stage_quantiles, until_finished};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WORKFLOW: &str = "subagents";
const TAKEOVER_WORKFLOW: &str = "takeover";
/// Cluster sizes measured.
const SIZES: [usize; 3] = [1, 2, 3];
/// Longest wait for subagents to be live, jobs to start, or orders to be taken over.
const WAIT_MS: u64 = 60_000;

struct Settings {
    n: usize,
    parallelism: u32,
    process_limit: u32,
    add_batch: usize,
    lease_timeout_ms: u64,
    takeover_orders: usize,
    bench_dir: PathBuf,
    build: bool,
    log_filter: String,
    keep: bool,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        Ok(Settings {
            n: env_number("N", 5000usize)?.max(1),
            parallelism: env_number("PARALLELISM", 8u32)?.max(1),
            process_limit: env_number("PROCESS_LIMIT", 16u32)?.max(1),
            add_batch: env_number("ADD_BATCH", 1000usize)?.clamp(1, ADD_BATCH_MAX),
            lease_timeout_ms: env_number("LEASE_TIMEOUT_MS", 1000u64)?.max(500),
            takeover_orders: env_number("TAKEOVER_ORDERS", 30usize)?.max(3),
            bench_dir: PathBuf::from(env_text("BENCH_DIR", "/var/tmp")),
            build: env_flag("BUILD", true)?,
            log_filter: env_text("ORDO_LOG", "warn"),
            keep: env_flag("KEEP", false)?,
        })
    }

    fn start_options(&self, binaries: &Binaries) -> StartOptions {
        StartOptions {
            parent_dir: self.bench_dir.clone(),
            agents: Vec::new(),
            journal_fsync: true,
            log_filter: self.log_filter.clone(),
            agent_limits: Vec::new(),
            binaries: binaries.clone(),
        }
    }
}

fn say(text: impl std::fmt::Display) {
    eprintln!("[subagents] {text}");
}

/// A fresh cluster of `subagents`, deployed with the director's document and `workflows`,
/// every subagent live.
async fn start_cluster(
    s: &Settings,
    binaries: &Binaries,
    subagents: &[String],
    workflows: &[(&str, String)],
) -> anyhow::Result<LocalOrdo> {
    let ordo = agent_cluster::start(&s.start_options(binaries), subagents).await?;
    let ready = async {
        let director = agent_cluster::director_yaml(
            &ordo.local,
            subagents,
            s.process_limit,
            s.lease_timeout_ms,
        )?;
        let mut files = vec![("agent.yaml", director)];
        files.extend(workflows.iter().cloned());
        ordo.client.deploy(&files).await?;
        ordo.client
            .wait_connected(DIRECTOR, Duration::from_millis(WAIT_MS))
            .await?;
        agent_cluster::wait_subagents(
            &ordo.client,
            subagents,
            "live",
            Duration::from_millis(WAIT_MS),
        )
        .await
    }
    .await;
    if let Err(e) = ready {
        bail!("{e:#}\n{}", ordo.logs());
    }
    Ok(ordo)
}

/// Stops the servers and keeps the directory when asked.
fn finish(s: &Settings, mut ordo: LocalOrdo) -> anyhow::Result<()> {
    if !ordo.stop() {
        say("a server did not stop on SIGTERM within 10 s and was killed");
    }
    if s.keep {
        say(format!("kept {}", keep_dir(&mut ordo.dir)?.display()));
    }
    Ok(())
}

/// The CPU times of the controller and of every agent (director and subagents) together.
fn cpu_now(ordo: &LocalOrdo, ticks: f64) -> anyhow::Result<(CpuTimes, CpuTimes)> {
    let controller = cpu_of(&ordo.controller, ticks)?;
    let mut agents = CpuTimes::default();
    for (_, p) in &ordo.agents {
        let c = cpu_of(p, ticks)?;
        agents.user_ms += c.user_ms;
        agents.system_ms += c.system_ms;
        agents.children_ms += c.children_ms;
    }
    Ok((controller, agents))
}

/// `N` orders through a cluster of `size` subagents; jobs/s.
async fn throughput(
    s: &Settings,
    binaries: &Binaries,
    size: usize,
    ticks: f64,
) -> anyhow::Result<f64> {
    let subagents = subagent_ids(size);
    let ordo = start_cluster(
        s,
        binaries,
        &subagents,
        &[("w.yaml", workload::workflow_yaml(WORKFLOW, s.parallelism))],
    )
    .await?;
    say(format!(
        "{size} subagent(s): {} orders, parallelism {}, in {}",
        s.n,
        s.parallelism,
        ordo.dir.path().display()
    ));
    let result = async {
        let client = &ordo.client;
        let mut follower = client.follow(client.last_event_id().await?).await?;
        workload::warm_up(client, &mut follower, WORKFLOW, "w").await?;
        let ids: Vec<String> = (0..s.n).map(|i| format!("t-{i}")).collect();
        let (controller_before, agents_before) = cpu_now(&ordo, ticks)?;
        let bulk = bulk_phase(client, &mut follower, WORKFLOW, &ids, s.add_batch).await?;
        let (controller_after, agents_after) = cpu_now(&ordo, ticks)?;
        let controller = controller_after.since(&controller_before);
        let agents = agents_after.since(&agents_before);
        let mut fields: Vec<(String, Json)> = vec![
            ("name".into(), json!("subagents_throughput")),
            ("subagents".into(), json!(size)),
            ("n".into(), json!(s.n)),
            ("parallelism".into(), json!(s.parallelism)),
            ("process_limit".into(), json!(s.process_limit)),
            ("jobs_per_s".into(), json!(round_to(bulk.orders_per_s, 1))),
        ];
        fields.extend(bulk.fields());
        fields.extend([
            (
                "controller_cpu_ms".into(),
                json!(round_to(controller.own_ms(), 0)),
            ),
            ("agents_cpu_ms".into(), json!(round_to(agents.own_ms(), 0))),
            ("jobs_cpu_ms".into(), json!(round_to(agents.children_ms, 0))),
            (
                "cpu_ms_per_order".into(),
                json!(round_to(
                    (controller.own_ms() + agents.own_ms()) / s.n as f64,
                    3
                )),
            ),
        ]);
        fields.extend(stage_quantiles(bulk.timelines.values()));
        print(&json_line(&fields))?;
        anyhow::Ok(bulk.orders_per_s)
    }
    .await;
    if let Err(e) = &result {
        say(format!("failed: {e:#}\n{}", ordo.logs()));
    }
    finish(s, ordo)?;
    result
}

/// The lines `order attempt subagent` the takeover job wrote.
fn runs(path: &Path) -> Vec<(String, u32, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some((
                p.next()?.to_owned(),
                p.next()?.parse().ok()?,
                p.next()?.to_owned(),
            ))
        })
        .collect()
}

/// Waits until the takeover job wrote `count` lines.
async fn wait_runs(path: &Path, count: usize) -> anyhow::Result<Vec<(String, u32, String)>> {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let found = runs(path);
        if found.len() >= count {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {count} jobs started within {WAIT_MS} ms",
                found.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kill -9 of the subagent running most jobs of a `restartable` job; kill → restart of each
/// of its orders (ms).
async fn takeover(s: &Settings, binaries: &Binaries) -> anyhow::Result<Vec<f64>> {
    let work = tempfile::Builder::new()
        .prefix("ordo-bench-takeover-")
        .tempdir_in(&s.bench_dir)
        .with_context(|| format!("creating a directory in {}", s.bench_dir.display()))?;
    let runs_file = work.path().join("runs.txt");
    let go = work.path().join("go");
    let workflow = format!(
        r#"workflow: {TAKEOVER_WORKFLOW}
jobs:
  job:
    agent: {DIRECTOR}
    parallelism: {parallelism}
    restartable: true
    script: |
      echo "$ORDO_ORDER_ID $ORDO_ATTEMPT $ORDO_SUBAGENT" >> {runs}
      for i in $(seq 1 1200); do [ -e {go} ] && break; sleep 0.05; done
steps:
  - run: job
"#,
        parallelism = s.takeover_orders,
        runs = runs_file.display(),
        go = go.display()
    );
    let subagents = subagent_ids(3);
    let mut ordo = start_cluster(s, binaries, &subagents, &[("t.yaml", workflow)]).await?;
    say(format!(
        "takeover: {} orders on 3 subagents, leaseTimeout {} ms, in {}",
        s.takeover_orders,
        s.lease_timeout_ms,
        ordo.dir.path().display()
    ));
    let result = async {
        let client = ordo.client.clone();
        let mut follower = client.follow(client.last_event_id().await?).await?;
        let ids: Vec<String> = (0..s.takeover_orders).map(|i| format!("k-{i}")).collect();
        let orders: Vec<Json> = ids
            .iter()
            .map(|id| workload::order(TAKEOVER_WORKFLOW, id))
            .collect();
        client.add_orders(&orders).await?;
        let started = wait_runs(&runs_file, ids.len()).await?;
        let mut by_subagent: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (order, _, sub) in &started {
            by_subagent.entry(sub).or_default().insert(order);
        }
        let (victim, victims) = by_subagent
            .iter()
            .max_by_key(|(_, orders)| orders.len())
            .map(|(sub, orders)| {
                (
                    sub.to_string(),
                    orders
                        .iter()
                        .map(|o| o.to_string())
                        .collect::<BTreeSet<_>>(),
                )
            })
            .ok_or_else(|| anyhow!("no job started"))?;
        say(format!(
            "jobs per subagent {:?}; kill -9 of {victim} ({} jobs)",
            by_subagent
                .iter()
                .map(|(k, v)| (k.to_string(), v.len()))
                .collect::<Vec<_>>(),
            victims.len()
        ));
        let killed_at = Instant::now();
        ordo.agents
            .iter_mut()
            .find(|(id, _)| *id == victim)
            .map(|(_, p)| p.kill9())
            .ok_or_else(|| anyhow!("no process of {victim}"))?;
        // Each victim order's second `ProcessingStarted` is its restart.
        let mut starts: BTreeMap<String, usize> = BTreeMap::new();
        let mut takeover_ms: BTreeMap<String, f64> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
        while takeover_ms.len() < victims.len() {
            let wait = deadline.saturating_duration_since(Instant::now());
            let e = follower.next(wait).await.with_context(|| {
                format!(
                    "{} of {} orders of {victim} restarted",
                    takeover_ms.len(),
                    victims.len()
                )
            })?;
            if e.kind != "ProcessingStarted" || !victims.contains(&e.key) {
                continue;
            }
            let count = starts.entry(e.key.clone()).or_default();
            *count += 1;
            if *count == 2 {
                let ms = e.seen.duration_since(killed_at).as_secs_f64() * 1000.0;
                takeover_ms.insert(e.key.clone(), ms);
            }
        }
        // The restarts ran on the other subagents.
        let restarted = wait_runs(&runs_file, ids.len() + victims.len()).await?;
        for (order, attempt, sub) in &restarted {
            if *attempt > 1 && *sub == victim {
                bail!("{order} attempt {attempt} ran on the killed {victim}");
            }
        }
        std::fs::write(&go, "").with_context(|| format!("writing {}", go.display()))?;
        until_finished(&mut follower, &ids, Duration::from_millis(WAIT_MS)).await?;
        anyhow::Ok((victim, takeover_ms.into_values().collect::<Vec<f64>>()))
    }
    .await;
    if let Err(e) = &result {
        say(format!("failed: {e:#}\n{}", ordo.logs()));
    }
    finish(s, ordo)?;
    let (victim, values) = result?;
    print(&json_line(&[
        ("name", json!("subagents_takeover")),
        ("orders", json!(s.takeover_orders)),
        ("killed", json!(victim)),
        ("taken_over", json!(values.len())),
        ("lease_timeout_ms", json!(s.lease_timeout_ms)),
        (
            "takeover_p50_ms",
            json!(quantile(&values, 0.5).map(|v| round_to(v, 1))),
        ),
        (
            "takeover_p99_ms",
            json!(quantile(&values, 0.99).map(|v| round_to(v, 1))),
        ),
        (
            "takeover_min_ms",
            json!(quantile(&values, 0.0).map(|v| round_to(v, 1))),
        ),
    ]))?;
    Ok(values)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings::from_env()?;
    let binaries = Binaries::of_this_build(s.build)?;
    let ticks = proc_cpu::ticks_per_s();
    let mut jobs_per_s = Vec::with_capacity(SIZES.len());
    for size in SIZES {
        jobs_per_s.push(throughput(&s, &binaries, size, ticks).await?);
    }
    let values = takeover(&s, &binaries).await?;
    let q = |q: f64| quantile(&values, q).map(|v| round_to(v, 1));
    print(&json_line(&[
        ("name", json!("subagents")),
        ("jobs_per_s_1", json!(round_to(jobs_per_s[0], 1))),
        ("jobs_per_s_2", json!(round_to(jobs_per_s[1], 1))),
        ("jobs_per_s_3", json!(round_to(jobs_per_s[2], 1))),
        ("takeover_p50_ms", json!(q(0.5))),
        ("takeover_p99_ms", json!(q(0.99))),
        ("lease_timeout_ms", json!(s.lease_timeout_ms)),
    ]))?;
    Ok(())
}
