//! Failover benchmark of the controller pair: the e2e workload through one controller and
//! through a pair, then kill -9 of the active controller under a steady load of orders.
//!
//! `cargo run --release -p ordo-bench --bin failover`; JSON lines on stdout (progress on
//! stderr). Every server is its own process of this build (`target/release/ordo-controller`,
//! `ordo-agent`, rebuilt first unless `BUILD=0`), fsync on, under `BENCH_DIR`. The workload
//! is `ordo_bench::workload`'s: one-job orders running `true` on the agent `bench`.
//!
//! - `single_latency`, `single_throughput`: one controller and `AGENTS` agents (a fresh
//!   installation, as `e2e` runs it): 50 warm-up orders, `LATENCY_N` orders one at a time
//!   (`client_p50_ms`: add sent → `ProcessingStarted` received on the event stream), then `N`
//!   orders in bulk (`orders_per_s`: first `Added` → last `Finished`, event `ts`; CPU of the
//!   servers over the phase).
//! - `pair_latency`, `pair_throughput`: the same through a pair (`ordo_bench::local_pair`:
//!   controller A, controller B and the watch on 127.0.0.1, distinct ports, `[cluster]` at
//!   the controller's defaults unless `TICK_MS` / `ELECTION_TICKS` are set), added to and
//!   followed on the active controller; `controller_cpu_ms` is the three nodes' together.
//! - `failover_kill`, one per kill: on the same pair, orders of the workflow `failover` are
//!   made at `RATE` a second and added by 2 concurrent clients to whichever controller is
//!   active (`ordo_bench::pair_load`: they follow the 503 answers' `active`, retry connection
//!   errors and 503 with the same order id every 10 ms). With the other controller passive
//!   and caught up, the active one's agents coupled and an order acknowledged since, the
//!   active controller gets SIGKILL. Times from the kill (this program's clock):
//!   `elected_ms` until the other controller's `/health` says `active`; `failover_ms` until
//!   the first order acknowledged by it (the answer of a successful add received: the order
//!   is committed; this is the measure of "accepts commands again", not `/health`);
//!   `recoupled_ms` until its `/health` says `active` with `cluster.agentsCoupled` = the
//!   number of agents. `/health` is polled every 5 ms. Then the killed node is started again
//!   and `rejoin_ms` runs until it says `passive` with `applied` ≥ the active's `commit`.
//! - `failover_orders`: after the last kill the load stops; every acknowledged order must
//!   finish (`GET /orders?workflow=failover` on the active controller, polled for up to
//!   `LOST_WAIT_MS`). `lost`: acknowledged but not finished (with their states,
//!   `missing` when the controller does not know the order); `duplicates`: acknowledgements
//!   of orders an earlier attempt had added; `ack_p50_ms`/`ack_p99_ms`: made → acknowledged.
//! - `failover`: the summary, `{"name":"failover","kills","failover_p50_ms",
//!   "failover_p99_ms","failover_max_ms","recoupled_p50_ms","recoupled_p99_ms",
//!   "pair_orders_per_s","single_orders_per_s","ratio_single","pair_add_start_p50_ms",
//!   "single_add_start_p50_ms","lost",…}`; `ratio_single` is pair / single orders/s;
//!   percentiles by nearest rank over the kills.
//!
//! A pair that does not fail over within `FAILOVER_WAIT_MS` ends the program with the
//! nodes' logs; the installation directories are kept (and printed) then, when orders were
//! lost, and with `KEEP=1`.
//!
//! Env: `KILLS` (20), `N` (2000), `RATE` (50 orders/s during the kills), `LATENCY_N` (200),
//! `LATENCY_GAP_MS` (20), `PARALLELISM` (4), `ADD_BATCH` (1000), `AGENTS` (1: the agent
//! `bench`; more are idle agents `bench-2`, … that must re-couple too), `TICK_MS`,
//! `ELECTION_TICKS` (the `[cluster]` keys; unset: the controller's defaults), `BENCH_DIR`
//! (/var/tmp: on disk), `BUILD` (1; 0 uses the server binaries as they are), `ORDO_LOG` (the
//! servers' `RUST_LOG`, "warn"), `KEEP` (0; 1 keeps the installation directories).

use anyhow::{Context, anyhow, bail};
use ordo_bench::controller_client::ControllerClient;
use ordo_bench::local_ordo::{
    self, Binaries, CLUSTER_ID, LocalOrdo, Process, StartOptions, keep_dir,
};
use ordo_bench::local_pair::{LocalPair, PairOptions};
use ordo_bench::pair_load::{RoutedAdder, SteadyLoad};
use ordo_bench::proc_cpu::{self, CpuTimes};
use ordo_bench::program::{env_flag, env_number, env_text, print_line};
use ordo_bench::stats::{json_line, quantile, round};
use ordo_bench::workload::{self, ADD_BATCH_MAX, AGENT, Latency};
use ordo_net::client::HttpsClientOptions;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The workflow of the throughput rounds.
const WORKFLOW: &str = "e2e";
/// The workflow of the orders added during the kills.
const FAILOVER_WORKFLOW: &str = "failover";
/// Concurrent clients adding the steady load.
const SENDERS: usize = 2;
/// Pause between attempts of an order no controller acknowledged.
const RETRY_PAUSE_MS: u64 = 10;
/// Longest time one order may stay unacknowledged before the run fails.
const GIVE_UP_MS: u64 = 60_000;
/// One add request of the steady load, at most.
const ADD_TIMEOUT_MS: u64 = 5000;
/// How often `/health` is polled after a kill.
const POLL_MS: u64 = 5;
/// Longest wait for the other controller to take over after a kill.
const FAILOVER_WAIT_MS: u64 = 30_000;
/// Longest wait for a restarted node to be passive and caught up, or for agents to couple.
const REJOIN_WAIT_MS: u64 = 60_000;
/// Longest wait for every acknowledged order to finish after the load stopped.
const LOST_WAIT_MS: u64 = 120_000;
/// Most orders one order list answers.
const ORDER_LIST_MAX: usize = 10_000;
/// Lost order ids printed, at most.
const LOST_IDS_SHOWN: usize = 20;

struct Settings {
    kills: usize,
    n: usize,
    rate: f64,
    latency_n: usize,
    latency_gap_ms: u64,
    parallelism: u32,
    add_batch: usize,
    agents: usize,
    cluster_settings: Vec<String>,
    bench_dir: PathBuf,
    build: bool,
    keep: bool,
    log_filter: String,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let mut cluster_settings = Vec::new();
        for key in ["TICK_MS", "ELECTION_TICKS"] {
            if std::env::var(key).is_ok() {
                let value: u64 = env_number(key, 0)?;
                cluster_settings.push(format!("{} = {value}", key.to_lowercase()));
            }
        }
        let rate: u32 = env_number("RATE", 50u32)?;
        Ok(Settings {
            kills: env_number("KILLS", 20usize)?,
            n: env_number("N", 2000usize)?.max(1),
            rate: f64::from(rate.max(1)),
            latency_n: env_number("LATENCY_N", 200usize)?,
            latency_gap_ms: env_number("LATENCY_GAP_MS", 20u64)?,
            parallelism: env_number("PARALLELISM", 4u32)?.max(1),
            add_batch: env_number("ADD_BATCH", 1000usize)?.clamp(1, ADD_BATCH_MAX),
            agents: env_number("AGENTS", 1usize)?.max(1),
            cluster_settings,
            bench_dir: PathBuf::from(env_text("BENCH_DIR", "/var/tmp")),
            build: env_flag("BUILD", true)?,
            keep: env_flag("KEEP", false)?,
            log_filter: env_text("ORDO_LOG", "warn"),
        })
    }

    fn agent_ids(&self) -> Vec<String> {
        (0..self.agents)
            .map(|i| match i {
                0 => AGENT.to_owned(),
                i => format!("{AGENT}-{}", i + 1),
            })
            .collect()
    }

    fn start_options(&self, binaries: &Binaries) -> StartOptions {
        StartOptions {
            parent_dir: self.bench_dir.clone(),
            agents: self.agent_ids(),
            journal_fsync: true,
            log_filter: self.log_filter.clone(),
            agent_limits: vec![],
            binaries: binaries.clone(),
        }
    }
}

fn say(text: impl std::fmt::Display) {
    eprintln!("[failover] {text}");
}

/// The inventory: every agent, the throughput workflow and the failover workflow.
fn inventory(
    s: &Settings,
    agent_yaml: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for id in s.agent_ids() {
        files.push((format!("agent-{id}.yaml"), agent_yaml(&id)?));
    }
    files.push((
        "e2e.yaml".into(),
        workload::workflow_yaml(WORKFLOW, s.parallelism),
    ));
    files.push((
        "failover.yaml".into(),
        workload::workflow_yaml(FAILOVER_WORKFLOW, s.parallelism),
    ));
    Ok(files)
}

/// What a throughput round measured.
struct Round {
    latency: Latency,
    orders_per_s: f64,
}

/// The sum of the CPU times of `processes`.
fn cpu_sum<'a>(
    processes: impl Iterator<Item = &'a Process>,
    ticks: f64,
) -> anyhow::Result<CpuTimes> {
    let mut sum = CpuTimes::default();
    for p in processes {
        let t = local_ordo::cpu_of(p, ticks)?;
        sum.user_ms += t.user_ms;
        sum.system_ms += t.system_ms;
        sum.children_ms += t.children_ms;
    }
    Ok(sum)
}

/// Warm-up, latency and throughput phases on `client`'s controller, printed as
/// `<kind>_latency` and `<kind>_throughput`; CPU of `controllers` and `agents` over the
/// throughput phase.
async fn throughput_round(
    s: &Settings,
    kind: &str,
    client: &ControllerClient,
    controllers: &[&Process],
    agents: &[&Process],
    ticks: f64,
) -> anyhow::Result<Round> {
    let mut follower = client.follow(client.last_event_id().await?).await?;
    say(format!(
        "{kind}: warm-up, {} orders",
        workload::WARM_UP_ORDERS
    ));
    workload::warm_up(client, &mut follower, WORKFLOW, &format!("{kind}-w")).await?;
    say(format!(
        "{kind}: latency, {} orders one at a time, {} ms apart",
        s.latency_n, s.latency_gap_ms
    ));
    let latency = workload::latency_phase(
        client,
        &mut follower,
        WORKFLOW,
        &format!("{kind}-l"),
        s.latency_n,
        s.latency_gap_ms,
    )
    .await?;
    let mut fields = vec![("name".to_owned(), json!(format!("{kind}_latency")))];
    fields.extend(latency.fields.iter().cloned());
    print_line(&json_line(&fields))?;
    say(format!(
        "{kind}: throughput, {} orders, {} per request",
        s.n, s.add_batch
    ));
    let ids: Vec<String> = (0..s.n).map(|i| format!("{kind}-t-{i}")).collect();
    let controllers_before = cpu_sum(controllers.iter().copied(), ticks)?;
    let agents_before = cpu_sum(agents.iter().copied(), ticks)?;
    let bulk = workload::bulk_phase(client, &mut follower, WORKFLOW, &ids, s.add_batch).await?;
    let controller = cpu_sum(controllers.iter().copied(), ticks)?.since(&controllers_before);
    let agent = cpu_sum(agents.iter().copied(), ticks)?.since(&agents_before);
    let mut fields: Vec<(String, Json)> = vec![
        ("name".into(), json!(format!("{kind}_throughput"))),
        ("n".into(), json!(s.n)),
        ("parallelism".into(), json!(s.parallelism)),
        ("add_batch".into(), json!(s.add_batch)),
        ("controllers".into(), json!(controllers.len())),
    ];
    fields.extend(bulk.fields());
    fields.extend([
        (
            "controller_cpu_ms".into(),
            json!(round(controller.own_ms(), 0)),
        ),
        ("agent_cpu_ms".into(), json!(round(agent.own_ms(), 0))),
        ("jobs_cpu_ms".into(), json!(round(agent.children_ms, 0))),
        (
            "cpu_ms_per_order".into(),
            json!(round(
                (controller.own_ms() + agent.own_ms()) / s.n as f64,
                3
            )),
        ),
    ]);
    fields.extend(workload::stage_quantiles(bulk.timelines.values()));
    print_line(&json_line(&fields))?;
    Ok(Round {
        latency,
        orders_per_s: bulk.orders_per_s,
    })
}

/// One controller and its agents.
async fn single(s: &Settings, binaries: &Binaries, ticks: f64) -> anyhow::Result<Round> {
    let mut ordo = LocalOrdo::start(&s.start_options(binaries)).await?;
    say(format!(
        "single: controller pid {}, in {}",
        ordo.controller.pid(),
        ordo.dir.path().display()
    ));
    let result = async {
        let files = inventory(s, |id| ordo.agent_yaml(id))?;
        let files: Vec<(&str, String)> =
            files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        ordo.client.deploy(&files).await?;
        for id in s.agent_ids() {
            ordo.client
                .wait_connected(&id, Duration::from_millis(REJOIN_WAIT_MS))
                .await?;
        }
        let agents: Vec<&Process> = ordo.agents.iter().map(|(_, p)| p).collect();
        throughput_round(
            s,
            "single",
            &ordo.client,
            &[&ordo.controller],
            &agents,
            ticks,
        )
        .await
    }
    .await;
    if let Err(e) = &result {
        say(format!("single failed: {e:#}\n{}", ordo.logs()));
    }
    if !ordo.stop() {
        say("a server did not stop on SIGTERM within 10 s and was killed");
    }
    if s.keep || result.is_err() {
        say(format!("kept {}", keep_dir(&mut ordo.dir)?.display()));
    }
    result
}

/// What one kill measured (ms from the kill).
struct Kill {
    failover_ms: f64,
    recoupled_ms: f64,
}

fn ms_since(from: Instant, to: Instant) -> f64 {
    round(to.duration_since(from).as_secs_f64() * 1000.0, 1)
}

/// Waits until controller `node` has acknowledged an order after `after`.
async fn wait_ack(
    load: &mut SteadyLoad,
    from: usize,
    after: Instant,
    node: usize,
    within: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(at) = load.first_ack_after(from, after, node) {
            return Ok(at);
        }
        if let Some(e) = load.failure().await {
            return Err(e.context("the steady load stopped"));
        }
        if Instant::now() > deadline {
            bail!("no order acknowledged by node index {node} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Kill number `k`: SIGKILL of the active controller, the other's takeover, the restart.
async fn kill_once(
    s: &Settings,
    pair: &mut LocalPair,
    load: &mut SteadyLoad,
    k: usize,
) -> anyhow::Result<Kill> {
    let rejoin_wait = Duration::from_millis(REJOIN_WAIT_MS);
    let active = pair.active(rejoin_wait).await?;
    let other = match active {
        0 => 1,
        1 => 0,
        _ => bail!("the watch is active: {}", pair.logs()),
    };
    pair.wait_caught_up(other, rejoin_wait).await?;
    pair.wait_coupled(active, s.agents, rejoin_wait).await?;
    let from = load.acked_count();
    wait_ack(load, from, Instant::now(), active, rejoin_wait)
        .await
        .with_context(|| format!("before kill {k}\n{}", pair.logs()))?;
    let term_before = pair
        .health(active)
        .await?
        .cluster
        .map(|c| c.term)
        .ok_or_else(|| anyhow!("the active node's /health has no cluster"))?;
    let from = load.acked_count();
    let killed_at = Instant::now();
    pair.kill9(active);
    let mut elected = None;
    let mut recoupled = None;
    let mut failover = None;
    let mut term = None;
    let deadline = killed_at + Duration::from_millis(FAILOVER_WAIT_MS);
    while recoupled.is_none() || failover.is_none() {
        if let Ok(h) = pair.health(other).await {
            let now = Instant::now();
            if h.role == "active" {
                elected.get_or_insert(now);
                term = h.cluster.as_ref().map(|c| c.term);
                if h.cluster
                    .as_ref()
                    .is_some_and(|c| c.agents_coupled >= s.agents)
                {
                    recoupled.get_or_insert(now);
                }
            }
        }
        if failover.is_none() {
            failover = load.first_ack_after(from, killed_at, other);
        }
        if let Some(e) = load.failure().await {
            return Err(e.context(format!("the steady load stopped after kill {k}")));
        }
        if Instant::now() > deadline {
            let healths = pair.healths().await;
            let roles: Vec<String> = healths
                .iter()
                .zip(&pair.nodes)
                .map(|(h, n)| match h {
                    Ok(h) => format!("{}: {} {:?}", n.name, h.role, h.cluster),
                    Err(e) => format!("{}: {e:#}", n.name),
                })
                .collect();
            bail!(
                "no failover within {FAILOVER_WAIT_MS} ms of kill {k} of {} (elected after {:?} ms, first order acknowledged after {:?} ms, agents coupled after {:?} ms): {}\n{}",
                pair.nodes[active].name,
                elected.map(|t| ms_since(killed_at, t)),
                failover.map(|t| ms_since(killed_at, t)),
                recoupled.map(|t| ms_since(killed_at, t)),
                roles.join("; "),
                pair.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    let (Some(failover), Some(recoupled)) = (failover, recoupled) else {
        unreachable!("the loop ends when both are known");
    };
    let restarted = Instant::now();
    pair.start_node(active)?;
    pair.wait_answering(active).await?;
    pair.wait_caught_up(active, rejoin_wait).await?;
    let kill = Kill {
        failover_ms: ms_since(killed_at, failover),
        recoupled_ms: ms_since(killed_at, recoupled),
    };
    let elected_ms = elected.map(|t| ms_since(killed_at, t));
    print_line(&json_line(&[
        ("name", json!("failover_kill")),
        ("kill", json!(k)),
        ("killed", json!(pair.nodes[active].name)),
        ("new_active", json!(pair.nodes[other].name)),
        ("term_before", json!(term_before)),
        ("term", json!(term)),
        ("elected_ms", json!(elected_ms)),
        ("failover_ms", json!(kill.failover_ms)),
        ("recoupled_ms", json!(kill.recoupled_ms)),
        ("rejoin_ms", json!(ms_since(restarted, Instant::now()))),
    ]))?;
    say(format!(
        "kill {k} of {}: {} active after {elected_ms:?} ms, first order after {} ms, agents after {} ms",
        pair.nodes[active].name, pair.nodes[other].name, kill.failover_ms, kill.recoupled_ms
    ));
    Ok(kill)
}

/// The state of each order of the failover workflow (`missing` for one the controller does
/// not know) among `ids`.
async fn order_states(
    client: &ControllerClient,
    ids: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    let url = client.url(&format!(
        "/orders?workflow={FAILOVER_WORKFLOW}&limit={ORDER_LIST_MAX}"
    ));
    let mut listed = None;
    for _ in 0..100 {
        let answer = client
            .http
            .request(axum::http::Method::GET, &url, None)
            .await
            .map_err(|e| anyhow!("listing orders: {e}"))?;
        if answer.status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if !answer.status.is_success() {
            bail!(
                "GET {url} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        listed = Some(serde_json::from_slice::<Json>(&answer.body)?);
        break;
    }
    let listed = listed.ok_or_else(|| anyhow!("GET {url} stayed busy (503)"))?;
    let orders = listed["orders"].as_array().cloned().unwrap_or_default();
    let complete = orders.len() < ORDER_LIST_MAX;
    let mut states: HashMap<String, String> = orders
        .iter()
        .filter_map(|o| {
            Some((
                o["id"].as_str()?.to_owned(),
                o["state"].as_str()?.to_owned(),
            ))
        })
        .collect();
    for id in ids {
        if states.contains_key(id) {
            continue;
        }
        let state = if complete {
            "missing".to_owned()
        } else {
            let answer = client
                .http
                .request(
                    axum::http::Method::GET,
                    &client.url(&format!("/orders/{id}")),
                    None,
                )
                .await
                .map_err(|e| anyhow!("order {id}: {e}"))?;
            match answer.status {
                axum::http::StatusCode::NOT_FOUND => "missing".to_owned(),
                status if status.is_success() => {
                    serde_json::from_slice::<Json>(&answer.body)?["state"]
                        .as_str()
                        .unwrap_or("unknown")
                        .to_owned()
                }
                status => bail!("GET /orders/{id} answered {status}"),
            }
        };
        states.insert(id.clone(), state);
    }
    Ok(states)
}

/// The kills under a steady load, and the acknowledged orders checked at the end.
struct Failover {
    kills: Vec<Kill>,
    lost: usize,
}

async fn failover(s: &Settings, pair: &mut LocalPair) -> anyhow::Result<Failover> {
    let http = ControllerClient::new(
        &pair.local.ca,
        &pair.nodes[0].client.base_url,
        &pair.local.admin_token,
        HttpsClientOptions {
            connect_timeout_ms: 1000,
            request_timeout_ms: ADD_TIMEOUT_MS,
            body_bytes_max: 1 << 20,
            allow_plain_http: false,
        },
    )?
    .http;
    // The two controllers: their indices in the adder are their indices among the nodes.
    let urls = vec![
        pair.nodes[0].client.base_url.clone(),
        pair.nodes[1].client.base_url.clone(),
    ];
    let adder = RoutedAdder::new(
        http,
        urls,
        Duration::from_millis(RETRY_PAUSE_MS),
        Duration::from_millis(GIVE_UP_MS),
    );
    say(format!(
        "failover: {} orders/s to whichever controller is active, {} kills",
        s.rate, s.kills
    ));
    let mut load = SteadyLoad::start(adder, FAILOVER_WORKFLOW, "f", s.rate, SENDERS);
    let mut kills = Vec::with_capacity(s.kills);
    for k in 0..s.kills {
        kills.push(kill_once(s, pair, &mut load, k).await?);
    }
    say("stopping the load");
    let end = load
        .stop(Duration::from_millis(GIVE_UP_MS))
        .await
        .with_context(|| pair.logs())?;
    let ids: Vec<String> = end.acked.iter().map(|a| a.id.clone()).collect();
    let active = pair.active(Duration::from_millis(REJOIN_WAIT_MS)).await?;
    let client = pair.nodes[active].client.clone();
    say(format!(
        "waiting until the {} acknowledged orders finished",
        ids.len()
    ));
    let deadline = Instant::now() + Duration::from_millis(LOST_WAIT_MS);
    let states = loop {
        let states = order_states(&client, &ids).await?;
        let all_finished = ids
            .iter()
            .all(|id| states.get(id).is_some_and(|s| s == "finished"));
        if all_finished || Instant::now() > deadline {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| states.get(*id).is_none_or(|s| s != "finished"))
        .collect();
    let mut lost_states = BTreeMap::<&str, usize>::new();
    for id in &lost {
        *lost_states
            .entry(states.get(*id).map_or("missing", String::as_str))
            .or_default() += 1;
    }
    let ack_ms: Vec<f64> = end
        .acked
        .iter()
        .map(|a| a.at.duration_since(a.made).as_secs_f64() * 1000.0)
        .collect();
    let attempts: u64 = end.acked.iter().map(|a| u64::from(a.attempts)).sum();
    let q = |p| quantile(&ack_ms, p).map(|x| round(x, 2));
    print_line(&json_line(&[
        ("name", json!("failover_orders")),
        ("rate_per_s", json!(s.rate)),
        ("made", json!(end.made)),
        ("acknowledged", json!(end.acked.len())),
        (
            "duplicates",
            json!(end.acked.iter().filter(|a| a.duplicate).count()),
        ),
        (
            "retried",
            json!(end.acked.iter().filter(|a| a.attempts > 1).count()),
        ),
        ("attempts", json!(attempts)),
        ("ack_p50_ms", json!(q(0.5))),
        ("ack_p99_ms", json!(q(0.99))),
        ("ack_max_ms", json!(q(1.0))),
        ("finished", json!(ids.len() - lost.len())),
        ("lost", json!(lost.len())),
        ("lost_states", json!(lost_states)),
        (
            "lost_ids",
            json!(lost.iter().take(LOST_IDS_SHOWN).collect::<Vec<_>>()),
        ),
    ]))?;
    if !lost.is_empty() {
        say(format!(
            "{} acknowledged orders did not finish: {lost_states:?}\n{}",
            lost.len(),
            pair.logs()
        ));
    }
    Ok(Failover {
        kills,
        lost: lost.len(),
    })
}

/// The pair: its throughput round, then the kills.
async fn pair(s: &Settings, binaries: &Binaries, ticks: f64) -> anyhow::Result<(Round, Failover)> {
    let mut pair = LocalPair::start(&PairOptions {
        start: s.start_options(binaries),
        cluster_settings: s.cluster_settings.clone(),
    })
    .await?;
    say(format!(
        "pair: {} in {}",
        pair.nodes
            .iter()
            .map(|n| format!(
                "{} pid {}",
                n.name,
                n.process.as_ref().map_or(0, Process::pid)
            ))
            .collect::<Vec<_>>()
            .join(", "),
        pair.dir.path().display()
    ));
    let result = async {
        let active = pair.active(Duration::from_millis(REJOIN_WAIT_MS)).await?;
        let client = pair.nodes[active].client.clone();
        let files = inventory(s, |id| pair.agent_yaml(id))?;
        let files: Vec<(&str, String)> =
            files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        client.deploy(&files).await?;
        pair.wait_coupled(active, s.agents, Duration::from_millis(REJOIN_WAIT_MS))
            .await?;
        let controllers: Vec<&Process> = pair
            .nodes
            .iter()
            .filter_map(|n| n.process.as_ref())
            .collect();
        let agents: Vec<&Process> = pair.agents.iter().map(|(_, p)| p).collect();
        let round = throughput_round(s, "pair", &client, &controllers, &agents, ticks).await?;
        let failover = failover(s, &mut pair).await?;
        anyhow::Ok((round, failover))
    }
    .await;
    if let Err(e) = &result {
        say(format!("pair failed: {e:#}\n{}", pair.logs()));
    }
    if !pair.stop() {
        say("a server did not stop on SIGTERM within 10 s and was killed");
    }
    let lost = result.as_ref().is_ok_and(|(_, f)| f.lost > 0);
    if s.keep || result.is_err() || lost {
        say(format!(
            "kept {} (node logs: node-<id>.log)",
            keep_dir(&mut pair.dir)?.display()
        ));
    }
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = Settings::from_env()?;
    let binaries = Binaries::of_this_build(s.build)?;
    let ticks = proc_cpu::ticks_per_s();
    say(format!(
        "cluster {CLUSTER_ID}: {} kills, N = {}, {} orders/s, {} agents, [cluster] {:?}",
        s.kills, s.n, s.rate, s.agents, s.cluster_settings
    ));
    let single = single(&s, &binaries, ticks).await?;
    let (pair_round, failover) = pair(&s, &binaries, ticks).await?;
    let failover_ms: Vec<f64> = failover.kills.iter().map(|k| k.failover_ms).collect();
    let recoupled_ms: Vec<f64> = failover.kills.iter().map(|k| k.recoupled_ms).collect();
    print_line(&json_line(&[
        ("name", json!("failover")),
        ("kills", json!(failover.kills.len())),
        ("failover_p50_ms", json!(quantile(&failover_ms, 0.5))),
        ("failover_p99_ms", json!(quantile(&failover_ms, 0.99))),
        ("failover_max_ms", json!(quantile(&failover_ms, 1.0))),
        ("recoupled_p50_ms", json!(quantile(&recoupled_ms, 0.5))),
        ("recoupled_p99_ms", json!(quantile(&recoupled_ms, 0.99))),
        (
            "pair_orders_per_s",
            json!(round(pair_round.orders_per_s, 1)),
        ),
        ("single_orders_per_s", json!(round(single.orders_per_s, 1))),
        (
            "ratio_single",
            json!(round(
                pair_round.orders_per_s / single.orders_per_s.max(f64::MIN_POSITIVE),
                3
            )),
        ),
        (
            "pair_add_start_p50_ms",
            json!(pair_round.latency.client_p50_ms),
        ),
        (
            "single_add_start_p50_ms",
            json!(single.latency.client_p50_ms),
        ),
        ("lost", json!(failover.lost)),
        ("recoupled_max_ms", json!(quantile(&recoupled_ms, 1.0))),
        (
            "pair_add_start_p99_ms",
            json!(pair_round.latency.client_p99_ms),
        ),
        (
            "single_add_start_p99_ms",
            json!(single.latency.client_p99_ms),
        ),
        ("n", json!(s.n)),
        ("rate_per_s", json!(s.rate)),
        ("agents", json!(s.agents)),
        ("failover_measure", json!("first_add_acknowledged")),
    ]))?;
    Ok(())
}
