//! The Ordo agent: runs jobs and keeps every order event until the controller releases it.
//!
//! [`run`] starts an agent from its [`Config`]: it opens the agent's journal and recovers its
//! state ([`open`]), kills job processes that outlived a crash ([`survivors`]), starts the
//! [`executor`] (the one task that owns the state: orders, jobs, timers, the outbox; it
//! reports every job whose start is journaled without an outcome as lost, and removes work
//! directories of orders that are gone) and serves the controller session and `GET /meta`
//! over mTLS ([`server`], [`session`]) until `shutdown` completes.
//!
//! A job's start is journaled, durably, before its process is spawned (see [`executor`]): a
//! job that is not `restartable` never runs twice, even when its process ended before the
//! agent was killed.
//!
//! An agent whose inventory object lists subagents directs a cluster and runs its jobs there;
//! an agent whose configuration has a `[subagent]` section is a subagent ([`cluster`]); an
//! agent whose configuration has a `[pair]` section is a node of a director pair whose journal
//! is a raft log, and directs only while it leads the pair ([`pair`]).
//!
//! Modules: [`config`] (the TOML file), [`record`] (journal record format), [`state`] (the
//! fold of the journal and the snapshot format), [`runner`] (process groups, output,
//! timeouts), [`meta`] and [`status`] (metadata).

pub mod cluster;
pub mod config;
pub mod executor;
pub mod meta;
pub mod open;
pub mod pair;
pub mod record;
pub mod register;
pub mod runner;
pub mod server;
pub mod session;
pub mod state;
pub mod status;
pub mod survivors;

pub use config::Config;

use executor::{Channels, Executor};
use ordo_net::tls::{CaBundle, ClientAuth, TlsMaterial, server_config};
use session::Shared;
use status::Status;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How long a stopping agent waits for its sessions to close.
const SESSIONS_CLOSE_WAIT_MS: u64 = 3_000;

/// Why the agent cannot run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] ordo_net::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("the agent journal: {0}")]
    Journal(#[from] ordo_journal::JournalError),
    #[error("the agent journal is unusable: {0}")]
    Corrupt(String),
    #[error("the agent journal stopped; the agent stops with it: {0}")]
    JournalStopped(String),
    #[error("the HTTPS server stopped: {0}")]
    Server(String),
    #[error("an agent task failed: {0}")]
    Task(String),
    #[error("registration refused: {0}")]
    Registration(String),
    #[error("the director term this subagent keeps: {0}")]
    Term(String),
}

/// Milliseconds since the Unix epoch, now.
pub use ordo_net::clock::now_ms;

/// Runs the agent on `config.listen` until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let listener = bind(config.listen).await?;
    run_with_listener(config, listener, shutdown).await
}

/// How long a start waits for its port to become free.
const BIND_WAIT_MS: u64 = 5_000;

/// Binds `addr`, waiting up to [`BIND_WAIT_MS`] while it is in use: right after an agent was
/// killed, a job process it was forking may still hold a copy of its listening socket until
/// that process runs its program (the socket is close-on-exec), so a restart at once may find
/// the port taken for a moment.
async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, AgentError> {
    let step_ms = 50;
    for _ in 0..BIND_WAIT_MS / step_ms {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(step_ms)).await;
            }
            other => return other.map_err(|source| AgentError::Bind { addr, source }),
        }
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Bind { addr, source })
}

pub(crate) fn tls(config: &Config) -> Result<Arc<rustls::ServerConfig>, AgentError> {
    let material = TlsMaterial::from_pem_files(&config.tls.certificate, &config.tls.key)?;
    let ca = CaBundle::from_pem_file(&config.tls.controller_ca)?;
    Ok(server_config(&material, ClientAuth::Required(ca))?)
}

/// Runs the agent on an already bound listener (the tests and benchmarks bind port 0).
/// With `[register]`, it registers itself meanwhile and stops when the controller refuses
/// for good ([`register`]).
pub async fn run_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let Some(reg) = config.register.clone() else {
        return serve(config, listener, shutdown).await;
    };
    let agent_id = config.agent_id.to_string();
    let data_dir = config.data_dir.clone();
    let (refused_tx, refused_rx) = tokio::sync::oneshot::channel::<String>();
    let task = tokio::spawn(async move {
        if let Err(why) = register::run(&reg, &agent_id, &data_dir).await {
            let _ = refused_tx.send(why);
        }
    });
    let refusal = Arc::new(std::sync::Mutex::new(None));
    let seen = refusal.clone();
    let stop = async move {
        let refused = async {
            match refused_rx.await {
                Ok(why) => why,
                // Registered: only the shutdown stops the agent.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {}
            why = refused => {
                tracing::error!("{why}");
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            }
        }
    };
    let result = serve(config, listener, stop).await;
    task.abort();
    let refused = refusal.lock().unwrap_or_else(|e| e.into_inner()).take();
    match refused {
        Some(why) => Err(AgentError::Registration(why)),
        None => result,
    }
}

async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    if let Some(director) = config.subagent_of.clone() {
        return cluster::subagent::run(config, director, listener, shutdown).await;
    }
    if config.pair.is_some() {
        return pair::run(config, listener, shutdown).await;
    }
    let tls = tls(&config)?;
    let config = Arc::new(config);
    let open_config = config.clone();
    let recovered = tokio::task::spawn_blocking(move || open::open(&open_config))
        .await
        .map_err(|e| AgentError::Task(e.to_string()))??;
    let mut active = Active::start(config.clone(), recovered, executor::Sink::Journal, 0).await?;
    let app = server::router(active.shared.clone());
    let local = listener.local_addr().map_err(|source| AgentError::Io {
        context: "reading the listening address".into(),
        source,
    })?;
    tracing::info!(agent = %config.agent_id, "agent listening on https://{local} (mTLS)");
    let mut server_stop = active.stop_rx.clone();
    let mut server = tokio::spawn(ordo_net::serve::serve_tls(
        listener,
        tls,
        app,
        async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        },
        serve_limits(&config),
    ));
    let mut server_done = false;
    let outcome = tokio::select! {
        _ = shutdown => {
            tracing::info!("agent stopping");
            Ok(())
        }
        result = active.stopped() => result,
        result = &mut server => {
            server_done = true;
            match result {
                Ok(Ok(())) => Err(AgentError::Server("it ended".into())),
                Ok(Err(e)) => Err(AgentError::Server(e.to_string())),
                Err(e) => Err(AgentError::Server(e.to_string())),
            }
        }
    };
    active.stop_rx_signal();
    if !server_done {
        let _ = server.await;
    }
    let executor_result = active.finish().await;
    outcome.and(executor_result)
}

pub(crate) fn serve_limits(config: &Config) -> ordo_net::serve::ServeLimits {
    ordo_net::serve::ServeLimits {
        handshake_timeout_ms: config.limits.handshake_timeout_ms,
        idle_timeout_ms: config.limits.idle_timeout_ms,
        connections_max: config.limits.connections_max,
        unauthenticated_connections_max: config.limits.unauthenticated_connections_max,
    }
}

/// The agent while it directs its orders: the executor and what the controller sessions
/// share with it. A lone agent is active from its start; a node of a director pair once it
/// leads the pair ([`pair`]).
pub(crate) struct Active {
    pub shared: Arc<Shared>,
    pub stop_rx: watch::Receiver<bool>,
    stop_tx: watch::Sender<bool>,
    executor: Option<tokio::task::JoinHandle<Result<(), AgentError>>>,
    director: Arc<cluster::director::Director>,
}

impl Active {
    /// Starts directing from the recovered journal: kills survivors of a crash (a lone
    /// agent only: a director pair's jobs run on subagents, which kill them themselves),
    /// waits for the leases of jobs that were running on subagents, and starts the executor,
    /// which reports every start without an outcome as lost. `term`: the pair's raft term
    /// (0 for a lone agent), sent to the subagents.
    pub async fn start(
        config: Arc<Config>,
        recovered: open::Recovered,
        sink: executor::Sink,
        term: u64,
    ) -> Result<Active, AgentError> {
        let director = cluster::director::Director::new(config.clone())?;
        director.set_term(term);
        let work = config.data_dir.join("work");
        std::fs::create_dir_all(&work).map_err(|source| AgentError::Io {
            context: format!("creating the work directory {}", work.display()),
            source,
        })?;
        let found = if matches!(sink, executor::Sink::Journal) {
            let survivors_state = recovered.state.clone();
            tokio::task::spawn_blocking(move || survivors::kill_survivors(&survivors_state))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?
        } else {
            Vec::new()
        };
        tracing::info!(
            agent = %config.agent_id,
            run = %status::run_id_hex(recovered.state.run_id),
            last_id = recovered.state.last_id,
            snapshot = recovered.snapshot_id,
            replayed = recovered.replayed,
            orders = recovered.state.world.orders.len(),
            outbox_bytes = recovered.state.outbox.bytes,
            "agent journal recovered"
        );
        let status = Arc::new(Status::new(
            config.agent_id.to_string(),
            config.data_dir.clone(),
            recovered.state.run_id,
        ));
        status
            .outbox_bytes
            .store(recovered.state.outbox.bytes, Ordering::Relaxed);
        let (inputs_tx, inputs_rx) = mpsc::channel(1024);
        director.journal_leases(inputs_tx.clone(), recovered.state.lease_horizon);
        wait_for_leases(&recovered.state).await;
        let (generation_tx, generation_rx) = watch::channel(0);
        let (stop_tx, stop_rx) = watch::channel(false);
        let journal = recovered.journal.clone();
        let executor = Executor::new(
            config.clone(),
            recovered,
            Channels {
                inputs: inputs_rx,
                generation: generation_tx,
                status: status.clone(),
                director: director.clone(),
                sink,
            },
        );
        let executor = tokio::spawn(executor.run(found, stop_rx.clone()));
        let shared = Arc::new(Shared {
            config,
            journal,
            inputs: inputs_tx,
            generation: generation_rx,
            status,
            stop: stop_rx.clone(),
            sessions: AtomicUsize::new(0),
            director: director.clone(),
        });
        Ok(Active {
            shared,
            stop_rx,
            stop_tx,
            executor: Some(executor),
            director,
        })
    }

    /// Completes when the executor stops by itself (always an error).
    pub async fn stopped(&mut self) -> Result<(), AgentError> {
        let Some(executor) = self.executor.as_mut() else {
            return std::future::pending().await;
        };
        let result = executor.await;
        self.executor = None;
        match result {
            Ok(Ok(())) => Err(AgentError::Task("the executor stopped".into())),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(AgentError::Task(format!("the executor failed: {e}"))),
        }
    }

    /// Tells the executor, the sessions and the server to stop.
    pub fn stop_rx_signal(&self) {
        self.stop_tx.send_replace(true);
        self.director.stop();
    }

    /// Stops and waits for the executor and the sessions.
    pub async fn finish(mut self) -> Result<(), AgentError> {
        self.stop_rx_signal();
        let result = match self.executor.take() {
            None => Ok(()),
            Some(executor) => match executor.await {
                Ok(result) => result,
                Err(e) => Err(AgentError::Task(format!("the executor failed: {e}"))),
            },
        };
        for _ in 0..SESSIONS_CLOSE_WAIT_MS / 50 {
            if self.shared.sessions.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        result
    }
}

/// The longest a restarted director waits for the leases of its subagents' jobs.
const LEASE_WAIT_MS_MAX: i64 = 3_600_000;

/// A restarted director whose orders were processing on subagents waits until the journaled
/// lease horizon has passed: by then no subagent runs them, and recovery reports them lost.
async fn wait_for_leases(state: &state::AgentState) {
    let Some(horizon) = state.lease_horizon else {
        return;
    };
    let remote = ordo_model::order::lost_processes(&state.world)
        .iter()
        .filter(|e| match e {
            ordo_model::order::KeyedEvent::Order { id, .. } => !state.processes.contains_key(id),
            _ => false,
        })
        .count();
    let wait_ms = (horizon.0 - now_ms()).min(LEASE_WAIT_MS_MAX);
    if remote == 0 || wait_ms <= 0 {
        return;
    }
    tracing::warn!(
        orders = remote,
        wait_ms,
        "orders were processing on subagents: waiting until their leases have expired"
    );
    tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
}

/// What `ordo-agent --config PATH` (and `ordo agent`) do: log to stderr, run until Ctrl-C or
/// SIGTERM.
pub fn main(config: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    ordo_net::process::init_logging();
    let config = Config::load(config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        run(config, ordo_net::process::shutdown_signal())
            .await
            .context("the agent stopped")
    })
}
