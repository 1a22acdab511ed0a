//! Job runner against real processes: exit codes, signals, timeouts of process trees, output
//! caps, return values, environment, the process limit and recovery of stale groups.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ordo_agent::runner::{
    Executable, JobSpec, KillMode, RETURN_VALUES_ENV, RunError, RunEvent, Runner, Terminated,
    kill_stale_group, process_start_time_ticks,
};
use tokio::sync::mpsc;

fn script(text: &str, dir: &Path) -> JobSpec {
    JobSpec::new(Executable::Script(text.to_owned()), dir)
}

/// Collects every event of one job in a task of its own.
fn collector(
    capacity: usize,
) -> (
    mpsc::Sender<RunEvent>,
    tokio::task::JoinHandle<Vec<RunEvent>>,
) {
    let (tx, mut rx) = mpsc::channel(capacity);
    let task = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    });
    (tx, task)
}

async fn run(runner: &Runner, spec: JobSpec) -> (Terminated, Vec<RunEvent>) {
    let (tx, events) = collector(16);
    let job = runner.start(spec, tx).await.expect("job starts");
    let started = *job.started();
    assert!(started.pid > 0);
    assert_eq!(started.pgid, started.pid);
    assert!(started.start_time_ticks > 0);
    let terminated = job.wait().await.expect("job ends");
    (terminated, events.await.expect("collector"))
}

fn stdout_of(events: &[RunEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Stdout(b) => Some(b.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

fn stderr_of(events: &[RunEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Stderr(b) => Some(b.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

/// No such process, or a zombie (dead, waiting for a parent that is not us).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(line) => line
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

async fn assert_gone_soon(pid: u32) {
    for _ in 0..200 {
        if is_gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {pid} is still alive");
}

async fn read_pid_file(path: &Path) -> u32 {
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid in {}", path.display());
}

#[tokio::test]
async fn process_success_exit_0_and_output_captured() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(4);
    let (t, events) = run(&runner, script("echo hello; echo oops >&2", dir.path())).await;
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(t.signal, None);
    assert!(!t.timed_out && !t.killed && !t.kill_escalated && !t.log_truncated);
    assert_eq!(stdout_of(&events), b"hello\n");
    assert_eq!(stderr_of(&events), b"oops\n");
    assert_eq!((t.log_bytes, t.log_bytes_forwarded), (11, 11));
    assert!(t.return_values.is_empty() && t.notes.is_empty(), "{t:?}");
    assert_eq!(runner.running(), 0);
}

#[tokio::test]
async fn process_argv_runs_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(1);
    let spec = JobSpec::new(
        Executable::Argv(vec![
            "printf".into(),
            "%s-%s".into(),
            "a b".into(),
            "$HOME".into(),
        ]),
        dir.path(),
    );
    let (t, events) = run(&runner, spec).await;
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(stdout_of(&events), b"a b-$HOME");
}

#[tokio::test]
async fn process_failure_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = script("exit 3", dir.path());
    // Limits too large for a deadline mean "no limit", not a panic.
    spec.timeout_ms = Some(u64::MAX);
    spec.grace_timeout_ms = u64::MAX;
    let (t, _) = run(&Runner::new(1), spec).await;
    assert_eq!(t.exit_code, Some(3));
    assert_eq!(t.signal, None);
}

#[tokio::test]
async fn process_killed_by_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _) = run(&Runner::new(1), script("kill -KILL $$", dir.path())).await;
    assert_eq!(t.exit_code, None);
    assert_eq!(t.signal, Some(9));
    assert!(!t.timed_out && !t.killed);
}

/// Leader and grandchild both ignore SIGTERM: SIGKILL to the group after the grace.
#[tokio::test]
async fn process_timeout_kills_tree_with_term_ignoring_grandchild() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = script(
        r#"sh -c 'trap "" TERM; echo $$ > grandchild.pid; while :; do sleep 0.1; done' &
           trap "" TERM
           while :; do sleep 0.1; done"#,
        dir.path(),
    );
    spec.timeout_ms = Some(500);
    spec.grace_timeout_ms = 300;
    let started = Instant::now();
    let (t, _) = run(&Runner::new(1), spec).await;
    let elapsed = started.elapsed();
    assert!(t.timed_out && t.kill_escalated && !t.killed, "{t:?}");
    assert_eq!(t.signal, Some(9));
    assert!(t.duration_ms >= 800, "{t:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let grandchild = read_pid_file(&dir.path().join("grandchild.pid")).await;
    assert_gone_soon(grandchild).await;
}

/// The leader dies of SIGTERM, the grandchild ignores it: the group is killed as soon as the
/// leader has exited, without waiting for the grace.
#[tokio::test]
async fn process_timeout_kills_grandchild_once_leader_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = script(
        r#"sh -c 'trap "" TERM; echo $$ > grandchild.pid; while :; do sleep 0.1; done' &
           wait"#,
        dir.path(),
    );
    spec.timeout_ms = Some(500);
    spec.grace_timeout_ms = 20_000;
    let (t, _) = run(&Runner::new(1), spec).await;
    assert!(t.timed_out && !t.kill_escalated, "{t:?}");
    assert_eq!(t.signal, Some(15));
    assert!(t.duration_ms < 5_000, "{t:?}");
    let grandchild = read_pid_file(&dir.path().join("grandchild.pid")).await;
    assert_gone_soon(grandchild).await;
}

/// A background process left behind by a job that exits normally dies with it.
#[tokio::test]
async fn process_leftover_background_process_is_killed_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _) = run(
        &Runner::new(1),
        script("sleep 30 & echo $! > bg.pid; exit 0", dir.path()),
    )
    .await;
    assert_eq!(t.exit_code, Some(0));
    assert!(t.duration_ms < 5_000);
    assert_gone_soon(read_pid_file(&dir.path().join("bg.pid")).await).await;
}

#[tokio::test]
async fn process_log_chunks_bounded_and_capped_with_truncation_marked() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = script(
        "head -c 5000000 /dev/zero; head -c 5000000 /dev/zero >&2",
        dir.path(),
    );
    spec.log_chunk_bytes_max = 4096;
    spec.log_bytes_max = 1024 * 1024;
    let (t, events) = run(&Runner::new(1), spec).await;
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(t.log_bytes, 10_000_000);
    assert_eq!(t.log_bytes_forwarded, 1024 * 1024);
    assert!(t.log_truncated);
    let mut forwarded = 0usize;
    let mut marks = 0;
    for (i, event) in events.iter().enumerate() {
        match event {
            RunEvent::Stdout(b) | RunEvent::Stderr(b) => {
                assert!(
                    !b.is_empty() && b.len() <= 4096,
                    "chunk of {} bytes",
                    b.len()
                );
                assert!(b.iter().all(|&x| x == 0));
                assert_eq!(marks, 0, "chunk {i} after the truncation mark");
                forwarded += b.len();
            }
            RunEvent::LogTruncated {
                log_bytes_max,
                dropped_bytes_so_far,
            } => {
                assert_eq!(*log_bytes_max, 1024 * 1024);
                assert!(*dropped_bytes_so_far <= 4096);
                marks += 1;
            }
        }
    }
    assert_eq!(forwarded, 1024 * 1024);
    assert_eq!(marks, 1);
}

#[tokio::test]
async fn process_output_is_streamed_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(1);
    let (tx, mut rx) = mpsc::channel(16);
    let job = runner
        .start(script("echo first; sleep 2; echo second", dir.path()), tx)
        .await
        .unwrap();
    let wait = tokio::spawn(job.wait());
    let first = tokio::time::timeout(Duration::from_millis(1500), rx.recv())
        .await
        .expect("first chunk before the job ends");
    assert_eq!(first, Some(RunEvent::Stdout(b"first\n".to_vec())));
    assert!(!wait.is_finished());
    let t = wait.await.unwrap().unwrap();
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(
        rx.recv().await,
        Some(RunEvent::Stdout(b"second\n".to_vec()))
    );
}

/// A receiver that does not read holds back output, never the timeout.
#[tokio::test]
async fn process_slow_receiver_does_not_delay_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(1);
    let (tx, mut rx) = mpsc::channel(1);
    let pid_file = dir.path().join("pid");
    let mut spec = script(
        &format!(
            "echo $$ > '{}'; while :; do echo line; done",
            pid_file.display()
        ),
        dir.path(),
    );
    spec.timeout_ms = Some(300);
    spec.grace_timeout_ms = 300;
    let job = runner.start(spec, tx).await.unwrap();
    let wait = tokio::spawn(job.wait());
    // The timeout kills the job while nobody reads its output.
    assert_gone_soon(read_pid_file(&pid_file).await).await;
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    let t = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("job ends")
        .unwrap()
        .unwrap();
    assert!(t.timed_out, "{t:?}");
    assert!(t.duration_ms < 1200, "{t:?}");
    assert!(reader.await.unwrap() >= 1);
}

#[tokio::test]
async fn process_return_values_file() {
    assert_eq!(RETURN_VALUES_ENV, "ORDO_RETURN_VALUES");
    let dir = tempfile::tempdir().unwrap();
    let (t, _) = run(
        &Runner::new(1),
        script(
            r#"case "$ORDO_RETURN_VALUES" in /*) ;; *) exit 9 ;; esac
               printf 'count=42\nmsg=a=b c\nnot a pair\n\nmsg=last\n' > "$ORDO_RETURN_VALUES""#,
            dir.path(),
        ),
    )
    .await;
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(
        t.return_values,
        vec![
            ("count".to_owned(), "42".to_owned()),
            ("msg".to_owned(), "last".to_owned())
        ]
    );
    assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
    assert!(t.notes[0].contains("line 3"), "{:?}", t.notes);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "return values file not removed: {left:?}");
}

#[tokio::test]
async fn process_return_values_file_size_limited() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = script(
        r#"printf 'a=1\nb=2\n' > "$ORDO_RETURN_VALUES"; head -c 100000 /dev/zero >> "$ORDO_RETURN_VALUES""#,
        dir.path(),
    );
    spec.return_values_bytes_max = 1000;
    let (t, _) = run(&Runner::new(1), spec).await;
    assert_eq!(
        t.return_values,
        vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned())
        ]
    );
    assert!(
        t.notes.iter().any(|n| n.contains("larger than 1000 bytes")),
        "{:?}",
        t.notes
    );
}

#[tokio::test]
async fn process_env_passed_and_work_dir_created() {
    let dir = tempfile::tempdir().unwrap();
    let work_dir: PathBuf = dir.path().join("orders/o-1/work");
    let mut spec = script(
        r#"printf '%s|%s|%s|%s' "$ORDO_ORDER_ID" "$X" "$(pwd)" "${PATH:+has-path}""#,
        &work_dir,
    );
    spec.env = vec![
        ("ORDO_ORDER_ID".into(), "o-1".into()),
        ("X".into(), "y z".into()),
    ];
    let (t, events) = run(&Runner::new(1), spec).await;
    assert_eq!(t.exit_code, Some(0));
    let expected = format!(
        "o-1|y z|{}|has-path",
        work_dir.canonicalize().unwrap().display()
    );
    assert_eq!(String::from_utf8(stdout_of(&events)).unwrap(), expected);
}

#[tokio::test]
async fn process_spawn_failures_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(1);
    let (tx, _rx) = mpsc::channel(4);

    let missing = JobSpec::new(
        Executable::Argv(vec!["/nonexistent/ordo-no-such-program".into()]),
        dir.path(),
    );
    let err = runner.start(missing, tx.clone()).await.unwrap_err();
    assert!(
        matches!(&err, RunError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(
        err.to_string()
            .contains("/nonexistent/ordo-no-such-program"),
        "{err}"
    );
    assert_eq!(runner.running(), 0);

    let empty = JobSpec::new(Executable::Argv(vec![]), dir.path());
    assert!(matches!(
        runner.start(empty, tx.clone()).await,
        Err(RunError::InvalidSpec { .. })
    ));

    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let err = runner
        .start(script("true", &file), tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::WorkDir { .. }), "{err}");

    let mut bad_env = script("true", dir.path());
    bad_env.env = vec![("A=B".into(), "x".into())];
    assert!(matches!(
        runner.start(bad_env, tx).await,
        Err(RunError::InvalidSpec { .. })
    ));
    assert_eq!(runner.running(), 0);
}

#[tokio::test]
async fn process_kill_handle_term_then_kill_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(1);
    let (tx, _events) = collector(4);
    let ready = dir.path().join("ready");
    let mut spec = script(
        &format!(r#"trap "" TERM; touch '{}'; sleep 30"#, ready.display()),
        dir.path(),
    );
    spec.grace_timeout_ms = 200;
    let job = runner.start(spec, tx).await.unwrap();
    let handle = job.kill_handle();
    let wait = tokio::spawn(job.wait());
    // TERM only once the script ignores it.
    for _ in 0..1000 {
        if ready.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ready.exists(), "the script installs its trap");
    assert!(handle.kill(KillMode::Term));
    let t = wait.await.unwrap().unwrap();
    assert!(t.killed && t.kill_escalated && !t.timed_out, "{t:?}");
    assert_eq!(t.signal, Some(9));
    assert!(t.duration_ms < 5_000);
    assert!(
        !handle.kill(KillMode::Kill),
        "a finished job takes no more requests"
    );
}

#[tokio::test]
async fn process_kill_handle_kill_is_immediate() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(1);
    let (tx, _events) = collector(4);
    let mut spec = script("sleep 30", dir.path());
    spec.grace_timeout_ms = 20_000;
    let job = runner.start(spec, tx).await.unwrap();
    job.kill_handle().kill(KillMode::Kill);
    let t = job.wait().await.unwrap();
    assert!(t.killed && !t.kill_escalated, "{t:?}");
    assert_eq!(t.signal, Some(9));
    assert!(t.duration_ms < 5_000);
}

#[tokio::test]
async fn process_dropping_a_job_kills_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(1);
    let (tx, _events) = collector(4);
    let job = runner
        .start(
            script(
                r#"sh -c 'trap "" TERM; echo $$ > grandchild.pid; sleep 30' & sleep 30"#,
                dir.path(),
            ),
            tx,
        )
        .await
        .unwrap();
    let leader = job.started().pid;
    let grandchild = read_pid_file(&dir.path().join("grandchild.pid")).await;
    drop(job);
    assert_eq!(runner.running(), 0);
    assert_gone_soon(grandchild).await;
    assert_gone_soon(leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_limit_two_at_once_in_fifo_order() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(2);
    let log = dir.path().join("log");
    // Slot releases 0.3 s apart make the start order deterministic.
    let sleeps = ["0.3", "0.6", "0.6", "0.6", "0.1"];
    let start_order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, sleep) in sleeps.iter().enumerate() {
        let spec = script(
            &format!(
                "echo start {i} >> '{log}'; sleep {sleep}; echo end {i} >> '{log}'",
                log = log.display()
            ),
            dir.path(),
        );
        let runner2 = runner.clone();
        let order = Arc::clone(&start_order);
        tasks.push(tokio::spawn(async move {
            let (tx, _events) = collector(4);
            let job = runner2.start(spec, tx).await.unwrap();
            order.lock().unwrap().push(i);
            job.wait().await.unwrap()
        }));
        // Queue the next caller only once this one is running or waiting.
        for _ in 0..500 {
            if runner.running() + runner.waiting() == i + 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(runner.running() + runner.waiting(), i + 1);
    }
    assert_eq!((runner.running(), runner.waiting()), (2, 3));
    for task in tasks {
        assert_eq!(task.await.unwrap().exit_code, Some(0));
    }
    // Jobs 0 and 1 take the two free slots at once, so which caller's `start` returns first
    // is a race; the queued ones get their slots in queue order.
    let mut started = start_order.lock().unwrap().clone();
    started[..2].sort_unstable();
    assert_eq!(started, vec![0, 1, 2, 3, 4]);
    assert_eq!((runner.running(), runner.waiting()), (0, 0));

    let text = std::fs::read_to_string(&log).unwrap();
    let mut running = 0i32;
    let mut max_running = 0;
    let mut starts = Vec::new();
    for line in text.lines() {
        let (what, i) = line.split_once(' ').unwrap();
        if what == "start" {
            running += 1;
            starts.push(i.parse::<usize>().unwrap());
        } else {
            running -= 1;
        }
        max_running = max_running.max(running);
    }
    assert_eq!(max_running, 2, "{text}");
    // Jobs 0 and 1 start together, so their shells race to the log; the
    // queued ones start in their queue order as slots are released.
    let mut first_two = starts[..2].to_vec();
    first_two.sort_unstable();
    assert_eq!(first_two, vec![0, 1], "{text}");
    assert_eq!(starts[2..], [2, 3, 4], "{text}");
}

/// Reads the first line a child writes, e.g. the pid of its background process.
fn first_line(child: &mut std::process::Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    line.trim().to_owned()
}

#[tokio::test]
async fn process_kill_stale_group_kills_survivor_and_refuses_other_start_time() {
    let mut leader = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 30 & echo $!; wait"])
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = leader.id();
    let start = process_start_time_ticks(pgid).unwrap().unwrap();
    let member: u32 = first_line(&mut leader).parse().unwrap();

    assert!(!kill_stale_group(pgid, start + 1).unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        leader.try_wait().unwrap().is_none(),
        "a foreign start time killed the group"
    );
    assert!(!is_gone(member));

    assert!(kill_stale_group(pgid, start).unwrap());
    let status = leader.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
    assert_gone_soon(member).await;
    assert!(
        !kill_stale_group(pgid, start).unwrap(),
        "nothing left to kill"
    );
}

#[tokio::test]
async fn process_kill_stale_group_kills_members_that_outlived_the_leader() {
    let mut leader = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 30 & echo $!"])
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = leader.id();
    let start = process_start_time_ticks(pgid).unwrap().unwrap();
    let member: u32 = first_line(&mut leader).parse().unwrap();
    assert!(leader.wait().unwrap().success());
    assert_eq!(process_start_time_ticks(pgid).unwrap(), None);
    assert!(!is_gone(member));

    // Members that started before the journaled start time belong to someone else.
    assert!(!kill_stale_group(pgid, u64::MAX).unwrap());
    assert!(!is_gone(member));

    assert!(kill_stale_group(pgid, start).unwrap());
    assert_gone_soon(member).await;
}
