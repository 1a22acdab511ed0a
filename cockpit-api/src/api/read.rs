//! Reads answered from the view: health, overview, orders, workflows, agents, locks, boards,
//! the snapshot and the state, and the metrics.

use super::{ApiError, App, Caller, json_response};
use crate::convert::{StepJson, steps_json};
use crate::follow::{FollowStatus, now_ms};
use crate::view::{OrderDetail, OrderQuery, OrderRow};
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use ordo_api::view::{
    AgentLinkView, AgentLinks, BoardView, LockView, SnapshotView, board_views, lock_views,
};
use ordo_model::inventory::Executable;
use ordo_model::order::OrderState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The cockpit's health: whether it follows a controller, and how far it is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` while following, `loading` before the first state arrived, `degraded` while
    /// reconnecting (the view answers, but may be behind), `stuck` (answered with 503) when
    /// the view cannot advance although the controller is ahead: `reason` says why.
    pub status: String,
    /// Why the status is `stuck`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Always `cockpit`.
    pub role: String,
    #[serde(flatten)]
    pub follow: FollowStatus,
    /// The id of the last event applied to the view.
    pub last_event_id: u64,
    /// Orders in the view.
    pub orders: usize,
    /// The API URL of the active controller, when one is known: where commands go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_controller: Option<String>,
    /// Every configured controller's role as last read (every `follow.cluster_poll_ms`).
    pub controllers: Vec<ControllerRole>,
}

/// A controller as the cockpit last saw it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerRole {
    pub url: String,
    /// `active`, `passive`, `watch` or `candidate`; left out when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Its node id in the pair (none for a single controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    /// Its raft term (none for a single controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// Why its `/health` could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was read, ms since the epoch.
    pub seen_ms: i64,
}

/// What the cockpit last saw of its controllers.
pub fn controller_roles(app: &App) -> Vec<ControllerRole> {
    let seen = app
        .shared
        .cluster
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    seen.members
        .into_iter()
        .map(|m| {
            let cluster = m.health.as_ref().and_then(|h| h.cluster.as_ref());
            ControllerRole {
                role: m.health.as_ref().map(|h| h.role.clone()),
                node_id: cluster.map(|c| c.node_id),
                term: cluster.map(|c| c.term),
                url: m.url,
                error: m.error,
                seen_ms: seen.at_ms,
            }
        })
        .collect()
}

fn health_of(app: &App) -> Health {
    let follow = app.shared.status();
    let (last_event_id, orders) = {
        let v = app.shared.read();
        (v.last_event_id(), v.state.world.orders.len())
    };
    let status = if follow.stuck.is_some() {
        "stuck"
    } else if !follow.loaded {
        "loading"
    } else if follow.following {
        "ok"
    } else {
        "degraded"
    };
    Health {
        status: status.to_owned(),
        reason: follow.stuck.clone(),
        role: "cockpit".to_owned(),
        follow,
        last_event_id,
        orders,
        active_controller: app.upstream.active_url(),
        controllers: controller_roles(app),
    }
}

/// The health answer: 503 when stuck.
fn health_response(app: &App) -> Response {
    let health = health_of(app);
    let mut response = json_response(&health);
    if health.reason.is_some() {
        *response.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// `GET /health`, without a token: the cockpit's health.
#[utoipa::path(get, path = "/health", tag = "cockpit",
    responses((status = 200, description = "The cockpit's health", body = Health),
        (status = 503, description = "The view cannot advance (`stuck`); `reason` says why", body = Health)))]
pub async fn health(AxState(app): AxState<App>) -> Response {
    health_response(&app)
}

/// `GET /api/v1/health`: the same, with a token (the controller's API has this route).
#[utoipa::path(get, path = "/api/v1/health", tag = "cockpit", security(("bearer" = [])),
    responses((status = 200, description = "The cockpit's health", body = Health),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 503, description = "The view cannot advance (`stuck`); `reason` says why", body = Health)))]
pub async fn health_v1(AxState(app): AxState<App>) -> Response {
    health_response(&app)
}

/// Who the token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
}

/// `GET /api/v1/whoami`.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "cockpit", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = WhoAmI),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn whoami(Extension(caller): Extension<Caller>) -> Response {
    json_response(&WhoAmI {
        name: caller.name,
        role: caller.role.name().to_owned(),
    })
}

/// Counts for the overview page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// The view's event id: continue with `/api/v1/events/ws?after=<eventId>`.
    pub event_id: u64,
    /// Orders in the view.
    pub total: usize,
    /// Orders by state; every state is present.
    pub counts: BTreeMap<String, usize>,
    pub workflows: usize,
    pub agents: usize,
    pub locks: usize,
    pub boards: usize,
    /// The API URL of the active controller, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_controller: Option<String>,
}

/// `GET /api/v1/overview`.
#[utoipa::path(get, path = "/api/v1/overview", tag = "cockpit", security(("bearer" = [])),
    responses((status = 200, description = "Counts", body = Overview),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn overview(AxState(app): AxState<App>) -> Response {
    let v = app.shared.read();
    let w = &v.state.world;
    json_response(&Overview {
        event_id: v.last_event_id(),
        total: w.orders.len(),
        counts: v
            .counts()
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect(),
        workflows: w.workflows.len(),
        agents: w.agents.len(),
        locks: w.locks.len(),
        boards: w.boards.len(),
        active_controller: app.upstream.active_url(),
    })
}

/// Filters and paging of `GET /api/v1/orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// fresh, ready, processing, waiting, prompting, suspended, failed, cancelled or finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Workflow name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Orders held by (or being handed to or from) this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Added at or after this instant, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Added before this instant, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Orders per page, 1 to `orders_per_page_max` (larger values are cut to it; the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Orders after this order id: the `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// The orders with their times (`addedMs`, `startedMs`, `endedMs`).
    pub orders: Vec<OrderRow>,
    /// The `after` of the next page; left out on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A query string that does not parse is a 400 with the reason.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad(format!("bad query parameters: {}", e.body_text())))
}

/// `GET /api/v1/orders`.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(OrdersQuery),
    responses((status = 200, description = "A page of orders, in id order", body = OrderList),
        (status = 400, description = "A bad parameter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn orders(
    AxState(app): AxState<App>,
    q: Result<Query<OrdersQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    if let Some(s) = &q.state {
        ordo_api::view::check_state_name(s).map_err(ApiError::bad)?;
    }
    if q.limit == Some(0) {
        return Err(ApiError::bad("limit must be at least 1"));
    }
    let max = app.limits.orders_per_page_max;
    let query = OrderQuery {
        state: q.state,
        workflow: q.workflow,
        agent: q.agent,
        since: q.since,
        until: q.until,
        after: q.after,
        limit: q.limit.unwrap_or(max).clamp(1, max),
    };
    let v = app.shared.read();
    let (page, next) = v.list(&query, app.limits.orders_scanned_per_page_max);
    Ok(json_response(&OrderList {
        orders: page.into_iter().map(|o| v.order_row(o)).collect(),
        next,
    }))
}

pub fn check_order_id(id: &str) -> Result<(), ApiError> {
    ordo_model::ids::OrderId::new(id)
        .map(|_| ())
        .map_err(|e| ApiError::bad(format!("order id {id:?} {e}")))
}

/// `GET /api/v1/orders/{id}`.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "The order with its history", body = OrderDetail),
        (status = 400, description = "Not an order id", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 404, description = "No such order", body = super::ErrorBody)))]
pub async fn order(
    AxState(app): AxState<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_order_id(&id)?;
    let detail = app.shared.read().order_detail(&id);
    match detail {
        Some(d) => Ok(json_response(&d)),
        None => Err(ApiError::not_found(format!("order {id} does not exist"))),
    }
}

/// A workflow and its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowSummary {
    pub name: String,
    pub versions: Vec<u64>,
    pub latest: u64,
    /// Orders of any version in the view.
    pub orders: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowSummary>,
}

/// `GET /api/v1/workflows`.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "inventory", security(("bearer" = [])),
    responses((status = 200, description = "Deployed workflows", body = WorkflowList),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn workflows(AxState(app): AxState<App>) -> Response {
    let v = app.shared.read();
    let w = &v.state.world;
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for o in w.orders.values() {
        *per.entry(o.workflow.as_str()).or_default() += 1;
    }
    json_response(&WorkflowList {
        workflows: w
            .workflows
            .iter()
            .map(|(name, versions)| WorkflowSummary {
                name: name.to_string(),
                versions: versions.keys().map(|v| v.0).collect(),
                latest: versions.keys().next_back().map_or(0, |v| v.0),
                orders: per.get(name.as_str()).copied().unwrap_or(0),
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkflowQuery {
    /// The version to show; the newest by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// A parameter of a workflow.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterJson {
    /// Whether an order must pass it (no `default`, not `final`).
    pub required: bool,
    /// Its type (`string`, `number`, `boolean`, `list`, `map`), if it has one.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A `final` parameter's expression: the workflow sets it, an order may not pass it.
    #[serde(rename = "final", default, skip_serializing_if = "Option::is_none")]
    pub final_value: Option<String>,
    /// The default, as written (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A job of a workflow.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobJson {
    pub agent: String,
    /// `script` or `command`.
    pub executable: String,
    /// The script, or the command's arguments joined by spaces.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    pub restartable: bool,
    /// Restarts after a lost process before the order fails (only for a restartable job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_budget: Option<u32>,
    /// The job's own subagent selection: `round-robin`, `priority` or `ring` (none: the
    /// agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagent_selection: Option<String>,
    /// The subagents the job may run on, `id` or `id (priority)` (empty: any of the agent's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subagents: Vec<String>,
    pub parallelism: u32,
}

/// One version of a workflow, with its steps as a tree for drawing.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDetail {
    pub name: String,
    pub version: u64,
    pub versions: Vec<u64>,
    pub parameters: BTreeMap<String, ParameterJson>,
    /// Whether orders may pass arguments besides the parameters (a workflow with
    /// parameters refuses others unless this is set; one without takes any).
    #[serde(rename = "allowUndeclared")]
    pub allow_undeclared: bool,
    pub jobs: BTreeMap<String, JobJson>,
    pub steps: Vec<StepJson>,
}

/// `GET /api/v1/workflows/{name}`.
#[utoipa::path(get, path = "/api/v1/workflows/{name}", tag = "inventory", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name"), WorkflowQuery),
    responses((status = 200, description = "The workflow version", body = WorkflowDetail),
        (status = 400, description = "A bad parameter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 404, description = "No such workflow or version", body = super::ErrorBody)))]
pub async fn workflow(
    AxState(app): AxState<App>,
    Path(name): Path<String>,
    q: Result<Query<WorkflowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let v = app.shared.read();
    let Some(versions) = v.state.world.workflows.get(name.as_str()) else {
        return Err(ApiError::not_found(format!(
            "workflow {name} is not deployed"
        )));
    };
    let chosen = match q.version {
        Some(n) => versions.get_key_value(&ordo_model::ids::VersionId(n)),
        None => versions.iter().next_back(),
    };
    let Some((version, wf)) = chosen else {
        return Err(ApiError::not_found(format!(
            "workflow {name} has no version {}",
            q.version.unwrap_or(0)
        )));
    };
    let rules = v.state.world.extras.workflows.get(name.as_str());
    let rule = |k: &str| rules.and_then(|r| r.parameters.get(k));
    Ok(json_response(&WorkflowDetail {
        name: name.clone(),
        version: version.0,
        versions: versions.keys().map(|v| v.0).collect(),
        parameters: wf
            .parameters
            .iter()
            .map(|(k, p)| {
                let final_value = rule(k).and_then(|r| r.final_value.as_ref());
                (
                    k.clone(),
                    ParameterJson {
                        required: p.default.is_none() && final_value.is_none(),
                        kind: rule(k).and_then(|r| r.kind).map(|t| t.word().to_owned()),
                        final_value: final_value.map(|e| e.to_string()),
                        default: p.default.as_ref().map(|t| t.to_string()),
                    },
                )
            })
            .collect(),
        allow_undeclared: rules.is_some_and(|r| r.allow_undeclared),
        jobs: wf
            .jobs
            .iter()
            .map(|(k, j)| {
                let (executable, text) = match &j.executable {
                    Executable::Script(s) => ("script", s.clone()),
                    Executable::Command(argv) => ("command", argv.join(" ")),
                };
                let settings = v.state.world.job_settings(&wf.name, k);
                let budget = settings.restarts_max();
                let selection = settings.subagent_selection.unwrap_or_default();
                (
                    k.to_string(),
                    JobJson {
                        agent: j.agent.to_string(),
                        executable: executable.to_owned(),
                        text,
                        timeout_ms: j.timeout.map(|t| t.0),
                        restartable: j.restartable,
                        restart_budget: j.restartable.then_some(budget),
                        subagent_selection: selection.selection.map(|s| s.word().to_owned()),
                        subagents: selection
                            .subagents
                            .iter()
                            .map(|s| match s.priority {
                                Some(p) => format!("{} ({p})", s.id),
                                None => s.id.to_string(),
                            })
                            .collect(),
                        parallelism: j.parallelism,
                    },
                )
            })
            .collect(),
        steps: steps_json(wf),
    }))
}

/// A job process an agent runs now.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessJson {
    pub order: String,
    pub workflow: String,
    pub position: String,
    pub since_ms: i64,
    /// The job's process group, if the agent reported it (an agent journals a start before
    /// the spawn and keeps the group in its own journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
}

/// An agent: the deployed object, its link status (from the controller) and its orders.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentJson {
    pub id: String,
    pub url: String,
    /// Subagent ids of an agent cluster.
    pub subagents: Vec<String>,
    /// The URL of its backup director (`backupDirector`: the agent is a director pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_director: Option<String>,
    /// Whether the controller has a link to it; `null` when the controller cannot tell now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// While connected: the URL the controller is coupled with (`url`, or the backup
    /// director's when that one is the active director).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupled_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the agent told about itself (host, cores, memory, load, version, jobs), in the
    /// published JSON form (camelCase).
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none", with = "ordo_api::json")]
    pub meta: Option<ordo_model::wire::AgentMeta>,
    /// A director's subagents with their figures: state, ring place, running and processed
    /// jobs, average job duration, connected since, and the cores, load and memory each one
    /// last reported (as the controller last read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subagent_health: Vec<ordo_api::view::SubagentView>,
    /// Orders held by, or being handed to or from, the agent.
    pub orders: usize,
    /// Job processes it runs now.
    pub processing: Vec<ProcessJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentList {
    pub agents: Vec<AgentJson>,
    /// How old the link status is, in ms (0 when it was read for this answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_status_age_ms: Option<i64>,
}

/// Reads the controller's link status, or the last copy of it; `(age ms, answer)`.
pub async fn link_status(app: &App) -> Option<(i64, AgentLinks)> {
    match app
        .upstream
        .forward(Method::GET, "/api/v1/agents", None)
        .await
    {
        Ok(r) if r.status.is_success() => {
            if let Ok(v) = serde_json::from_slice::<AgentLinks>(&r.body) {
                let now = now_ms();
                *app.shared.agents.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((now, v.clone()));
                return Some((0, v));
            }
        }
        _ => {}
    }
    let cached = app
        .shared
        .agents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    cached.map(|(at, v)| (now_ms() - at, v))
}

/// `GET /api/v1/agents`.
#[utoipa::path(get, path = "/api/v1/agents", tag = "inventory", security(("bearer" = [])),
    responses((status = 200, description = "Deployed agents with link status and processes", body = AgentList),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn agents(AxState(app): AxState<App>) -> Response {
    let links = link_status(&app).await;
    let link_of = |id: &str| -> Option<&AgentLinkView> {
        links.as_ref()?.1.agents.iter().find(|a| a.id == id)
    };
    let v = app.shared.read();
    let w = &v.state.world;
    let mut held: BTreeMap<&str, (usize, Vec<ProcessJson>)> = BTreeMap::new();
    for o in w.orders.values() {
        if let Some(a) = o.holder.agent() {
            let entry = held.entry(a.as_str()).or_default();
            entry.0 += 1;
            if let OrderState::Processing { since, pgid } = &o.state {
                entry.1.push(ProcessJson {
                    order: o.id.to_string(),
                    workflow: o.workflow.to_string(),
                    position: o.position.to_string(),
                    since_ms: since.0,
                    pgid: (*pgid != 0).then_some(*pgid),
                });
            }
        }
    }
    let agents = w
        .agents
        .values()
        .map(|a| {
            let link = link_of(a.id.as_str());
            let (orders, processing) = held.remove(a.id.as_str()).unwrap_or_default();
            AgentJson {
                id: a.id.to_string(),
                url: a.url.clone(),
                subagents: a.subagents.iter().map(|s| s.id.to_string()).collect(),
                backup_director: w.extras.backup_directors.get(&a.id).cloned(),
                connected: link.map(|l| l.connected),
                coupled_url: link.and_then(|l| l.coupled_url.clone()),
                connected_since_ms: link.and_then(|l| l.connected_since_ms),
                last_error: link.and_then(|l| l.last_error.clone()),
                meta: link.and_then(|l| l.meta.clone()),
                subagent_health: link.map(|l| l.subagent_health.clone()).unwrap_or_default(),
                orders,
                processing,
            }
        })
        .collect();
    json_response(&AgentList {
        agents,
        link_status_age_ms: links.map(|(age, _)| age),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LockList {
    pub locks: Vec<LockView>,
}

/// `GET /api/v1/locks`.
#[utoipa::path(get, path = "/api/v1/locks", tag = "inventory", security(("bearer" = [])),
    responses((status = 200, description = "Locks with holders and queues", body = LockList),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn locks(AxState(app): AxState<App>) -> Response {
    json_response(&LockList {
        locks: lock_views(&app.shared.read().state.world),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardList {
    pub boards: Vec<BoardView>,
}

/// `GET /api/v1/boards`.
#[utoipa::path(get, path = "/api/v1/boards", tag = "inventory", security(("bearer" = [])),
    responses((status = 200, description = "Notice boards and their notices", body = BoardList),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn boards(AxState(app): AxState<App>) -> Response {
    json_response(&BoardList {
        boards: board_views(&app.shared.read().state.world),
    })
}

/// `GET /api/v1/snapshot`.
#[utoipa::path(get, path = "/api/v1/snapshot", tag = "events", security(("bearer" = [])),
    responses((status = 200, description = "Summaries at eventId; continue with /events?after=eventId", body = SnapshotView),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 503, description = "limits.state_reads_max whole-state answers are being written; retry after Retry-After seconds", body = super::ErrorBody)))]
pub async fn snapshot(AxState(app): AxState<App>) -> Response {
    let Some(permit) = super::admit_state_read(&app) else {
        return super::state_reads_busy(&app);
    };
    // A copy, so that the view is not held while the answer is written.
    let (event_id, world) = {
        let v = app.shared.read();
        (v.last_event_id(), v.state.world.clone())
    };
    super::streamed(permit, move |w| {
        ordo_api::view::write_snapshot(w, event_id, &world)
    })
}

/// The lossless state at an event id (`ordo_api::frame::StateSnapshot`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateDoc {
    /// The format version of the snapshot (`ordo_api::FORMAT_VERSION`).
    pub format_version: u32,
    pub event_id: u64,
    /// The controller's state (`ordo_api::state::State`) in its published JSON form.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
}

/// `GET /api/v1/state`.
#[utoipa::path(get, path = "/api/v1/state", tag = "events", security(("bearer" = [])),
    responses((status = 200, description = "The lossless state the view holds", body = StateDoc),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 503, description = "limits.state_reads_max whole-state answers are being written; retry after Retry-After seconds", body = super::ErrorBody)))]
pub async fn state(AxState(app): AxState<App>) -> Response {
    let Some(permit) = super::admit_state_read(&app) else {
        return super::state_reads_busy(&app);
    };
    // A copy, so that the view is not held while the answer is written.
    let (event_id, state) = {
        let v = app.shared.read();
        (v.last_event_id(), v.state.clone())
    };
    super::streamed(permit, move |w| {
        ordo_api::frame::write_state_snapshot(w, event_id, &state)
    })
}

/// `GET /metrics`, without a token: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "cockpit",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(AxState(app): AxState<App>) -> Response {
    // The copy the cockpit reads every `follow.agents_poll_ms`.
    let status = app
        .shared
        .agents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .map(|(_, links)| links);
    let links = status
        .as_ref()
        .map(|s| s.agents.iter().filter(|a| a.connected).count());
    let subagents: Vec<(&str, &ordo_api::view::SubagentView)> = status
        .iter()
        .flat_map(|s| &s.agents)
        .flat_map(|a| a.subagent_health.iter().map(|s| (a.id.as_str(), s)))
        .collect();
    let (counts, deployed) = {
        let v = app.shared.read();
        (v.counts(), v.state.world.agents.len())
    };
    let text = app
        .shared
        .metrics
        .render(&counts, deployed, links, &subagents);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
