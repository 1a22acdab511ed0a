//! A controller and agents of this build running as separate processes on 127.0.0.1, set up
//! with [`ordo_cli::local::setup`] in a directory of their own, and a client of the
//! controller API ([`ControllerClient`]) with an event follower.
//!
//! Each server is its own process so that its CPU time can be read from `/proc/<pid>/stat`
//! ([`crate::proc_cpu`]). Servers are stopped with SIGTERM (SIGKILL after 10 s) by
//! [`LocalOrdo::stop`], and killed when dropped. [`install`], [`start_agents`] and
//! [`wait_answering`] are shared with the controller pair ([`crate::local_pair`]).

use crate::controller_client::ControllerClient;
pub use crate::controller_client::{Event, Follower};
use crate::proc_cpu::{self, CpuTimes};
use anyhow::{Context, anyhow, bail};
use ordo_cli::local::{self, Local, Options};
use ordo_net::client::HttpsClientOptions;
pub use ordo_tests::process::{Binaries, Process};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time a server gets to answer after it was started.
pub const START_TIMEOUT_MS: u64 = 30_000;
/// The cluster id of the installations.
pub const CLUSTER_ID: &str = "bench";

/// What to start.
pub struct StartOptions {
    /// Where the installation's directory is made (on disk, so that fsync means something).
    pub parent_dir: PathBuf,
    pub agents: Vec<String>,
    pub journal_fsync: bool,
    /// `RUST_LOG` of the servers.
    pub log_filter: String,
    /// Lines added to every agent configuration's `[limits]` (e.g. `processes_max = 4`).
    pub agent_limits: Vec<String>,
    pub binaries: Binaries,
}

/// A running controller with its agents.
pub struct LocalOrdo {
    pub dir: tempfile::TempDir,
    pub local: Local,
    pub controller: Process,
    pub agents: Vec<(String, Process)>,
    /// The controller's API, with the admin token.
    pub client: ControllerClient,
    log_filter: String,
}

/// A fresh installation in a new directory under `o.parent_dir`: certificates, tokens, the
/// controller's configuration on a free port of 127.0.0.1, and the agents' (with
/// `o.agent_limits`) on theirs.
pub fn install(o: &StartOptions) -> anyhow::Result<(tempfile::TempDir, Local)> {
    std::fs::create_dir_all(&o.parent_dir)
        .with_context(|| format!("creating {}", o.parent_dir.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("ordo-bench-")
        .tempdir_in(&o.parent_dir)
        .with_context(|| format!("creating a directory in {}", o.parent_dir.display()))?;
    let mut agents = Vec::new();
    for id in &o.agents {
        agents.push((
            id.clone(),
            format!("127.0.0.1:{}", local::free_port()?).parse()?,
        ));
    }
    let local = local::setup(
        dir.path(),
        &Options {
            cluster_id: CLUSTER_ID.into(),
            controller_listen: format!("127.0.0.1:{}", local::free_port()?).parse()?,
            agents,
            journal_fsync: o.journal_fsync,
            cockpit_listen: None,
        },
    )
    .context("setting up the local installation")?;
    for (_, config, _) in &local.agent_configs {
        add_limits(config, &o.agent_limits)?;
    }
    Ok((dir, local))
}

/// The admin's client of the controller at `base_url` of installation `local`.
pub fn admin_client(local: &Local, base_url: &str) -> anyhow::Result<ControllerClient> {
    ControllerClient::new(
        &local.ca,
        base_url,
        &local.admin_token,
        HttpsClientOptions {
            connect_timeout_ms: 5000,
            request_timeout_ms: 120_000,
            body_bytes_max: 256 << 20,
            allow_plain_http: false,
        },
    )
}

/// Starts every agent of `local`, each logging to `agent-<id>.log` in `dir`.
pub fn start_agents(
    local: &Local,
    dir: &Path,
    binaries: &Binaries,
    log_filter: &str,
) -> anyhow::Result<Vec<(String, Process)>> {
    let mut out = Vec::new();
    for (id, config, _) in &local.agent_configs {
        let process = Process::start(
            &format!("agent {id}"),
            &binaries.agent,
            config,
            dir.join(format!("agent-{id}.log")),
            log_filter,
        )?;
        out.push((id.clone(), process));
    }
    Ok(out)
}

/// Waits until `client`'s controller answers `/health` (any role); an error when `process`
/// ends or `within` passes.
pub async fn wait_answering(
    client: &ControllerClient,
    process: &mut Process,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while client.health().await.is_err() {
        if !process.is_running() {
            bail!("the {} ended:\n{}", process.name, process.log_tail(4000));
        }
        if Instant::now() > deadline {
            bail!(
                "the {} did not answer in {} ms:\n{}",
                process.name,
                within.as_millis(),
                process.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// An `agent:` inventory document for agent `id` of `local`.
pub fn agent_yaml(local: &Local, id: &str) -> anyhow::Result<String> {
    let url = local
        .agent_configs
        .iter()
        .find(|(a, ..)| a == id)
        .map(|(_, _, url)| url)
        .ok_or_else(|| anyhow!("no agent {id}"))?;
    Ok(format!("agent: {id}\nurl: {url}\n"))
}

impl LocalOrdo {
    /// Sets up a fresh installation, starts the controller, waits until its API answers, and
    /// starts the agents.
    pub async fn start(o: &StartOptions) -> anyhow::Result<LocalOrdo> {
        let (dir, local) = install(o)?;
        LocalOrdo::start_installed(dir, local, o).await
    }

    /// Starts an installation made by [`install`] (and perhaps edited since): the controller,
    /// once its API answers, then the agents.
    pub async fn start_installed(
        dir: tempfile::TempDir,
        local: Local,
        o: &StartOptions,
    ) -> anyhow::Result<LocalOrdo> {
        let client = admin_client(&local, &local.controller_url)?;
        let mut controller = Process::start(
            "controller",
            &o.binaries.controller,
            &local.controller_config,
            dir.path().join("controller.log"),
            &o.log_filter,
        )?;
        wait_answering(
            &client,
            &mut controller,
            Duration::from_millis(START_TIMEOUT_MS),
        )
        .await?;
        let agents = start_agents(&local, dir.path(), &o.binaries, &o.log_filter)?;
        Ok(LocalOrdo {
            dir,
            local,
            controller,
            agents,
            client,
            log_filter: o.log_filter.clone(),
        })
    }

    /// Stops the controller (SIGTERM) and starts it again on the same configuration and
    /// journal; returns once its API answers.
    pub async fn restart_controller(&mut self, binaries: &Binaries) -> anyhow::Result<()> {
        self.controller.stop();
        self.controller = Process::start(
            "controller",
            &binaries.controller,
            &self.local.controller_config,
            self.dir.path().join("controller.log"),
            &self.log_filter,
        )?;
        wait_answering(
            &self.client,
            &mut self.controller,
            Duration::from_millis(START_TIMEOUT_MS),
        )
        .await
        .context("after a restart")
    }

    /// Kills an agent with SIGKILL and starts it again at once on the same configuration and
    /// journal (its jobs are lost; the controller's link reconnects by itself).
    pub fn kill9_and_restart_agent(&mut self, id: &str, binaries: &Binaries) -> anyhow::Result<()> {
        let config = self
            .local
            .agent_configs
            .iter()
            .find(|(a, _, _)| a == id)
            .map(|(_, config, _)| config.clone())
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        let (_, process) = self
            .agents
            .iter_mut()
            .find(|(a, _)| a == id)
            .ok_or_else(|| anyhow!("no agent {id}"))?;
        process.kill9();
        *process = Process::start(
            &format!("agent {id}"),
            &binaries.agent,
            &config,
            self.dir.path().join(format!("agent-{id}.log")),
            &self.log_filter,
        )?;
        Ok(())
    }

    pub fn agent(&self, id: &str) -> anyhow::Result<&Process> {
        self.agents
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, p)| p)
            .ok_or_else(|| anyhow!("no agent {id}"))
    }

    /// An `agent:` inventory document for one of the agents.
    pub fn agent_yaml(&self, id: &str) -> anyhow::Result<String> {
        agent_yaml(&self.local, id)
    }

    /// The end of every server's log.
    pub fn logs(&self) -> String {
        let mut out = format!("--- controller\n{}", self.controller.log_tail(3000));
        for (id, p) in &self.agents {
            out.push_str(&format!("\n--- agent {id}\n{}", p.log_tail(3000)));
        }
        out
    }

    /// Stops the agents, then the controller (SIGTERM); false when one needed SIGKILL.
    pub fn stop(&mut self) -> bool {
        let mut clean = true;
        for (_, p) in &mut self.agents {
            clean &= p.stop();
        }
        clean & self.controller.stop()
    }
}

/// Sets the `[limits]` keys of `lines` (`key = value`, TOML) in an agent configuration
/// written by [`local::setup`], through the agent's own configuration type.
fn add_limits(config: &Path, lines: &[String]) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let keys: toml::Table = toml::from_str(&lines.join("\n")).context("agent limits")?;
    let mut merged = Ok(());
    local::edit_agent_config(config, |c| {
        merged = (|| {
            let mut limits = toml::Table::try_from(&c.limits)?;
            limits.extend(keys);
            c.limits = limits.try_into()?;
            anyhow::Ok(())
        })();
    })?;
    merged.with_context(|| format!("agent limits {lines:?} in {}", config.display()))
}

/// A server's CPU times now.
pub fn cpu_of(p: &Process, ticks_per_s: f64) -> anyhow::Result<CpuTimes> {
    proc_cpu::of_process(p.pid(), ticks_per_s)
        .with_context(|| format!("CPU time of the {}", p.name))
}

/// Keeps the directory of an installation (it is removed when dropped otherwise) and says
/// where it is.
pub fn keep_dir(dir: &mut tempfile::TempDir) -> anyhow::Result<PathBuf> {
    let kept = std::mem::replace(dir, tempfile::tempdir()?);
    Ok(kept.keep())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    #[tokio::test]
    async fn process_orders_run_to_their_end_and_cpu_is_read() -> anyhow::Result<()> {
        let parent = tempfile::tempdir()?;
        let mut ordo = LocalOrdo::start(&StartOptions {
            parent_dir: parent.path().to_owned(),
            agents: vec!["a1".into()],
            journal_fsync: false,
            log_filter: "warn".into(),
            agent_limits: vec!["processes_max = 2".into()],
            binaries: Binaries::of_this_build(false)?,
        })
        .await?;
        let config = ordo_agent::config::Config::load(&ordo.local.agent_configs[0].1)?;
        assert_eq!(config.limits.processes_max, 2);
        ordo.client
            .deploy(&[
                ("agent.yaml", ordo.agent_yaml("a1")?),
                (
                    "w.yaml",
                    "workflow: w\njobs:\n  j: { agent: a1, command: [\"true\"], parallelism: 2 }\nsteps:\n  - run: j\n".into(),
                ),
            ])
            .await?;
        ordo.client
            .wait_connected("a1", Duration::from_secs(30))
            .await?;
        let mut follower = ordo
            .client
            .follow(ordo.client.last_event_id().await?)
            .await?;
        let ids = ["p-1", "p-2", "p-3"];
        let orders: Vec<Json> = ids
            .iter()
            .map(|id| json!({"id": id, "workflow": "w"}))
            .collect();
        ordo.client.add_orders(&orders).await?;
        let mut finished = std::collections::BTreeSet::new();
        let mut last_id = 0;
        for _ in 0..1000 {
            let e = follower.next(Duration::from_secs(30)).await?;
            assert!(e.id > last_id, "events in order");
            last_id = e.id;
            assert_ne!(e.kind, "Failed", "{e:?}");
            if e.kind == "Finished" {
                finished.insert(e.key.clone());
            }
            if finished.len() == ids.len() {
                break;
            }
        }
        assert_eq!(finished.len(), ids.len(), "{finished:?}\n{}", ordo.logs());
        let cpu = cpu_of(ordo.agent("a1")?, proc_cpu::ticks_per_s())?;
        assert!(cpu.own_ms() >= 0.0);
        assert!(ordo.stop(), "the servers stop on SIGTERM");
        Ok(())
    }
}
