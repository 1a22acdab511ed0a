//! The controller's HTTPS API (JSON): commands, queries and the event stream.
//!
//! Every route is under `/api/v1` and needs `Authorization: Bearer <token>` (the scheme in any
//! case); a token's role decides what it may do (viewer: read; operator: orders; admin:
//! deploy). Bodies larger than `request_bytes_max` get 413, bodies, fields or parameters that
//! do not parse 400 with the reason, a missing or unknown token 401, a role that may not act
//! 403. Every error answer is JSON `{"error": "...", "details"?: [...]}`, also those the web
//! framework makes itself ([`ordo_net::api::json_errors`]). A command is answered only once
//! its events are durable in the journal.
//!
//! While the journal's file system is full, commands and deployments get 507
//! `{error, journalDir, cause}` and nothing of them is done (reads go on); they work again
//! once space is freed. A controller that is not the active one answers them with 503
//! `{error, active}` (`active`: the active controller when known); for one it had taken
//! before it stopped being active, the outcome is unknown and a retry with the same order id
//! is safe.
//!
//! Routes (all JSON unless said otherwise):
//!
//! | Method and path | Role | Body → answer |
//! |---|---|---|
//! | `GET /health` | viewer | → `{status, clusterId, controllerId, role, lastEventId, orders, eventBytesMax, cluster?}` (`role`: `active`, or in a pair `passive`, `watch`, `candidate`; `cluster`: `ordo_api::view::ClusterHealth`) |
//! | `POST /cluster/…` | admin | the pair's operations: see [`cluster`] |
//! | `POST /deploy` | admin | `{files: [{name, text}], removed: {workflows, agents, locks, boards, schedules, calendars, subagents}}` (`subagents`: `agent/subagent`), or one YAML body (`Content-Type: application/yaml`, `?name=`); `?dryRun=true`, `?force=true`; the files are checked with what is deployed → `{changes: [text], lastEventId, diff: {added, changed, removed, affected, refused}, dryRun, warnings}`; 400 `{error, details: ["file:line:col: error: …"]}`; 409 `{error, details: diff}` (stranded orders without `force`, a removal something needs) |
//! | `POST /orders` | operator | `{id, workflow, args?, scheduledFor?}` or `{orders: [...]}` (`scheduledFor`: ms or RFC 3339) → `{results: [{id, added, duplicate}], lastEventId}`; arguments over a size limit of `[limits]` (`order_args_bytes_max`, `arg_value_bytes_max`) 413 `{error, details: {limit, max}}`; an id or variable name over its length limit (`order_id_bytes_max`, `arg_name_bytes_max`) 400 with the same `details`; a bad or protected variable name or a `scheduledFor` outside 1970..9999 400 (the rules: `ordo_model::order::input`) |
//! | `GET /orders?state=&workflow=&limit=` | viewer | → `{orders: [order]}` (at most 10000, the default); a `limit` above 100 makes it a large answer: streamed, and 503 as `/snapshot` |
//! | `GET /orders/{id}` | viewer | → order `{id, workflow, version, state, stateDetail, position, attempt, vars, scheduledFor?, holder: {type, …}, mark?, parent?, outcomes: [{position, outcome}]}` (`ordo_api::view::OrderView`) |
//! | `GET /orders/{id}/log` | viewer | → text/plain, the job output so far |
//! | `POST /orders/{id}/cancel` | operator | `{kill?: "term"\|"kill"}` → `{duplicate, lastEventId}` |
//! | `POST /orders/{id}/suspend` | operator | `{kill?}` → same |
//! | `POST /orders/{id}/resume` | operator | `{position?: "2/try/0", vars?: {}}` → same |
//! | `POST /orders/{id}/answer` | operator | `{vars?: {}}` → same |
//! | `POST /orders/{id}/go` | operator | `{}` (or no body) → same |
//! | `DELETE /orders/{id}` | operator | → same (terminated orders only) |
//! | `POST /notices/{board}` | operator | `{key}` → same |
//! | `GET /plan?date=&schedule=` | viewer | → `{schedules: [{name, workflow, timeZone, paused, missed, plannedUntil?}], entries: [{schedule, orderId, at, instant, status, why?, orderState?}], truncated?}` (`ordo_api::plan::PlanView`; `date`: the local date of the instant, `YYYY-MM-DD`; at most 10000 entries) |
//! | `POST /plan/orders/{id}/skip` | operator | → `{duplicate, lastEventId}`: the planned order is not added, or cancelled if added and not started (409 once it started) |
//! | `POST /plan/schedules/{name}/pause` | operator | → same: no orders are added; added orders not started are cancelled |
//! | `POST /plan/schedules/{name}/resume` | operator | → same: instants passed meanwhile follow the schedule's `missed:` policy |
//! | `POST /plan/schedules/{name}/backfill?from=&until=` | operator | → same: the orders of the schedule's instants on the local dates `from..=until` that passed and whose order was never added are added now (they start at once; `missed:` does not apply); at most 366 days and 10000 instants (400 beyond) |
//! | `GET /plan/explain?schedule=&date=` | viewer | → `{schedule, date, timeZone, notes, instants: [{wall, rule, at?, instant?, orderId?, status, why?, orderState?, reasons}], truncated?}` (`ordo_api::plan::ExplanationView`): why each instant of the schedule's local date is in the plan or not; 404 for an unknown schedule |
//! | `POST /plan/dates/{date}/cancel?schedule=` | operator | → `{duplicate, lastEventId}`: the planned instants of that local date (of one schedule or all) not started are skipped (`cancelled`): not added, or their orders cancelled |
//! | `GET /agents` | viewer | → `{agents: [{id, url, connected, connectedSinceMs?, lastError?, meta?}]}` (`ordo_api::view::AgentLinks`) |
//! | `POST /agents/join-tokens` | admin | `{agent?, ttlMs?}` → `{token, agent?, expiresMs, lastEventId}`: a one-time join token (see [`agents`]) |
//! | `POST /agents/register` | join token | `{token, id, url, priority?, processLimit?}` → `{changes, lastEventId}`: the agent pinged back at `<url>/meta`, then deployed (a subagent added to the token's agent, or a standalone agent) |
//! | `POST /agents/{agent}/subagents/{subagent}/remove` | admin | `{kill?}` → the deployment's answer: the agent without the subagent (drained, or its jobs killed and lost with `kill`) |
//! | `GET /snapshot` | viewer | → `{eventId, workflows, agents, locks, boards, orders}` (summaries, `ordo_api::view::SnapshotView`); 503 with `Retry-After` when `state_reads_max` whole-state answers are being written |
//! | `GET /state` | viewer | → `{formatVersion, eventId, state}`: the lossless state (`ordo_api::frame::StateSnapshot`), streamed; 503 as `/snapshot` |
//! | `GET /events?after=&timeout=&stream=` | viewer | → NDJSON events; with `stream=true` the answer stays open until `timeout` |
//! | `GET /events/ws?after=` | viewer | → WebSocket, one event per text frame |
//!
//! An event: `{formatVersion, eventId, term, ts, key, type, text, event}`
//! (`ordo_api::frame::EventFrame`) where `event` is the journaled `record::Body` in the
//! published JSON form; folding `/state` with every later event through
//! `state::State::apply` gives the controller's state. Answers are the typed views of
//! `ordo_api::view` (camelCase, unset fields left out).
//!
//! Event stream: `GET /api/v1/events?after=ID&timeout=MS` answers NDJSON, one event a line
//! (the frames above), as soon as at least one event after `ID` exists (or empty
//! after the timeout); `GET /api/v1/events/ws?after=ID` streams the same objects as WebSocket
//! text frames. `after=0` (the default) starts at the oldest event kept; an `after` older than
//! what the journal keeps gets 410 with "reload the snapshot" (`GET /api/v1/snapshot`); an
//! `after` at or beyond the newest event waits for events with greater ids (the long poll
//! answers empty after its timeout). One long-poll answer holds at most 10000 events and, past
//! its first event, at most `event_bytes_max` bytes; no event is larger than
//! `event_bytes_max` ([`crate::streamed`]).

pub mod agents;
mod body;
pub mod cluster;
mod deploy;
mod events;
#[cfg(test)]
mod list_tests;
mod orders;
mod plan;
mod whole;

use crate::config::{Role, TokenConfig};
use crate::core::{Input, NoSpace, NotActive};
use crate::link::StatusMap;
use crate::state::State;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ordo_api::view::ControllerHealth;
use ordo_journal::Journal;
use ordo_net::serve::ConnectionAuth;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// What every handler can reach.
#[derive(Clone)]
pub struct Api {
    pub core: mpsc::Sender<Input>,
    pub journal: Journal,
    /// The core's rollback generation (see `Core::generation_watch`).
    pub generation: watch::Receiver<u64>,
    pub links: StatusMap,
    pub tokens: Arc<HashMap<String, Role>>,
    pub orders_per_request_max: usize,
    /// What one order may bring in, checked before its command reaches the core.
    pub order_limits: ordo_model::order::OrderLimits,
    pub long_poll_ms_max: u64,
    /// Largest event streamed ([`crate::streamed`]); told by `/health` as `eventBytesMax`.
    pub event_bytes_max: usize,
    /// Large answers (`/state`, `/snapshot`, long order lists) being written; see [`whole`].
    pub state_reads: Arc<Semaphore>,
    pub state_reads_max: usize,
    pub cluster_id: String,
    pub controller_id: String,
    /// This node of the pair, when it is one.
    pub cluster: Option<cluster::ClusterInfo>,
    /// What registrations of agents need; `None`: none are taken.
    pub register: Option<Arc<agents::RegisterContext>>,
}

/// An error answer: a status and a message, as `{"error": "..."}`, with `details` and any
/// `fields` beside it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: None,
            fields: serde_json::Map::new(),
        }
    }

    /// 507 Insufficient Storage: the journal's file system is full, nothing was done.
    /// `{"error", "journalDir", "cause"}`.
    pub fn no_space(e: &NoSpace) -> ApiError {
        let mut error = ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string());
        error
            .fields
            .insert("journalDir".into(), json!(e.dir.display().to_string()));
        error.fields.insert("cause".into(), json!(e.cause));
        error
    }
    /// 503 Service Unavailable: this controller is not the active one; whether the command
    /// took effect is unknown. `{"error", "active"}` (`active` null when not known).
    pub fn not_active(e: &NotActive) -> ApiError {
        let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        error.fields.insert("active".into(), json!(e.active));
        error
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(d) = self.details {
            body["details"] = d;
        }
        for (key, value) in self.fields {
            body[key] = value;
        }
        (self.status, axum::Json(body)).into_response()
    }
}

impl Api {
    /// Runs `f` on the state between batches.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&State, u64) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.core
            .send(Input::Read(Box::new(move |s, id| {
                let _ = tx.send(f(s, id));
            })))
            .await
            .map_err(|_| stopping())?;
        rx.await.map_err(|_| stopping())
    }
}

pub fn stopping() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the controller is stopping",
    )
}

pub use ordo_api::auth::token_hash;

pub fn token_map(tokens: &[TokenConfig]) -> HashMap<String, Role> {
    tokens
        .iter()
        .map(|t| (t.sha256.to_ascii_lowercase(), t.role))
        .collect()
}

/// The role the request's token has.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Role);

impl Caller {
    pub fn require(self, role: Role) -> Result<(), ApiError> {
        if self.0 >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this needs the role {role}; the token has {}", self.0),
            ))
        }
    }
}

async fn auth(AxState(api): AxState<Api>, mut req: Request, next: Next) -> Response {
    let Some(token) = ordo_net::api::bearer_token(req.headers()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing token: send Authorization: Bearer <token>",
        )
        .into_response();
    };
    let Some(role) = api.tokens.get(&token_hash(token)).copied() else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unknown token").into_response();
    };
    // The connection keeps its slot when unauthenticated ones crowd the server.
    if let Some(connection) = req.extensions().get::<ConnectionAuth>() {
        connection.authenticated();
    }
    req.extensions_mut().insert(Caller(role));
    next.run(req).await
}

async fn health(AxState(api): AxState<Api>) -> Result<axum::Json<ControllerHealth>, ApiError> {
    let (last, orders) = api
        .read(|s, durable| (durable.min(s.last_event_id), s.world.orders.len()))
        .await?;
    let (role, cluster) = match &api.cluster {
        None => ("active".to_owned(), None),
        Some(c) => {
            let coupled = api
                .links
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .filter(|l| l.connected)
                .count();
            let (role, health) = c.health(coupled);
            (role, Some(health))
        }
    };
    Ok(axum::Json(ControllerHealth {
        status: "ok".into(),
        cluster_id: api.cluster_id.clone(),
        controller_id: api.controller_id.clone(),
        role,
        last_event_id: last,
        orders,
        event_bytes_max: api.event_bytes_max,
        cluster,
    }))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// The API's routes.
pub fn router(api: Api, request_bytes_max: usize) -> Router {
    let watch = api
        .cluster
        .as_ref()
        .is_some_and(|c| c.config.me().voter == crate::config::Voter::Watch);
    let v1 = if watch {
        // The watch serves its health only.
        Router::new().route("/health", get(health))
    } else {
        Router::new()
            .route("/health", get(health))
            .route("/cluster/switchover", post(cluster::switchover))
            .route("/cluster/nodes", post(cluster::add_node))
            .route(
                "/cluster/nodes/{id}",
                axum::routing::delete(cluster::remove_node),
            )
            .route("/deploy", post(deploy::deploy))
            .route("/orders", post(orders::add).get(orders::list))
            .route("/orders/{id}", get(orders::show).delete(orders::remove))
            .route("/orders/{id}/log", get(orders::log))
            .route("/orders/{id}/{verb}", post(orders::order_command))
            .route("/notices/{board}", post(orders::post_notice))
            .route("/agents", get(orders::agents))
            .route("/agents/join-tokens", post(agents::join_token))
            .route(
                "/agents/{agent}/subagents/{subagent}/remove",
                post(agents::remove_subagent),
            )
            .route("/plan", get(plan::show))
            .route("/plan/orders/{id}/skip", post(plan::skip))
            .route("/plan/explain", get(plan::explain))
            .route("/plan/dates/{date}/cancel", post(plan::cancel_day))
            .route(
                "/plan/schedules/{name}/{verb}",
                post(plan::schedule_command),
            )
            .route("/snapshot", get(whole::snapshot))
            .route("/state", get(whole::state))
            .route("/events", get(events::long_poll))
            .route("/events/ws", get(events::websocket))
    }
    .layer(middleware::from_fn_with_state(api.clone(), auth));
    // Authorised by the join token in its body, not by an API token.
    let v1 = if watch {
        v1
    } else {
        v1.route(
            "/agents/register",
            post(agents::register).layer(DefaultBodyLimit::max(agents::REGISTER_BODY_BYTES_MAX)),
        )
    };
    let errors = ordo_net::api::ErrorContext { request_bytes_max };
    Router::new()
        .nest("/api/v1", v1)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(request_bytes_max))
        .layer(middleware::from_fn_with_state(
            errors,
            ordo_net::api::json_errors,
        ))
        .with_state(api)
}
