//! The production drivers against the model: random workflows and random inputs carried out
//! by a real controller and two real agents (`a1`, `a2`) running in this process
//! ([`ordo_tests::inproc`]: their library entry points, fresh journals per case, fsync off,
//! 127.0.0.1 only), compared with what the pure model's simulation
//! ([`ordo_model::testkit::sim`]) reaches for the same inputs.
//!
//! Each case ([`ordo_model::testkit::driven`]): the workflow `main` is written as YAML and
//! deployed with `POST /deploy`, orders are added with `POST /orders`, prompts are answered,
//! orders cancelled, suspended, resumed and notices posted through the API, agents and the
//! controller are stopped and started again. Jobs are real processes of one shell script; what
//! a run does (return code, the value it returns) is a function of the order and the run's
//! number that the simulation decided and wrote into a table the script reads; `b1`, `b2`
//! and `t1` block on a FIFO until the test releases them (or they are killed, or `t1` times
//! out). After each input the test waits, following the event stream (bounded), until the
//! controller's orders (state, position, outcomes, variables, holder, mark, attempt; not
//! instants or process groups), locks and notices equal the simulation's at the same quiet
//! point, and every job the simulation ran has run, once.
//!
//! Checked on the way:
//! - the controller answers each command as the model does (done, duplicate, refused);
//! - every event the controller journals applies (`State::apply` skips none), ids increase;
//! - no agent runs more processes of a job than its parallelism, after every event;
//! - every journaled job start ran exactly once, and the runs are exactly the simulation's
//!   (so no job ran twice at the same attempt: attempts only grow after a restart);
//! - at the end the controller's `/state` equals the fold of its event stream (replay = live),
//!   and each agent's journal, reopened after it stopped, holds exactly the orders the
//!   controller says it holds, each equal to the controller's copy.
//!
//! Restriction: only constructs whose state at a quiet point does not depend on the timing
//! between orders (no contended locks, no `consume`, no periodic cycles, blocking jobs never
//! short of a parallelism slot, millisecond durations; no link cuts): the module doc of
//! [`ordo_model::testkit::driven`] says why for each.
//!
//! A handful of cases by default; `ORDO_LONG=1` runs many more and longer ones. A failing case
//! is shrunk and its seed kept in `drivers.proptest-regressions`, run first next time.

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::http::Method;
use ordo_api::frame::{StateSnapshot, StreamMessage, parse_message};
use ordo_api::record::{Body, Stored};
use ordo_api::state::State;
use ordo_model::ids::{AgentId, OrderId};
use ordo_model::inventory::{Agent, Selection};
use ordo_model::order::{Holder, KeyedEvent, Kill, OrderEvent, World};
use ordo_model::testkit::driven::{self, Case, Expected, Point, Reply, Run, Step};
use ordo_model::testkit::render::inventory_yaml;
use ordo_model::wire::AgentEventBody;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use ordo_tests::inproc::InProcess;
use proptest::test_runner::{
    Config as ProptestConfig, FileFailurePersistence, TestCaseError, TestRunner,
};
use serde_json::{Value as Json, json};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Cases and most inputs per case, by default and with `ORDO_LONG=1`.
const SHORT: (u32, usize) = (12, 16);
const LONG: (u32, usize) = (150, 30);

/// How long the real system may take to reach one quiet point (it takes well under a
/// second when nothing is wrong).
const QUIET_WAIT_MS: u64 = 10_000;
/// How long a failing case may be shrunk.
const SHRINK_TIME_MS: u32 = 180_000;
/// One long poll of the event stream.
const POLL_MS: u64 = 100;
/// The last look for events after the last quiet point.
const SETTLE_POLL_MS: u64 = 300;
/// How long a blocked job may take to open its FIFO once released.
const RELEASE_WAIT_MS: u64 = 10_000;
/// Tries to catch the fold up with a `/state` answer.
const STATE_TRIES_MAX: usize = 20;

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_test_writer()
        .try_init();
}

#[test]
fn process_real_controller_and_agents_reach_the_models_state() {
    init_logs();
    let long = std::env::var("ORDO_LONG").is_ok_and(|v| v == "1");
    let (cases, inputs_max) = if long { LONG } else { SHORT };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let base = tempfile::Builder::new()
        .prefix("ordo-drivers-")
        .tempdir()
        .expect("a temporary directory");
    let sys = RefCell::new(
        InProcess::new(&base.path().join("install"), &["a1", "a2"]).expect("an installation"),
    );
    let counter = Cell::new(0usize);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        max_shrink_iters: 64,
        max_shrink_time: SHRINK_TIME_MS,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..ProptestConfig::default()
    });
    let result = runner.run(&driven::case(inputs_max), |case| {
        let k = counter.get();
        counter.set(k + 1);
        let mut sys = sys.borrow_mut();
        let started = Instant::now();
        let result = runtime.block_on(run_case(&mut sys, base.path(), k, &case));
        eprintln!(
            "case {k}: {} in {} ms",
            match &result {
                Ok(summary) => summary.as_str(),
                Err(_) => "failed",
            },
            started.elapsed().as_millis(),
        );
        result
            .map(|_| ())
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))
    });
    if let Err(e) = runtime.block_on(sys.borrow_mut().stop()) {
        eprintln!("stopping: {e:#}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// One case: the simulation first, then the real system on fresh journals. Says what was
/// compared.
async fn run_case(sys: &mut InProcess, base: &Path, k: usize, case: &Case) -> Result<String> {
    // A case that panicked may have left servers running.
    let _ = sys.stop().await;
    let dir = base.join(format!("case-{k}"));
    std::fs::create_dir_all(dir.join("table"))?;
    std::fs::create_dir_all(dir.join("gate"))?;
    std::fs::write(dir.join("runs"), "")?;
    let agents = ["a1", "a2"]
        .iter()
        .map(|id| -> Result<Agent> {
            Ok(Agent {
                id: AgentId::new(*id)?,
                url: sys.agent_url(id)?,
                certificate_name: None,
                subagents: Vec::new(),
                selection: Selection::default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::write(dir.join("job.sh"), job_script(&dir))?;
    let script = format!("exec /bin/sh '{}'", dir.join("job.sh").display());
    let inventory = driven::inventory(&case.steps, &script, agents);
    let yaml = inventory_yaml(&inventory);
    let parsed = parse_inventory(
        &[SourceFile::new("case.yaml", yaml.clone())],
        &Limits::default(),
    )
    .map_err(|d| anyhow!("the generated YAML does not deploy: {d:?}\n{yaml}"))?;
    ensure!(
        parsed == inventory,
        "the YAML reads back as another inventory:\n{yaml}"
    );
    let expected = driven::expect(&parsed, case);
    write_table(&dir, &expected.runs)?;
    sys.start(&dir.join("data")).await?;
    let driven = drive(sys, &dir, &yaml, &expected).await;
    let stopped = sys.stop().await;
    let follow = driven.map_err(|e| anyhow!("{e:#}\nthe inventory:\n{yaml}"))?;
    stopped?;
    for agent in ["a1", "a2"] {
        check_agent_journal(sys, agent, &follow.state.world)?;
    }
    std::fs::remove_dir_all(&dir)?;
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for o in follow.state.world.orders.values() {
        *states.entry(o.state.name()).or_default() += 1;
    }
    Ok(format!(
        "{} steps, {} job runs, {} events, orders {states:?}",
        expected.points.len(),
        expected.runs.len(),
        follow.events,
    ))
}

/// The script every job runs (from a file; the jobs' `script` runs it): it numbers its run among the order's runs (in the file `runs`),
/// looks the run up in the table (job, attempt, return code, value, whether it blocks) and
/// does what it says; a run the table does not have ends with 99, one of another job or
/// attempt with 98.
fn job_script(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"d='{d}'
o="$ORDO_ORDER_ID"
n=$(awk -F '\t' -v o="$o" '$1 == o {{ c++ }} END {{ print c + 0 }}' "$d/runs")
n=$((n + 1))
printf '%s\t%s\t%s\t%s\n' "$o" "$n" "$ORDO_JOB" "$ORDO_ATTEMPT" >> "$d/runs"
f="$d/table/$o.$n"
[ -f "$f" ] || exit 99
read job attempt rc value blocks < "$f"
[ "$job" = "$ORDO_JOB" ] && [ "$attempt" = "$ORDO_ATTEMPT" ] || exit 98
[ "$blocks" = 0 ] || read go < "$d/gate/$o.$n"
printf 'value=%s\n' "$value" > "$ORDO_RETURN_VALUES"
exit "$rc"
"#
    )
}

fn write_table(dir: &Path, runs: &[Run]) -> Result<()> {
    for r in runs {
        let key = format!("{}.{}", r.order, r.n);
        std::fs::write(
            dir.join("table").join(&key),
            format!(
                "{} {} {} {} {}\n",
                r.job,
                r.attempt,
                r.rc,
                r.value,
                u8::from(r.blocks)
            ),
        )?;
        if r.blocks {
            nix::unistd::mkfifo(
                &dir.join("gate").join(&key),
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )?;
        }
    }
    Ok(())
}

/// A line of the file `runs`: order, run number, job, attempt.
type RunLine = (String, u32, String, u32);

fn run_line(r: &Run) -> RunLine {
    (r.order.to_string(), r.n, r.job.to_string(), r.attempt)
}

/// The runs so far, sorted.
fn read_runs(dir: &Path) -> Result<Vec<RunLine>> {
    let text = std::fs::read_to_string(dir.join("runs"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [order, n, job, attempt] = f[..] else {
            bail!("a bad line in the runs file: {line:?}");
        };
        out.push((
            order.to_owned(),
            n.parse()?,
            job.to_owned(),
            attempt.parse()?,
        ));
    }
    out.sort();
    Ok(out)
}

/// The controller's event stream folded as the controller folds its journal, with what the
/// checks need on the way.
#[derive(Default)]
struct Follow {
    state: State,
    after: u64,
    /// Events folded.
    events: usize,
    /// Broken invariants, in the order found.
    problems: Vec<String>,
    /// Journaled job starts per order, and starts withdrawn before a spawn.
    starts: BTreeMap<OrderId, u32>,
    withdrawn: BTreeMap<OrderId, u32>,
}

impl Follow {
    /// One long poll of the event stream (`timeout_ms` at most); folds what came.
    async fn poll(&mut self, sys: &InProcess, timeout_ms: u64) {
        let url = sys.url(&format!(
            "/events?after={}&timeout={timeout_ms}",
            self.after
        ));
        let answer = match sys.api.request(Method::GET, &url, None).await {
            Ok(a) if a.status.is_success() => a,
            // The controller is starting again: look again after a while.
            _ => {
                tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
                return;
            }
        };
        let text = String::from_utf8_lossy(&answer.body);
        for line in text.lines().filter(|l| !l.is_empty()) {
            match parse_message(line) {
                Ok(StreamMessage::Event(frame)) => {
                    let (id, stored) = frame.into_stored();
                    self.apply(id, &stored);
                }
                Ok(StreamMessage::Error(e)) => {
                    self.problems.push(format!("the event stream ended: {e}"));
                }
                Err(e) => self.problems.push(format!("an event frame: {e}")),
            }
        }
    }

    fn apply(&mut self, id: u64, stored: &Stored) {
        if id <= self.after {
            self.problems.push(format!(
                "event {id} after {}: ids must increase",
                self.after
            ));
            return;
        }
        self.after = id;
        self.events += 1;
        let order_event = match &stored.body {
            Body::Agent {
                body: AgentEventBody::Order(KeyedEvent::Order { id, event }),
                ..
            } => Some((id.clone(), event)),
            _ => None,
        };
        if let Err(skipped) = self.state.apply(id, stored) {
            self.problems.push(format!(
                "the journaled event {id} does not apply: {} ({:?})",
                skipped.why, stored.body
            ));
            return;
        }
        match order_event {
            Some((order, OrderEvent::ProcessingStarted { .. })) => {
                *self.starts.entry(order).or_default() += 1;
            }
            Some((order, OrderEvent::ProcessingWithdrawn)) => {
                *self.withdrawn.entry(order).or_default() += 1;
            }
            _ => {}
        }
        if let Err(e) = driven::parallelism_holds(&self.state.world) {
            self.problems.push(format!("after event {id}: {e}"));
        }
    }

    fn check(&self) -> Result<()> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", self.problems.join("\n"))
        }
    }

    /// Orders whose journaled starts (less the withdrawn ones) differ from their runs.
    fn unrun_starts(&self, runs: &[RunLine]) -> Vec<String> {
        let mut ran: BTreeMap<&str, u32> = BTreeMap::new();
        for r in runs {
            *ran.entry(r.0.as_str()).or_default() += 1;
        }
        let mut out = Vec::new();
        let ids: std::collections::BTreeSet<&str> = self
            .starts
            .keys()
            .map(OrderId::as_str)
            .chain(ran.keys().copied())
            .collect();
        for id in ids {
            let started = self
                .starts
                .iter()
                .find(|(o, _)| o.as_str() == id)
                .map_or(0, |(_, n)| *n);
            let withdrawn = self
                .withdrawn
                .iter()
                .find(|(o, _)| o.as_str() == id)
                .map_or(0, |(_, n)| *n);
            let ran = ran.get(id).copied().unwrap_or(0);
            if started.saturating_sub(withdrawn) != ran {
                out.push(format!(
                    "{id}: {started} starts journaled, {withdrawn} withdrawn, {ran} processes ran"
                ));
            }
        }
        out
    }
}

/// Deploys, then carries out every step and waits for its quiet point; then the last checks
/// of the controller's state.
async fn drive(sys: &mut InProcess, dir: &Path, yaml: &str, expected: &Expected) -> Result<Follow> {
    let files = json!({"files": [{"name": "case.yaml", "text": yaml}]});
    sys.api
        .post_json::<_, Json>(&sys.url("/deploy"), &files)
        .await
        .context("deploying")?;
    let mut follow = Follow::default();
    for (i, point) in expected.points.iter().enumerate() {
        let reply = act(sys, dir, &point.step)
            .await
            .with_context(|| format!("step {i}: {:?}", point.step))?;
        ensure!(
            reply == point.reply,
            "step {i}: {:?}: the controller answered {reply:?}, the model {:?}",
            point.step,
            point.reply
        );
        wait_quiet(sys, dir, &mut follow, point, &expected.runs)
            .await
            .with_context(|| format!("after step {i}: {:?}", point.step))?;
    }
    // Nothing moves after the last quiet point.
    follow.poll(sys, SETTLE_POLL_MS).await;
    follow.check()?;
    if let Some(last) = expected.points.last() {
        let now = driven::view(&follow.state.world);
        ensure!(
            now == last.view,
            "the orders moved on after the last quiet point:\n{}",
            driven::diff(&last.view, &now)
        );
    }
    let runs = read_runs(dir)?;
    let mut want: Vec<RunLine> = expected.runs.iter().map(run_line).collect();
    want.sort();
    ensure!(runs == want, "{}", runs_diff(&want, &runs));
    check_replay(sys, &mut follow).await?;
    Ok(follow)
}

fn runs_diff(want: &[RunLine], got: &[RunLine]) -> String {
    let missing: Vec<&RunLine> = want.iter().filter(|r| !got.contains(r)).collect();
    let mut extra: Vec<&RunLine> = got.iter().filter(|r| !want.contains(r)).collect();
    for (i, r) in got.iter().enumerate() {
        if got[..i].contains(r) {
            extra.push(r);
        }
    }
    format!("job runs differ from the model's: missing {missing:?}, extra or repeated {extra:?}")
}

/// Carries out one step; the controller's answer to a command.
async fn act(sys: &mut InProcess, dir: &Path, step: &Step) -> Result<Option<Reply>> {
    let kill = |k: &Option<Kill>| match k {
        None => json!({}),
        Some(Kill::Term) => json!({"kill": "term"}),
        Some(Kill::Kill) => json!({"kill": "kill"}),
    };
    Ok(Some(match step {
        Step::Add { id, delay_ms } => {
            let mut body =
                json!({"id": id.as_str(), "workflow": "main", "args": {"returnCode": 0}});
            if let Some(d) = delay_ms {
                body["scheduledFor"] = json!(ordo_net::clock::now_ms() + *d as i64);
            }
            let answer: Json = sys.api.post_json(&sys.url("/orders"), &body).await?;
            let duplicate = answer["results"][0]["duplicate"]
                .as_bool()
                .ok_or_else(|| anyhow!("an answer without duplicate: {answer}"))?;
            Reply::Done { duplicate }
        }
        Step::Cancel { id, kill: k } => command(sys, &order_path(id, "cancel"), kill(k)).await?,
        Step::Suspend { id, kill: k } => command(sys, &order_path(id, "suspend"), kill(k)).await?,
        Step::Resume { id } => command(sys, &order_path(id, "resume"), json!({})).await?,
        Step::Answer { id } => command(sys, &order_path(id, "answer"), json!({})).await?,
        Step::Go { id } => command(sys, &order_path(id, "go"), json!({})).await?,
        Step::Post => command(sys, "/notices/b", json!({"key": "k"})).await?,
        Step::Release { order, n } => {
            release(dir.join("gate").join(format!("{order}.{n}"))).await?;
            return Ok(None);
        }
        Step::RestartAgent(agent) => {
            sys.restart_agent(agent.as_str()).await?;
            return Ok(None);
        }
        Step::RestartController => {
            sys.restart_controller().await?;
            return Ok(None);
        }
    }))
}

/// `/orders/<id>/<what>` with the id percent-encoded.
fn order_path(id: &OrderId, what: &str) -> String {
    let mut enc = String::new();
    for b in id.as_str().bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            enc.push(char::from(b));
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/orders/{enc}/{what}")
}

async fn command(sys: &InProcess, path: &str, body: Json) -> Result<Reply> {
    let answer = sys
        .api
        .request(
            Method::POST,
            &sys.url(path),
            Some((body.to_string().into(), "application/json")),
        )
        .await?;
    if answer.status.is_success() {
        let json: Json = serde_json::from_slice(&answer.body)?;
        Ok(Reply::Done {
            duplicate: json["duplicate"].as_bool().unwrap_or(false),
        })
    } else if answer.status.is_client_error() {
        Ok(Reply::Refused)
    } else {
        bail!(
            "POST {path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    }
}

/// Opens the blocked run's FIFO for writing (which waits for the job to open it for reading)
/// and writes a line: the job goes on. A thread of its own, so that a job that never opens it
/// cannot keep the runtime from stopping.
async fn release(gate: PathBuf) -> Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = gate.clone();
    std::thread::spawn(move || {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"go\n"));
        let _ = tx.send(written);
    });
    match tokio::time::timeout(Duration::from_millis(RELEASE_WAIT_MS), rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => bail!("releasing {}: {e}", gate.display()),
        Ok(Err(_)) => bail!("releasing {}: the thread ended", gate.display()),
        Err(_) => bail!(
            "the job of {} did not open its gate within {RELEASE_WAIT_MS} ms",
            gate.display()
        ),
    }
}

/// Follows the event stream until the controller's view equals the point's and the job runs
/// are the model's so far, each journaled start run once.
async fn wait_quiet(
    sys: &InProcess,
    dir: &Path,
    follow: &mut Follow,
    point: &Point,
    runs: &[Run],
) -> Result<()> {
    let mut want: Vec<RunLine> = runs[..point.runs].iter().map(run_line).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_millis(QUIET_WAIT_MS);
    loop {
        follow.check()?;
        let view = driven::view(&follow.state.world);
        let ran = read_runs(dir)?;
        let unrun = follow.unrun_starts(&ran);
        if view == point.view && ran == want && unrun.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no quiet point within {QUIET_WAIT_MS} ms\n{}{}\n{}",
                driven::diff(&point.view, &view),
                if ran == want {
                    String::new()
                } else {
                    runs_diff(&want, &ran)
                },
                unrun.join("\n")
            );
        }
        follow.poll(sys, POLL_MS).await;
    }
}

/// `/state` equals the fold of the event stream at the same event (replay = live).
async fn check_replay(sys: &InProcess, follow: &mut Follow) -> Result<()> {
    for _ in 0..STATE_TRIES_MAX {
        let answer = sys
            .api
            .request(Method::GET, &sys.url("/state"), None)
            .await?;
        ensure!(answer.status.is_success(), "/state: {}", answer.status);
        let snapshot = StateSnapshot::from_slice(&answer.body)?;
        let deadline = Instant::now() + Duration::from_millis(QUIET_WAIT_MS);
        while follow.after < snapshot.event_id && Instant::now() < deadline {
            follow.poll(sys, POLL_MS).await;
        }
        follow.check()?;
        if follow.after == snapshot.event_id {
            let s = &snapshot.state;
            let f = &follow.state;
            ensure!(
                s == f,
                "/state differs from the fold of the event stream at event {}: world {}, agents {}, logs {}, terminated {}",
                snapshot.event_id,
                s.world == f.world,
                s.agents == f.agents,
                s.logs == f.logs,
                s.terminated == f.terminated
            );
            return Ok(());
        }
    }
    bail!("the event stream never stood still at a /state answer")
}

/// The agent's journal, reopened after it stopped, holds exactly the orders the controller
/// says it holds, each equal to the controller's copy.
fn check_agent_journal(sys: &InProcess, agent: &str, controller: &World) -> Result<()> {
    let recovered = ordo_agent::open::open(&sys.agent_config(agent)?)?;
    let world = &recovered.state.world;
    for (id, o) in &world.orders {
        let copy = controller.order(id);
        ensure!(
            copy == Some(o),
            "agent {agent}'s journal has order {id} as {o:?}; the controller has {copy:?}"
        );
    }
    let id = AgentId::new(agent)?;
    for (oid, o) in &controller.orders {
        if matches!(&o.holder, Holder::Agent(a) if *a == id) {
            ensure!(
                world.order(oid).is_some(),
                "the controller says agent {agent} holds {oid}; its journal does not have it"
            );
        }
    }
    Ok(())
}
