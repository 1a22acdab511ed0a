//! The daily planner in the controller's machine (`ordo_controller::plan`): `SCHEDULES`
//! schedules deployed at once, planned `DAYS` days ahead, the orders of the next hour added.
//!
//! Shapes in turn: a weekday cron at 02:30 (Europe/Berlin), every 15 minutes
//! (America/New_York), two times of day (Asia/Kathmandu), hourly from 06:00 to 22:00 (UTC).
//!
//! One JSON line: `{"name": "plan_state", "schedules", "days", "planned" (instants in the
//! plan), "orders" (orders added, within the attach horizon), "deploy_ms" (the deployment's
//! round: its events, the plan of every schedule, the orders of the next hour),
//! "plan_bytes_per_instant" (heap the state's plan holds per planned instant, its share of
//! the schedules' definitions included), "order_bytes" (heap of an added planned order in the
//! state's world), "machine_bytes_per_order" (all the round left in the machine's heap beside
//! the plan, per added order: the orders, their timers, the workflow), "events", "journal_bytes" (postcard bytes of
//! the round's records)}`.
//!
//! Env: `SCHEDULES` (default 10000), `DAYS` (7).

use anyhow::{Context, Result};
use ordo_controller::machine::{Action, Machine, Settings, Token};
use ordo_controller::plan::PlanSettings;
use ordo_controller::record::Record;
use ordo_controller::state::State;
use ordo_model::time::TimeMs;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The inventory's files: the agent and workflow, then 500 schedules a file.
fn yaml(schedules: usize) -> Vec<SourceFile> {
    let mut files = vec![SourceFile::new(
        "w.yaml",
        "agent: a1\nurl: wss://127.0.0.1:9\ncertificateName: localhost\n---\n\
         workflow: w\nparameters: { day: { default: x } }\njobs:\n  j: { agent: a1, script: 'true' }\nsteps:\n  - run: j\n",
    )];
    let mut y = String::new();
    for i in 0..schedules {
        let shape = match i % 4 {
            0 => "timeZone: Europe/Berlin\ncron: \"30 2 * * MON-FRI\"\n",
            1 => "timeZone: America/New_York\ncron: \"*/15 * * * *\"\n",
            2 => "timeZone: Asia/Kathmandu\ntimes: [\"08:00\", \"17:30\"]\n",
            _ => "repeat: { every: 1h, from: \"06:00\", until: \"22:00\" }\n",
        };
        y.push_str(&format!(
            "---\nschedule: s{i:05}\nworkflow: w\nargs: {{ day: $date }}\n{shape}"
        ));
        if (i + 1) % 500 == 0 || i + 1 == schedules {
            files.push(SourceFile::new(
                format!("s{i}.yaml"),
                std::mem::take(&mut y),
            ));
        }
    }
    files
}

fn main() -> Result<()> {
    let schedules = env("SCHEDULES", 10_000);
    let days = env("DAYS", 7);
    let inventory = parse_inventory(&yaml(schedules), &Limits::default())
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("the bench inventory")?;
    let settings = Settings {
        plan: PlanSettings {
            days_ahead: u32::try_from(days)?,
            attach_ahead_ms: 3600 * 1000,
            fires_per_schedule_max: 100_000,
            ..PlanSettings::default()
        },
        ..Settings::default()
    };
    // 2026-03-25T00:00:00Z: the week holds Europe's change of daylight saving time.
    let now = TimeMs(1_774_396_800_000);
    let mut m = Machine::new(State::new(), settings);
    m.became_leader(1);
    m.flush(now);
    drop(m.take_actions());
    let before = held();
    let started = Instant::now();
    m.deploy(Token(1), &inventory, now);
    let mut events = 0usize;
    let mut journal_bytes = 0usize;
    let mut rounds = 0;
    loop {
        m.flush(now);
        let actions = m.take_actions();
        let mut appended = false;
        for a in actions {
            if let Action::Append {
                position,
                events: e,
                ..
            } = a
            {
                events += e.len();
                journal_bytes += e
                    .into_iter()
                    .map(|(_, s)| Record::V1(s).encode().len())
                    .sum::<usize>();
                m.committed(position, now);
                appended = true;
            }
        }
        rounds += 1;
        if !appended || rounds > 100 {
            break;
        }
    }
    let deploy_ms = started.elapsed().as_secs_f64() * 1000.0;
    let total = held().saturating_sub(before);
    let state = m.state();
    let planned: usize = state
        .plan
        .schedules
        .values()
        .map(|p| p.planned.len() + p.decided.len())
        .sum();
    let orders = state.world.orders.len();
    let at = held();
    let plan = state.plan.clone();
    let plan_bytes = held().saturating_sub(at);
    drop(plan);
    let at = held();
    let copy = state.world.orders.clone();
    let order_bytes = held().saturating_sub(at) as f64 / orders.max(1) as f64;
    drop(copy);
    // Everything else the round left in the machine, put on the orders it added.
    let rest_bytes = total.saturating_sub(plan_bytes) as f64 / orders.max(1) as f64;
    println!(
        "{}",
        json!({
            "name": "plan_state",
            "schedules": schedules,
            "days": days,
            "planned": planned,
            "orders": orders,
            "deploy_ms": (deploy_ms * 10.0).round() / 10.0,
            "plan_bytes_per_instant": (plan_bytes as f64 / planned.max(1) as f64).round(),
            "order_bytes": order_bytes.round(),
            "machine_bytes_per_order": rest_bytes.round(),
            "events": events,
            "journal_bytes": journal_bytes,
        })
    );
    Ok(())
}
