//! `ordo check --cluster`, `ordo deploy --dry-run`, the refusal of a deployment that strands
//! orders and `--force`, and `ordo undeploy`, through the cockpit in front of a real
//! controller.

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::Value as Json;

/// An agent nobody runs, a lock, a board and a workflow whose orders wait at a prompt inside
/// the lock.
fn base(port: u16) -> String {
    format!(
        "\
agent: far
url: wss://127.0.0.1:{port}
certificateName: localhost
---
lock: l
limit: 3
---
board: b
---
workflow: w
steps:
  - lock: l
    count: 2
    do:
      - prompt: go on?
  - post: {{ board: b, key: done }}
"
    )
}

#[test]
fn process_deploy_checks_against_the_cluster_dry_runs_refuses_stranding_and_undeploys() {
    let c = Controller::start();
    let k = c.cockpit("");
    let dir = c.dir.path().join("inv");
    let base_path = write(&dir, "base.yaml", &base(free_port()));
    k.ordo().arg("deploy").arg(&base_path).assert().success();

    // A workflow naming objects deployed earlier checks against the cluster, not alone.
    let other = write(
        &dir,
        "other.yaml",
        "workflow: v\njobs: { j: { agent: far, script: 'true' } }\nsteps:\n  - lock: l\n    do: [ { run: j } ]\n  - expect: { boards: [b], key: done }\n",
    );
    k.ordo()
        .args(["check", "--cluster"])
        .arg(&other)
        .assert()
        .success()
        .stdout(predicate::str::contains("checked 1 file: no problems"));
    c.ordo()
        .arg("check")
        .arg(&other)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("unknown agent `far`"));
    // A lock whose limit drops below what a deployed workflow takes: at the lock.
    let lock = write(&dir, "lock.yaml", "lock: l\nlimit: 1\n");
    let out = k
        .ordo()
        .args(["check", "--cluster"])
        .arg(&lock)
        .assert()
        .code(1);
    let text = stdout(out.get_output());
    assert!(
        text.contains(&format!(
            "{}:1:7: error: limit 1 of lock `l` is less than the count 2 deployed workflow `w` takes",
            lock.display()
        )),
        "{text}"
    );
    k.ordo()
        .arg("deploy")
        .arg(&lock)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("limit 1 of lock `l`"))
        .stderr(predicate::str::contains("nothing deployed"));

    // An order stands at the prompt inside the lock.
    k.ordo()
        .args(["order", "add", "w", "--id", "o1"])
        .assert()
        .success();
    c.wait_for("o1", "prompted", |o| o["state"] == "prompting");

    // The prompt becomes a sleep: the dry run shows the change and the stranded order.
    let changed = write(
        &dir,
        "changed.yaml",
        "workflow: w\nsteps:\n  - lock: l\n    count: 2\n    do:\n      - sleep: 1s\n  - post: { board: b, key: done }\n",
    );
    let out = k
        .ordo()
        .args(["deploy", "--dry-run"])
        .arg(&changed)
        .assert()
        .success();
    let text = stdout(out.get_output());
    for part in [
        "change",
        "workflow w",
        "v1 → v2",
        "o1",
        "0/do/0",
        "prompting",
        "holds `sleep` in v2, not `prompt`",
        "dry run: 1 change, 1 running order affected; nothing deployed",
    ] {
        assert!(text.contains(part), "{part:?} missing in {text}");
    }
    let out = k
        .ordo()
        .args(["deploy", "--dry-run", "--json"])
        .arg(&changed)
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(answer["dryRun"], true, "{answer}");
    assert_eq!(answer["diff"]["changed"][0]["fromVersion"], 1, "{answer}");
    assert_eq!(answer["diff"]["changed"][0]["version"], 2, "{answer}");
    assert_eq!(answer["diff"]["affected"][0]["order"], "o1", "{answer}");
    assert_eq!(
        answer["diff"]["affected"][0]["position"], "0/do/0",
        "{answer}"
    );
    assert!(
        answer["diff"]["affected"][0]["stranded"].is_string(),
        "{answer}"
    );
    // Nothing was deployed.
    assert_eq!(c.order("o1")["version"], 1);

    // Without --force the deployment is refused with the order; with it, it is made.
    k.ordo()
        .arg("deploy")
        .arg(&changed)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("would strand 1 order(s): o1"))
        .stderr(predicate::str::contains("nothing deployed"));
    let out = k
        .ordo()
        .args(["deploy", "--force"])
        .arg(&changed)
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains("WorkflowDeployed"), "{text}");
    // The order goes on on its version.
    let o = c.order("o1");
    assert_eq!(
        (o["version"].as_u64(), o["state"].as_str()),
        (Some(1), Some("prompting"))
    );
    k.ordo().args(["order", "answer", "o1"]).assert().success();
    c.wait_for("o1", "finished", |o| o["state"] == "finished");

    // Removals: refused while a deployed workflow uses the object; then in order.
    k.ordo()
        .args(["undeploy", "lock", "l"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("lock `l` is used by workflow `w`"))
        .stderr(predicate::str::contains("nothing removed"));
    k.ordo()
        .args(["undeploy", "workflow", "w", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("remove"))
        .stdout(predicate::str::contains("workflow w"));
    k.ordo()
        .args(["undeploy", "workflow", "w"])
        .assert()
        .success()
        .stdout(predicate::str::contains("WorkflowRemoved"))
        .stdout(predicate::str::contains("removed 1 object: 1 change"));
    for (kind, name, event) in [
        ("lock", "l", "LockRemoved l"),
        ("board", "b", "BoardRemoved b"),
        ("agent", "far", "AgentRemoved far"),
    ] {
        let out = k
            .ordo()
            .args(["undeploy", "--json", kind, name])
            .assert()
            .success();
        let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
        assert_eq!(answer["changes"][0], event, "{answer}");
    }
    k.ordo()
        .args(["order", "add", "w", "--id", "o2"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not deployed"));
    let out = k.ordo().args(["agents", "--json"]).assert().success();
    let agents: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        agents["agents"].as_array().map(Vec::len),
        Some(0),
        "{agents}"
    );
    // Nothing of it is left: the base deploys again from version 1.
    let out = k
        .ordo()
        .args(["deploy", "--json"])
        .arg(&base_path)
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let changes = answer["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c == "WorkflowDeployed w v1"),
        "{answer}"
    );

    // `removed:` in a file: what is deployed goes, the rest is passed over, so the same file
    // deploys again without change.
    let removal = write(
        &dir,
        "removal.yaml",
        "removed: { agents: [far], workflows: [never-deployed] }\n",
    );
    let out = k
        .ordo()
        .args(["deploy", "--json"])
        .arg(&removal)
        .assert()
        .success();
    let answer: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        answer["changes"],
        serde_json::json!(["AgentRemoved far"]),
        "{answer}"
    );
    k.ordo()
        .arg("deploy")
        .arg(&removal)
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing changed"));
}

/// A schedule passing an argument its workflow does not declare is refused by `ordo check`
/// (with the workflow in the files) and by `ordo deploy` (against the deployed workflow),
/// at the schedule's `workflow:`, before any order is planned.
#[test]
fn process_a_schedule_passing_an_undeclared_argument_is_refused_on_check_and_deploy() {
    let c = Controller::start();
    let k = c.cockpit("");
    let dir = c.dir.path().join("inv");
    let workflow = write(
        &dir,
        "w.yaml",
        "workflow: report\nparameters:\n  day: {}\nsteps:\n  - prompt: ok?\n",
    );
    k.ordo().arg("deploy").arg(&workflow).assert().success();
    let schedule = write(
        &dir,
        "s.yaml",
        "schedule: nightly\nworkflow: report\nargs: { day: $date, dya: $date }\ncron: \"0 3 * * *\"\n",
    );
    let message = "2:11: error: unknown argument `dya`; workflow `report` declares: day";
    c.ordo()
        .arg("check")
        .arg(&workflow)
        .arg(&schedule)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(message));
    k.ordo()
        .args(["check", "--cluster"])
        .arg(&schedule)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(message));
    k.ordo()
        .arg("deploy")
        .arg(&schedule)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(message))
        .stderr(predicate::str::contains("nothing deployed"));
    // Declared, it deploys.
    let schedule = write(
        &dir,
        "s.yaml",
        "schedule: nightly\nworkflow: report\nargs: { day: $date }\ncron: \"0 3 * * *\"\n",
    );
    k.ordo().arg("deploy").arg(&schedule).assert().success();
}
