//! One running job: spawn, then a single task that reads both pipes, reaps the leader,
//! enforces the timeout and kill requests, and forwards output without ever letting a slow
//! receiver delay a signal.

use std::future::{Future, poll_fn};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};
use tokio::time::{Instant, Sleep, sleep_until};

use super::output::LogCap;
use super::proc_stat::{read_stat, signal_group};
use super::{
    Executable, JobSpec, OUTPUT_DRAIN_AFTER_EXIT_MS, RETURN_VALUES_ENV, RunError, RunEvent,
    Started, Terminated, launch, return_values,
};

/// How to stop a running job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum KillMode {
    /// SIGTERM to the group, SIGKILL after the job's grace timeout.
    Term = 1,
    /// SIGKILL to the group at once.
    Kill = 2,
}

/// Shared between a [`RunningJob`] and its [`KillHandle`]s.
#[derive(Debug, Default)]
struct KillState {
    /// Strongest [`KillMode`] requested so far, 0 for none.
    requested: AtomicU8,
    /// The leader has been reaped: no signal may be sent any more.
    finished: AtomicBool,
    notify: Notify,
}

/// Stops a running job from another task (cancel). Signals are sent by the task polling
/// [`RunningJob::wait`], and only while the job's leader has not been reaped, so a handle never
/// signals a reused pid.
#[derive(Clone, Debug)]
pub struct KillHandle {
    state: Arc<KillState>,
}

impl KillHandle {
    /// A handle of a job that is not a local process (one on a subagent): its runner waits
    /// for [`KillHandle::requested`] and calls [`KillHandle::finish`] at the job's end.
    pub fn detached() -> KillHandle {
        KillHandle {
            state: Arc::default(),
        }
    }

    /// Waits until a kill stronger than `beyond` is asked for; the strongest mode asked.
    pub async fn requested(&self, beyond: Option<KillMode>) -> KillMode {
        let floor = beyond.map_or(0, |m| m as u8);
        loop {
            let notified = self.state.notify.notified();
            match self.state.requested.load(Ordering::Acquire) {
                r if r <= floor => notified.await,
                1 => return KillMode::Term,
                _ => return KillMode::Kill,
            }
        }
    }

    /// The job ended: later kills are refused.
    pub fn finish(&self) {
        self.state.finished.store(true, Ordering::Release);
    }

    /// Asks for the job to be stopped; returns `false` if it had already ended.
    pub fn kill(&self, mode: KillMode) -> bool {
        if self.state.finished.load(Ordering::Acquire) {
            return false;
        }
        self.state.requested.fetch_max(mode as u8, Ordering::AcqRel);
        self.state.notify.notify_one();
        true
    }
}

/// SIGKILLs the group when dropped while armed, i.e. while the leader has not been reaped
/// (so the pgid cannot have been reused).
#[derive(Debug)]
struct GroupGuard {
    pgid: u32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// A spawned job. Poll [`RunningJob::wait`] soon: output is read only while it runs, and the
/// job blocks once a pipe is full. Dropping it kills the job's process group.
#[derive(Debug)]
pub struct RunningJob {
    // Declared first so that it is dropped first: the group dies before the child handle goes.
    guard: GroupGuard,
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    started: Started,
    spawned_at: Instant,
    limits: Limits,
    return_values_path: PathBuf,
    output: mpsc::Sender<RunEvent>,
    kill: Arc<KillState>,
    _permit: OwnedSemaphorePermit,
    /// The file of a `#!` script, removed with the job.
    _script: Option<ScriptFile>,
}

/// A `#!` script's file; removed when dropped.
#[derive(Debug)]
struct ScriptFile(PathBuf);

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    timeout_ms: Option<u64>,
    grace_timeout_ms: u64,
    log_chunk_bytes_max: usize,
    log_bytes_max: u64,
    return_values_bytes_max: usize,
}

/// Creates the work directory (one `mkdir` when it exists already).
fn ensure_work_dir(dir: &Path) -> Result<(), RunError> {
    let fail = |source| RunError::WorkDir {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        // If it is not a directory, spawning fails with a clear error.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => std::fs::create_dir_all(dir).map_err(fail),
        Err(e) => Err(fail(e)),
    }
}

pub(super) fn spawn(
    spec: JobSpec,
    (instance, seq): (u64, u64),
    output: mpsc::Sender<RunEvent>,
    permit: OwnedSemaphorePermit,
) -> Result<RunningJob, RunError> {
    ensure_work_dir(&spec.work_dir)?;
    let work_dir = if spec.work_dir.is_absolute() {
        spec.work_dir
    } else {
        std::env::current_dir()
            .map_err(|source| RunError::WorkDir {
                path: spec.work_dir.clone(),
                source,
            })?
            .join(spec.work_dir)
    };
    // Unique per runner and job: no earlier job, nor an earlier agent, left a file of this name.
    let return_values_path = spec
        .return_values_dir
        .as_deref()
        .unwrap_or(&work_dir)
        .join(format!(".ordo-return-values-{instance:016x}-{seq}"));

    // A script with a `#!` line runs under its interpreter, from a file of its own beside
    // the return values (removed when the job ends or is dropped).
    let shebang = match &spec.executable {
        Executable::Script(script) => launch::shebang(script).map(|s| (script, s)),
        Executable::Argv(_) => None,
    };
    let (mut command, script_file) = match shebang {
        Some((script, (interpreter, arg))) => {
            let path =
                return_values_path.with_file_name(format!(".ordo-script-{instance:016x}-{seq}"));
            std::fs::write(&path, script).map_err(|source| RunError::Spawn {
                program: format!("{interpreter} (writing the script to {})", path.display()),
                source,
            })?;
            let file = ScriptFile(path);
            (
                launch::interpreted(interpreter, arg, &file.0, &work_dir),
                Some(file),
            )
        }
        None => (launch::command(&spec.executable, &work_dir), None),
    };
    command
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(RETURN_VALUES_ENV, &return_values_path);
    if spec.die_with_agent {
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let spawn_error = |source| RunError::Spawn {
        program: launch::program_name(&spec.executable).to_owned(),
        source,
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(source) => {
            // Tell a bad work directory apart from a bad program (both can be ENOENT/ENOTDIR).
            if !work_dir.is_dir() {
                return Err(RunError::WorkDir {
                    path: work_dir,
                    source,
                });
            }
            return Err(spawn_error(source));
        }
    };
    let spawned_at = Instant::now();
    let pid = child.id().ok_or_else(|| {
        spawn_error(std::io::Error::other(
            "the process has no id right after spawning",
        ))
    })?;
    // From here on the group dies with `guard` if anything fails.
    let guard = GroupGuard {
        pgid: pid,
        armed: true,
    };
    let start_time_ticks = match read_stat(pid)? {
        Some(stat) => stat.start_time_ticks,
        None => {
            return Err(RunError::ProcStat {
                pid,
                reason: "the process vanished before it was reaped".into(),
            });
        }
    };
    Ok(RunningJob {
        guard,
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        child,
        started: Started {
            pid,
            pgid: pid,
            start_time_ticks,
        },
        spawned_at,
        limits: Limits {
            timeout_ms: spec.timeout_ms,
            grace_timeout_ms: spec.grace_timeout_ms,
            log_chunk_bytes_max: spec.log_chunk_bytes_max,
            log_bytes_max: spec.log_bytes_max,
            return_values_bytes_max: spec.return_values_bytes_max,
        },
        return_values_path,
        output,
        kill: Arc::new(KillState::default()),
        _permit: permit,
        _script: script_file,
    })
}

/// Where the job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// SIGTERM sent; the timer fires SIGKILL.
    Terminating,
    /// SIGKILL sent; waiting for the leader.
    Killed,
    /// Leader reaped and group killed; reading what is left in the pipes until the timer.
    Draining,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// One thing that happened, as found by one poll.
enum Step {
    Read(Stream, usize),
    Closed(Stream, Option<std::io::Error>),
    Exited(std::io::Result<ExitStatus>),
    Timer,
    KillRequested,
    /// The leader is reaped, the pipes are closed and every event has been handed over.
    Flushed,
}

/// At most two events wait for room in the channel: a chunk and the truncation mark.
#[derive(Default)]
struct Pending {
    first: Option<RunEvent>,
    second: Option<RunEvent>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
    fn push(&mut self, event: RunEvent) {
        if self.first.is_none() {
            self.first = Some(event);
        } else {
            self.second = Some(event);
        }
    }
    fn pop(&mut self) -> Option<RunEvent> {
        let event = self.first.take();
        self.first = self.second.take();
        event
    }
}

/// Delivers events in order: `try_send` while nothing is pending, otherwise queue (the read
/// loop stops reading until the queue is empty). A dropped receiver discards events.
struct Delivery<'a> {
    output: &'a mpsc::Sender<RunEvent>,
    pending: Pending,
    receiver_gone: bool,
}

impl Delivery<'_> {
    fn deliver(&mut self, event: RunEvent) {
        if self.receiver_gone {
            return;
        }
        if !self.pending.is_empty() {
            self.pending.push(event);
            return;
        }
        match self.output.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.pending.push(event),
            Err(TrySendError::Closed(_)) => self.receiver_gone = true,
        }
    }
}

impl RunningJob {
    /// pid, pgid and start time: journal them before reporting the job as started.
    pub fn started(&self) -> &Started {
        &self.started
    }

    /// A handle to stop the job from elsewhere.
    pub fn kill_handle(&self) -> KillHandle {
        KillHandle {
            state: Arc::clone(&self.kill),
        }
    }

    /// Runs the job to its end: forwards output, applies the timeout and kill requests, reaps
    /// the leader, kills what is left of its group, reads the return values. The process slot
    /// is freed when this returns. Dropping the future kills the group.
    pub async fn wait(self) -> Result<Terminated, RunError> {
        let RunningJob {
            mut guard,
            mut child,
            mut stdout,
            mut stderr,
            started,
            spawned_at,
            limits,
            return_values_path,
            output,
            kill,
            _permit,
            _script,
        } = self;
        let pgid = started.pgid;

        let mut buf = vec![0u8; limits.log_chunk_bytes_max];
        let mut log = LogCap::new(limits.log_bytes_max);
        let mut delivery = Delivery {
            output: &output,
            pending: Pending::default(),
            receiver_gone: false,
        };
        let mut reserve = pin!(output.reserve());
        let mut kill_notified = pin!(kill.notify.notified());
        let mut timer: Pin<&mut Option<Sleep>> = pin!(None);
        let mut timer_armed = false;
        if let Some(deadline) = limits
            .timeout_ms
            .and_then(|ms| spawned_at.checked_add(Duration::from_millis(ms)))
        {
            arm(timer.as_mut(), &mut timer_armed, deadline);
        }

        let mut phase = Phase::Running;
        let mut status: Option<ExitStatus> = None;
        let mut duration = Duration::ZERO;
        let mut timed_out = false;
        let mut killed = false;
        let mut kill_escalated = false;
        let mut notes = Vec::new();
        let mut stdout_first = true;

        loop {
            if status.is_some()
                && stdout.is_none()
                && stderr.is_none()
                && delivery.pending.is_empty()
            {
                break;
            }
            let step = poll_fn(|cx| {
                if kill_notified.as_mut().poll(cx).is_ready() {
                    kill_notified.set(kill.notify.notified());
                    return Poll::Ready(Step::KillRequested);
                }
                if timer_armed
                    && let Some(sleep) = timer.as_mut().as_pin_mut()
                    && sleep.poll(cx).is_ready()
                {
                    timer_armed = false;
                    return Poll::Ready(Step::Timer);
                }
                if status.is_none()
                    && let Poll::Ready(result) = pin!(child.wait()).poll(cx)
                {
                    return Poll::Ready(Step::Exited(result));
                }
                // Hand queued events over before reading more (backpressure).
                while !delivery.pending.is_empty() && !delivery.receiver_gone {
                    match reserve.as_mut().poll(cx) {
                        Poll::Ready(Ok(permit)) => {
                            if let Some(event) = delivery.pending.pop() {
                                permit.send(event);
                            }
                            reserve.set(output.reserve());
                        }
                        Poll::Ready(Err(_)) => {
                            delivery.receiver_gone = true;
                            delivery.pending = Pending::default();
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                stdout_first = !stdout_first;
                let order = if stdout_first {
                    [Stream::Stdout, Stream::Stderr]
                } else {
                    [Stream::Stderr, Stream::Stdout]
                };
                for stream in order {
                    let polled = match stream {
                        Stream::Stdout => stdout
                            .as_mut()
                            .map(|pipe| poll_read(Pin::new(pipe), cx, &mut buf)),
                        Stream::Stderr => stderr
                            .as_mut()
                            .map(|pipe| poll_read(Pin::new(pipe), cx, &mut buf)),
                    };
                    match polled {
                        Some(Poll::Ready(Ok(0))) => return Poll::Ready(Step::Closed(stream, None)),
                        Some(Poll::Ready(Ok(n))) => return Poll::Ready(Step::Read(stream, n)),
                        Some(Poll::Ready(Err(e))) => {
                            return Poll::Ready(Step::Closed(stream, Some(e)));
                        }
                        Some(Poll::Pending) | None => {}
                    }
                }
                if status.is_some() && stdout.is_none() && stderr.is_none() {
                    return Poll::Ready(Step::Flushed);
                }
                Poll::Pending
            })
            .await;

            match step {
                Step::Read(stream, n) => {
                    let admit = log.admit(n);
                    if admit.forward > 0 {
                        let chunk = buf[..admit.forward].to_vec();
                        delivery.deliver(match stream {
                            Stream::Stdout => RunEvent::Stdout(chunk),
                            Stream::Stderr => RunEvent::Stderr(chunk),
                        });
                    }
                    if let Some(dropped) = admit.mark_truncated {
                        delivery.deliver(RunEvent::LogTruncated {
                            log_bytes_max: log.log_bytes_max(),
                            dropped_bytes_so_far: dropped,
                        });
                    }
                }
                Step::Closed(stream, error) => {
                    if let Some(e) = error {
                        notes.push(format!("reading {stream:?} failed: {e}"));
                    }
                    match stream {
                        Stream::Stdout => stdout = None,
                        Stream::Stderr => stderr = None,
                    }
                }
                Step::Exited(result) => {
                    let exit = result.map_err(|source| RunError::Wait {
                        pid: started.pid,
                        source,
                    })?;
                    duration = spawned_at.elapsed();
                    status = Some(exit);
                    kill.finished.store(true, Ordering::Release);
                    // Members that outlive the leader die with it. The pgid is still ours:
                    // the leader was reaped an instant ago and the pid space is not recycled
                    // that fast.
                    signal_group(pgid, Signal::SIGKILL)?;
                    guard.armed = false;
                    phase = Phase::Draining;
                    if stdout.is_some() || stderr.is_some() {
                        arm_after_ms(timer.as_mut(), &mut timer_armed, OUTPUT_DRAIN_AFTER_EXIT_MS);
                    } else {
                        timer_armed = false;
                    }
                }
                Step::Timer => match phase {
                    Phase::Running => {
                        timed_out = true;
                        signal_group(pgid, Signal::SIGTERM)?;
                        phase = Phase::Terminating;
                        arm_after_ms(timer.as_mut(), &mut timer_armed, limits.grace_timeout_ms);
                    }
                    Phase::Terminating => {
                        kill_escalated = true;
                        signal_group(pgid, Signal::SIGKILL)?;
                        phase = Phase::Killed;
                    }
                    Phase::Killed => {}
                    Phase::Draining if !delivery.pending.is_empty() => {
                        // Reading waits for a slow receiver; give the pipes their full time.
                        arm_after_ms(timer.as_mut(), &mut timer_armed, OUTPUT_DRAIN_AFTER_EXIT_MS);
                    }
                    Phase::Draining => {
                        if stdout.is_some() || stderr.is_some() {
                            notes.push(format!(
                                "output still open {OUTPUT_DRAIN_AFTER_EXIT_MS} ms after the job \
                                 ended (a process outside its group holds it); stopped reading"
                            ));
                            stdout = None;
                            stderr = None;
                        }
                    }
                },
                Step::Flushed => {}
                Step::KillRequested => {
                    let requested = kill.requested.load(Ordering::Acquire);
                    if status.is_some() || requested == 0 {
                        continue;
                    }
                    if requested >= KillMode::Kill as u8 {
                        if phase != Phase::Killed {
                            killed = true;
                            signal_group(pgid, Signal::SIGKILL)?;
                            phase = Phase::Killed;
                            timer_armed = false;
                        }
                    } else if phase == Phase::Running {
                        killed = true;
                        signal_group(pgid, Signal::SIGTERM)?;
                        phase = Phase::Terminating;
                        arm_after_ms(timer.as_mut(), &mut timer_armed, limits.grace_timeout_ms);
                    }
                }
            }
        }

        let mut values =
            return_values::read_and_remove(&return_values_path, limits.return_values_bytes_max);
        notes.append(&mut values.notes);
        let status = status.ok_or_else(|| RunError::Wait {
            pid: started.pid,
            source: std::io::Error::other("the job loop ended before the process was reaped"),
        })?;
        use std::os::unix::process::ExitStatusExt;
        Ok(Terminated {
            exit_code: status.code(),
            signal: status.signal(),
            timed_out,
            killed,
            kill_escalated,
            return_values: values.values,
            notes,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            log_bytes: log.log_bytes,
            log_bytes_forwarded: log.forwarded,
            log_truncated: log.truncated,
        })
    }
}

/// Arms the timer `ms` from now; a deadline beyond what `Instant` can hold never fires.
fn arm_after_ms(timer: Pin<&mut Option<Sleep>>, armed: &mut bool, ms: u64) {
    match Instant::now().checked_add(Duration::from_millis(ms)) {
        Some(deadline) => arm(timer, armed, deadline),
        None => *armed = false,
    }
}

fn arm(mut timer: Pin<&mut Option<Sleep>>, armed: &mut bool, deadline: Instant) {
    match timer.as_mut().as_pin_mut() {
        Some(sleep) => sleep.reset(deadline),
        None => timer.set(Some(sleep_until(deadline))),
    }
    *armed = true;
}

fn poll_read<R: AsyncRead>(
    pipe: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<std::io::Result<usize>> {
    let mut read_buf = ReadBuf::new(buf);
    match pipe.poll_read(cx, &mut read_buf) {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(read_buf.filled().len())),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}
