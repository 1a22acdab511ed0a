//! Self-registration (`[register]` in the configuration): the agent, or the subagent, asks the
//! controller to add it with a one-time join token.
//!
//! Protocol: `POST <controller>/api/v1/agents/register` with the JSON body
//! `{token, id, url, priority?, processLimit?}` (`id`: this agent's `agent_id`; `url`: the
//! `wss://` URL the controller and the director reach it at), over HTTPS trusting
//! `[register] ca` (default `tls.controller_ca`). The controller pings the agent back at
//! `<url>/meta` before it accepts, so the agent serves while it registers.
//!
//! - 2xx: registered; the agent goes on serving (a standalone agent is coupled by the
//!   controller, a subagent dedicated by its director).
//! - 408, 429 and 5xx, or no answer: tried again after a backoff from [`BACKOFF_MIN_MS`]
//!   doubling up to [`BACKOFF_MAX_MS`].
//! - any other 4xx (unknown, expired or used token, a ping-back that saw another agent): a
//!   refusal for good; the agent stops with the controller's reason. A used token also
//!   refuses an agent that registered before and restarts: remove `[register]` once it is in.

use crate::config::Register;
use ordo_net::client::{ClientError, HttpsClient, HttpsClientOptions};
use serde_json::{Value as Json, json};
use std::time::Duration;

/// The first wait before a registration is tried again, in milliseconds.
pub const BACKOFF_MIN_MS: u64 = 200;
/// The longest wait between two tries, in milliseconds.
pub const BACKOFF_MAX_MS: u64 = 10_000;
/// How long one try may take, in milliseconds.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Registers `agent_id` as `register` says; `Err` with the controller's reason when it
/// refuses for good.
pub async fn run(register: &Register, agent_id: &str) -> Result<(), String> {
    let ca = ordo_net::tls::CaBundle::from_pem_file(&register.ca)
        .map_err(|e| format!("register: the CA {}: {e}", register.ca.display()))?;
    let tls = ordo_net::tls::client_config(&ca, None)
        .map_err(|e| format!("register: TLS configuration: {e}"))?;
    let client = HttpsClient::new(
        tls,
        HttpsClientOptions {
            connect_timeout_ms: 5_000,
            request_timeout_ms: REQUEST_TIMEOUT_MS,
            body_bytes_max: 1 << 20,
            allow_plain_http: false,
        },
    );
    let url = format!(
        "{}/api/v1/agents/register",
        register.controller.trim_end_matches('/')
    );
    let mut body = json!({
        "token": register.token,
        "id": agent_id,
        "url": register.url,
        "priority": register.priority,
    });
    if let Some(limit) = register.process_limit {
        body["processLimit"] = json!(limit);
    }
    let mut backoff_ms = BACKOFF_MIN_MS;
    loop {
        match client.post_json::<_, Json>(&url, &body).await {
            Ok(_) => {
                tracing::info!(controller = %register.controller, url = %register.url, "registered with the controller");
                return Ok(());
            }
            Err(ClientError::Status { status, body, .. })
                if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 =>
            {
                let why = serde_json::from_str::<Json>(&body)
                    .ok()
                    .and_then(|j| j["error"].as_str().map(str::to_owned))
                    .unwrap_or(body);
                return Err(format!(
                    "the controller {} refused the registration ({status}): {why}",
                    register.controller
                ));
            }
            Err(e) => {
                tracing::warn!(controller = %register.controller, "registration not answered, trying again in {backoff_ms} ms: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
    }
}
