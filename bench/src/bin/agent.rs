//! Agent benchmark: jobs per second through a real agent over mTLS, against the raw spawn rate
//! of the same jobs measured in the same run, and events per second delivered after an outage.
//!
//! `cargo run --release -p ordo-bench --bin agent`; prints JSON lines:
//!
//! - `{"name":"agent_jobs","n":…,"jobs_per_s":…,"raw_spawn_per_s":…,"ratio":…,"ratio_min":…,
//!   "ratio_max":…,"repeat":…,…}`: `N` orders (default 2000) of a one-job workflow (`true`, no
//!   shell) are attached to an agent with `processes_max = 2` and a durable journal
//!   (fdatasync), through a controller session on a real TLS WebSocket; the time runs from the
//!   first command until every order has handed itself back (`Detachable`). The raw rate is
//!   `ordo_bench::spawn_rate::raw_spawn_rate(N, 2)` (the agent's launcher, 2 workers),
//!   measured right before or after in the same round. `REPEAT` rounds (default 5); rates are
//!   medians, `ratio` is the median of the rounds' ratios (min and max beside it).
//!   `cpu_ms_per_job` and `raw_cpu_ms_per_job` are the CPU time per job (user + system, of this
//!   process, i.e. agent and test controller, and of the jobs): on a shared machine they vary
//!   less than rates, and on an idle one their ratio bounds the rate ratio.
//! - `{"name":"agent_drain","events":…,"seconds":…,"events_per_s":…,"generate_seconds":…}`:
//!   with no controller connected, one order makes `EVENTS` events (default 1,000,000; a
//!   `cycle` of `EVENTS / 2` runs, two events each) into the agent's journal; then a
//!   controller couples and receives all of them; the time runs from the `Couple` until the
//!   last event arrived.
//!
//! `FSYNC=0` turns the journal's fdatasync off (to see what durability costs).
//!
//! The agent runs in this process (two runtime threads, like the machine's two cores), so the
//! controller side shares the CPU with it, as it would on a small host.

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use ordo_bench::spawn_rate::raw_spawn_rate;
use ordo_model::ids::{AgentId, OrderId, WorkflowName};
use ordo_model::order::{
    AgentCommand, Command, KeyedEvent, OrderEvent, Settler, Side, World, attach_command, command,
    deploy,
};
use ordo_model::time::TimeMs;
use ordo_model::value::Vars;
use ordo_model::wire::{AgentEventBody, Couple, FromAgent, PROTOCOL_VERSION, ToAgent};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use ordo_net::certs::{IssueSpec, TestPki};
use ordo_net::client::WsStream;
use ordo_net::frame;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

const N_DEFAULT: usize = 2000;
const EVENTS_DEFAULT: usize = 1_000_000;
const REPEAT_DEFAULT: usize = 5;
const FRAME_BYTES_MAX: usize = 16 << 20;
const AGENT: &str = "bench";
const CLUSTER: &str = "bench";
/// Longest wait for anything in the benchmark.
const WAIT_MAX: Duration = Duration::from_secs(600);

const WORKFLOWS: &str = r#"
agent: bench
url: wss://127.0.0.1:1
---
workflow: trivial
jobs:
  t: { agent: bench, command: [true], parallelism: 100000 }
steps:
  - run: t
---
workflow: busy
jobs:
  first: { agent: bench, command: [true] }
steps:
  - run: first
  - cycle: { times: CYCLES }
    do:
      - if: "false"
        then: [ fail ]
"#;

fn env_count(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .parse::<usize>()
            .with_context(|| format!("{name} must be a whole number, got {text:?}")),
        Err(_) => Ok(default),
    }
}

/// CPU time of this process and its reaped children (the jobs), in milliseconds: fields 14
/// to 17 of `/proc/self/stat`, in clock ticks of 10 ms (`USER_HZ` is 100 on Linux).
fn cpu_ms() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| anyhow!("/proc/self/stat has no command name"))?;
    // Fields from 3 on: state is field 3, utime field 14.
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 * 10.0)
}

/// The median (the upper one of an even count); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn now() -> TimeMs {
    TimeMs(ordo_agent::now_ms())
}

/// Certificates, the agent's configuration and its data directory.
struct Fixture {
    dir: tempfile::TempDir,
    tls: Arc<rustls::ClientConfig>,
    fsync: bool,
}

impl Fixture {
    fn new() -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let pki = TestPki::new(CLUSTER)?;
        let agent = pki.issue("agent", &IssueSpec::local([format!("ordo:agent:{AGENT}")]))?;
        let controller = pki.issue(
            "controller",
            &IssueSpec::local([format!("ordo:controller:{CLUSTER}")]),
        )?;
        std::fs::write(dir.path().join("ca.pem"), pki.ca_pem())?;
        std::fs::write(dir.path().join("agent.pem"), &agent.cert_pem)?;
        std::fs::write(dir.path().join("agent.key"), &agent.key_pem)?;
        let tls =
            ordo_net::tls::client_config(&pki.ca_bundle()?, Some(&controller.to_material()?))?;
        let fsync = env_count("FSYNC", 1)? != 0;
        Ok(Fixture { dir, tls, fsync })
    }

    fn config(&self, data: &str) -> anyhow::Result<ordo_agent::Config> {
        let text = format!(
            r#"
agent_id = "{AGENT}"
listen = "127.0.0.1:0"
data_dir = "{data}"
[tls]
certificate = "agent.pem"
key = "agent.key"
controller_ca = "ca.pem"
[limits]
processes_max = 2
journal_fsync = {fsync}
"#,
            fsync = self.fsync
        );
        ordo_agent::Config::parse(&text, self.dir.path()).map_err(|e| anyhow!(e))
    }
}

/// An agent in this process.
struct Agent {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ordo_agent::AgentError>>,
}

impl Agent {
    async fn start(config: ordo_agent::Config) -> anyhow::Result<Agent> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ordo_agent::run_with_listener(
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Agent { addr, stop, task })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// The controller's side: its world (to make the commands) and a session.
struct Controller {
    world: World,
    run_id: Option<u128>,
    /// The newest event id received.
    last_event: u64,
}

impl Controller {
    fn new(cycles: usize) -> anyhow::Result<Controller> {
        let text = WORKFLOWS.replace("CYCLES", &cycles.to_string());
        let inventory = parse_inventory(&[SourceFile::new("bench.yaml", text)], &Limits::default())
            .map_err(|d| anyhow!("bench inventory: {d:?}"))?;
        let mut world = World::new(Side::Controller);
        for event in deploy(&world, &inventory) {
            world.apply(&event)?;
        }
        Ok(Controller {
            world,
            run_id: None,
            last_event: 0,
        })
    }

    /// The command that hands a new order of `workflow` to the agent.
    fn attach(&mut self, id: &str, workflow: &str) -> anyhow::Result<AgentCommand> {
        let id = OrderId::new(id)?;
        let accepted = command(
            &self.world,
            Command::Add {
                id: id.clone(),
                workflow: WorkflowName::new(workflow)?,
                vars: Vars::new(),
                scheduled_for: None,
            },
            now(),
            &Default::default(),
        )?;
        let mut settler = Settler::new();
        for e in &accepted.events {
            settler.apply(&mut self.world, e)?;
        }
        let mut out = Vec::new();
        while !settler.run(&mut self.world, now(), 10_000, &mut out) {}
        attach_command(&self.world, &id).ok_or_else(|| anyhow!("order {id} cannot be attached"))
    }

    async fn couple(
        &mut self,
        fixture: &Fixture,
        addr: SocketAddr,
        after: u64,
    ) -> anyhow::Result<(WsStream, ordo_model::wire::Coupled)> {
        let url = format!("wss://{addr}/agent");
        let mut ws =
            ordo_net::client::connect_ws(&url, fixture.tls.clone(), FRAME_BYTES_MAX, 10_000)
                .await?;
        let couple = ToAgent::Couple(Couple {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: CLUSTER.into(),
            controller_id: "bench".into(),
            term: 1,
            agent_id: AgentId::new(AGENT)?,
            agent_run_id: self.run_id,
            after,
        });
        frame::send(&mut ws, &couple, FRAME_BYTES_MAX).await?;
        match frame::recv::<_, FromAgent>(&mut ws, FRAME_BYTES_MAX).await? {
            Some(FromAgent::Coupled(c)) => {
                self.run_id = Some(c.agent_run_id);
                Ok((ws, c))
            }
            other => bail!("no Coupled: {other:?}"),
        }
    }
}

fn decode(message: Message) -> anyhow::Result<Option<FromAgent>> {
    match message {
        Message::Binary(bytes) => Ok(Some(frame::decode(&bytes, FRAME_BYTES_MAX)?)),
        Message::Close(_) => bail!("the agent closed the session"),
        _ => Ok(None),
    }
}

/// Attaches `n` orders and waits until all of them have handed themselves back.
async fn agent_jobs(
    fixture: &Fixture,
    addr: SocketAddr,
    ctl: &mut Controller,
    round: usize,
    n: usize,
) -> anyhow::Result<f64> {
    let mut commands = Vec::with_capacity(n);
    for i in 0..n {
        commands.push(ctl.attach(&format!("r{round}-{i}"), "trivial")?);
    }
    let (ws, _) = ctl.couple(fixture, addr, ctl.last_event).await?;
    let (mut sink, mut stream) = ws.split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for (i, command) in commands.into_iter().enumerate() {
            let message = ToAgent::Command {
                seq: i as u64 + 1,
                term: 1,
                command,
            };
            let bytes = frame::encode(&message, FRAME_BYTES_MAX)?;
            sink.feed(Message::Binary(bytes.into())).await?;
        }
        sink.flush().await?;
        anyhow::Ok(sink)
    });
    let prefix = format!("r{round}-");
    let mut done = 0;
    let deadline = started + WAIT_MAX;
    while done < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, stream.next())
            .await
            .context("the jobs took too long")?
            .ok_or_else(|| anyhow!("the session ended"))??;
        match decode(message)? {
            Some(FromAgent::Events(events)) => {
                for e in events {
                    ctl.last_event = e.id;
                    if let AgentEventBody::Order(KeyedEvent::Order {
                        id,
                        event: OrderEvent::Detachable,
                    }) = &e.body
                        && id.as_str().starts_with(&prefix)
                    {
                        done += 1;
                    }
                }
            }
            Some(FromAgent::Rejected { seq, message }) => {
                bail!("command {seq} rejected: {message}")
            }
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut sink = writer.await??;
    let _ = sink.close().await;
    Ok(seconds)
}

/// Lets one order make `events` events with no controller, then measures their delivery.
async fn agent_drain(fixture: &Fixture, events: usize) -> anyhow::Result<(usize, f64, f64)> {
    let agent = Agent::start(fixture.config("drain")?).await?;
    let mut ctl = Controller::new((events / 2).max(1))?;
    let command = ctl.attach("busy", "busy")?;
    let (mut ws, coupled) = ctl.couple(fixture, agent.addr, 0).await?;
    let after = coupled.last_event_id;
    frame::send(
        &mut ws,
        &ToAgent::Command {
            seq: 1,
            term: 1,
            command,
        },
        FRAME_BYTES_MAX,
    )
    .await?;
    loop {
        match frame::recv::<_, FromAgent>(&mut ws, FRAME_BYTES_MAX).await? {
            Some(FromAgent::Ack { .. }) => break,
            Some(FromAgent::Rejected { message, .. }) => bail!("attach rejected: {message}"),
            Some(_) => {}
            None => bail!("the session ended"),
        }
    }
    drop(ws);
    // The agent works alone; its journal grows until the order is done.
    let generating = Instant::now();
    let mut last = 0;
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (ws, c) = ctl.couple(fixture, agent.addr, after).await?;
        drop(ws);
        if c.last_event_id != last {
            last = c.last_event_id;
            stable_since = Instant::now();
        } else if last - after >= events as u64 && stable_since.elapsed() > Duration::from_secs(1) {
            break;
        }
        if generating.elapsed() > WAIT_MAX {
            bail!("the agent made only {} events", last - after);
        }
    }
    let generate_seconds = generating.elapsed().as_secs_f64();
    // Deliver everything after the attach.
    let started = Instant::now();
    let (ws, _) = ctl.couple(fixture, agent.addr, after).await?;
    let (_sink, mut stream) = ws.split();
    let mut received = 0usize;
    let mut newest = after;
    while newest < last {
        let left = (started + WAIT_MAX).saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, stream.next())
            .await
            .context("the drain took too long")?
            .ok_or_else(|| anyhow!("the session ended"))??;
        if let Some(FromAgent::Events(batch)) = decode(message)? {
            for e in batch {
                if e.id <= newest {
                    bail!("event {} after {newest}: out of order or repeated", e.id);
                }
                newest = e.id;
                received += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    agent.stop().await?;
    Ok((received, seconds, generate_seconds))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n = env_count("N", N_DEFAULT)?.max(1);
    let events = env_count("EVENTS", EVENTS_DEFAULT)?.max(2);
    let repeat = env_count("REPEAT", REPEAT_DEFAULT)?.max(1);
    let fixture = Fixture::new()?;

    // Warm up: page cache, PATH lookup, the runtime's threads, the agent's first run.
    raw_spawn_rate(50, 2).await?;
    let agent = Agent::start(fixture.config("jobs")?).await?;
    let mut ctl = Controller::new(1)?;
    agent_jobs(&fixture, agent.addr, &mut ctl, 0, 50).await?;

    // Rounds of the raw rate and the agent's rate back to back (in turn which goes first), so
    // that both see the same load of a shared machine; the ratio is the median of the rounds'.
    let mut raw_rates = Vec::with_capacity(repeat);
    let mut agent_rates = Vec::with_capacity(repeat);
    let mut ratios = Vec::with_capacity(repeat);
    let mut raw_cpu = Vec::with_capacity(repeat);
    let mut agent_cpu = Vec::with_capacity(repeat);
    for round in 1..=repeat {
        let mut raw = None;
        let mut agent_phase = None;
        for step in 0..2 {
            let cpu_before = cpu_ms()?;
            if (round + step) % 2 == 1 {
                let rate = raw_spawn_rate(n, 2).await?;
                raw = Some((rate.per_s, cpu_ms()? - cpu_before));
            } else {
                let seconds = agent_jobs(&fixture, agent.addr, &mut ctl, round, n).await?;
                agent_phase = Some((n as f64 / seconds, cpu_ms()? - cpu_before));
            }
        }
        let (Some((raw_rate, raw_cpu_ms)), Some((rate, agent_cpu_ms))) = (raw, agent_phase) else {
            bail!("a round measured only one side");
        };
        raw_rates.push(raw_rate);
        agent_rates.push(rate);
        ratios.push(rate / raw_rate);
        raw_cpu.push(raw_cpu_ms / n as f64);
        agent_cpu.push(agent_cpu_ms / n as f64);
    }
    agent.stop().await?;
    let line = format!(
        "{{\"name\":\"agent_jobs\",\"n\":{n},\"jobs_per_s\":{:.1},\"raw_spawn_per_s\":{:.1},\"ratio\":{:.3},\"ratio_min\":{:.3},\"ratio_max\":{:.3},\"cpu_ms_per_job\":{:.3},\"raw_cpu_ms_per_job\":{:.3},\"repeat\":{repeat},\"processes_max\":2,\"fsync\":{}}}",
        median(&mut agent_rates),
        median(&mut raw_rates),
        median(&mut ratios),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
        median(&mut agent_cpu),
        median(&mut raw_cpu),
        fixture.fsync,
    );
    writeln!(std::io::stdout().lock(), "{line}")?;

    let (received, seconds, generate_seconds) = agent_drain(&fixture, events).await?;
    let line = format!(
        "{{\"name\":\"agent_drain\",\"events\":{received},\"events_per_s\":{:.0},\"seconds\":{seconds:.4},\"generate_seconds\":{generate_seconds:.2}}}",
        received as f64 / seconds
    );
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}
