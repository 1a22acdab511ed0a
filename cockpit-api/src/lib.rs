//! The Ordo cockpit API: a stateless view of the controller's event stream (design §1).
//!
//! The cockpit writes no disk. At start it loads the controller's state and follows its
//! event stream ([`follow`]) into an in-memory [`view::View`]; the HTTP API ([`api`]) answers
//! reads from that view and forwards commands to the controller with a service token after
//! checking the caller's own token and role. It also serves the web UI at `/`, `/health`
//! (no token), `/metrics` ([`metrics`]) and its OpenAPI document at `/api/v1/openapi.json`.
//! When a controller goes away it reconnects to the next one of its list at the last event
//! id it applied: no gap, no duplicate. Of a pair of controllers it keeps which one is active
//! ([`cluster`]): commands go there, the event stream is read from there when it can be, and
//! `/health`, `/api/v1/overview` and `/api/v1/cluster` name it.
//!
//! [`run`] serves until `shutdown` completes; [`run_on`] does the same on a listener the
//! caller bound.

pub mod api;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod follow;
pub mod metrics;
mod ui;
pub mod upstream;
pub mod view;

use crate::api::App;
use crate::config::Config;
use crate::follow::{FollowTiming, Shared};
use crate::upstream::{Upstream, UpstreamLimits};
use ordo_net::tls::{CaBundle, ClientAuth, TlsMaterial};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the cockpit stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum CockpitError {
    #[error("TLS: {0}")]
    Tls(#[from] ordo_net::tls::TlsError),
    #[error("the controller client cannot be built: {0}")]
    Client(#[from] ordo_net::client::ClientError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A cockpit: its shared view and the way to the controllers, before it serves.
pub struct Cockpit {
    pub shared: Arc<Shared>,
    pub upstream: Arc<Upstream>,
    config: Config,
}

impl Cockpit {
    /// Builds the controller client and an empty view.
    pub fn new(config: Config) -> Result<Cockpit, CockpitError> {
        ordo_net::tls::install_crypto_provider();
        let ca = CaBundle::from_pem_file(&config.controller_ca)?;
        let tls = ordo_net::tls::client_config(&ca, None)?;
        let upstream = Upstream::new(
            config.controllers.clone(),
            tls,
            &config.controller_token,
            UpstreamLimits {
                connect_timeout_ms: config.follow.connect_timeout_ms,
                request_timeout_ms: config.follow.request_timeout_ms,
                body_bytes_max: config.limits.state_bytes_max,
                frame_bytes_max: config.limits.frame_bytes_max,
            },
        )?;
        let shared = Shared::new(
            config.limits.history_events_per_order_max,
            config.limits.stream_events_buffered_max,
        );
        Ok(Cockpit {
            shared: Arc::new(shared),
            upstream: Arc::new(upstream),
            config,
        })
    }

    /// The HTTP application over this cockpit's view.
    pub fn app(&self) -> App {
        let users: HashMap<String, (String, ordo_api::auth::Role)> = self
            .config
            .users
            .iter()
            .map(|u| (u.sha256.to_ascii_lowercase(), (u.name.clone(), u.role)))
            .collect();
        App {
            shared: self.shared.clone(),
            upstream: self.upstream.clone(),
            users: Arc::new(users),
            limits: Arc::new(self.config.limits.clone()),
            state_reads: Arc::new(tokio::sync::Semaphore::new(
                self.config.limits.state_reads_max,
            )),
            health_timeout_ms: self.config.follow.connect_timeout_ms,
        }
    }

    /// Follows the controllers until the returned future is dropped.
    pub fn follow(&self) -> impl Future<Output = ()> + Send + 'static {
        let f = &self.config.follow;
        follow::follow(
            self.shared.clone(),
            self.upstream.clone(),
            FollowTiming {
                reconnect_min_ms: f.reconnect_min_ms,
                reconnect_max_ms: f.reconnect_max_ms,
                ping_interval_ms: f.ping_interval_ms,
                silence_timeout_ms: f.silence_timeout_ms,
                backfill_events_max: self.config.limits.history_backfill_events_max,
                connect_timeout_ms: f.connect_timeout_ms,
            },
        )
    }

    /// Reads every controller's `/health` every `cluster_poll_ms`: which one is active.
    pub fn poll_cluster(&self) -> impl Future<Output = ()> + Send + 'static {
        let f = &self.config.follow;
        cluster::poll(
            self.shared.clone(),
            self.upstream.clone(),
            f.cluster_poll_ms,
            f.connect_timeout_ms,
        )
    }

    /// Reads the agents' link status every `agents_poll_ms`, for `/metrics`.
    fn poll_agents(&self) -> impl Future<Output = ()> + Send + 'static {
        let app = self.app();
        let every = Duration::from_millis(self.config.follow.agents_poll_ms);
        async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _ = api::read::link_status(&app).await;
            }
        }
    }
}

/// Runs the cockpit until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), CockpitError> {
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| CockpitError::Listen {
                addr: config.listen,
                source,
            })?;
    run_on(listener, config, shutdown).await
}

/// Runs the cockpit on `listener` (its `listen` setting is not used) until `shutdown`
/// completes.
pub async fn run_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CockpitError> {
    let addr = listener
        .local_addr()
        .map_err(|source| CockpitError::Listen {
            addr: config.listen,
            source,
        })?;
    let cockpit = Cockpit::new(config)?;
    let server_tls = match &cockpit.config.tls {
        Some(t) => {
            let material = TlsMaterial::from_pem_files(&t.certificate, &t.key)?;
            Some(ordo_net::tls::server_config(&material, ClientAuth::None)?)
        }
        None => None,
    };
    let limits = ordo_net::serve::ServeLimits {
        handshake_timeout_ms: cockpit.config.limits.handshake_timeout_ms,
        idle_timeout_ms: cockpit.config.limits.idle_timeout_ms,
        connections_max: cockpit.config.limits.connections_max,
        unauthenticated_connections_max: cockpit.config.limits.unauthenticated_connections_max,
    };
    let follower = tokio::spawn(cockpit.follow());
    let poller = tokio::spawn(cockpit.poll_agents());
    let cluster_poller = tokio::spawn(cockpit.poll_cluster());
    let router = api::router(cockpit.app());
    let served = match server_tls {
        Some(tls) => {
            tracing::info!("cockpit listening on https://{addr}");
            ordo_net::serve::serve_tls(listener, tls, router, shutdown, limits).await
        }
        None => {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "cockpit serving plain HTTP on {addr}, which is not a loopback address: tokens cross the network in clear text; configure [tls]"
                );
            }
            tracing::info!("cockpit listening on http://{addr}");
            ordo_net::serve::serve_plain(listener, router, shutdown, limits).await
        }
    };
    follower.abort();
    poller.abort();
    cluster_poller.abort();
    served.map_err(|source| CockpitError::Listen { addr, source })
}

/// What `ordo-cockpit --config PATH` (and `ordo cockpit`) do: log to stderr, run until Ctrl-C
/// or SIGTERM.
pub fn main(config: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    ordo_net::process::init_logging();
    let config = Config::load(config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        run(config, ordo_net::process::shutdown_signal())
            .await
            .context("the cockpit stopped")
    })
}
