//! Memory of a real controller: after a load, under bursts of large reads, and after a restart
//! at the same state.
//!
//! `cargo run --release -p ordo-bench --bin memory`; JSON lines on stdout (progress on stderr).
//! A fresh controller and one agent (separate processes of this build, `BUILD=1` rebuilds
//! them first) run `N` one-job orders to their end; then, each with the controller's `VmRSS`
//! (kB, `/proc/<pid>/status`; `VmHWM` is the highest it was):
//!
//! - `memory_loaded`: after the last order finished and `SETTLE_MS` of quiet (`rss_anon_kb`
//!   is the heap's share, the rest is mostly the mapped executable).
//! - `memory_burst`, one line per path of `BURSTS`: `BURST` concurrent `GET` of that path
//!   read to their end: answers by status, the largest answer's size, the highest `VmRSS`
//!   sampled every 10 ms during the burst (`rss_peak_kb`), and `VmRSS` `SETTLE_MS` after it
//!   (`rss_after_kb`). The bursts run one after the other, each from where the previous left.
//! - `memory_restarted`: the controller stopped (SIGTERM) and started again on the same
//!   journal, `SETTLE_MS` after it answers; the agent stays up.
//! - `memory_after_load`: the summary. `live_rss_mb` is `memory_loaded`, `restarted_rss_mb`
//!   `memory_restarted`, `ratio` their quotient; `state_burst_peak_rss_mb` and
//!   `after_burst_rss_mb` are the `/state` burst's (`after_burst_ratio`: after / before it).
//!
//! The load: orders added by `ADD_CLIENTS` concurrent clients, `ADD_BATCH` orders a request;
//! the job runs `JOB` (a command, split at spaces; default `true`) or the shell script
//! `SCRIPT` (e.g. `seq 1 2000` for output), `parallelism: PARALLELISM`, restartable;
//! `FOLLOWERS` more clients follow the event stream during the load; `AGENT_KILLS` times the
//! agent is killed (SIGKILL) and started again at once, evenly over the load.
//!
//! Env: `N` (20000), `BURST` (16), `BURSTS` (`/state /orders /events?after=0&timeout=1000`),
//! `SETTLE_MS` (2000), `ADD_BATCH` (1000), `ADD_CLIENTS` (1), `JOB` (`true`), `SCRIPT`,
//! `PARALLELISM` (4), `FOLLOWERS` (0), `AGENT_KILLS` (0), `FSYNC` (1), `BENCH_DIR`
//! (/var/tmp), `BUILD` (1), `ORDO_LOG` (warn), `KEEP` (0; 1 keeps the installation directory
//! and prints where), `PAUSE_FILE` (after the load, writes the controller's pid into this file
//! and waits until the file is removed, so that a profiler can look at the live process).

use anyhow::{Context, anyhow, bail};
use ordo_bench::local_ordo::{Binaries, LocalOrdo, StartOptions, keep_dir};
use ordo_bench::program::{env_flag, env_number, print_line as print};
use ordo_bench::stats::json_line;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const AGENT: &str = "bench";
const WORKFLOW: &str = "memory";
/// Most orders one request may add (the controller's `orders_per_request_max` default).
const ADD_BATCH_MAX: usize = 10_000;
/// Longest wait for the next event while orders are under way.
const EVENT_TIMEOUT_MS: u64 = 60_000;
/// How often `VmRSS` is sampled during a burst.
const SAMPLE_MS: u64 = 10;
/// Longest wait for `PAUSE_FILE` to be removed.
const PAUSE_MS_MAX: u64 = 3_600_000;

fn say(text: impl std::fmt::Display) {
    eprintln!("[memory] {text}");
}

/// `VmRSS`, `VmHWM` and `RssAnon` of a process, in kB.
fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

fn mb(kb: u64) -> f64 {
    (kb as f64 / 1024.0 * 10.0).round() / 10.0
}

fn ratio(a: u64, b: u64) -> f64 {
    (a as f64 / b.max(1) as f64 * 100.0).round() / 100.0
}

/// What one burst of concurrent reads did to the controller's memory.
struct Burst {
    statuses: BTreeMap<u16, usize>,
    answer_bytes: usize,
    rss_before_kb: u64,
    rss_peak_kb: u64,
    rss_after_kb: u64,
}

/// `readers` concurrent `GET path`, read to their end, with the controller's `VmRSS` sampled
/// meanwhile and `settle` after.
async fn burst(
    ordo: &LocalOrdo,
    pid: u32,
    path: &str,
    readers: usize,
    settle: Duration,
) -> anyhow::Result<Burst> {
    let (rss_before_kb, _, _) = memory_kb(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok((rss, _, _)) = memory_kb(pid) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(SAMPLE_MS)).await;
            }
            peak
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..readers {
        let api = ordo.client.http.clone();
        let url = ordo.client.url(path);
        tasks.spawn(async move { api.request(axum::http::Method::GET, &url, None).await });
    }
    let mut statuses = BTreeMap::<u16, usize>::new();
    let mut answer_bytes = 0;
    while let Some(done) = tasks.join_next().await {
        let answer = done?.map_err(|e| anyhow!("GET {path}: {e}"))?;
        *statuses.entry(answer.status.as_u16()).or_default() += 1;
        if answer.status.is_success() {
            answer_bytes = answer_bytes.max(answer.body.len());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rss_peak_kb = sampler.await?.max(rss_before_kb);
    tokio::time::sleep(settle).await;
    let (rss_after_kb, _, _) = memory_kb(pid)?;
    Ok(Burst {
        statuses,
        answer_bytes,
        rss_before_kb,
        rss_peak_kb,
        rss_after_kb,
    })
}

/// Adds `ids` as orders of the bench workflow: `clients` concurrent clients, `batch` orders
/// a request.
async fn add_all(
    ordo: &LocalOrdo,
    ids: &[String],
    batch: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let requests: Arc<Vec<Json>> = Arc::new(
        ids.chunks(batch)
            .map(|chunk| {
                let orders: Vec<Json> = chunk
                    .iter()
                    .map(|id| json!({"id": id, "workflow": WORKFLOW}))
                    .collect();
                json!({ "orders": orders })
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut adders = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (api, url, next, requests) = (
            ordo.client.http.clone(),
            ordo.client.url("/orders"),
            next.clone(),
            requests.clone(),
        );
        adders.spawn(async move {
            loop {
                let Some(body) = requests.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return anyhow::Ok(());
                };
                api.post_json::<_, Json>(&url, body)
                    .await
                    .map_err(|e| anyhow!("adding orders: {e}"))?;
            }
        });
    }
    while let Some(done) = adders.join_next().await {
        done??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = env_number("N", 20_000usize)?.max(1);
    let readers: usize = env_number("BURST", 16usize)?.max(1);
    let bursts: Vec<String> = std::env::var("BURSTS")
        .unwrap_or_else(|_| "/state /orders /events?after=0&timeout=1000".into())
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let settle = Duration::from_millis(env_number("SETTLE_MS", 2000u64)?);
    let add_batch: usize = env_number("ADD_BATCH", 1000usize)?.clamp(1, ADD_BATCH_MAX);
    let add_clients: usize = env_number("ADD_CLIENTS", 1usize)?.max(1);
    let parallelism: u64 = env_number("PARALLELISM", 4u64)?.max(1);
    let followers: usize = env_number("FOLLOWERS", 0usize)?;
    let agent_kills: usize = env_number("AGENT_KILLS", 0usize)?;
    let fsync = env_flag("FSYNC", true)?;
    let build = env_flag("BUILD", true)?;
    let keep = env_flag("KEEP", false)?;
    let bench_dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let log_filter = std::env::var("ORDO_LOG").unwrap_or_else(|_| "warn".into());
    let run = match std::env::var("SCRIPT") {
        Ok(script) => format!("script: {}", json!(script)),
        Err(_) => {
            let job = std::env::var("JOB").unwrap_or_else(|_| "true".into());
            format!(
                "command: {}",
                json!(job.split_whitespace().collect::<Vec<_>>())
            )
        }
    };
    let binaries = Binaries::of_this_build(build)?;

    let mut ordo = LocalOrdo::start(&StartOptions {
        parent_dir: bench_dir,
        agents: vec![AGENT.into()],
        journal_fsync: fsync,
        log_filter,
        agent_limits: vec![],
        binaries: binaries.clone(),
    })
    .await?;
    ordo.client.deploy(&[
        ("agent.yaml", ordo.agent_yaml(AGENT)?),
        (
            "w.yaml",
            format!(
                "workflow: {WORKFLOW}\njobs:\n  job: {{ agent: {AGENT}, {run}, parallelism: {parallelism}, restartable: true }}\nsteps:\n  - run: job\n"
            ),
        ),
    ])
    .await?;
    ordo.client
        .wait_connected(AGENT, Duration::from_secs(30))
        .await?;
    let (rss_start, _, _) = memory_kb(ordo.controller.pid())?;

    say(format!("running {n} orders"));
    let mut follower = ordo
        .client
        .follow(ordo.client.last_event_id().await?)
        .await?;
    let mut watchers = tokio::task::JoinSet::new();
    for _ in 0..followers {
        let mut f = ordo
            .client
            .follow(ordo.client.last_event_id().await?)
            .await?;
        watchers.spawn(async move { while f.next(Duration::from_secs(3600)).await.is_ok() {} });
    }
    let started = Instant::now();
    let ids: Vec<String> = (0..n).map(|i| format!("m-{i}")).collect();
    add_all(&ordo, &ids, add_batch, add_clients).await?;
    let mut finished = 0;
    let mut kills = 0;
    while finished < n {
        if kills < agent_kills && finished >= n * (kills + 1) / (agent_kills + 1) {
            kills += 1;
            say(format!(
                "kill -9 of the agent at {finished} finished orders"
            ));
            ordo.kill9_and_restart_agent(AGENT, &binaries)?;
        }
        let e = follower
            .next(Duration::from_millis(EVENT_TIMEOUT_MS))
            .await
            .with_context(|| format!("after {finished} finished orders\n{}", ordo.logs()))?;
        match e.kind.as_str() {
            "Finished" => finished += 1,
            "Failed" | "Cancelled" => bail!("order {} ended with {}", e.key, e.kind),
            _ => {}
        }
    }
    drop(follower);
    watchers.abort_all();
    say(format!(
        "{n} orders finished in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    tokio::time::sleep(settle).await;
    let pid = ordo.controller.pid();
    let (rss_loaded, hwm_loaded, anon_loaded) = memory_kb(pid)?;
    print(&json_line(&[
        ("name", json!("memory_loaded")),
        ("orders", json!(n)),
        ("rss_start_kb", json!(rss_start)),
        ("rss_kb", json!(rss_loaded)),
        ("rss_anon_kb", json!(anon_loaded)),
        ("hwm_kb", json!(hwm_loaded)),
    ]))?;
    if let Ok(path) = std::env::var("PAUSE_FILE") {
        say(format!(
            "controller pid {pid}: waiting until {path} is removed"
        ));
        std::fs::write(&path, pid.to_string()).with_context(|| format!("writing {path}"))?;
        let deadline = Instant::now() + Duration::from_millis(PAUSE_MS_MAX);
        while std::path::Path::new(&path).exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let mut state_burst = None;
    for path in &bursts {
        say(format!("{readers} concurrent GET {path}"));
        let b = burst(&ordo, pid, path, readers, settle).await?;
        print(&json_line(&[
            ("name", json!("memory_burst")),
            ("path", json!(path)),
            ("readers", json!(readers)),
            ("answers", json!(b.statuses)),
            ("answer_bytes", json!(b.answer_bytes)),
            ("rss_before_kb", json!(b.rss_before_kb)),
            ("rss_peak_kb", json!(b.rss_peak_kb)),
            ("rss_after_kb", json!(b.rss_after_kb)),
        ]))?;
        if path == "/state" {
            state_burst = Some(b);
        }
    }

    say("restarting the controller");
    ordo.restart_controller(&binaries).await?;
    tokio::time::sleep(settle).await;
    let (rss_restarted, hwm_restarted, anon_restarted) = memory_kb(ordo.controller.pid())?;
    print(&json_line(&[
        ("name", json!("memory_restarted")),
        ("orders", json!(n)),
        ("rss_kb", json!(rss_restarted)),
        ("rss_anon_kb", json!(anon_restarted)),
        ("hwm_kb", json!(hwm_restarted)),
    ]))?;
    let (peak, after, after_ratio) = match &state_burst {
        Some(b) => (
            json!(mb(b.rss_peak_kb)),
            json!(mb(b.rss_after_kb)),
            json!(ratio(b.rss_after_kb, b.rss_before_kb)),
        ),
        None => (Json::Null, Json::Null, Json::Null),
    };
    print(&json_line(&[
        ("name", json!("memory_after_load")),
        ("orders", json!(n)),
        ("live_rss_mb", json!(mb(rss_loaded))),
        ("restarted_rss_mb", json!(mb(rss_restarted))),
        ("ratio", json!(ratio(rss_loaded, rss_restarted))),
        ("state_burst_peak_rss_mb", peak),
        ("after_burst_rss_mb", after),
        ("after_burst_ratio", after_ratio),
    ]))?;
    if !ordo.stop() {
        say("a server did not stop on SIGTERM within 10 s and was killed");
    }
    if keep {
        say(format!("kept {}", keep_dir(&mut ordo.dir)?.display()));
    }
    Ok(())
}
