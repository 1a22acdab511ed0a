//! Spawn-rate baselines measured with the agent's own launcher, so that every benchmark can
//! compute them in its own run (design §7: same launcher, 2 concurrent workers).
//!
//! - [`raw_spawn_rate_of`]: `workers` tasks, each starting one process at a time with
//!   [`ordo_agent::runner::launch::command`] (tokio::process, own process group, pipes),
//!   reading both pipes to their end and reaping it.
//! - [`runner_rate_of`]: the same jobs through [`Runner::start`] and [`RunningJob::wait`] with
//!   `processes_max = workers` (work directory, return values file, output events, group kill).
//!
//! [`RunningJob::wait`]: ordo_agent::runner::RunningJob::wait

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use ordo_agent::runner::{Executable, JobSpec, Runner, launch};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// One measurement: `n` jobs with `workers` in flight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpawnRate {
    pub n: usize,
    pub workers: usize,
    pub seconds: f64,
    pub per_s: f64,
}

impl SpawnRate {
    fn new(n: usize, workers: usize, seconds: f64) -> SpawnRate {
        let per_s = if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        };
        SpawnRate {
            n,
            workers,
            seconds,
            per_s,
        }
    }
}

/// The trivial job of the baselines: `true`, looked up in `PATH`, without a shell.
pub fn true_job() -> Executable {
    Executable::Argv(vec!["true".to_owned()])
}

/// Raw spawn rate of `true` with the agent's launcher: the baseline other benchmarks divide by.
pub async fn raw_spawn_rate(n: usize, workers: usize) -> anyhow::Result<SpawnRate> {
    let dir = tempfile::tempdir().context("creating a work directory")?;
    raw_spawn_rate_of(&true_job(), dir.path(), n, workers).await
}

/// Raw spawn rate of `executable` in `work_dir` with the agent's launcher.
pub async fn raw_spawn_rate_of(
    executable: &Executable,
    work_dir: &Path,
    n: usize,
    workers: usize,
) -> anyhow::Result<SpawnRate> {
    let workers = workers.max(1);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let jobs = share(n, workers, worker);
        let executable = executable.clone();
        let work_dir = work_dir.to_path_buf();
        tasks.spawn(async move {
            for _ in 0..jobs {
                launch_one(&executable, &work_dir).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a spawn worker panicked")??;
    }
    Ok(SpawnRate::new(n, workers, started.elapsed().as_secs_f64()))
}

async fn launch_one(executable: &Executable, work_dir: &Path) -> anyhow::Result<()> {
    let mut child = launch::command(executable, work_dir)
        .spawn()
        .with_context(|| format!("spawning {executable:?}"))?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let mut stderr = child.stderr.take().context("no stderr pipe")?;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let (read_out, read_err, status) = tokio::join!(
        stdout.read_to_end(&mut out),
        stderr.read_to_end(&mut err),
        child.wait()
    );
    read_out.context("reading stdout")?;
    read_err.context("reading stderr")?;
    let status = status.context("waiting for the child")?;
    if !status.success() {
        bail!("{executable:?} ended with {status}");
    }
    Ok(())
}

/// Rate of `executable` through [`Runner::start`] / `RunningJob::wait`, `workers` at once.
pub async fn runner_rate_of(
    executable: &Executable,
    work_dir: &Path,
    n: usize,
    workers: usize,
) -> anyhow::Result<SpawnRate> {
    let workers = workers.max(1);
    let runner = Runner::new(workers);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let jobs = share(n, workers, worker);
        let runner = runner.clone();
        let spec = JobSpec::new(executable.clone(), PathBuf::from(work_dir));
        tasks.spawn(async move {
            let (tx, mut rx) = mpsc::channel(64);
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            for _ in 0..jobs {
                let job = runner.start(spec.clone(), tx.clone()).await?;
                let terminated = job.wait().await?;
                if terminated.exit_code != Some(0) {
                    bail!("{:?} ended with {terminated:?}", spec.executable);
                }
            }
            drop(tx);
            drain.await.context("output drain panicked")?;
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a runner worker panicked")??;
    }
    Ok(SpawnRate::new(n, workers, started.elapsed().as_secs_f64()))
}

/// The measurement with the median duration (the upper one for an even count); `None` when
/// `rates` is empty. Repeating and taking the median tames a noisy machine.
pub fn median(rates: &[SpawnRate]) -> Option<SpawnRate> {
    let mut sorted = rates.to_vec();
    sorted.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    sorted.get(sorted.len() / 2).copied()
}

/// Jobs of `worker` when `n` are split over `workers` (the first ones take the remainder).
fn share(n: usize, workers: usize, worker: usize) -> usize {
    n / workers + usize::from(worker < n % workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle_duration() {
        let rates: Vec<_> = [3.0, 1.0, 2.0]
            .iter()
            .map(|&s| SpawnRate::new(10, 1, s))
            .collect();
        assert_eq!(median(&rates).map(|r| r.seconds), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn shares_add_up() {
        for (n, w) in [(0, 1), (5, 2), (2000, 2), (7, 3)] {
            assert_eq!((0..w).map(|i| share(n, w, i)).sum::<usize>(), n);
        }
    }
}
