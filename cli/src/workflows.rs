//! `ordo workflows`: the deployed workflows (`GET /workflows` → `{workflows: [{name,
//! versions, latest, orders}]}`), and `ordo workflows show NAME [--version N]` one version of
//! one (`GET /workflows/{name}?version=` → `{name, version, versions, parameters, jobs,
//! steps}`).

use crate::client::Api;
use crate::output::{cell, print_json, table};
use crate::profile::Global;
use serde_json::Value as Json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print the answer as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// One workflow: its versions, parameters and jobs.
    Show {
        name: String,
        /// The version to show; the newest by default.
        #[arg(long, value_name = "N")]
        version: Option<u64>,
    },
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    match &args.command {
        None => list(&api, args.json).await,
        Some(Command::Show { name, version }) => show(&api, name, *version, args.json).await,
    }
}

async fn list(api: &Api, json: bool) -> anyhow::Result<ExitCode> {
    let answer = api.get("/workflows").await?;
    if json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let workflows = answer["workflows"].as_array().cloned().unwrap_or_default();
    if workflows.is_empty() {
        println!("no workflows deployed (ordo deploy FILE…)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(["Workflow", "Latest", "Versions", "Orders"]);
    for w in &workflows {
        let versions: Vec<String> = w["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_u64)
            .map(|v| format!("v{v}"))
            .collect();
        t.add_row([
            cell(w.get("name")),
            w["latest"]
                .as_u64()
                .map(|v| format!("v{v}"))
                .unwrap_or_default(),
            versions.join(" "),
            cell(w.get("orders")),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

async fn show(api: &Api, name: &str, version: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    let mut path = format!("/workflows/{}", crate::client::encode(name));
    if let Some(v) = version {
        path.push_str(&format!("?version={v}"));
    }
    let w = api.get(&path).await?;
    if json {
        print_json(&w);
        return Ok(ExitCode::SUCCESS);
    }
    let versions: Vec<String> = w["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_u64)
        .map(|v| format!("v{v}"))
        .collect();
    println!(
        "workflow {} v{} (deployed: {})",
        cell(w.get("name")),
        cell(w.get("version")),
        versions.join(" ")
    );
    let params = w["parameters"].as_object().cloned().unwrap_or_default();
    if !params.is_empty() {
        let mut t = table(["Parameter", "Required", "Default"]);
        for (k, p) in &params {
            t.add_row([
                k.clone(),
                if p["required"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
                cell(p.get("default")),
            ]);
        }
        println!("{t}");
    }
    let jobs = w["jobs"].as_object().cloned().unwrap_or_default();
    let mut t = table([
        "Job",
        "Agent",
        "Runs",
        "Timeout",
        "Parallelism",
        "Restartable",
        "Subagents",
    ]);
    for (k, j) in &jobs {
        let text: String = j["text"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        t.add_row([
            k.clone(),
            cell(j.get("agent")),
            format!("{}: {text}", j["executable"].as_str().unwrap_or("")),
            j["timeoutMs"]
                .as_u64()
                .map(|ms| ordo_model::time::DurationMs(ms).to_string())
                .unwrap_or_default(),
            cell(j.get("parallelism")),
            match j["restartBudget"].as_u64() {
                Some(budget) if j["restartable"] == true => format!("yes, {budget} restarts"),
                _ => cell(j.get("restartable")),
            },
            subagents_cell(j),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// A job's own subagent selection: its subagents (with priorities) and how one is picked;
/// empty when it has none (any of its agent's, by the agent's selection).
fn subagents_cell(job: &Json) -> String {
    let subagents: Vec<&str> = job["subagents"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let mut text = subagents.join(", ");
    if let Some(selection) = job["subagentSelection"].as_str() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("by {selection}"));
    }
    text
}
