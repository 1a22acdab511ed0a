//! End-to-end benchmark: one-job orders (`true`, no shell) through a real controller and one
//! real agent, each its own process of this build (`target/release/ordo-controller`,
//! `ordo-agent`, rebuilt first), with fsync on, next to the raw spawn rate of the agent's own
//! launcher and Slurm on the same machine, measured in the same run.
//!
//! `cargo run --release -p ordo-bench --bin e2e`; JSON lines on stdout (progress on stderr).
//! `REPEAT` rounds, each: the raw spawn rate, then a fresh controller and agent (deploy,
//! warm-up, and in the first round the latency phase), then the throughput phase:
//!
//! - `raw_spawn`: `ordo_bench::spawn_rate::raw_spawn_rate(N, 2)`: `N` × `true` through the
//!   agent's launcher with 2 workers, with this program's CPU (`launcher_cpu_ms`) and the
//!   jobs' (`jobs_cpu_ms`) meanwhile.
//! - `e2e_latency` (first round): on an idle system, `LATENCY_N` orders added one at a time
//!   (each waits for the previous one to finish, then `LATENCY_GAP_MS`). `client_*`: add →
//!   `ProcessingStarted` as the client sees it (POST sent → event received on the event
//!   stream; µs clock); `ts_*`: the same from the events' own timestamps (`Added.ts` →
//!   `ProcessingStarted.ts`, whole ms); `add_answer_*`: POST sent → answer (journaled);
//!   `seen_<event>_*`: POST sent → that event received, for the breakdown.
//! - `e2e_throughput`: `N` orders added in bulk (`ADD_BATCH` per request); the time runs from
//!   the first `Added` to the last `Finished` event journaled (event `ts`). CPU is the
//!   controller's and agent's user + system time over the phase (`/proc/<pid>/stat`; the jobs'
//!   own CPU apart as `jobs_cpu_ms`, this program's as `bench_client_cpu_ms`).
//!   `jobs_running_mean`: jobs running on average (sum of started → processed over the time;
//!   `ProcessingStarted` is journaled before the spawn, and a job the agent queued ahead for
//!   its next free process slot counts from then). Stage percentiles from event
//!   timestamps (ms): added → attached → started → processed → finished.
//! - the lines of `bench/slurm.sh` with the same N (or `{"name":"slurm","skipped":…}`).
//! - `e2e`: the summary, `{"name":"e2e","n","orders_per_s","raw_spawn_per_s","slurm_per_s",
//!   "ratio_raw","ratio_slurm","latency_p50_ms","latency_p99_ms","cpu_ms_per_order",…}`: the
//!   medians over the rounds; `ratio_raw` is the median of each round's Ordo rate over the raw
//!   rate of the same round; `slurm_per_s` is Slurm's fastest scenario; the latencies are the
//!   client-side ones.
//!
//! A client follows the controller's event stream over a WebSocket throughout, as a cockpit
//! would; its cost is in the controller's CPU.
//!
//! Env: `N` (2000), `REPEAT` (3), `LATENCY_N` (200), `LATENCY_GAP_MS` (20), `PARALLELISM`
//! (the job's `parallelism`, 4), `PROCESSES_MAX` (the agent's `processes_max`; its default,
//! 64, when unset), `ADD_BATCH` (1000), `SLURM` (1; 0 skips it), `SLURM_SCENARIOS` ("loop
//! array"), `BENCH_DIR` (/var/tmp: on disk), `BUILD` (1; 0 uses the server binaries as they
//! are), `ORDO_LOG` (the servers' `RUST_LOG`, "warn"), `KEEP` (1 keeps the installation
//! directories and prints where).

use anyhow::{Context, bail};
use ordo_bench::local_ordo::{Binaries, Event, Follower, LocalOrdo, StartOptions};
use ordo_bench::proc_cpu::{self, CpuTimes};
use ordo_bench::slurm::{self, SlurmRun};
use ordo_bench::spawn_rate::{SpawnRate, raw_spawn_rate};
use ordo_bench::stats::{json_line, quantile, round as round_to};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const AGENT: &str = "bench";
const WORKFLOW: &str = "e2e";
const WARM_UP_ORDERS: usize = 50;
const RAW_WARM_UP_JOBS: usize = 50;
/// Longest wait for the next event while orders are under way.
const EVENT_TIMEOUT_MS: u64 = 30_000;
/// Most orders one request may add (the controller's `orders_per_request_max` default).
const ADD_BATCH_MAX: usize = 10_000;

struct Settings {
    n: usize,
    latency_n: usize,
    latency_gap_ms: u64,
    parallelism: u32,
    processes_max: Option<usize>,
    add_batch: usize,
    repeat: usize,
    slurm: bool,
    slurm_scenarios: String,
    bench_dir: PathBuf,
    build: bool,
    log_filter: String,
    keep: bool,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<T>()
            .map_err(|_| anyhow::anyhow!("{name} must be a whole number, got {text:?}")),
        Err(_) => Ok(default),
    }
}

fn env_text(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let s = Settings {
            n: env_number("N", 2000usize)?.max(1),
            latency_n: env_number("LATENCY_N", 200usize)?,
            latency_gap_ms: env_number("LATENCY_GAP_MS", 20u64)?,
            parallelism: env_number("PARALLELISM", 4u32)?.max(1),
            processes_max: match std::env::var("PROCESSES_MAX") {
                Ok(_) => Some(env_number("PROCESSES_MAX", 0usize)?.max(1)),
                Err(_) => None,
            },
            add_batch: env_number("ADD_BATCH", 1000usize)?.clamp(1, ADD_BATCH_MAX),
            repeat: env_number("REPEAT", 3usize)?.max(1),
            slurm: env_number("SLURM", 1u8)? != 0,
            slurm_scenarios: env_text("SLURM_SCENARIOS", "loop array"),
            bench_dir: PathBuf::from(env_text("BENCH_DIR", "/var/tmp")),
            build: env_number("BUILD", 1u8)? != 0,
            log_filter: env_text("ORDO_LOG", "warn"),
            keep: env_number("KEEP", 0u8)? != 0,
        };
        Ok(s)
    }
}

fn say(text: impl std::fmt::Display) {
    eprintln!("[e2e] {text}");
}

fn print(line: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").context("writing to stdout")
}

fn workflow_yaml(parallelism: u32) -> String {
    format!(
        "workflow: {WORKFLOW}\njobs:\n  job: {{ agent: {AGENT}, command: [\"true\"], parallelism: {parallelism} }}\nsteps:\n  - run: job\n"
    )
}

fn order(id: &str) -> Json {
    json!({"id": id, "workflow": WORKFLOW})
}

/// The instants (event `ts`, ms) one order went through.
#[derive(Clone, Debug, Default)]
struct Timeline {
    added: Option<i64>,
    attached: Option<i64>,
    started: Option<i64>,
    processed: Option<i64>,
    finished: Option<i64>,
}

impl Timeline {
    /// Records `e` when it is one of the steps followed; an error when the order failed.
    fn record(&mut self, e: &Event) -> anyhow::Result<()> {
        let slot = match e.kind.as_str() {
            "Added" => &mut self.added,
            "Attached" => &mut self.attached,
            "ProcessingStarted" => &mut self.started,
            "Processed" => &mut self.processed,
            "Finished" => &mut self.finished,
            "Failed" | "Cancelled" | "FailedInFork" => {
                bail!("order {} ended with {} (event {})", e.key, e.kind, e.id)
            }
            _ => return Ok(()),
        };
        slot.get_or_insert(e.ts_ms);
        Ok(())
    }
}

const STAGES: [&str; 5] = [
    "added_attached",
    "attached_started",
    "started_processed",
    "processed_finished",
    "added_finished",
];

/// `<stage>_p50_ms` and `<stage>_p99_ms` of each stage over `timelines`.
fn stage_quantiles<'a>(
    timelines: impl Iterator<Item = &'a Timeline> + Clone,
) -> Vec<(String, Json)> {
    let span = |a: Option<i64>, b: Option<i64>| Some((b? - a?) as f64);
    let mut out = Vec::new();
    for stage in STAGES {
        let values: Vec<f64> = timelines
            .clone()
            .filter_map(|t| match stage {
                "added_attached" => span(t.added, t.attached),
                "attached_started" => span(t.attached, t.started),
                "started_processed" => span(t.started, t.processed),
                "processed_finished" => span(t.processed, t.finished),
                _ => span(t.added, t.finished),
            })
            .collect();
        out.push((format!("{stage}_p50_ms"), json!(quantile(&values, 0.5))));
        out.push((format!("{stage}_p99_ms"), json!(quantile(&values, 0.99))));
    }
    out
}

/// The fields of a line, then the stage percentiles.
fn with_stages(fields: &[(&str, Json)], stages: Vec<(String, Json)>) -> String {
    let mut all: Vec<(String, Json)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    all.extend(stages);
    json_line(&all)
}

/// Reads events until every order of `ids` has finished; their timelines, and the instant
/// the last `Finished` was received.
async fn until_finished(
    follower: &mut Follower,
    ids: &[String],
    within: Duration,
) -> anyhow::Result<(HashMap<String, Timeline>, Instant, usize)> {
    let mut timelines: HashMap<String, Timeline> = ids
        .iter()
        .map(|id| (id.clone(), Timeline::default()))
        .collect();
    let deadline = Instant::now() + within;
    let mut left = ids.len();
    let mut events = 0usize;
    let mut last_seen = Instant::now();
    while left > 0 {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(EVENT_TIMEOUT_MS));
        let e = follower
            .next(wait)
            .await
            .with_context(|| format!("{left} of {} orders not finished", ids.len()))?;
        let Some(t) = timelines.get_mut(&e.key) else {
            continue;
        };
        events += 1;
        let was_finished = t.finished.is_some();
        t.record(&e)?;
        if !was_finished && t.finished.is_some() {
            left -= 1;
            last_seen = e.seen;
        }
    }
    Ok((timelines, last_seen, events))
}

struct Latency {
    line: String,
    client_p50_ms: Option<f64>,
    client_p99_ms: Option<f64>,
}

/// Event types whose arrival the latency phase times, from the add request being sent.
const SEEN: [(&str, &str); 5] = [
    ("Added", "seen_added"),
    ("Attached", "seen_attached"),
    ("ProcessingStarted", "seen_started"),
    ("Processed", "seen_processed"),
    ("Finished", "seen_finished"),
];

/// One order at a time on an idle system: add → `ProcessingStarted`.
async fn latency_phase(
    ordo: &LocalOrdo,
    follower: &mut Follower,
    s: &Settings,
) -> anyhow::Result<Latency> {
    let mut ack_ms = Vec::with_capacity(s.latency_n);
    let mut ts_ms = Vec::with_capacity(s.latency_n);
    // Per entry of SEEN: ms from sending the add to receiving that event.
    let mut seen_ms: Vec<Vec<f64>> = vec![Vec::with_capacity(s.latency_n); SEEN.len()];
    for i in 0..s.latency_n {
        let id = format!("l-{i}");
        let sent = Instant::now();
        ordo.add_order(&order(&id)).await?;
        ack_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        let mut timeline = Timeline::default();
        let deadline = Instant::now() + Duration::from_millis(EVENT_TIMEOUT_MS);
        while timeline.finished.is_none() {
            let wait = deadline.saturating_duration_since(Instant::now());
            let e = follower
                .next(wait)
                .await
                .with_context(|| format!("order {id} did not finish"))?;
            if e.key != id {
                continue;
            }
            if let Some(k) = SEEN.iter().position(|(kind, _)| *kind == e.kind) {
                seen_ms[k].push(e.seen.duration_since(sent).as_secs_f64() * 1000.0);
            }
            timeline.record(&e)?;
        }
        if let (Some(a), Some(b)) = (timeline.added, timeline.started) {
            ts_ms.push((b - a) as f64);
        }
        tokio::time::sleep(Duration::from_millis(s.latency_gap_ms)).await;
    }
    let q = |v: &[f64], p| quantile(v, p).map(|x| round_to(x, 3));
    let started = &seen_ms[2];
    let mut fields: Vec<(String, Json)> = vec![
        ("name".into(), json!("e2e_latency")),
        ("n".into(), json!(s.latency_n)),
        ("gap_ms".into(), json!(s.latency_gap_ms)),
        ("client_p50_ms".into(), json!(q(started, 0.5))),
        ("client_p99_ms".into(), json!(q(started, 0.99))),
        ("client_max_ms".into(), json!(q(started, 1.0))),
        ("ts_p50_ms".into(), json!(q(&ts_ms, 0.5))),
        ("ts_p99_ms".into(), json!(q(&ts_ms, 0.99))),
        ("add_answer_p50_ms".into(), json!(q(&ack_ms, 0.5))),
        ("add_answer_p99_ms".into(), json!(q(&ack_ms, 0.99))),
    ];
    for ((_, name), values) in SEEN.iter().zip(&seen_ms) {
        fields.push((format!("{name}_p50_ms"), json!(q(values, 0.5))));
        fields.push((format!("{name}_p99_ms"), json!(q(values, 0.99))));
    }
    Ok(Latency {
        line: json_line(&fields),
        client_p50_ms: q(started, 0.5),
        client_p99_ms: q(started, 0.99),
    })
}

struct Throughput {
    line: String,
    orders_per_s: f64,
    cpu_ms_per_order: f64,
}

fn cpu_of(ordo: &LocalOrdo, ticks: f64) -> anyhow::Result<(CpuTimes, CpuTimes)> {
    Ok((
        ordo_bench::local_ordo::cpu_of(&ordo.controller, ticks)?,
        ordo_bench::local_ordo::cpu_of(ordo.agent(AGENT)?, ticks)?,
    ))
}

/// `N` orders in bulk: first `Added` → last `Finished`.
async fn throughput_phase(
    ordo: &LocalOrdo,
    follower: &mut Follower,
    s: &Settings,
    ticks: f64,
    round: usize,
) -> anyhow::Result<Throughput> {
    let ids: Vec<String> = (0..s.n).map(|i| format!("t-{i}")).collect();
    let (controller_before, agent_before) = cpu_of(ordo, ticks)?;
    let bench_before = proc_cpu::of_process(std::process::id(), ticks)?;
    let sent = Instant::now();
    for chunk in ids.chunks(s.add_batch) {
        let orders: Vec<Json> = chunk.iter().map(|id| order(id)).collect();
        let answer = ordo.add_orders(&orders).await?;
        let added = answer["results"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|r| r["added"] == true).count());
        if added != chunk.len() {
            bail!("{added} of {} orders were added: {answer}", chunk.len());
        }
    }
    let added_s = sent.elapsed().as_secs_f64();
    let within = Duration::from_millis(300_000u64.max(s.n as u64 * 50));
    let (timelines, last_seen, events) = until_finished(follower, &ids, within).await?;
    let (controller_after, agent_after) = cpu_of(ordo, ticks)?;
    let bench = proc_cpu::of_process(std::process::id(), ticks)?.since(&bench_before);
    let first_added = timelines.values().filter_map(|t| t.added).min();
    let last_finished = timelines.values().filter_map(|t| t.finished).max();
    let (Some(first), Some(last)) = (first_added, last_finished) else {
        bail!("no Added or Finished event was seen");
    };
    let seconds = ((last - first) as f64 / 1000.0).max(0.001);
    let client_seconds = last_seen.duration_since(sent).as_secs_f64();
    let controller = controller_after.since(&controller_before);
    let agent = agent_after.since(&agent_before);
    let cpu_ms_per_order = (controller.own_ms() + agent.own_ms()) / s.n as f64;
    let orders_per_s = s.n as f64 / seconds;
    // Jobs running on average (Little's law over started → processed). `ProcessingStarted`
    // is journaled before the spawn, so a job queued ahead for a slot counts before it runs.
    let running_ms: i64 = timelines
        .values()
        .filter_map(|t| Some(t.processed? - t.started?))
        .sum();
    let jobs_running_mean = running_ms as f64 / 1000.0 / seconds;
    let stages = stage_quantiles(timelines.values());
    let line = with_stages(
        &[
            ("name", json!("e2e_throughput")),
            ("round", json!(round)),
            ("n", json!(s.n)),
            ("parallelism", json!(s.parallelism)),
            ("processes_max", json!(s.processes_max)),
            ("add_batch", json!(s.add_batch)),
            ("seconds", json!(round_to(seconds, 3))),
            ("orders_per_s", json!(round_to(orders_per_s, 1))),
            ("client_seconds", json!(round_to(client_seconds, 3))),
            ("add_seconds", json!(round_to(added_s, 3))),
            (
                "events_per_order",
                json!(round_to(events as f64 / s.n as f64, 2)),
            ),
            ("jobs_running_mean", json!(round_to(jobs_running_mean, 2))),
            ("controller_cpu_ms", json!(round_to(controller.own_ms(), 0))),
            ("controller_user_ms", json!(round_to(controller.user_ms, 0))),
            ("agent_cpu_ms", json!(round_to(agent.own_ms(), 0))),
            ("agent_user_ms", json!(round_to(agent.user_ms, 0))),
            ("jobs_cpu_ms", json!(round_to(agent.children_ms, 0))),
            ("bench_client_cpu_ms", json!(round_to(bench.own_ms(), 0))),
            ("cpu_ms_per_order", json!(round_to(cpu_ms_per_order, 3))),
        ],
        stages,
    );
    Ok(Throughput {
        line,
        orders_per_s,
        cpu_ms_per_order,
    })
}

/// One fresh installation: deployment, warm-up, the latency phase when asked, and the
/// throughput phase.
async fn ordo_round(
    s: &Settings,
    binaries: &Binaries,
    ticks: f64,
    round: usize,
    with_latency: bool,
) -> anyhow::Result<(Option<Latency>, Throughput)> {
    let mut ordo = LocalOrdo::start(&StartOptions {
        parent_dir: s.bench_dir.clone(),
        agents: vec![AGENT.to_owned()],
        journal_fsync: true,
        log_filter: s.log_filter.clone(),
        agent_limits: s
            .processes_max
            .map(|p| format!("processes_max = {p}"))
            .into_iter()
            .collect(),
        binaries: binaries.clone(),
    })
    .await?;
    say(format!(
        "round {round}: controller pid {}, agent pid {}, in {}",
        ordo.controller.pid(),
        ordo.agent(AGENT)?.pid(),
        ordo.dir.path().display()
    ));
    let result = async {
        ordo.deploy(&[
            ("agent.yaml", ordo.agent_yaml(AGENT)?),
            ("e2e.yaml", workflow_yaml(s.parallelism)),
        ])
        .await?;
        ordo.wait_connected(AGENT, Duration::from_secs(30)).await?;
        let mut follower = ordo.follow(ordo.last_event_id().await?).await?;
        say(format!("warm-up: {WARM_UP_ORDERS} orders"));
        let warm: Vec<String> = (0..WARM_UP_ORDERS).map(|i| format!("w-{i}")).collect();
        ordo.add_orders(&warm.iter().map(|id| order(id)).collect::<Vec<_>>())
            .await?;
        until_finished(&mut follower, &warm, Duration::from_secs(60)).await?;
        let latency = if with_latency {
            say(format!(
                "latency: {} orders one at a time, {} ms apart",
                s.latency_n, s.latency_gap_ms
            ));
            let latency = latency_phase(&ordo, &mut follower, s).await?;
            print(&latency.line)?;
            Some(latency)
        } else {
            None
        };
        say(format!(
            "throughput: {} orders, {} per request, parallelism {}",
            s.n, s.add_batch, s.parallelism
        ));
        let throughput = throughput_phase(&ordo, &mut follower, s, ticks, round).await?;
        print(&throughput.line)?;
        anyhow::Ok((latency, throughput))
    }
    .await;
    if let Err(e) = &result {
        say(format!("failed: {e:#}\n{}", ordo.logs()));
    }
    if !ordo.stop() {
        say("a server did not stop on SIGTERM within 10 s and was killed");
    }
    if s.keep {
        let dir = std::mem::replace(&mut ordo.dir, tempfile::tempdir()?);
        say(format!("kept {}", dir.keep().display()));
    }
    result
}

/// The raw spawn rate of `N` × `true` with 2 workers, printed as a `raw_spawn` line.
async fn raw_round(s: &Settings, round: usize, ticks: f64) -> anyhow::Result<SpawnRate> {
    say(format!(
        "round {round}: raw spawn of {} x `true`, 2 workers",
        s.n
    ));
    let before = proc_cpu::of_process(std::process::id(), ticks)?;
    let rate = raw_spawn_rate(s.n, 2).await?;
    let cpu = proc_cpu::of_process(std::process::id(), ticks)?.since(&before);
    print(&json_line(&[
        ("name", json!("raw_spawn")),
        ("round", json!(round)),
        ("n", json!(rate.n)),
        ("workers", json!(rate.workers)),
        ("seconds", json!(round_to(rate.seconds, 4))),
        ("per_s", json!(round_to(rate.per_s, 1))),
        ("launcher_cpu_ms", json!(round_to(cpu.own_ms(), 0))),
        ("jobs_cpu_ms", json!(round_to(cpu.children_ms, 0))),
    ]))?;
    Ok(rate)
}

fn slurm_phase(s: &Settings) -> anyhow::Result<SlurmRun> {
    if !s.slurm {
        say("Slurm skipped: SLURM=0");
        return Ok(SlurmRun::Skipped("SLURM=0".into()));
    }
    say(format!(
        "Slurm: {} jobs per scenario ({})",
        s.n, s.slurm_scenarios
    ));
    let run = slurm::run(&slurm::script(), s.n, &s.slurm_scenarios)?;
    match &run {
        SlurmRun::Ran(lines) => {
            for line in lines {
                print(line)?;
            }
        }
        SlurmRun::Skipped(why) => {
            say(format!("Slurm skipped: {why}"));
            print(&json_line(&[
                ("name", json!("slurm")),
                ("skipped", json!(why)),
            ]))?;
        }
    }
    Ok(run)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings::from_env()?;
    let binaries = Binaries::of_this_build(s.build)?;
    let ticks = proc_cpu::ticks_per_s();
    raw_spawn_rate(RAW_WARM_UP_JOBS, 2).await?;
    let mut latency = None;
    let mut rounds = Vec::with_capacity(s.repeat);
    for round in 0..s.repeat {
        let raw = raw_round(&s, round, ticks).await?;
        let (lat, throughput) = ordo_round(&s, &binaries, ticks, round, round == 0).await?;
        latency = latency.or(lat);
        rounds.push((raw, throughput));
    }
    let slurm = slurm_phase(&s)?;
    let best = slurm.best();
    let slurm_per_s = best.as_ref().map(|(_, per_s)| *per_s);
    let middle = |values: Vec<f64>| quantile(&values, 0.5).unwrap_or(0.0);
    let orders_per_s = middle(rounds.iter().map(|(_, t)| t.orders_per_s).collect());
    let raw_per_s = middle(rounds.iter().map(|(r, _)| r.per_s).collect());
    // Each round's Ordo rate over the raw rate of the same round (same load), then the median.
    let ratio_raw = middle(
        rounds
            .iter()
            .map(|(r, t)| t.orders_per_s / r.per_s.max(f64::MIN_POSITIVE))
            .collect(),
    );
    let cpu_ms_per_order = middle(rounds.iter().map(|(_, t)| t.cpu_ms_per_order).collect());
    let ratio_slurm = slurm_per_s
        .filter(|p| *p > 0.0)
        .map(|p| round_to(orders_per_s / p, 3));
    let latency = latency.context("the first round measures latency")?;
    print(&json_line(&[
        ("name", json!("e2e")),
        ("n", json!(s.n)),
        ("orders_per_s", json!(round_to(orders_per_s, 1))),
        ("raw_spawn_per_s", json!(round_to(raw_per_s, 1))),
        ("slurm_per_s", json!(slurm_per_s)),
        ("ratio_raw", json!(round_to(ratio_raw, 3))),
        ("ratio_slurm", json!(ratio_slurm)),
        ("latency_p50_ms", json!(latency.client_p50_ms)),
        ("latency_p99_ms", json!(latency.client_p99_ms)),
        ("cpu_ms_per_order", json!(round_to(cpu_ms_per_order, 3))),
        ("repeat", json!(s.repeat)),
        ("parallelism", json!(s.parallelism)),
        ("processes_max", json!(s.processes_max)),
        ("slurm_scenario", json!(best.map(|(name, _)| name))),
    ]))?;
    Ok(())
}
