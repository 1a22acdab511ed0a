//! A director with two subagents (real agents) behind a controller process: the cockpit's
//! `GET /agents` shows each subagent's figures (live, cores, load, memory, processed jobs,
//! their average duration, connected since), `/metrics` has their series, and
//! `GET /queues` puts orders in the waiting, running, finished and failed queues.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// The director `dir` with subagents `s1`, `s2`, and three workflows: `quick` (a job that
/// ends at once), `broken` (a job that fails), `gated` (a job of parallelism 1 that ends once
/// `gate` exists).
fn inventory(dir: &Agent, s1: &Agent, s2: &Agent, gate: &Path) -> String {
    format!(
        r#"
agent: dir
url: wss://127.0.0.1:{dir}
selection: round-robin
leaseTimeout: 10s
subagents:
  - id: s1
    url: wss://127.0.0.1:{s1}
  - id: s2
    url: wss://127.0.0.1:{s2}
---
workflow: quick
jobs:
  job: {{ agent: dir, script: "echo on $ORDO_SUBAGENT" }}
steps:
  - run: job
---
workflow: broken
jobs:
  job: {{ agent: dir, script: "exit 3" }}
steps:
  - run: job
---
workflow: gated
jobs:
  job:
    agent: dir
    parallelism: 1
    script: "while [ ! -e {gate} ]; do sleep 0.05; done"
steps:
  - run: job
"#,
        dir = dir.port,
        s1 = s1.port,
        s2 = s2.port,
        gate = gate.display(),
    )
}

/// The director's `subagentHealth` in the cockpit's `GET /agents`.
async fn subagents(cockpit: &Cockpit) -> Vec<Value> {
    let a = cockpit.get("/api/v1/agents").await;
    a["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["id"] == "dir"))
        .and_then(|d| d["subagentHealth"].as_array().cloned())
        .unwrap_or_default()
}

/// A queue of `GET /queues`.
fn queue<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["queue"] == name))
        .unwrap_or_else(|| panic!("no queue {name} in {answer}"))
}

fn ids(queue: &Value) -> Vec<&str> {
    queue["orders"]
        .as_array()
        .map(|o| o.iter().filter_map(|o| o["id"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_subagent_figures_reach_agents_and_metrics_and_orders_fill_the_queues() {
    let controller = Controller::start().await;
    let dirs = tempfile::tempdir().unwrap();
    for d in ["dir", "s1", "s2"] {
        std::fs::create_dir_all(dirs.path().join(d)).unwrap();
    }
    let s1 = Agent::start_as(&controller, &dirs.path().join("s1"), "s1", Some("dir")).await;
    let s2 = Agent::start_as(&controller, &dirs.path().join("s2"), "s2", Some("dir")).await;
    let director = Agent::start_as(&controller, &dirs.path().join("dir"), "dir", None).await;
    let cockpit = Cockpit::start(&controller).await;
    let gate = dirs.path().join("gate");
    cockpit
        .post(
            ADMIN,
            "/api/v1/deploy",
            json!({"files": [{"name": "cluster.yaml", "text": inventory(&director, &s1, &s2, &gate)}]}),
        )
        .await;

    // Jobs run to their end on the subagents; one fails.
    for i in 0..4 {
        cockpit
            .post(
                OPERATOR,
                "/api/v1/orders",
                json!({"id": format!("q{i}"), "workflow": "quick"}),
            )
            .await;
        cockpit.order_in(&format!("q{i}"), "finished").await;
    }
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "b1", "workflow": "broken"}),
        )
        .await;
    cockpit.order_in("b1", "failed").await;

    // Every subagent shows its host and the jobs it ran.
    let shown = until("both subagents with their figures", 30_000, || async {
        let subs = subagents(&cockpit).await;
        let processed: u64 = subs.iter().filter_map(|s| s["processed"].as_u64()).sum();
        let complete = subs.len() == 2
            && processed == 5
            && subs.iter().all(|s| {
                s["state"] == "live"
                    && s["memoryTotalBytes"].as_u64().is_some_and(|m| m > 0)
                    && s["memoryAvailableBytes"].as_u64().is_some()
                    && s["cores"].as_u64().is_some_and(|c| c > 0)
                    && s["load"].as_array().is_some_and(|l| l.len() == 3)
                    && s["connectedSinceMs"].as_i64().is_some()
            });
        complete.then_some(subs)
    })
    .await;
    let ids_shown: Vec<&str> = shown.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids_shown, ["s1", "s2"], "{shown:?}");
    for s in &shown {
        if s["processed"].as_u64() > Some(0) {
            assert!(s["averageJobDurationMs"].is_u64(), "{s}");
        }
    }
    assert!(
        shown.iter().all(|s| s["processed"].as_u64() > Some(0)),
        "round-robin gave every subagent a job: {shown:?}"
    );

    // `/metrics` has the series of both (from the link status the cockpit reads).
    let metrics = until("the subagent series in /metrics", 30_000, || async {
        let r = cockpit.call(None, "GET", "/metrics", None).await;
        let t = text(&r);
        (t.contains("ordo_cockpit_subagent_processed{agent=\"dir\",subagent=\"s2\"}")
            && t.contains(
                "ordo_cockpit_subagent_memory_total_bytes{agent=\"dir\",subagent=\"s1\"}",
            ))
        .then_some(t)
    })
    .await;
    for series in [
        "ordo_cockpit_subagent_live{agent=\"dir\",subagent=\"s1\"} 1",
        "ordo_cockpit_subagent_live{agent=\"dir\",subagent=\"s2\"} 1",
        "ordo_cockpit_subagent_running_processes{agent=\"dir\",subagent=\"s1\"}",
        "ordo_cockpit_subagent_average_job_duration_seconds{agent=\"dir\",subagent=\"s1\"}",
        "ordo_cockpit_subagent_cores{agent=\"dir\",subagent=\"s2\"}",
        "ordo_cockpit_subagent_load1{agent=\"dir\",subagent=\"s2\"}",
        "ordo_cockpit_subagent_memory_available_bytes{agent=\"dir\",subagent=\"s2\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing in\n{metrics}");
    }

    // Queues: g1 runs, g2 waits for the job's one process slot; q* finished, b1 failed.
    for id in ["g1", "g2"] {
        cockpit
            .post(
                OPERATOR,
                "/api/v1/orders",
                json!({"id": id, "workflow": "gated"}),
            )
            .await;
    }
    cockpit.order_in("g1", "processing").await;
    let queues = until("g2 waiting for its slot", 20_000, || async {
        let q = cockpit.get("/api/v1/queues").await;
        (ids(queue(&q, "waiting")) == ["g2"]).then_some(q)
    })
    .await;
    assert_eq!(ids(queue(&queues, "running")), ["g1"], "{queues}");
    assert_eq!(queue(&queues, "running")["count"], 1, "{queues}");
    assert_eq!(
        ids(queue(&queues, "finished")),
        ["q0", "q1", "q2", "q3"],
        "{queues}"
    );
    assert_eq!(ids(queue(&queues, "failed")), ["b1"], "{queues}");
    for q in queues["queues"].as_array().unwrap() {
        assert_eq!(q["countComplete"], true, "{q}");
    }

    // Filters, a limit with its cursor, and refusals.
    let gated = cockpit.get("/api/v1/queues?workflow=gated").await;
    assert_eq!(queue(&gated, "finished")["count"], 0, "{gated}");
    assert_eq!(queue(&gated, "waiting")["count"], 1, "{gated}");
    let on_dir = cockpit.get("/api/v1/queues?agent=dir").await;
    assert_eq!(ids(queue(&on_dir, "running")), ["g1"], "{on_dir}");
    assert_eq!(ids(queue(&on_dir, "waiting")), ["g2"], "{on_dir}");
    let page = cockpit.get("/api/v1/queues?queue=finished&limit=3").await;
    assert_eq!(page["queues"].as_array().unwrap().len(), 1, "{page}");
    let finished = queue(&page, "finished");
    assert_eq!(finished["count"], 4, "{page}");
    assert_eq!(ids(finished), ["q0", "q1", "q2"], "{page}");
    assert_eq!(finished["next"], "q2", "{page}");
    let rest = cockpit
        .get("/api/v1/queues?queue=finished&limit=3&after=q2")
        .await;
    assert_eq!(ids(queue(&rest, "finished")), ["q3"], "{rest}");
    assert!(queue(&rest, "finished").get("next").is_none(), "{rest}");
    let from_q1 = cockpit.get("/api/v1/queues?after=q1").await;
    assert_eq!(ids(queue(&from_q1, "finished")), ["q2", "q3"], "{from_q1}");
    assert_eq!(queue(&from_q1, "finished")["count"], 4, "{from_q1}");
    for bad in [
        "/api/v1/queues?queue=stuck",
        "/api/v1/queues?queue=",
        "/api/v1/queues?limit=0",
    ] {
        let r = cockpit.call(Some(VIEWER), "GET", bad, None).await;
        assert_eq!(r.status, 400, "{bad}: {}", text(&r));
    }

    // Let the gated jobs end.
    std::fs::write(&gate, b"").unwrap();
    cockpit.order_in("g2", "finished").await;
    let after = cockpit.get("/api/v1/queues?workflow=gated").await;
    assert_eq!(ids(queue(&after, "finished")), ["g1", "g2"], "{after}");
    assert_eq!(queue(&after, "running")["count"], 0, "{after}");
    director.stop().await;
    s1.stop().await;
    s2.stop().await;
}
