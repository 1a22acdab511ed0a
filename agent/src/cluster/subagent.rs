//! The agent as a subagent: runs the jobs its director sends ([`super::protocol`]) and
//! nothing else.
//!
//! A subagent keeps no journal and no orders: its director journals every start before it
//! sends it and every outcome it relays. It serves `wss://…/subagent` to the one director its
//! configuration names (`[subagent] director`, the URI SAN `ordo:agent:<director>`), and
//! `GET /health` and `GET /meta` (its `agentId`, for a registration's ping-back) to any
//! verified peer. Jobs run with the agent's runner (process groups,
//! `processes_max`, output caps) in `<data_dir>/jobs`, their return values in
//! `<data_dir>/return-values`, `$ORDO_WORK_DIR` at `<data_dir>/work/<order id>` (removed when
//! the job ends), and `$ORDO_SUBAGENT` naming the subagent.
//!
//! Every job belongs to the session that started it: when the session ends, or its director
//! has not been heard from for the subagent's share of the lease, its jobs are killed
//! (SIGKILL to their groups), so a job its director takes for lost and runs elsewhere is not
//! running here any more.

use super::protocol::{
    Dedicate, End, Executable as WireExecutable, FromSubagent, LEASE_TIMEOUT_MS_MIN,
    PROTOCOL_VERSION, REPORT_INTERVAL_MS, Report, SUBAGENT_WS_PATH, Start, ToSubagent,
    heartbeat_interval_ms, subagent_hold_ms,
};
use crate::config::Config;
use crate::runner::{Executable, JobSpec, KillHandle, KillMode, RunEvent, Runner};
use crate::{AgentError, tls};
use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ordo_model::ids::AgentId;
use ordo_net::PeerIdentity;
use ordo_net::frame::{self, Received, limit_upgrade};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What every session of the subagent shares.
struct Shared {
    config: Arc<Config>,
    director: AgentId,
    runner: Runner,
    /// Bumped by every new session: the older one ends and its jobs are killed.
    session: watch::Sender<u64>,
    processed: AtomicU64,
    /// The highest director term dedicated to (0: plain `Dedicate`s only), kept in
    /// `<data_dir>/director-term` ([`super::term_file`]) before it is served.
    term: tokio::sync::Mutex<u64>,
}

/// Runs the agent as a subagent of `director` on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    director: AgentId,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let tls = tls(&config)?;
    for dir in ["jobs", "return-values", "work"] {
        let path = config.data_dir.join(dir);
        std::fs::create_dir_all(&path).map_err(|source| AgentError::Io {
            context: format!("creating {}", path.display()),
            source,
        })?;
    }
    let limits = ordo_net::serve::ServeLimits {
        handshake_timeout_ms: config.limits.handshake_timeout_ms,
        idle_timeout_ms: config.limits.idle_timeout_ms,
        connections_max: config.limits.connections_max,
        unauthenticated_connections_max: config.limits.unauthenticated_connections_max,
    };
    let term = super::term_file::load(&config.data_dir).map_err(AgentError::Term)?;
    let shared = Arc::new(Shared {
        runner: Runner::new(config.limits.processes_max),
        config: Arc::new(config),
        director,
        session: watch::channel(0).0,
        processed: AtomicU64::new(0),
        term: tokio::sync::Mutex::new(term),
    });
    let local = listener.local_addr().map_err(|source| AgentError::Io {
        context: "reading the listening address".into(),
        source,
    })?;
    tracing::info!(
        subagent = %shared.config.agent_id,
        director = %shared.director,
        "subagent listening on https://{local} (mTLS)"
    );
    let app = Router::new()
        .route(SUBAGENT_WS_PATH, get(session))
        .route(crate::server::HEALTH_PATH, get(health))
        .route(crate::server::META_PATH, get(meta))
        .with_state(shared.clone());
    let stopping = shared.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("subagent stopping: its sessions end and their jobs are killed");
        stopping.session.send_modify(|g| *g += 1);
    };
    ordo_net::serve::serve_tls(listener, tls, app, shutdown, limits)
        .await
        .map_err(|e| AgentError::Server(e.to_string()))
}

/// `GET /health` of a subagent.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SubagentHealth {
    status: &'static str,
    subagent_id: String,
    director: String,
    running_processes: u64,
    processed: u64,
}

async fn health(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerIdentity>>,
) -> Response {
    if peer.is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "a client certificate is required\n",
        )
            .into_response();
    }
    axum::Json(SubagentHealth {
        status: "ok",
        subagent_id: shared.config.agent_id.to_string(),
        director: shared.director.to_string(),
        running_processes: shared.runner.running() as u64,
        processed: shared.processed.load(Ordering::Relaxed),
    })
    .into_response()
}

/// `GET /meta` of a subagent: who it is (a registration's ping-back checks `agentId`).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SubagentMeta {
    agent_id: String,
    director: String,
    version: &'static str,
    running_processes: u64,
    processed: u64,
}

async fn meta(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerIdentity>>,
) -> Response {
    if peer.is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "a client certificate is required\n",
        )
            .into_response();
    }
    axum::Json(SubagentMeta {
        agent_id: shared.config.agent_id.to_string(),
        director: shared.director.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        running_processes: shared.runner.running() as u64,
        processed: shared.processed.load(Ordering::Relaxed),
    })
    .into_response()
}

async fn session(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerIdentity>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let director = shared.director.as_str();
    if !peer
        .as_ref()
        .is_some_and(|Extension(p)| p.is_agent(director))
    {
        tracing::warn!(%remote, "subagent session refused: the client is not the director {director}");
        return (
            StatusCode::FORBIDDEN,
            format!(
                "only the director (certificate URI SAN ordo:agent:{director}) may open the subagent session\n"
            ),
        )
            .into_response();
    }
    let max = shared.config.limits.frame_bytes_max;
    limit_upgrade(upgrade, max)
        .on_upgrade(move |mut ws| async move {
            match serve(&mut ws, &shared).await {
                Ok(()) => tracing::info!(%remote, "director session ended"),
                Err(e) => tracing::warn!(%remote, "director session ended: {e}"),
            }
        })
        .into_response()
}

/// What a job task tells its session.
enum Note {
    Started {
        key: u64,
        pid: u32,
        kill: KillHandle,
    },
    Frame(FromSubagent),
    Ended {
        key: u64,
        end: End,
    },
}

struct Running {
    task: JoinHandle<()>,
    kill: Option<KillHandle>,
}

/// Kills every job of a session that ends (the task's drop kills the group).
struct Jobs(HashMap<u64, Running>);

impl Drop for Jobs {
    fn drop(&mut self) {
        for (_, job) in self.0.drain() {
            if let Some(kill) = &job.kill {
                kill.kill(KillMode::Kill);
            }
            job.task.abort();
        }
    }
}

async fn dedicate(ws: &mut WebSocket, shared: &Shared) -> Result<Dedicate, String> {
    let limits = &shared.config.limits;
    let max = limits.frame_bytes_max;
    let first = tokio::time::timeout(
        Duration::from_millis(limits.heartbeat_timeout_ms),
        frame::recv::<_, ToSubagent>(ws, max),
    )
    .await
    .map_err(|_| "no Dedicate in time".to_owned())?
    .map_err(|e| e.to_string())?;
    let refuse = |reason: String| reason;
    let (d, term) = match first {
        Some(ToSubagent::Dedicate(d)) => (d, 0),
        Some(ToSubagent::DedicateInTerm { dedicate, term }) => (dedicate, term),
        Some(_) => return Err(refuse("the first message must be Dedicate".into())),
        None => return Err("closed before Dedicate".into()),
    };
    if d.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not {PROTOCOL_VERSION}",
            d.protocol_version
        ));
    }
    if d.director != shared.director {
        return Err(format!(
            "this subagent's director is {}, not {}",
            shared.director, d.director
        ));
    }
    if d.subagent != shared.config.agent_id {
        return Err(format!(
            "this is subagent {}, not {}",
            shared.config.agent_id, d.subagent
        ));
    }
    if d.lease_timeout_ms < LEASE_TIMEOUT_MS_MIN {
        return Err(format!(
            "lease_timeout_ms {} is below {LEASE_TIMEOUT_MS_MIN}",
            d.lease_timeout_ms
        ));
    }
    // Held until the new term is kept: two directors dedicating at once are decided in turn.
    let mut highest = shared.term.lock().await;
    if term < *highest {
        return Err(format!(
            "the director's term {term} is older than term {}, which this subagent serves",
            *highest
        ));
    }
    if term > *highest {
        let dir = shared.config.data_dir.clone();
        tokio::task::spawn_blocking(move || super::term_file::store(&dir, term))
            .await
            .map_err(|e| format!("keeping term {term}: {e}"))?
            .map_err(|e| format!("cannot keep term {term} in the data directory: {e}"))?;
        *highest = term;
    }
    Ok(d)
}

async fn serve(ws: &mut WebSocket, shared: &Arc<Shared>) -> Result<(), String> {
    let max = shared.config.limits.frame_bytes_max;
    let d = match dedicate(ws, shared).await {
        Ok(d) => d,
        Err(reason) => {
            let _ = frame::send(
                ws,
                &FromSubagent::Refused {
                    reason: reason.clone(),
                },
                max,
            )
            .await;
            return Err(format!("refused: {reason}"));
        }
    };
    let mut generation = shared.session.subscribe();
    let mine = {
        let mut mine = 0;
        shared.session.send_modify(|g| {
            *g += 1;
            mine = *g;
        });
        mine
    };
    generation.borrow_and_update();
    frame::send(
        ws,
        &FromSubagent::Dedicated {
            subagent: shared.config.agent_id.clone(),
        },
        max,
    )
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!(director = %d.director, lease_timeout_ms = d.lease_timeout_ms, "dedicated to the director");
    send_report(ws, max).await?;
    let mut reported = Instant::now();
    let mut hold = Duration::from_millis(subagent_hold_ms(d.lease_timeout_ms));
    let mut tick = tokio::time::interval(Duration::from_millis(heartbeat_interval_ms(
        d.lease_timeout_ms,
    )));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (notes_tx, mut notes) = mpsc::channel::<Note>(256);
    let mut jobs = Jobs(HashMap::new());
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = generation.changed() => {
                if *generation.borrow_and_update() != mine {
                    return Err("a newer session of the director (or a stop) ends this one; its jobs are killed".into());
                }
            }
            received = frame::recv_any::<_, ToSubagent>(ws, max) => {
                last_heard = Instant::now();
                match received.map_err(|e| e.to_string())? {
                    Received::Frame(ToSubagent::Heartbeat) => {
                        frame::send(ws, &FromSubagent::Heartbeat, max).await.map_err(|e| e.to_string())?;
                        if reported.elapsed() >= Duration::from_millis(REPORT_INTERVAL_MS) {
                            send_report(ws, max).await?;
                            reported = Instant::now();
                        }
                    }
                    Received::Frame(ToSubagent::Start(start)) => {
                        let key = start.key;
                        if jobs.0.contains_key(&key) {
                            return Err(format!("job {key} started twice"));
                        }
                        let task = tokio::spawn(run_job(shared.clone(), *start, notes_tx.clone()));
                        jobs.0.insert(key, Running { task, kill: None });
                    }
                    Received::Frame(ToSubagent::Kill { key, immediately }) => {
                        if let Some(kill) = jobs.0.get(&key).and_then(|j| j.kill.as_ref()) {
                            kill.kill(if immediately { KillMode::Kill } else { KillMode::Term });
                        }
                    }
                    Received::Frame(ToSubagent::Dedicate(_) | ToSubagent::DedicateInTerm { .. }) => {
                        return Err("Dedicate in a dedicated session".into());
                    }
                    Received::Frame(ToSubagent::Lease { lease_timeout_ms }) => {
                        if lease_timeout_ms < LEASE_TIMEOUT_MS_MIN {
                            return Err(format!("lease_timeout_ms {lease_timeout_ms} is below {LEASE_TIMEOUT_MS_MIN}"));
                        }
                        tracing::info!(lease_timeout_ms, "the director changed the lease");
                        hold = Duration::from_millis(subagent_hold_ms(lease_timeout_ms));
                        tick = tokio::time::interval(Duration::from_millis(heartbeat_interval_ms(lease_timeout_ms)));
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        frame::send(ws, &FromSubagent::LeaseSet { lease_timeout_ms }, max).await.map_err(|e| e.to_string())?;
                    }
                    Received::Ping(_) | Received::Pong(_) => {}
                    Received::Closed => return Ok(()),
                }
            }
            Some(note) = notes.recv() => {
                let out = match note {
                    Note::Started { key, pid, kill } => {
                        if let Some(job) = jobs.0.get_mut(&key) {
                            job.kill = Some(kill);
                        }
                        FromSubagent::Started { key, pid }
                    }
                    Note::Frame(f) => f,
                    Note::Ended { key, end } => {
                        jobs.0.remove(&key);
                        shared.processed.fetch_add(1, Ordering::Relaxed);
                        FromSubagent::Ended { key, end }
                    }
                };
                frame::send(ws, &out, max).await.map_err(|e| e.to_string())?;
            }
            _ = tick.tick() => {
                if last_heard.elapsed() > hold {
                    let keys: Vec<u64> = jobs.0.keys().copied().collect();
                    tracing::warn!(jobs = keys.len(), "the director was not heard from within the lease: its jobs are killed");
                    drop(Jobs(std::mem::take(&mut jobs.0)));
                    for key in keys {
                        let _ = frame::send(ws, &FromSubagent::Ended { key, end: End::LeaseLost }, max).await;
                    }
                    return Err("lease lost".into());
                }
            }
        }
    }
}

/// Measures the host and tells the director.
async fn send_report(ws: &mut WebSocket, max: usize) -> Result<(), String> {
    let host = tokio::task::spawn_blocking(crate::meta::host)
        .await
        .map_err(|e| format!("measuring the host failed: {e}"))?;
    frame::send(ws, &FromSubagent::Report(Report::from(host)), max)
        .await
        .map_err(|e| e.to_string())
}

fn work_dir(config: &Config, order: &str) -> PathBuf {
    config.data_dir.join("work").join(order)
}

/// Runs one job and tells the session its start, output and end.
async fn run_job(shared: Arc<Shared>, start: Start, notes: mpsc::Sender<Note>) {
    let key = start.key;
    let config = &shared.config;
    let work = work_dir(config, start.order_id.as_str());
    let mut env: Vec<(String, String)> = start
        .env
        .into_iter()
        .filter(|(k, _)| k != "ORDO_WORK_DIR" && k != "ORDO_SUBAGENT")
        .collect();
    env.push(("ORDO_WORK_DIR".into(), work.display().to_string()));
    env.push(("ORDO_SUBAGENT".into(), config.agent_id.to_string()));
    let spec = JobSpec {
        executable: match start.executable {
            WireExecutable::Script(s) => Executable::Script(s),
            WireExecutable::Argv(a) => Executable::Argv(a),
        },
        env,
        work_dir: config.data_dir.join("jobs"),
        return_values_dir: Some(config.data_dir.join("return-values")),
        timeout_ms: start.timeout_ms,
        grace_timeout_ms: start.grace_timeout_ms,
        log_chunk_bytes_max: usize::try_from(start.log_chunk_bytes_max)
            .unwrap_or(usize::MAX)
            .clamp(1, config.limits.log_chunk_bytes_max),
        log_bytes_max: start.log_bytes_max,
        return_values_bytes_max: usize::try_from(start.return_values_bytes_max)
            .unwrap_or(usize::MAX),
        die_with_agent: true,
    };
    let (output_tx, mut output) = mpsc::channel(64);
    let job = match shared.runner.start(spec, output_tx).await {
        Ok(job) => job,
        Err(e) => {
            let _ = notes
                .send(Note::Ended {
                    key,
                    end: End::Error(e.to_string()),
                })
                .await;
            return;
        }
    };
    let pid = job.started().pid;
    if notes
        .send(Note::Started {
            key,
            pid,
            kill: job.kill_handle(),
        })
        .await
        .is_err()
    {
        return;
    }
    let forward = |event: RunEvent| match event {
        RunEvent::Stdout(chunk) => FromSubagent::Output {
            key,
            stderr: false,
            chunk,
        },
        RunEvent::Stderr(chunk) => FromSubagent::Output {
            key,
            stderr: true,
            chunk,
        },
        RunEvent::LogTruncated { log_bytes_max, .. } => {
            FromSubagent::OutputTruncated { key, log_bytes_max }
        }
    };
    let wait = job.wait();
    tokio::pin!(wait);
    let result = loop {
        tokio::select! {
            biased;
            Some(event) = output.recv() => {
                if notes.send(Note::Frame(forward(event))).await.is_err() {
                    return;
                }
            }
            result = &mut wait => break result,
        }
    };
    while let Some(event) = output.recv().await {
        if notes.send(Note::Frame(forward(event))).await.is_err() {
            return;
        }
    }
    if std::fs::symlink_metadata(&work).is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    let end = match result {
        Ok(t) => End::Terminated(t.into()),
        Err(e) => End::Error(e.to_string()),
    };
    let _ = notes.send(Note::Ended { key, end }).await;
}
