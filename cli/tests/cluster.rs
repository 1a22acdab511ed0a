//! `ordo watch`, `agents`, `cluster status` and the exit codes, against a real controller.

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::Value as Json;

#[test]
fn process_watch_prints_one_line_per_event() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    c.ordo()
        .args(["order", "add", "nap", "--id", "w1", "--wait"])
        .assert()
        .success();
    // From the start: the deployment, then the order's events.
    let out = c
        .ordo()
        .args(["watch", "--after", "0", "--key", "w1", "--count", "3"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.contains("] w1: ")), "{text}");
    assert!(lines[0].contains("Added"), "{text}");
    assert!(lines[0].starts_with("20"), "{text}");

    // JSON lines resume exactly after the given id.
    let out = c
        .ordo()
        .args(["watch", "--json", "--after", "0", "--count", "2"])
        .assert()
        .success();
    let events: Vec<Json> = stdout(out.get_output())
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    let first = events[0]["eventId"].as_u64().unwrap();
    let out = c
        .ordo()
        .args(["watch", "--json", "--count", "1", "--after"])
        .arg(first.to_string())
        .assert()
        .success();
    let next: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(next["eventId"], events[1]["eventId"]);
    assert!(
        !stderr(out.get_output()).contains("long-polling"),
        "the WebSocket was used"
    );
}

#[test]
fn process_watch_follows_live_events() {
    let c = Controller::start();
    c.deploy("ask.yaml", ASK_YAML);
    let mut cmd = c.ordo_std(ADMIN_TOKEN);
    cmd.args(["watch", "--key", "live", "--count", "1"]);
    let watch = Child::spawn(cmd);
    // The feed starts at the current event; only what happens afterwards is shown.
    std::thread::sleep(std::time::Duration::from_millis(700));
    c.ordo()
        .args(["order", "add", "ask", "--id", "live"])
        .assert()
        .success();
    let out = watch.output();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("] live: Added"), "{text}");
}

#[test]
fn process_agents_lists_deployed_agents() {
    let c = Controller::start();
    c.ordo()
        .arg("agents")
        .assert()
        .success()
        .stdout("no agents deployed\n");
    let port = free_port();
    c.deploy("remote.yaml", &absent_agent_yaml(port));
    let out = c.ordo().arg("agents").assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains("far"), "{text}");
    assert!(text.contains(&format!("wss://127.0.0.1:{port}")), "{text}");
    assert!(text.contains("Last error"), "{text}");
    let out = c.ordo().args(["agents", "--json"]).assert().success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(answer["agents"][0]["id"], "far");
    assert_eq!(answer["agents"][0]["connected"], false);
}

#[test]
fn process_cluster_status_shows_health() {
    let c = Controller::start();
    let out = c
        .ordo_as(VIEWER_TOKEN)
        .args(["cluster", "status"])
        .assert()
        .success();
    // A controller has no /cluster route: its own /health makes the one row.
    let text = stdout(out.get_output());
    assert!(text.contains("Commit/applied"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("primary"))
        .unwrap_or_else(|| panic!("a row for the controller: {text}"));
    assert!(row.contains("active") && row.contains(&c.url), "{row}");
    assert!(text.contains(&format!("active: {}", c.url)), "{text}");
    let out = c
        .ordo()
        .args(["cluster", "status", "--json"])
        .assert()
        .success();
    let view: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(view["active"], c.url.as_str(), "{view}");
    assert_eq!(view["members"][0]["health"]["status"], "ok", "{view}");
    assert_eq!(view["members"][0]["health"]["role"], "active", "{view}");
    // The cluster operations need a pair; a bad node id is refused before any request.
    c.ordo().args(["cluster", "add-node", "0"]).assert().code(2);
    c.ordo()
        .args(["cluster", "switchover", "--to", "x"])
        .assert()
        .code(2);
}

#[test]
fn process_a_bad_token_exits_3() {
    let c = Controller::start();
    c.ordo_as("not-a-token")
        .arg("orders")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("unknown token"));
    c.bare()
        .args(["--api", &c.url, "--ca"])
        .arg(&c.ca)
        .arg("orders")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("missing token"));
    // A viewer may read but not act.
    c.ordo_as(VIEWER_TOKEN).arg("orders").assert().success();
    c.ordo_as(VIEWER_TOKEN)
        .args(["order", "add", "nap"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("role"));
}

#[test]
fn process_unreachable_or_untrusted_apis_exit_3() {
    let c = Controller::start();
    // Nobody listens here.
    let port = free_port();
    c.bare()
        .args(["--token", "t", "--api"])
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("orders")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("cannot reach the API"));
    // The controller's certificate does not lead to another CA.
    let other = ordo_net::certs::TestPki::new("main").unwrap();
    let other_ca = write(c.dir.path(), "other-ca.pem", other.ca_pem());
    c.bare()
        .args(["--token", ADMIN_TOKEN, "--api", &c.url, "--ca"])
        .arg(other_ca)
        .arg("orders")
        .assert()
        .code(3);
    // Without --ca the system's CAs do not know the test CA either.
    c.bare()
        .args(["--token", ADMIN_TOKEN, "--api", &c.url, "orders"])
        .assert()
        .code(3);
}

#[test]
fn process_unknown_orders_and_refusals_exit_1() {
    let c = Controller::start();
    c.ordo()
        .args(["order", "show", "ghost"])
        .assert()
        .code(1)
        .stderr("ordo: order ghost does not exist\n");
    c.ordo().args(["order", "cancel", "ghost"]).assert().code(1);
    c.ordo()
        .args(["order", "add", "no-such-workflow"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no-such-workflow"));
    c.ordo()
        .args(["order", "resume", "ghost", "--position", "not/a/position!"])
        .assert()
        .code(1);
}

#[test]
fn process_usage_errors_exit_2() {
    let c = Controller::start();
    c.ordo().args(["order", "add"]).assert().code(2);
    c.ordo()
        .args(["order", "add", "nap", "--arg", "novalue"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NAME=VALUE"));
    c.ordo()
        .args(["order", "add", "nap", "--at", "soon"])
        .assert()
        .code(2);
    c.ordo().args(["orders", "--limit", "x"]).assert().code(2);
    c.ordo().arg("nonsense").assert().code(2);
    c.bare()
        .arg("orders")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no API URL"));
    c.bare()
        .args(["--api", "http://192.0.2.1:8080", "orders"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only for an API on this machine"));
    c.bare()
        .args(["--api", &c.url, "--ca", "/nonexistent/ca.pem", "orders"])
        .assert()
        .code(2);
}

#[test]
fn process_cluster_status_through_the_cockpit_names_the_active_controller() {
    let c = Controller::start();
    let cockpit = c.cockpit("");
    // The cockpit reads every controller's /health; one answers, and it is active.
    let out = cockpit
        .ordo()
        .args(["cluster", "status", "--json"])
        .assert()
        .success();
    let view: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(view["active"], c.url.as_str(), "{view}");
    assert_eq!(view["members"][0]["configured"], true, "{view}");
    assert_eq!(view["members"][0]["health"]["controllerId"], "primary");
    let out = cockpit
        .ordo()
        .args(["cluster", "status"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains("primary") && text.contains(&c.url), "{text}");
    // A single controller has no pair to switch over in: the refusal is printed, exit 1.
    cockpit
        .ordo()
        .args(["cluster", "switchover"])
        .assert()
        .code(1);
    cockpit
        .ordo()
        .args(["cluster", "remove-node", "2"])
        .assert()
        .code(1);
}

#[test]
fn process_agents_join_token_and_remove_subagent() {
    let c = Controller::start();
    let port = free_port();
    c.deploy("remote.yaml", &absent_agent_yaml(port));
    let out = c
        .ordo()
        .args(["agents", "join-token", "--agent", "far", "--ttl", "10m"])
        .assert()
        .success();
    let token = stdout(out.get_output());
    assert!(token.trim().starts_with("ordo-join-"), "{token}");
    assert_eq!(token.trim().len(), "ordo-join-".len() + 64, "{token}");
    let out = c
        .ordo()
        .args(["agents", "join-token", "--json"])
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(answer["expiresMs"].as_i64().is_some(), "{answer}");
    assert!(answer.get("agent").is_none_or(Json::is_null), "{answer}");
    let out = c
        .ordo()
        .args(["agents", "join-token", "--agent", "nowhere"])
        .assert()
        .failure();
    let text = stderr(out.get_output());
    assert!(text.contains("nowhere is not deployed"), "{text}");
    let out = c
        .ordo()
        .args(["agents", "remove-subagent", "far", "s1", "--kill"])
        .assert()
        .failure();
    let text = stderr(out.get_output());
    assert!(text.contains("s1 is not a subagent of far"), "{text}");
}
