//! `ordo cluster`: the controller pair as the cockpit sees it, and its operations.
//!
//! - `status`: `GET /cluster` (every voter's `/health`: `{active, members: [{url, configured,
//!   health?, error?}]}`) as a table — node, voter, role, term, commit/applied, lag (the
//!   leader's commit index minus the node's applied index), agents coupled, API URL — or, with
//!   `--json`, as it came; then the cockpit's own state (following which controller, at which
//!   event). An API without `/cluster` (a controller itself) is shown from its `/health`.
//!   Exits 1 when no controller is active.
//! - `switchover [--to N] [--wait]`: `POST /cluster/switchover`; `--wait` waits until the node
//!   that takes over says it is active.
//! - `add-node N`, `remove-node N`: `POST /cluster/nodes {id}`, `DELETE /cluster/nodes/{id}`.
//!   A node is added only once it is in the `cluster.nodes` of every node's configuration.

use crate::client::Api;
use crate::exit::Failure;
use crate::output::{cell, print_json, table};
use crate::profile::Global;
use serde_json::{Value as Json, json};
use std::process::ExitCode;
use std::time::Duration;
use tokio_tungstenite::tungstenite::http::StatusCode;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show every voter of the cluster: role, term, commit and applied index, lag.
    Status(StatusArgs),
    /// Hand the active role to another controller (by default the other one).
    Switchover(SwitchoverArgs),
    /// Make node N a voter (it must be in `cluster.nodes` of every node's configuration).
    AddNode(NodeArgs),
    /// Remove voter N from the cluster.
    RemoveNode(NodeArgs),
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SwitchoverArgs {
    /// The node id to take over.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub to: Option<u64>,
    /// Wait (at most 30 s) until the node that takes over says it is active.
    #[arg(long)]
    pub wait: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The node id.
    #[arg(value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Longest `--wait` of a switchover.
const SWITCHOVER_WAIT_MS: u64 = 30_000;
/// How often `--wait` reads the cluster.
const POLL_MS: u64 = 200;

pub async fn run(command: &Command, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    match command {
        Command::Status(args) => status(&api, args).await,
        Command::Switchover(args) => switchover(&api, args).await,
        Command::AddNode(args) => {
            let answer = api.post("/cluster/nodes", &json!({"id": args.id})).await?;
            done(
                &answer,
                args.json,
                &format!("node {} is being added", args.id),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::RemoveNode(args) => {
            let answer = api.delete(&format!("/cluster/nodes/{}", args.id)).await?;
            done(
                &answer,
                args.json,
                &format!("node {} is being removed", args.id),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn done(answer: &Json, json: bool, message: &str) {
    if json {
        print_json(answer);
    } else {
        println!("{message}");
    }
}

/// `GET /cluster`, or for an API without it, a view made of its `/health`.
async fn view(api: &Api) -> Result<Json, Failure> {
    let (status, answer) = api.get_any("/cluster").await?;
    if status.is_success() {
        return Ok(answer);
    }
    if status != StatusCode::NOT_FOUND {
        return Err(crate::client::status_failure(
            status,
            answer.to_string().as_bytes(),
        ));
    }
    let health = api.health().await?;
    let active = (health["role"] == "active").then(|| api.base().to_owned());
    Ok(json!({
        "active": active,
        "members": [{"url": api.base(), "configured": true, "health": health}],
    }))
}

async fn status(api: &Api, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let view = view(api).await?;
    let active = view["active"].as_str().map(str::to_owned);
    if args.json {
        print_json(&view);
    } else {
        let mut t = table([
            "Node",
            "Voter",
            "Role",
            "Term",
            "Commit/applied",
            "Lag",
            "Agents",
            "API URL",
        ]);
        for row in rows(&view) {
            t.add_row(row);
        }
        println!("{t}");
        for m in members(&view) {
            if let Some(e) = m["error"].as_str() {
                println!("{}: {e}", cell(m.get("url")));
            }
        }
        match &active {
            Some(url) => println!("active: {url}"),
            None => println!("no controller is active"),
        }
        // The cockpit's own view: whether it follows, and which controller.
        if let Ok(h) = api.health().await
            && h["role"] == "cockpit"
        {
            println!(
                "cockpit: {}, following {} at event {}",
                cell(h.get("status")),
                cell(h.get("controller")),
                cell(h.get("lastEventId"))
            );
        }
    }
    Ok(if active.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn members(view: &Json) -> &[Json] {
    view["members"].as_array().map_or(&[], Vec::as_slice)
}

/// The table rows of a cluster view: node, voter, role, term, commit/applied, lag, agents
/// coupled, API URL. The lag is the leader's commit index (the active node's, else the
/// highest any node knows) minus the node's applied index.
pub fn rows(view: &Json) -> Vec<[String; 8]> {
    let members = members(view);
    let cluster = |m: &Json| {
        m["health"]
            .get("cluster")
            .filter(|c| c.is_object())
            .cloned()
    };
    let leader_commit = members
        .iter()
        .find(|m| m["health"]["role"] == "active")
        .and_then(cluster)
        .and_then(|c| c["commit"].as_u64())
        .or_else(|| {
            members
                .iter()
                .filter_map(|m| cluster(m).and_then(|c| c["commit"].as_u64()))
                .max()
        });
    members
        .iter()
        .map(|m| {
            let h = &m["health"];
            let url = cell(m.get("url"));
            if !h.is_object() {
                return [
                    "?".into(),
                    String::new(),
                    "unreachable".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    url,
                ];
            }
            let role = cell(h.get("role"));
            match cluster(m) {
                Some(c) => {
                    let applied = c["applied"].as_u64();
                    let lag = match (leader_commit, applied) {
                        (Some(l), Some(a)) => l.saturating_sub(a).to_string(),
                        _ => String::new(),
                    };
                    [
                        cell(c.get("nodeId")),
                        cell(c.get("voter")),
                        role,
                        cell(c.get("term")),
                        format!("{}/{}", cell(c.get("commit")), cell(c.get("applied"))),
                        lag,
                        cell(c.get("agentsCoupled")),
                        url,
                    ]
                }
                // A single controller: no pair, no raft.
                None => [
                    cell(h.get("controllerId")),
                    "controller".into(),
                    role,
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    url,
                ],
            }
        })
        .collect()
}

/// The node id whose `/health` says it is active, in a cluster view.
fn active_node(view: &Json) -> Option<u64> {
    members(view)
        .iter()
        .find(|m| m["health"]["role"] == "active")
        .and_then(|m| m["health"]["cluster"]["nodeId"].as_u64())
}

async fn switchover(api: &Api, args: &SwitchoverArgs) -> anyhow::Result<ExitCode> {
    let body = match args.to {
        Some(to) => json!({"to": to}),
        None => json!({}),
    };
    let answer = api.post("/cluster/switchover", &body).await?;
    let to = answer["to"].as_u64().or(args.to);
    if args.json {
        print_json(&answer);
    } else {
        println!(
            "switchover from node {} to node {} begun",
            cell(answer.get("from")),
            to.map_or_else(|| "?".to_owned(), |n| n.to_string())
        );
    }
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(to) = to else {
        return Err(Failure::failed("the answer names no node to wait for").into());
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(SWITCHOVER_WAIT_MS);
    loop {
        if let Ok(view) = view(api).await
            && active_node(&view) == Some(to)
        {
            if !args.json {
                println!("node {to} is active");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::failed(format!(
                "node {to} did not become active within {} s",
                SWITCHOVER_WAIT_MS / 1000
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, voter: &str, role: &str, commit: u64, applied: u64) -> Json {
        json!({
            "url": format!("https://127.0.0.1:{}", 4000 + id),
            "configured": voter == "controller",
            "health": {
                "status": "ok", "clusterId": "c", "controllerId": format!("n{id}"), "role": role,
                "lastEventId": 0, "orders": 0, "eventBytesMax": 1,
                "cluster": {
                    "nodeId": id, "voter": voter, "term": 7, "commit": commit,
                    "applied": applied, "committedEventId": 0, "agentsCoupled": 2,
                    "nodes": [],
                },
            },
        })
    }

    #[test]
    fn rows_show_the_lag_behind_the_leaders_commit() {
        let view = json!({
            "active": "https://127.0.0.1:4001",
            "members": [
                node(1, "controller", "active", 50, 50),
                node(2, "controller", "passive", 48, 45),
                {"url": "https://127.0.0.1:4003", "configured": false, "error": "refused"},
            ],
        });
        let rows = rows(&view);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            [
                "1",
                "controller",
                "active",
                "7",
                "50/50",
                "0",
                "2",
                "https://127.0.0.1:4001"
            ]
            .map(String::from)
        );
        assert_eq!(rows[1][4], "48/45");
        assert_eq!(rows[1][5], "5");
        assert_eq!(rows[2][2], "unreachable");
        assert_eq!(rows[2][7], "https://127.0.0.1:4003");
        assert_eq!(active_node(&view), Some(1));
    }

    #[test]
    fn without_a_leader_the_highest_commit_counts_and_a_single_controller_has_no_raft() {
        let view = json!({"active": null, "members": [
            node(1, "controller", "candidate", 40, 40),
            node(3, "watch", "watch", 44, 41),
        ]});
        let rows = rows(&view);
        assert_eq!(rows[0][5], "4");
        assert_eq!(rows[1][5], "3");
        assert_eq!(active_node(&view), None);
        let single = json!({"active": "https://x", "members": [{"url": "https://x",
            "configured": true, "health": {"role": "active", "controllerId": "primary"}}]});
        let rows = super::rows(&single);
        assert_eq!(rows[0][0], "primary");
        assert_eq!(rows[0][2], "active");
        assert_eq!(rows[0][4], "");
    }
}
