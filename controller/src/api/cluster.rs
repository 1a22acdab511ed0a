//! The pair's routes: `/health` with the node's view of the cluster, and the operations on
//! the active controller (switchover, membership).
//!
//! | Method and path | Role | Body → answer |
//! |---|---|---|
//! | `POST /cluster/switchover` | admin | `{to?: nodeId}` → 202 `{from, to}` (default `to`: the other controller) |
//! | `POST /cluster/nodes` | admin | `{id}` → 202 `{id, index}`: voter `id` (already in every node's `[cluster].nodes`) joins |
//! | `DELETE /cluster/nodes/{id}` | admin | → 202 `{id, index}`: voter `id` leaves |
//!
//! On a controller that is not the active one they answer 503 `{error, active}`.

use super::{Api, ApiError, Caller, stopping};
use crate::config::{ClusterConfig, Role, Voter};
use crate::core::{Input, NodeView, NotActive};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use ordo_api::view::{ClusterHealth, ClusterNodeView};
use ordo_replica::{MembershipChange, Role as RaftRole, Status as NodeStatus};
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// What the API knows of this node of the pair.
#[derive(Clone)]
pub struct ClusterInfo {
    pub config: ClusterConfig,
    pub raft: Arc<Mutex<NodeStatus>>,
    pub view: Arc<Mutex<NodeView>>,
}

fn voter_name(v: Voter) -> &'static str {
    match v {
        Voter::Controller => "controller",
        Voter::Watch => "watch",
    }
}

impl ClusterInfo {
    /// The role `/health` tells, and this node's view of the pair.
    pub fn health(&self, agents_coupled: usize) -> (String, ClusterHealth) {
        let raft = self.raft.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let me = self.config.me();
        let role = match (me.voter, raft.role) {
            (Voter::Watch, _) => "watch",
            (_, RaftRole::Leader) if view.active => "active",
            (_, RaftRole::Candidate | RaftRole::PreCandidate) => "candidate",
            _ => "passive",
        };
        let members = if view.members.is_empty() {
            raft.membership.voters.clone()
        } else {
            view.members.clone()
        };
        let health = ClusterHealth {
            node_id: me.id,
            voter: voter_name(me.voter).to_owned(),
            term: raft.term,
            leader: raft.leader,
            active_api_url: view.active_api_url.clone(),
            commit: raft.commit,
            applied: view.applied,
            committed_event_id: view.committed_event_id,
            agents_coupled: if view.active { agents_coupled } else { 0 },
            nodes: self
                .config
                .nodes
                .iter()
                .map(|n| ClusterNodeView {
                    id: n.id,
                    voter: voter_name(n.voter).to_owned(),
                    api_url: n.api_url.clone(),
                    member: members.contains(&n.id),
                })
                .collect(),
        };
        (role.to_owned(), health)
    }

    fn refuse_unless_active(&self) -> Result<(), ApiError> {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if view.active {
            return Ok(());
        }
        Err(ApiError::not_active(&NotActive {
            active: view.active_api_url,
        }))
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the body does not parse: {e}")))
}

fn cluster(api: &Api) -> Result<&ClusterInfo, ApiError> {
    api.cluster.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this controller runs alone, not in a pair (no [cluster] in its configuration)",
        )
    })
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Switchover {
    to: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNode {
    id: u64,
}

/// `POST /cluster/switchover`
pub async fn switchover(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Json>), ApiError> {
    caller.require(Role::Admin)?;
    let c = cluster(&api)?;
    c.refuse_unless_active()?;
    let body: Switchover = if body.is_empty() {
        Switchover::default()
    } else {
        json_body(&body)?
    };
    let from = c.config.node_id;
    let to = match body.to {
        Some(to) => to,
        None => c
            .config
            .nodes
            .iter()
            .find(|n| n.voter == Voter::Controller && n.id != from)
            .map(|n| n.id)
            .ok_or_else(|| ApiError::bad("there is no other controller to hand over to"))?,
    };
    if c.config
        .nodes
        .iter()
        .any(|n| n.id == to && n.voter == Voter::Watch)
    {
        return Err(ApiError::bad(format!(
            "node {to} is the watch, which never stays active; name a controller"
        )));
    }
    let (reply, answer) = oneshot::channel();
    api.core
        .send(Input::Transfer { to, reply })
        .await
        .map_err(|_| stopping())?;
    answer
        .await
        .map_err(|_| stopping())?
        .map_err(ApiError::bad)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"from": from, "to": to})),
    ))
}

async fn membership(
    api: &Api,
    id: u64,
    change: MembershipChange,
) -> Result<(StatusCode, axum::Json<Json>), ApiError> {
    let c = cluster(api)?;
    c.refuse_unless_active()?;
    if !c.config.nodes.iter().any(|n| n.id == id) {
        return Err(ApiError::bad(format!(
            "node {id} is not in [cluster].nodes; add it to every node's configuration first"
        )));
    }
    let (reply, answer) = oneshot::channel();
    api.core
        .send(Input::Membership { change, reply })
        .await
        .map_err(|_| stopping())?;
    let index = answer
        .await
        .map_err(|_| stopping())?
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": id, "index": index})),
    ))
}

/// `POST /cluster/nodes`
pub async fn add_node(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Json>), ApiError> {
    caller.require(Role::Admin)?;
    let body: AddNode = json_body(&body)?;
    membership(&api, body.id, MembershipChange::AddVoter(body.id)).await
}

/// `DELETE /cluster/nodes/{id}`
pub async fn remove_node(
    AxState(api): AxState<Api>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<(StatusCode, axum::Json<Json>), ApiError> {
    caller.require(Role::Admin)?;
    if cluster(&api)?.config.node_id == id {
        return Err(ApiError::bad(
            "the active controller does not remove itself; switch over first",
        ));
    }
    membership(&api, id, MembershipChange::Remove(id)).await
}
