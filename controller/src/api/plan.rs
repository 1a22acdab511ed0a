//! Routes of the daily plan: `GET /plan`, `POST /plan/orders/{id}/skip`,
//! `POST /plan/schedules/{name}/{pause|resume}`, `GET /plan/explain`,
//! `POST /plan/dates/{date}/cancel`.

use super::{Api, ApiError, Caller, stopping};
use crate::config::Role;
use crate::core::Input;
use crate::plan::PlanCommand;
use axum::Extension;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use ordo_api::plan::{ExplanationView, PlanFilter, PlanView, check_date, explain_view, plan_view};
use ordo_model::ids::{OrderId, ScheduleName};
use serde::Deserialize;
use serde_json::Value as Json;
use tokio::sync::oneshot;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    date: Option<String>,
    schedule: Option<String>,
}

/// `GET /plan?date=&schedule=`.
pub async fn show(
    AxState(api): AxState<Api>,
    Query(q): Query<PlanQuery>,
) -> Result<axum::Json<PlanView>, ApiError> {
    if let Some(d) = &q.date {
        check_date(d).map_err(ApiError::bad)?;
    }
    if let Some(name) = &q.schedule {
        ScheduleName::new(name.as_str())
            .map_err(|e| ApiError::bad(format!("schedule name {name:?} {e}")))?;
    }
    let filter = PlanFilter {
        date: q.date,
        schedule: q.schedule,
    };
    let view = api.read(move |s, _| plan_view(s, &filter)).await?;
    Ok(axum::Json(view))
}

async fn run(api: &Api, command: PlanCommand) -> Result<axum::Json<Json>, ApiError> {
    let (tx, rx) = oneshot::channel();
    api.core
        .send(Input::Plan { command, reply: tx })
        .await
        .map_err(|_| stopping())?;
    let reply = rx
        .await
        .map_err(|_| stopping())?
        .map_err(super::orders::command_error)?;
    Ok(axum::Json(
        serde_json::to_value(reply).unwrap_or(Json::Null),
    ))
}

/// `POST /plan/orders/{id}/skip`: the planned order is not added, or cancelled if it was
/// added and has not started.
pub async fn skip(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let order = OrderId::new(&id).map_err(|e| ApiError::bad(format!("order id {id:?} {e}")))?;
    run(&api, PlanCommand::Skip { order }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleQuery {
    from: Option<String>,
    until: Option<String>,
}

/// `POST /plan/schedules/{name}/{pause|resume}`, `POST /plan/schedules/{name}/backfill?from=&until=`.
pub async fn schedule_command(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path((name, verb)): Path<(String, String)>,
    Query(q): Query<ScheduleQuery>,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let schedule = ScheduleName::new(&name)
        .map_err(|e| ApiError::bad(format!("schedule name {name:?} {e}")))?;
    let date = |flag: &str, v: Option<String>| {
        let v = v.ok_or_else(|| ApiError::bad(format!("{flag} is needed (YYYY-MM-DD)")))?;
        v.parse::<ordo_model::schedule::plan::Date>()
            .map_err(|e| ApiError::bad(format!("bad {flag} {v:?} (YYYY-MM-DD): {e}")))
    };
    let command = match verb.as_str() {
        "pause" => PlanCommand::Pause { schedule },
        "resume" => PlanCommand::Resume { schedule },
        "backfill" => PlanCommand::Backfill {
            schedule,
            from: date("from", q.from)?,
            until: date("until", q.until)?,
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown schedule command {other:?}; use pause, resume or backfill"),
            ));
        }
    };
    run(&api, command).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    schedule: String,
    date: String,
}

/// `GET /plan/explain?schedule=&date=`.
pub async fn explain(
    AxState(api): AxState<Api>,
    Query(q): Query<ExplainQuery>,
) -> Result<axum::Json<ExplanationView>, ApiError> {
    let view = api
        .read(move |s, _| explain_view(s, &q.schedule, &q.date))
        .await?;
    match view {
        Ok(v) => Ok(axum::Json(v)),
        Err((true, message)) => Err(ApiError::new(StatusCode::NOT_FOUND, message)),
        Err((false, message)) => Err(ApiError::bad(message)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    schedule: Option<String>,
}

/// `POST /plan/dates/{date}/cancel?schedule=`.
pub async fn cancel_day(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path(date): Path<String>,
    Query(q): Query<CancelQuery>,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let date = date
        .parse::<ordo_model::schedule::plan::Date>()
        .map_err(|e| ApiError::bad(format!("bad date {date:?} (YYYY-MM-DD): {e}")))?;
    let schedule = match q.schedule {
        Some(name) => Some(
            ScheduleName::new(&name)
                .map_err(|e| ApiError::bad(format!("schedule name {name:?} {e}")))?,
        ),
        None => None,
    };
    run(&api, PlanCommand::CancelDay { date, schedule }).await
}
