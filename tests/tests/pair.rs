//! The controller pair under faults: controller A, controller B and the watch as processes of
//! this build, their raft traffic through fault proxies, an agent, and a steady load of orders
//! sent to whichever controller is active (retried with the same id while the outcome is
//! unknown). Promises 1 and 2: an acknowledged order survives the crash of any one voter, and
//! one controller acts at a time, fenced by the agents.
//!
//! Each scenario ends with the history checker over the voters' committed journals: no order
//! lost, none unexpected, no job run twice, and the journals identical where they overlap.
//!
//! Default size: a few orders around two faults per scenario. `ORDO_LONG=1`: more orders and
//! faults. Every wait is on a signal (`/health`, acknowledgements, order states) and bounded;
//! nothing measures time.

use anyhow::Result;
use ordo_cli::local::ControllerFile;
use ordo_tests::pair::{Finished, Load, NODE_A, NODE_B, Pair, WATCH, cluster_number, role};
use std::path::PathBuf;
use std::time::Duration;

/// The workflow every order runs: one job that may not run twice, writing a line per run.
const WORKFLOW: &str = "pair";

/// A snapshot every this many events where a scenario needs the log compacted (an order of
/// the workflow makes about ten).
const SNAPSHOT_EVENTS: u64 = 40;

/// Orders the load adds at most (it is stopped long before).
const LOAD_ORDERS_MAX: usize = 1_000_000;

struct Size {
    /// Orders acknowledged before the first fault.
    before: usize,
    /// Orders acknowledged after each fault.
    after: usize,
    /// Faults per scenario.
    faults: usize,
    /// Time for every acknowledged order to end once the load stops.
    end_wait: Duration,
}

fn size() -> Size {
    if std::env::var("ORDO_LONG").is_ok_and(|v| v == "1") {
        Size {
            before: 50,
            after: 60,
            faults: 4,
            end_wait: Duration::from_secs(600),
        }
    } else {
        Size {
            before: 8,
            after: 8,
            faults: 2,
            end_wait: Duration::from_secs(120),
        }
    }
}

struct Scenario {
    pair: Pair,
    runs: PathBuf,
    size: Size,
}

/// Three voters and agent `a1` running, the workflow deployed through the active controller.
async fn started() -> Result<Scenario> {
    started_with(|_| {}).await
}

/// [`started`], with every node's configuration changed by `edit` first.
async fn started_with(edit: impl Fn(&mut ControllerFile)) -> Result<Scenario> {
    let mut pair = Pair::new(&["a1"]).await?;
    for id in [NODE_A, NODE_B, WATCH] {
        pair.edit_config(id, &edit)?;
    }
    pair.start_agent("a1")?;
    pair.start_all().await?;
    let active = pair.active().await?;
    eprintln!("{} is active", pair.voter(active).name());
    let runs = pair.dir.path().join("runs.txt");
    pair.deploy(&[
        ("agent.yaml", pair.agent_yaml("a1")?),
        ("w.yaml", workflow_yaml(&runs)),
    ])
    .await?;
    Ok(Scenario {
        pair,
        runs,
        size: size(),
    })
}

/// The workflow every order runs, writing a line per run into `runs`.
fn workflow_yaml(runs: &std::path::Path) -> String {
    format!(
        r#"workflow: {WORKFLOW}
jobs:
  job:
    agent: a1
    parallelism: 16
    restartable: false
    script: |
      echo "$ORDO_ORDER_ID $ORDO_ATTEMPT" >> {}
steps:
  - run: job
"#,
        runs.display()
    )
}

impl Scenario {
    fn load(&self, prefix: &str) -> Load {
        Load::start(&self.pair.orderer, WORKFLOW, prefix, LOAD_ORDERS_MAX)
    }

    /// Stops the load, runs the checker and asserts its verdict.
    async fn finish(self, load: Load) -> Result<()> {
        self.finish_with_findings(load).await.map(|_| ())
    }

    /// [`Scenario::finish`], returning the checker's findings.
    async fn finish_with_findings(mut self, load: Load) -> Result<Finished> {
        let acknowledged = load.stop().await?;
        eprintln!("the load stopped after {acknowledged} acknowledged orders");
        let found = self
            .pair
            .finish(1, Some(&self.runs), self.size.end_wait)
            .await?;
        let verdict = &found.verdict;
        assert!(verdict.is_clean(), "{verdict}");
        assert!(verdict.lost.is_empty(), "{verdict}");
        assert_eq!(
            verdict.finished, verdict.ended,
            "every order that ended finished (no agent crashed): {verdict}"
        );
        assert!(
            verdict.acknowledged >= acknowledged,
            "the ledger has every order the load saw acknowledged: {verdict}"
        );
        Ok(found)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_kill_the_active_under_load() -> Result<()> {
    let mut s = started().await?;
    let mut load = s.load("k");
    load.wait_acknowledged(s.size.before).await?;
    for k in 0..s.size.faults {
        let old = s.pair.active().await?;
        eprintln!(
            "kill {}: kill -9 of the active {}",
            k + 1,
            s.pair.voter(old).name()
        );
        s.pair.kill9(old).await?;
        let new = s.pair.wait_active(|a| a != old).await?;
        assert_eq!(
            new,
            Pair::other_controller(old),
            "the other controller took over (the watch never stays active)"
        );
        load.wait_more(s.size.after).await?;
        s.pair.start_and_wait(old).await?;
        s.pair.wait_caught_up(old).await?;
    }
    s.finish(load).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_partitioned_active_stops_acting() -> Result<()> {
    let mut s = started().await?;
    let mut load = s.load("p");
    load.wait_acknowledged(s.size.before).await?;
    let mut refused = Vec::new();
    for k in 0..s.size.faults {
        let old = s.pair.active().await?;
        let health = s.pair.health(old).await?;
        let term = cluster_number(&health, "term").expect("a pair node's /health has its term");
        eprintln!(
            "partition {}: {} (term {term}) cut off from the others",
            k + 1,
            s.pair.voter(old).name()
        );
        s.pair.partition(old);
        let after = s.pair.wait_not_active(old).await?;
        eprintln!("the cut-off node says {}", role(&after));
        let new = s.pair.wait_active(|a| a != old).await?;
        let new_term = cluster_number(&s.pair.health(new).await?, "term").unwrap_or(0);
        assert!(
            new_term > term,
            "the new active is in a newer term ({new_term} > {term})"
        );
        // The agent, coupled by the new active, refuses the old term.
        wait_agents_coupled(&s.pair, new, |n| n >= 1).await?;
        let reason = s.pair.couple_refusal("a1", term).await?;
        assert!(
            reason.contains(&format!("term {term} is older than term")),
            "the agent refused the old term: {reason}"
        );
        // A command sent to the cut-off node is refused: it is not the active controller.
        let id = format!("cut-off-{k}");
        let url = s.pair.voter(old).api_url.clone();
        let status = s.pair.orderer.add_order_at(&url, &id, WORKFLOW).await;
        assert_eq!(
            status,
            Some(503),
            "the cut-off node refuses order {id} as not the active controller"
        );
        refused.push(id);
        load.wait_more(s.size.after).await?;
        s.pair.heal();
        s.pair.wait_caught_up(old).await?;
    }
    let history = s.finish_with_findings(load).await?.history;
    for id in &refused {
        assert!(
            !history.orders().contains(id),
            "order {id}, refused by the cut-off node, is in the history"
        );
    }
    Ok(())
}

/// Waits until node `id`'s `/health` says a number of coupled agents that `ok` accepts.
async fn wait_agents_coupled(pair: &Pair, id: u64, ok: impl Fn(u64) -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let health = pair.health(id).await?;
        let coupled = cluster_number(&health, "agentsCoupled");
        if coupled.is_some_and(&ok) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "{} has {coupled:?} agents coupled\n{}\n{}",
                pair.voter(id).name(),
                pair.describe().await,
                pair.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills node `victim` (a passive controller or the watch) under load, `faults` times, and
/// brings it back each time.
async fn kill_a_follower(mut s: Scenario, pick: impl Fn(u64) -> u64) -> Result<()> {
    let mut load = s.load("f");
    load.wait_acknowledged(s.size.before).await?;
    for k in 0..s.size.faults {
        let active = s.pair.active().await?;
        let victim = pick(active);
        eprintln!(
            "kill {}: kill -9 of {} while {} is active",
            k + 1,
            s.pair.voter(victim).name(),
            s.pair.voter(active).name()
        );
        s.pair.kill9(victim).await?;
        load.wait_more(s.size.after).await?;
        let now = s.pair.active().await?;
        if now != active {
            eprintln!("note: the active changed to {}", s.pair.voter(now).name());
        }
        s.pair.start_and_wait(victim).await?;
        s.pair.wait_caught_up(victim).await?;
    }
    s.finish(load).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_kill_the_passive_under_load() -> Result<()> {
    kill_a_follower(started().await?, Pair::other_controller).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_kill_the_watch_under_load() -> Result<()> {
    kill_a_follower(started().await?, |_| WATCH).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_restart_everything_at_once() -> Result<()> {
    let mut s = started().await?;
    let mut load = s.load("r");
    load.wait_acknowledged(s.size.before).await?;
    for k in 0..s.size.faults {
        eprintln!("restart {}: kill -9 of all three voters", k + 1);
        for id in [NODE_A, NODE_B, WATCH] {
            s.pair.kill9(id).await?;
        }
        s.pair.start_all().await?;
        let active = s.pair.active().await?;
        eprintln!("{} is active", s.pair.voter(active).name());
        load.wait_more(s.size.after).await?;
    }
    s.finish(load).await
}

/// How a node whose disk was lost comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rejoin {
    /// Started again with its configuration as it was: a new data directory founds the
    /// cluster's first state (the same on every node), and the leader, finding the node's
    /// log behind what it knew of it, sends what is missing, or its snapshot when its log no
    /// longer holds it.
    Restart,
    /// Taken out of the membership, started on an empty data directory told to join, added
    /// again: the leader brings it in with a snapshot (the founding one while its log is not
    /// compacted).
    Membership,
}

/// Raft entries a node's log keeps below its newest snapshot (the replica's
/// `compact_keep_entries`): a leader sends a snapshot to a node that needs an entry it
/// compacted, so only past this many entries.
const COMPACT_KEEP_ENTRIES: u64 = 1024;

/// Kills a node (the passive controller, then the watch, in turn) under load, removes its
/// data directory and brings it back as `how` says; with `compacted`, only once the leader's
/// log no longer holds the entries the node needs (it must take a snapshot).
async fn wipe_and_rejoin(mut s: Scenario, how: Rejoin, compacted: bool) -> Result<()> {
    let mut load = s.load("w");
    load.wait_acknowledged(s.size.before).await?;
    let mut victims = Vec::new();
    for k in 0..s.size.faults {
        let active = s.pair.active().await?;
        let victim = if k % 2 == 0 {
            Pair::other_controller(active)
        } else {
            WATCH
        };
        victims.push(victim);
        eprintln!(
            "wipe {}: {} killed, its data directory removed, back by {}",
            k + 1,
            s.pair.voter(victim).name(),
            match how {
                Rejoin::Restart => "a restart",
                Rejoin::Membership => "leaving the membership, joining and being added again",
            }
        );
        s.pair.kill9(victim).await?;
        if how == Rejoin::Membership {
            s.pair.remove_node(victim).await?;
            s.pair.wait_member(victim, false).await?;
        }
        s.pair.wipe(victim)?;
        if how == Rejoin::Membership {
            // A new data directory founds a cluster unless the node is told to join one.
            s.pair.edit_config(victim, |c| {
                if let Some(cluster) = c.cluster.as_mut() {
                    cluster.join = true;
                }
            })?;
        }
        load.wait_more(s.size.after).await?;
        if compacted {
            // The entries after the founding one must be gone from the leader's log: its
            // newest snapshot more than COMPACT_KEEP_ENTRIES entries in (snapshots are taken
            // every SNAPSHOT_EVENTS events, a few orders).
            let target = COMPACT_KEEP_ENTRIES + 2 + SNAPSHOT_EVENTS;
            while leader_commit(&mut s.pair).await? < target {
                load.wait_more(s.size.after).await?;
            }
        }
        s.pair.start_and_wait(victim).await?;
        if how == Rejoin::Membership {
            s.pair.add_node(victim).await?;
            s.pair.wait_member(victim, true).await?;
        }
        s.pair.wait_caught_up(victim).await?;
        load.wait_more(s.size.after).await?;
    }
    let found = s.finish_with_findings(load).await?;
    if compacted {
        for victim in victims {
            assert!(
                found.restored.get(&victim).is_some_and(|r| !r.is_empty()),
                "node {victim} took the leader's snapshot: {:?}",
                found.restored
            );
        }
    }
    Ok(())
}

/// The active controller's commit index.
async fn leader_commit(pair: &mut Pair) -> Result<u64> {
    let active = pair.active().await?;
    Ok(cluster_number(&pair.health(active).await?, "commit").unwrap_or(0))
}

/// Restarted as it was configured; the leader's log still holds every entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_wiped_node_rejoins() -> Result<()> {
    wipe_and_rejoin(started().await?, Rejoin::Restart, false).await
}

/// Restarted as it was configured, once the leader's log is compacted: the node takes a
/// snapshot of the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_wiped_node_rejoins_from_a_snapshot() -> Result<()> {
    let s = started_with(|c| c.limits.snapshot_events = SNAPSHOT_EVENTS).await?;
    wipe_and_rejoin(s, Rejoin::Restart, true).await
}

/// Taken out of the membership and added again; the leader's log still holds every entry, so
/// the joining node gets the founding snapshot (the initial state) and every entry after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_wiped_node_rejoins_through_the_membership() -> Result<()> {
    wipe_and_rejoin(started().await?, Rejoin::Membership, false).await
}

/// The harness's configurations: each node's is what the controller reads, they agree on
/// the cluster, and every node's raft address is the proxy in front of its listener.
#[tokio::test]
async fn pair_configurations_put_a_proxy_in_front_of_every_node() -> Result<()> {
    let p = Pair::new(&["a1"]).await?;
    let mut shared = Vec::new();
    for v in &p.voters {
        let config = ordo_controller::config::Config::load(&v.config)?;
        let cluster = config.cluster.expect("a pair node has a [cluster] section");
        assert_eq!(cluster.node_id, v.id);
        assert_eq!(cluster.raft_listen, v.raft_listen);
        assert_eq!(config.listen.ip().to_string(), format!("127.0.0.{}", v.id));
        assert_eq!(cluster.me().api_url, v.api_url);
        for node in &cluster.nodes {
            let proxy = &p.proxies[&node.id];
            assert_eq!(node.raft_address, proxy.addr().to_string());
            assert_eq!(proxy.target(), p.voter(node.id).raft_listen);
        }
        shared.push(cluster.shared_settings(&config.cluster_id));
    }
    assert!(shared.windows(2).all(|w| w[0] == w[1]), "{shared:?}");
    assert_eq!(Pair::other_controller(NODE_A), NODE_B);
    assert_eq!(Pair::other_controller(NODE_B), NODE_A);
    assert_eq!(p.voter(WATCH).kind, ordo_controller::config::Voter::Watch);
    Ok(())
}

/// Lines `<order id> <attempt>` of the runs file.
fn runs_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Waits until the runs file has at least `n` lines.
async fn wait_runs(n: usize, s: &Scenario) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while runs_of(&s.runs).len() < n {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("fewer than {n} planned runs:\n{}", s.pair.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A schedule fires every 2 seconds while the active controller is killed twice: every
/// instant from the first to the last one decided is ordered exactly once (none missed, none
/// planned or run twice), as the surviving controller's plan and the agent's runs say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pair_failover_neither_loses_nor_repeats_a_planned_run() -> Result<()> {
    let mut s = started_with(|f| {
        f.plan.attach_ahead_ms = 3000;
    })
    .await?;
    let schedule = format!("schedule: p\nworkflow: {WORKFLOW}\ncron: \"*/2 * * * * *\"\n");
    s.pair
        .deploy(&[
            ("agent.yaml", s.pair.agent_yaml("a1")?),
            ("w.yaml", workflow_yaml(&s.runs)),
            ("p.yaml", schedule),
        ])
        .await?;
    wait_runs(2, &s).await?;
    for k in 0..s.size.faults {
        let old = s.pair.active().await?;
        eprintln!("kill {}: the active {}", k + 1, s.pair.voter(old).name());
        s.pair.kill9(old).await?;
        let new = s.pair.wait_active(|a| a != old).await?;
        let before = runs_of(&s.runs).len();
        wait_runs(before + 3, &s).await?;
        s.pair.start_and_wait(old).await?;
        s.pair.wait_caught_up(old).await?;
        eprintln!("{} is active", s.pair.voter(new).name());
    }
    s.pair
        .orderer
        .command(
            axum::http::Method::POST,
            "/plan/schedules/p/pause",
            &serde_json::json!({}),
            || {},
        )
        .await?;
    let active = s.pair.active().await?;
    let url = format!("{}/api/v1/plan?schedule=p", s.pair.voter(active).api_url);
    // Every ordered instant's order ends (the pause cancels those not started).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let plan = loop {
        let plan: serde_json::Value = s.pair.clients.viewer.get_json(&url).await?;
        let entries = plan["entries"].as_array().cloned().unwrap_or_default();
        let open = entries.iter().any(|e| {
            e["status"] == "ordered"
                && !["finished", "cancelled", "failed"]
                    .contains(&e["orderState"].as_str().unwrap_or("finished"))
        });
        if !open {
            break entries;
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("planned orders did not end: {plan}\n{}", s.pair.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let decided: Vec<&serde_json::Value> =
        plan.iter().filter(|e| e["status"] != "planned").collect();
    let ats: Vec<i64> = decided.iter().filter_map(|e| e["at"].as_i64()).collect();
    assert!(ats.len() >= 6, "{decided:?}");
    for w in ats.windows(2) {
        assert_eq!(
            w[1] - w[0],
            2000,
            "every instant once, none lost: {decided:?}"
        );
    }
    let ran = runs_of(&s.runs);
    let mut seen = std::collections::BTreeSet::new();
    for id in &ran {
        assert!(seen.insert(id.clone()), "{id} ran twice: {ran:?}");
    }
    for e in &decided {
        let id = e["orderId"].as_str().unwrap_or_default();
        match e["orderState"].as_str() {
            Some("finished") => assert!(seen.contains(id), "{id} finished without a run"),
            _ => assert!(
                e["status"] == "skipped" || e["orderState"] == "cancelled",
                "only the pause cancels or skips: {e}"
            ),
        }
    }
    Ok(())
}
