//! Commands and controller-only reads, forwarded to the controller with the service token
//! after the caller's role is checked. The controller's answer (status, body, content type)
//! is passed back unchanged.

use super::read::check_order_id;
use super::{ApiError, App, Caller};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State as AxState};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordo_api::auth::Role;
use serde::Serialize;
use utoipa::ToSchema;

/// A body that could not be read: too large (413) or broken (400).
pub fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad(format!(
                "the request body cannot be read: {}",
                e.body_text()
            ))
        }
    })
}

/// Checks that a body is JSON (an empty body is allowed where `empty_ok`).
fn check_json(b: &Bytes, empty_ok: bool) -> Result<(), ApiError> {
    if b.is_empty() && empty_ok {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(b)
        .map(|_| ())
        .map_err(|e| ApiError::bad(format!("bad JSON body: {e}")))
}

/// Sends the request to the controller and passes its answer back.
pub async fn forward(
    app: &App,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<Response, ApiError> {
    forward_typed(app, method, path, body.map(|b| (b, "application/json"))).await
}

/// Like [`forward`], with the body's content type.
pub async fn forward_typed(
    app: &App,
    method: Method,
    path: &str,
    body: Option<(Bytes, &'static str)>,
) -> Result<Response, ApiError> {
    let r = app
        .upstream
        .forward(method, path, body)
        .await
        .map_err(ApiError::upstream)?;
    if r.status.is_success()
        && let Some(id) = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.get("lastEventId").and_then(serde_json::Value::as_u64))
    {
        wait_applied(app, id).await;
    }
    let content_type = r
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| header::HeaderValue::from_static("application/json"));
    Ok((r.status, [(header::CONTENT_TYPE, content_type)], r.body).into_response())
}

/// Longest wait for the view to catch up with a command's events.
const READ_YOUR_WRITES_MS: u64 = 5000;

/// Waits until the view has applied event `id`, so a client that reads right after a command
/// sees its effect (read your writes); gives up after [`READ_YOUR_WRITES_MS`].
pub(super) async fn wait_applied(app: &App, id: u64) {
    let mut live = app.shared.live.subscribe();
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(READ_YOUR_WRITES_MS);
    while app.shared.read().last_event_id() < id {
        match tokio::time::timeout_at(deadline, live.recv()).await {
            Err(_) => {
                tracing::warn!("the view did not reach event {id} in {READ_YOUR_WRITES_MS} ms");
                return;
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
            Ok(_) => {}
        }
    }
}

/// Path segments are checked names or ids, so they need no escaping; this keeps it so.
pub(super) fn segment(s: &str) -> Result<&str, ApiError> {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.|#:@+".contains(c))
    {
        Ok(s)
    } else {
        Err(ApiError::bad(format!(
            "{s:?} holds characters no name or id may hold"
        )))
    }
}

/// An order id for a path to the controller: checked by the order id rule (Unicode ids
/// included), then percent-encoded but for `A-Z a-z 0-9 - _ . ~`.
pub(super) fn order_segment(id: &str) -> Result<String, ApiError> {
    ordo_model::ids::OrderId::new(id)
        .map_err(|e| ApiError::bad(format!("order id {id:?}: {e}")))?;
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// One YAML file of a deployment.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployFile {
    pub name: String,
    pub text: String,
}

/// `POST /deploy`: every file at once, all or nothing, checked together with what is
/// deployed; with the objects to remove.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeployBody {
    #[schema(required = false)]
    pub files: Vec<DeployFile>,
    #[schema(required = false)]
    pub removed: Option<super::deploy_docs::Removals>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployReply {
    /// What changed, one line each (empty for a dry run).
    pub changes: Vec<String>,
    pub last_event_id: u64,
    /// What the deployment adds, changes and removes and the live orders it affects.
    #[schema(required = false)]
    pub diff: Option<super::deploy_docs::DeployDiff>,
    /// Set when nothing was deployed (`dryRun=true`).
    #[schema(required = false)]
    pub dry_run: Option<bool>,
    /// The check's warnings, `file:line:col: warning: …`.
    #[schema(required = false)]
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DeployQuery {
    /// The file name diagnostics use for a YAML body (default `request.yaml`).
    pub name: Option<String>,
    /// Answer the diff (what would be added, changed, removed, and the orders affected)
    /// and deploy nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Deploy even though orders would be stranded; they keep running on their version.
    #[serde(default)]
    pub force: Option<bool>,
}

/// `POST /api/v1/deploy` (admin): JSON `{files}`, or one YAML body
/// (`Content-Type: application/yaml`, which may hold many `---` documents).
#[utoipa::path(post, path = "/api/v1/deploy", tag = "commands", security(("bearer" = [])),
    params(DeployQuery),
    request_body(content((DeployBody = "application/json"), (String = "application/yaml"))),
    responses((status = 200, description = "Deployed, or with `dryRun` what would be", body = DeployReply),
        (status = 400, description = "A bad body, or the inventory's problems (checked with what is deployed) in `details`", body = super::ErrorBody),
        (status = 409, description = "Orders would be stranded (without `force`), or a removal something needs; the diff in `details`", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn deploy(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    q: Result<axum::extract::Query<DeployQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let q = super::read::query(q)?;
    let flags = format!(
        "dryRun={}&force={}",
        q.dry_run.unwrap_or(false),
        q.force.unwrap_or(false)
    );
    let b = body(b, app.limits.request_bytes_max)?;
    let is_yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("yaml"));
    if is_yaml {
        if std::str::from_utf8(&b).is_err() {
            return Err(ApiError::bad("the YAML body is not UTF-8"));
        }
        let mut path = format!("/api/v1/deploy?{flags}");
        if let Some(name) = q.name {
            path.push_str("&name=");
            path.push_str(&percent_encode(&name));
        }
        return forward_typed(&app, Method::POST, &path, Some((b, "application/yaml"))).await;
    }
    check_json(&b, false)?;
    forward(
        &app,
        Method::POST,
        &format!("/api/v1/deploy?{flags}"),
        Some(b),
    )
    .await
}

/// Percent-encodes everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A new order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    pub id: String,
    pub workflow: String,
    /// Variables: numbers, strings, booleans, lists.
    #[schema(value_type = Option<Object>)]
    pub args: Option<serde_json::Value>,
    /// When to start: ms since the epoch, or an RFC 3339 instant.
    #[schema(value_type = Option<String>)]
    pub scheduled_for: Option<serde_json::Value>,
    /// Higher first where orders wait for a lock or for a job's parallelism (default 0).
    pub priority: Option<i32>,
    /// Remove the order once it has finished or was cancelled (default: as its workflow
    /// says; a failed order stays).
    pub delete_when_terminated: Option<bool>,
}

/// Several new orders at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewOrders {
    pub orders: Vec<NewOrder>,
}

/// `POST /orders` takes one order or `{orders: [...]}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AddBody {
    One(NewOrder),
    Many(NewOrders),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddResult {
    pub id: String,
    pub added: bool,
    /// The id existed already (the add is idempotent).
    pub duplicate: Option<bool>,
    /// Why this order was not added (in a many-order request).
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddReply {
    pub results: Vec<AddResult>,
    pub last_event_id: u64,
}

/// `POST /api/v1/orders` (operator).
#[utoipa::path(post, path = "/api/v1/orders", tag = "commands", security(("bearer" = [])),
    request_body = AddBody,
    responses((status = 200, description = "Added (or found: idempotent per id); with several orders, each one's refusal is in its result", body = AddReply),
        (status = 400, description = "A bad body, or one order's bad variables: a bad or protected variable name (LD_*, PATH, ...), or a scheduledFor outside 1970..9999", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "One order whose workflow is not deployed", body = super::ErrorBody),
        (status = 413, description = "Body too large, too many orders, an id, argument or name over a limit (the error names it and its value), or an order's event larger than the event stream carries", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn add_orders(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let b = body(b, app.limits.request_bytes_max)?;
    check_json(&b, false)?;
    forward(&app, Method::POST, "/api/v1/orders", Some(b)).await
}

/// The answer to an order command.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandReply {
    /// The command had been given already (nothing changed).
    pub duplicate: bool,
    pub last_event_id: u64,
}

/// `{kill?: "term" | "kill"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KillBody {
    pub kill: Option<String>,
}

/// `{position?: "2/try/0", vars?: {}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeBody {
    pub position: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub vars: Option<serde_json::Value>,
}

/// `{vars?: {}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerBody {
    #[schema(value_type = Option<Object>)]
    pub vars: Option<serde_json::Value>,
}

async fn order_command(
    app: App,
    caller: Caller,
    id: String,
    verb: &str,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    check_order_id(&id)?;
    let b = body(b, app.limits.request_bytes_max)?;
    check_json(&b, true)?;
    let path = format!("/api/v1/orders/{}/{verb}", order_segment(&id)?);
    forward(&app, Method::POST, &path, Some(b)).await
}

macro_rules! order_verb {
    ($name:ident, $verb:literal, $body:ty, $what:literal) => {
        #[doc = concat!("`POST /api/v1/orders/{id}/", $verb, "` (operator): ", $what)]
        #[utoipa::path(post, path = concat!("/api/v1/orders/{id}/", $verb), tag = "commands",
            security(("bearer" = [])),
            params(("id" = String, Path, description = "Order id")),
            request_body(content = Option<$body>, description = "May be empty"),
            responses((status = 200, description = "Done, or marked for the holder", body = CommandReply),
                (status = 400, description = "A bad body or id", body = super::ErrorBody),
                (status = 401, description = "No or unknown token", body = super::ErrorBody),
                (status = 403, description = "A viewer", body = super::ErrorBody),
                (status = 404, description = "No such order", body = super::ErrorBody),
                (status = 409, description = "The order's state does not allow it", body = super::ErrorBody),
                (status = 413, description = "Body too large", body = super::ErrorBody),
                (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
        pub async fn $name(
            AxState(app): AxState<App>,
            Extension(caller): Extension<Caller>,
            Path(id): Path<String>,
            b: Result<Bytes, BytesRejection>,
        ) -> Result<Response, ApiError> {
            order_command(app, caller, id, $verb, b).await
        }
    };
}

order_verb!(cancel, "cancel", KillBody, "cancel the order");
order_verb!(suspend, "suspend", KillBody, "suspend the order");
order_verb!(
    resume,
    "resume",
    ResumeBody,
    "resume a suspended or failed order"
);
order_verb!(answer, "answer", AnswerBody, "answer the order's prompt");
/// `{}`: `go` takes no fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoBody {}

order_verb!(go, "go", GoBody, "end the order's current wait now");

/// `DELETE /api/v1/orders/{id}` (operator): remove a terminated order.
#[utoipa::path(delete, path = "/api/v1/orders/{id}", tag = "commands", security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Removed", body = CommandReply),
        (status = 400, description = "Not an order id", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "No such order", body = super::ErrorBody),
        (status = 409, description = "The order has not ended", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn remove_order(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    check_order_id(&id)?;
    let path = format!("/api/v1/orders/{}", order_segment(&id)?);
    forward(&app, Method::DELETE, &path, None).await
}

/// `{key}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeBody {
    pub key: String,
}

/// `POST /api/v1/notices/{board}` (operator): post a notice by hand.
#[utoipa::path(post, path = "/api/v1/notices/{board}", tag = "commands", security(("bearer" = [])),
    params(("board" = String, Path, description = "Board name")),
    request_body = NoticeBody,
    responses((status = 200, description = "Posted", body = CommandReply),
        (status = 400, description = "A bad body or board", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "The board is not deployed", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn post_notice(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(board): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    ordo_model::ids::BoardName::new(&board)
        .map_err(|e| ApiError::bad(format!("board {board:?} {e}")))?;
    let b = body(b, app.limits.request_bytes_max)?;
    check_json(&b, false)?;
    forward(
        &app,
        Method::POST,
        &format!("/api/v1/notices/{board}"),
        Some(b),
    )
    .await
}

/// `GET /api/v1/orders/{id}/log`: the job output so far, from the controller (for a fork
/// child its join removed, read by the cockpit from the controller's retained events).
#[utoipa::path(get, path = "/api/v1/orders/{id}/log", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "The job output", content_type = "text/plain", body = String),
        (status = 400, description = "Not an order id", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 404, description = "No such order", body = super::ErrorBody),
        (status = 410, description = "The output is no longer kept", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn order_log(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_order_id(&id)?;
    // A fork child its join removed: the controller forgot it, the view did not.
    if let Some(text) = super::kept_log::kept_child_log(&app, &id).await {
        let headers = [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )];
        return Ok((headers, text?).into_response());
    }
    let path = format!("/api/v1/orders/{}/log", order_segment(&id)?);
    forward(&app, Method::GET, &path, None).await
}
