//! `POST /api/v1/bulk/resume` (operator): resends the orders a filter matches — the failed
//! orders of a workflow since a time, say — as JS7's "resume all failed orders" does.
//!
//! Body: `{state?, workflow?, agent?, since?, until?, position?}`; the filter is the order
//! list's (`GET /api/v1/orders`), `state` is `failed` (the default) or `suspended`. The orders
//! are those the view holds when the request arrives, at most [`BULK_ORDERS_MAX`] (more is a
//! 413 that asks for a narrower filter). Each is resumed by the controller exactly as
//! `POST /api/v1/orders/{id}/resume` would (at `position` when given, else where it stopped),
//! one after another. The answer counts them: `{matched, resumed, refused: [{id, status,
//! error}]}`; an order the controller refuses (it moved on meanwhile, say) does not stop the
//! others.

use super::commands::{order_segment, wait_applied};
use super::{ApiError, App, Caller};
use crate::view::OrderQuery;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::extract::rejection::BytesRejection;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ordo_api::auth::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Orders one bulk command acts on at most.
pub const BULK_ORDERS_MAX: usize = 10_000;

/// Order states a bulk resume takes.
const RESUMABLE: [&str; 2] = ["failed", "suspended"];

/// What to resume.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkResumeBody {
    /// `failed` (default) or `suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Only orders of this workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Only orders held by this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Only orders added at or after this instant, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Only orders added before this instant, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Resume every order at this position (`2/try/0`) instead of where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// An order the controller did not resume, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Refused {
    pub id: String,
    /// The controller's HTTP status.
    pub status: u16,
    pub error: String,
}

/// What a bulk resume did.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkReply {
    /// Orders the filter matched.
    pub matched: usize,
    /// Of those, orders the controller resumed.
    pub resumed: usize,
    /// The others, with the controller's reason.
    pub refused: Vec<Refused>,
}

/// `POST /api/v1/bulk/resume`.
#[utoipa::path(post, path = "/api/v1/bulk/resume", tag = "commands", security(("bearer" = [])),
    request_body(content = Option<BulkResumeBody>, description = "The filter; may be empty (every failed order)"),
    responses((status = 200, description = "How many orders matched and were resumed", body = BulkReply),
        (status = 400, description = "A bad body or filter", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "A viewer", body = super::ErrorBody),
        (status = 413, description = "Body too large, or more orders match than one bulk command takes", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody)))]
pub async fn resume(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let b = super::commands::body(b, app.limits.request_bytes_max)?;
    let filter = filter(&b)?;
    let state = filter.state.clone().unwrap_or_else(|| "failed".into());
    if !RESUMABLE.contains(&state.as_str()) {
        return Err(ApiError::bad(format!(
            "state {state:?} cannot be resumed; resumable states: {}",
            RESUMABLE.join(", ")
        )));
    }
    let ids = matching(&app, &filter, state)?;
    let resume_body = Bytes::from(
        serde_json::to_vec(&serde_json::json!({ "position": filter.position }))
            .map_err(|e| ApiError::bad(format!("position cannot be sent: {e}")))?,
    );
    let mut reply = BulkReply {
        matched: ids.len(),
        resumed: 0,
        refused: Vec::new(),
    };
    let mut last_event_id = 0;
    for id in ids {
        let path = format!("/api/v1/orders/{}/resume", order_segment(&id)?);
        let r = app
            .upstream
            .forward(
                Method::POST,
                &path,
                Some((resume_body.clone(), "application/json")),
            )
            .await
            .map_err(ApiError::upstream)?;
        let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if r.status.is_success() {
            reply.resumed += 1;
            let id = answer["lastEventId"].as_u64().unwrap_or(0);
            last_event_id = last_event_id.max(id);
        } else {
            let error = answer["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
            reply.refused.push(Refused {
                id,
                status: r.status.as_u16(),
                error,
            });
        }
    }
    debug_assert_eq!(reply.resumed + reply.refused.len(), reply.matched);
    wait_applied(&app, last_event_id).await;
    Ok((StatusCode::OK, axum::Json(reply)).into_response())
}

/// The filter of a body: empty (every failed order) or a JSON object of [`BulkResumeBody`]'s
/// fields (serde would also take an array of its fields in order; that is refused).
fn filter(b: &Bytes) -> Result<BulkResumeBody, ApiError> {
    if b.is_empty() {
        return Ok(BulkResumeBody::default());
    }
    let bad = |e: serde_json::Error| ApiError::bad(format!("bad JSON body: {e}"));
    match serde_json::from_slice::<serde_json::Value>(b).map_err(bad)? {
        v @ serde_json::Value::Object(_) => serde_json::from_value(v).map_err(bad),
        other => Err(ApiError::bad(format!(
            "the body must be a JSON object of filters, not {other}"
        ))),
    }
}

/// The ids of the orders in `state` that `filter` matches, at most [`BULK_ORDERS_MAX`].
fn matching(app: &App, filter: &BulkResumeBody, state: String) -> Result<Vec<String>, ApiError> {
    let query = OrderQuery {
        state: Some(state),
        workflow: filter.workflow.clone(),
        agent: filter.agent.clone(),
        since: filter.since,
        until: filter.until,
        after: None,
        limit: BULK_ORDERS_MAX,
    };
    let v = app.shared.read();
    // The state's index holds only orders in that state, so every one looked at may match.
    let (page, next) = v.list(&query, usize::MAX);
    if next.is_some() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "more than {BULK_ORDERS_MAX} orders match; narrow the filter (workflow, since, until)"
            ),
        ));
    }
    Ok(page.into_iter().map(|o| o.id.to_string()).collect())
}
