//! A director pair with real processes: director `dir`, backup director `dir-b` and the third
//! voter `dir-w` (the same agent binary with `[pair]` in its configuration, all three agent
//! `dir` with its certificate), two subagents, one controller.
//!
//! Restartable jobs run on the subagents; kill -9 of the active director: the other becomes
//! active, the controller couples with it, every order finishes, each (order, attempt) started
//! once, no job of an order ran while an earlier attempt of it still ran, some orders ran
//! again (attempt 2), the controller journaled each start once and saw one agent run, and the
//! journals of the three nodes (each releasing segments below its own snapshots) agree on
//! every record they share.
//!
//! Fencing: a subagent refuses a dedication of an older term than the highest it has seen.

use anyhow::{Context, Result, anyhow, bail};
use ordo_agent::config::{PairNode, PairSection, PairVoter};
use ordo_tests::{Cluster, ENDED, listen_port};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DIRECTORS: [&str; 2] = ["dir", "dir-b"];
const NODES: [&str; 3] = ["dir", "dir-b", "dir-w"];
const SUBAGENTS: [&str; 2] = ["s1", "s2"];
const ORDERS: usize = 16;
/// How long the orders may take to end, in milliseconds.
const ORDERS_WAIT_MS: u64 = 60_000;
/// How long a director may take to become active, in milliseconds.
const ACTIVE_WAIT_MS: u64 = 30_000;
/// Small journal segments and frequent snapshots: the nodes release segments as they go.
const SNAPSHOT_INTERVAL_RECORDS: u64 = 20;
const SEGMENT_BYTES_MAX: u64 = 4096;
/// The line a director logs when it starts directing.
const ACTIVE_LINE: &str = "this director is now the active one of its pair";

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn config_path(c: &Cluster, id: &str) -> Result<PathBuf> {
    c.local
        .agent_configs
        .iter()
        .find(|(a, ..)| a == id)
        .map(|(_, path, _)| path.clone())
        .ok_or_else(|| anyhow!("no agent {id}"))
}

/// Makes `dir`, `dir-b` and `dir-w` the three nodes of agent `dir`'s director pair: the same
/// agent id and certificate, each its own data directory, listener and raft address.
fn make_pair(c: &Cluster) -> Result<()> {
    let dir_config =
        ordo_agent::config::ConfigFile::parse(&std::fs::read_to_string(config_path(c, "dir")?)?)
            .map_err(|e| anyhow!(e))?;
    let mut nodes = Vec::new();
    let mut listens = Vec::new();
    for (k, id) in NODES.iter().enumerate() {
        let port = listen_port([127, 0, 0, 1].into())?;
        let raft: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        listens.push(raft);
        nodes.push(PairNode {
            id: k as u64 + 1,
            voter: if *id == "dir-w" {
                PairVoter::Watch
            } else {
                PairVoter::Director
            },
            raft_address: raft.to_string(),
            url: (*id != "dir-w").then(|| c.agent_url(id)).transpose()?,
        });
    }
    for (k, id) in NODES.iter().enumerate() {
        let tls = dir_config.tls.clone();
        let nodes = nodes.clone();
        let raft_listen = listens[k];
        ordo_cli::local::edit_agent_config(&config_path(c, id)?, |f| {
            f.agent_id = "dir".into();
            f.tls = tls;
            // Snapshots and released segments on every node, the passive ones included.
            f.limits.snapshot_interval_records = SNAPSHOT_INTERVAL_RECORDS;
            f.limits.segment_bytes_max = SEGMENT_BYTES_MAX;
            f.pair = Some(PairSection {
                node_id: k as u64 + 1,
                raft_listen,
                nodes,
                tick_ms: 25,
                election_ticks: 12,
                heartbeat_ticks: 2,
                message_bytes_max: 256 << 20,
            });
        })?;
    }
    Ok(())
}

/// The directors whose logs say they direct.
fn active_directors(c: &mut Cluster) -> Vec<&'static str> {
    DIRECTORS
        .into_iter()
        .filter(|id| {
            c.agent(id)
                .is_some_and(|a| a.log_tail(1 << 20).contains(ACTIVE_LINE))
        })
        .collect()
}

/// Waits until one director other than `not` directs.
async fn wait_active(c: &mut Cluster, not: Option<&str>) -> Result<&'static str> {
    let deadline = Instant::now() + Duration::from_millis(ACTIVE_WAIT_MS);
    loop {
        if let Some(id) = active_directors(c).into_iter().find(|id| Some(*id) != not) {
            return Ok(id);
        }
        if Instant::now() > deadline {
            bail!("no director became active\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Journal records by id.
type Records = BTreeMap<u64, Vec<u8>>;

/// Every record the agent journal in `data_dir` keeps, by id, and the id of its newest
/// snapshot (the node is stopped).
fn journal_records(data_dir: &Path) -> Result<(Records, Option<u64>)> {
    let mut config = ordo_journal::Config::new(data_dir.join("journal"));
    config.record_bytes_max = 64 << 20;
    config.segment_bytes_max = SEGMENT_BYTES_MAX;
    let opened = ordo_journal::Journal::open(config)?;
    let snapshot = opened.snapshot.as_ref().map(|s| s.id);
    let first = opened.journal.first_id().unwrap_or(1);
    let mut out = BTreeMap::new();
    for record in opened.journal.read_after(first.saturating_sub(1))? {
        let record = record?;
        out.insert(record.id, record.data);
    }
    Ok((out, snapshot))
}

#[tokio::test]
async fn process_director_pair_the_backup_takes_over_when_the_active_director_is_killed()
-> Result<()> {
    let scratch = tempfile::tempdir()?;
    let runs = scratch.path().join("runs.txt");
    let overlaps = scratch.path().join("overlaps.txt");
    let pids = scratch.path().join("pids");
    std::fs::create_dir(&pids)?;
    let mut c = Cluster::new(&["dir", "dir-b", "dir-w", "s1", "s2"])?;
    for s in SUBAGENTS {
        c.make_subagent(s, "dir")?;
    }
    make_pair(&c)?;
    c.edit_controller(|f| f.agents.reconnect_max_ms = 1_000)?;
    c.start_controller().await?;
    for id in NODES.into_iter().chain(SUBAGENTS) {
        c.start_agent(id)?;
    }
    let agent = format!(
        "agent: dir\ndirector: {}\nbackupDirector: {}\nleaseTimeout: 2s\nsubagents:\n  - id: s1\n    url: {}\n  - id: s2\n    url: {}\n",
        c.agent_url("dir")?,
        c.agent_url("dir-b")?,
        c.agent_url("s1")?,
        c.agent_url("s2")?,
    );
    // A job notes its start, and whether an earlier attempt of its order still runs.
    let workflow = format!(
        r#"workflow: steady
jobs:
  job:
    agent: dir
    parallelism: 64
    restartable: true
    script: |
      pidfile={pids}/$ORDO_ORDER_ID
      if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "$ORDO_ORDER_ID $ORDO_ATTEMPT" >> {overlaps}
      fi
      echo $$ > "$pidfile"
      echo "$ORDO_ORDER_ID $ORDO_ATTEMPT $ORDO_SUBAGENT" >> {runs}
      sleep 3
steps:
  - run: job
"#,
        pids = pids.display(),
        overlaps = overlaps.display(),
        runs = runs.display(),
    );
    let first = wait_active(&mut c, None).await?;
    c.deploy(&[("agent.yaml", agent), ("w.yaml", workflow)])
        .await?;
    let ids: Vec<String> = (0..ORDERS).map(|i| format!("o-{i}")).collect();
    let body: Vec<Json> = ids
        .iter()
        .map(|id| json!({"id": id, "workflow": "steady"}))
        .collect();
    c.add_orders(&body).await?;

    // Every job runs: then the active director dies.
    let deadline = Instant::now() + Duration::from_millis(ORDERS_WAIT_MS);
    while lines(&runs).len() < ORDERS {
        if Instant::now() > deadline {
            bail!(
                "{} of {ORDERS} jobs started\n{}",
                lines(&runs).len(),
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.agent(first).context("the active director")?.kill9();
    let second = wait_active(&mut c, Some(first)).await?;
    assert_ne!(first, second);

    let ended = c
        .wait_states(&ids, ENDED, Duration::from_millis(ORDERS_WAIT_MS))
        .await
        .with_context(|| c.logs())?;
    for o in &ended {
        assert_eq!(o["state"], "finished", "{o}\n{}", c.logs());
    }
    // Each attempt started once; the jobs running at the kill ran again.
    let mut started = BTreeSet::new();
    let mut again = 0;
    for line in lines(&runs) {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line}");
        assert!(
            SUBAGENTS.contains(&parts[2]),
            "a job ran elsewhere than on a subagent: {line}"
        );
        assert!(
            started.insert((parts[0].to_owned(), parts[1].to_owned())),
            "attempt started twice: {line}"
        );
        if parts[1] != "1" {
            again += 1;
        }
    }
    assert!(
        again > 0,
        "no job ran again after the kill: {:?}",
        lines(&runs)
    );
    assert!(
        lines(&overlaps).is_empty(),
        "attempts of an order ran at once: {:?}",
        lines(&overlaps)
    );
    // The controller coupled with the new active director: its link is up.
    let agents: Json = c.api.get_json(&c.url("/agents")).await?;
    let link = agents["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "dir"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(link["connected"], true, "{link}");
    assert_eq!(
        link["coupledUrl"].as_str(),
        Some(c.agent_url(second)?.as_str()),
        "the link names the director it is coupled with: {link}"
    );
    // The controller journaled every start once, and the run went on across the takeover.
    let events = c.events(0).await?;
    let of_type = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!(
        of_type("ProcessingStarted"),
        started.len(),
        "the controller's starts differ from the jobs that ran"
    );
    assert_eq!(of_type("AgentRunChanged"), 1, "the agent's run changed");

    // The journals agree on every record they share; every node wrote snapshots (the watch
    // and the new active one while they were passive) and released segments below them.
    for id in [second, "dir-w"] {
        if let Some(a) = c.agent(id) {
            a.stop();
        }
    }
    let mut journals = Vec::new();
    for id in NODES {
        let config = ordo_agent::Config::load(&config_path(&c, id)?)?;
        let (records, snapshot) = journal_records(&config.data_dir)?;
        assert!(snapshot.is_some(), "{id} wrote no snapshot");
        journals.push((id, records));
    }
    let watch = &journals[2].1;
    assert!(
        watch.keys().next().is_some_and(|first| *first > 1),
        "the watch released no segment: its journal starts at {:?}",
        watch.keys().next()
    );
    if std::env::var_os("ORDO_TEST_LOGS").is_some() {
        eprintln!("{}", c.logs());
    }
    for (a, ja) in &journals {
        eprintln!(
            "{a}: records {:?}..={:?} ({} kept); attempts started again: {again}",
            ja.keys().next(),
            ja.keys().last(),
            ja.len()
        );
        assert!(!ja.is_empty(), "{a} keeps no record");
        for (b, jb) in &journals {
            for (id, data) in ja {
                if let Some(other) = jb.get(id) {
                    assert_eq!(data, other, "record {id} differs between {a} and {b}");
                }
            }
            // Where both keep records, they keep the same ids.
            let first = |j: &Records| j.keys().next().copied().unwrap_or(0);
            let last = |j: &Records| j.keys().last().copied().unwrap_or(0);
            let range = first(ja).max(first(jb))..=last(ja).min(last(jb));
            let ids = |j: &Records| -> Vec<u64> {
                j.keys().filter(|id| range.contains(id)).copied().collect()
            };
            assert_eq!(ids(ja), ids(jb), "{a} and {b} keep other ids in {range:?}");
        }
    }
    Ok(())
}

/// A subagent serves the director of the highest term it has seen: a dedication with an older
/// term, or a plain one after a term, is refused; the same or a newer term is taken (and ends
/// the older session).
#[tokio::test]
async fn process_subagent_refuses_a_director_of_an_older_term() -> Result<()> {
    use ordo_agent::cluster::protocol::{
        Dedicate, FromSubagent, PROTOCOL_VERSION, SUBAGENT_WS_PATH, ToSubagent,
    };
    let mut c = Cluster::new(&["dir", "s1"])?;
    c.make_subagent("s1", "dir")?;
    c.start_agent("s1")?;
    let dir = ordo_agent::Config::load(&config_path(&c, "dir")?)?;
    let tls = ordo_net::tls::client_config(
        &ordo_net::tls::CaBundle::from_pem_file(&dir.tls.controller_ca)?,
        Some(&ordo_net::tls::TlsMaterial::from_pem_files(
            &dir.tls.certificate,
            &dir.tls.key,
        )?),
    )?;
    let url = format!("{}{SUBAGENT_WS_PATH}", c.agent_url("s1")?);
    let max = 1 << 20;
    let dedicate = |term: u64| {
        let dedicate = Dedicate {
            protocol_version: PROTOCOL_VERSION,
            director: ordo_model::ids::AgentId::new("dir").expect("an id"),
            subagent: ordo_model::ids::AgentId::new("s1").expect("an id"),
            lease_timeout_ms: 10_000,
        };
        match term {
            0 => ToSubagent::Dedicate(dedicate),
            term => ToSubagent::DedicateInTerm { dedicate, term },
        }
    };
    // The subagent listens once it has started: connect until it answers.
    let deadline = Instant::now() + Duration::from_millis(ACTIVE_WAIT_MS);
    let session = |term: u64| {
        let tls = tls.clone();
        let url = url.clone();
        let message = dedicate(term);
        async move {
            let mut ws = ordo_net::client::connect_ws(&url, tls, max, 5_000).await?;
            ordo_net::frame::send(&mut ws, &message, max).await?;
            let answer: Option<FromSubagent> = ordo_net::frame::recv(&mut ws, max).await?;
            anyhow::Ok((ws, answer))
        }
    };
    let (_first, answer) = loop {
        match session(5).await {
            Ok(done) => break done,
            Err(e) if Instant::now() > deadline => bail!("the subagent does not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(
        matches!(answer, Some(FromSubagent::Dedicated { .. })),
        "{answer:?}"
    );
    for older in [3, 0] {
        let (_ws, answer) = session(older).await?;
        match answer {
            Some(FromSubagent::Refused { reason }) => {
                assert!(reason.contains("older than term 5"), "{reason}")
            }
            other => bail!("term {older} was not refused: {other:?}"),
        }
    }
    let (newer, answer) = session(6).await?;
    assert!(
        matches!(answer, Some(FromSubagent::Dedicated { .. })),
        "{answer:?}"
    );
    drop(newer);
    // The term is kept across a restart of the subagent: the director of term 5 stays out.
    if let Some(s1) = c.agent("s1") {
        s1.kill9();
    }
    c.start_agent("s1")?;
    let deadline = Instant::now() + Duration::from_millis(ACTIVE_WAIT_MS);
    let answer = loop {
        match session(5).await {
            Ok((_ws, answer)) => break answer,
            Err(e) if Instant::now() > deadline => {
                bail!("the restarted subagent does not answer: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    match answer {
        Some(FromSubagent::Refused { reason }) => {
            assert!(reason.contains("older than term 6"), "{reason}")
        }
        other => bail!("term 5 was not refused after the restart: {other:?}"),
    }
    let (_again, answer) = session(6).await?;
    assert!(
        matches!(answer, Some(FromSubagent::Dedicated { .. })),
        "{answer:?}"
    );
    Ok(())
}
