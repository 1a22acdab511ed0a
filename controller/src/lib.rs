//! The Ordo controller: journal-backed state, agent links, commands and the event stream.
//!
//! [`run`] opens the journal, rebuilds the state (last snapshot + replay), starts the core
//! task ([`core`], the driver of the sans-IO [`machine`]), one link per deployed agent ([`link`]) and the HTTPS API ([`api`]).
//! Alone, its journal's durability commits; with a `[cluster]` section it is a node of the
//! replicated pair ([`cluster`]): raft commits, and the journal holds the committed events
//! (`event id = raft index << 16 | offset`, see [`record`]).

pub mod api;
pub mod cluster;
pub mod config;
pub mod core;
pub mod full;
pub mod link;
pub mod machine;
pub mod plan;
pub mod record;
pub mod state;
pub mod streamed;

use crate::config::Config;
use crate::core::Core;
use crate::link::{AgentLinkSet, LinkContext};
use crate::record::Record;
use crate::state::State;
use ordo_journal::Journal;
use ordo_model::time::TimeMs;
use ordo_net::tls::{CaBundle, ClientAuth, TlsMaterial};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Why the controller stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("journal: {0}")]
    Journal(#[from] ordo_journal::JournalError),
    #[error("recovery: {0}")]
    Recovery(String),
    #[error("TLS: {0}")]
    Tls(#[from] ordo_net::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the controller core stopped: {0}")]
    Core(String),
}

/// Now, as the controller stamps its events.
pub fn now() -> TimeMs {
    TimeMs(ordo_net::clock::now_ms())
}

/// The journal's record limit: an agent's event arrives in one frame of at most
/// `frame_bytes_max` bytes and is journaled with a little more around it; commands and
/// deployments whose events would not fit are refused (413) before they are journaled.
pub fn record_bytes_max(limits: &config::Limits) -> u32 {
    let bytes = (limits.frame_bytes_max as u64)
        .saturating_mul(2)
        .saturating_add(1 << 20);
    u32::try_from(bytes)
        .unwrap_or(u32::MAX / 2)
        .min(u32::MAX / 2)
}

/// Rebuilds the state from the journal: the last snapshot, then every later record.
pub fn recover(opened: &ordo_journal::Opened) -> Result<State, ControllerError> {
    fold(&opened.journal, opened.snapshot.as_ref())
}

/// Rebuilds the state from the journal as it is now: its newest snapshot, then every later
/// durable record (after a batch could not be written, say).
pub fn recover_state(journal: &Journal) -> Result<State, ControllerError> {
    fold(journal, journal.newest_snapshot()?.as_ref())
}

fn fold(
    journal: &Journal,
    snapshot: Option<&ordo_journal::Snapshot>,
) -> Result<State, ControllerError> {
    let mut state = match snapshot {
        Some(s) => postcard::from_bytes::<State>(&s.bytes).map_err(|e| {
            ControllerError::Recovery(format!(
                "the snapshot at event {} does not decode: {e}",
                s.id
            ))
        })?,
        None => State::new(),
    };
    let after = snapshot.map(|s| s.id).unwrap_or(0);
    let mut skipped = 0usize;
    for record in journal.read_after(after)? {
        let record = record?;
        let stored = Record::decode(record.id, &record.data)
            .map_err(|e| ControllerError::Recovery(e.to_string()))?;
        if state.apply(record.id, &stored).is_err() {
            skipped += 1;
        }
    }
    tracing::info!(
        last_event_id = state.last_event_id,
        orders = state.world.orders.len(),
        skipped,
        "state recovered"
    );
    Ok(state)
}

/// Runs the controller until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    ordo_net::tls::install_crypto_provider();
    let journal_dir = config.data_dir.join("journal");
    std::fs::create_dir_all(&journal_dir).map_err(|source| ControllerError::DataDir {
        path: journal_dir.clone(),
        source,
    })?;
    let mut jc = ordo_journal::Config::new(&journal_dir);
    jc.segment_bytes_max = config.limits.segment_bytes_max;
    jc.fsync = config.limits.journal_fsync;
    jc.record_bytes_max = record_bytes_max(&config.limits);
    // A corrupt journal is an error here: the controller never starts on it, and never
    // starts empty in its place (the message says the way out).
    let opened = Journal::open(jc)?;
    if let Some(t) = &opened.recovery.truncated {
        tracing::warn!("journal recovery: {t}");
    }
    let state = recover(&opened)?;
    let journal = opened.journal;

    let ca = CaBundle::from_pem_file(&config.tls.ca)?;
    let server = TlsMaterial::from_pem_files(&config.tls.certificate, &config.tls.key)?;
    let client =
        TlsMaterial::from_pem_files(&config.tls.client_certificate, &config.tls.client_key)?;
    let server_tls = ordo_net::tls::server_config(&server, ClientAuth::None)?;
    let client_tls = ordo_net::tls::client_config(&ca, Some(&client))?;

    let (core_tx, core_rx) = tokio::sync::mpsc::channel(65_536);
    let status = Arc::new(Mutex::new(Default::default()));
    let links = AgentLinkSet::new(LinkContext {
        cluster_id: config.cluster_id.clone(),
        controller_id: config.controller_id.clone(),
        tls: client_tls.clone(),
        frame_bytes_max: config.limits.frame_bytes_max,
        settings: config.agents.clone(),
        core: core_tx.clone(),
        status: status.clone(),
    });
    let (core, cluster, _transport) = match &config.cluster {
        None => (
            Core::new(
                journal.clone(),
                state,
                links,
                Box::new(now),
                config.limits.snapshot_events,
                config.retention.terminated_orders_ms,
                config.retention.events_ms,
            ),
            None,
            None,
        ),
        Some(c) => {
            let started = cluster::start::start(&config, c, &journal, &state).await?;
            let core = Core::follower(
                journal.clone(),
                state,
                links,
                Box::new(now),
                config.limits.snapshot_events,
                config.retention.terminated_orders_ms,
                config.retention.events_ms,
            )
            .with_replication(started.replicated);
            (core, Some(started.info), Some(started.transport))
        }
    };
    let core = core
        .with_order_limits(config.limits.order_limits())
        .with_plan(config.plan_settings())
        .with_event_limits(
            config.limits.event_bytes_max,
            record_bytes_max(&config.limits) as usize,
        );
    let generation = core.generation_watch();
    let mut core_task = tokio::spawn(core.run(core_rx));

    let api = api::Api {
        core: core_tx,
        journal,
        generation,
        links: status,
        tokens: Arc::new(api::token_map(&config.tokens)),
        orders_per_request_max: config.limits.orders_per_request_max,
        order_limits: config.limits.order_limits(),
        long_poll_ms_max: config.limits.long_poll_ms_max,
        event_bytes_max: config.limits.event_bytes_max,
        state_reads: Arc::new(tokio::sync::Semaphore::new(config.limits.state_reads_max)),
        state_reads_max: config.limits.state_reads_max,
        cluster_id: config.cluster_id.clone(),
        controller_id: config.controller_id.clone(),
        cluster,
        register: Some(Arc::new(api::agents::RegisterContext::new(client_tls))),
    };
    let router = api::router(api, config.limits.request_bytes_max);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ControllerError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ControllerError::Listen {
            addr: config.listen,
            source,
        })?;
    tracing::info!("controller API listening on https://{addr}");
    let limits = ordo_net::serve::ServeLimits {
        handshake_timeout_ms: config.limits.handshake_timeout_ms,
        idle_timeout_ms: config.limits.idle_timeout_ms,
        connections_max: config.limits.connections_max,
        unauthenticated_connections_max: config.limits.unauthenticated_connections_max,
    };
    let server = ordo_net::serve::serve_tls(listener, server_tls, router, shutdown, limits);
    tokio::select! {
        served = server => {
            served.map_err(|source| ControllerError::Listen { addr, source })?;
            core_task.abort();
            Ok(())
        }
        ended = &mut core_task => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ControllerError::Core(e)),
            Err(e) => Err(ControllerError::Core(e.to_string())),
        },
    }
}

/// What `ordo-controller --config PATH` (and `ordo controller`) do: log to stderr, run until
/// Ctrl-C or SIGTERM.
pub fn main(config: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    ordo_net::process::init_logging();
    let config = Config::load(config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run(config, ordo_net::process::shutdown_signal()))?;
    Ok(())
}
