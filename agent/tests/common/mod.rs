//! A small test controller for the agent: real mTLS WebSocket sessions with certificates from
//! `ordo_net::certs::TestPki`, a controller-side world of the model that attaches orders,
//! applies the agent's events and detaches orders the agent hands back.

#![allow(dead_code)]

use ordo_agent::Config;
use ordo_model::ids::{AgentId, OrderId, WorkflowName};
use ordo_model::order::{
    Action, AgentCommand, Command, Holder, KeyedEvent, OrderEvent, OrderState, Settler, Side,
    World, accepts_from_agent, actions, attach_command, command, deploy,
};
use ordo_model::time::TimeMs;
use ordo_model::value::Vars;
use ordo_model::wire::{
    AgentEvent, AgentEventBody, Couple, Coupled, FromAgent, PROTOCOL_VERSION, ToAgent,
};
use ordo_model::yaml::{Limits as YamlLimits, SourceFile, parse_inventory};
use ordo_net::certs::{IssueSpec, PemPair, TestPki};
use ordo_net::client::WsStream;
use ordo_net::frame::{self, Received};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub const AGENT: &str = "a1";
pub const CLUSTER: &str = "main";
pub const FRAME_BYTES_MAX: usize = 1 << 20;

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

pub fn now_ms() -> i64 {
    ordo_agent::now_ms()
}

/// Certificates and a data directory for one agent.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub controller: PemPair,
    pub config_text: String,
}

impl Setup {
    /// `limits` is TOML for the `[limits]` table.
    pub fn new(limits: &str) -> Setup {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = TestPki::new(CLUSTER).expect("pki");
        let agent = pki
            .issue(
                "agent-a1",
                &IssueSpec::local([format!("ordo:agent:{AGENT}")]),
            )
            .expect("agent cert");
        let controller = pki
            .issue(
                "controller",
                &IssueSpec::local([format!("ordo:controller:{CLUSTER}")]),
            )
            .expect("controller cert");
        std::fs::write(dir.path().join("ca.pem"), pki.ca_pem()).unwrap();
        std::fs::write(dir.path().join("agent.pem"), &agent.cert_pem).unwrap();
        std::fs::write(dir.path().join("agent.key"), &agent.key_pem).unwrap();
        let mut table = limits.to_owned();
        for (key, value) in [
            ("frame_bytes_max", FRAME_BYTES_MAX.to_string()),
            ("heartbeat_interval_ms", "500".into()),
            ("heartbeat_timeout_ms", "3000".into()),
            ("journal_fsync", "false".into()),
        ] {
            if !limits.contains(key) {
                table.push_str(&format!("\n{key} = {value}"));
            }
        }
        let config_text = format!(
            r#"
agent_id = "{AGENT}"
listen = "127.0.0.1:0"
data_dir = "data"
[tls]
certificate = "agent.pem"
key = "agent.key"
controller_ca = "ca.pem"
[limits]
{table}
"#
        );
        std::fs::write(dir.path().join("agent.toml"), &config_text).unwrap();
        Setup {
            dir,
            pki,
            controller,
            config_text,
        }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path()).expect("config")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("journal")
    }

    /// TLS for a controller of the cluster.
    pub fn controller_tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls_with(&self.controller)
    }

    pub fn tls_with(&self, pair: &PemPair) -> Arc<rustls::ClientConfig> {
        ordo_net::tls::client_config(
            &self.pki.ca_bundle().unwrap(),
            Some(&pair.to_material().unwrap()),
        )
        .unwrap()
    }
}

/// An agent running in this process.
pub struct Agent {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ordo_agent::AgentError>>>,
}

impl Agent {
    pub async fn start(config: Config) -> Agent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ordo_agent::run_with_listener(
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Agent {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("agent stops in time")
                .expect("agent task");
            result.expect("agent ends without error");
        }
    }
}

pub fn ws_url(addr: SocketAddr) -> String {
    format!("wss://{addr}/agent")
}

pub async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> WsStream {
    ordo_net::client::connect_ws(&ws_url(addr), tls, FRAME_BYTES_MAX, 5_000)
        .await
        .expect("connect")
}

pub fn couple_msg(term: u64, run: Option<u128>, after: u64) -> ToAgent {
    ToAgent::Couple(Couple {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: CLUSTER.into(),
        controller_id: "c1".into(),
        term,
        agent_id: AgentId::new(AGENT).unwrap(),
        agent_run_id: run,
        after,
    })
}

/// Sends `Couple` and returns the first answer.
pub async fn couple_raw(ws: &mut WsStream, msg: &ToAgent) -> FromAgent {
    frame::send(ws, msg, FRAME_BYTES_MAX).await.expect("send");
    recv_frame(ws, 5_000).await.expect("an answer to Couple")
}

/// The next frame within `timeout_ms` (`None`: closed); panics on a timeout.
pub async fn recv_frame(ws: &mut WsStream, timeout_ms: u64) -> Option<FromAgent> {
    match recv_within(ws, timeout_ms).await {
        Ok(frame) => frame,
        Err(()) => panic!("no frame within {timeout_ms} ms"),
    }
}

/// The next frame within `timeout_ms` (`Ok(None)`: closed, `Err`: timed out).
pub async fn recv_within(ws: &mut WsStream, timeout_ms: u64) -> Result<Option<FromAgent>, ()> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, frame::recv_any::<_, FromAgent>(ws, FRAME_BYTES_MAX)).await
        {
            Err(_) => return Err(()),
            Ok(Ok(Received::Frame(f))) => return Ok(Some(f)),
            Ok(Ok(Received::Ping(_) | Received::Pong(_))) => {}
            Ok(Ok(Received::Closed)) | Ok(Err(_)) => return Ok(None),
        }
    }
}

/// A controller: its world, its sessions with the agent, every event received.
pub struct Ctl {
    pub addr: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
    pub ws: Option<WsStream>,
    pub term: u64,
    pub run_id: Option<u128>,
    pub coupled: Option<Coupled>,
    pub events: Vec<AgentEvent>,
    pub world: World,
    pub replies: VecDeque<FromAgent>,
    pub auto_detach: bool,
    seq: u64,
    to_detach: Vec<OrderId>,
    agent: AgentId,
}

impl Ctl {
    /// A controller with the inventory of `yaml` (the agent `a1` is added).
    pub fn new(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, yaml: &str) -> Ctl {
        let text = format!("agent: {AGENT}\nurl: wss://127.0.0.1:1\n---\n{yaml}");
        let inventory = parse_inventory(
            &[SourceFile::new("test.yaml", text)],
            &YamlLimits::default(),
        )
        .unwrap_or_else(|d| panic!("inventory: {d:?}"));
        let mut world = World::new(Side::Controller);
        for event in deploy(&world, &inventory) {
            world.apply(&event).expect("deploy");
        }
        Ctl {
            addr,
            tls,
            ws: None,
            term: 1,
            run_id: None,
            coupled: None,
            events: Vec::new(),
            world,
            replies: VecDeque::new(),
            auto_detach: true,
            seq: 0,
            to_detach: Vec::new(),
            agent: AgentId::new(AGENT).unwrap(),
        }
    }

    pub fn last_id(&self) -> u64 {
        self.events.last().map_or(0, |e| e.id)
    }

    /// Connects and couples after the last event received; panics on a refusal.
    pub async fn couple(&mut self) -> &Coupled {
        self.try_couple().await.expect("coupled")
    }

    pub async fn try_couple(&mut self) -> Result<&Coupled, String> {
        let mut ws = connect(self.addr, self.tls.clone()).await;
        let after = self.last_id();
        match couple_raw(&mut ws, &couple_msg(self.term, self.run_id, after)).await {
            FromAgent::Coupled(c) => {
                self.run_id = Some(c.agent_run_id);
                self.coupled = Some(c);
                self.ws = Some(ws);
                Ok(self.coupled.as_ref().unwrap())
            }
            FromAgent::Refused { reason } => Err(reason),
            other => panic!("unexpected answer to Couple: {other:?}"),
        }
    }

    pub async fn disconnect(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
    }

    pub async fn send(&mut self, msg: &ToAgent) {
        let ws = self.ws.as_mut().expect("connected");
        frame::send(ws, msg, FRAME_BYTES_MAX).await.expect("send");
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Sends a command and waits for its answer (collecting events meanwhile).
    pub async fn command(&mut self, command: AgentCommand) -> FromAgent {
        let seq = self.next_seq();
        let term = self.term;
        self.send(&ToAgent::Command { seq, term, command }).await;
        self.answer(seq).await
    }

    async fn answer(&mut self, seq: u64) -> FromAgent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self.replies.iter().position(|r| {
                matches!(r, FromAgent::Ack { seq: s } | FromAgent::Rejected { seq: s, .. } if *s == seq)
            }) {
                return self.replies.remove(i).unwrap();
            }
            assert!(Instant::now() < deadline, "no answer to command {seq}");
            if !self.recv(2_000).await {
                panic!("the session closed while waiting for the answer to {seq}");
            }
        }
    }

    /// Adds an order on the controller, hands it to the agent and waits for the `Ack`.
    pub async fn add_order(&mut self, id: &str, workflow: &str, vars: Vars, at: Option<i64>) {
        let id = OrderId::new(id).unwrap();
        let accepted = command(
            &self.world,
            Command::Add {
                id: id.clone(),
                workflow: WorkflowName::new(workflow).unwrap(),
                vars,
                scheduled_for: at.map(TimeMs),
            },
            TimeMs(now_ms()),
            &Default::default(),
        )
        .expect("add");
        self.settle(accepted.events);
        self.attach(&id).await;
    }

    /// Adds an order without the checks of the model's door (as a journal written before
    /// them holds it), hands it to the agent and waits for the `Ack`.
    pub async fn add_order_unchecked(&mut self, id: &str, workflow: &str, vars: Vars) {
        let id = OrderId::new(id).unwrap();
        let workflow = WorkflowName::new(workflow).unwrap();
        let (version, _) = self.world.latest(&workflow).expect("deployed");
        self.settle(vec![KeyedEvent::order(
            &id,
            OrderEvent::Added {
                workflow,
                version,
                vars,
                scheduled_for: None,
                added_by: None,
            },
        )]);
        self.attach(&id).await;
    }

    async fn attach(&mut self, id: &OrderId) {
        let id = id.clone();
        let o = self.world.order(&id).expect("added");
        assert_eq!(o.holder, Holder::Attaching(self.agent.clone()), "{o:?}");
        let attach = attach_command(&self.world, &id).expect("attach command");
        let answer = self.command(attach).await;
        assert!(matches!(answer, FromAgent::Ack { .. }), "{answer:?}");
    }

    /// An operator's command on the controller; marks it makes are sent to the agent.
    pub async fn operator(&mut self, cmd: Command) {
        let accepted =
            command(&self.world, cmd, TimeMs(now_ms()), &Default::default()).expect("accepted");
        self.settle(accepted.events);
        for action in actions(&self.world) {
            if let Action::Mark {
                order, mark, seq, ..
            } = action
            {
                let answer = self
                    .command(AgentCommand::MarkOrder {
                        id: order,
                        mark,
                        seq,
                    })
                    .await;
                assert!(matches!(answer, FromAgent::Ack { .. }), "{answer:?}");
            }
        }
    }

    fn settle(&mut self, events: Vec<KeyedEvent>) {
        let mut settler = Settler::new();
        for e in &events {
            settler
                .apply(&mut self.world, e)
                .expect("controller applies");
        }
        let mut out = Vec::new();
        while !settler.run(&mut self.world, TimeMs(now_ms()), 10_000, &mut out) {}
    }

    /// Receives one frame (events are checked, kept and applied); `false` when closed.
    /// Panics when nothing came within `timeout_ms`, listing the events so far.
    pub async fn recv(&mut self, timeout_ms: u64) -> bool {
        let ws = self.ws.as_mut().expect("connected");
        let message = match recv_within(ws, timeout_ms).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                self.ws = None;
                return false;
            }
            Err(()) => panic!(
                "nothing received within {timeout_ms} ms; events: {:#?}",
                self.names_all()
            ),
        };
        match message {
            FromAgent::Events(events) => {
                assert!(!events.is_empty(), "an empty Events frame");
                for e in events {
                    assert!(
                        e.id > self.last_id(),
                        "event {} after {}: ids must increase, without duplicates",
                        e.id,
                        self.last_id()
                    );
                    if let AgentEventBody::Order(event) = &e.body {
                        accepts_from_agent(&self.world, &self.agent, event)
                            .unwrap_or_else(|m| panic!("controller refuses {event}: {m}"));
                        self.settle(vec![event.clone()]);
                        if let KeyedEvent::Order { id, .. } = event
                            && self
                                .world
                                .order(id)
                                .is_some_and(|o| o.holder == Holder::Detaching(self.agent.clone()))
                            && !self.to_detach.contains(id)
                        {
                            self.to_detach.push(id.clone());
                        }
                    }
                    self.events.push(e);
                }
            }
            other => self.replies.push_back(other),
        }
        if self.auto_detach {
            for id in std::mem::take(&mut self.to_detach) {
                let seq = self.next_seq();
                let term = self.term;
                let command = AgentCommand::DetachOrder { id };
                self.send(&ToAgent::Command { seq, term, command }).await;
            }
        }
        true
    }

    /// Receives until `done` holds; panics after `timeout_ms`.
    pub async fn until(&mut self, timeout_ms: u64, what: &str, done: impl Fn(&Ctl) -> bool) {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; events: {:#?}",
                self.names_all()
            );
            if !self.recv(left.as_millis() as u64).await {
                panic!("the session closed while waiting for {what}");
            }
        }
    }

    /// The names of the order's events (`Output`, `OutputTruncated` for output).
    pub fn names(&self, order: &str) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.body {
                AgentEventBody::Order(KeyedEvent::Order { id, event }) if id.as_str() == order => {
                    Some(event.name().to_owned())
                }
                AgentEventBody::Output { order_id, .. } if order_id.as_str() == order => {
                    Some("Output".to_owned())
                }
                AgentEventBody::OutputTruncated { order_id, .. } if order_id.as_str() == order => {
                    Some("OutputTruncated".to_owned())
                }
                _ => None,
            })
            .collect()
    }

    fn names_all(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| match &e.body {
                AgentEventBody::Order(k) => format!("{} {k}", e.id),
                AgentEventBody::Output {
                    order_id, chunk, ..
                } => {
                    format!(
                        "{} {order_id}: Output {:?}",
                        e.id,
                        String::from_utf8_lossy(chunk)
                    )
                }
                AgentEventBody::OutputTruncated { order_id, .. } => {
                    format!("{} {order_id}: OutputTruncated", e.id)
                }
            })
            .collect()
    }

    pub fn has(&self, order: &str, name: &str) -> bool {
        self.names(order).iter().any(|n| n == name)
    }

    /// The order's output on both streams, in order.
    pub fn output(&self, order: &str) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match &e.body {
                AgentEventBody::Output {
                    order_id, chunk, ..
                } if order_id.as_str() == order => Some(chunk.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The controller's view of the order's state.
    pub fn state(&self, order: &str) -> Option<OrderState> {
        self.world
            .order(&OrderId::new(order).unwrap())
            .map(|o| o.state.clone())
    }

    pub fn order_event(&self, order: &str, name: &str) -> Option<&ordo_model::order::OrderEvent> {
        self.events.iter().find_map(|e| match &e.body {
            AgentEventBody::Order(KeyedEvent::Order { id, event })
                if id.as_str() == order && event.name() == name =>
            {
                Some(event)
            }
            _ => None,
        })
    }
}

/// Segment files in a journal directory.
pub fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

/// Whether a process group has a live (not zombie) member.
pub fn group_alive(pgid: u32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            let Some(end) = stat.rfind(')') else {
                return false;
            };
            let mut fields = stat[end + 1..].split_whitespace();
            let state = fields.next();
            let _ppid = fields.next();
            let pgrp = fields.next().and_then(|p| p.parse::<u32>().ok());
            state != Some("Z") && pgrp == Some(pgid)
        })
}

/// Waits up to `timeout_ms` for `f` to hold.
pub async fn eventually(timeout_ms: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// The process group of the order's job (found by its `ORDO_RUN` marker in `/proc`), waiting
/// up to `timeout_ms` for it to be spawned: the agent journals a start before the spawn, so
/// `ProcessingStarted` may arrive before the process exists.
pub async fn job_pgid(run_id: u128, order: &str, attempt: u32, timeout_ms: u64) -> Option<u32> {
    let order = OrderId::new(order).unwrap();
    let entry = format!(
        "ORDO_RUN={}",
        ordo_agent::survivors::marker(run_id, &order, attempt)
    );
    let find = || {
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find_map(|pid| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                environ
                    .split(|b| *b == 0)
                    .any(|e| e == entry.as_bytes())
                    .then_some(())?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
                let _state = fields.next();
                let _ppid = fields.next();
                fields.next()?.parse::<u32>().ok()
            })
    };
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        if let Some(pgid) = find() {
            return Some(pgid);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
