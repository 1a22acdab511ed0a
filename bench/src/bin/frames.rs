//! Event frames and state snapshots in the published JSON form (`ordo_api::json`): how fast the
//! controller writes them and a reader (the cockpit) reads them, against serde_json's derived
//! form of the same frame in the same run (the baseline: the same fields, the event in serde's
//! externally tagged form, no adapter).
//!
//! One JSON line per shape and direction:
//! `{"name": "frames", "shape", "direction": "write"|"read", "bytes", "published_per_s",
//! "derived_per_s", "ratio"}` (`ratio` = published / derived), then one line for a state
//! snapshot of `ORDERS` orders.
//!
//! Shapes: `processed` (an agent's `Processed` with a few values), `attached` (an agent's
//! `Attached` carrying the whole order), `output` (64 KiB of job output), `added` (an order
//! with 50 variables, lists included).
//!
//! Env: `N` frames per measurement (default 20000), `ORDERS` (default 20000).

use anyhow::Result;
use ordo_api::frame::{EventFrame, StateSnapshot, write_state_snapshot};
use ordo_api::record::{Body, Stored};
use ordo_api::state::State;
use ordo_model::ids::{AgentId, OrderId, VersionId, WorkflowName};
use ordo_model::order::{Command, KeyedEvent, OrderEvent, Outcome, command, deploy};
use ordo_model::time::TimeMs;
use ordo_model::value::{Value, Vars};
use ordo_model::wire::{AgentEventBody, Stream};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

const YAML: &str = "workflow: w\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j }, { prompt: ok? } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n";

/// The baseline: the frame's fields with the event in serde_json's derived form.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DerivedFrame<'a> {
    event_id: u64,
    term: u64,
    ts: TimeMs,
    key: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: Cow<'a, str>,
    text: Cow<'a, str>,
    event: Cow<'a, Body>,
}

impl<'a> DerivedFrame<'a> {
    fn of(event_id: u64, stored: &'a Stored) -> DerivedFrame<'a> {
        let (key, kind, text) = ordo_api::view::describe(&stored.body);
        DerivedFrame {
            event_id,
            term: stored.term,
            ts: stored.ts,
            key: Cow::Owned(key),
            kind: Cow::Borrowed(kind),
            text: Cow::Owned(text),
            event: Cow::Borrowed(&stored.body),
        }
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vars(n: usize) -> Vars {
    (0..n)
        .map(|i| {
            let v = match i % 4 {
                0 => Value::from(i as i64),
                1 => Value::from(format!("value {i}")),
                2 => Value::List(vec![Value::from(1.5), Value::from("x"), Value::Missing]),
                _ => Value::Bool(i % 3 == 0),
            };
            (format!("var_{i}"), v)
        })
        .collect()
}

fn agent(body: AgentEventBody) -> Body {
    Body::Agent {
        agent: AgentId::new("a").unwrap(),
        run_id: u128::MAX / 3,
        agent_event_id: 42,
        body,
    }
}

fn shapes(state: &State) -> Vec<(&'static str, Stored)> {
    let o1 = OrderId::new("o1").unwrap();
    let order = state.world.order(&o1).cloned().expect("o1 was added");
    let stored = |body| Stored {
        term: 1,
        ts: TimeMs(1_700_000_000_000),
        body,
    };
    vec![
        (
            "processed",
            stored(agent(AgentEventBody::Order(KeyedEvent::order(
                &o1,
                OrderEvent::Processed {
                    outcome: Outcome::Succeeded { values: vars(3) },
                },
            )))),
        ),
        (
            "attached",
            stored(agent(AgentEventBody::Order(KeyedEvent::order(
                &o1,
                OrderEvent::Attached {
                    order: Box::new(order),
                },
            )))),
        ),
        (
            "output",
            stored(agent(AgentEventBody::Output {
                order_id: o1.clone(),
                stream: Stream::Stdout,
                chunk: b"a line of job output\n".repeat(3121),
            })),
        ),
        (
            "added",
            stored(Body::Event(KeyedEvent::order(
                &o1,
                OrderEvent::Added {
                    workflow: WorkflowName::new("w").unwrap(),
                    version: VersionId(1),
                    vars: vars(50),
                    scheduled_for: None,
                    added_by: None,
                },
            ))),
        ),
    ]
}

/// Runs `f` `n` times; per second.
fn rate(n: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn state_of(orders: usize) -> Result<State> {
    let inv = parse_inventory(&[SourceFile::new("w.yaml", YAML)], &Limits::default())
        .map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let mut state = State::new();
    let mut id = 0u64;
    let mut apply = |state: &mut State, e: KeyedEvent| {
        id += 1 << 16;
        let _ = state.apply(
            id,
            &Stored {
                term: 1,
                ts: TimeMs(0),
                body: Body::Event(e),
            },
        );
    };
    for e in deploy(&state.world, &inv) {
        apply(&mut state, e);
    }
    for i in 0..orders {
        let add = Command::Add {
            id: OrderId::new(format!("o{}", i + 1))?,
            workflow: WorkflowName::new("w")?,
            vars: vars(5),
            scheduled_for: None,
        };
        for e in command(&state.world, add, TimeMs(0), &Default::default())?.events {
            apply(&mut state, e);
        }
    }
    Ok(state)
}

fn main() -> Result<()> {
    let n = env("N", 20_000);
    let orders = env("ORDERS", 20_000);
    let small = state_of(1)?;
    for (shape, stored) in shapes(&small) {
        let frame = EventFrame::of(65536, &stored);
        let published = frame.to_json()?;
        let derived = serde_json::to_string(&DerivedFrame::of(65536, &stored))?;
        let count = if published.len() > 100_000 { n / 20 } else { n };
        let write_published = rate(count, || {
            black_box(EventFrame::of(65536, black_box(&stored)).to_json().ok());
        });
        let write_derived = rate(count, || {
            black_box(serde_json::to_string(&DerivedFrame::of(65536, black_box(&stored))).ok());
        });
        let read_published = rate(count, || {
            black_box(ordo_api::frame::parse_message(black_box(&published)).ok());
        });
        let read_derived = rate(count, || {
            black_box(serde_json::from_str::<DerivedFrame>(black_box(&derived)).ok());
        });
        for (direction, p, d) in [
            ("write", write_published, write_derived),
            ("read", read_published, read_derived),
        ] {
            println!(
                "{}",
                json!({
                    "name": "frames", "shape": shape, "direction": direction,
                    "bytes": published.len(), "derived_bytes": derived.len(),
                    "published_per_s": p.round(), "derived_per_s": d.round(),
                    "ratio": (p / d * 100.0).round() / 100.0,
                })
            );
        }
    }
    let state = state_of(orders)?;
    let mut published = Vec::new();
    let start = Instant::now();
    write_state_snapshot(&mut published, 1, &state)?;
    let write_published_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let derived = serde_json::to_vec(&state)?;
    let write_derived_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let back = StateSnapshot::from_slice(&published)?;
    let read_published_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let back_derived: State = serde_json::from_slice(&derived)?;
    let read_derived_s = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        back.state == state && back_derived == state,
        "states differ"
    );
    println!(
        "{}",
        json!({
            "name": "state_snapshot", "orders": orders,
            "bytes": published.len(), "derived_bytes": derived.len(),
            "write_ms": (write_published_s * 1000.0).round(), "derived_write_ms": (write_derived_s * 1000.0).round(),
            "read_ms": (read_published_s * 1000.0).round(), "derived_read_ms": (read_derived_s * 1000.0).round(),
        })
    );
    Ok(())
}
