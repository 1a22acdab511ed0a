//! A controller and agents running inside the test process, from their library entry points
//! (`ordo_controller::run`, `ordo_agent::run`) rather than their executables, on 127.0.0.1,
//! with the certificates, tokens and configurations of a local installation
//! ([`ordo_cli::local`]) made once. Each [`InProcess::start`] gives them fresh data
//! directories, so one installation serves many short runs; the servers stop and start again
//! on the same ports, and every wait is bounded.

use crate::{Clients, listen_port};
use anyhow::{Context, Result, anyhow, bail};
use ordo_cli::local::{self, Local, Options};
use ordo_net::client::HttpsClient;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a server may take to stop.
const STOP_WAIT_MS: u64 = 15_000;
/// How long the controller may take to answer after a start.
const START_WAIT_MS: u64 = 30_000;
/// How many times a start is tried while the last run of the server still holds its
/// journal or port.
const START_TRIES_MAX: u32 = 50;

/// One server task and the way to stop it.
struct Task {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

impl Task {
    async fn stop(self, what: &str) -> Result<()> {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_millis(STOP_WAIT_MS), self.task).await {
            Err(_) => bail!("{what} did not stop within {STOP_WAIT_MS} ms"),
            Ok(Err(e)) => bail!("{what} panicked: {e}"),
            Ok(Ok(Err(e))) => bail!("{what} ended with an error: {e}"),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }
}

/// A controller and agents in this process.
pub struct InProcess {
    pub local: Local,
    pub api: HttpsClient,
    data: Option<PathBuf>,
    controller: Option<Task>,
    agents: BTreeMap<String, Option<Task>>,
}

impl InProcess {
    /// Sets up the installation in `dir` for agents `agent_ids`; nothing runs yet. Agent links
    /// reconnect within half a second, and an agent runs up to 256 processes at once.
    pub fn new(dir: &Path, agent_ids: &[&str]) -> Result<InProcess> {
        ordo_net::tls::install_crypto_provider();
        let ip = [127, 0, 0, 1].into();
        let mut agents = Vec::new();
        for id in agent_ids {
            agents.push((
                id.to_string(),
                format!("127.0.0.1:{}", listen_port(ip)?).parse()?,
            ));
        }
        let local = local::setup(
            dir,
            &Options {
                cluster_id: "test".into(),
                controller_listen: format!("127.0.0.1:{}", listen_port(ip)?).parse()?,
                agents,
                journal_fsync: false,
                cockpit_listen: None,
            },
        )?;
        local::edit_controller_config(&local.controller_config, |c| {
            c.agents.reconnect_min_ms = 50;
            c.agents.reconnect_max_ms = 500;
        })?;
        for (_, path, _) in &local.agent_configs {
            local::edit_agent_config(path, |a| a.limits.processes_max = 256)?;
        }
        let api = Clients::new(&local, 30_000)?.admin;
        Ok(InProcess {
            agents: agent_ids.iter().map(|a| (a.to_string(), None)).collect(),
            local,
            api,
            data: None,
            controller: None,
        })
    }

    /// `https://127.0.0.1:port/api/v1<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.local.controller_url)
    }

    /// The agent's `wss://` URL.
    pub fn agent_url(&self, id: &str) -> Result<String> {
        self.local
            .agent_configs
            .iter()
            .find(|(a, ..)| a == id)
            .map(|(_, _, url)| url.clone())
            .ok_or_else(|| anyhow!("no agent {id}"))
    }

    /// The agent's configuration, with its data directory in this run's.
    pub fn agent_config(&self, id: &str) -> Result<ordo_agent::Config> {
        let (_, path, _) = self
            .local
            .agent_configs
            .iter()
            .find(|(a, ..)| a == id)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        let mut config = ordo_agent::Config::load(path)?;
        config.data_dir = self.data_dir()?.join(format!("agent-{id}"));
        Ok(config)
    }

    fn data_dir(&self) -> Result<&Path> {
        self.data
            .as_deref()
            .ok_or_else(|| anyhow!("no run started"))
    }

    /// Starts the controller and every agent with their data directories under `data`.
    pub async fn start(&mut self, data: &Path) -> Result<()> {
        if self.controller.is_some() || self.agents.values().any(Option::is_some) {
            bail!("a run is still going");
        }
        self.data = Some(data.to_owned());
        self.start_controller().await?;
        let ids: Vec<String> = self.agents.keys().cloned().collect();
        for id in ids {
            self.start_agent(&id).await?;
        }
        Ok(())
    }

    /// Starts the controller and waits until its API answers.
    pub async fn start_controller(&mut self) -> Result<()> {
        let mut config = ordo_controller::config::Config::load(&self.local.controller_config)?;
        config.data_dir = self.data_dir()?.join("controller");
        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS);
        for _ in 0..START_TRIES_MAX {
            let (stop, stopped) = oneshot::channel::<()>();
            let run = ordo_controller::run(config.clone(), async move {
                let _ = stopped.await;
            });
            let mut task = tokio::spawn(async move { run.await.map_err(|e| e.to_string()) });
            let ended = loop {
                if self
                    .api
                    .get_json::<Json>(&self.url("/health"))
                    .await
                    .is_ok()
                {
                    self.controller = Some(Task { stop, task });
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = stop.send(());
                    bail!("the controller did not answer within {START_WAIT_MS} ms");
                }
                tokio::select! {
                    ended = &mut task => break ended,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            };
            // It ended at once: its last run may still hold the journal or the port.
            let ended = ended.map_err(|e| anyhow!("the controller panicked: {e}"))?;
            if Instant::now() > deadline {
                bail!("the controller does not start: {ended:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the controller did not start in {START_TRIES_MAX} tries")
    }

    /// Starts agent `id` (it waits for its port by itself).
    pub async fn start_agent(&mut self, id: &str) -> Result<()> {
        let config = self.agent_config(id)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let run = ordo_agent::run(config, async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move { run.await.map_err(|e| e.to_string()) });
        *self
            .agents
            .get_mut(id)
            .ok_or_else(|| anyhow!("no agent {id}"))? = Some(Task { stop, task });
        Ok(())
    }

    pub async fn stop_controller(&mut self) -> Result<()> {
        match self.controller.take() {
            Some(t) => t.stop("the controller").await,
            None => Ok(()),
        }
    }

    pub async fn stop_agent(&mut self, id: &str) -> Result<()> {
        let slot = self
            .agents
            .get_mut(id)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        match slot.take() {
            Some(t) => t.stop(&format!("agent {id}")).await,
            None => Ok(()),
        }
    }

    pub async fn restart_controller(&mut self) -> Result<()> {
        self.stop_controller().await?;
        self.start_controller()
            .await
            .context("restarting the controller")
    }

    pub async fn restart_agent(&mut self, id: &str) -> Result<()> {
        self.stop_agent(id).await?;
        self.start_agent(id).await
    }

    /// Stops the agents, then the controller; every one is stopped even when one fails.
    pub async fn stop(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        let ids: Vec<String> = self.agents.keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.stop_agent(&id).await {
                errors.push(format!("{e:#}"));
            }
        }
        if let Err(e) = self.stop_controller().await {
            errors.push(format!("{e:#}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }
}
