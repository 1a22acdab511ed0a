//! Fencing seen from an agent: a `Couple` at a given term, as a controller of the cluster
//! would send it, and the agent's refusal.

use super::{CLUSTER_ID, Pair};
use anyhow::{Result, anyhow, bail};
use std::time::Duration;

/// Time to connect to an agent and hear its answer to a `Couple`.
const PROBE_TIMEOUT_MS: u64 = 10_000;

impl Pair {
    /// Sends agent `agent` a `Couple` at `term`, as a controller of the cluster would (with
    /// the controllers' client certificate), and returns its refusal. An agent that couples
    /// is an error: it would have taken commands of that term.
    pub async fn couple_refusal(&self, agent: &str, term: u64) -> Result<String> {
        use ordo_model::wire::{AGENT_WS_PATH, Couple, FromAgent, PROTOCOL_VERSION, ToAgent};
        let certs = self.local.dir.join("certs");
        let ca = ordo_net::tls::CaBundle::from_pem_file(&self.local.ca)?;
        let material = ordo_net::tls::TlsMaterial::from_pem_files(
            &certs.join("controller-client.pem"),
            &certs.join("controller-client.key"),
        )?;
        let tls = ordo_net::tls::client_config(&ca, Some(&material))?;
        let frame_bytes_max = 16 << 20;
        let url = format!("{}{AGENT_WS_PATH}", self.agent_url(agent)?);
        let mut ws =
            ordo_net::client::connect_ws(&url, tls, frame_bytes_max, PROBE_TIMEOUT_MS).await?;
        let couple = ToAgent::Couple(Couple {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: CLUSTER_ID.to_owned(),
            controller_id: "fencing-probe".to_owned(),
            term,
            agent_id: ordo_model::ids::AgentId::new(agent)?,
            agent_run_id: None,
            after: 0,
        });
        ordo_net::frame::send(&mut ws, &couple, frame_bytes_max).await?;
        let answer = tokio::time::timeout(
            Duration::from_millis(PROBE_TIMEOUT_MS),
            ordo_net::frame::recv::<_, FromAgent>(&mut ws, frame_bytes_max),
        )
        .await
        .map_err(|_| anyhow!("agent {agent} did not answer a Couple in {PROBE_TIMEOUT_MS} ms"))??;
        match answer {
            Some(FromAgent::Refused { reason }) => Ok(reason),
            Some(FromAgent::Coupled(_)) => {
                bail!("agent {agent} coupled with a controller of term {term}")
            }
            Some(other) => bail!("agent {agent} answered a Couple with {other:?}"),
            None => bail!("agent {agent} closed the session without an answer"),
        }
    }
}
