//! `ordo agents`: each deployed agent with its link (`GET /agents` →
//! `{agents: [{id, url, connected, connectedSinceMs, lastError, meta}]}`; `meta` is what the
//! agent reported: `hostname`, `cores`, `load` [1, 5, 15 min], `runningProcesses`, ...; a
//! director's `subagents` with their `state` — live or lost —, `runningProcesses`,
//! `processed` and, with `selection: ring`, their `ringPosition` and the `token` holder, shown
//! in a second table: `Ring` is the place, `2*` the holder of the token).

use crate::client::Api;
use crate::output::{cell, print_json, table};
use crate::profile::Global;
use serde_json::Value as Json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
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
