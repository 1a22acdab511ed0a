//! `ordo deploy`, `order ...`, `orders`, `logs` against a real controller.

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::Value as Json;

#[test]
fn process_deploy_shows_what_changes() {
    let c = Controller::start();
    let dir = c.dir.path().join("inv");
    write(&dir, "ask.yaml", ASK_YAML);
    write(&dir, "sub/remote.yaml", &absent_agent_yaml(free_port()));
    let out = c.ordo().arg("deploy").arg(&dir).assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains("WorkflowDeployed"), "{text}");
    assert!(text.contains("AgentDeployed"), "{text}");
    for name in ["ask", "nap", "broken", "remote", "far"] {
        assert!(text.contains(name), "{name} missing in {text}");
    }
    // Four workflows, one agent and the settings of `ask` (it allows undeclared arguments).
    assert!(text.contains("deployed 2 files: 6 changes"), "{text}");

    // The same files again change nothing; --json gives the server's answer.
    let out = c
        .ordo()
        .args(["deploy", "--json"])
        .arg(&dir)
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(answer["lastEventId"].is_u64(), "{answer}");
    let changes = answer["changes"].as_array().unwrap();
    c.ordo()
        .arg("deploy")
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("deployed 2 files"));
    assert!(changes.len() <= 6, "{answer}");
}

#[test]
fn process_deploy_checks_locally_first() {
    let c = Controller::start();
    let dir = c.dir.path().join("bad");
    write(
        &dir,
        "w.yaml",
        "workflow: w\njobs:\n  a: { agent: nowhere, script: 'true' }\nsteps: [ run: a ]\n",
    );
    c.ordo()
        .arg("deploy")
        .arg(&dir)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "w.yaml:3:15: error: unknown agent `nowhere`",
        ))
        .stderr(predicate::str::contains("nothing deployed"));
    // Nothing reached the controller: a workflow `w` has no orders to add.
    c.ordo()
        .args(["order", "add", "w"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("w"));
}

#[test]
fn process_a_prompt_is_answered_and_the_order_finishes() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.ordo()
        .args(["order", "add", "ask", "--id", "o1"])
        .args(["--arg", "n=3", "--arg", "flag=true", "--arg", "who=ops"])
        .assert()
        .success()
        .stdout("added order o1\n");
    // Adding the same id again is no error and adds nothing.
    c.ordo()
        .args(["order", "add", "ask", "--id", "o1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("exists already"));
    c.wait_for("o1", "prompted", |o| o["state"] == "prompting");
    let o = c.order("o1");
    assert_eq!(o["vars"]["n"], 3);
    assert_eq!(o["vars"]["flag"], true);
    assert_eq!(o["vars"]["who"], "ops");
    assert!(
        o["stateDetail"]
            .as_str()
            .unwrap()
            .contains("May ops go on?"),
        "{o}"
    );

    c.ordo()
        .args(["order", "show", "o1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("prompting"))
        .stdout(predicate::str::contains("$who"));
    c.ordo()
        .args(["order", "answer", "o1", "--arg", "ok=yes"])
        .assert()
        .success()
        .stdout("order o1: answered\n");
    c.wait_for("o1", "finished", |o| o["state"] == "finished");
    let o = c.order("o1");
    assert_eq!(o["vars"]["ok"], "yes");
    c.ordo()
        .args(["order", "show", "o1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("finished"));
}

#[test]
fn process_a_failed_order_shows_its_outcome_and_can_be_cancelled() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.ordo()
        .args(["order", "add", "broken", "--id", "b1", "--wait"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("order b1: failed"));
    let out = c.ordo().args(["order", "show", "b1"]).assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains("Outcome"), "{text}");
    assert!(text.contains("broken on purpose"), "{text}");
    c.ordo()
        .args(["order", "cancel", "b1"])
        .assert()
        .success()
        .stdout("order b1: cancelled\n");
    c.wait_for("b1", "cancelled", |o| o["state"] == "cancelled");
    c.ordo()
        .args(["order", "remove", "b1"])
        .assert()
        .success()
        .stdout("order b1: removed\n");
}

#[test]
fn process_wait_exits_0_when_finished_and_1_at_a_prompt() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.ordo()
        .args(["order", "add", "nap", "--id", "n1", "--wait"])
        .assert()
        .success()
        .stdout(predicate::str::contains("order n1: finished"));
    c.ordo()
        .args(["order", "add", "ask", "--id", "a1", "--wait", "--json"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"state\": \"prompting\""));
    // A default id is made from the workflow name.
    let out = c.ordo().args(["order", "add", "nap"]).assert().success();
    let text = stdout(out.get_output());
    assert!(text.starts_with("added order nap-"), "{text}");
}

#[test]
fn process_scheduled_orders_wait_until_told_to_go() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.ordo()
        .args(["order", "add", "nap", "--id", "later", "--at", "+1h"])
        .assert()
        .success();
    let o = c.order("later");
    assert_eq!(o["state"], "fresh", "{o}");
    let at = o["scheduledFor"].as_i64().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    assert!((at - now - 3_600_000).abs() < 60_000, "{o}");
    c.ordo()
        .args([
            "order",
            "add",
            "nap",
            "--id",
            "fixed",
            "--at",
            "2030-01-02T03:04:05Z",
        ])
        .assert()
        .success();
    assert_eq!(c.order("fixed")["scheduledFor"], 1_893_553_445_000i64);
    c.ordo()
        .args(["order", "go", "later"])
        .assert()
        .success()
        .stdout("order later: told to go on\n");
    c.wait_for("later", "finished", |o| o["state"] == "finished");
}

#[test]
fn process_orders_are_suspended_resumed_cancelled_and_removed() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.ordo()
        .args(["order", "add", "nap", "--id", "s1", "--at", "+1h"])
        .assert()
        .success();
    c.ordo()
        .args(["order", "suspend", "s1"])
        .assert()
        .success()
        .stdout("order s1: suspended\n");
    c.wait_for("s1", "suspended", |o| o["state"] == "suspended");
    c.ordo()
        .args(["order", "resume", "s1", "--arg", "again=1"])
        .assert()
        .success()
        .stdout("order s1: resumed\n");
    c.wait_for("s1", "resumed", |o| o["state"] == "fresh");
    // An order that has not ended cannot be removed: the server says no, exit 1.
    c.ordo()
        .args(["order", "remove", "s1"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("ordo: "));
    c.ordo()
        .args(["order", "cancel", "s1"])
        .assert()
        .success()
        .stdout("order s1: cancelled\n");
    c.wait_for("s1", "cancelled", |o| o["state"] == "cancelled");
    c.ordo()
        .args(["order", "remove", "s1"])
        .assert()
        .success()
        .stdout("order s1: removed\n");
    c.ordo()
        .args(["order", "show", "s1"])
        .assert()
        .code(1)
        .stderr("ordo: order s1 does not exist\n");
}

#[test]
fn process_an_order_bound_for_an_absent_agent_is_marked() {
    let c = Controller::start();
    c.deploy("remote.yaml", &absent_agent_yaml(free_port()));
    c.ordo()
        .args(["order", "add", "remote", "--id", "r1"])
        .assert()
        .success();
    c.wait_for("r1", "attaching", |o| o["holder"]["attaching"] == "far");
    c.ordo()
        .args(["orders"])
        .assert()
        .success()
        .stdout(predicate::str::contains("attaching far"));
    c.ordo()
        .args(["order", "suspend", "r1", "--kill-now"])
        .assert()
        .success();
    c.wait_for("r1", "marked", |o| o["mark"].as_str().is_some());
    c.ordo()
        .args(["order", "cancel", "r1", "--kill", "--kill-now"])
        .assert()
        .code(2);
}

#[test]
fn process_orders_lists_with_filters() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    for id in ["p1", "p2", "p3"] {
        c.ordo()
            .args(["order", "add", "ask", "--id", id])
            .assert()
            .success();
    }
    c.ordo()
        .args(["order", "add", "nap", "--id", "z1", "--wait"])
        .assert()
        .success();
    for id in ["p1", "p2", "p3"] {
        c.wait_for(id, "prompted", |o| o["state"] == "prompting");
    }
    let out = c
        .ordo()
        .args(["orders", "--state", "prompting"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains("p1") && text.contains("p3"), "{text}");
    assert!(!text.contains("z1"), "{text}");
    assert!(text.contains("3 orders"), "{text}");
    let out = c
        .ordo()
        .args(["orders", "--json", "--workflow", "nap"])
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let orders = answer["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{answer}");
    assert_eq!(orders[0]["id"], "z1");
    assert_eq!(orders[0]["state"], "finished");
    let out = c
        .ordo()
        .args(["orders", "--json", "--limit", "2"])
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(answer["orders"].as_array().unwrap().len(), 2, "{answer}");
    c.ordo()
        .args(["orders", "--workflow", "none"])
        .assert()
        .success()
        .stdout("no orders\n");
}

#[test]
fn process_logs_print_and_follow_until_the_order_ends() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.ordo()
        .args(["order", "add", "ask", "--id", "l1"])
        .assert()
        .success();
    c.ordo().args(["logs", "l1"]).assert().success().stdout("");
    c.wait_for("l1", "prompted", |o| o["state"] == "prompting");
    let mut cmd = c.ordo_std(ADMIN_TOKEN);
    cmd.args(["logs", "--follow", "l1"]);
    let follow = Child::spawn(cmd);
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.ordo().args(["order", "answer", "l1"]).assert().success();
    let out = follow.output();
    assert!(out.status.success(), "{}", stderr(&out));
    c.ordo()
        .args(["logs", "nobody"])
        .assert()
        .code(1)
        .stderr("ordo: order nobody does not exist\n");
    c.ordo()
        .args(["logs", "--follow", "nobody"])
        .assert()
        .code(1);
}

#[test]
fn process_add_wait_sees_the_end_of_an_order_removed_right_after_it() {
    // Ended orders are removed at once (the controller looks every 100 ms).
    let c = Controller::start_extra("[retention]\nterminated_orders_ms = 0");
    c.deploy("ask.yaml", ASK_YAML);
    // `nap` sleeps 1 s and finishes; by the time the CLI looks again it is gone.
    let out = c
        .ordo()
        .args(["order", "add", "nap", "--id", "gone1", "--wait", "--json"])
        .assert()
        .success();
    let order: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(order["state"], "finished", "{order}");
    assert_eq!(order["id"], "gone1", "{order}");
}

#[test]
fn process_add_wait_through_a_stuck_cockpit_says_why() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    let cockpit = c.cockpit("frame_bytes_max = 32768");
    // An order whose event is larger than the cockpit takes (but within the controller's
    // order-input limits: two values of 20,000 bytes), added at the controller.
    let big = format!("who={}", "x".repeat(20_000));
    let big2 = format!("what={}", "y".repeat(20_000));
    c.ordo()
        .args([
            "order", "add", "ask", "--id", "big", "--arg", &big, "--arg", &big2,
        ])
        .assert()
        .success();
    // Through the cockpit, the next order cannot be seen: the CLI says why.
    let out = cockpit
        .ordo()
        .args(["order", "add", "ask", "--id", "after", "--wait"])
        .assert()
        .code(1);
    let err = stderr(out.get_output());
    assert!(err.contains("stuck"), "{err}");
    assert!(err.contains("frame_bytes_max"), "{err}");
    assert!(!err.contains("does not exist"), "{err}");
}

#[test]
fn process_queues_shows_orders_waiting_finished_and_failed() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.deploy("remote.yaml", &absent_agent_yaml(free_port()));
    let cockpit = c.cockpit("");
    // Through the cockpit: each command answers once its view has the order.
    cockpit
        .ordo()
        .args(["order", "add", "remote", "--id", "far-1"])
        .assert()
        .success();
    cockpit
        .ordo()
        .args(["order", "add", "nap", "--id", "nap-1", "--wait"])
        .assert()
        .success();
    cockpit
        .ordo()
        .args(["order", "add", "broken", "--id", "broken-1", "--wait"])
        .assert()
        .code(1);
    let out = cockpit.ordo().arg("queues").assert().success();
    let text = stdout(out.get_output());
    let row = |id: &str| {
        text.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} missing in {text}"))
            .to_owned()
    };
    assert!(row("far-1").contains("waiting"), "{text}");
    assert!(row("nap-1").contains("finished"), "{text}");
    assert!(row("broken-1").contains("failed"), "{text}");
    let out = cockpit
        .ordo()
        .args(["queues", "--queue", "waiting", "--agent", "far", "--json"])
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let queues = answer["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 1, "{answer}");
    assert_eq!(queues[0]["queue"], "waiting", "{answer}");
    assert_eq!(queues[0]["count"], 1, "{answer}");
    assert_eq!(queues[0]["orders"][0]["id"], "far-1", "{answer}");
    cockpit
        .ordo()
        .args(["queues", "--queue", "stuck"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown queue"));
    // Without a cluster, `agents --subagents` says there are none.
    cockpit
        .ordo()
        .args(["agents", "--subagents"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no subagents"));
}
