//! Agent links: one task per deployed agent, connecting to it (the agent is the server).
//!
//! A link connects to `<agent url>/agent` with the controller's client certificate, couples
//! at the last agent event id the core journaled, hands the agent's events to the core,
//! sends the commands the core asks for, and sends `Release` once the core says the events
//! are durable. On any error it reconnects with exponential backoff; commands meant for an
//! agent while it is unreachable are dropped, because the core sends everything the state
//! still waits for again when the link couples. A session carries the core's link epoch from
//! its start: when the core rolls back its state or drops agent events (a full journal), the
//! epoch changes, the core ignores the old sessions' events and restarts every link.
//!
//! A director pair (an agent with `backupDirector`) is reached at two URLs: the link tries
//! `url`, then the backup director's, and couples with the one that is active (the passive
//! one refuses `Couple`, naming the active one); it waits its backoff only after both failed.
//! Both directors stream the same journal (the same run id and event ids), so the link
//! resumes at the last event the core journaled, whichever director it reaches.

use crate::config::AgentLinks;
use crate::core::{Input, LinkMsg, LinkStatus, Links, Resume};
use ordo_model::ids::AgentId;
use ordo_model::inventory::{Agent, ClusterSettings};
use ordo_model::priority::Priorities;
use ordo_model::wire::{AGENT_WS_PATH, Couple, FromAgent, PROTOCOL_VERSION, ToAgent};
use ordo_net::clock::now_ms;
use ordo_net::frame::{self, Received};
use rustls::ClientConfig;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Shared view of every link's status, for the API.
pub type StatusMap = Arc<Mutex<BTreeMap<AgentId, LinkStatus>>>;

/// What every link needs.
#[derive(Clone)]
pub struct LinkContext {
    pub cluster_id: String,
    pub controller_id: String,
    pub tls: Arc<ClientConfig>,
    pub frame_bytes_max: usize,
    pub settings: AgentLinks,
    pub core: mpsc::Sender<Input>,
    pub status: StatusMap,
}

struct Running {
    agent: Agent,
    settings: ClusterSettings,
    backup: Option<String>,
    priorities: Priorities,
    tx: mpsc::UnboundedSender<LinkMsg>,
    task: tokio::task::JoinHandle<()>,
}

/// The links of the running controller.
pub struct AgentLinkSet {
    ctx: LinkContext,
    links: BTreeMap<AgentId, Running>,
}

impl AgentLinkSet {
    pub fn new(ctx: LinkContext) -> AgentLinkSet {
        AgentLinkSet {
            ctx,
            links: BTreeMap::new(),
        }
    }
}

impl Drop for AgentLinkSet {
    fn drop(&mut self) {
        for link in self.links.values() {
            link.task.abort();
        }
    }
}

impl AgentLinkSet {
    fn start(
        &mut self,
        agent: &Agent,
        settings: &ClusterSettings,
        backup: Option<&str>,
        priorities: &Priorities,
    ) {
        if let Some(old) = self.links.remove(&agent.id) {
            old.task.abort();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_link(
            Object {
                agent: agent.clone(),
                settings: settings.clone(),
                priorities: priorities.clone(),
            },
            backup.map(str::to_owned),
            self.ctx.clone(),
            rx,
        ));
        self.links.insert(
            agent.id.clone(),
            Running {
                agent: agent.clone(),
                settings: settings.clone(),
                backup: backup.map(str::to_owned),
                priorities: priorities.clone(),
                tx,
                task,
            },
        );
    }
}

impl Links for AgentLinkSet {
    fn ensure(&mut self, agent: &Agent, settings: &ClusterSettings, backup: Option<&str>) {
        self.ensure_with_priorities(agent, settings, backup, &Priorities::new());
    }

    fn ensure_with_priorities(
        &mut self,
        agent: &Agent,
        settings: &ClusterSettings,
        backup: Option<&str>,
        priorities: &Priorities,
    ) {
        if let Some(r) = self.links.get(&agent.id)
            && r.agent == *agent
            && r.settings == *settings
            && r.backup.as_deref() == backup
            && r.priorities == *priorities
        {
            return;
        }
        self.start(agent, settings, backup, priorities);
    }

    fn send(&self, agent: &AgentId, msg: LinkMsg) {
        if let Some(r) = self.links.get(agent) {
            let _ = r.tx.send(msg);
        }
    }

    fn reconnect_all(&mut self) {
        let agents: Vec<(Agent, ClusterSettings, Option<String>, Priorities)> = self
            .links
            .values()
            .map(|r| {
                (
                    r.agent.clone(),
                    r.settings.clone(),
                    r.backup.clone(),
                    r.priorities.clone(),
                )
            })
            .collect();
        for (agent, settings, backup, priorities) in &agents {
            self.start(agent, settings, backup.as_deref(), priorities);
        }
    }

    fn forget(&mut self, agent: &AgentId) {
        if let Some(link) = self.links.remove(agent) {
            link.task.abort();
        }
        let mut map = self.ctx.status.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(agent);
    }

    fn stop_all(&mut self) {
        let mut map = self.ctx.status.lock().unwrap_or_else(|e| e.into_inner());
        for (id, link) in std::mem::take(&mut self.links) {
            link.task.abort();
            if let Some(s) = map.get_mut(&id) {
                s.connected = false;
                s.coupled_url = None;
                s.connected_since_ms = None;
                s.last_error = Some("this controller is not the active one".to_owned());
            }
        }
    }
}

fn set_status(ctx: &LinkContext, agent: &Agent, f: impl FnOnce(&mut LinkStatus)) {
    let mut map = ctx.status.lock().unwrap_or_else(|e| e.into_inner());
    let s = map.entry(agent.id.clone()).or_default();
    s.url = agent.url.clone();
    f(s);
}

/// What a link sends the agent after coupling: its inventory object, its cluster settings and
/// its subagents' priority expressions.
struct Object {
    agent: Agent,
    settings: ClusterSettings,
    priorities: Priorities,
}

impl Object {
    /// `ToAgent::Cluster`, or `ToAgent::ClusterWithPriorities` when there are expressions (an
    /// agent of an older build takes every other object).
    fn message(&self) -> ToAgent {
        let agent = Box::new(self.agent.clone());
        let settings = self.settings.clone();
        if self.priorities.is_empty() {
            ToAgent::Cluster { agent, settings }
        } else {
            ToAgent::ClusterWithPriorities {
                agent,
                settings,
                priorities: self.priorities.clone(),
            }
        }
    }
}

async fn run_link(
    object: Object,
    backup: Option<String>,
    ctx: LinkContext,
    mut rx: mpsc::UnboundedReceiver<LinkMsg>,
) {
    let agent = &object.agent;
    let mut backoff_ms = ctx.settings.reconnect_min_ms;
    let urls: Vec<String> = std::iter::once(agent.url.clone()).chain(backup).collect();
    let mut at = 0;
    loop {
        let url = &urls[at];
        let result = session(&object, url, &ctx, &mut rx).await;
        let error = match result {
            Ok(()) => "the agent closed the session".to_owned(),
            Err(e) => e,
        };
        tracing::warn!(agent = %agent.id, %url, "agent link down: {error}");
        set_status(&ctx, agent, |s| {
            s.connected = false;
            s.coupled_url = None;
            s.connected_since_ms = None;
            s.last_error = Some(error);
        });
        if ctx.core.is_closed() {
            return;
        }
        // The other director at once; both failed: the backoff.
        at = (at + 1) % urls.len();
        if at == 0 {
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(ctx.settings.reconnect_max_ms);
        }
        // Commands queued while disconnected are sent again from the state after coupling.
        while rx.try_recv().is_ok() {}
    }
}

async fn ask<T>(
    core: &mpsc::Sender<Input>,
    make: impl FnOnce(oneshot::Sender<T>) -> Input,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    core.send(make(tx))
        .await
        .map_err(|_| "the controller is stopping".to_owned())?;
    rx.await
        .map_err(|_| "the controller is stopping".to_owned())
}

async fn session(
    object: &Object,
    base: &str,
    ctx: &LinkContext,
    rx: &mut mpsc::UnboundedReceiver<LinkMsg>,
) -> Result<(), String> {
    let agent = &object.agent;
    let max = ctx.frame_bytes_max;
    let url = format!("{}{}", base.trim_end_matches('/'), AGENT_WS_PATH);
    let Resume {
        run_id,
        after,
        epoch,
        term,
    } = ask(&ctx.core, |reply| Input::Cursor {
        agent: agent.id.clone(),
        reply,
    })
    .await?;
    let mut ws = ordo_net::client::connect_ws(
        &url,
        ctx.tls.clone(),
        max,
        ctx.settings.heartbeat_timeout_ms,
    )
    .await
    .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let couple = ToAgent::Couple(Couple {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: ctx.cluster_id.clone(),
        controller_id: ctx.controller_id.clone(),
        term,
        agent_id: agent.id.clone(),
        agent_run_id: run_id,
        after,
    });
    frame::send(&mut ws, &couple, max)
        .await
        .map_err(|e| e.to_string())?;
    let timeout = Duration::from_millis(ctx.settings.heartbeat_timeout_ms);
    let coupled =
        match tokio::time::timeout(timeout, frame::recv::<_, FromAgent>(&mut ws, max)).await {
            Err(_) => return Err("no answer to Couple in time".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(None)) => return Err("the agent closed the session before coupling".into()),
            Ok(Ok(Some(FromAgent::Coupled(c)))) => c,
            Ok(Ok(Some(FromAgent::Refused { reason }))) => {
                return Err(format!("the agent refused to couple: {reason}"));
            }
            Ok(Ok(Some(other))) => return Err(format!("unexpected answer to Couple: {other:?}")),
        };
    if coupled.agent_id != agent.id {
        return Err(format!(
            "the agent at {url} is {}, not {}",
            coupled.agent_id, agent.id
        ));
    }
    let run_id = coupled.agent_run_id;
    set_status(ctx, agent, |s| {
        s.connected = true;
        s.coupled_url = Some(base.to_owned());
        s.connected_since_ms = Some(now_ms());
        s.last_error = None;
        s.meta = Some(coupled.meta);
        // A director sends its subagents' figures right after.
        s.subagent_health = Vec::new();
    });
    tracing::info!(agent = %agent.id, url = %base, "agent coupled");
    let resend = ask(&ctx.core, |reply| Input::Coupled {
        agent: agent.id.clone(),
        run_id,
        epoch,
        reply,
    })
    .await??;
    // The agent's object first: its subagents, if it directs a cluster, so that no order
    // sent below starts here instead (a changed object restarts the link: sent again).
    frame::send(&mut ws, &object.message(), max)
        .await
        .map_err(|e| e.to_string())?;
    let mut seq = 0u64;
    for command in resend {
        seq += 1;
        frame::send(&mut ws, &ToAgent::Command { seq, term, command }, max)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut ping = tokio::time::interval(Duration::from_millis(ctx.settings.heartbeat_interval_ms));
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            received = frame::recv_any::<_, FromAgent>(&mut ws, max) => {
                last_heard = tokio::time::Instant::now();
                match received.map_err(|e| e.to_string())? {
                    Received::Frame(FromAgent::Events(events)) => {
                        ctx.core
                            .send(Input::AgentEvents { agent: agent.id.clone(), run_id, epoch, events })
                            .await
                            .map_err(|_| "the controller is stopping".to_owned())?;
                    }
                    Received::Frame(FromAgent::Ack { .. }) => {}
                    Received::Frame(FromAgent::Rejected { seq, message }) => {
                        tracing::warn!(agent = %agent.id, seq, "agent rejected a command: {message}");
                    }
                    Received::Frame(FromAgent::Meta(meta)) => {
                        set_status(ctx, agent, |s| s.meta = Some(meta));
                    }
                    Received::Frame(FromAgent::SubagentHealth(health)) => {
                        set_status(ctx, agent, |s| s.subagent_health = health);
                    }
                    Received::Frame(other) => {
                        return Err(format!("unexpected message from the agent: {other:?}"));
                    }
                    Received::Ping(_) | Received::Pong(_) => {}
                    Received::Closed => return Ok(()),
                }
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                let out = match msg {
                    LinkMsg::Command(command) => {
                        seq += 1;
                        ToAgent::Command { seq, term, command }
                    }
                    LinkMsg::Release(until) => ToAgent::Release { until },
                    LinkMsg::SubagentRemoved { subagent, kill } => {
                        ToAgent::SubagentRemoved { subagent, kill }
                    }
                };
                frame::send(&mut ws, &out, max).await.map_err(|e| e.to_string())?;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > timeout {
                    return Err("the agent stopped answering (heartbeat timeout)".into());
                }
                frame::send_ping(&mut ws, Default::default()).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::inventory::Selection;

    /// The object goes as `Cluster` without priority expressions (an agent of an older build
    /// takes it) and as `ClusterWithPriorities` with them.
    #[test]
    fn the_object_carries_its_priority_expressions_only_when_it_has_some() {
        let mut object = Object {
            agent: Agent {
                id: AgentId::new("c").unwrap(),
                url: "wss://c:1".into(),
                certificate_name: None,
                subagents: Vec::new(),
                selection: Selection::Priority,
            },
            settings: ClusterSettings::default(),
            priorities: Priorities::new(),
        };
        assert!(matches!(object.message(), ToAgent::Cluster { .. }));
        let expr = ordo_model::expr::parse("10 - $processes").unwrap();
        object.priorities = [(AgentId::new("s1").unwrap(), expr)].into();
        match object.message() {
            ToAgent::ClusterWithPriorities { priorities, .. } => {
                assert_eq!(priorities, object.priorities)
            }
            other => panic!("{other:?}"),
        }
    }
}
