//! The controller pair: every voter's health (viewer), and the cluster operations (admin),
//! checked here and forwarded to the active controller.
//!
//! | Route | Role | Body → answer |
//! |---|---|---|
//! | `GET /api/v1/cluster` | viewer | → `{active, members: [{url, configured, health?, error?}]}` ([`ClusterView`]) |
//! | `POST /api/v1/cluster/switchover` | admin | `{to?: node id}` (or no body: the other controller) → 202 `{from, to}` |
//! | `POST /api/v1/cluster/nodes` | admin | `{id: node id}` (already in every node's `cluster.nodes`) → 202 `{id, index}` |
//! | `DELETE /api/v1/cluster/nodes/{id}` | admin | → 202 `{id, index}` |

use super::commands::{body, forward};
use super::{ApiError, App, Caller, json_response};
use crate::cluster::ClusterView;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State as AxState};
use axum::http::Method;
use axum::response::Response;
use ordo_api::auth::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/cluster`: every configured controller's `/health` (or why it cannot be
/// read), then the other voters they name (the watch), and the active controller.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, description = "Every voter's health, read now", body = ClusterView),
        (status = 401, description = "No or unknown token", body = super::ErrorBody)))]
pub async fn status(AxState(app): AxState<App>) -> Response {
    let view =
        crate::cluster::probe_all(&app.shared, &app.upstream, app.health_timeout_ms, true).await;
    json_response(&view)
}

/// `{to?}`: the node to hand the active role to; by default the other controller.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchoverBody {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral_option"
    )]
    pub to: Option<u64>,
}

/// The largest integer a JSON number written as a float holds exactly (2^53).
const FLOAT_INTEGER_MAX: f64 = 9_007_199_254_740_992.0;

/// A JSON integer, also when written as a float without a fraction (`2.0`), as JSON Schema's
/// `integer` allows.
fn integral_number(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=FLOAT_INTEGER_MAX).contains(f))
            .map(|f| f as u64)
    })
}

fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    integral_number(&n)
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a node id (1 or more)")))
}

fn integral_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => integral_number(&n)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a node id (1 or more)"))),
    }
}

/// `{from, to}`: the node that was active and the one asked to take over.
#[derive(Debug, Serialize, ToSchema)]
pub struct SwitchoverReply {
    pub from: u64,
    pub to: u64,
}

/// `{id, index}`: the node and the raft index of the membership change.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeReply {
    pub id: u64,
    pub index: u64,
}

/// `{id}`: a voter, listed in every node's `cluster.nodes`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeBody {
    #[serde(deserialize_with = "integral")]
    pub id: u64,
}

/// A body of type `T`, or 400 naming what is wrong; an empty body (or `null`) is what
/// `empty` gives, where it gives one.
fn parse<T: serde::de::DeserializeOwned>(b: &Bytes, empty: Option<T>) -> Result<T, ApiError> {
    let bad = |e: serde_json::Error| ApiError::bad(format!("bad JSON body: {e}"));
    let value = if b.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(b).map_err(bad)?
    };
    match (value, empty) {
        (serde_json::Value::Null, Some(empty)) => Ok(empty),
        // An object only (serde would also take a list for a struct).
        (v @ serde_json::Value::Object(_), _) => serde_json::from_value(v).map_err(bad),
        _ => Err(ApiError::bad("the body must be a JSON object")),
    }
}

fn node_id(id: u64) -> Result<u64, ApiError> {
    if id == 0 {
        return Err(ApiError::bad("a node id is 1 or more"));
    }
    Ok(id)
}

fn encode<T: Serialize>(t: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(t).map(Bytes::from).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the request failed: {e}"),
        )
    })
}

/// `POST /api/v1/cluster/switchover` (admin): the active controller hands its role over.
#[utoipa::path(post, path = "/api/v1/cluster/switchover", tag = "cluster", security(("bearer" = [])),
    request_body(content = Option<SwitchoverBody>, description = "May be empty: the other controller takes over"),
    responses((status = 202, description = "The leadership transfer has begun", body = SwitchoverReply),
        (status = 400, description = "A bad body, or a node that cannot take over", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
        (status = 404, description = "The controller runs no pair, or no such node", body = super::ErrorBody),
        (status = 409, description = "The node cannot take over now", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody),
        (status = 503, description = "No controller is active (an election is under way): `active` names the active one when known", body = super::ErrorBody)))]
pub async fn switchover(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let b = body(b, app.limits.request_bytes_max)?;
    let request: SwitchoverBody = parse(&b, Some(SwitchoverBody::default()))?;
    if let Some(to) = request.to {
        node_id(to)?;
    }
    let b = encode(&request)?;
    forward(&app, Method::POST, "/api/v1/cluster/switchover", Some(b)).await
}

/// `POST /api/v1/cluster/nodes` (admin): node `id` becomes a voter.
#[utoipa::path(post, path = "/api/v1/cluster/nodes", tag = "cluster", security(("bearer" = [])),
    request_body = NodeBody,
    responses((status = 202, description = "The membership change is under way", body = NodeReply),
        (status = 400, description = "A bad body, or a node not in the configured nodes", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
        (status = 404, description = "The controller runs no pair, or no such node", body = super::ErrorBody),
        (status = 409, description = "The membership cannot change now (another change is under way, or it is a voter already)", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody),
        (status = 503, description = "No controller is active: `active` names the active one when known", body = super::ErrorBody)))]
pub async fn add_node(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let b = body(b, app.limits.request_bytes_max)?;
    let request: NodeBody = parse(&b, None)?;
    node_id(request.id)?;
    let b = encode(&request)?;
    forward(&app, Method::POST, "/api/v1/cluster/nodes", Some(b)).await
}

/// `DELETE /api/v1/cluster/nodes/{id}` (admin): node `id` stops being a voter.
#[utoipa::path(delete, path = "/api/v1/cluster/nodes/{id}", tag = "cluster", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id (1 or more)")),
    responses((status = 202, description = "The membership change is under way", body = NodeReply),
        (status = 400, description = "Not a node id, or a voter that cannot be removed", body = super::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody),
        (status = 404, description = "The controller runs no pair, or no such voter", body = super::ErrorBody),
        (status = 409, description = "The membership cannot change now", body = super::ErrorBody),
        (status = 502, description = "The controller cannot be reached", body = super::ErrorBody),
        (status = 503, description = "No controller is active: `active` names the active one when known", body = super::ErrorBody)))]
pub async fn remove_node(
    AxState(app): AxState<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("{id:?} is not a node id (1 or more)")))?;
    node_id(id)?;
    let path = format!("/api/v1/cluster/nodes/{id}");
    forward(&app, Method::DELETE, &path, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_take_what_their_schema_allows_and_nothing_else() {
        let b = |t: &str| Bytes::from(t.to_owned());
        let node = |t: &str| parse::<NodeBody>(&b(t), None).map(|n| n.id);
        assert_eq!(node(r#"{"id": 2}"#).ok(), Some(2));
        assert_eq!(node(r#"{"id": 712.0}"#).ok(), Some(712));
        for bad in [
            r#"{"id": 1.5}"#,
            r#"{"id": -1}"#,
            r#"{"id": "2"}"#,
            r#"{"id": 2, "x": 1}"#,
            r#"{}"#,
            "[2]",
            "null",
            "",
        ] {
            assert!(node(bad).is_err(), "{bad}");
        }
        let to = |t: &str| parse(&b(t), Some(SwitchoverBody::default())).map(|s| s.to);
        assert_eq!(to("").ok(), Some(None));
        assert_eq!(to("null").ok(), Some(None));
        assert_eq!(to("{}").ok(), Some(None));
        assert_eq!(to(r#"{"to": null}"#).ok(), Some(None));
        assert_eq!(to(r#"{"to": 2.0}"#).ok(), Some(Some(2)));
        for bad in [r#"{"to": 2.5}"#, r#"{"to": "2"}"#, r#"{"from": 1}"#, "[]"] {
            assert!(to(bad).is_err(), "{bad}");
        }
    }
}
