//! `ordo agents`: each deployed agent with its link (`GET /agents` →
//! `{agents: [{id, url, connected, connectedSinceMs, lastError, meta}]}`; `meta` is what the
//! agent reported: `hostname`, `cores`, `load` [1, 5, 15 min], `runningProcesses`, ...; a
//! director's `subagents` with their `state` — live or lost —, `runningProcesses`,
//! `processed` and, with `selection: ring`, their `ringPosition` and the `token` holder, shown
//! in a second table: `Ring` is the place, `2*` the holder of the token).
//!
//! `ordo agents join-token [--agent A] [--ttl 1h]`: a one-time join token with which a
//! subagent of `A` (or, without `--agent`, a standalone agent) registers itself (`[register]`
//! in its configuration); printed once. `ordo agents remove-subagent A S [--kill]`: deploys
//! `A` without `S`; its director drains `S` (its running jobs end there), or with `--kill`
//! kills them (they count as lost: a restartable job starts again on another subagent).

use crate::client::Api;
use crate::output::{cell, print_json, table};
use crate::profile::Global;
use serde_json::Value as Json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Make a one-time join token for a subagent of an agent (or a standalone agent).
    JoinToken {
        /// The agent (cluster) the subagent joins; none: a standalone agent.
        #[arg(long)]
        agent: Option<String>,
        /// How long the token lives (`30m`, `1h`, `2d`; at most 30 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a subagent out of its agent: drained by default, or its jobs killed.
    RemoveSubagent {
        agent: String,
        subagent: String,
        /// Kill its running jobs (they count as lost) instead of letting them end.
        #[arg(long)]
        kill: bool,
    },
}

async fn command(command: &Command, api: &Api) -> anyhow::Result<ExitCode> {
    match command {
        Command::JoinToken { agent, ttl, json } => {
            let ttl_ms = ordo_model::time::DurationMs::parse(ttl)
                .map_err(|e| anyhow::anyhow!("--ttl {ttl:?}: {e}"))?
                .0;
            let mut body = serde_json::json!({ "ttlMs": ttl_ms });
            if let Some(a) = agent {
                body["agent"] = Json::from(a.as_str());
            }
            let answer = api.post("/agents/join-tokens", &body).await?;
            if *json {
                print_json(&answer);
            } else {
                println!("{}", cell(answer.get("token")));
                eprintln!(
                    "a one-time join token for {}; it expires at {} (ms since the epoch)",
                    agent
                        .as_ref()
                        .map_or("a standalone agent".to_owned(), |a| format!(
                            "a subagent of {a}"
                        )),
                    cell(answer.get("expiresMs"))
                );
            }
        }
        Command::RemoveSubagent {
            agent,
            subagent,
            kill,
        } => {
            let path = format!("/agents/{agent}/subagents/{subagent}/remove");
            let answer = api
                .post(&path, &serde_json::json!({ "kill": kill }))
                .await?;
            for change in answer
                .get("changes")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                println!("{}", change.as_str().unwrap_or_default());
            }
            println!(
                "subagent {subagent} removed from {agent}: {}",
                if *kill {
                    "its jobs are killed and count as lost"
                } else {
                    "it drains (its running jobs end there)"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    if let Some(c) = &args.command {
        return command(c, &api).await;
    }
    let answer = api.get("/agents").await?;
    if args.json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let agents = answer
        .get("agents")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if agents.is_empty() {
        println!("no agents deployed");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table([
        "Id",
        "Connected",
        "URL",
        "Host",
        "Cores",
        "Load",
        "Running",
        "Last error",
    ]);
    for a in &agents {
        let meta = a.get("meta").filter(|m| !m.is_null());
        let m = |k: &str| cell(meta.and_then(|m| m.get(k)));
        let load = meta
            .and_then(|m| m.get("load"))
            .and_then(Json::as_array)
            .and_then(|l| l.first())
            .and_then(Json::as_f64)
            .map(|l| format!("{l:.2}"))
            .unwrap_or_default();
        let connected = match a.get("connected").and_then(Json::as_bool) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        t.add_row([
            cell(a.get("id")),
            connected.to_owned(),
            cell(a.get("url")),
            m("hostname"),
            m("cores"),
            load,
            m("runningProcesses"),
            cell(a.get("lastError")),
        ]);
    }
    println!("{t}");
    let mut subs = table([
        "Agent",
        "Subagent",
        "State",
        "Ring",
        "URL",
        "Running",
        "Processed",
        "Last error",
    ]);
    let mut any = false;
    for a in &agents {
        let listed = a
            .get("meta")
            .and_then(|m| m.get("subagents"))
            .and_then(Json::as_array);
        for s in listed.into_iter().flatten() {
            any = true;
            let ring = match s.get("ringPosition").and_then(Json::as_u64) {
                Some(place) if s.get("token").and_then(Json::as_bool) == Some(true) => {
                    format!("{place}*")
                }
                Some(place) => place.to_string(),
                None => String::new(),
            };
            subs.add_row([
                cell(a.get("id")),
                cell(s.get("id")),
                cell(s.get("state")),
                ring,
                cell(s.get("url")),
                cell(s.get("runningProcesses")),
                cell(s.get("processed")),
                cell(s.get("lastError")),
            ]);
        }
    }
    if any {
        println!("{subs}");
    }
    Ok(ExitCode::SUCCESS)
}
