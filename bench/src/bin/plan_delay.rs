//! From a planned instant to its job's start on the agent: a controller and an agent as
//! processes of this build (`ordo_tests::Cluster`), a schedule that fires every 2 seconds,
//! orders handed to the agent 10 s ahead (`[plan] attach_ahead_ms`).
//!
//! First `WITH` instants with the controller running, then the controller stopped for
//! `WITHOUT_S` seconds (the agent starts the orders it holds by itself) and started again.
//! The delay of an instant is the job's journaled start (`ProcessingStarted.at`, the agent's
//! clock) minus the instant.
//!
//! One JSON line: `{"name": "plan_delay", "with_controller": {"n", "p50_ms", "p99_ms",
//! "max_ms"}, "without_controller": {…}}`.
//!
//! Env: `WITH` (default 30), `WITHOUT_S` (8).

use anyhow::{Context, Result, bail};
use ordo_bench::stats::quantile;
use ordo_tests::{Cluster, ENDED};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The `at` of the first `processingStarted` object inside `v`.
fn started_at(v: &Json) -> Option<i64> {
    match v {
        Json::Object(m) => {
            if m.get("type").and_then(Json::as_str) == Some("processingStarted") {
                return m.get("at").and_then(Json::as_i64);
            }
            m.values().find_map(started_at)
        }
        Json::Array(a) => a.iter().find_map(started_at),
        _ => None,
    }
}

fn summary(delays: &[f64]) -> Json {
    json!({
        "n": delays.len(),
        "p50_ms": quantile(delays, 0.5),
        "p99_ms": quantile(delays, 0.99),
        "max_ms": delays.iter().copied().fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d)))),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let with = env("WITH", 30);
    let without_s = env("WITHOUT_S", 8);
    let mut c = Cluster::new(&["a1"])?;
    c.edit_controller(|f| f.plan.attach_ahead_ms = 10_000)?;
    c.start_controller().await?;
    c.start_agent("a1")?;
    let workflow =
        "workflow: w\njobs:\n  job: { agent: a1, script: 'true' }\nsteps:\n  - run: job\n";
    let schedule = "schedule: s\nworkflow: w\ncron: \"*/2 * * * * *\"\n";
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("w.yaml", workflow.to_owned()),
        ("s.yaml", schedule.to_owned()),
    ])
    .await?;
    let started = now_ms();
    tokio::time::sleep(Duration::from_secs(2 * with + 2)).await;
    let stopped = now_ms();
    c.controller.as_mut().context("the controller")?.stop();
    tokio::time::sleep(Duration::from_secs(without_s)).await;
    let restarted = now_ms();
    c.start_controller().await?;
    // Every order of an instant before the restart ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    let plan = loop {
        let plan: Json = c.api.get_json(&c.url("/plan?schedule=s")).await?;
        let open: Vec<String> = plan["entries"]
            .as_array()
            .map(|es| {
                es.iter()
                    .filter(|e| e["at"].as_i64().is_some_and(|t| t < restarted))
                    .filter(|e| {
                        e["status"] == "ordered"
                            && !ENDED.contains(&e["orderState"].as_str().unwrap_or("finished"))
                    })
                    .filter_map(|e| e["orderId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if open.is_empty() {
            break plan;
        }
        if Instant::now() > deadline {
            bail!("planned orders did not end: {open:?}\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut instant_of = BTreeMap::new();
    for e in plan["entries"].as_array().into_iter().flatten() {
        if let (Some(id), Some(at)) = (e["orderId"].as_str(), e["at"].as_i64()) {
            instant_of.insert(id.to_owned(), at);
        }
    }
    let mut with_controller = Vec::new();
    let mut without_controller = Vec::new();
    for frame in c.events(0).await? {
        if frame["type"] != "ProcessingStarted" {
            continue;
        }
        let (Some(id), Some(at)) = (frame["key"].as_str(), started_at(&frame["event"])) else {
            continue;
        };
        let Some(instant) = instant_of.get(id).copied() else {
            continue;
        };
        let delay = (at - instant) as f64;
        if instant > started && instant < stopped {
            with_controller.push(delay);
        } else if instant > stopped + 500 && instant < restarted {
            without_controller.push(delay);
        }
    }
    with_controller.sort_by(f64::total_cmp);
    without_controller.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "name": "plan_delay",
            "with_controller": summary(&with_controller),
            "without_controller": summary(&without_controller),
        })
    );
    Ok(())
}
