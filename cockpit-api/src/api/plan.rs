//! The daily plan: `GET /api/v1/plan` from the view, skip, pause and resume forwarded to the
//! controller.

use super::commands::{CommandReply, escape_id, forward, segment};
use super::read::{check_order_id, query};
use super::{ApiError, App, Caller, json_response};
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::Method;
use axum::response::Response;
use ordo_api::auth::Role;
use ordo_api::plan::{PlanFilter, PlanView, check_date, plan_view};
use serde::Deserialize;
use utoipa::IntoParams;

/// Filters of `GET /api/v1/plan`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// The local date of the instants in their schedule's time zone, `YYYY-MM-DD`.
    #[param(format = Date)]
    pub date: Option<String>,
    /// One schedule.
    pub schedule: Option<String>,
}

/// `GET /api/v1/plan`.
#[utoipa::path(get, path = "/api/v1/plan", tag = "plan", security(("bearer" = [])),
    params(PlanQuery),
    responses((status = 200, description = "The schedules and their planned instants, by instant", body = PlanView),
        (status = 400, description = "A bad parameter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn show(
    AxState(app): AxState<App>,
    q: Result<Query<PlanQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    if let Some(d) = &q.date {
        check_date(d).map_err(ApiError::bad)?;
    }
    let filter = PlanFilter {
        date: q.date,
        schedule: q.schedule,
    };
    let view = plan_view(&app.shared.read().state, &filter);
    Ok(json_response(&view))
}

/// `POST /api/v1/plan/orders/{id}/skip` (operator): the planned order is not added, or is
/// cancelled if it was added and has not started.
#[utoipa::path(post, path = "/api/v1/plan/orders/{id}/skip", tag = "plan",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The planned order's id, #date#schedule@time±offset")),
    responses((status = 200, description = "Skipped", body = CommandReply),
        (status = 400, description = "Not an order id", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "No such planned order", body = super::ErrorBody),
        (status = 409, description = "Its order has started", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn skip(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    check_order_id(&id)?;
    let path = format!("/api/v1/plan/orders/{}/skip", escape_id(segment(&id)?));
    forward(&app, Method::POST, &path, None).await
}

async fn schedule_command(
    app: App,
    caller: Caller,
    name: String,
    verb: &str,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    ordo_model::ids::ScheduleName::new(&name)
        .map_err(|e| ApiError::bad(format!("schedule name {name:?} {e}")))?;
    let path = format!("/api/v1/plan/schedules/{}/{verb}", segment(&name)?);
    forward(&app, Method::POST, &path, None).await
}

/// `POST /api/v1/plan/schedules/{name}/pause` (operator): the schedule adds no orders; its
/// orders added and not started are cancelled.
#[utoipa::path(post, path = "/api/v1/plan/schedules/{name}/pause", tag = "plan",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "Paused (or paused already)", body = CommandReply),
        (status = 400, description = "Not a schedule name", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "No such schedule", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn pause(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    schedule_command(app, caller, name, "pause").await
}

/// `POST /api/v1/plan/schedules/{name}/resume` (operator): the schedule adds orders again;
/// instants passed while it was paused follow its `missed:` policy.
#[utoipa::path(post, path = "/api/v1/plan/schedules/{name}/resume", tag = "plan",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "Resumed (or running already)", body = CommandReply),
        (status = 400, description = "Not a schedule name", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "No such schedule", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn resume(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    schedule_command(app, caller, name, "resume").await
}
