//! The daily plan: `GET /api/v1/plan` and `GET /api/v1/plan/explain` from the view; skip,
//! pause, resume and the cancel of a day forwarded to the controller.

use super::commands::{CommandReply, forward, order_segment, segment};
use super::read::{check_order_id, query};
use super::{ApiError, App, Caller, json_response};
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use ordo_api::auth::Role;
use ordo_api::plan::{ExplanationView, PlanFilter, PlanView, check_date, explain_view, plan_view};
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
    if let Some(name) = &q.schedule {
        ordo_model::ids::ScheduleName::new(name.as_str())
            .map_err(|e| ApiError::bad(format!("schedule {name:?}: {e}")))?;
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
    let path = format!("/api/v1/plan/orders/{}/skip", order_segment(&id)?);
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

/// Parameters of `GET /api/v1/plan/explain`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// The schedule.
    pub schedule: String,
    /// The local date in the schedule's time zone, `YYYY-MM-DD`.
    #[param(format = Date)]
    pub date: String,
}

/// `GET /api/v1/plan/explain`: why each instant of a schedule's local date is in the plan or
/// not: its calendar, a change of the UTC offset, the `missed:` policy, a pause, a skip, a
/// deployment that replaced it.
#[utoipa::path(get, path = "/api/v1/plan/explain", tag = "plan", security(("bearer" = [])),
    params(ExplainQuery),
    responses((status = 200, description = "The wall times of the day and what became of them", body = ExplanationView),
        (status = 400, description = "A bad parameter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 404, description = "No such schedule", body = super::ErrorBody)))]
pub async fn explain(
    AxState(app): AxState<App>,
    q: Result<Query<ExplainQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let view = explain_view(&app.shared.read().state, &q.schedule, &q.date);
    match view {
        Ok(v) => Ok(json_response(&v)),
        Err((true, message)) => Err(ApiError::new(StatusCode::NOT_FOUND, message)),
        Err((false, message)) => Err(ApiError::bad(message)),
    }
}

/// Parameters of `POST /api/v1/plan/dates/{date}/cancel`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CancelDayQuery {
    /// Only this schedule (all when left out).
    pub schedule: Option<String>,
}

/// `POST /api/v1/plan/dates/{date}/cancel` (operator): the planned instants of that local
/// date not started are skipped (`cancelled`): not added, or their orders cancelled.
#[utoipa::path(post, path = "/api/v1/plan/dates/{date}/cancel", tag = "plan",
    security(("bearer" = [])),
    params(("date" = String, Path, format = Date, description = "The local date, YYYY-MM-DD"), CancelDayQuery),
    responses((status = 200, description = "Cancelled", body = CommandReply),
        (status = 400, description = "A bad date or schedule name", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "No such schedule", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn cancel_day(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(date): Path<String>,
    q: Result<Query<CancelDayQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let q = query(q)?;
    check_date(&date).map_err(ApiError::bad)?;
    let mut path = format!("/api/v1/plan/dates/{}/cancel", segment(&date)?);
    if let Some(name) = &q.schedule {
        ordo_model::ids::ScheduleName::new(name)
            .map_err(|e| ApiError::bad(format!("schedule name {name:?} {e}")))?;
        path.push_str(&format!("?schedule={}", segment(name)?));
    }
    forward(&app, Method::POST, &path, None).await
}

/// Parameters of `POST /api/v1/plan/schedules/{name}/backfill`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BackfillQuery {
    /// The first local date, `YYYY-MM-DD`.
    #[param(format = Date)]
    pub from: String,
    /// The last local date (included), `YYYY-MM-DD`.
    #[param(format = Date)]
    pub until: String,
}

/// `POST /api/v1/plan/schedules/{name}/backfill` (operator): the orders of the schedule's
/// instants on the local dates `from..=until` that have passed and whose order was never added
/// are added now; they start at once (`missed:` does not apply). Ids are the plan's: a second
/// backfill adds nothing twice.
#[utoipa::path(post, path = "/api/v1/plan/schedules/{name}/backfill", tag = "plan",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Schedule name"), BackfillQuery),
    responses((status = 200, description = "Added", body = CommandReply),
        (status = 400, description = "A bad date or name, a range too long, too many instants", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 404, description = "No such schedule", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn backfill(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<BackfillQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let q = query(q)?;
    check_date(&q.from).map_err(ApiError::bad)?;
    check_date(&q.until).map_err(ApiError::bad)?;
    ordo_model::ids::ScheduleName::new(&name)
        .map_err(|e| ApiError::bad(format!("schedule name {name:?} {e}")))?;
    let path = format!(
        "/api/v1/plan/schedules/{}/backfill?from={}&until={}",
        segment(&name)?,
        segment(&q.from)?,
        segment(&q.until)?
    );
    forward(&app, Method::POST, &path, None).await
}
