//! One controller session on the agent's WebSocket (the protocol of [`ordo_model::wire`]).
//!
//! 1. The first frame must be `Couple`, within `heartbeat_timeout_ms`. The executor checks it
//!    (protocol version, agent id, the cluster id of the controller's certificate and of the
//!    agent's dedication, the term) and journals the dedication and a new term before the
//!    answer `Coupled` goes out; a refusal is answered `Refused { reason }` and closed.
//! 2. Events stream from the journal in id order: every `Event` record after the coupling's
//!    position, as it becomes durable, in `Events` frames of at most
//!    [`EVENTS_FRAME_BYTES_MAX`] bytes of records (or `frame_bytes_max / 2`, whichever is
//!    smaller; a larger single event goes alone).
//! 3. Commands go to the executor; their answers (`Ack` once journaled, or `Rejected`, also
//!    while the journal's file system is full) are sent in the order the commands came. `Release { until }` is capped at the last event sent in
//!    this session (or the coupling's position). `GetMeta` is answered with `Meta`; a director
//!    follows every `Coupled` and `Meta` with `SubagentHealth`, its subagents' figures.
//! 4. A ping goes out every `heartbeat_interval_ms`; nothing received for
//!    `heartbeat_timeout_ms` ends the session, as does a newer accepted `Couple`, a reset, the
//!    end of a full-journal episode in which commands were refused (the controller couples
//!    again and sends them again), or the agent's shutdown. An undecodable, unknown, oversized or out-of-place frame is answered
//!    `Refused { reason }`, logged, and the session is closed; nothing else is disturbed.

use crate::config::Config;
use crate::executor::{Coupling, Input};
use crate::status::Status;
use axum::extract::ws::WebSocket;
use futures_util::SinkExt;
use ordo_journal::{Follower, Journal, JournalError};
use ordo_model::wire::{Couple, Coupled, FromAgent, ToAgent};
use ordo_net::frame::{self, FrameError, Received, WsTransport};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Largest sum of event record bytes in one `Events` frame.
pub const EVENTS_FRAME_BYTES_MAX: usize = 1 << 20;

/// Time to send a closing `Refused` frame and the close handshake.
const CLOSE_TIMEOUT_MS: u64 = 2_000;

/// What sessions share with the rest of the agent.
pub struct Shared {
    pub config: Arc<Config>,
    pub journal: Journal,
    pub inputs: mpsc::Sender<Input>,
    pub generation: watch::Receiver<u64>,
    pub status: Arc<Status>,
    pub stop: watch::Receiver<bool>,
    /// Sessions open now.
    pub sessions: AtomicUsize,
    /// The agent's subagents, if it directs a cluster.
    pub director: Arc<crate::cluster::director::Director>,
}

/// Why a session ended.
enum End {
    /// The peer misbehaved: answer `Refused` and close.
    Refuse(String),
    /// The agent ends it (replaced, reset, stopping): close.
    Close(String),
    /// The connection is gone or failed.
    Lost(String),
}

struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a session on an upgraded WebSocket of a controller of cluster `peer_cluster`.
pub async fn run(mut ws: WebSocket, shared: Arc<Shared>, peer_cluster: String, remote: SocketAddr) {
    shared.sessions.fetch_add(1, Ordering::AcqRel);
    let _counted = Counted(&shared.sessions);
    let mut generation = None;
    let end = match serve(&mut ws, &shared, &peer_cluster, &mut generation).await {
        Ok(()) => End::Lost("the controller closed the session".into()),
        Err(end) => end,
    };
    let max = shared.config.limits.frame_bytes_max;
    let close = async {
        match &end {
            End::Refuse(reason) => {
                tracing::warn!(%remote, cluster = %peer_cluster, "controller session refused: {reason}");
                let refused = FromAgent::Refused {
                    reason: reason.clone(),
                };
                let _ = frame::send(&mut ws, &refused, max).await;
                let _ = ws.close().await;
            }
            End::Close(reason) => {
                tracing::info!(%remote, "controller session closed: {reason}");
                let _ = ws.close().await;
            }
            End::Lost(reason) => tracing::warn!(%remote, "controller session lost: {reason}"),
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(CLOSE_TIMEOUT_MS), close).await;
    if let Some(generation) = generation {
        let _ = shared.inputs.send(Input::SessionEnded { generation }).await;
    }
}

fn frame_end(e: FrameError) -> End {
    match e {
        FrameError::Transport(reason) => End::Lost(reason),
        other => End::Refuse(format!("bad frame: {other}")),
    }
}

async fn ask<T>(shared: &Shared, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> Result<T, End> {
    let (tx, rx) = oneshot::channel();
    let stopping = || End::Close("the agent is stopping".into());
    shared.inputs.send(make(tx)).await.map_err(|_| stopping())?;
    rx.await.map_err(|_| stopping())
}

async fn meta(shared: &Shared) -> Result<ordo_model::wire::AgentMeta, End> {
    let status = shared.status.clone();
    let mut meta = tokio::task::spawn_blocking(move || status.meta())
        .await
        .map_err(|e| End::Close(format!("gathering metadata failed: {e}")))?;
    meta.subagents = shared.director.meta();
    Ok(meta)
}

async fn couple(ws: &mut WebSocket, shared: &Shared) -> Result<Couple, End> {
    let limits = &shared.config.limits;
    let first = tokio::time::timeout(
        Duration::from_millis(limits.heartbeat_timeout_ms),
        frame::recv::<_, ToAgent>(ws, limits.frame_bytes_max),
    )
    .await
    .map_err(|_| {
        End::Refuse(format!(
            "no Couple within heartbeat_timeout_ms = {} ms",
            limits.heartbeat_timeout_ms
        ))
    })?;
    match first.map_err(frame_end)? {
        Some(ToAgent::Couple(couple)) => Ok(couple),
        Some(_) => Err(End::Refuse("the first message must be Couple".into())),
        None => Err(End::Lost("closed before coupling".into())),
    }
}

async fn serve(
    ws: &mut WebSocket,
    shared: &Arc<Shared>,
    peer_cluster: &str,
    generation: &mut Option<u64>,
) -> Result<(), End> {
    let limits = &shared.config.limits;
    let max = limits.frame_bytes_max;
    let couple = couple(ws, shared).await?;
    let coupling: Coupling = ask(shared, |reply| Input::Couple {
        couple,
        peer_cluster: peer_cluster.to_owned(),
        reply,
    })
    .await?
    .map_err(End::Refuse)?;
    *generation = Some(coupling.generation);
    let coupled = FromAgent::Coupled(Coupled {
        agent_id: shared.config.agent_id.clone(),
        agent_run_id: coupling.run_id,
        first_event_id: coupling.first_event_id,
        last_event_id: coupling.last_event_id,
        attached_orders: coupling.attached_orders.clone(),
        meta: meta(shared).await?,
    });
    let mut link = Link {
        shared: shared.clone(),
        coupling,
        sent_up_to: 0,
        send_timeout: Duration::from_millis(limits.heartbeat_timeout_ms),
    };
    link.sent_up_to = link.coupling.stream_after;
    link.send(ws, &coupled).await?;
    link.send_subagent_health(ws).await?;
    let mut follower = shared.journal.follow(link.coupling.stream_after);
    let mut replies: VecDeque<(bool, oneshot::Receiver<FromAgent>)> = VecDeque::new();
    let mut generation_rx = shared.generation.clone();
    let mut stop = shared.stop.clone();
    let heartbeat_timeout = Duration::from_millis(limits.heartbeat_timeout_ms);
    let mut ping = tokio::time::interval(Duration::from_millis(limits.heartbeat_interval_ms));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut new_run = false;
    let mut subagents_sent = shared.director.version();
    loop {
        tokio::select! {
            _ = stop.changed() => return Err(End::Close("the agent is stopping".into())),
            _ = generation_rx.changed() => {
                if *generation_rx.borrow_and_update() != link.coupling.generation {
                    return Err(End::Close(
                        "a newer Couple replaced this session, or the agent asks to be coupled \
                         again (it refused commands while its journal was full)"
                            .into(),
                    ));
                }
            }
            received = frame::recv_any::<_, ToAgent>(ws, max) => {
                last_heard = Instant::now();
                match received.map_err(frame_end)? {
                    Received::Frame(message) => {
                        if let Some(reply) = link.on_message(ws, message).await? {
                            replies.push_back(reply);
                        }
                    }
                    Received::Ping(_) | Received::Pong(_) => {}
                    Received::Closed => return Ok(()),
                }
            }
            answer = async {
                match replies.front_mut() {
                    Some((_, rx)) => rx.await,
                    None => std::future::pending().await,
                }
            } => {
                let reset = replies.pop_front().is_some_and(|(reset, _)| reset);
                let answer = answer.map_err(|_| End::Close("the agent is stopping".into()))?;
                let acked = matches!(answer, FromAgent::Ack { .. });
                link.send(ws, &answer).await?;
                if reset && acked {
                    return Err(End::Close("the agent was reset: a new run began".into()));
                }
            }
            record = follower.next(), if !new_run => {
                let Some(record) = record else {
                    return Err(End::Close("the journal closed".into()));
                };
                new_run = link.stream(ws, &mut follower, record).await?;
                // A reset this session asked for ends it once its answer is sent.
                if new_run && !replies.iter().any(|(reset, _)| *reset) {
                    return Err(End::Close("the agent was reset: a new run began".into()));
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > heartbeat_timeout {
                    return Err(End::Lost(format!(
                        "nothing received for heartbeat_timeout_ms = {} ms",
                        limits.heartbeat_timeout_ms
                    )));
                }
                tokio::time::timeout(link.send_timeout, frame::send_ping(ws, Default::default()))
                    .await
                    .map_err(|_| End::Lost("sending a ping timed out".into()))?
                    .map_err(frame_end)?;
                // A director tells the controller when its subagents changed (live, lost,
                // jobs run), at most once a heartbeat.
                let version = shared.director.version();
                if version != subagents_sent {
                    subagents_sent = version;
                    let meta = meta(shared).await?;
                    link.send(ws, &FromAgent::Meta(meta)).await?;
                    link.send_subagent_health(ws).await?;
                }
            }
        }
    }
}

/// The coupled part of a session.
struct Link {
    shared: Arc<Shared>,
    coupling: Coupling,
    /// The last event id this session has sent (or the coupling's position).
    sent_up_to: u64,
    send_timeout: Duration,
}

impl Link {
    async fn send(&self, ws: &mut WebSocket, message: &FromAgent) -> Result<(), End> {
        let max = self.shared.config.limits.frame_bytes_max;
        tokio::time::timeout(self.send_timeout, frame::send(ws, message, max))
            .await
            .map_err(|_| End::Lost("sending a frame timed out".into()))?
            .map_err(|e| match e {
                FrameError::Transport(reason) => End::Lost(reason),
                other => End::Close(format!("cannot send a frame: {other}")),
            })
    }

    /// A director follows its metadata with its subagents' figures (an agent that directs no
    /// cluster sends nothing, so it speaks to controllers that do not know the message).
    async fn send_subagent_health(&self, ws: &mut WebSocket) -> Result<(), End> {
        if !self.shared.director.is_cluster() {
            return Ok(());
        }
        let health = self.shared.director.health();
        self.send(ws, &FromAgent::SubagentHealth(health)).await
    }

    /// The agent's object (`ToAgent::Cluster`, or `ClusterWithPriorities` with its subagents'
    /// priority expressions) for the director; in a pair, journaled first, so that the passive
    /// nodes keep it for a takeover.
    async fn cluster(
        &self,
        agent: Box<ordo_model::inventory::Agent>,
        settings: ordo_model::inventory::ClusterSettings,
        priorities: ordo_model::priority::Priorities,
    ) {
        if self.shared.config.pair.is_some() {
            let record = crate::record::Record::AgentObject {
                agent: agent.clone(),
                settings: settings.clone(),
                priorities: priorities.clone(),
            };
            let _ = self.shared.inputs.send(Input::Membership(record)).await;
        }
        self.shared
            .director
            .set_cluster_with_priorities(*agent, settings, priorities);
    }

    /// Handles a frame; a command's pending answer (and whether it is a reset) is returned.
    async fn on_message(
        &mut self,
        ws: &mut WebSocket,
        message: ToAgent,
    ) -> Result<Option<(bool, oneshot::Receiver<FromAgent>)>, End> {
        let inputs = &self.shared.inputs;
        let stopping = |_| End::Close("the agent is stopping".into());
        match message {
            ToAgent::Couple(_) => Err(End::Refuse("this session is coupled already".into())),
            ToAgent::Command { seq, term, command } => {
                let (reply, rx) = oneshot::channel();
                inputs
                    .send(Input::Command {
                        seq,
                        term,
                        command,
                        reply,
                    })
                    .await
                    .map_err(stopping)?;
                Ok(Some((false, rx)))
            }
            ToAgent::Reset { seq, term } => {
                let (reply, rx) = oneshot::channel();
                inputs
                    .send(Input::Reset { seq, term, reply })
                    .await
                    .map_err(stopping)?;
                Ok(Some((true, rx)))
            }
            ToAgent::Release { until } => {
                if until > self.sent_up_to {
                    tracing::warn!(
                        until,
                        sent = self.sent_up_to,
                        "the controller releases events it was not sent; capped"
                    );
                }
                let until = until.min(self.sent_up_to);
                inputs
                    .send(Input::Release { until })
                    .await
                    .map_err(stopping)?;
                Ok(None)
            }
            ToAgent::Cluster { agent, settings } => {
                self.cluster(agent, settings, Default::default()).await;
                Ok(None)
            }
            ToAgent::ClusterWithPriorities {
                agent,
                settings,
                priorities,
            } => {
                self.cluster(agent, settings, priorities).await;
                Ok(None)
            }
            ToAgent::SubagentRemoved { subagent, kill } => {
                self.shared.director.remove_subagent(&subagent, kill);
                Ok(None)
            }
            ToAgent::GetMeta => {
                let meta = meta(&self.shared).await?;
                self.send(ws, &FromAgent::Meta(meta)).await?;
                self.send_subagent_health(ws).await?;
                Ok(None)
            }
        }
    }

    /// Sends `first` and the records right behind it that are durable already, as events;
    /// `true` when a record began a new run (a reset): nothing after it is sent.
    async fn stream(
        &mut self,
        ws: &mut WebSocket,
        follower: &mut Follower,
        first: Result<ordo_journal::Record, JournalError>,
    ) -> Result<bool, End> {
        let max = self.shared.config.limits.frame_bytes_max;
        let budget = EVENTS_FRAME_BYTES_MAX.min(max / 2);
        let mut frame = EventsFrame::new();
        let mut reset = self.take(first, &mut frame)?;
        while !reset
            && frame.body_bytes() < budget
            && follower.position() < self.shared.journal.last_id()
        {
            match follower.next().await {
                Some(record) => reset = self.take(record, &mut frame)?,
                None => break,
            }
        }
        if let Some(last) = frame.last_id {
            let bytes = frame.finish();
            if bytes.len() > max {
                return Err(End::Close(format!(
                    "an event frame of {} bytes exceeds frame_bytes_max = {max}",
                    bytes.len()
                )));
            }
            self.sent_up_to = last;
            tokio::time::timeout(self.send_timeout, ws.send_binary(bytes.into()))
                .await
                .map_err(|_| End::Lost("sending a frame timed out".into()))?
                .map_err(frame_end)?;
        }
        Ok(reset)
    }

    /// Adds an event record to the frame; `true` when the record starts a new run.
    fn take(
        &self,
        record: Result<ordo_journal::Record, JournalError>,
        frame: &mut EventsFrame,
    ) -> Result<bool, End> {
        let record = record.map_err(|e| match e {
            JournalError::Released { .. } => End::Refuse(format!(
                "the events the controller asks for are gone: {e}; couple with a later position"
            )),
            other => End::Close(format!("reading the journal failed: {other}")),
        })?;
        match record.data.first() {
            Some(&EVENT_TAG) => {
                frame.push(record.id, &record.data);
                Ok(false)
            }
            Some(&CREATED_TAG) => Ok(record.id > self.coupling.run_start),
            Some(_) => Ok(false),
            None => Err(End::Close(format!("journal record {} is empty", record.id))),
        }
    }
}

/// postcard variant index of `Record::Created`.
const CREATED_TAG: u8 = 0;
/// postcard variant index of `Record::Event`.
const EVENT_TAG: u8 = 4;
/// postcard variant index of `FromAgent::Events`.
const EVENTS_TAG: u8 = 4;

/// A `FromAgent::Events` frame built from journal records without decoding them.
///
/// postcard writes an enum as the varint of its variant index followed by its fields, a
/// sequence as the varint of its length followed by its elements, a struct as its fields
/// in order, and `TimeMs` as its `i64`. So `Record::Event { ts, body }` is
/// `[EVENT_TAG] ts body`, `AgentEvent { id, ts, body }` is `varint(id) ts body`, and
/// `FromAgent::Events(events)` is `[EVENTS_TAG] varint(events.len())` and the events: an
/// event record becomes an event by replacing its tag with its id.
struct EventsFrame {
    count: u64,
    body: Vec<u8>,
    last_id: Option<u64>,
}

impl EventsFrame {
    fn new() -> EventsFrame {
        EventsFrame {
            count: 0,
            body: Vec::new(),
            last_id: None,
        }
    }

    fn body_bytes(&self) -> usize {
        self.body.len()
    }

    /// Adds the event record `data` (which starts with [`EVENT_TAG`]) with its id.
    fn push(&mut self, id: u64, data: &[u8]) {
        push_varint(&mut self.body, id);
        self.body.extend_from_slice(&data[1..]);
        self.count += 1;
        self.last_id = Some(id);
    }

    fn finish(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.body.len() + 11);
        bytes.push(EVENTS_TAG);
        push_varint(&mut bytes, self.count);
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// postcard's varint: 7 bits at a time, least significant first, high bit = more follows.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use ordo_model::ids::OrderId;
    use ordo_model::order::{KeyedEvent, OrderEvent};
    use ordo_model::time::TimeMs;
    use ordo_model::wire::AgentEvent;
    use ordo_model::wire::{AgentEventBody, Stream};

    #[test]
    fn tags_match_the_enums() {
        let created = Record::Created {
            format: 1,
            agent_id: ordo_model::ids::AgentId::new("a").unwrap(),
            run_id: 1,
        };
        assert_eq!(created.encode().unwrap()[0], CREATED_TAG);
        let event = Record::Event {
            ts: TimeMs(1),
            body: AgentEventBody::OutputTruncated {
                order_id: OrderId::new("o").unwrap(),
                cap_bytes: 1,
            },
        };
        assert_eq!(event.encode().unwrap()[0], EVENT_TAG);
        let frame = postcard::to_allocvec(&FromAgent::Events(Vec::new())).unwrap();
        assert_eq!(frame, [EVENTS_TAG, 0]);
    }

    #[test]
    fn built_frames_decode_as_the_events() {
        let order = OrderId::new("o1").unwrap();
        let bodies = [
            AgentEventBody::Order(KeyedEvent::order(
                &order,
                OrderEvent::ProcessingStarted {
                    at: TimeMs(-5),
                    pgid: 4242,
                },
            )),
            AgentEventBody::Output {
                order_id: order.clone(),
                stream: Stream::Stdout,
                chunk: vec![7; 300],
            },
            AgentEventBody::OutputTruncated {
                order_id: order,
                cap_bytes: u64::MAX,
            },
        ];
        let ids = [1u64, 127, 128, 300, u64::MAX - 1];
        let mut frame = EventsFrame::new();
        let mut expected = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let body = bodies[i % bodies.len()].clone();
            let ts = TimeMs(1_790_000_000_000 + i as i64);
            let data = Record::Event {
                ts,
                body: body.clone(),
            }
            .encode()
            .unwrap();
            frame.push(*id, &data);
            expected.push(AgentEvent { id: *id, ts, body });
        }
        let bytes = frame.finish();
        assert_eq!(
            bytes,
            postcard::to_allocvec(&FromAgent::Events(expected.clone())).unwrap()
        );
        let decoded: FromAgent = frame::decode(&bytes, 1 << 20).unwrap();
        assert_eq!(decoded, FromAgent::Events(expected));
    }
}
