//! The end-to-end workload: one-job orders running `true` (no shell) on one agent, added to a
//! controller's API and followed on its event stream until they finish.
//!
//! ```yaml
//! workflow: <name>
//! jobs:
//!   job: { agent: bench, command: ["true"], parallelism: <parallelism> }
//! steps:
//!   - run: job
//! ```
//!
//! Two phases, shared by the `e2e` and `failover` programs:
//! - [`latency_phase`]: orders added one at a time on an idle system, each after the previous
//!   one finished and a gap; add → `ProcessingStarted` as the client sees it (POST sent →
//!   event received; µs clock), from the events' own timestamps, POST → answer, and POST →
//!   each step's event received (`seen_<step>_*`).
//! - [`bulk_phase`]: orders added in bulk (`add_batch` a request); the time runs from the
//!   first `Added` to the last `Finished` event journaled (event `ts`).

use crate::controller_client::{ControllerClient, Event, Follower};
use crate::stats::{quantile, round};
use anyhow::{Context, bail};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The agent the jobs run on.
pub const AGENT: &str = "bench";
/// Orders run before anything is measured.
pub const WARM_UP_ORDERS: usize = 50;
/// Longest wait for the next event while orders are under way.
pub const EVENT_TIMEOUT_MS: u64 = 30_000;
/// Most orders one request may add (the controller's `orders_per_request_max` default).
pub const ADD_BATCH_MAX: usize = 10_000;

/// The workflow `name`: one job running `true` on [`AGENT`].
pub fn workflow_yaml(name: &str, parallelism: u32) -> String {
    format!(
        "workflow: {name}\njobs:\n  job: {{ agent: {AGENT}, command: [\"true\"], parallelism: {parallelism} }}\nsteps:\n  - run: job\n"
    )
}

/// An order of `workflow` (the add body).
pub fn order(workflow: &str, id: &str) -> Json {
    json!({"id": id, "workflow": workflow})
}

/// The instants (event `ts`, ms) one order went through.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub added: Option<i64>,
    pub attached: Option<i64>,
    pub started: Option<i64>,
    pub processed: Option<i64>,
    pub finished: Option<i64>,
}

impl Timeline {
    /// Records `e` when it is one of the steps followed; an error when the order failed.
    pub fn record(&mut self, e: &Event) -> anyhow::Result<()> {
        let slot = match e.kind.as_str() {
            "Added" => &mut self.added,
            "Attached" => &mut self.attached,
            "ProcessingStarted" => &mut self.started,
            "Processed" => &mut self.processed,
            "Finished" => &mut self.finished,
            "Failed" | "Cancelled" | "FailedInFork" => {
                bail!("order {} ended with {} (event {})", e.key, e.kind, e.id)
            }
            _ => return Ok(()),
        };
        slot.get_or_insert(e.ts_ms);
        Ok(())
    }
}

const STAGES: [&str; 5] = [
    "added_attached",
    "attached_started",
    "started_processed",
    "processed_finished",
    "added_finished",
];

/// `<stage>_p50_ms` and `<stage>_p99_ms` of each stage over `timelines`.
pub fn stage_quantiles<'a>(
    timelines: impl Iterator<Item = &'a Timeline> + Clone,
) -> Vec<(String, Json)> {
    let span = |a: Option<i64>, b: Option<i64>| Some((b? - a?) as f64);
    let mut out = Vec::new();
    for stage in STAGES {
        let values: Vec<f64> = timelines
            .clone()
            .filter_map(|t| match stage {
                "added_attached" => span(t.added, t.attached),
                "attached_started" => span(t.attached, t.started),
                "started_processed" => span(t.started, t.processed),
                "processed_finished" => span(t.processed, t.finished),
                _ => span(t.added, t.finished),
            })
            .collect();
        out.push((format!("{stage}_p50_ms"), json!(quantile(&values, 0.5))));
        out.push((format!("{stage}_p99_ms"), json!(quantile(&values, 0.99))));
    }
    out
}

/// Reads events until every order of `ids` has finished; their timelines, the instant the
/// last `Finished` was received, and how many events of these orders were read.
pub async fn until_finished(
    follower: &mut Follower,
    ids: &[String],
    within: Duration,
) -> anyhow::Result<(HashMap<String, Timeline>, Instant, usize)> {
    let mut timelines: HashMap<String, Timeline> = ids
        .iter()
        .map(|id| (id.clone(), Timeline::default()))
        .collect();
    let deadline = Instant::now() + within;
    let mut left = ids.len();
    let mut events = 0usize;
    let mut last_seen = Instant::now();
    while left > 0 {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(EVENT_TIMEOUT_MS));
        let e = follower
            .next(wait)
            .await
            .with_context(|| format!("{left} of {} orders not finished", ids.len()))?;
        let Some(t) = timelines.get_mut(&e.key) else {
            continue;
        };
        events += 1;
        let was_finished = t.finished.is_some();
        t.record(&e)?;
        if !was_finished && t.finished.is_some() {
            left -= 1;
            last_seen = e.seen;
        }
    }
    Ok((timelines, last_seen, events))
}

/// Runs [`WARM_UP_ORDERS`] orders (ids `<prefix>-<i>`) to their end.
pub async fn warm_up(
    client: &ControllerClient,
    follower: &mut Follower,
    workflow: &str,
    prefix: &str,
) -> anyhow::Result<()> {
    let ids: Vec<String> = (0..WARM_UP_ORDERS)
        .map(|i| format!("{prefix}-{i}"))
        .collect();
    let orders: Vec<Json> = ids.iter().map(|id| order(workflow, id)).collect();
    client.add_orders(&orders).await?;
    until_finished(follower, &ids, Duration::from_secs(60)).await?;
    Ok(())
}

/// What the latency phase measured.
pub struct Latency {
    /// The fields of its line (without a name).
    pub fields: Vec<(String, Json)>,
    /// Add → `ProcessingStarted` received, client clock.
    pub client_p50_ms: Option<f64>,
    pub client_p99_ms: Option<f64>,
}

/// Event types whose arrival the latency phase times, from the add request being sent.
const SEEN: [(&str, &str); 5] = [
    ("Added", "seen_added"),
    ("Attached", "seen_attached"),
    ("ProcessingStarted", "seen_started"),
    ("Processed", "seen_processed"),
    ("Finished", "seen_finished"),
];

/// `n` orders (ids `<prefix>-<i>`) one at a time, `gap_ms` apart: add → `ProcessingStarted`.
pub async fn latency_phase(
    client: &ControllerClient,
    follower: &mut Follower,
    workflow: &str,
    prefix: &str,
    n: usize,
    gap_ms: u64,
) -> anyhow::Result<Latency> {
    let mut ack_ms = Vec::with_capacity(n);
    let mut ts_ms = Vec::with_capacity(n);
    // Per entry of SEEN: ms from sending the add to receiving that event.
    let mut seen_ms: Vec<Vec<f64>> = vec![Vec::with_capacity(n); SEEN.len()];
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let sent = Instant::now();
        client.add_order(&order(workflow, &id)).await?;
        ack_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        let mut timeline = Timeline::default();
        let deadline = Instant::now() + Duration::from_millis(EVENT_TIMEOUT_MS);
        while timeline.finished.is_none() {
            let wait = deadline.saturating_duration_since(Instant::now());
            let e = follower
                .next(wait)
                .await
                .with_context(|| format!("order {id} did not finish"))?;
            if e.key != id {
                continue;
            }
            if let Some(k) = SEEN.iter().position(|(kind, _)| *kind == e.kind) {
                seen_ms[k].push(e.seen.duration_since(sent).as_secs_f64() * 1000.0);
            }
            timeline.record(&e)?;
        }
        if let (Some(a), Some(b)) = (timeline.added, timeline.started) {
            ts_ms.push((b - a) as f64);
        }
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
    }
    let q = |v: &[f64], p| quantile(v, p).map(|x| round(x, 3));
    let started = &seen_ms[2];
    let mut fields: Vec<(String, Json)> = vec![
        ("n".into(), json!(n)),
        ("gap_ms".into(), json!(gap_ms)),
        ("client_p50_ms".into(), json!(q(started, 0.5))),
        ("client_p99_ms".into(), json!(q(started, 0.99))),
        ("client_max_ms".into(), json!(q(started, 1.0))),
        ("ts_p50_ms".into(), json!(q(&ts_ms, 0.5))),
        ("ts_p99_ms".into(), json!(q(&ts_ms, 0.99))),
        ("add_answer_p50_ms".into(), json!(q(&ack_ms, 0.5))),
        ("add_answer_p99_ms".into(), json!(q(&ack_ms, 0.99))),
    ];
    for ((_, name), values) in SEEN.iter().zip(&seen_ms) {
        fields.push((format!("{name}_p50_ms"), json!(q(values, 0.5))));
        fields.push((format!("{name}_p99_ms"), json!(q(values, 0.99))));
    }
    Ok(Latency {
        fields,
        client_p50_ms: q(started, 0.5),
        client_p99_ms: q(started, 0.99),
    })
}

/// What the bulk phase measured.
pub struct Bulk {
    pub timelines: HashMap<String, Timeline>,
    /// First `Added` → last `Finished` (event `ts`), s.
    pub seconds: f64,
    pub orders_per_s: f64,
    /// The first add request sent → the last `Finished` received, s.
    pub client_seconds: f64,
    /// Time taken by the add requests, s.
    pub add_seconds: f64,
    /// Events of these orders read per order.
    pub events_per_order: f64,
}

/// `ids` added in bulk (`add_batch` a request) and followed until every one finished.
pub async fn bulk_phase(
    client: &ControllerClient,
    follower: &mut Follower,
    workflow: &str,
    ids: &[String],
    add_batch: usize,
) -> anyhow::Result<Bulk> {
    assert!(add_batch > 0, "add_batch is at least 1");
    let sent = Instant::now();
    for chunk in ids.chunks(add_batch) {
        let orders: Vec<Json> = chunk.iter().map(|id| order(workflow, id)).collect();
        let answer = client.add_orders(&orders).await?;
        let added = answer["results"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|r| r["added"] == true).count());
        if added != chunk.len() {
            bail!("{added} of {} orders were added: {answer}", chunk.len());
        }
    }
    let add_seconds = sent.elapsed().as_secs_f64();
    let within = Duration::from_millis(300_000u64.max(ids.len() as u64 * 50));
    let (timelines, last_seen, events) = until_finished(follower, ids, within).await?;
    let first_added = timelines.values().filter_map(|t| t.added).min();
    let last_finished = timelines.values().filter_map(|t| t.finished).max();
    let (Some(first), Some(last)) = (first_added, last_finished) else {
        bail!("no Added or Finished event was seen");
    };
    let seconds = ((last - first) as f64 / 1000.0).max(0.001);
    Ok(Bulk {
        seconds,
        orders_per_s: ids.len() as f64 / seconds,
        client_seconds: last_seen.duration_since(sent).as_secs_f64(),
        add_seconds,
        events_per_order: events as f64 / ids.len().max(1) as f64,
        timelines,
    })
}

impl Bulk {
    /// The fields of its line: `seconds`, `orders_per_s`, `client_seconds`, `add_seconds`,
    /// `events_per_order`, `jobs_running_mean`.
    pub fn fields(&self) -> Vec<(String, Json)> {
        vec![
            ("seconds".into(), json!(round(self.seconds, 3))),
            ("orders_per_s".into(), json!(round(self.orders_per_s, 1))),
            (
                "client_seconds".into(),
                json!(round(self.client_seconds, 3)),
            ),
            ("add_seconds".into(), json!(round(self.add_seconds, 3))),
            (
                "events_per_order".into(),
                json!(round(self.events_per_order, 2)),
            ),
            (
                "jobs_running_mean".into(),
                json!(round(self.jobs_running_mean(), 2)),
            ),
        ]
    }

    /// Jobs running on average (Little's law over started → processed). `ProcessingStarted`
    /// is journaled before the spawn, so a job queued ahead for a slot counts before it runs.
    pub fn jobs_running_mean(&self) -> f64 {
        let running_ms: i64 = self
            .timelines
            .values()
            .filter_map(|t| Some(t.processed? - t.started?))
            .sum();
        running_ms as f64 / 1000.0 / self.seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, ts_ms: i64) -> Event {
        Event {
            id: 1,
            ts_ms,
            key: "o".into(),
            kind: kind.into(),
            seen: Instant::now(),
        }
    }

    #[test]
    fn a_timeline_keeps_the_first_instant_of_each_step_and_refuses_failures() {
        let mut t = Timeline::default();
        t.record(&event("Added", 10)).unwrap();
        t.record(&event("Added", 20)).unwrap();
        t.record(&event("Moved", 30)).unwrap();
        t.record(&event("Finished", 40)).unwrap();
        assert_eq!((t.added, t.finished), (Some(10), Some(40)));
        assert!(t.record(&event("Failed", 50)).is_err());
        let q = stage_quantiles([t].iter());
        assert_eq!(q.len(), 2 * STAGES.len());
        assert!(
            q.iter()
                .any(|(k, v)| k == "added_finished_p50_ms" && *v == json!(30.0))
        );
    }

    #[test]
    fn the_workflow_and_its_agent_make_a_valid_inventory() {
        use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
        let files = [
            SourceFile::new("w.yaml", workflow_yaml("w", 4)),
            SourceFile::new(
                "agent.yaml",
                format!("agent: {AGENT}\nurl: wss://127.0.0.1:1\n"),
            ),
        ];
        if let Err(diagnostics) = parse_inventory(&files, &Limits::default()) {
            panic!("{diagnostics:?}");
        }
        assert_eq!(order("w", "o-1"), json!({"id": "o-1", "workflow": "w"}));
    }
}
