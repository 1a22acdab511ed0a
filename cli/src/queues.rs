//! `ordo queues`: orders by queue (`GET /queues?queue=&workflow=&agent=&limit=&after=` →
//! `{eventId, queues: [{queue, count, countComplete, orders, next}]}`): `waiting` (ready at a
//! job, no process yet: a process slot, parallelism or a subagent), `running`, `finished`,
//! `failed`. A table of the counts, then each queue's first orders; `--queue` shows one
//! queue, and its `next` cursor pages on with `--after`.

use crate::client::{Api, query};
use crate::output::{cell, duration, holder, local_time, print_json, table};
use crate::profile::Global;
use serde_json::Value as Json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this queue: waiting, running, finished or failed.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only orders of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only orders with this agent (held by it, or ready at one of its jobs).
    #[arg(long)]
    pub agent: Option<String>,
    /// At most this many orders per queue.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue after this cursor (a queue's `next`; with --queue pages through that queue).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let q = query(&[
        ("queue", args.queue.clone()),
        ("workflow", args.workflow.clone()),
        ("agent", args.agent.clone()),
        ("limit", args.limit.map(|n| n.to_string())),
        ("after", args.after.clone()),
    ]);
    let answer = api.get(&format!("/queues{q}")).await?;
    if args.json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let queues = answer
        .get("queues")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let mut counts = table(["Queue", "Orders"]);
    for q in &queues {
        let complete = q.get("countComplete").and_then(Json::as_bool) != Some(false);
        counts.add_row([
            cell(q.get("queue")),
            format!(
                "{}{}",
                cell(q.get("count")),
                if complete { "" } else { "+" }
            ),
        ]);
    }
    println!("{counts}");
    let now = jiff::Timestamp::now().as_millisecond();
    let mut rows = table(["Queue", "Id", "Workflow", "Position", "Held by", "Since"]);
    let mut any = false;
    for q in &queues {
        for o in q
            .get("orders")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            any = true;
            let ms = |k: &str| o.get(k).and_then(Json::as_i64);
            let since = match q.get("queue").and_then(Json::as_str) {
                Some("running") => ms("startedMs")
                    .map(|t| format!("{} ({} so far)", local_time(t), duration(now - t))),
                Some("finished" | "failed") => ms("endedMs").map(local_time),
                _ => ms("addedMs").map(local_time),
            };
            rows.add_row([
                cell(q.get("queue")),
                cell(o.get("id")),
                cell(o.get("workflow")),
                cell(o.get("position")),
                holder(o.get("holder")),
                since.unwrap_or_default(),
            ]);
        }
    }
    if any {
        println!("{rows}");
    }
    for q in &queues {
        if let Some(next) = q.get("next").filter(|n| !n.is_null()) {
            println!(
                "more in {}: repeat with --queue {} --after {}",
                cell(q.get("queue")),
                cell(q.get("queue")),
                cell(Some(next))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
