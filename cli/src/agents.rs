//! `ordo agents`: each deployed agent with its link (`GET /agents` →
//! `{agents: [{id, url, connected, connectedSinceMs, lastError, meta}]}`; `meta` is what the
//! agent reported: `hostname`, `cores`, `load` [1, 5, 15 min], `runningProcesses`, ...; a
//! director's `subagents` with their `state` — live, lost, or draining or killing while a removal ends its jobs —, `runningProcesses`,
//! `processed` and, with `selection: ring`, their `ringPosition` and the `token` holder, shown
//! in a second table: `Ring` is the place, `2*` the holder of the token).
//!
//! `ordo agents --subagents` prints only the subagents, one row each, with their figures
//! (`subagentHealth` of each director: state, ring place, running and processed jobs, average
//! job duration, the load, cores and memory each one last reported, connected since).
//!
//! `ordo agents join-token [--agent A] [--ttl 1h]`: a one-time join token with which a
//! subagent of `A` (or, without `--agent`, a standalone agent) registers itself (`[register]`
//! in its configuration); printed once. `ordo agents remove-subagent A S [--kill]`: deploys
//! `A` without `S`; its director drains `S` (its running jobs end there), or with `--kill`
//! kills them (they count as lost: a restartable job starts again on another subagent).

use crate::client::Api;
use crate::output::{cell, duration, local_time, print_json, table};
use crate::profile::Global;
use serde_json::Value as Json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// One row per subagent of every director, with its figures.
    #[arg(long)]
    pub subagents: bool,
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
    if args.subagents {
        print_subagents(&agents);
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
        let coupled = a.get("coupledUrl").and_then(Json::as_str);
        let connected = match a.get("connected").and_then(Json::as_bool) {
            // The backup director of a director pair is the active one.
            Some(true) if coupled.is_some_and(|c| Some(c) != a["url"].as_str()) => {
                format!("yes, to {}", coupled.unwrap_or_default())
            }
            Some(true) => "yes".to_owned(),
            Some(false) => "no".to_owned(),
            None => "?".to_owned(),
        };
        t.add_row([
            cell(a.get("id")),
            connected,
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

/// Bytes as GiB with one decimal.
fn gib(bytes: Option<u64>) -> String {
    bytes.map_or_else(String::new, |b| {
        format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30))
    })
}

/// `ordo agents --subagents`: one row per subagent with its figures.
fn print_subagents(agents: &[Json]) {
    match subagents_table(agents) {
        Some(t) => println!("{t}"),
        None => println!(
            "no subagents (no agent directs a cluster, or its director has not reported them)"
        ),
    }
}

/// The subagents of every director in `agents` (`GET /agents`), one row each; `None` when
/// there are none.
fn subagents_table(agents: &[Json]) -> Option<comfy_table::Table> {
    let mut t = table([
        "Agent",
        "Subagent",
        "State",
        "Ring",
        "Running",
        "Processed",
        "Avg job",
        "Load",
        "Cores",
        "Memory free/total",
        "Connected since",
        "Last error",
    ]);
    let mut any = false;
    for a in agents {
        let listed = a.get("subagentHealth").and_then(Json::as_array);
        for s in listed.into_iter().flatten() {
            any = true;
            let u = |k: &str| s.get(k).and_then(Json::as_u64);
            let ring = match u("ringPosition") {
                Some(place) if s.get("token").and_then(Json::as_bool) == Some(true) => {
                    format!("{place}*")
                }
                Some(place) => place.to_string(),
                None => String::new(),
            };
            let load = s
                .get("load")
                .and_then(Json::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Json::as_f64)
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let memory = match (u("memoryAvailableBytes"), u("memoryTotalBytes")) {
                (None, None) => String::new(),
                (free, total) => format!("{} / {}", gib(free), gib(total)),
            };
            let average = if u("processed").unwrap_or(0) > 0 {
                duration(i64::try_from(u("averageJobDurationMs").unwrap_or(0)).unwrap_or(i64::MAX))
            } else {
                String::new()
            };
            t.add_row([
                cell(a.get("id")),
                cell(s.get("id")),
                cell(s.get("state")),
                ring,
                cell(s.get("runningProcesses")),
                cell(s.get("processed")),
                average,
                load,
                cell(s.get("cores")),
                memory,
                s.get("connectedSinceMs")
                    .and_then(Json::as_i64)
                    .map(local_time)
                    .unwrap_or_default(),
                cell(s.get("lastError")),
            ]);
        }
    }
    any.then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_per_subagent_with_its_figures() {
        let agents = [
            json!({"id": "solo"}),
            json!({"id": "dir", "subagentHealth": [
                {"id": "s1", "url": "wss://h1", "state": "live", "runningProcesses": 2,
                 "processed": 7, "averageJobDurationMs": 1500, "ringPosition": 1, "token": true,
                 "cores": 4, "load": [0.5, 0.25, 0.0], "memoryTotalBytes": 8u64 << 30,
                 "memoryAvailableBytes": 2u64 << 30, "connectedSinceMs": 1_700_000_000_000i64},
                {"id": "s2", "url": "wss://h2", "state": "lost", "runningProcesses": 0,
                 "processed": 0, "averageJobDurationMs": 0, "lastError": "refused"},
            ]}),
        ];
        let text = subagents_table(&agents).expect("a table").to_string();
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("dir")).collect();
        assert_eq!(rows.len(), 2, "{text}");
        for cell in [
            "s1",
            "live",
            "1*",
            "7",
            "1s",
            "0.50 0.25 0.00",
            "2.0 GiB / 8.0 GiB",
        ] {
            assert!(rows[0].contains(cell), "{cell} missing in {}", rows[0]);
        }
        for cell in ["s2", "lost", "refused"] {
            assert!(rows[1].contains(cell), "{cell} missing in {}", rows[1]);
        }
        assert!(subagents_table(&[json!({"id": "solo"})]).is_none());
    }
}
