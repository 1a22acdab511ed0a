//! `ordo orders`: the order list, filtered and paged by the API
//! (`GET /orders?workflow=&state=&agent=&since=&until=&limit=&after=` → `{orders, next}`;
//! `since` and `until` in milliseconds since the epoch).
//!
//! Only the filters given are sent. When the answer has a `next` cursor, the table is
//! followed by the command for the next page.
//!
//! `ordo orders resend [--state failed|suspended] [--workflow W] [--agent A] [--since T]
//! [--until T] [--position P]` resumes the matching orders in bulk
//! (`POST /bulk/resume`) and says how many it resumed and which it could not.

use crate::client::{Api, query};
use crate::output::{cell, duration, holder, humanize_instants, local_time, print_json, table};
use crate::profile::Global;
use serde_json::Value as Json;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Only orders of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only orders in this state (fresh, ready, processing, waiting, prompting, suspended,
    /// failed, cancelled, finished).
    #[arg(long)]
    pub state: Option<String>,
    /// Only orders held by or bound for this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only orders added at or after this time: RFC 3339, or -DURATION/+DURATION from now.
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    pub since: Option<i64>,
    /// Only orders added before this time (same forms).
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    pub until: Option<i64>,
    /// At most this many orders.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue after this cursor (the `next` of the previous page).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Resume failed (or suspended) orders in bulk, where they stopped or at --position.
    Resend(ResendArgs),
}

#[derive(clap::Args, Debug)]
pub struct ResendArgs {
    /// The orders in this state: failed or suspended.
    #[arg(long, default_value = "failed")]
    pub state: String,
    /// Only orders of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only orders held by this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only orders added at or after this time: RFC 3339, or -DURATION/+DURATION from now.
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    pub since: Option<i64>,
    /// Only orders added before this time (same forms).
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    pub until: Option<i64>,
    /// Resume every order at this position (e.g. 0, 2/try/0) instead of where it stopped.
    #[arg(long)]
    pub position: Option<String>,
    /// Print the server's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// An instant in milliseconds since the epoch, from RFC 3339 or a signed duration from now
/// (`-2h`, `+30m`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let now = jiff::Timestamp::now().as_millisecond();
    let relative = |d: &str, sign: i64| -> Result<i64, String> {
        let d = ordo_model::time::DurationMs::parse(d).map_err(|e| e.to_string())?;
        Ok(now.saturating_add(sign * d.0 as i64))
    };
    if let Some(d) = s.strip_prefix('-') {
        return relative(d, -1);
    }
    if let Some(d) = s.strip_prefix('+') {
        return relative(d, 1);
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("{s:?} is neither RFC 3339 nor -DURATION: {e}"))
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    if let Some(Command::Resend(r)) = &args.command {
        return resend(&api, r).await;
    }
    let q = query(&[
        ("workflow", args.workflow.clone()),
        ("state", args.state.clone()),
        ("agent", args.agent.clone()),
        ("since", args.since.map(|t| t.to_string())),
        ("until", args.until.map(|t| t.to_string())),
        ("limit", args.limit.map(|n| n.to_string())),
        ("after", args.after.clone()),
    ]);
    let answer = api.get(&format!("/orders{q}")).await?;
    if args.json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let orders = answer
        .get("orders")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if orders.is_empty() {
        println!("no orders");
    } else {
        let mut t = table([
            "Id", "Workflow", "State", "Position", "Held by", "Added", "Duration", "Detail",
        ]);
        let ms = |o: &Json, k: &str| o.get(k).and_then(Json::as_i64);
        let now = jiff::Timestamp::now().as_millisecond();
        for o in &orders {
            let added = ms(o, "addedMs");
            let mut detail = humanize_instants(&cell(o.get("stateDetail")));
            if let Some(at) = ms(o, "scheduledFor").filter(|at| *at > now) {
                detail.push_str(&format!(", scheduled for {}", local_time(at)));
            }
            let took = match (ms(o, "startedMs"), ms(o, "endedMs")) {
                (Some(a), Some(b)) => duration(b - a),
                (Some(a), None) => format!("{} so far", duration(now - a)),
                _ => String::new(),
            };
            t.add_row([
                cell(o.get("id")),
                cell(o.get("workflow")),
                cell(o.get("state")),
                cell(o.get("position")),
                holder(o.get("holder")),
                added.map(local_time).unwrap_or_default(),
                took,
                detail,
            ]);
        }
        println!("{t}");
        println!(
            "{} order{}",
            orders.len(),
            if orders.len() == 1 { "" } else { "s" }
        );
    }
    if let Some(next) = answer.get("next").filter(|n| !n.is_null()) {
        println!("more: repeat with --after {}", cell(Some(next)));
    }
    Ok(ExitCode::SUCCESS)
}

/// `ordo orders resend`: exit 0 when every matching order was resumed, 1 when some were not.
async fn resend(api: &Api, a: &ResendArgs) -> anyhow::Result<ExitCode> {
    let mut body = serde_json::json!({ "state": a.state });
    let fields = [
        ("workflow", a.workflow.clone().map(Json::from)),
        ("agent", a.agent.clone().map(Json::from)),
        ("since", a.since.map(Json::from)),
        ("until", a.until.map(Json::from)),
        ("position", a.position.clone().map(Json::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    let answer = api.post("/bulk/resume", &body).await?;
    let count = |k: &str| answer.get(k).and_then(Json::as_u64).unwrap_or(0);
    let refused = answer
        .get("refused")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if a.json {
        print_json(&answer);
    } else {
        println!(
            "resumed {} of {} {} order{}",
            count("resumed"),
            count("matched"),
            a.state,
            if count("matched") == 1 { "" } else { "s" }
        );
        for r in &refused {
            println!("  not {}: {}", cell(r.get("id")), cell(r.get("error")));
        }
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_to_milliseconds() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1000);
        let now = jiff::Timestamp::now().as_millisecond();
        let back = parse_time("-1h").unwrap();
        assert!((now - 3_600_000 - back).abs() < 5_000);
        assert!(parse_time("yesterday").is_err());
    }
}
