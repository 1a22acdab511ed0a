//! Large answers: `GET /state` (the lossless state), `GET /snapshot` (summaries), and the
//! places that bound them (order lists of more than
//! [`LIST_ORDERS_UNBOUNDED_MAX`](super::orders::LIST_ORDERS_UNBOUNDED_MAX) orders take one
//! too, see [`super::orders::list`]).
//!
//! Each answer is consistent at one event id: the core copies what the answer needs between
//! two batches (a clone, much cheaper than serialising, so the core pauses briefly), and the
//! JSON is written from that copy on a blocking thread into a streamed body
//! ([`ordo_net::body`]). An answer therefore costs one copy of the state while it is written,
//! never its whole JSON text or a JSON tree, and a slow reader slows only its own writer. At
//! most `limits.state_reads_max` large answers are written at once; one more gets 503
//! with `Retry-After: 1` at once rather than a place in a queue, so that readers never pile
//! up copies of the state. The answer waits until its event id is durable, so a reader can
//! always continue the event stream from it. Once written, the copy is dropped and the
//! allocator is asked to hand free memory back to the system, so a burst of large answers
//! does not leave the controller at its peak size.

use super::events::read_durable;
use super::{Api, ApiError};
use axum::extract::State as AxState;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;

/// A place among the large answers being written, if one is free.
pub(super) fn admit(api: &Api) -> Option<OwnedSemaphorePermit> {
    api.state_reads.clone().try_acquire_owned().ok()
}

/// The answer when every place is taken: 503, retry in a second.
pub(super) fn busy(api: &Api) -> Response {
    let mut answer = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "{} large answers (GET /state, /snapshot, order lists of more than {} orders) are being written already (limits.state_reads_max); retry in a second",
            api.state_reads_max,
            super::orders::LIST_ORDERS_UNBOUNDED_MAX
        ),
    )
    .into_response();
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

pub(super) fn json_answer(body: axum::body::Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /state`: `{formatVersion, eventId, state}`, the whole state at `eventId`
/// ([`ordo_api::frame::StateSnapshot`]), for readers that fold the event stream themselves
/// (the cockpit).
pub async fn state(AxState(api): AxState<Api>) -> Response {
    let Some(permit) = admit(&api) else {
        return busy(&api);
    };
    let (id, state) = match read_durable(&api, |s| s.clone()).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    json_answer(ordo_net::body::streamed(permit, move |w| {
        ordo_api::frame::write_state_snapshot(w, id, &state)
    }))
}

/// `GET /snapshot`: the state at the event id it names (orders, workflows, agents, locks,
/// boards as summaries); continue with `GET /events?after=<eventId>`.
pub async fn snapshot(AxState(api): AxState<Api>) -> Response {
    let Some(permit) = admit(&api) else {
        return busy(&api);
    };
    let (id, w) = match read_durable(&api, |s| s.world.clone()).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    json_answer(ordo_net::body::streamed(permit, move |out| {
        ordo_api::view::write_snapshot(out, id, &w)
    }))
}
