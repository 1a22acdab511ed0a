//! `ordo plan preview PATH... --from T --until T [--json]`: the fires of the schedules in
//! inventory YAML (files and folders, read as `ordo check` reads them), offline, with no
//! server, in the half-open window `[from, until)`.
//!
//! One line per fire, ordered by instant then schedule: the instant in RFC 3339 with the UTC
//! offset in force in the schedule's time zone, the schedule, and the id of the order it adds;
//! a summary on stderr. With `--json`, a JSON array of `{schedule, instant, orderId,
//! workflow}`. Paused schedules are left out (said on stderr). `T` is an RFC 3339 instant
//! (`2026-03-29T00:00:00Z`, `2026-03-29T00:00:00+01:00`), a zoned time
//! (`2026-03-29T00:00[Europe/Berlin]`) or a date (`2026-03-29`, midnight UTC).
//!
//! Exits 1 when the inventory has an error (the problems are printed on stderr) or the window
//! holds too many fires, 2 on a bad `--from`/`--until`.
//!
//! The daily plan of the controller, through the cockpit API:
//!
//! - `ordo plan show [--date D] [--schedule S] [--json]` (`GET /plan`): one line per planned
//!   instant, what runs when and what ran: its instant, schedule, status (`planned`,
//!   `ordered`, `skipped` with why) and the state of its order;
//! - `ordo plan skip ORDER_ID`: the planned order is not added, or cancelled if added and not
//!   started;
//! - `ordo plan pause SCHEDULE`, `ordo plan resume SCHEDULE`;
//! - `ordo plan cancel --date D [--schedule S]`: the planned instants of that local date not
//!   started are skipped (`cancelled`): not added, or their orders cancelled;
//! - `ordo plan backfill SCHEDULE --from D --until D`: the orders of the schedule's past
//!   instants on those local dates that were never added are added now (they start at once);
//! - `ordo plan explain SCHEDULE [--date D] [--json]` (`GET /plan/explain`): why each instant
//!   of the schedule's local date (today in UTC when left out) is in the plan or not.

use crate::check::check_paths;
use crate::client::{Api, encode};
use crate::exit::Failure;
use crate::output::{cell, print_json, table};
use crate::profile::Global;
use anyhow::Context;
use jiff::Timestamp;
use ordo_model::schedule::{BundledZones, ExpandLimits, Expander, Window};
use serde_json::Value as Json;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `ordo plan [--date D] [--schedule S] [--json]` shows the plan, as `ordo plan show` does.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub show: ShowArgs,
}

impl Args {
    /// The command asked for: `show` with the flags given when none is named.
    pub fn command(&self) -> Command {
        self.command
            .clone()
            .unwrap_or_else(|| Command::Show(self.show.clone()))
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Print when the schedules of inventory YAML fire in a window, offline.
    Preview(PreviewArgs),
    /// Show the controller's daily plan: what runs when, and what ran.
    Show(ShowArgs),
    /// Skip a planned order: not added, or cancelled if added and not started.
    Skip {
        /// The planned order's id, `#date#schedule@time+offset`.
        order: String,
    },
    /// Pause a schedule: it adds no orders; its orders not started are cancelled.
    Pause { schedule: String },
    /// Resume a paused schedule; instants passed meanwhile follow its `missed:` policy.
    Resume { schedule: String },
    /// Cancel the planned orders of a day that have not started.
    Cancel {
        /// The local date (YYYY-MM-DD) in each schedule's time zone.
        #[arg(long)]
        date: String,
        /// Only this schedule.
        #[arg(long)]
        schedule: Option<String>,
    },
    /// Add the orders of a schedule's past instants in a range of local dates that were never
    /// added; they start at once. One backfill adds at most 1000 orders over at most a year:
    /// split a longer range.
    Backfill {
        schedule: String,
        /// The first local date (YYYY-MM-DD) in the schedule's time zone.
        #[arg(long)]
        from: String,
        /// The last local date (included).
        #[arg(long)]
        until: String,
    },
    /// Explain why each instant of a schedule's day is in the plan or not.
    Explain {
        schedule: String,
        /// The local date (YYYY-MM-DD) in the schedule's time zone; today (UTC) by default.
        #[arg(long)]
        date: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct ShowArgs {
    /// Only instants on this local date (YYYY-MM-DD) of their schedule's time zone.
    #[arg(long)]
    pub date: Option<String>,
    /// Only this schedule.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PreviewArgs {
    /// Files and folders; folders are searched recursively for *.yaml and *.yml.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The window's start (included): an RFC 3339 instant, a zoned time or a date (UTC).
    #[arg(long)]
    pub from: String,
    /// The window's end (excluded), written like --from; at most 366 days after it.
    #[arg(long)]
    pub until: String,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Whether the command works offline (no runtime, no server).
pub fn offline(c: &Command) -> bool {
    matches!(c, Command::Preview(_))
}

pub fn run(c: &Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Preview(args) => preview(args),
        _ => Err(anyhow::anyhow!("this plan command talks to the cockpit")),
    }
}

/// The plan commands that talk to the cockpit API.
pub async fn run_online(c: &Command, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let answer = match c {
        Command::Preview(_) => return run(c),
        Command::Show(args) => return show(&api, args).await,
        Command::Explain {
            schedule,
            date,
            json,
        } => return explain(&api, schedule, date.as_deref(), *json).await,
        Command::Backfill {
            schedule,
            from,
            until,
        } => {
            api.post(
                &format!(
                    "/plan/schedules/{}/backfill?from={}&until={}",
                    encode(schedule),
                    encode(from),
                    encode(until)
                ),
                &json!({}),
            )
            .await?
        }
        Command::Cancel { date, schedule } => {
            let mut path = format!("/plan/dates/{}/cancel", encode(date));
            if let Some(s) = schedule {
                path.push_str(&format!("?schedule={}", encode(s)));
            }
            api.post(&path, &json!({})).await?
        }
        Command::Skip { order } => {
            api.post(&format!("/plan/orders/{}/skip", encode(order)), &json!({}))
                .await?
        }
        Command::Pause { schedule } => {
            api.post(
                &format!("/plan/schedules/{}/pause", encode(schedule)),
                &json!({}),
            )
            .await?
        }
        Command::Resume { schedule } => {
            api.post(
                &format!("/plan/schedules/{}/resume", encode(schedule)),
                &json!({}),
            )
            .await?
        }
    };
    let _ = answer;
    println!("done");
    Ok(ExitCode::SUCCESS)
}

async fn show(api: &Api, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let mut query = Vec::new();
    if let Some(d) = &args.date {
        query.push(format!("date={}", encode(d)));
    }
    if let Some(s) = &args.schedule {
        query.push(format!("schedule={}", encode(s)));
    }
    let path = if query.is_empty() {
        "/plan".to_owned()
    } else {
        format!("/plan?{}", query.join("&"))
    };
    let answer = api.get(&path).await?;
    if args.json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let entries = answer
        .get("entries")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        println!("nothing planned");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(["Instant", "Schedule", "Status", "Order state", "Order id"]);
    for e in &entries {
        let status = match e.get("why").and_then(Json::as_str) {
            Some(why) => format!("{} ({why})", cell(e.get("status"))),
            None => cell(e.get("status")),
        };
        t.add_row([
            cell(e.get("instant")),
            cell(e.get("schedule")),
            status,
            cell(e.get("orderState")),
            cell(e.get("orderId")),
        ]);
    }
    println!("{t}");
    if answer.get("truncated").and_then(Json::as_bool) == Some(true) {
        eprintln!("more entries than one answer holds: filter by --date or --schedule");
    }
    Ok(ExitCode::SUCCESS)
}

async fn explain(
    api: &Api,
    schedule: &str,
    date: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let date = match date {
        Some(d) => d.to_owned(),
        None => Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string(),
    };
    let path = format!(
        "/plan/explain?schedule={}&date={}",
        encode(schedule),
        encode(&date)
    );
    let answer = api.get(&path).await?;
    if as_json {
        print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} on {} ({})",
        cell(answer.get("schedule")),
        cell(answer.get("date")),
        cell(answer.get("timeZone"))
    );
    for n in answer
        .get("notes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        println!("  {}", n.as_str().unwrap_or_default());
    }
    let instants = answer
        .get("instants")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if instants.is_empty() {
        println!("no time of the day");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(["Time", "Rule", "Instant", "Status", "Why"]);
    for e in &instants {
        let status = match e.get("why").and_then(Json::as_str) {
            Some(why) => format!("{} ({why})", cell(e.get("status"))),
            None => cell(e.get("status")),
        };
        let reasons: Vec<&str> = e
            .get("reasons")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        t.add_row([
            cell(e.get("wall")),
            cell(e.get("rule")),
            cell(e.get("instant")),
            status,
            reasons.join("; "),
        ]);
    }
    println!("{t}");
    if answer.get("truncated").and_then(Json::as_bool) == Some(true) {
        eprintln!("more times of the day than one answer holds");
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-03-29T00:00:00Z`, `2026-03-29T00:00[Europe/Berlin]` or `2026-03-29` (UTC).
fn instant(flag: &str, text: &str) -> Result<Timestamp, Failure> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(z) = text.parse::<jiff::Zoned>() {
        return Ok(z.timestamp());
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| Failure::usage(format!("{flag} {text:?}: {e}")));
    }
    Err(Failure::usage(format!(
        "{flag} {text:?} is not an instant: write 2026-03-29T00:00:00Z, 2026-03-29T00:00:00+01:00, 2026-03-29T00:00[Europe/Berlin] or 2026-03-29"
    )))
}

fn preview(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let from = instant("--from", &args.from)?;
    let until = instant("--until", &args.until)?;
    if until <= from {
        return Err(Failure::usage(format!(
            "--until {until} is not after --from {from}: the window [from, until) holds nothing"
        ))
        .into());
    }
    let checked = check_paths(&args.paths);
    let mut err = std::io::stderr().lock();
    for d in &checked.problems {
        writeln!(err, "{d}")?;
    }
    if checked.errors() > 0 {
        writeln!(err, "{}", checked.summary())?;
        return Ok(ExitCode::FAILURE);
    }
    let Some(inventory) = checked.inventory else {
        return Err(Failure::failed("the inventory could not be read").into());
    };
    let expander =
        Expander::new(&inventory, &BundledZones).map_err(|e| Failure::failed(e.to_string()))?;
    let window = Window { from, until };
    let fires = expander
        .fires(window, &ExpandLimits::default())
        .map_err(|e| Failure::failed(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = fires
            .iter()
            .map(|f| {
                let s = &inventory.schedules[f.schedule as usize];
                json!({
                    "schedule": s.name,
                    "instant": f.rfc3339(),
                    "orderId": expander.order_id(f).map(|id| id.to_string()).ok(),
                    "workflow": s.workflow,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list).context("writing the fires")?;
        writeln!(out)?;
    } else {
        for f in &fires {
            let s = &inventory.schedules[f.schedule as usize];
            let id = expander
                .order_id(f)
                .map(|id| id.to_string())
                .unwrap_or_default();
            writeln!(out, "{} {} {id}", f.rfc3339(), s.name)?;
        }
    }
    out.flush()?;
    for s in inventory.schedules.iter().filter(|s| s.paused) {
        writeln!(err, "schedule {} is paused: no fires", s.name)?;
    }
    let active = inventory.schedules.iter().filter(|s| !s.paused).count();
    writeln!(
        err,
        "{} fires of {active} schedules in [{from}, {until})",
        fires.len()
    )?;
    Ok(ExitCode::SUCCESS)
}
