//! Expanding schedules into fires (`ordo_model::schedule`): `SCHEDULES` schedules over `DAYS`
//! days across a change of daylight saving time, as the daily plan will do it.
//!
//! The schedules mix five shapes in turn: a weekday cron at a fixed time on a business-day
//! calendar with holidays (Europe/Berlin), every 15 minutes (America/New_York), two times of
//! day (Asia/Kathmandu), a repeat every hour from 06:00 to 22:00 (Australia/Lord_Howe, whose
//! clocks move by 30 minutes) and a daily cron on a calendar of the last two days of each
//! month (UTC). The window starts on 2026-03-25, so the week holds the European change.
//!
//! The baseline, in the same run: the least any expansion must do, turning each fire's wall
//! time into an instant once with jiff (`tz.to_timestamp`), the same number of times.
//!
//! One JSON line per round, then a summary:
//! `{"name": "plan_expand", "schedules", "days", "fires", "parse_ms", "resolve_ms",
//! "expand_ms" (median over rounds), "fires_per_s", "baseline_ms", "ratio" (expand /
//! baseline), "ids_ms" (order id and arguments of every fire), "peak_heap_mb" (the most the
//! allocator held during one expansion, the fires included), "fires_mb" (the fires alone),
//! "vm_hwm_mb" (the process's peak resident memory)}`.
//!
//! Env: `SCHEDULES` (default 10000), `DAYS` (7), `ROUNDS` (5).

use anyhow::{Context, Result};
use ordo_model::schedule::{BundledZones, ExpandLimits, Expander, Fire, Window, Zones};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes held and the most held since the last reset.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
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

fn mb(bytes: usize) -> f64 {
    (bytes as f64 / 1e6 * 10.0).round() / 10.0
}

/// The process's peak resident memory (`VmHWM`), in kB.
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn inventory_yaml(schedules: usize) -> String {
    let mut y = String::from(
        "workflow: w\nparameters: { day: {} }\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n---\ncalendar: holidays\ndates: [2026-04-03, 2026-04-06, 2026-05-01]\n---\ncalendar: business\nweekdays: MON-FRI\nexclude: { calendars: [holidays] }\n---\ncalendar: month-ends\nmonthDays: [-1, -2]\n",
    );
    for i in 0..schedules {
        let (h, m) = (i % 24, (i * 7) % 60);
        let body = match i % 5 {
            0 => format!(
                "timeZone: Europe/Berlin\ncron: \"{m} {h} * * MON-FRI\"\ncalendar: business\n"
            ),
            1 => "timeZone: America/New_York\ncron: \"*/15 * * * *\"\n".to_owned(),
            2 => format!(
                "timeZone: Asia/Kathmandu\ntimes: [\"{h:02}:{m:02}\", \"{:02}:{m:02}\"]\n",
                (h + 12) % 24
            ),
            3 => "timeZone: Australia/Lord_Howe\nrepeat: { every: 1h, from: \"06:00\", until: \"22:00\" }\n"
                .to_owned(),
            _ => format!("cron: \"{m} {h} * * *\"\ncalendar: month-ends\n"),
        };
        y += &format!("---\nschedule: s{i}\nworkflow: w\nargs: {{ day: $date }}\n{body}");
    }
    y
}

fn main() -> Result<()> {
    let schedules = env("SCHEDULES", 10_000);
    let days = env("DAYS", 7);
    let rounds = env("ROUNDS", 5).max(1);
    let yaml = inventory_yaml(schedules);
    let limits = Limits {
        file_bytes_max: yaml.len() + 1,
        expanded_bytes_per_file_max: yaml.len() + 1,
        nodes_per_file_max: 100 * schedules + 1000,
        documents_per_file_max: schedules + 10,
        ..Limits::default()
    };
    let start = Instant::now();
    let inventory = parse_inventory(&[SourceFile::new("bench.yaml", yaml)], &limits)
        .map_err(|d| anyhow::anyhow!("the bench inventory is invalid: {}", d[0]))?;
    let parse_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let expander = Expander::new(&inventory, &BundledZones).context("resolving the schedules")?;
    let resolve_ms = start.elapsed().as_secs_f64() * 1e3;
    let from: jiff::Timestamp = "2026-03-25T00:00:00Z".parse()?;
    let window = Window {
        from,
        until: from + jiff::SignedDuration::from_hours(24 * days as i64),
    };
    let expand_limits = ExpandLimits {
        window_days_max: u32::try_from(days)?,
        fires_max: usize::MAX,
    };
    let mut expand_ms = Vec::new();
    let mut peak_heap = 0;
    let mut fires: Vec<Fire> = Vec::new();
    for round in 0..rounds {
        drop(std::mem::take(&mut fires));
        let before = HELD.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let start = Instant::now();
        fires = expander.fires(window, &expand_limits)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        peak_heap = PEAK.load(Ordering::Relaxed) - before;
        eprintln!("round {round}: {} fires in {ms:.1} ms", fires.len());
        println!(
            "{}",
            json!({"name": "plan_expand_round", "round": round, "fires": fires.len(), "expand_ms": ms})
        );
        expand_ms.push(ms);
    }
    expand_ms.sort_by(f64::total_cmp);
    let median = expand_ms[expand_ms.len() / 2];
    let fires_mb = mb(fires.capacity() * std::mem::size_of::<Fire>());

    // The baseline: one wall time → instant conversion per fire, in the fire's zone.
    let zones: Vec<jiff::tz::TimeZone> = inventory
        .schedules
        .iter()
        .map(|s| BundledZones.zone(&s.time_zone).expect("a known zone"))
        .collect();
    let walls: Vec<(usize, jiff::civil::DateTime)> = fires
        .iter()
        .map(|f| (f.schedule as usize, f.local()))
        .collect();
    let mut baseline = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        for (s, w) in &walls {
            black_box(zones[*s].to_timestamp(*w).ok());
        }
        baseline.push(start.elapsed().as_secs_f64() * 1e3);
    }
    baseline.sort_by(f64::total_cmp);
    let baseline_ms = baseline[baseline.len() / 2];

    let start = Instant::now();
    for f in &fires {
        black_box(expander.order_id(f)?);
        black_box(expander.args(f)?);
    }
    let ids_ms = start.elapsed().as_secs_f64() * 1e3;

    println!(
        "{}",
        json!({
            "name": "plan_expand",
            "schedules": schedules,
            "days": days,
            "fires": fires.len(),
            "parse_ms": (parse_ms * 10.0).round() / 10.0,
            "resolve_ms": (resolve_ms * 10.0).round() / 10.0,
            "expand_ms": (median * 10.0).round() / 10.0,
            "fires_per_s": (fires.len() as f64 / (median / 1e3)).round(),
            "baseline_ms": (baseline_ms * 10.0).round() / 10.0,
            "ratio": ((median / baseline_ms) * 100.0).round() / 100.0,
            "ids_ms": (ids_ms * 10.0).round() / 10.0,
            "peak_heap_mb": mb(peak_heap),
            "fires_mb": fires_mb,
            "vm_hwm_mb": (vm_hwm_kb() as f64 / 1e3 * 10.0).round() / 10.0,
        })
    );
    Ok(())
}
