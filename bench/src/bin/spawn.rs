//! Spawn-rate benchmark: N trivial jobs started with the agent's launcher (tokio::process, own
//! process group, pipes) with 1 and 2 concurrent workers, and the same through the agent's
//! `Runner`. Prints one JSON line per measurement.
//!
//! `cargo run --release -p ordo-bench --bin spawn`; env `N` jobs per measurement (default
//! 2000), `REPEAT` rounds (default 3): each round measures raw then runner, and the lines give
//! the round with the median duration, so both sides see the same load.
//! Compare with `../shared/bench/spawn_baseline.sh` (C and Python launchers) run with the same N.

use std::io::Write;

use anyhow::Context;
use ordo_agent::runner::Executable;
use ordo_bench::spawn_rate::{SpawnRate, median, raw_spawn_rate_of, runner_rate_of, true_job};
use serde_json::json;

const N_DEFAULT: usize = 2000;
const REPEAT_DEFAULT: usize = 3;
const WARM_UP_JOBS: usize = 50;
const WORKERS: [usize; 2] = [1, 2];

/// One JSON line, keys in a fixed order: name, launcher, cmd, n, workers, seconds, per_s,
/// repeat (and, for the runner, the raw rate of the same run and the ratio to it).
fn print_line(
    name: &str,
    launcher: &str,
    cmd: &str,
    rate: &SpawnRate,
    repeat: usize,
    raw_per_s: Option<f64>,
) -> std::io::Result<()> {
    let mut line = format!(
        "{{\"name\":{},\"launcher\":{},\"cmd\":{},\"n\":{},\"workers\":{},\"seconds\":{:.4},\"per_s\":{:.1},\"repeat\":{}",
        json!(name),
        json!(launcher),
        json!(cmd),
        rate.n,
        rate.workers,
        rate.seconds,
        rate.per_s,
        repeat
    );
    if let Some(raw) = raw_per_s.filter(|raw| *raw > 0.0) {
        line.push_str(&format!(
            ",\"raw_spawn_per_s\":{raw:.1},\"ratio\":{:.3}",
            rate.per_s / raw
        ));
    }
    line.push('}');
    writeln!(std::io::stdout().lock(), "{line}")
}

fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .parse::<usize>()
            .with_context(|| format!("{name} must be a whole number, got {text:?}")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_count("N", N_DEFAULT)?;
    let repeat = env_count("REPEAT", REPEAT_DEFAULT)?.max(1);
    let dir = tempfile::tempdir().context("creating a work directory")?;
    let jobs = [
        ("true", true_job()),
        ("sh -c true", Executable::Script("true".to_owned())),
    ];

    // Page cache, PATH lookup and the runtime's threads warm up first.
    for (_, job) in &jobs {
        raw_spawn_rate_of(job, dir.path(), WARM_UP_JOBS, 2).await?;
        runner_rate_of(job, dir.path(), WARM_UP_JOBS, 2).await?;
    }

    for (cmd, job) in &jobs {
        for workers in WORKERS {
            let mut raw = Vec::with_capacity(repeat);
            let mut runner = Vec::with_capacity(repeat);
            for _ in 0..repeat {
                raw.push(raw_spawn_rate_of(job, dir.path(), n, workers).await?);
                runner.push(runner_rate_of(job, dir.path(), n, workers).await?);
            }
            let (Some(raw), Some(runner)) = (median(&raw), median(&runner)) else {
                continue;
            };
            print_line("raw_spawn", "tokio_process", cmd, &raw, repeat, None)?;
            print_line(
                "runner_spawn",
                "runner",
                cmd,
                &runner,
                repeat,
                Some(raw.per_s),
            )?;
        }
    }
    Ok(())
}
