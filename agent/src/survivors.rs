//! After a restart: killing the process groups of jobs of this run that outlived the agent.
//!
//! Two ways find them (design §7, "on recovery it kills any surviving group"):
//!
//! 1. A `Process` record names the group and its leader's start time: [`kill_stale_group`]
//!    kills it if it is still that job's group (not a reused pid).
//! 2. Every job has `ORDO_RUN=<run id in hex>:<attempt>:<order id>` in its environment (see
//!    [`marker`]). The agent may have died after the spawn and before the `Process` record
//!    was durable; `/proc/<pid>/environ` of every process the agent may read is searched for
//!    markers of its own run (nothing of this run is legitimately running at start), and their
//!    groups are killed. An environment is read up to [`ENVIRON_BYTES_MAX`] bytes.
//!
//! Killing is SIGKILL; then the agent waits up to [`GONE_WAIT_MS`] until no live (non-zombie)
//! member of those groups is left, so a restarted job never runs beside its old process.

use crate::runner::kill_stale_group;
use crate::state::AgentState;
use crate::status::run_id_hex;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp};
use ordo_model::ids::OrderId;
use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, Instant};

/// The environment variable that marks a job's processes with their run, attempt and order.
pub const RUN_MARKER_ENV: &str = "ORDO_RUN";

/// Bytes of `/proc/<pid>/environ` read per process.
pub const ENVIRON_BYTES_MAX: u64 = 1 << 20;

/// How long a restart waits for killed groups to be gone.
pub const GONE_WAIT_MS: u64 = 2_000;

/// The value of [`RUN_MARKER_ENV`] for a job.
pub fn marker(run_id: u128, order: &OrderId, attempt: u32) -> String {
    format!("{}:{attempt}:{order}", run_id_hex(run_id))
}

/// A marked process group of this run found alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub order: OrderId,
    pub attempt: u32,
    pub pgid: u32,
}

/// Kills every surviving group of this run's jobs; returns the marked ones found.
pub fn kill_survivors(state: &AgentState) -> Vec<Found> {
    let mut groups = BTreeSet::new();
    for (order, p) in &state.processes {
        match kill_stale_group(p.pgid, p.start_time_ticks) {
            Ok(true) => {
                tracing::warn!(%order, pgid = p.pgid, "killed the surviving process group of a job");
                groups.insert(p.pgid);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%order, pgid = p.pgid, "cannot check the process group of a job: {e}")
            }
        }
    }
    let prefix = format!("{}:", run_id_hex(state.run_id));
    let own_group = getpgrp().as_raw();
    let mut found: Vec<Found> = Vec::new();
    for process in processes() {
        let Some(value) = marker_of(process.pid) else {
            continue;
        };
        let Some(rest) = value.strip_prefix(&prefix) else {
            continue;
        };
        let Some((attempt, order)) = rest.split_once(':') else {
            continue;
        };
        let (Ok(attempt), Ok(order)) = (attempt.parse::<u32>(), OrderId::new(order)) else {
            continue;
        };
        if process.pgrp > 1 && process.pgrp != own_group {
            let _ = killpg(Pid::from_raw(process.pgrp), Signal::SIGKILL);
            groups.insert(process.pgrp as u32);
        }
        let _ = kill(Pid::from_raw(process.pid), Signal::SIGKILL);
        tracing::warn!(%order, attempt, pid = process.pid, pgid = process.pgrp, "killed a surviving process of a job");
        if !found
            .iter()
            .any(|f| f.order == order && f.attempt == attempt)
        {
            found.push(Found {
                order,
                attempt,
                pgid: process.pgrp.max(0) as u32,
            });
        }
    }
    wait_gone(&groups);
    found
}

/// Waits until no live member of `groups` is left, at most [`GONE_WAIT_MS`].
fn wait_gone(groups: &BTreeSet<u32>) {
    if groups.is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_millis(GONE_WAIT_MS);
    loop {
        let alive: Vec<u32> = processes()
            .filter(|p| p.state != 'Z' && groups.contains(&(p.pgrp.max(0) as u32)))
            .map(|p| p.pid as u32)
            .collect();
        if alive.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::error!(?alive, "processes of killed job groups are still alive");
            return;
        }
        for pid in &alive {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct ProcInfo {
    pid: i32,
    state: char,
    pgrp: i32,
}

/// Every process in `/proc` whose stat can be read (other than this one).
fn processes() -> impl Iterator<Item = ProcInfo> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(move |pid| *pid != me)
        .filter_map(stat_of)
}

/// State and process group from `/proc/<pid>/stat` (the fields after the command name).
fn stat_of(pid: i32) -> Option<ProcInfo> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcInfo { pid, state, pgrp })
}

/// The value of [`RUN_MARKER_ENV`] in a process's environment, if readable and present.
fn marker_of(pid: i32) -> Option<String> {
    let file = std::fs::File::open(format!("/proc/{pid}/environ")).ok()?;
    let mut bytes = Vec::new();
    file.take(ENVIRON_BYTES_MAX).read_to_end(&mut bytes).ok()?;
    let key = format!("{RUN_MARKER_ENV}=");
    bytes
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(key.as_bytes()))
        .and_then(|value| String::from_utf8(value.to_vec()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_names_run_attempt_and_order() {
        let order = OrderId::new("#2026-11-23#nightly@02:00").unwrap();
        let m = marker(0xabc, &order, 3);
        assert_eq!(
            m,
            "00000000000000000000000000000abc:3:#2026-11-23#nightly@02:00"
        );
        let rest = m.strip_prefix(&format!("{}:", run_id_hex(0xabc))).unwrap();
        let (attempt, id) = rest.split_once(':').unwrap();
        assert_eq!(attempt, "3");
        assert_eq!(id, order.as_str());
    }

    #[test]
    fn reads_own_stat() {
        let me = stat_of(std::process::id() as i32).unwrap();
        assert_eq!(me.pgrp, getpgrp().as_raw());
    }
}
