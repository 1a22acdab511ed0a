//! `ordo order add` with typed JSON arguments, an arguments file, a priority, removal when
//! terminated and a Unicode order id, against a real controller.

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::json;

const WORKFLOWS: &str = "\
workflow: ask
parameters:
  who: { default: world }
allowUndeclared: true
steps:
  - prompt: \"May $who go on?\"
---
workflow: strict
parameters:
  day: {}
  region: { default: eu }
steps:
  - prompt: \"Run $day in $region?\"
---
workflow: gone
deleteWhenTerminated: true
steps:
  - sleep: 1ms
";

#[test]
fn process_order_add_takes_json_args_an_args_file_a_priority_and_a_unicode_id() {
    let c = Controller::start();
    c.deploy("w.yaml", WORKFLOWS);
    let file = write(
        c.dir.path(),
        "args.json",
        r#"{"who": "ops", "list": ["x"], "n": 1, "nested": [[1, 2], []]}"#,
    );
    let id = "Bestellung-Köln-注文";
    c.ordo()
        .args(["order", "add", "ask", "--id", id])
        .args(["--arg", "list:json=[1,2]", "--arg", "s:json=\"007\""])
        .arg("--args-file")
        .arg(&file)
        .args(["--priority", "-3"])
        .assert()
        .success()
        .stdout(format!("added order {id}\n"));
    c.wait_for(id, "prompted", |o| o["state"] == "prompting");
    let o = c.order(id);
    assert_eq!(o["id"], id);
    // --arg wins over the file.
    assert_eq!(o["vars"]["list"], json!([1, 2]), "{o}");
    assert_eq!(o["vars"]["s"], "007", "{o}");
    assert_eq!(o["vars"]["who"], "ops", "{o}");
    assert_eq!(o["vars"]["n"], 1, "{o}");
    assert_eq!(o["vars"]["nested"], json!([[1, 2], []]), "{o}");
    assert_eq!(o["priority"], -3, "{o}");
    assert_eq!(o["deleteWhenTerminated"], false, "{o}");
    c.ordo()
        .args(["order", "show", id])
        .assert()
        .success()
        .stdout(predicate::str::contains("priority"))
        .stdout(predicate::str::contains("-3"))
        .stdout(predicate::str::contains("May ops go on?"));
    // The id in a URL path: answer and cancel it by its id.
    c.ordo()
        .args(["order", "cancel", id])
        .assert()
        .success()
        .stdout(format!("order {id}: cancelled\n"));
    c.wait_for(id, "cancelled", |o| o["state"] == "cancelled");
}

#[test]
fn process_order_add_refuses_bad_json_args_and_bad_ids_clearly() {
    let c = Controller::start();
    c.deploy("w.yaml", WORKFLOWS);
    c.ordo()
        .args(["order", "add", "ask", "--arg", "list:json=[1,"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the value of list is not JSON"));
    let file = write(c.dir.path(), "bad.json", "{\"a\": 1,");
    c.ordo()
        .args(["order", "add", "ask", "--args-file"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not JSON"));
    let file = write(c.dir.path(), "list.json", "[1, 2]");
    c.ordo()
        .args(["order", "add", "ask", "--args-file"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "must hold a JSON object of variables, not a list",
        ));
    // An argument the workflow does not declare: the API's refusal, naming it and the
    // declared ones, from the controller and through a cockpit that forwards the command.
    let cockpit = c.cockpit("");
    for mut ordo in [c.ordo(), cockpit.ordo()] {
        ordo.args([
            "order",
            "add",
            "strict",
            "--arg",
            "day=1",
            "--arg",
            "regoin=us",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "unknown argument `regoin`; workflow `strict` declares: day, region",
        ));
    }
    for bad in ["a/b", "a\\b", "tab\there", "a|b"] {
        c.ordo()
            .args(["order", "add", "ask", "--id", bad])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                bad.split(['/', '\\', '\t', '|']).next().unwrap(),
            ));
    }
}

#[test]
fn process_orders_that_are_to_be_deleted_when_terminated_are_removed_and_kept_ones_stay() {
    let c = Controller::start();
    c.deploy("w.yaml", WORKFLOWS);
    // The workflow says remove: --wait still reports the end, from the event stream.
    c.ordo()
        .args(["order", "add", "gone", "--id", "g1", "--wait"])
        .assert()
        .success()
        .stdout(predicate::str::contains("order g1: finished"));
    c.ordo().args(["order", "show", "g1"]).assert().code(1);
    // The order says keep.
    c.ordo()
        .args(["order", "add", "gone", "--id", "g2", "--keep", "--wait"])
        .assert()
        .success();
    let o = c.order("g2");
    assert_eq!(o["state"], "finished", "{o}");
    assert_eq!(o["deleteWhenTerminated"], false, "{o}");
    // A cancelled order asked to be removed goes too.
    c.ordo()
        .args([
            "order",
            "add",
            "ask",
            "--id",
            "a1",
            "--delete-when-terminated",
        ])
        .assert()
        .success();
    c.wait_for("a1", "prompted", |o| o["state"] == "prompting");
    assert_eq!(c.order("a1")["deleteWhenTerminated"], true);
    c.ordo().args(["order", "cancel", "a1"]).assert().success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = c.ordo().args(["order", "show", "a1"]).output().unwrap();
        if !out.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a1 never removed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
