//! Job runner: starts jobs as process groups, streams their output, enforces timeouts and a
//! process limit, and collects their return values.
//!
//! A job is one child process started by [`launch::command`]: `/bin/sh -c <script>` or an argv
//! (a script whose first line is `#!` runs as `<interpreter> [<arg>] <file of the script>`,
//! [`launch::interpreted`]),
//! in its own process group (pgid = pid), stdin `/dev/null`, stdout and stderr piped, the work
//! directory created if missing. [`Runner::start`] waits in a FIFO queue for one of
//! `processes_max` slots, spawns, and returns a [`RunningJob`] whose [`Started`] (pid, pgid,
//! start time) the caller journals before it reports the job as started. [`RunningJob::wait`]
//! then drives the job to its end:
//!
//! - stdout and stderr are read concurrently in reads of at most `log_chunk_bytes_max` bytes,
//!   each forwarded at once as a [`RunEvent`]; after `log_bytes_max` bytes (both streams
//!   together) one [`RunEvent::LogTruncated`] is sent and the rest is read and dropped, so the
//!   job never blocks on a full pipe. A slow receiver holds back reading (backpressure), never
//!   the timeout or a kill.
//! - `timeout_ms` elapsed or [`KillHandle::kill`] with [`KillMode::Term`]: SIGTERM to the
//!   group, then SIGKILL to the group after `grace_timeout_ms` if the leader still runs.
//! - When the leader has exited, the group is sent SIGKILL so that no member outlives the job
//!   (background processes that moved to another group or session escape this). Output still
//!   arriving is read for at most [`OUTPUT_DRAIN_AFTER_EXIT_MS`].
//! - The file named by `$ORDO_RETURN_VALUES` is read into [`Terminated::return_values`]
//!   (format in [`return_values`]) and removed.
//!
//! Dropping a [`RunningJob`] or the future of [`RunningJob::wait`] before the end kills the
//! whole group (SIGKILL). After a crash of the agent, [`kill_stale_group`] finds a surviving
//! group from its journaled pgid and start time.

pub mod launch;
pub mod return_values;

mod job;
mod output;
mod proc_stat;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc};

pub use job::{KillHandle, KillMode, RunningJob};
pub use proc_stat::{kill_stale_group, process_start_time_ticks};

/// Name of the environment variable that holds the path of the return values file.
pub const RETURN_VALUES_ENV: &str = "ORDO_RETURN_VALUES";

/// How long output is still read after the leader exited and its group was killed. Only
/// processes that left the group (their own session or group) can keep a pipe open that long.
pub const OUTPUT_DRAIN_AFTER_EXIT_MS: u64 = 2_000;

/// Default per-job cap of forwarded output (stdout and stderr together): 1 MiB.
pub const LOG_BYTES_MAX_DEFAULT: u64 = 1024 * 1024;

/// Default size of one output chunk event: 64 KiB.
pub const LOG_CHUNK_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Default size limit of the return values file: 64 KiB.
pub const RETURN_VALUES_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Default time between SIGTERM and SIGKILL: 10 s.
pub const GRACE_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// What a job executes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Executable {
    /// A shell script run by `/bin/sh -c`; one whose first line is `#!` runs under that
    /// interpreter instead ([`launch::shebang`]).
    Script(String),
    /// A program and its arguments; a program without `/` is looked up in `PATH`.
    Argv(Vec<String>),
}

/// Everything needed to run one job.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub executable: Executable,
    /// Added to the agent's own environment (and override it).
    pub env: Vec<(String, String)>,
    /// Working directory of the job; created (with its parents) if missing.
    pub work_dir: PathBuf,
    /// Where the file of `$ORDO_RETURN_VALUES` goes (it must exist); `None`: `work_dir`.
    pub return_values_dir: Option<PathBuf>,
    /// Time from spawn until SIGTERM; `None` runs without a limit.
    pub timeout_ms: Option<u64>,
    /// Time from SIGTERM until SIGKILL.
    pub grace_timeout_ms: u64,
    /// Largest payload of one [`RunEvent::Stdout`] / [`RunEvent::Stderr`]; at least 1.
    pub log_chunk_bytes_max: usize,
    /// Output bytes (stdout and stderr together) forwarded per job; the rest is dropped.
    pub log_bytes_max: u64,
    /// Bytes of the return values file that are read; the rest is ignored with a note.
    pub return_values_bytes_max: usize,
    /// The job's leader gets SIGKILL when the agent's thread that spawned it ends (a subagent
    /// killed with -9 leaves no job behind that its director runs again elsewhere); costs the
    /// `posix_spawn` fast path.
    pub die_with_agent: bool,
}

impl JobSpec {
    /// A spec with the default limits, no timeout and no extra environment.
    pub fn new(executable: Executable, work_dir: impl Into<PathBuf>) -> JobSpec {
        JobSpec {
            executable,
            env: Vec::new(),
            work_dir: work_dir.into(),
            return_values_dir: None,
            timeout_ms: None,
            grace_timeout_ms: GRACE_TIMEOUT_MS_DEFAULT,
            log_chunk_bytes_max: LOG_CHUNK_BYTES_MAX_DEFAULT,
            log_bytes_max: LOG_BYTES_MAX_DEFAULT,
            return_values_bytes_max: RETURN_VALUES_BYTES_MAX_DEFAULT,
            die_with_agent: false,
        }
    }

    fn validate(&self) -> Result<(), RunError> {
        let invalid = |reason: String| Err(RunError::InvalidSpec { reason });
        match &self.executable {
            Executable::Argv(argv) if argv.is_empty() => {
                return invalid("the command has no program (empty argv)".into());
            }
            Executable::Argv(argv) if argv.iter().any(|a| a.contains('\0')) => {
                return invalid("a command argument contains a NUL byte".into());
            }
            Executable::Script(script) if script.contains('\0') => {
                return invalid("the script contains a NUL byte".into());
            }
            _ => {}
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return invalid(format!(
                    "environment variable name {key:?} is empty or contains '=' or NUL"
                ));
            }
            if value.contains('\0') {
                return invalid(format!("environment variable {key} contains a NUL byte"));
            }
        }
        if self.log_chunk_bytes_max == 0 {
            return invalid("log_chunk_bytes_max must be at least 1".into());
        }
        Ok(())
    }
}

/// Output of a running job, in the order it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEvent {
    /// At most `log_chunk_bytes_max` bytes of stdout.
    Stdout(Vec<u8>),
    /// At most `log_chunk_bytes_max` bytes of stderr.
    Stderr(Vec<u8>),
    /// Sent once, when the output reached `log_bytes_max`: nothing more is forwarded.
    LogTruncated {
        /// The cap that was reached.
        log_bytes_max: u64,
        /// Bytes dropped when the cap was reached (the rest of that read); the final total is
        /// `Terminated::log_bytes - Terminated::log_bytes_forwarded`.
        dropped_bytes_so_far: u64,
    },
}

/// A job that has been spawned: what the caller journals before it reports "started".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    /// Process group of the job; equal to `pid` (the job leads its own group).
    pub pgid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot): recognises this process
    /// after its pid has been reused.
    pub start_time_ticks: u64,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code, if the leader exited normally.
    pub exit_code: Option<i32>,
    /// Signal number, if the leader was ended by a signal.
    pub signal: Option<i32>,
    /// `timeout_ms` elapsed and the group was signalled.
    pub timed_out: bool,
    /// A [`KillHandle::kill`] request was applied to the running job.
    pub killed: bool,
    /// The leader outlived SIGTERM by `grace_timeout_ms` and the group got SIGKILL.
    pub kill_escalated: bool,
    /// `key=value` pairs from the return values file, in file order (a repeated key keeps
    /// its first position and its last value).
    pub return_values: Vec<(String, String)>,
    /// Remarks for the order log: ignored return value lines, output that stayed open.
    pub notes: Vec<String>,
    /// Time from spawn until the leader exited.
    pub duration_ms: u64,
    /// Bytes the job wrote to stdout and stderr (all of it was read).
    pub log_bytes: u64,
    /// Bytes forwarded as [`RunEvent::Stdout`] / [`RunEvent::Stderr`].
    pub log_bytes_forwarded: u64,
    /// Output was cut at `log_bytes_max`.
    pub log_truncated: bool,
}

/// Why a job could not be run or followed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid job: {reason}")]
    InvalidSpec { reason: String },
    #[error("cannot create the work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot read the start time of process {pid} from /proc: {reason}")]
    ProcStat { pid: u32, reason: String },
    #[error("waiting for process {pid} failed: {source}")]
    Wait { pid: u32, source: std::io::Error },
    #[error("cannot signal process group {pgid}: {source}")]
    Signal { pgid: u32, source: nix::Error },
    #[error("process group {pgid} is not a job's group (0, 1, out of range or the agent's own)")]
    NotAJobGroup { pgid: u32 },
    #[error("the runner has been closed")]
    Closed,
    #[error("subagent {subagent}: {reason}")]
    Remote { subagent: String, reason: String },
    /// The job's subagent was lost (its lease expired): the outcome is
    /// `Disrupted(ProcessLost)`.
    #[error("the job's process was lost: {reason}")]
    ProcessLost { reason: String },
}

/// Starts jobs with at most `processes_max` running at once; the others wait in FIFO order.
/// Cloning gives another handle on the same slots.
#[derive(Clone, Debug)]
pub struct Runner {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    slots: Arc<Semaphore>,
    processes_max: usize,
    waiting: AtomicUsize,
    job_seq: AtomicU64,
    /// Differs between runners (creation time and pid), so that file names made from
    /// `(instance, job_seq)` never meet a file left behind by an earlier agent.
    instance: u64,
}

/// Counts a caller in the queue for as long as it waits, even if its future is dropped.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        WaitingGuard(counter)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn instance_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

impl Runner {
    /// A runner with `processes_max` slots (0 is taken as 1).
    pub fn new(processes_max: usize) -> Runner {
        let processes_max = processes_max.clamp(1, Semaphore::MAX_PERMITS);
        Runner {
            shared: Arc::new(Shared {
                slots: Arc::new(Semaphore::new(processes_max)),
                processes_max,
                waiting: AtomicUsize::new(0),
                job_seq: AtomicU64::new(0),
                instance: instance_id(),
            }),
        }
    }

    /// Waits (FIFO) for a process slot, then spawns the job. Returns once the process exists;
    /// the caller must then poll [`RunningJob::wait`] and drain `output` concurrently.
    /// Events go to `output` in order; if its receiver is dropped they are discarded and the
    /// job runs on.
    pub async fn start(
        &self,
        spec: JobSpec,
        output: mpsc::Sender<RunEvent>,
    ) -> Result<RunningJob, RunError> {
        spec.validate()?;
        let permit = {
            let _waiting = WaitingGuard::new(&self.shared.waiting);
            Arc::clone(&self.shared.slots)
                .acquire_owned()
                .await
                .map_err(|_| RunError::Closed)?
        };
        let seq = self.shared.job_seq.fetch_add(1, Ordering::Relaxed);
        job::spawn(spec, (self.shared.instance, seq), output, permit)
    }

    /// Jobs holding a process slot (spawning or running).
    pub fn running(&self) -> usize {
        self.shared.processes_max - self.shared.slots.available_permits()
    }

    /// Callers of [`Runner::start`] waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::Relaxed)
    }

    /// The process limit.
    pub fn processes_max(&self) -> usize {
        self.shared.processes_max
    }

    /// Refuses new starts: callers waiting for a slot and later callers get
    /// [`RunError::Closed`]; running jobs are not touched.
    pub fn close(&self) {
        self.shared.slots.close();
    }
}
