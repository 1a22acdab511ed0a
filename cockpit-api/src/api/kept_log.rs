//! The job output of a fork child a join removed from the controller's state, which the view
//! keeps while its parent lives: the controller no longer answers `/orders/{child}/log`, so
//! the cockpit reads the child's output events from the controller's stream itself, in the
//! controller's text form.

use super::{ApiError, App};
use crate::upstream::UpstreamError;
use axum::http::StatusCode;
use ordo_api::record::Body;
use ordo_model::wire::AgentEventBody;

/// Pages of the controller's stream read for one kept child's output, at most.
const PAGES_MAX: usize = 10_000;

/// Output bytes answered for one kept child, at most (the rest is cut with a note).
const LOG_BYTES_MAX: usize = 16 << 20;

/// The output of `id` when it is a kept child of the view; `None` when it is not one (the
/// controller answers then).
pub async fn kept_child_log(app: &App, id: &str) -> Option<Result<String, ApiError>> {
    let chunks: Vec<u64> = {
        let v = app.shared.read();
        if !v.is_kept(id) {
            return None;
        }
        v.state.logs.get(id).cloned().unwrap_or_default()
    };
    Some(read(app, id, &chunks).await)
}

async fn read(app: &App, id: &str, chunks: &[u64]) -> Result<String, ApiError> {
    let (Some(&first), Some(&last)) = (chunks.first(), chunks.last()) else {
        return Ok(String::new());
    };
    let mut out = Vec::new();
    let mut cursor = first - 1;
    let mut pages = 0;
    while cursor < last && pages < PAGES_MAX && out.len() < LOG_BYTES_MAX {
        pages += 1;
        let n = app.upstream.urls().len().max(1);
        let page = app
            .upstream
            .events_page(app.upstream.current() % n, cursor, 1000)
            .await
            .map_err(|e| match e {
                UpstreamError::Gone { .. } => ApiError::new(
                    StatusCode::GONE,
                    format!("the output of {id} is no longer kept"),
                ),
                e => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
            })?;
        if page.is_empty() {
            break;
        }
        for e in page {
            if e.event_id > last {
                break;
            }
            cursor = e.event_id;
            let Body::Agent { body, .. } = &e.stored.body else {
                continue;
            };
            match body {
                AgentEventBody::Output {
                    order_id, chunk, ..
                } if order_id.as_str() == id => out.extend_from_slice(chunk),
                AgentEventBody::OutputTruncated {
                    order_id,
                    cap_bytes,
                    ..
                } if order_id.as_str() == id => out.extend_from_slice(
                    format!("\n[output truncated after {cap_bytes} bytes]\n").as_bytes(),
                ),
                _ => {}
            }
        }
    }
    if out.len() > LOG_BYTES_MAX {
        out.truncate(LOG_BYTES_MAX);
        out.extend_from_slice(b"\n[cut by the cockpit]\n");
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
