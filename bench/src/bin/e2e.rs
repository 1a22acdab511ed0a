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

use anyhow::Context;
use ordo_bench::local_ordo::{Binaries, Follower, LocalOrdo, StartOptions, keep_dir};
use ordo_bench::proc_cpu::{self, CpuTimes};
use ordo_bench::program::{env_flag, env_number, env_text, print_line as print};
use ordo_bench::slurm::{self, SlurmRun};
use ordo_bench::spawn_rate::{SpawnRate, raw_spawn_rate};
use ordo_bench::stats::{json_line, quantile, round as round_to};
use ordo_bench::workload::{
    self, ADD_BATCH_MAX, AGENT, Latency, bulk_phase, latency_phase, stage_quantiles,
};
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::time::Duration;

const WORKFLOW: &str = "e2e";
const RAW_WARM_UP_JOBS: usize = 50;

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
            slurm: env_flag("SLURM", true)?,
            slurm_scenarios: env_text("SLURM_SCENARIOS", "loop array"),
            bench_dir: PathBuf::from(env_text("BENCH_DIR", "/var/tmp")),
            build: env_flag("BUILD", true)?,
            log_filter: env_text("ORDO_LOG", "warn"),
            keep: env_flag("KEEP", false)?,
        };
        Ok(s)
    }
}

fn say(text: impl std::fmt::Display) {
    eprintln!("[e2e] {text}");
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
    let bulk = bulk_phase(&ordo.client, follower, WORKFLOW, &ids, s.add_batch).await?;
    let (controller_after, agent_after) = cpu_of(ordo, ticks)?;
    let bench = proc_cpu::of_process(std::process::id(), ticks)?.since(&bench_before);
    let controller = controller_after.since(&controller_before);
    let agent = agent_after.since(&agent_before);
    let cpu_ms_per_order = (controller.own_ms() + agent.own_ms()) / s.n as f64;
    let mut fields: Vec<(String, Json)> = vec![
        ("name".into(), json!("e2e_throughput")),
        ("round".into(), json!(round)),
        ("n".into(), json!(s.n)),
        ("parallelism".into(), json!(s.parallelism)),
        ("processes_max".into(), json!(s.processes_max)),
        ("add_batch".into(), json!(s.add_batch)),
    ];
    fields.extend(bulk.fields());
    fields.extend([
        (
            "controller_cpu_ms".into(),
            json!(round_to(controller.own_ms(), 0)),
        ),
        (
            "controller_user_ms".into(),
            json!(round_to(controller.user_ms, 0)),
        ),
        ("agent_cpu_ms".into(), json!(round_to(agent.own_ms(), 0))),
        ("agent_user_ms".into(), json!(round_to(agent.user_ms, 0))),
        ("jobs_cpu_ms".into(), json!(round_to(agent.children_ms, 0))),
        (
            "bench_client_cpu_ms".into(),
            json!(round_to(bench.own_ms(), 0)),
        ),
        (
            "cpu_ms_per_order".into(),
            json!(round_to(cpu_ms_per_order, 3)),
        ),
    ]);
    fields.extend(stage_quantiles(bulk.timelines.values()));
    Ok(Throughput {
        line: json_line(&fields),
        orders_per_s: bulk.orders_per_s,
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
        let client = &ordo.client;
        client
            .deploy(&[
                ("agent.yaml", ordo.agent_yaml(AGENT)?),
                ("e2e.yaml", workload::workflow_yaml(WORKFLOW, s.parallelism)),
            ])
            .await?;
        client
            .wait_connected(AGENT, Duration::from_secs(30))
            .await?;
        let mut follower = client.follow(client.last_event_id().await?).await?;
        say(format!("warm-up: {} orders", workload::WARM_UP_ORDERS));
        workload::warm_up(client, &mut follower, WORKFLOW, "w").await?;
        let latency = if with_latency {
            say(format!(
                "latency: {} orders one at a time, {} ms apart",
                s.latency_n, s.latency_gap_ms
            ));
            let latency = latency_phase(
                client,
                &mut follower,
                WORKFLOW,
                "l",
                s.latency_n,
                s.latency_gap_ms,
            )
            .await?;
            let mut fields = vec![("name".to_owned(), json!("e2e_latency"))];
            fields.extend(latency.fields.iter().cloned());
            print(&json_line(&fields))?;
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
        say(format!("kept {}", keep_dir(&mut ordo.dir)?.display()));
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
