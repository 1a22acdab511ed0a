//! Journal benchmark: group-commit throughput and latency, and recovery time.
//!
//! `cargo run --release -p ordo-bench --bin journal`; prints one JSON object per line:
//! - `fsync_baseline`: p50/p99 of `fdatasync` after a small append on this disk;
//! - `journal_append`: `WRITERS` tasks each keeping `IN_FLIGHT` appends of `EVENT_BYTES` in
//!   flight (append → durable latency), with fsync on, then off for comparison;
//! - `journal_recovery`: reopening a journal of `RECOVERY_EVENTS` events and replaying what the
//!   state needs: everything (`snapshot: false`) or what follows a snapshot (`snapshot: true`).
//!
//! Env: `EVENTS` appends per append run (default 1000000), `BENCH_DIR` parent directory of the
//! journals (default /var/tmp, which is on disk here; /tmp may be tmpfs).

use std::{
    collections::VecDeque,
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use ordo_journal::{Config, Journal, Stats};
use serde_json::Value;

const WRITERS: usize = 64;
const IN_FLIGHT: usize = 4;
const EVENT_BYTES: usize = 100;
const EVENTS_DEFAULT: usize = 1_000_000;
const RECOVERY_EVENTS: u64 = 1_000_000;
/// The snapshot of the recovery run covers this many of the events.
const SNAPSHOT_AT: u64 = 900_000;
const SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;
const FSYNC_SAMPLES: usize = 200;

/// Prints one JSON object with its keys in the given order.
fn print_line(fields: &[(&str, Value)]) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
        .collect();
    println!("{{{}}}", body.join(","));
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i]
}

fn main() -> Result<()> {
    let events: usize = match std::env::var("EVENTS") {
        Ok(v) => v.parse().context("EVENTS must be a number")?,
        Err(_) => EVENTS_DEFAULT,
    };
    let parent =
        std::env::var("BENCH_DIR").map_or_else(|_| PathBuf::from("/var/tmp"), PathBuf::from);
    let base = tempfile::Builder::new()
        .prefix("ordo-bench-journal-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;

    let (fsync_p50, fsync_p99) = fsync_baseline(base.path())?;
    print_line(&[
        ("name", "fsync_baseline".into()),
        ("dir", parent.display().to_string().into()),
        ("samples", FSYNC_SAMPLES.into()),
        ("fsync_p50_us", fsync_p50.into()),
        ("fsync_p99_us", fsync_p99.into()),
    ]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for fsync in [true, false] {
        let dir = base.path().join(format!("append-fsync-{fsync}"));
        let run = runtime.block_on(append_run(&dir, events, fsync))?;
        let seconds = run.elapsed.as_secs_f64();
        print_line(&[
            ("name", "journal_append".into()),
            ("events", run.events.into()),
            ("event_bytes", EVENT_BYTES.into()),
            ("writers", WRITERS.into()),
            ("in_flight_per_writer", IN_FLIGHT.into()),
            ("fsync", fsync.into()),
            ("seconds", round3(seconds).into()),
            (
                "events_per_s",
                ((run.events as f64 / seconds) as u64).into(),
            ),
            (
                "events_per_fsync",
                round3(run.events as f64 / run.stats.fsyncs.max(1) as f64).into(),
            ),
            ("fsyncs", run.stats.fsyncs.into()),
            ("batches", run.stats.batches.into()),
            (
                "fsync_mean_us",
                (run.stats.fsync_us / run.stats.fsyncs.max(1)).into(),
            ),
            (
                "writer_in_fsync_share",
                round3(run.stats.fsync_us as f64 / 1e6 / seconds).into(),
            ),
            ("p50_us", percentile(&run.latencies_us, 0.50).into()),
            ("p99_us", percentile(&run.latencies_us, 0.99).into()),
            ("fsync_p50_us", fsync_p50.into()),
        ]);
        std::fs::remove_dir_all(&dir).ok();
    }

    let dir = base.path().join("recovery");
    let build = build_recovery_journal(&dir)?;
    for snapshot in [false, true] {
        // Warm the page cache with one untimed run, then time the second.
        recover(&dir, snapshot)?;
        let r = recover(&dir, snapshot)?;
        print_line(&[
            ("name", "journal_recovery".into()),
            ("events", RECOVERY_EVENTS.into()),
            ("event_bytes", EVENT_BYTES.into()),
            ("journal_bytes", build.into()),
            ("snapshot", snapshot.into()),
            ("snapshot_id", r.snapshot_id.into()),
            ("snapshot_bytes", r.snapshot_bytes.into()),
            ("replayed", r.replayed.into()),
            ("recovery_s", round3(r.total.as_secs_f64()).into()),
            ("open_s", round3(r.open.as_secs_f64()).into()),
            ("replay_s", round3(r.replay.as_secs_f64()).into()),
        ]);
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `fdatasync` after appending a small record to a file, like one journal commit.
fn fsync_baseline(dir: &Path) -> Result<(u64, u64)> {
    let path = dir.join("fsync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let record = [7u8; EVENT_BYTES + 12];
    let mut samples = Vec::with_capacity(FSYNC_SAMPLES);
    for _ in 0..FSYNC_SAMPLES {
        file.write_all(&record)?;
        let t = Instant::now();
        file.sync_data()?;
        samples.push(t.elapsed().as_micros() as u64);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    samples.sort_unstable();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

struct AppendRun {
    events: usize,
    elapsed: Duration,
    stats: Stats,
    latencies_us: Vec<u64>,
}

async fn append_run(dir: &Path, events: usize, fsync: bool) -> Result<AppendRun> {
    let mut config = Config::new(dir);
    config.fsync = fsync;
    let journal = Journal::open(config)?.journal;
    let per_writer = events / WRITERS;
    let start_stats = journal.stats();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            let mut in_flight = VecDeque::with_capacity(IN_FLIGHT);
            let mut issued = 0;
            while issued < per_writer || !in_flight.is_empty() {
                while issued < per_writer && in_flight.len() < IN_FLIGHT {
                    let mut event = vec![b'e'; EVENT_BYTES];
                    event[..8].copy_from_slice(&((w * per_writer + issued) as u64).to_le_bytes());
                    in_flight.push_back((Instant::now(), journal.append(event)));
                    issued += 1;
                }
                if let Some((at, appending)) = in_flight.pop_front() {
                    appending.await?;
                    latencies.push(at.elapsed().as_micros() as u64);
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies_us = Vec::with_capacity(per_writer * WRITERS);
    for task in tasks {
        latencies_us.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let end = journal.stats();
    latencies_us.sort_unstable();
    let done = per_writer * WRITERS;
    if end.appends - start_stats.appends != done as u64 {
        bail!(
            "{} appends acknowledged but the journal counted {}",
            done,
            end.appends - start_stats.appends
        );
    }
    Ok(AppendRun {
        events: done,
        elapsed,
        stats: Stats {
            appends: end.appends - start_stats.appends,
            batches: end.batches - start_stats.batches,
            fsyncs: end.fsyncs - start_stats.fsyncs,
            bytes: end.bytes - start_stats.bytes,
            fsync_us: end.fsync_us - start_stats.fsync_us,
        },
        latencies_us,
    })
}

/// Writes the recovery journal (fsync off: only the files matter) with a snapshot; returns
/// its size in bytes.
fn build_recovery_journal(dir: &Path) -> Result<u64> {
    let mut config = Config::new(dir);
    config.fsync = false;
    let journal = Journal::open(config)?.journal;
    let chunk = 10_000u64;
    let mut next = 1u64;
    while next <= RECOVERY_EVENTS {
        let batch = (next..next + chunk)
            .map(|id| {
                let mut event = vec![b'r'; EVENT_BYTES];
                event[..8].copy_from_slice(&id.to_le_bytes());
                (None, event)
            })
            .collect();
        journal.append_batch(batch).wait()?;
        next += chunk;
        if next == SNAPSHOT_AT + 1 {
            journal.write_snapshot(SNAPSHOT_AT, &vec![b's'; SNAPSHOT_BYTES])?;
        }
    }
    let bytes = journal.stats().bytes;
    drop(journal);
    Ok(bytes)
}

struct Recovery {
    total: Duration,
    open: Duration,
    replay: Duration,
    replayed: u64,
    snapshot_id: u64,
    snapshot_bytes: usize,
}

/// Opens the journal and replays what the state needs, folding every event into a checksum
/// as a stand-in for applying it. With `use_snapshot` false the snapshot is ignored.
fn recover(dir: &Path, use_snapshot: bool) -> Result<Recovery> {
    let started = Instant::now();
    let opened = Journal::open(Config::new(dir))?;
    let open = started.elapsed();
    let (after, snapshot_bytes) = match (&opened.snapshot, use_snapshot) {
        (Some(s), true) => (s.id, s.bytes.len()),
        _ => (0, 0),
    };
    let replay_started = Instant::now();
    let mut replayed = 0u64;
    let mut fold = 0u64;
    for record in opened.journal.read_after(after)? {
        let record = record?;
        fold = fold
            .wrapping_mul(31)
            .wrapping_add(record.id ^ record.data.len() as u64);
        replayed += 1;
    }
    let replay = replay_started.elapsed();
    let total = started.elapsed();
    if replayed != RECOVERY_EVENTS - after {
        bail!(
            "replayed {replayed} events, expected {}",
            RECOVERY_EVENTS - after
        );
    }
    std::hint::black_box(fold);
    Ok(Recovery {
        total,
        open,
        replay,
        replayed,
        snapshot_id: after,
        snapshot_bytes,
    })
}
