//! The CLI against the whole system in this process: a controller, a real agent running jobs
//! and the cockpit in front of them (plain HTTP on 127.0.0.1), set up by `ordo_cli::local`.

mod common;

use common::{COMMAND_TIMEOUT, Child, bare, bare_std, stderr, stdout, write};
use ordo_cli::local::{self, Local, Options};
use predicates::prelude::*;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// Jobs that print, one slowly, and a prompt.
fn inventory(agent_url: &str) -> String {
    format!(
        r#"
agent: local
url: {agent_url}
certificateName: localhost
---
workflow: echo
jobs:
  say: {{ agent: local, script: 'echo "hello from $WHO"; echo "to stderr" >&2', env: {{ WHO: $who }}, timeout: 30s }}
parameters:
  who: {{ default: world }}
steps:
  - run: say
---
workflow: slow
jobs:
  tick: {{ agent: local, script: 'for i in 1 2 3; do echo "tick $i"; sleep 0.4; done', timeout: 30s }}
steps:
  - prompt: "Start ticking?"
  - run: tick
---
workflow: flaky
jobs:
  check: {{ agent: local, script: 'test -f "$MARKER"', env: {{ MARKER: $marker }}, timeout: 30s }}
parameters:
  marker: {{ type: string }}
steps:
  - run: check
"#
    )
}

struct Stack {
    dir: tempfile::TempDir,
    local: Local,
    cockpit: String,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn free() -> std::net::SocketAddr {
    ([127, 0, 0, 1], local::free_port().unwrap()).into()
}

impl Stack {
    fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let local = local::setup(
            &dir.path().join("data"),
            &Options {
                cluster_id: "main".into(),
                controller_listen: free(),
                agents: vec![("local".into(), free())],
                journal_fsync: false,
                cockpit_listen: Some(free()),
            },
        )
        .unwrap();
        let (cockpit_config, cockpit) = local.cockpit.clone().unwrap();
        let controller = ordo_controller::config::Config::load(&local.controller_config).unwrap();
        let agent = ordo_agent::config::Config::load(&local.agent_configs[0].1).unwrap();
        let cockpit_cfg = ordo_cockpit_api::config::Config::load(&cockpit_config).unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                let c = tokio::spawn(ordo_controller::run(controller, until(stopped.clone())));
                let a = tokio::spawn(ordo_agent::run(agent, until(stopped.clone())));
                let k = tokio::spawn(ordo_cockpit_api::run(cockpit_cfg, until(stopped.clone())));
                let (c, a, k) = tokio::join!(c, a, k);
                if let Ok(Err(e)) = c {
                    eprintln!("controller stopped: {e}");
                }
                if let Ok(Err(e)) = a {
                    eprintln!("agent stopped: {e}");
                }
                if let Ok(Err(e)) = k {
                    eprintln!("cockpit stopped: {e}");
                }
            });
        });
        let s = Stack {
            dir,
            local,
            cockpit,
            stop: Some(stop),
            thread: Some(thread),
        };
        // The cockpit follows the controller once both are up.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = s
                .ordo()
                .args(["cluster", "status", "--json"])
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cockpit never became healthy: {}",
                stderr(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// `ordo` aimed at the cockpit with the admin token.
    fn ordo(&self) -> assert_cmd::Command {
        let mut cmd = bare(self.dir.path());
        cmd.args(["--api", &self.cockpit, "--token", &self.local.admin_token]);
        cmd
    }

    fn ordo_std(&self) -> std::process::Command {
        let mut cmd = bare_std(self.dir.path());
        cmd.args(["--api", &self.cockpit, "--token", &self.local.admin_token]);
        cmd
    }

    fn deploy(&self) {
        let path = write(
            self.dir.path(),
            "inventory.yaml",
            &inventory(&self.local.agent_configs[0].2),
        );
        self.ordo().arg("deploy").arg(path).assert().success();
    }

    fn order(&self, id: &str) -> Json {
        let out = self
            .ordo()
            .args(["order", "show", "--json", id])
            .assert()
            .success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    }
}

#[test]
fn process_jobs_run_and_their_output_is_shown() {
    let s = Stack::start();
    s.deploy();
    s.ordo()
        .args([
            "order", "add", "echo", "--id", "e1", "--arg", "who=cli", "--wait",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("order e1: finished"));
    let out = s.ordo().args(["logs", "e1"]).assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains("hello from cli\n"), "{text}");
    assert!(text.contains("to stderr\n"), "{text}");
    let out = s.ordo().args(["logs", "--json", "e1"]).assert().success();
    let j: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(j["log"], text.as_str());
    s.ordo()
        .args(["logs", "--json", "--follow", "e1"])
        .assert()
        .code(2);
    // Following an order that has ended prints its whole output and stops.
    let out = s.ordo().args(["logs", "--follow", "e1"]).assert().success();
    let followed = stdout(out.get_output());
    assert!(followed.contains("hello from cli\n"), "{followed}");
    let out = s.ordo().args(["order", "show", "e1"]).assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains("Outcome"), "{text}");

    // The agent is connected and reports its machine.
    let out = s.ordo().args(["agents", "--json"]).assert().success();
    let agents: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(agents["agents"][0]["id"], "local", "{agents}");
    assert_eq!(agents["agents"][0]["connected"], true, "{agents}");
    let out = s.ordo().arg("agents").assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains("local") && text.contains("yes"), "{text}");
}

#[test]
fn process_logs_follow_a_running_job_live() {
    let s = Stack::start();
    s.deploy();
    // `--wait` returns once the order settles; at its prompt it exits 1.
    s.ordo()
        .args(["order", "add", "slow", "--id", "t1", "--wait"])
        .assert()
        .code(1);
    assert_eq!(s.order("t1")["state"], "prompting");
    let mut cmd = s.ordo_std();
    cmd.args(["logs", "--follow", "t1"]);
    let follow = Child::spawn(cmd);
    // The log stream starts at the order's first output, and the watch at an event id read
    // before the answer: neither can miss what the answer brings, however late it subscribes.
    let out = s.ordo().args(["queues", "--json"]).assert().success();
    let queues: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let after = queues["eventId"].as_u64().expect("an event id").to_string();
    let mut cmd = s.ordo_std();
    cmd.args(["watch", "--key", "t1", "--count", "2", "--after", &after]);
    let watch = Child::spawn(cmd);
    s.ordo()
        .args(["order", "answer", "t1"])
        .assert()
        .success()
        .stdout("order t1: answered\n");
    let out = follow.output();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "tick 1\ntick 2\ntick 3\n");
    let out = watch.output();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.contains("] t1: ")), "{text}");
    assert!(COMMAND_TIMEOUT > Duration::from_secs(5));
}

#[test]
fn process_orders_are_paged_through_the_cockpit() {
    let s = Stack::start();
    s.deploy();
    for id in ["p1", "p2", "p3"] {
        s.ordo()
            .args(["order", "add", "slow", "--id", id])
            .assert()
            .success();
    }
    let out = s
        .ordo()
        .args(["orders", "--workflow", "slow", "--limit", "2"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains("p1") && text.contains("p2"), "{text}");
    assert!(!text.contains("p3"), "{text}");
    assert!(text.contains("more: repeat with --after p2"), "{text}");
    let out = s
        .ordo()
        .args([
            "orders",
            "--json",
            "--workflow",
            "slow",
            "--limit",
            "2",
            "--after",
            "p2",
        ])
        .assert()
        .success();
    let page: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(page["orders"][0]["id"], "p3", "{page}");
    assert_eq!(page["orders"].as_array().unwrap().len(), 1, "{page}");
    assert!(page["next"].is_null(), "{page}");
    s.ordo()
        .args(["orders", "--since", "-1h", "--agent", "local", "--json"])
        .assert()
        .success();
    // The viewer may read through the cockpit but not act.
    let viewer = &s.local.viewer_token;
    let mut cmd = bare(s.dir.path());
    cmd.args(["--api", &s.cockpit, "--token", viewer, "orders"])
        .assert()
        .success();
    let mut cmd = bare(s.dir.path());
    cmd.args(["--api", &s.cockpit, "--token", viewer])
        .args(["order", "cancel", "p1"])
        .assert()
        .code(3);
    s.ordo()
        .args(["order", "show", "nobody"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nobody"));
    let out = s.ordo().args(["cluster", "status"]).assert().success();
    let text = stdout(out.get_output());
    assert!(
        text.contains("primary") && text.contains("active"),
        "{text}"
    );
    assert!(text.contains("cockpit: ok, following https://"), "{text}");
}

/// `ordo plan show|skip|pause|resume` through the cockpit: a schedule at a fixed time every
/// day is planned, one planned order is skipped, the schedule paused and resumed, then
/// removed with `ordo undeploy schedule`.
#[test]
fn process_the_daily_plan_is_shown_and_steered() {
    let s = Stack::start();
    let path = write(
        s.dir.path(),
        "inventory.yaml",
        &format!(
            "{}---\nschedule: daily\nworkflow: echo\ntimeZone: Europe/Berlin\ntimes: [\"03:00\"]\n",
            inventory(&s.local.agent_configs[0].2)
        ),
    );
    s.ordo().arg("deploy").arg(path).assert().success();
    let plan = |s: &Stack| -> Json {
        let out = s
            .ordo()
            .args(["plan", "show", "--schedule", "daily", "--json"])
            .assert()
            .success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    };
    let p = plan(&s);
    let entries = p["entries"].as_array().unwrap();
    assert!(entries.len() >= 7, "a week ahead: {p}");
    assert!(entries.iter().all(|e| e["status"] == "planned"), "{p}");
    assert_eq!(p["schedules"][0]["missed"], "catch-up", "{p}");
    let id = entries[2]["orderId"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with('#') && id.contains("#daily@03:00:00+0"),
        "{id}"
    );
    let date = &id[1..11];
    let out = s
        .ordo()
        .args(["plan", "show", "--date", date])
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains(&id) && text.contains("planned"), "{text}");

    s.ordo().args(["plan", "skip", &id]).assert().success();
    let p = plan(&s);
    let e = p["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["orderId"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(e["status"], "skipped", "{e}");
    assert_eq!(e["why"], "cancelled", "{e}");

    s.ordo().args(["plan", "pause", "daily"]).assert().success();
    assert_eq!(plan(&s)["schedules"][0]["paused"], true);
    s.ordo()
        .args(["plan", "resume", "daily"])
        .assert()
        .success();
    assert_eq!(plan(&s)["schedules"][0]["paused"], false);
    s.ordo()
        .args(["plan", "pause", "nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("schedule nope is not deployed"));

    // Removed, the schedule leaves the plan; removed again, it is not deployed.
    s.ordo()
        .args(["undeploy", "schedule", "daily"])
        .assert()
        .success()
        .stdout(predicate::str::is_match("ScheduleRemoved +┆ daily").unwrap());
    let out = s.ordo().args(["plan", "show", "--json"]).assert().success();
    let p: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(p["schedules"], serde_json::json!([]), "{p}");
    assert_eq!(p["entries"], serde_json::json!([]), "{p}");
    s.ordo()
        .args(["undeploy", "schedule", "daily"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "schedule `daily` is not deployed; nothing to remove",
        ));
}

/// Follows `ordo watch --json --after 0` until `count` events of `kind` (the frame's `type`)
/// for orders whose id starts with `prefix` were seen; at most 120 s.
fn wait_for_events(s: &Stack, kind: &str, prefix: &str, count: usize) {
    let mut cmd = s.ordo_std();
    cmd.args(["watch", "--json", "--after", "0"]);
    let (mut child, rx) = common::follow_lines(cmd);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < count {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        let frame: Json = serde_json::from_str(&line).unwrap_or_default();
        if frame["type"] == kind && frame["key"].as_str().is_some_and(|k| k.starts_with(prefix)) {
            seen += 1;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, count, "{kind} events of {prefix}* orders");
}

/// `ordo orders resend`: a hundred orders that failed are resumed in bulk where they failed,
/// counted, and finish once their cause is gone; a failed order of another state filter is
/// left alone, and asking again finds nothing to resume.
#[test]
fn process_failed_orders_are_resent_in_bulk() {
    let s = Stack::start();
    s.deploy();
    let marker = s.dir.path().join("ready");
    let arg = format!("marker={}", marker.display());
    for n in 0..100 {
        s.ordo()
            .args([
                "order",
                "add",
                "flaky",
                "--id",
                &format!("f-{n:03}"),
                "--arg",
                &arg,
            ])
            .assert()
            .success();
    }
    wait_for_events(&s, "Failed", "f-", 100);
    let out = s
        .ordo()
        .args([
            "orders",
            "--state",
            "failed",
            "--workflow",
            "flaky",
            "--json",
        ])
        .assert()
        .success();
    let page: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(page["orders"].as_array().map(Vec::len), Some(100), "{page}");

    // Nothing suspended: a resend of suspended orders resumes none.
    let out = s
        .ordo()
        .args(["orders", "resend", "--state", "suspended"])
        .assert()
        .success();
    assert!(
        stdout(out.get_output()).contains("resumed 0 of 0"),
        "{}",
        stdout(out.get_output())
    );
    s.ordo()
        .args(["orders", "resend", "--state", "finished"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot be resumed"));

    std::fs::write(&marker, "").unwrap();
    let out = s
        .ordo()
        .args(["orders", "resend", "--workflow", "flaky", "--since", "-1h"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains("resumed 100 of 100 failed orders"), "{text}");
    wait_for_events(&s, "Finished", "f-", 100);
    let out = s
        .ordo()
        .args(["orders", "resend", "--workflow", "flaky", "--json"])
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(answer["matched"], 0, "{answer}");
}
