//! Agents that join by themselves, and subagents taken out:
//!
//! - `POST /agents/join-tokens` (admin) `{agent?, ttlMs?}` → `{token, agent?, expiresMs,
//!   lastEventId}`: a one-time join token, drawn here from the system's random source; the
//!   controller journals only its SHA-256 ([`ordo_api::join`]). `agent`: the agent (cluster) a
//!   subagent joins; without it, a standalone agent registers an `agent:` object of its own.
//!   `ttlMs` defaults to one hour, at most 30 days.
//! - `POST /agents/register` (no API token: the join token in the body authorises it)
//!   `{token, id, url, priority?, processLimit?}` → `{agent, subagent?, changes,
//!   lastEventId}`. Before anything is journaled the controller pings the agent back at
//!   `<url>/meta` over mutual TLS with its agent-link certificate: the agent's server
//!   certificate must carry `ordo:agent:<id>` (and the URL's host, which TLS checks), and
//!   `/meta` must answer `agentId = id`. Then the token's agent is deployed with the subagent
//!   added (or the standalone agent), through the deployment path, with the token's use in
//!   the same batch. Refusals: 401 unknown token, 403 expired or used token or a ping-back
//!   that failed (saying what it saw), 404 an agent no longer deployed, 400 a bad id or URL,
//!   429 too many registrations at once (retry). A body is at most
//!   [`REGISTER_BODY_BYTES_MAX`] bytes; at most [`REGISTRATIONS_MAX`] run at once.
//! - `POST /agents/{agent}/subagents/{subagent}/remove` (admin) `{kill?}` → the deployment's
//!   answer: the agent deployed without the subagent; its director drains it (its running
//!   jobs end), or with `kill: true` kills its jobs, which count as lost.

use super::body::{Kind, Shape, object, optional, parse as parse_body, required};
use super::orders::command_error;
use super::{Api, ApiError, Caller, stopping};
use crate::config::Role;
use crate::core::Input;
use crate::machine::{AgentsRefused, Registration};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use ordo_api::auth::token_hash;
use ordo_api::join::JoinRefused;
use ordo_model::ids::AgentId;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

/// The default lifetime of a join token: one hour, in milliseconds.
pub const JOIN_TOKEN_TTL_MS_DEFAULT: u64 = 3_600_000;

/// The largest registration body, in bytes.
pub const REGISTER_BODY_BYTES_MAX: usize = 16 * 1024;

/// Registrations (with their ping-backs) handled at once, at most.
pub const REGISTRATIONS_MAX: usize = 8;

/// How long a ping-back may take, in milliseconds.
pub const PING_BACK_TIMEOUT_MS: u64 = 5_000;

/// The largest `/meta` answer read by a ping-back, in bytes.
const META_BYTES_MAX: usize = 1 << 20;

/// What registrations need: the client TLS configuration of the agent links (the
/// controller's client certificate) and the slots of [`REGISTRATIONS_MAX`].
pub struct RegisterContext {
    pub tls: Arc<rustls::ClientConfig>,
    pub slots: Semaphore,
}

impl RegisterContext {
    pub fn new(tls: Arc<rustls::ClientConfig>) -> RegisterContext {
        RegisterContext {
            tls,
            slots: Semaphore::new(REGISTRATIONS_MAX),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenBody {
    agent: Option<String>,
    ttl_ms: Option<u64>,
}

impl Shape for TokenBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        let map = object(
            json,
            at,
            &[
                optional("agent", Kind::String),
                optional("ttlMs", Kind::Any),
            ],
        )?;
        match map.get("ttlMs") {
            None | Some(Json::Null) => Ok(()),
            Some(v) if v.as_u64().is_some_and(|n| n > 0) => Ok(()),
            Some(_) => Err("ttlMs must be a positive whole number of milliseconds".into()),
        }
    }
}

/// A random token: `ordo-join-` and 64 hex digits (256 bits).
fn random_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no random bytes for a token: {e}"),
        )
    })?;
    let mut token = String::from("ordo-join-");
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    Ok(token)
}

pub(super) fn agents_error(e: &AgentsRefused) -> ApiError {
    let status = match e {
        AgentsRefused::Token(JoinRefused::Unknown) => StatusCode::UNAUTHORIZED,
        AgentsRefused::Token(JoinRefused::TooMany { .. }) => StatusCode::TOO_MANY_REQUESTS,
        AgentsRefused::Token(_) => StatusCode::FORBIDDEN,
        AgentsRefused::UnknownAgent(_) | AgentsRefused::UnknownSubagent { .. } => {
            StatusCode::NOT_FOUND
        }
        AgentsRefused::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.to_string())
}

/// `POST /agents/join-tokens`.
pub async fn join_token(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Admin)?;
    let body: TokenBody = parse_body(&body)?;
    let agent = body
        .agent
        .map(|a| AgentId::new(a).map_err(|e| ApiError::bad(format!("agent {e}"))))
        .transpose()?;
    let ttl_ms = body
        .ttl_ms
        .unwrap_or(JOIN_TOKEN_TTL_MS_DEFAULT)
        .min(ordo_api::join::JOIN_TOKEN_TTL_MS_MAX);
    let token = random_token()?;
    let hash = token_hash(&token);
    let (tx, rx) = oneshot::channel();
    api.core
        .send(Input::JoinToken {
            hash: hash.clone(),
            agent: agent.clone(),
            ttl_ms,
            reply: tx,
        })
        .await
        .map_err(|_| stopping())?;
    let reply = rx.await.map_err(|_| stopping())?.map_err(command_error)?;
    let expires = api
        .read(move |s, _| s.joins.tokens.get(&hash).map(|t| t.expires.0))
        .await?;
    Ok(axum::Json(json!({
        "token": token,
        "agent": agent.map(|a| a.to_string()),
        "expiresMs": expires,
        "lastEventId": reply.last_event_id,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterBody {
    token: String,
    id: String,
    url: String,
    #[serde(default)]
    priority: i32,
    process_limit: Option<u32>,
}

impl Shape for RegisterBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        let map = object(
            json,
            at,
            &[
                required("token", Kind::String),
                required("id", Kind::String),
                required("url", Kind::String),
                optional("priority", Kind::Any),
                optional("processLimit", Kind::Any),
            ],
        )?;
        if let Some(p) = map.get("priority").filter(|p| !p.is_null())
            && p.as_i64().and_then(|p| i32::try_from(p).ok()).is_none()
        {
            return Err("priority must be a whole number".into());
        }
        if let Some(p) = map.get("processLimit").filter(|p| !p.is_null())
            && p.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .is_none_or(|p| p == 0)
        {
            return Err("processLimit must be a positive whole number".into());
        }
        Ok(())
    }
}

/// `POST /agents/register`: authorised by the join token in the body, not by an API token.
pub async fn register(
    AxState(api): AxState<Api>,
    body: Bytes,
) -> Result<axum::Json<Json>, ApiError> {
    if body.len() > REGISTER_BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a registration is at most {REGISTER_BODY_BYTES_MAX} bytes"),
        ));
    }
    let Some(ctx) = api.register.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this controller takes no registrations",
        ));
    };
    let body: RegisterBody = parse_body(&body)?;
    let id = AgentId::new(&body.id).map_err(|e| ApiError::bad(format!("id {e}")))?;
    crate::machine::agents_check_url(&body.url).map_err(|e| agents_error(&e))?;
    let hash = token_hash(&body.token);
    let now = ordo_net::clock::now_ms();
    // Refused at once when the token cannot be used: no ping-back for a bad token.
    let token_ok = api
        .read({
            let hash = hash.clone();
            move |s, _| {
                s.joins
                    .check(&hash, ordo_model::time::TimeMs(now))
                    .map(|_| ())
            }
        })
        .await?;
    token_ok.map_err(|e| agents_error(&AgentsRefused::Token(e)))?;
    let Ok(_slot) = ctx.slots.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{REGISTRATIONS_MAX} registrations are under way; try again"),
        ));
    };
    ping_back(&ctx, &id, &body.url)
        .await
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, format!("ping-back failed: {e}")))?;
    let registration = Registration {
        hash,
        id: id.clone(),
        url: body.url,
        priority: body.priority,
        process_limit: body.process_limit,
    };
    let (tx, rx) = oneshot::channel();
    api.core
        .send(Input::Register {
            registration: Box::new(registration),
            reply: tx,
        })
        .await
        .map_err(|_| stopping())?;
    let reply = rx.await.map_err(|_| stopping())?.map_err(command_error)?;
    tracing::info!(agent = %id, "registered");
    Ok(axum::Json(json!({
        "changes": reply.changes,
        "lastEventId": reply.last_event_id,
    })))
}

/// Connects to `url` as the agent links do and checks that the agent there is `id`: its
/// server certificate names it, and its `/meta` says so.
async fn ping_back(ctx: &RegisterContext, id: &AgentId, url: &str) -> Result<(), String> {
    let https = format!(
        "https://{}",
        url.trim_start_matches("wss://").trim_end_matches('/')
    );
    let uri: axum::http::Uri = https
        .parse()
        .map_err(|e| format!("the URL {url} does not parse: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("no host in {url}"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let timeout = Duration::from_millis(PING_BACK_TIMEOUT_MS);
    let identity = tokio::time::timeout(timeout, async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host} is not a server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(ctx.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        ordo_net::PeerIdentity::from_client_stream(&tls)
            .map_err(|e| format!("the server certificate does not read: {e}"))
    })
    .await
    .map_err(|_| format!("no TLS answer from {host}:{port} within {PING_BACK_TIMEOUT_MS} ms"))??;
    match identity {
        Some(p) if p.is_agent(id.as_str()) => {}
        Some(p) => {
            return Err(format!(
                "the server certificate at {url} is not agent {id}'s (it names {})",
                p.agent_id().unwrap_or("no agent")
            ));
        }
        None => return Err(format!("no server certificate at {url}")),
    }
    let client = ordo_net::client::HttpsClient::new(
        ctx.tls.clone(),
        ordo_net::client::HttpsClientOptions {
            connect_timeout_ms: PING_BACK_TIMEOUT_MS,
            request_timeout_ms: PING_BACK_TIMEOUT_MS,
            body_bytes_max: META_BYTES_MAX,
            allow_plain_http: false,
        },
    );
    let meta: Json = client
        .get_json(&format!("{https}/meta"))
        .await
        .map_err(|e| format!("GET {https}/meta: {e}"))?;
    match meta.get("agentId").and_then(Json::as_str) {
        Some(seen) if seen == id.as_str() => Ok(()),
        Some(seen) => Err(format!(
            "{https}/meta says agentId {seen:?}, not {:?}",
            id.as_str()
        )),
        None => Err(format!("{https}/meta has no agentId")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    #[serde(default)]
    kill: bool,
}

impl Shape for RemoveBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        let map = object(json, at, &[optional("kill", Kind::Any)])?;
        match map.get("kill") {
            None | Some(Json::Null) | Some(Json::Bool(_)) => Ok(()),
            Some(_) => Err("kill must be true or false".into()),
        }
    }
}

/// `POST /agents/{agent}/subagents/{subagent}/remove`.
pub async fn remove_subagent(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path((agent, subagent)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Admin)?;
    let agent = AgentId::new(&agent).map_err(|e| ApiError::bad(format!("agent {e}")))?;
    let subagent = AgentId::new(&subagent).map_err(|e| ApiError::bad(format!("subagent {e}")))?;
    let body: RemoveBody = parse_body(&body)?;
    let (tx, rx) = oneshot::channel();
    api.core
        .send(Input::RemoveSubagent {
            agent,
            subagent,
            kill: body.kill,
            reply: tx,
        })
        .await
        .map_err(|_| stopping())?;
    let reply = rx.await.map_err(|_| stopping())?.map_err(command_error)?;
    Ok(axum::Json(
        serde_json::to_value(reply).unwrap_or(Json::Null),
    ))
}
