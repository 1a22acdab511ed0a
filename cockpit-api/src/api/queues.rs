//! `GET /api/v1/queues`: orders by queue — waiting for a process, running, finished, failed
//! ([`ordo_api::queue`] defines which order is in which; every other order is in none).
//!
//! Bounded: each queue is counted over at most `limits.orders_scanned_per_page_max` orders of
//! its state (beyond that its `countComplete` is false) and lists at most `limit` orders (1 to
//! `orders_per_page_max`, default [`QUEUE_ORDERS_DEFAULT`]), in id order; `queue` with `after`
//! pages through one queue (its `next`); `after` alone lists every queue from that id on.

use super::read::query;
use super::{ApiError, App, json_response};
use crate::view::OrderRow;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use ordo_api::queue::{QUEUES, Queue, order_agent, queue_of};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Orders listed per queue when the request does not say.
pub const QUEUE_ORDERS_DEFAULT: usize = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueuesQuery {
    /// Orders with this agent: held by it (or being handed to or from it), or ready at one of
    /// its jobs. Ended orders are back at the controller and have no agent.
    #[serde(default)]
    pub agent: Option<String>,
    /// Workflow name.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Only this queue: waiting, running, finished or failed.
    #[serde(default)]
    pub queue: Option<String>,
    /// Orders listed per queue, 1 to `orders_per_page_max` (larger values are cut to it).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Orders after this order id (a queue's `next`; pass it with `queue` to page through that
    /// queue, without to list every queue from that id on).
    #[serde(default)]
    pub after: Option<String>,
}

/// One queue: how many orders are in it and the first of them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueJson {
    /// waiting, running, finished or failed.
    pub queue: &'static str,
    /// Orders in the queue that match the filters.
    pub count: usize,
    /// False when the queue's state held more orders than the cockpit looks at in one
    /// request (`limits.orders_scanned_per_page_max`): `count` is then a lower bound.
    pub count_complete: bool,
    /// The first `limit` of them (after `after`), in id order.
    pub orders: Vec<OrderRow>,
    /// Pass as `after` (with `queue`) for the next orders of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/v1/queues`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueList {
    /// The view's last applied event id.
    pub event_id: u64,
    pub queues: Vec<QueueJson>,
}

/// `GET /api/v1/queues`.
#[utoipa::path(get, path = "/api/v1/queues", tag = "orders", security(("bearer" = [])),
    params(QueuesQuery),
    responses((status = 200, description = "Orders by queue: waiting for a process, running, finished, failed", body = QueueList),
        (status = 400, description = "A bad parameter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn queues(
    AxState(app): AxState<App>,
    q: Result<Query<QueuesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut q = query(q)?;
    // An empty parameter is no parameter (`?after=` is how a form sends an unset one); an
    // empty `queue` names no queue and is refused like any other unknown name.
    for p in [&mut q.agent, &mut q.workflow, &mut q.after] {
        if p.as_deref().is_some_and(str::is_empty) {
            *p = None;
        }
    }
    let only = q
        .queue
        .as_deref()
        .map(Queue::parse)
        .transpose()
        .map_err(ApiError::bad)?;
    if q.limit == Some(0) {
        return Err(ApiError::bad("limit must be at least 1"));
    }
    let max = app.limits.orders_per_page_max;
    let limit = q.limit.unwrap_or(QUEUE_ORDERS_DEFAULT).clamp(1, max.max(1));
    let scan_max = app.limits.orders_scanned_per_page_max;
    let v = app.shared.read();
    let world = &v.state.world;
    let mut queues = Vec::new();
    for queue in QUEUES {
        if only.is_some_and(|o| o != queue) {
            continue;
        }
        let mut out = QueueJson {
            queue: queue.name(),
            count: 0,
            count_complete: true,
            orders: Vec::new(),
            next: None,
        };
        let mut more = false;
        for (scanned, id) in v.ids_in_state(queue.state_name()).enumerate() {
            if scanned >= scan_max {
                out.count_complete = false;
                break;
            }
            let Some(o) = world.orders.get(id) else {
                continue;
            };
            let matches = queue_of(world, o) == Some(queue)
                && q.workflow
                    .as_deref()
                    .is_none_or(|w| o.workflow.as_str() == w)
                && q.agent
                    .as_deref()
                    .is_none_or(|a| order_agent(world, o).is_some_and(|x| x.as_str() == a));
            if !matches {
                continue;
            }
            out.count += 1;
            if q.after.as_deref().is_some_and(|after| id.as_str() <= after) {
                continue;
            }
            if out.orders.len() < limit {
                out.orders.push(v.order_row(o));
            } else {
                more = true;
            }
        }
        if more {
            out.next = out.orders.last().map(|r| r.order.id.clone());
        }
        queues.push(out);
    }
    Ok(json_response(&QueueList {
        event_id: v.last_event_id(),
        queues,
    }))
}
