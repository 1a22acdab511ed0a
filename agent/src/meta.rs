//! The agent's metadata: what the controller shows and checks when it registers an agent.
//!
//! Everything is read from `/proc`, `statvfs` and `uname`; a value that cannot be read is
//! reported as 0 or empty rather than failing the request.

use ordo_model::wire::{AgentMeta, JobStats};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Counts of processed jobs, kept in memory since the agent started.
#[derive(Default)]
pub struct JobCounters {
    inner: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl JobCounters {
    /// Records one finished run of `job` (as `workflow/job`) that took `duration_ms`.
    pub fn record(&self, job: &str, duration_ms: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(job.to_owned()).or_default();
        e.0 += 1;
        e.1 += duration_ms;
    }

    fn snapshot(&self) -> Vec<JobStats> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|(job, (n, total))| JobStats {
                job: job.clone(),
                processed: *n,
                average_duration_ms: total.checked_div(*n).unwrap_or(0),
            })
            .collect()
    }
}

/// What the caller knows that `/proc` does not.
pub struct MetaInputs<'a> {
    pub agent_id: &'a str,
    pub agent_run_id: u128,
    pub data_dir: &'a Path,
    pub running_processes: usize,
    pub waiting_jobs: usize,
    pub outbox_bytes: u64,
    pub connected_since_ms: Option<i64>,
    pub jobs: &'a JobCounters,
}

/// What `/proc` says of the host now: what an agent shows in its metadata and a subagent
/// reports to its director.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Host {
    pub cores: u32,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
}

/// Measures the host now (reads `/proc`).
pub fn host() -> Host {
    let (memory_total_bytes, memory_available_bytes) = memory();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut loads = load
        .split_whitespace()
        .take(3)
        .map(|x| x.parse::<f64>().unwrap_or(0.0));
    Host {
        cores: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        load: [
            loads.next().unwrap_or(0.0),
            loads.next().unwrap_or(0.0),
            loads.next().unwrap_or(0.0),
        ],
        memory_total_bytes,
        memory_available_bytes,
    }
}

/// Gathers the agent's metadata now.
pub fn gather(inputs: &MetaInputs<'_>) -> AgentMeta {
    let uname = nix::sys::utsname::uname().ok();
    let text = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let host = host();
    let disk_free_bytes = nix::sys::statvfs::statvfs(inputs.data_dir)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .unwrap_or(0);
    AgentMeta {
        agent_id: inputs.agent_id.to_owned(),
        agent_run_id: inputs.agent_run_id,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: text(|u| u.nodename()),
        os: format!("{} {}", text(|u| u.sysname()), text(|u| u.release())),
        cores: host.cores,
        memory_total_bytes: host.memory_total_bytes,
        memory_available_bytes: host.memory_available_bytes,
        load: host.load,
        disk_free_bytes,
        running_processes: inputs.running_processes as u64,
        waiting_jobs: inputs.waiting_jobs as u64,
        outbox_bytes: inputs.outbox_bytes,
        connected_since_ms: inputs.connected_since_ms,
        jobs: inputs.jobs.snapshot(),
        subagents: Vec::new(),
    }
}

fn memory() -> (u64, u64) {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_plausible_values() {
        let jobs = JobCounters::default();
        jobs.record("wf/a", 10);
        jobs.record("wf/a", 30);
        let m = gather(&MetaInputs {
            agent_id: "a1",
            agent_run_id: 7,
            data_dir: Path::new("/"),
            running_processes: 2,
            waiting_jobs: 0,
            outbox_bytes: 0,
            connected_since_ms: None,
            jobs: &jobs,
        });
        assert!(m.cores >= 1);
        assert!(m.memory_total_bytes > 0);
        assert!(!m.hostname.is_empty());
        assert_eq!(m.jobs[0].processed, 2);
        assert_eq!(m.jobs[0].average_duration_ms, 20);
    }
}
