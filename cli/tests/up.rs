//! `ordo up` as a newcomer uses it: start it, run the printed command, see the order finish,
//! stop it with Ctrl-C, start it again and find the same state.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed when a failed assertion leaves it behind.
struct Guarded(Child);

impl std::ops::Deref for Guarded {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `ordo up` and returns it with the lines it printed up to "Ctrl-C" and the lines it
/// prints after.
fn up(
    dir: &std::path::Path,
    port: u16,
) -> (Guarded, Vec<String>, std::sync::mpsc::Receiver<String>) {
    start_up(dir, port, &[], 60, false)
}

/// Starts `ordo up` and closes the read end of its stdout right after the banner, as a
/// terminal that went away does: what it prints from then on meets a closed pipe.
fn up_then_close_stdout(dir: &std::path::Path, port: u16) -> (Guarded, Vec<String>) {
    let (child, lines, _) = start_up(dir, port, &[], 60, true);
    (child, lines)
}

/// Starts `ordo up` with `more` arguments; waits up to `wait_s` for its banner. With
/// `close_after_banner`, stdout is closed once the banner's last line is read.
fn start_up(
    dir: &std::path::Path,
    port: u16,
    more: &[&str],
    wait_s: u64,
    close_after_banner: bool,
) -> (Guarded, Vec<String>, std::sync::mpsc::Receiver<String>) {
    let what = format!("ordo up {}", more.join(" "));
    let mut child = Guarded(
        Command::new(env!("CARGO_BIN_EXE_ordo"))
            .arg("up")
            .args(more)
            .arg("--dir")
            .arg(dir.join("data"))
            .args(["--port", &port.to_string()])
            .env("ORDO_CONFIG", dir.join("profile.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ordo up starts"),
    );
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let last = close_after_banner && line.contains("Ctrl-C");
            if tx.send(line).is_err() || last {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(wait_s);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("Ctrl-C");
                lines.push(line);
                if done {
                    return (child, lines, rx);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{what} exited with {status}: {lines:?}");
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what} did not come up within {wait_s} s: {lines:?}");
}

/// The next line `ordo up` prints that satisfies `f`, within 30 s.
fn next_line(log: &std::sync::mpsc::Receiver<String>, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match log.recv_timeout(left) {
            Ok(line) if f(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no such line within 30 s; printed: {seen:?}");
}

/// The deployed versions of `hello`, from `ordo workflows --json`.
fn hello_versions(dir: &std::path::Path) -> Vec<u64> {
    let out = ordo(dir, &["workflows", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    answer["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["name"] == "hello")
        .flat_map(|w| w["versions"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_u64())
        .collect()
}

/// Sends Ctrl-C and waits for the process to exit (its exit is the signal), at most 20 s;
/// kills it when it does not stop.
fn interrupt_and_wait(mut child: Guarded) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(status)) => assert!(status.success(), "ordo up ended with {status}"),
        Ok(Err(e)) => panic!("waiting for ordo up: {e}"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("ordo up did not stop within 20 s of Ctrl-C");
        }
    }
}

fn ordo(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .env("ORDO_CONFIG", dir.join("profile.toml"))
        .env_remove("ORDO_API")
        .env_remove("ORDO_TOKEN")
        .env_remove("ORDO_CA")
        .output()
        .unwrap()
}

#[test]
fn process_up_runs_the_printed_command_to_the_end_and_resumes_after_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, lines, log) = up(dir.path(), port);
    // The banner names the URL, the admin token and a command to add an order.
    let text = lines.join("\n");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("admin token:"), "{text}");
    let command = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("ordo order add"))
        .expect("a command to add an order is printed")
        .to_owned();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = ordo(dir.path(), &args);
    assert!(
        out.status.success(),
        "{command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ordo(dir.path(), &["orders", "--json"]);
    let before = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(before.contains("\"finished\""), "{before}");
    // The terminal says what happened, as a log a person reads.
    let finished = next_line(&log, |l| l.contains("finished"));
    assert!(finished.contains("hello"), "{finished}");
    // The example schedules are planned: the daily plan shows their instants.
    let out = ordo(dir.path(), &["plan", "show", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let schedules: Vec<&str> = plan["schedules"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(schedules.contains(&"nightly"), "{plan}");
    assert!(
        plan["entries"].as_array().is_some_and(|e| !e.is_empty()),
        "{plan}"
    );
    // A workflow of the user's own under an example's name.
    let mine = dir.path().join("hello.yaml");
    std::fs::write(
        &mine,
        "workflow: hello\njobs:\n  mine: { agent: local, script: echo mine }\nsteps:\n  - run: mine\n",
    )
    .unwrap();
    let out = ordo(dir.path(), &["deploy", mine.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployed = next_line(&log, |l| l.contains("hello") && l.contains("deployed"));
    assert!(deployed.contains("workflow"), "{deployed}");
    let before = hello_versions(dir.path());
    assert_eq!(
        before.len(),
        2,
        "the example's version and the user's: {before:?}"
    );
    interrupt_and_wait(child);

    // This time nobody reads what it prints after the banner: stopping still ends cleanly.
    let (child, lines) = up_then_close_stdout(dir.path(), port);
    let out = ordo(dir.path(), &["orders", "--json"]);
    let after = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        after.contains("\"finished\""),
        "the state came back: {after}"
    );
    // The restart kept the user's `hello` and said so.
    assert_eq!(hello_versions(dir.path()), before);
    let text = lines.join("\n");
    assert!(text.contains("kept your workflow `hello`"), "{text}");
    interrupt_and_wait(child);
}

/// Starts `ordo up --pair` and returns it with the lines it printed up to "Ctrl-C" and the
/// channel of the lines it prints after.
fn up_pair(
    dir: &std::path::Path,
    port: u16,
) -> (Guarded, Vec<String>, std::sync::mpsc::Receiver<String>) {
    start_up(dir, port, &["--pair"], 120, false)
}

/// The printed processes: name → (pid, role).
fn processes(lines: &[String]) -> std::collections::BTreeMap<String, (i32, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let pid = words.get(1)?.parse().ok()?;
            let name = words[0];
            [
                "controller-a",
                "controller-b",
                "watch",
                "agent-local",
                "cockpit",
            ]
            .contains(&name)
            .then(|| (name.to_owned(), (pid, words[2].to_owned())))
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// `ordo cluster status --json` until `f` holds for it (at most 30 s).
fn cluster_until(dir: &std::path::Path, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ordo(dir, &["cluster", "status", "--json"]);
        let view: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if f(&view) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {view}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn finished(dir: &std::path::Path, id: &str) -> bool {
    let out = ordo(dir, &["order", "show", id, "--json"]);
    let o: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    o["state"] == "finished"
}

#[test]
fn process_up_pair_carries_on_after_a_kill_of_the_active_controller_and_resumes_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, lines, later) = up_pair(dir.path(), port);
    let text = lines.join("\n");
    let procs = processes(&lines);
    assert_eq!(procs.len(), 5, "every process with its pid: {text}");
    let actives: Vec<&String> = procs
        .iter()
        .filter(|(_, (_, role))| role == "active")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(actives.len(), 1, "one active controller: {text}");
    let active = actives[0].clone();
    assert!(active.starts_with("controller-"), "{text}");
    assert_eq!(procs["watch"].1, "watch", "{text}");
    let other = if active == "controller-a" {
        "controller-b"
    } else {
        "controller-a"
    };
    assert!(
        text.contains(&format!("kill -9 {}", procs[&active].0)),
        "{text}"
    );

    let out = ordo(
        dir.path(),
        &["order", "add", "hello", "--id", "before", "--wait"],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // kill -9 the active controller: the other one takes over, the cockpit follows it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(procs[&active].0),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let other_url = procs_url(&lines, other);
    cluster_until(dir.path(), "the other controller is active", |v| {
        v["active"] == other_url.as_str()
    });
    // An order added now runs to its end (a retry with the same id is safe).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ordo(
            dir.path(),
            &["order", "add", "hello", "--id", "after", "--wait"],
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the order after the failover: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(finished(dir.path(), "before") && finished(dir.path(), "after"));
    // `ordo up` told of the end and of the new active one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut told = Vec::new();
    while !(told
        .iter()
        .any(|l: &String| l.contains(&active) && l.contains("ended"))
        && told
            .iter()
            .any(|l: &String| l.contains(other) && l.contains("-> active")))
    {
        assert!(Instant::now() < deadline, "ordo up told: {told:?}");
        if let Ok(line) = later.recv_timeout(Duration::from_millis(200)) {
            told.push(line);
        }
    }
    interrupt_and_wait(child);
    for (name, (pid, _)) in &procs {
        assert!(!alive(*pid), "{name} (pid {pid}) was stopped with ordo up");
    }

    // Again on the same data: both orders are there.
    let (child, lines, _later) = up_pair(dir.path(), port);
    let procs = processes(&lines);
    assert_eq!(procs.len(), 5);
    assert!(finished(dir.path(), "before") && finished(dir.path(), "after"));
    // A switchover by hand: the other controller takes over, the cockpit follows.
    let active = procs
        .iter()
        .find(|(_, (_, role))| role == "active")
        .map(|(name, _)| name.clone())
        .expect("an active controller");
    let (other, to) = if active == "controller-a" {
        ("controller-b", "2")
    } else {
        ("controller-a", "1")
    };
    let out = ordo(dir.path(), &["cluster", "switchover", "--to", to, "--wait"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let other_url = procs_url(&lines, other);
    cluster_until(dir.path(), "the cockpit names the new active one", |v| {
        v["active"] == other_url.as_str()
    });
    let out = ordo(dir.path(), &["cluster", "status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("watch") && table.contains("Commit/applied"),
        "{table}"
    );
    interrupt_and_wait(child);
}

/// The URL printed for process `name`.
fn procs_url(lines: &[String], name: &str) -> String {
    lines
        .iter()
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.first() == Some(&name))
                .then(|| {
                    words
                        .iter()
                        .find(|w| w.starts_with("https://"))
                        .map(|w| w.to_string())
                })
                .flatten()
        })
        .unwrap_or_else(|| panic!("no URL printed for {name}: {lines:?}"))
}

#[test]
fn process_up_with_subagents_runs_the_examples_jobs_on_its_three_subagents() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, lines, _log) = start_up(dir.path(), port, &["--subagents", "3"], 90, false);
    let text = lines.join("\n");
    assert!(text.contains("local-1, local-2, local-3"), "{text}");
    // An example runs to its end on the cluster.
    let out = ordo(dir.path(), &["order", "add", "hello", "--wait"]);
    assert!(
        out.status.success(),
        "hello: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Jobs on `local` run on its subagents, each in turn: orders one after the other until
    // every subagent has run one (a subagent that is not live yet is passed over).
    let mine = dir.path().join("where.yaml");
    std::fs::write(
        &mine,
        "workflow: where\njobs:\n  where: { agent: local, script: 'echo \"on $ORDO_SUBAGENT\"' }\nsteps:\n  - run: where\n",
    )
    .unwrap();
    let out = ordo(dir.path(), &["deploy", mine.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let subagents = ["local-1", "local-2", "local-3"];
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        let id = format!("where-{i}");
        let out = ordo(
            dir.path(),
            &["order", "add", "where", "--id", &id, "--wait"],
        );
        assert!(
            out.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = ordo(dir.path(), &["logs", &id]);
        let log = String::from_utf8_lossy(&log.stdout).into_owned();
        let on = subagents.iter().find(|s| log.contains(&format!("on {s}")));
        let on = on.unwrap_or_else(|| panic!("{id} did not run on a subagent: {log}"));
        seen.insert(*on);
        if seen.len() == subagents.len() {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), subagents);
    interrupt_and_wait(child);
}
