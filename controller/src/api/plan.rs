//! Routes of the daily plan: `GET /plan`, `POST /plan/orders/{id}/skip`,
//! `POST /plan/schedules/{name}/{pause|resume}`.

use super::{Api, ApiError, Caller, stopping};
use crate::config::Role;
use crate::core::Input;
use crate::plan::PlanCommand;
use axum::Extension;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use ordo_api::plan::{PlanFilter, PlanView, check_date, plan_view};
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

/// `POST /plan/schedules/{name}/{pause|resume}`.
pub async fn schedule_command(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path((name, verb)): Path<(String, String)>,
) -> Result<axum::Json<Json>, ApiError> {
    caller.require(Role::Operator)?;
    let schedule = ScheduleName::new(&name)
        .map_err(|e| ApiError::bad(format!("schedule name {name:?} {e}")))?;
    let command = match verb.as_str() {
        "pause" => PlanCommand::Pause { schedule },
        "resume" => PlanCommand::Resume { schedule },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown schedule command {other:?}; use pause or resume"),
            ));
        }
    };
    run(&api, command).await
}
