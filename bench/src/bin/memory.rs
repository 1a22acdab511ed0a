//! Memory of a real controller: after a load, under a burst of whole-state reads, and after a
//! restart at the same state.
//!
//! `cargo run --release -p ordo-bench --bin memory`; JSON lines on stdout (progress on stderr).
//! A fresh controller and one agent (separate processes of this build, `BUILD=1` rebuilds
//! them first) run `N` one-job orders (`true`) to their end; then, each with the controller's
//! `VmRSS` and `VmHWM` (kB, `/proc/<pid>/status`):
//!
//! - `memory_loaded`: after the last order finished and `SETTLE_MS` of quiet.
//! - `memory_state_burst`: `BURST` concurrent `GET /api/v1/state` read to their end:
//!   answers by status, the answer's size, the highest `VmRSS` sampled every 10 ms during the
//!   burst (`rss_peak_kb`), and `VmRSS` `SETTLE_MS` after it (`rss_after_kb`).
//! - `memory_restarted`: the controller stopped (SIGTERM) and started again on the same
//!   journal, `SETTLE_MS` after it answers; the agent stays up.
//! - `memory`: the summary, `live_over_restarted` = loaded RSS / restarted RSS.
//!
//! Env: `N` (20000), `BURST` (16), `SETTLE_MS` (2000), `ADD_BATCH` (1000), `FSYNC` (1),
//! `BENCH_DIR` (/var/tmp), `BUILD` (1), `ORDO_LOG` (warn), `KEEP` (0; 1 keeps the installation
//! directory and prints where).

use anyhow::{Context, anyhow, bail};
use ordo_bench::local_ordo::{Binaries, LocalOrdo, StartOptions};
use ordo_bench::stats::json_line;
use serde_json::{Value as Json, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const AGENT: &str = "bench";
const WORKFLOW: &str = "memory";
/// Most orders one request may add (the controller's `orders_per_request_max` default).
const ADD_BATCH_MAX: usize = 10_000;
/// Longest wait for the next event while orders are under way.
const EVENT_TIMEOUT_MS: u64 = 60_000;

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<T>()
            .map_err(|_| anyhow!("{name} must be a whole number, got {text:?}")),
        Err(_) => Ok(default),
    }
}

fn say(text: impl std::fmt::Display) {
    eprintln!("[memory] {text}");
}

fn print(line: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").context("writing to stdout")
}

/// `VmRSS` and `VmHWM` of a process, in kB.
fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = env_number("N", 20_000usize)?.max(1);
    let burst: usize = env_number("BURST", 16usize)?.max(1);
    let settle = Duration::from_millis(env_number("SETTLE_MS", 2000u64)?);
    let add_batch: usize = env_number("ADD_BATCH", 1000usize)?.clamp(1, ADD_BATCH_MAX);
    let fsync = env_number("FSYNC", 1u8)? != 0;
    let build = env_number("BUILD", 1u8)? != 0;
    let keep = env_number("KEEP", 0u8)? != 0;
    let bench_dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let log_filter = std::env::var("ORDO_LOG").unwrap_or_else(|_| "warn".into());
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
    ordo.deploy(&[
        ("agent.yaml", ordo.agent_yaml(AGENT)?),
        (
            "w.yaml",
            format!(
                "workflow: {WORKFLOW}\njobs:\n  job: {{ agent: {AGENT}, command: [\"true\"], parallelism: 4 }}\nsteps:\n  - run: job\n"
            ),
        ),
    ])
    .await?;
    ordo.wait_connected(AGENT, Duration::from_secs(30)).await?;
    let (rss_start, _) = memory_kb(ordo.controller.pid())?;

    say(format!("running {n} orders"));
    let mut follower = ordo.follow(ordo.last_event_id().await?).await?;
    let started = Instant::now();
    let ids: Vec<String> = (0..n).map(|i| format!("m-{i}")).collect();
    for chunk in ids.chunks(add_batch) {
        let orders: Vec<Json> = chunk
            .iter()
            .map(|id| json!({"id": id, "workflow": WORKFLOW}))
            .collect();
        ordo.add_orders(&orders).await?;
    }
    let mut finished = 0;
    while finished < n {
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
    say(format!(
        "{n} orders finished in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    tokio::time::sleep(settle).await;
    let pid = ordo.controller.pid();
    let (rss_loaded, hwm_loaded) = memory_kb(pid)?;
    print(&json_line(&[
        ("name", json!("memory_loaded")),
        ("orders", json!(n)),
        ("rss_start_kb", json!(rss_start)),
        ("rss_kb", json!(rss_loaded)),
        ("hwm_kb", json!(hwm_loaded)),
    ]))?;

    say(format!("{burst} concurrent GET /state"));
    let sampling = {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((rss, _)) = memory_kb(pid) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        });
        (stop, task)
    };
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..burst {
        let api = ordo.api.clone();
        let url = ordo.url("/state");
        readers.spawn(async move { api.request(axum::http::Method::GET, &url, None).await });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut answer_bytes = 0;
    while let Some(done) = readers.join_next().await {
        let answer = done?.map_err(|e| anyhow!("GET /state: {e}"))?;
        *statuses.entry(answer.status.as_u16()).or_default() += 1;
        if answer.status.as_u16() == 200 {
            answer_bytes = answer.body.len();
        }
    }
    sampling.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let rss_peak = sampling.1.await?;
    tokio::time::sleep(settle).await;
    let (rss_after, _) = memory_kb(pid)?;
    print(&json_line(&[
        ("name", json!("memory_state_burst")),
        ("readers", json!(burst)),
        ("answers", json!(statuses)),
        ("answer_bytes", json!(answer_bytes)),
        ("rss_before_kb", json!(rss_loaded)),
        ("rss_peak_kb", json!(rss_peak)),
        ("rss_after_kb", json!(rss_after)),
    ]))?;

    say("restarting the controller");
    ordo.restart_controller(&binaries).await?;
    tokio::time::sleep(settle).await;
    let (rss_restarted, hwm_restarted) = memory_kb(ordo.controller.pid())?;
    print(&json_line(&[
        ("name", json!("memory_restarted")),
        ("orders", json!(n)),
        ("rss_kb", json!(rss_restarted)),
        ("hwm_kb", json!(hwm_restarted)),
    ]))?;
    print(&json_line(&[
        ("name", json!("memory")),
        ("orders", json!(n)),
        ("rss_loaded_kb", json!(rss_loaded)),
        ("rss_state_burst_peak_kb", json!(rss_peak)),
        ("rss_after_state_burst_kb", json!(rss_after)),
        ("rss_restarted_kb", json!(rss_restarted)),
        (
            "live_over_restarted",
            json!((rss_loaded as f64 / rss_restarted.max(1) as f64 * 100.0).round() / 100.0),
        ),
    ]))?;
    if !ordo.stop() {
        say("a server did not stop on SIGTERM within 10 s and was killed");
    }
    if keep {
        let dir = std::mem::replace(&mut ordo.dir, tempfile::tempdir()?);
        say(format!("kept {}", dir.keep().display()));
    }
    Ok(())
}
