//! Command and query routes for deployments, orders, notices and agents.

use super::{Api, ApiError, Caller, stopping};
use crate::config::Role;
use crate::core::{CommandReply, Input, Refused};
use crate::record::{Body, Record};
use crate::state::State;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ordo_api::view::{
    AgentLinkView, AgentLinks, OrderView, order_view, order_view_waiting, vars_from_json,
};
use ordo_model::ids::{BoardName, OrderId, WorkflowName};
use ordo_model::order::{
    Command, CommandError, InputError, Kill, Order, OrderLimits, OrderOptions,
};
use ordo_model::position::Position;
use ordo_model::time::TimeMs;
use ordo_model::value::Vars;
use ordo_model::wire::AgentEventBody;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::sync::oneshot;

use super::body::{Kind, Shape, items, object, optional, parse as parse_body, required};

pub(super) fn command_error(e: Refused) -> ApiError {
    let status = match &e {
        Refused::Deploy(d) => return super::deploy::refused(d),
        Refused::Agents(a) => return super::agents::agents_error(a),
        Refused::Command(
            CommandError::UnknownOrder(_)
            | CommandError::UnknownWorkflow(_)
            | CommandError::UnknownBoard(_)
            | CommandError::UnknownSchedule(_),
        ) => StatusCode::NOT_FOUND,
        Refused::Command(CommandError::Refused { .. } | CommandError::WrongSide { .. }) => {
            StatusCode::CONFLICT
        }
        Refused::Command(CommandError::Input { error, .. }) => {
            return input_error(error, e.to_string());
        }
        Refused::EventTooLarge { .. } | Refused::RecordTooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Refused::NoSpace(e) => return ApiError::no_space(e),
        Refused::NotActive(e) => return ApiError::not_active(e),
        Refused::Command(_) => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.to_string())
}

/// Order input the model's door refused: 413 when content is too large, 400 for bad input
/// (an id or name too long among it); a limit that was exceeded is named with its value, also
/// as `details: {limit, max}`.
fn input_error(error: &InputError, message: String) -> ApiError {
    let status = match error {
        InputError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError {
        details: error
            .limit()
            .map(|(limit, max)| json!({ "limit": limit, "max": max })),
        ..ApiError::new(status, message)
    }
}

async fn run(api: &Api, command: Command) -> Result<CommandReply, ApiError> {
    let (tx, rx) = oneshot::channel();
    api.core
        .send(Input::Command { command, reply: tx })
        .await
        .map_err(|_| stopping())?;
    rx.await.map_err(|_| stopping())?.map_err(command_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewOrder {
    id: String,
    workflow: String,
    #[serde(default)]
    args: Option<Json>,
    /// Milliseconds since the epoch, or an RFC 3339 instant.
    #[serde(default)]
    scheduled_for: Option<Json>,
    /// Higher first in lock and job queues (default 0).
    #[serde(default)]
    priority: Option<Json>,
    /// Remove the order once it has finished or was cancelled (default: as its workflow says).
    #[serde(default)]
    delete_when_terminated: Option<Json>,
}

impl Shape for NewOrder {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        object(
            json,
            at,
            &[
                required("id", Kind::String),
                required("workflow", Kind::String),
                optional("args", Kind::Any),
                optional("scheduledFor", Kind::Any),
                optional("priority", Kind::Any),
                optional("deleteWhenTerminated", Kind::Any),
            ],
        )
        .map(|_| ())
    }
}

/// One order, or `{"orders": [...]}` (told apart by the `orders` field).
#[derive(Deserialize)]
#[serde(untagged)]
enum AddBody {
    Many(NewOrders),
    One(NewOrder),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrders {
    orders: Vec<NewOrder>,
}

impl Shape for AddBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        if json.get("orders").is_none() {
            return NewOrder::check(json, at);
        }
        let map = object(json, at, &[required("orders", Kind::Array)])?;
        items(map, at, "orders", NewOrder::check)
    }
}

fn instant(v: &Json) -> Result<TimeMs, String> {
    match v {
        // 1.7e12 and 1700000000000.0 are the same whole number of milliseconds.
        Json::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64)
                    .map(|f| f as i64)
            })
            .map(TimeMs)
            .ok_or_else(|| "scheduledFor must be whole milliseconds".to_owned()),
        Json::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| TimeMs(t.as_millisecond()))
            .map_err(|e| format!("scheduledFor {s:?} is not an RFC 3339 instant: {e}")),
        _ => Err("scheduledFor must be milliseconds or an RFC 3339 instant".into()),
    }
}

/// The command for one new order, checked at the model's door with `limits` (the core checks
/// again; checking here answers a whole request before any of it is added).
fn add_command(o: NewOrder, limits: &OrderLimits) -> Result<Command, ApiError> {
    limits
        .check_id(&o.id)
        .map_err(|e| input_error(&e, e.to_string()))?;
    let id = OrderId::new(&o.id).map_err(|e| ApiError::bad(format!("order id {:?} {e}", o.id)))?;
    let bad = |e: String| ApiError::bad(format!("order {id}: {e}"));
    let workflow = WorkflowName::new(&o.workflow)
        .map_err(|e| bad(format!("workflow {:?} {e}", o.workflow)))?;
    let vars = match &o.args {
        None => Vars::new(),
        Some(a) => vars_from_json(a).map_err(bad)?,
    };
    let scheduled_for = o
        .scheduled_for
        .as_ref()
        .map(instant)
        .transpose()
        .map_err(bad)?;
    limits
        .check_add(&id, &vars, scheduled_for)
        .map_err(|e| input_error(&e, format!("order {id}: {e}")))?;
    let priority = match &o.priority {
        None | Some(Json::Null) => 0,
        Some(p) => p
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| bad(format!("priority {p} is not a whole number of 32 bits")))?,
    };
    let delete_when_terminated = match &o.delete_when_terminated {
        None | Some(Json::Null) => None,
        Some(Json::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(bad(format!(
                "deleteWhenTerminated {other} is not true or false"
            )));
        }
    };
    Ok(Command::AddWithOptions {
        id,
        workflow,
        vars,
        scheduled_for,
        options: OrderOptions {
            priority,
            delete_when_terminated,
        },
    })
}

/// `POST /orders`: one order or `{"orders": [...]}`; idempotent per id.
pub async fn add(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let body: AddBody = parse_body(&body)?;
    let orders = match body {
        AddBody::Many(many) => many.orders,
        AddBody::One(o) => vec![o],
    };
    if orders.len() > api.orders_per_request_max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} orders in one request; at most {} are accepted",
                orders.len(),
                api.orders_per_request_max
            ),
        ));
    }
    let commands: Vec<Command> = orders
        .into_iter()
        .map(|o| add_command(o, &api.order_limits))
        .collect::<Result<_, _>>()?;
    // Send them all before awaiting, so they share journal batches.
    let mut replies = Vec::with_capacity(commands.len());
    for command in commands {
        let id = match &command {
            Command::Add { id, .. } | Command::AddWithOptions { id, .. } => id.to_string(),
            _ => String::new(),
        };
        let (tx, rx) = oneshot::channel();
        api.core
            .send(Input::Command { command, reply: tx })
            .await
            .map_err(|_| stopping())?;
        replies.push((id, rx));
    }
    let single = replies.len() == 1;
    let mut results = Vec::with_capacity(replies.len());
    let mut last = 0;
    let mut no_space = None;
    for (id, rx) in replies {
        match rx.await.map_err(|_| stopping())? {
            Ok(r) => {
                last = last.max(r.last_event_id);
                results.push(json!({"id": id, "added": !r.duplicate, "duplicate": r.duplicate}));
            }
            Err(Refused::NoSpace(e)) => {
                results.push(
                    json!({"id": id, "added": false, "error": "no space left for the journal"}),
                );
                no_space.get_or_insert(e);
            }
            // One order: its refusal is the answer.
            Err(e) if single => return Err(command_error(e)),
            Err(e) => results.push(json!({"id": id, "added": false, "error": e.to_string()})),
        }
    }
    // Some orders may have been added before the journal filled up: `results` says which.
    if let Some(e) = no_space {
        let mut error = ApiError::no_space(&e);
        error.fields.insert("results".into(), json!(results));
        error.fields.insert("lastEventId".into(), json!(last));
        return Err(error);
    }
    Ok(axum::Json(json!({"results": results, "lastEventId": last})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KillBody {
    #[serde(default)]
    kill: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    #[serde(default)]
    position: Option<String>,
    #[serde(default)]
    vars: Option<Json>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    #[serde(default)]
    vars: Option<Json>,
}

/// `go` takes no fields.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GoBody {}

impl Shape for GoBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        object(json, at, &[]).map(|_| ())
    }
}

impl Shape for KillBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        object(json, at, &[optional("kill", Kind::String)]).map(|_| ())
    }
}

impl Shape for ResumeBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        object(
            json,
            at,
            &[
                optional("position", Kind::String),
                optional("vars", Kind::Any),
            ],
        )
        .map(|_| ())
    }
}

impl Shape for AnswerBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        object(json, at, &[optional("vars", Kind::Any)]).map(|_| ())
    }
}

fn kill(k: Option<String>) -> Result<Option<Kill>, ApiError> {
    match k.as_deref() {
        None => Ok(None),
        Some("term") => Ok(Some(Kill::Term)),
        Some("kill") => Ok(Some(Kill::Kill)),
        Some(other) => Err(ApiError::bad(format!(
            "kill must be \"term\" or \"kill\", not {other:?}"
        ))),
    }
}

fn order_id(id: &str) -> Result<OrderId, ApiError> {
    OrderId::new(id).map_err(|e| ApiError::bad(format!("order id {id:?} {e}")))
}

/// `POST /orders/{id}/{cancel|suspend|resume|answer|go}`.
pub async fn order_command(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path((id, verb)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let id = order_id(&id)?;
    let opt_vars = |v: Option<Json>| -> Result<Vars, ApiError> {
        v.map(|v| vars_from_json(&v).map_err(ApiError::bad))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let command = match verb.as_str() {
        "cancel" => Command::Cancel {
            id,
            kill: kill(parse_body::<KillBody>(&body)?.kill)?,
        },
        "suspend" => Command::Suspend {
            id,
            kill: kill(parse_body::<KillBody>(&body)?.kill)?,
        },
        "resume" => {
            let b: ResumeBody = parse_body(&body)?;
            let position = b
                .position
                .map(|p| {
                    p.parse::<Position>()
                        .map_err(|e| ApiError::bad(e.to_string()))
                })
                .transpose()?;
            Command::Resume {
                id,
                position,
                vars: opt_vars(b.vars)?,
            }
        }
        "answer" => Command::Answer {
            id,
            vars: opt_vars(parse_body::<AnswerBody>(&body)?.vars)?,
        },
        "go" => {
            parse_body::<GoBody>(&body)?;
            Command::Go { id }
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown order command {other:?}; use cancel, suspend, resume, answer or go"
                ),
            ));
        }
    };
    let reply = run(&api, command).await?;
    Ok(axum::Json(
        serde_json::to_value(reply).unwrap_or(Json::Null),
    ))
}

/// `DELETE /orders/{id}`: remove a terminated order.
pub async fn remove(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let reply = run(&api, Command::Remove { id: order_id(&id)? }).await?;
    Ok(axum::Json(
        serde_json::to_value(reply).unwrap_or(Json::Null),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeBody {
    key: String,
}

impl Shape for NoticeBody {
    fn check(json: &Json, at: &str) -> Result<(), String> {
        object(json, at, &[required("key", Kind::String)]).map(|_| ())
    }
}

/// `POST /notices/{board}`: post a notice by hand.
pub async fn post_notice(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path(board): Path<String>,
    body: Bytes,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let board = BoardName::new(&board).map_err(|e| ApiError::bad(format!("board {e}")))?;
    let body: NoticeBody = parse_body(&body)?;
    let reply = run(
        &api,
        Command::PostNotice {
            board,
            key: body.key,
        },
    )
    .await?;
    Ok(axum::Json(
        serde_json::to_value(reply).unwrap_or(Json::Null),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
}

/// Orders listed in one answer at most.
const LIST_ORDERS_MAX: usize = 10_000;

/// Orders a list answer may hold without a place among the large answers
/// (`limits.state_reads_max`, see [`super::whole`]): pages this small cost little however
/// many are written at once.
pub const LIST_ORDERS_UNBOUNDED_MAX: usize = 100;

/// `GET /orders?state=&workflow=&limit=`.
///
/// The core copies the orders of the page between two batches (no JSON in the core); the
/// answer is written from that copy. A page that may hold more than
/// [`LIST_ORDERS_UNBOUNDED_MAX`] orders is a large answer: it needs a place, as `/state` does
/// (503 when none is free), and is streamed from a blocking thread, which hands the copy's
/// memory back to the system when it is written.
pub async fn list(AxState(api): AxState<Api>, Query(q): Query<ListQuery>) -> Response {
    if let Some(state) = &q.state
        && let Err(e) = ordo_api::view::check_state_name(state)
    {
        return ApiError::bad(e).into_response();
    }
    let limit = q.limit.unwrap_or(LIST_ORDERS_MAX).min(LIST_ORDERS_MAX);
    let permit = if limit > LIST_ORDERS_UNBOUNDED_MAX {
        match super::whole::admit(&api) {
            Some(permit) => Some(permit),
            None => return super::whole::busy(&api),
        }
    } else {
        None
    };
    let read = api
        .read(move |s: &State, _| {
            s.world
                .orders
                .values()
                .filter(|o| q.state.as_deref().is_none_or(|st| o.state.name() == st))
                .filter(|o| {
                    q.workflow
                        .as_deref()
                        .is_none_or(|w| o.workflow.as_str() == w)
                })
                .take(limit)
                .cloned()
                .collect::<Vec<Order>>()
        })
        .await;
    let orders = match read {
        Ok(orders) => orders,
        Err(e) => return e.into_response(),
    };
    match permit {
        Some(permit) if orders.len() > LIST_ORDERS_UNBOUNDED_MAX => {
            super::whole::json_answer(ordo_net::body::streamed(permit, move |w| {
                write_order_list(w, &orders)
            }))
        }
        _ => {
            let mut text = Vec::new();
            match write_order_list(&mut text, &orders) {
                Ok(()) => super::whole::json_answer(text.into()),
                Err(e) => {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                }
            }
        }
    }
}

/// `{"orders": [order, ...]}`, one order at a time.
fn write_order_list(w: &mut impl std::io::Write, orders: &[Order]) -> std::io::Result<()> {
    w.write_all(b"{\"orders\":[")?;
    for (i, order) in orders.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut *w, &order_view(order)).map_err(std::io::Error::from)?;
    }
    w.write_all(b"]}")
}

/// `GET /orders/{id}`.
pub async fn show(
    AxState(api): AxState<Api>,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let id = order_id(&id)?;
    let shown = id.clone();
    // Committed state only: the active controller's state may hold proposals not yet
    // committed, which a failover could drop.
    super::events::read_durable(&api, move |s| {
        s.world.order(&id).map(|o| order_view_waiting(&s.world, o))
    })
    .await?
    .1
    .map(axum::Json)
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("order {shown} does not exist"),
        )
    })
}

/// `GET /orders/{id}/log`: the order's job output as text.
pub async fn log(AxState(api): AxState<Api>, Path(id): Path<String>) -> Result<String, ApiError> {
    let id = order_id(&id)?;
    let shown = id.clone();
    let ids = api
        .read(move |s, _| {
            s.world
                .order(&id)
                .map(|_| s.logs.get(&id).cloned().unwrap_or_default())
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("order {shown} does not exist"),
            )
        })?;
    let journal = api.journal.clone();
    tokio::task::spawn_blocking(move || read_log(&journal, &ids))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

fn read_log(journal: &ordo_journal::Journal, ids: &[u64]) -> Result<String, ApiError> {
    let mut out = Vec::new();
    let internal = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e);
    for id in ids {
        let mut reader = journal
            .read_after(id - 1)
            .map_err(|e| ApiError::new(StatusCode::GONE, format!("log no longer kept: {e}")))?;
        let Some(record) = reader.next() else {
            continue;
        };
        let record = record.map_err(|e| internal(e.to_string()))?;
        let stored =
            Record::decode(record.id, &record.data).map_err(|e| internal(e.to_string()))?;
        match stored.body {
            Body::Agent {
                body: AgentEventBody::Output { chunk, .. },
                ..
            } => out.extend_from_slice(&chunk),
            Body::Agent {
                body: AgentEventBody::OutputTruncated { cap_bytes, .. },
                ..
            } => out.extend_from_slice(
                format!("\n[output truncated after {cap_bytes} bytes]\n").as_bytes(),
            ),
            _ => {}
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `GET /agents`: each deployed agent with its link status.
pub async fn agents(AxState(api): AxState<Api>) -> Result<axum::Json<AgentLinks>, ApiError> {
    let deployed = api
        .read(|s, _| s.world.agents.values().cloned().collect::<Vec<_>>())
        .await?;
    let status = api.links.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let agents = deployed
        .iter()
        .map(|a| {
            let s = status.get(&a.id).cloned().unwrap_or_default();
            AgentLinkView {
                id: a.id.to_string(),
                url: a.url.clone(),
                connected: s.connected,
                coupled_url: s.coupled_url,
                connected_since_ms: s.connected_since_ms,
                last_error: s.last_error,
                subagent_health: s
                    .meta
                    .as_ref()
                    .map(|m| ordo_api::view::subagent_views(&m.subagents, &s.subagent_health))
                    .unwrap_or_default(),
                meta: s.meta,
            }
        })
        .collect();
    Ok(axum::Json(AgentLinks { agents }))
}
