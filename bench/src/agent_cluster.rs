//! An agent cluster of this build as separate processes: the director [`DIRECTOR`] (the
//! workload's agent, so [`crate::workload`]'s workflows run on the cluster) and subagents
//! `s1`, `s2`, … (the same agent binary with `[subagent] director = "bench"` in its
//! configuration), with a controller, started by [`start`]. The director's `agent:` document
//! ([`director_yaml`]) lists the subagents round-robin, each with the same `processLimit`.

use crate::controller_client::ControllerClient;
use crate::local_ordo::{self, LocalOrdo, StartOptions};
use crate::workload::AGENT;
use anyhow::{Context, anyhow, bail};
use ordo_cli::local::Local;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// The director's id.
pub const DIRECTOR: &str = AGENT;

/// The ids of `count` subagents: `s1`, `s2`, ….
pub fn subagent_ids(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("s{i}")).collect()
}

/// A fresh installation of a controller, the director and `subagents` (`o.agents` is
/// replaced by them), each started as its own process.
pub async fn start(o: &StartOptions, subagents: &[String]) -> anyhow::Result<LocalOrdo> {
    let mut agents = vec![DIRECTOR.to_owned()];
    agents.extend(subagents.iter().cloned());
    let o = StartOptions {
        agents,
        parent_dir: o.parent_dir.clone(),
        journal_fsync: o.journal_fsync,
        log_filter: o.log_filter.clone(),
        agent_limits: o.agent_limits.clone(),
        binaries: o.binaries.clone(),
    };
    let (dir, local) = local_ordo::install(&o)?;
    for id in subagents {
        let config = agent_config(&local, id)?;
        ordo_cli::local::edit_agent_config(&config, |c| {
            c.subagent = Some(ordo_agent::config::SubagentSection {
                director: DIRECTOR.to_owned(),
            });
        })
        .with_context(|| format!("making {id} a subagent"))?;
    }
    LocalOrdo::start_installed(dir, local, &o).await
}

fn agent_config(local: &Local, id: &str) -> anyhow::Result<std::path::PathBuf> {
    local
        .agent_configs
        .iter()
        .find(|(a, ..)| a == id)
        .map(|(_, config, _)| config.clone())
        .ok_or_else(|| anyhow!("no agent {id}"))
}

fn agent_url<'a>(local: &'a Local, id: &str) -> anyhow::Result<&'a str> {
    local
        .agent_configs
        .iter()
        .find(|(a, ..)| a == id)
        .map(|(_, _, url)| url.as_str())
        .ok_or_else(|| anyhow!("no agent {id}"))
}

/// The director's `agent:` document: `subagents` round-robin, each with `process_limit`,
/// and the lease `lease_timeout_ms`.
pub fn director_yaml(
    local: &Local,
    subagents: &[String],
    process_limit: u32,
    lease_timeout_ms: u64,
) -> anyhow::Result<String> {
    let mut text = format!(
        "agent: {DIRECTOR}\nurl: {}\nselection: round-robin\nleaseTimeout: {lease_timeout_ms}ms\nsubagents:\n",
        agent_url(local, DIRECTOR)?
    );
    for id in subagents {
        text.push_str(&format!(
            "  - id: {id}\n    url: {}\n    processLimit: {process_limit}\n",
            agent_url(local, id)?
        ));
    }
    Ok(text)
}

/// The director's subagents as `GET /agents` shows them: `(id, state)`.
pub async fn subagent_states(client: &ControllerClient) -> anyhow::Result<Vec<(String, String)>> {
    let agents: Json = client
        .http
        .get_json(&client.url("/agents"))
        .await
        .map_err(|e| anyhow!("listing agents: {e}"))?;
    let director = agents["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == DIRECTOR))
        .cloned()
        .unwrap_or_default();
    Ok(director["meta"]["subagents"]
        .as_array()
        .map(|subs| {
            subs.iter()
                .map(|s| {
                    (
                        s["id"].as_str().unwrap_or_default().to_owned(),
                        s["state"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Waits until the director shows every one of `ids` in `state` (`live`, `lost`).
pub async fn wait_subagents(
    client: &ControllerClient,
    ids: &[String],
    state: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let states = subagent_states(client).await.unwrap_or_default();
        let matching = states
            .iter()
            .filter(|(id, s)| ids.contains(id) && s == state)
            .count();
        if matching == ids.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "subagents {states:?}: {ids:?} not {state} within {} ms",
                within.as_millis()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
