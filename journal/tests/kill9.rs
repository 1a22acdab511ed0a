//! A real process appends in a loop and is killed with SIGKILL; the reopened journal must hold
//! every record the process saw acknowledged, as a gapless prefix.

mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{read_all, temp_dir};
use ordo_journal::{Config, Journal};

const TEST_NAME: &str = "process_kill9_never_loses_acknowledged_records";
const CHILD_DIR_ENV: &str = "ORDO_JOURNAL_KILL9_DIR";
const CHILD_ROUND_ENV: &str = "ORDO_JOURNAL_KILL9_ROUND";
const ROUNDS: u32 = 3;
const CHILD_THREADS: u32 = 4;
/// The child gives up on its own after this long (the parent kills it much earlier).
const CHILD_RUN_MS_MAX: u64 = 20_000;
/// The parent kills the child after this many acknowledgements, or this long.
const ACKS_BEFORE_KILL: usize = 300;
const WAIT_FOR_ACKS_MS_MAX: u64 = 10_000;

fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir);
    // Small segments, so that kills also land around segment rolls.
    c.segment_bytes_max = 8 * 1024;
    c
}

#[test]
fn process_kill9_never_loses_acknowledged_records() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        let round = std::env::var(CHILD_ROUND_ENV).unwrap_or_default();
        child(Path::new(&dir), &round);
        return;
    }
    let dir = temp_dir();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_ROUND_ENV, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let lines = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut this_round = 0usize;
        let deadline = Instant::now() + Duration::from_millis(WAIT_FOR_ACKS_MS_MAX);
        // Vary the kill point a little from round to round.
        let target = ACKS_BEFORE_KILL + 97 * round as usize;
        while this_round < target && Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100))
                && record_ack(&line, &mut acked)
            {
                this_round += 1;
            }
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().unwrap();
        lines.join().unwrap();
        for line in rx.try_iter() {
            if record_ack(&line, &mut acked) {
                this_round += 1;
            }
        }
        assert!(
            !status.success(),
            "the child ended on its own before the kill: {status}"
        );
        assert!(
            this_round > 0,
            "round {round}: the child acknowledged nothing"
        );

        let opened = Journal::open(config(dir.path())).expect("reopen after kill -9");
        let records = read_all(&opened.journal, 0);
        let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            (1..=records.len() as u64).collect::<Vec<_>>(),
            "round {round}: the journal is not a gapless prefix"
        );
        assert_eq!(opened.recovery.last_id, records.len() as u64);
        for (id, data) in &acked {
            let record = records
                .get((*id - 1) as usize)
                .unwrap_or_else(|| panic!("round {round}: acknowledged id {id} is lost"));
            assert_eq!(
                String::from_utf8_lossy(&record.data),
                *data,
                "round {round}: id {id} holds other data"
            );
        }
        eprintln!(
            "round {round}: {this_round} acknowledged before the kill, {} in the journal, \
             recovery cut {:?}",
            records.len(),
            opened.recovery.truncated
        );
    }
}

/// Parses `ACK <id> <data> END\n`; only complete lines count.
fn record_ack(line: &[u8], acked: &mut BTreeMap<u64, String>) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let Some(rest) = line
        .strip_prefix("ACK ")
        .and_then(|l| l.strip_suffix(" END\n"))
    else {
        return false;
    };
    let Some((id, data)) = rest.split_once(' ') else {
        return false;
    };
    let id: u64 = id.parse().expect("id in an ACK line");
    assert!(
        acked.insert(id, data.to_string()).is_none(),
        "id {id} acknowledged twice"
    );
    true
}

/// The child: appends from several threads until killed, printing every acknowledged id.
fn child(dir: &Path, round: &str) {
    let opened = Journal::open(config(dir)).expect("child opens the journal");
    let journal = opened.journal;
    let started = Instant::now();
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|t| {
            let journal = journal.clone();
            let round = round.to_string();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while started.elapsed() < Duration::from_millis(CHILD_RUN_MS_MAX) {
                    let data = format!("r{round}-t{t}-{i}-{}", "x".repeat((i % 90) as usize));
                    let id = journal
                        .append(data.clone().into_bytes())
                        .wait()
                        .expect("append");
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "ACK {id} {data} END")
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
