//! Join tokens and the removal of a subagent (admin), forwarded to the controller: see the
//! controller's `POST /agents/join-tokens` and `POST /agents/{agent}/subagents/{subagent}/remove`.
//! The registration itself (`POST /agents/register`, authorised by the join token) goes to the
//! controller directly, never through the cockpit.

use super::commands::{body, forward};
use super::{ApiError, App, Caller};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State as AxState};
use axum::http::Method;
use axum::response::Response;
use ordo_api::auth::Role;
use serde::Serialize;
use utoipa::ToSchema;

/// `{agent?, ttlMs?}`: the agent (cluster) a subagent joins (none: a standalone agent), and
/// how long the token lives (default one hour, at most 30 days).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenBody {
    pub agent: Option<String>,
    pub ttl_ms: Option<u64>,
}

/// `{token, agent?, expiresMs, lastEventId}`; the token is shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenReply {
    pub token: String,
    pub agent: Option<String>,
    pub expires_ms: i64,
    pub last_event_id: u64,
}

/// `{kill?}`: kill the subagent's jobs (they count as lost) instead of letting them end.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemoveSubagentBody {
    pub kill: Option<bool>,
}

fn json_object(b: &Bytes) -> Result<(), ApiError> {
    if b.is_empty() {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(b) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(ApiError::bad("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad(format!("bad JSON body: {e}"))),
    }
}

/// `POST /api/v1/agents/join-tokens` (admin): a one-time join token.
#[utoipa::path(post, path = "/api/v1/agents/join-tokens", tag = "commands", security(("bearer" = [])),
    request_body = JoinTokenBody,
    responses((status = 200, description = "The token, shown once", body = JoinTokenReply),
        (status = 400, description = "A bad body", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
        (status = 404, description = "The agent is not deployed", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody),
        (status = 429, description = "Too many tokens outstanding", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn join_token(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let b = body(b, app.limits.request_bytes_max)?;
    json_object(&b)?;
    forward(&app, Method::POST, "/api/v1/agents/join-tokens", Some(b)).await
}

/// `POST /api/v1/agents/{agent}/subagents/{subagent}/remove` (admin): deploys the agent without
/// the subagent; its director drains it, or kills its jobs with `kill`.
#[utoipa::path(post, path = "/api/v1/agents/{agent}/subagents/{subagent}/remove", tag = "commands", security(("bearer" = [])),
    params(("agent" = String, Path, description = "Agent (director) id"),
        ("subagent" = String, Path, description = "Subagent id")),
    request_body = RemoveSubagentBody,
    responses((status = 200, description = "Deployed without the subagent", body = Object),
        (status = 400, description = "A bad body or id", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
        (status = 404, description = "No such agent or subagent", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn remove_subagent(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path((agent, subagent)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    for (what, id) in [("agent", &agent), ("subagent", &subagent)] {
        ordo_model::ids::AgentId::new(id.as_str())
            .map_err(|e| ApiError::bad(format!("{what} {id:?} {e}")))?;
    }
    let b = body(b, app.limits.request_bytes_max)?;
    json_object(&b)?;
    forward(
        &app,
        Method::POST,
        &format!("/api/v1/agents/{agent}/subagents/{subagent}/remove"),
        Some(b),
    )
    .await
}
