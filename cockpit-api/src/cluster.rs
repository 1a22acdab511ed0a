//! Which controller is active: every configured controller's `/health`, read every
//! `follow.cluster_poll_ms` and on demand (`GET /api/v1/cluster`).
//!
//! A controller whose `/health` says `role: "active"` is the active one; when two say so (an
//! old leader that has not yet heard of the new term), the one in the higher raft term wins.
//! None saying so (an election, every controller unreachable) leaves no active one known;
//! commands then go to the controller last followed and on to the others.
//!
//! The on-demand answer also reads the other voters the controllers name in their membership
//! (the watch), marked `configured: false`: they are shown, never sent commands.

use crate::follow::{Shared, now_ms};
use crate::upstream::Upstream;
use ordo_api::view::ControllerHealth;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// One voter as its `/health` showed it, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMember {
    /// Its API base URL.
    pub url: String,
    /// One of the cockpit's `controllers` (false: a voter the controllers name, the watch).
    pub configured: bool,
    /// Its `/health` (`ordo_api::view::ControllerHealth`), when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<ControllerHealth>,
    /// Why its `/health` could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ClusterMember {
    /// Its role (`active`, `passive`, `watch`, `candidate`), when it answered.
    pub fn role(&self) -> Option<&str> {
        self.health.as_ref().map(|h| h.role.as_str())
    }

    /// Its raft term (0 for a single controller, which has no pair).
    pub fn term(&self) -> u64 {
        self.health
            .as_ref()
            .and_then(|h| h.cluster.as_ref())
            .map_or(0, |c| c.term)
    }
}

/// `GET /api/v1/cluster`: every voter and the active controller.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The API URL of the active controller, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// The configured controllers in their configured order, then the other voters.
    pub members: Vec<ClusterMember>,
}

/// What the cockpit last saw of its controllers (for its `/health`).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// When they were read, ms since the epoch.
    pub at_ms: i64,
    pub members: Vec<ClusterMember>,
}

/// Reads the `/health` of the controller at `url` (configured index `i`, or a voter named
/// by the controllers), within `timeout_ms`.
async fn probe(
    upstream: &Upstream,
    target: Target<'_>,
    timeout_ms: u64,
) -> (ClusterMember, Option<usize>) {
    let (url, i) = match target {
        Target::Configured(i) => (upstream.urls()[i].clone(), Some(i)),
        Target::Other(url) => (url.to_owned(), None),
    };
    let read = async {
        match i {
            Some(i) => upstream.health(i).await,
            None => upstream.health_at(&url).await,
        }
    };
    let (health, error) = match tokio::time::timeout(Duration::from_millis(timeout_ms), read).await
    {
        Ok(Ok(h)) => (Some(h), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (
            None,
            Some(format!(
                "GET {url}/api/v1/health took more than {timeout_ms} ms"
            )),
        ),
    };
    (
        ClusterMember {
            url,
            configured: i.is_some(),
            health,
            error,
        },
        i,
    )
}

enum Target<'a> {
    Configured(usize),
    Other(&'a str),
}

/// The active one among members: `role == "active"`, the highest term first.
pub fn choose_active(members: &[(ClusterMember, Option<usize>)]) -> Option<usize> {
    members
        .iter()
        .filter(|(m, i)| i.is_some() && m.role() == Some("active"))
        .max_by_key(|(m, i)| (m.term(), std::cmp::Reverse(*i)))
        .and_then(|(_, i)| *i)
}

/// Reads every configured controller's `/health` at once, records which one is active and
/// what each said; with `others`, also the voters they name that are not configured.
pub async fn probe_all(
    shared: &Shared,
    upstream: &Upstream,
    timeout_ms: u64,
    others: bool,
) -> ClusterView {
    let n = upstream.urls().len();
    let mut members: Vec<(ClusterMember, Option<usize>)> = futures_util::future::join_all(
        (0..n).map(|i| probe(upstream, Target::Configured(i), timeout_ms)),
    )
    .await;
    upstream.set_active(choose_active(&members));
    *shared.cluster.lock().unwrap_or_else(|e| e.into_inner()) = Seen {
        at_ms: now_ms(),
        members: members.iter().map(|(m, _)| m.clone()).collect(),
    };
    if others {
        let mut named: Vec<String> = Vec::new();
        for (m, _) in &members {
            let nodes = m.health.iter().filter_map(|h| h.cluster.as_ref());
            for node in nodes.flat_map(|c| c.nodes.iter()) {
                let url = node.api_url.trim_end_matches('/').to_owned();
                if upstream.index_of(&url).is_none() && !named.contains(&url) {
                    named.push(url);
                }
            }
        }
        // Bounded by the controllers' membership, which their configuration bounds.
        named.truncate(OTHER_VOTERS_MAX);
        let extra = futures_util::future::join_all(
            named
                .iter()
                .map(|u| probe(upstream, Target::Other(u), timeout_ms)),
        )
        .await;
        members.extend(extra);
    }
    ClusterView {
        active: upstream.active_url(),
        members: members.into_iter().map(|(m, _)| m).collect(),
    }
}

/// Most voters not in `controllers` read for one answer.
pub const OTHER_VOTERS_MAX: usize = 8;

/// The shortest wait for a `/health` answer in the regular rounds.
const POLL_WAIT_MS_MIN: u64 = 1_000;

/// Reads every controller's `/health` every `every_ms` until dropped.
pub async fn poll(shared: Arc<Shared>, upstream: Arc<Upstream>, every_ms: u64, timeout_ms: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A controller that does not answer holds up one round at most this long.
        let wait_ms = timeout_ms.min(every_ms.max(POLL_WAIT_MS_MIN));
        probe_all(&shared, &upstream, wait_ms, false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_api::view::ClusterHealth;

    fn member(role: &str, term: u64) -> ClusterMember {
        ClusterMember {
            url: format!("https://{role}-{term}"),
            configured: true,
            health: Some(ControllerHealth {
                status: "ok".into(),
                cluster_id: "c".into(),
                controller_id: "x".into(),
                role: role.into(),
                last_event_id: 0,
                orders: 0,
                event_bytes_max: 1,
                cluster: Some(ClusterHealth {
                    node_id: 1,
                    voter: "controller".into(),
                    term,
                    leader: None,
                    active_api_url: None,
                    commit: 0,
                    applied: 0,
                    committed_event_id: 0,
                    agents_coupled: 0,
                    nodes: Vec::new(),
                }),
            }),
            error: None,
        }
    }

    #[test]
    fn the_active_one_in_the_highest_term_wins() {
        let down = ClusterMember {
            url: "https://down".into(),
            configured: true,
            health: None,
            error: Some("refused".into()),
        };
        assert_eq!(choose_active(&[]), None);
        assert_eq!(
            choose_active(&[(member("passive", 3), Some(0)), (down.clone(), Some(1))]),
            None
        );
        assert_eq!(
            choose_active(&[
                (member("passive", 3), Some(0)),
                (member("active", 3), Some(1))
            ]),
            Some(1)
        );
        // An old leader that has not heard of the new term yet loses.
        assert_eq!(
            choose_active(&[
                (member("active", 4), Some(0)),
                (member("active", 3), Some(1))
            ]),
            Some(0)
        );
        assert_eq!(
            choose_active(&[
                (member("active", 2), Some(0)),
                (member("active", 5), Some(1))
            ]),
            Some(1)
        );
        // A voter that is not configured is never chosen.
        assert_eq!(choose_active(&[(member("active", 9), None)]), None);
    }
}
