//! Replicated-log benchmark: batches committed per second through `ordo-replica` nodes, with
//! the journal's own group commit of the same batches as the baseline of the same run.
//!
//! `cargo run --release -p ordo-bench --bin replica`; prints one JSON object per line:
//! - `replica_journal`: the baseline, an ordo journal taking `IN_FLIGHT` batches of
//!   `BATCH_BYTES` per append and waiting for each (one fdatasync per round): batches/s;
//! - `replica_single`: one voter, `IN_FLIGHT` proposals per round, each round handled until
//!   they are committed: batches/s, fsyncs per round;
//! - `replica_three`: three voters in this process, messages through an in-memory queue (in
//!   our postcard format, encoded and decoded), the same rounds, committed on the leader.
//!   In one process the nodes' fsyncs run one after another on one disk; on three machines
//!   the followers' overlap, so this is the pessimistic figure;
//! - `replica`: the summary, with `ratio_single` and `ratio_three` against the journal.
//!
//! Env: `BATCHES` per run (default 20000), `IN_FLIGHT` (64), `BATCH_BYTES` (1024),
//! `BENCH_DIR` parent directory of the data (default /var/tmp, on disk; /tmp may be tmpfs).

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use ordo_bench::stats::{json_line, round};
use ordo_journal::{Config, Journal};
use ordo_replica::{Message, Node, NodeConfig};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name} must be a number")),
        Err(_) => Ok(default),
    }
}

struct Run {
    batches: usize,
    seconds: f64,
    rounds: usize,
    fsyncs: u64,
    /// Microseconds the journals spent in fdatasync.
    fsync_us: u64,
}

impl Run {
    fn per_s(&self) -> f64 {
        self.batches as f64 / self.seconds
    }

    fn print(&self, name: &str, voters: usize) {
        let rounds = self.rounds as f64;
        println!(
            "{}",
            json_line(&[
                ("name", json!(name)),
                ("voters", json!(voters)),
                ("batches", json!(self.batches)),
                ("rounds", json!(self.rounds)),
                ("batches_per_s", json!(round(self.per_s(), 0))),
                (
                    "fsyncs_per_round",
                    json!(round(self.fsyncs as f64 / self.rounds as f64, 2))
                ),
                ("ms_per_round", json!(round(self.seconds * 1e3 / rounds, 2))),
                (
                    "fsync_ms_per_round",
                    json!(round(self.fsync_us as f64 / 1e3 / rounds, 2))
                ),
            ])
        );
    }
}

fn journal_run(dir: &Path, batches: usize, in_flight: usize, batch: &[u8]) -> Result<Run> {
    let journal = Journal::open(Config::new(dir))?.journal;
    let start = Instant::now();
    let mut rounds = 0;
    let mut done = 0;
    while done < batches {
        let n = in_flight.min(batches - done);
        journal
            .append_batch(vec![(None, batch.to_vec()); n])
            .wait()?;
        done += n;
        rounds += 1;
    }
    Ok(Run {
        batches,
        seconds: start.elapsed().as_secs_f64(),
        rounds,
        fsyncs: journal.stats().fsyncs,
        fsync_us: journal.stats().fsync_us,
    })
}

fn node_config(id: u64, voters: u64) -> NodeConfig {
    let mut c = NodeConfig::new(id, 1..=voters);
    // Room for a round of proposals in one append message and in the uncommitted budget.
    c.append_bytes_max = 8 << 20;
    c
}

/// Runs updates and delivers messages until nothing moves; returns the last index the
/// leader (node 1) saw committed.
fn drive(nodes: &mut [Node], queue: &mut VecDeque<Message>) -> Result<u64> {
    let mut committed_on_leader = 0;
    for _ in 0..100_000 {
        let mut moved = false;
        for node in nodes.iter_mut() {
            while node.has_update() {
                moved = true;
                let update = node.update(&mut |m| queue.push_back(m))?;
                if node.id() == 1
                    && let Some(last) = update.committed.last()
                {
                    committed_on_leader = last.index;
                }
            }
        }
        while let Some(m) = queue.pop_front() {
            moved = true;
            let m = Message::decode(&m.encode())?;
            let to = m.to() as usize - 1;
            nodes[to].step(m)?;
        }
        if !moved {
            return Ok(committed_on_leader);
        }
    }
    bail!("the nodes did not settle");
}

/// `voters` nodes in this process; node 1 campaigns and leads.
fn nodes_run(
    dir: &Path,
    voters: u64,
    batches: usize,
    in_flight: usize,
    batch: &[u8],
) -> Result<Run> {
    let mut nodes = Vec::new();
    for id in 1..=voters {
        let (node, _) = Node::open(&dir.join(format!("node-{id}")), node_config(id, voters))?;
        nodes.push(node);
    }
    let mut queue: VecDeque<Message> = VecDeque::new();
    nodes[0].campaign()?;
    drive(&mut nodes, &mut queue)?;
    if !nodes[0].is_leader() {
        bail!("node 1 did not become the leader");
    }
    let stats = |nodes: &[Node]| {
        nodes.iter().fold((0, 0), |(f, us), n| {
            let s = n.store().journal().stats();
            (f + s.fsyncs, us + s.fsync_us)
        })
    };
    let before = stats(&nodes);
    let start = Instant::now();
    let mut rounds = 0;
    let mut done = 0;
    while done < batches {
        let n = in_flight.min(batches - done);
        let mut last = 0;
        for _ in 0..n {
            last = nodes[0].propose(batch.to_vec())?.index;
        }
        done += n;
        rounds += 1;
        let mut committed = 0;
        for _ in 0..1000 {
            committed = committed.max(drive(&mut nodes, &mut queue)?);
            if committed >= last {
                break;
            }
            // Followers learn the commit with the next heartbeat; the leader needs none.
            nodes[0].tick();
        }
        if committed < last {
            bail!("round {rounds} did not commit up to index {last}");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = stats(&nodes);
    Ok(Run {
        batches,
        seconds,
        rounds,
        fsyncs: after.0 - before.0,
        fsync_us: after.1 - before.1,
    })
}

fn main() -> Result<()> {
    let batches = env_usize("BATCHES", 20_000)?;
    let in_flight = env_usize("IN_FLIGHT", 64)?.max(1);
    let batch_bytes = env_usize("BATCH_BYTES", 1024)?.max(1);
    let parent =
        std::env::var("BENCH_DIR").map_or_else(|_| PathBuf::from("/var/tmp"), PathBuf::from);
    let base = tempfile::Builder::new()
        .prefix("ordo-bench-replica-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    let batch = vec![b'e'; batch_bytes];

    eprintln!("journal baseline: {batches} batches, {in_flight} a round");
    let journal = journal_run(&base.path().join("journal"), batches, in_flight, &batch)?;
    journal.print("replica_journal", 0);
    eprintln!("one voter");
    let single = nodes_run(&base.path().join("single"), 1, batches, in_flight, &batch)?;
    single.print("replica_single", 1);
    eprintln!("three voters");
    let three = nodes_run(&base.path().join("three"), 3, batches, in_flight, &batch)?;
    three.print("replica_three", 3);
    println!(
        "{}",
        json_line(&[
            ("name", json!("replica")),
            ("dir", json!(parent.display().to_string())),
            ("batch_bytes", json!(batch_bytes)),
            ("in_flight", json!(in_flight)),
            ("journal_batches_per_s", json!(round(journal.per_s(), 0))),
            ("single_batches_per_s", json!(round(single.per_s(), 0))),
            ("three_batches_per_s", json!(round(three.per_s(), 0))),
            (
                "ratio_single",
                json!(round(single.per_s() / journal.per_s(), 3))
            ),
            (
                "ratio_three",
                json!(round(three.per_s() / journal.per_s(), 3))
            ),
        ])
    );
    Ok(())
}
