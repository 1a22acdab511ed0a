//! The cockpit's HTTP API: the controller's routes (commands forwarded, reads answered from
//! the view) plus queries of its own, the web UI, `/health`, `/metrics` and the OpenAPI
//! document at `/api/v1/openapi.json` (see [`docs`] for every route and body).
//!
//! Every route under `/api/v1` but the OpenAPI document needs `Authorization: Bearer
//! <token>` (the scheme in any case); a WebSocket route also takes `?access_token=<token>` (browsers cannot set
//! headers on WebSockets). The token's SHA-256 names a configured user and its role:
//! viewer reads, operator also acts on orders and notices, admin also deploys and steers the
//! controller pair ([`cluster`]). A missing or unknown token gets 401, a role that may not act
//! 403, a body larger than `request_bytes_max` 413, a body or parameter that does not parse
//! 400; every error body is `{"error": "..."}` (deploy problems add `details`). Commands are
//! forwarded to the active controller with the service token; its answer (status and body) is
//! passed back, and an unreachable controller gives 502. A controller that is not the active
//! one answers 503 `{error, active}`; when `active` is another controller of the cockpit's
//! list, the command is sent there once more.

pub mod agents;
pub mod bulk;
pub mod cluster;
pub mod commands;
pub mod deploy_docs;
pub mod docs;
pub mod kept_log;
pub mod plan;
pub mod queues;
pub mod read;
pub mod stream;

use crate::config::Limits;
use crate::follow::Shared;
use crate::upstream::Upstream;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State as AxState};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
pub use ordo_api::auth::{Role, token_hash};
use ordo_net::serve::ConnectionAuth;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// What every handler can reach.
#[derive(Clone)]
pub struct App {
    pub shared: Arc<Shared>,
    pub upstream: Arc<Upstream>,
    /// SHA-256 (lowercase hex) of a token → user name and role.
    pub users: Arc<HashMap<String, (String, Role)>>,
    pub limits: Arc<Limits>,
    /// Whole-state answers (`/state`, `/snapshot`) being written.
    pub state_reads: Arc<tokio::sync::Semaphore>,
    /// Longest wait for one controller's `/health` (`GET /api/v1/cluster`).
    pub health_timeout_ms: u64,
}

/// An error answer: `{"error": message, "details"?: [...]}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// Deploy: every problem of the inventory as `file:line:col: error: ...`.
    #[schema(value_type = Option<Vec<String>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn upstream(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the controller cannot be reached: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(ErrorBody {
                error: self.message,
                details: self.details,
            }),
        )
            .into_response()
    }
}

/// Who called: the user's name and role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the role {role}; user {} has the role {}",
                    self.name, self.role
                ),
            ))
        }
    }
}

/// `access_token` of a WebSocket upgrade's query string.
fn query_token(req: &Request) -> Option<String> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    let query = req.uri().query()?;
    serde_urlencoded_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
}

/// Splits a query string into decoded pairs.
pub fn serde_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn auth(AxState(app): AxState<App>, mut req: Request, next: Next) -> Response {
    let token = ordo_net::api::bearer_token(req.headers())
        .map(str::to_owned)
        .or_else(|| query_token(&req));
    let Some(token) = token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing token: send Authorization: Bearer <token>",
        )
        .into_response();
    };
    let Some((name, role)) = app.users.get(&token_hash(&token)).cloned() else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unknown token").into_response();
    };
    // The connection keeps its slot when unauthenticated ones crowd the server.
    if let Some(connection) = req.extensions().get::<ConnectionAuth>() {
        connection.authenticated();
    }
    req.extensions_mut().insert(Caller { name, role });
    next.run(req).await
}

/// Records each request's latency by route.
async fn timing(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    app.shared.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// The whole application: API, UI, health, metrics.
pub fn router(app: App) -> Router {
    let v1 = Router::new()
        .route("/health", get(read::health_v1))
        .route("/whoami", get(read::whoami))
        .route("/overview", get(read::overview))
        .route("/deploy", post(commands::deploy))
        .route("/orders", post(commands::add_orders).get(read::orders))
        .route(
            "/orders/{id}",
            get(read::order).delete(commands::remove_order),
        )
        .route("/orders/{id}/log", get(commands::order_log))
        .route("/orders/{id}/log/ws", get(stream::order_log_ws))
        .route("/orders/{id}/cancel", post(commands::cancel))
        .route("/orders/{id}/suspend", post(commands::suspend))
        .route("/orders/{id}/resume", post(commands::resume))
        .route("/orders/{id}/answer", post(commands::answer))
        .route("/orders/{id}/go", post(commands::go))
        .route("/bulk/resume", post(bulk::resume))
        .route("/notices/{board}", post(commands::post_notice))
        .route("/workflows", get(read::workflows))
        .route("/workflows/{name}", get(read::workflow))
        .route("/agents", get(read::agents))
        .route("/agents/join-tokens", post(agents::join_token))
        .route(
            "/agents/{agent}/subagents/{subagent}/remove",
            post(agents::remove_subagent),
        )
        .route("/queues", get(queues::queues))
        .route("/plan", get(plan::show))
        .route("/plan/orders/{id}/skip", post(plan::skip))
        .route("/plan/schedules/{name}/pause", post(plan::pause))
        .route("/plan/schedules/{name}/resume", post(plan::resume))
        .route("/plan/explain", get(plan::explain))
        .route("/plan/schedules/{name}/backfill", post(plan::backfill))
        .route("/plan/dates/{date}/cancel", post(plan::cancel_day))
        .route("/locks", get(read::locks))
        .route("/boards", get(read::boards))
        .route("/snapshot", get(read::snapshot))
        .route("/state", get(read::state))
        .route("/events", get(stream::events_long_poll))
        .route("/events/ws", get(stream::events_ws))
        .route("/cluster", get(cluster::status))
        .route("/cluster/switchover", post(cluster::switchover))
        .route("/cluster/nodes", post(cluster::add_node))
        .route("/cluster/nodes/{id}", delete(cluster::remove_node))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth))
        .route("/openapi.json", get(docs::openapi_json));
    Router::new()
        .nest("/api/v1", v1)
        .route("/health", get(read::health))
        .route("/metrics", get(read::metrics))
        .route("/", get(crate::ui::index))
        .route("/ui/{file}", get(crate::ui::asset))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), timing))
        .layer(DefaultBodyLimit::max(app.limits.request_bytes_max))
        .layer(middleware::from_fn_with_state(
            ordo_net::api::ErrorContext {
                request_bytes_max: app.limits.request_bytes_max,
            },
            ordo_net::api::json_errors,
        ))
        .with_state(app)
}

/// A place among the whole-state answers (`/state`, `/snapshot`) being written, if one of
/// `limits.state_reads_max` is free. Each answer holds a copy of what it writes until it is
/// done, so their number bounds that memory.
pub fn admit_state_read(app: &App) -> Option<tokio::sync::OwnedSemaphorePermit> {
    app.state_reads.clone().try_acquire_owned().ok()
}

/// The answer when every place is taken: 503 with `Retry-After: 1`.
pub fn state_reads_busy(app: &App) -> Response {
    let mut answer = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "{} whole-state answers (GET /state, /snapshot) are being written already (limits.state_reads_max); retry in a second",
            app.limits.state_reads_max
        ),
    )
    .into_response();
    answer.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    answer
}

/// A JSON answer written by `write` on a blocking thread and streamed in chunks
/// ([`ordo_net::body`]), for large values; `permit` is held until the body ends.
pub fn streamed(
    permit: tokio::sync::OwnedSemaphorePermit,
    write: impl FnOnce(&mut ordo_net::body::ChunkWriter) -> std::io::Result<()> + Send + 'static,
) -> Response {
    let body = ordo_net::body::streamed(permit, write);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON answer for a value that serialises.
pub fn json_response<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the answer failed: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            serde_urlencoded_pairs("a=1&access_token=x%2By+z&b"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("access_token".to_owned(), "x+y z".to_owned()),
                ("b".to_owned(), String::new()),
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(token_hash("abc").len(), 64);
    }
}
