//! `ordo order ...`: add an order, steer one (cancel, suspend, resume, answer, go, remove),
//! and show one with its outcome history.
//!
//! `--arg k=v` values: `true`/`false` and JSON numbers become booleans and numbers, a
//! JSON string in double quotes is that string, anything else is the text as given.
//! `--arg k:json=VALUE` takes VALUE as JSON, any JSON (a list `[1,2]`, an object), and refuses
//! text that is not JSON; `order add --args-file F.json` reads the variables from a JSON
//! object (`--arg`s given too win over the file's).
//! `--at` takes an RFC 3339 instant (`2026-11-23T22:00:00Z`) or a delay from now (`+10m`).
//! `order add --wait` follows the order until it is finished, cancelled, failed or prompting
//! and exits 0 only when it finished. It reads the order from the API's view; while the view
//! has not caught up with the add it waits (and fails with the cockpit's reason when the
//! cockpit says its view is stuck), and an order that ended and was removed before it was seen
//! is looked up in the event stream, so a finished order is never reported as missing.

use crate::client::{Api, encode, status_failure};
use crate::exit::Failure;
use crate::output::{cell, duration, holder, humanize_instants, local_time, print_json, table};
use crate::profile::Global;
use ordo_model::time::DurationMs;
use ordo_net::clock::now_ms;
use serde_json::{Map, Value as Json, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Add an order for a workflow.
    Add(AddArgs),
    /// Cancel an order.
    Cancel(KillArgs),
    /// Suspend an order (it stops after its current job, or at once with --kill).
    Suspend(KillArgs),
    /// Resume a suspended or failed order.
    Resume(ResumeArgs),
    /// Answer an order's prompt.
    Answer(AnswerArgs),
    /// Let a waiting order go on now (skip its sleep or delay, start a scheduled order).
    Go(IdArgs),
    /// Remove a finished or cancelled order.
    Remove(IdArgs),
    /// Show an order: state, position, variables and outcome history.
    Show(ShowArgs),
}

/// A `k=v` argument, or `k:json=v` with a JSON value.
pub fn parse_arg(s: &str) -> Result<(String, Json), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE or NAME:json=JSON"))?;
    if let Some(name) = k.strip_suffix(":json") {
        if name.is_empty() {
            return Err(format!("{s:?} has no name before ':json='"));
        }
        let value = serde_json::from_str::<Json>(v)
            .map_err(|e| format!("the value of {name} is not JSON ({e}): {v}"))?;
        return Ok((name.to_owned(), value));
    }
    if k.is_empty() {
        return Err(format!("{s:?} has no name before '='"));
    }
    let value = match serde_json::from_str::<Json>(v) {
        Ok(j @ (Json::Bool(_) | Json::Number(_) | Json::String(_))) if v.trim() == v => j,
        _ => Json::String(v.to_owned()),
    };
    Ok((k.to_owned(), value))
}

/// When to start: milliseconds since the epoch (a `+DURATION` counted from now) or RFC 3339.
pub fn parse_at(s: &str) -> Result<Json, String> {
    if let Some(d) = s.strip_prefix('+') {
        let d = DurationMs::parse(d).map_err(|e| e.to_string())?;
        return Ok(json!(now_ms().saturating_add(d.0 as i64)));
    }
    let t: jiff::Timestamp = s.parse().map_err(|e| {
        format!("{s:?} is neither an RFC 3339 instant (2026-11-23T22:00:00Z) nor +DURATION: {e}")
    })?;
    Ok(json!(t.as_millisecond()))
}

fn vars(args: &[(String, Json)]) -> Option<Json> {
    if args.is_empty() {
        return None;
    }
    Some(Json::Object(args.iter().cloned().collect::<Map<_, _>>()))
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Workflow name.
    pub workflow: String,
    /// Order id (default: WORKFLOW-<UTC time>-<random>).
    #[arg(long)]
    pub id: Option<String>,
    /// A variable, NAME=VALUE, or NAME:json=JSON for any JSON value such as a list or an
    /// object (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_arg)]
    pub args: Vec<(String, Json)>,
    /// Variables from a file holding one JSON object; --arg values win over it.
    #[arg(long, value_name = "FILE")]
    pub args_file: Option<std::path::PathBuf>,
    /// Priority: higher first where orders wait for a lock or for a job's parallelism.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub priority: Option<i32>,
    /// Remove the order as soon as it has finished or was cancelled.
    #[arg(long, conflicts_with = "keep")]
    pub delete_when_terminated: bool,
    /// Keep the order once it has finished or was cancelled, whatever its workflow says.
    #[arg(long)]
    pub keep: bool,
    /// Start at this time: RFC 3339, or +DURATION from now (+90s, +10m, +1h30m).
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<Json>,
    /// Wait until the order finished (exit 0) or is cancelled, failed or prompting (exit 1).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (exit 1), e.g. 10m.
    #[arg(long, value_name = "DURATION", requires = "wait", value_parser = DurationMs::parse)]
    pub timeout: Option<DurationMs>,
    /// Print the server's answer (and with --wait the final order) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct IdArgs {
    /// Order id.
    pub id: String,
}

#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Order id.
    pub id: String,
    /// Stop the running job too, with SIGTERM (SIGKILL after its grace time).
    #[arg(long, conflicts_with = "kill_now")]
    pub kill: bool,
    /// Stop the running job too, with SIGKILL at once.
    #[arg(long)]
    pub kill_now: bool,
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// Order id.
    pub id: String,
    /// Resume at this position instead (e.g. 2/try/0).
    #[arg(long)]
    pub position: Option<String>,
    /// Set a variable, NAME=VALUE (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_arg)]
    pub args: Vec<(String, Json)>,
}

#[derive(clap::Args, Debug)]
pub struct AnswerArgs {
    /// Order id.
    pub id: String,
    /// Set a variable with the answer, NAME=VALUE (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_arg)]
    pub args: Vec<(String, Json)>,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Order id.
    pub id: String,
    /// Print the order as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A new order id: `<workflow>-<UTC yyyymmddThhmmss>-<6 random hex digits>`.
pub fn default_id(workflow: &str) -> Result<String, Failure> {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes)
        .map_err(|e| Failure::failed(format!("cannot read random bytes: {e}")))?;
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S");
    Ok(format!(
        "{workflow}-{stamp}-{:02x}{:02x}{:02x}",
        bytes[0], bytes[1], bytes[2]
    ))
}

pub async fn run(command: &Command, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let (id, verb, body) = match command {
        Command::Add(a) => return add(&api, a).await,
        Command::Show(a) => return show(&api, a).await,
        Command::Remove(a) => {
            let answer = api.delete(&format!("/orders/{}", encode(&a.id))).await?;
            report(&a.id, "removed", &answer);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Cancel(a) => (&a.id, "cancel", kill_body(a)),
        Command::Suspend(a) => (&a.id, "suspend", kill_body(a)),
        Command::Resume(a) => {
            let mut body = Map::new();
            if let Some(p) = &a.position {
                body.insert("position".into(), json!(p));
            }
            if let Some(v) = vars(&a.args) {
                body.insert("vars".into(), v);
            }
            (&a.id, "resume", Json::Object(body))
        }
        Command::Answer(a) => {
            let body = match vars(&a.args) {
                Some(v) => json!({ "vars": v }),
                None => json!({}),
            };
            (&a.id, "answer", body)
        }
        Command::Go(a) => (&a.id, "go", json!({})),
    };
    let answer = api
        .post(&format!("/orders/{}/{verb}", encode(id)), &body)
        .await?;
    let done = match verb {
        "cancel" => "cancelled",
        "suspend" => "suspended",
        "resume" => "resumed",
        "answer" => "answered",
        _ => "told to go on",
    };
    report(id, done, &answer);
    Ok(ExitCode::SUCCESS)
}

fn kill_body(a: &KillArgs) -> Json {
    match (a.kill, a.kill_now) {
        (_, true) => json!({"kill": "kill"}),
        (true, false) => json!({"kill": "term"}),
        _ => json!({}),
    }
}

fn report(id: &str, done: &str, answer: &Json) {
    if answer.get("duplicate").and_then(Json::as_bool) == Some(true) {
        println!("order {id}: {done} already (nothing to do)");
    } else {
        println!("order {id}: {done}");
    }
}

async fn add(api: &Api, a: &AddArgs) -> anyhow::Result<ExitCode> {
    let id = match &a.id {
        Some(id) => id.clone(),
        None => default_id(&a.workflow)?,
    };
    let mut body = json!({ "id": id, "workflow": a.workflow });
    let mut args = match &a.args_file {
        Some(path) => args_file(path)?,
        None => Map::new(),
    };
    args.extend(a.args.iter().cloned());
    if !args.is_empty() {
        body["args"] = Json::Object(args);
    }
    if let Some(p) = a.priority {
        body["priority"] = json!(p);
    }
    if a.delete_when_terminated || a.keep {
        body["deleteWhenTerminated"] = json!(a.delete_when_terminated);
    }
    if let Some(at) = &a.at {
        body["scheduledFor"] = at.clone();
    }
    let answer = api.post("/orders", &body).await?;
    let result = answer
        .get("results")
        .and_then(Json::as_array)
        .and_then(|r| r.first());
    if let Some(e) = result.and_then(|r| r.get("error")).and_then(Json::as_str) {
        return Err(Failure::failed(e.to_owned()).into());
    }
    let duplicate = result
        .and_then(|r| r.get("duplicate"))
        .and_then(Json::as_bool)
        == Some(true);
    if !a.wait {
        if a.json {
            print_json(&answer);
        } else if duplicate {
            println!("order {id} exists already; not added again");
        } else {
            println!("added order {id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !a.json {
        if duplicate {
            eprintln!("order {id} exists already; waiting for it");
        } else {
            eprintln!("added order {id}; waiting for it");
        }
    }
    let added_at = answer
        .get("lastEventId")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let order = wait(
        api,
        &id,
        added_at,
        a.timeout.map(|d| Duration::from_millis(d.0)),
    )
    .await?;
    let state = order.get("state").and_then(Json::as_str).unwrap_or("?");
    if a.json {
        print_json(&order);
    } else {
        println!(
            "order {id}: {state} at {} ({})",
            cell(order.get("position")),
            cell(order.get("stateDetail"))
        );
    }
    Ok(if state == "finished" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Most bytes of an `--args-file`.
const ARGS_FILE_BYTES_MAX: u64 = 16 << 20;

/// The variables of an `--args-file`: one JSON object.
fn args_file(path: &std::path::Path) -> Result<Map<String, Json>, Failure> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| Failure::failed(format!("--args-file {shown}: {e}")))?
        .len();
    if len > ARGS_FILE_BYTES_MAX {
        return Err(Failure::failed(format!(
            "--args-file {shown}: {len} bytes; at most {ARGS_FILE_BYTES_MAX} are read"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::failed(format!("--args-file {shown}: {e}")))?;
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(Failure::failed(format!(
            "--args-file {shown}: must hold a JSON object of variables, not {}",
            match other {
                Json::Array(_) => "a list",
                Json::String(_) => "a string",
                Json::Number(_) => "a number",
                Json::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(Failure::failed(format!(
            "--args-file {shown} is not JSON: {e}"
        ))),
    }
}

/// States an order stays in until someone acts (or never leaves).
pub fn is_settled(state: &str) -> bool {
    matches!(state, "finished" | "cancelled" | "failed" | "prompting")
}

/// Pages of the event stream read at most when looking for the end of a removed order.
const END_SEARCH_PAGES_MAX: usize = 1000;

/// Polls the order until it is settled, showing its state on a spinner. `added_at` is the
/// event id the add answered with: an API view behind it has not seen the order yet.
async fn wait(
    api: &Api,
    id: &str,
    added_at: u64,
    timeout: Option<Duration>,
) -> Result<Json, Failure> {
    let started = Instant::now();
    let bar = crate::output::spinner(format!("order {id}"));
    let path = format!("/orders/{}", encode(id));
    let mut pause = Duration::from_millis(50);
    loop {
        let (status, order) = api.get_any(&path).await?;
        let state = if status.is_success() {
            let state = order.get("state").and_then(Json::as_str).unwrap_or("?");
            bar.set_message(format!(
                "order {id}: {state} at {}",
                cell(order.get("position"))
            ));
            if is_settled(state) {
                bar.finish_and_clear();
                return Ok(order);
            }
            state.to_owned()
        } else if status == tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND {
            let health = api.health().await?;
            let view_at = health
                .get("lastEventId")
                .and_then(Json::as_u64)
                .unwrap_or(0);
            if let Some(reason) = health.get("reason").and_then(Json::as_str) {
                bar.finish_and_clear();
                return Err(Failure::failed(format!(
                    "order {id}: the API's view is stuck at event {view_at} (the order was added at event {added_at}): {reason}"
                )));
            }
            if view_at >= added_at {
                bar.finish_and_clear();
                return match find_end(api, id, added_at.saturating_sub(1), view_at).await? {
                    Some(end) => Ok(end),
                    None => Err(Failure::failed(format!(
                        "order {id} was removed before its end could be seen (its events: ordo watch --after 0 --key {id})"
                    ))),
                };
            }
            bar.set_message(format!(
                "order {id}: waiting for the API's view (at event {view_at}; the order was added at event {added_at})"
            ));
            "not in the API's view yet".to_owned()
        } else {
            bar.finish_and_clear();
            return Err(status_failure(status, order.to_string().as_bytes()));
        };
        if let Some(t) = timeout
            && started.elapsed() >= t
        {
            bar.finish_and_clear();
            return Err(Failure::failed(format!(
                "order {id} is still {state} after {}",
                DurationMs(t.as_millis() as u64)
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// The state an order settles in with an event of this type.
fn settled_by(event_type: &str) -> Option<&'static str> {
    match event_type {
        "Finished" => Some("finished"),
        "Cancelled" => Some("cancelled"),
        "Failed" => Some("failed"),
        "Prompted" => Some("prompting"),
        _ => None,
    }
}

/// The first event after `after` (up to `until`) that settled order `id`, as an order
/// summary `{id, state, stateDetail, eventId, removed: true}`; `None` when the stream has none.
async fn find_end(api: &Api, id: &str, after: u64, until: u64) -> Result<Option<Json>, Failure> {
    let mut cursor = after;
    for _ in 0..END_SEARCH_PAGES_MAX {
        if cursor >= until {
            break;
        }
        let page = match api
            .get_text(&format!("/events?after={cursor}&timeout=1"))
            .await
        {
            Ok(p) => p,
            // The events are no longer kept.
            Err(_) => return Ok(None),
        };
        let mut any = false;
        for line in page.lines().filter(|l| !l.trim().is_empty()) {
            let e: Json = serde_json::from_str(line)
                .map_err(|e| Failure::failed(format!("an event is not JSON: {e}")))?;
            let Some(event_id) = e.get("eventId").and_then(Json::as_u64) else {
                continue;
            };
            any = true;
            cursor = cursor.max(event_id);
            if e.get("key").and_then(Json::as_str) != Some(id) {
                continue;
            }
            if let Some(state) = e.get("type").and_then(Json::as_str).and_then(settled_by) {
                let text = e.get("text").and_then(Json::as_str).unwrap_or(state);
                return Ok(Some(json!({
                    "id": id,
                    "state": state,
                    "stateDetail": format!("{text} (removed since)"),
                    "position": null,
                    "eventId": event_id,
                    "removed": true,
                })));
            }
        }
        if !any {
            break;
        }
    }
    Ok(None)
}

async fn show(api: &Api, a: &ShowArgs) -> anyhow::Result<ExitCode> {
    let order = api.get(&format!("/orders/{}", encode(&a.id))).await?;
    if a.json {
        print_json(&order);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(["Field", "Value"]);
    let field = |k: &str| cell(order.get(k));
    t.add_row(["id".to_owned(), field("id")]);
    t.add_row([
        "workflow".to_owned(),
        format!("{} (version {})", field("workflow"), field("version")),
    ]);
    t.add_row(["state".to_owned(), field("state")]);
    t.add_row([
        "detail".to_owned(),
        humanize_instants(&field("stateDetail")),
    ]);
    if let Some(what) = order.get("waitingFor").and_then(Json::as_str) {
        let when = order
            .get("waitingUntilMs")
            .and_then(Json::as_i64)
            .map(|ms| {
                let left = ms - now_ms();
                let left = if left > 0 {
                    format!(", in {}", duration(left))
                } else {
                    String::new()
                };
                format!(" at {}{left}", local_time(ms))
            })
            .unwrap_or_default();
        t.add_row(["waiting for".to_owned(), format!("{what}{when}")]);
    }
    for (k, label) in [
        ("addedMs", "added"),
        ("startedMs", "started"),
        ("endedMs", "ended"),
    ] {
        if let Some(ms) = order.get(k).and_then(Json::as_i64) {
            t.add_row([label.to_owned(), local_time(ms)]);
        }
    }
    if let (Some(a), Some(b)) = (
        order.get("startedMs").and_then(Json::as_i64),
        order.get("endedMs").and_then(Json::as_i64),
    ) {
        t.add_row(["duration".to_owned(), duration(b - a)]);
    }
    t.add_row(["position".to_owned(), field("position")]);
    t.add_row(["attempt".to_owned(), field("attempt")]);
    t.add_row(["held by".to_owned(), holder(order.get("holder"))]);
    t.add_row(["priority".to_owned(), field("priority")]);
    if order.get("deleteWhenTerminated").and_then(Json::as_bool) == Some(true) {
        t.add_row([
            "when ended".to_owned(),
            "removed (deleteWhenTerminated)".to_owned(),
        ]);
    }
    if let Some(ms) = order.get("scheduledFor").and_then(Json::as_i64) {
        t.add_row(["scheduled for".to_owned(), local_time(ms)]);
    }
    for k in ["parent", "mark"] {
        if order.get(k).is_some_and(|v| !v.is_null()) {
            t.add_row([k.to_owned(), field(k)]);
        }
    }
    if let Some(vars) = order.get("vars").and_then(Json::as_object) {
        for (k, v) in vars {
            t.add_row([format!("${k}"), cell(Some(v))]);
        }
    }
    println!("{t}");
    let outcomes = order
        .get("outcomes")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if outcomes.is_empty() {
        println!("no outcomes yet");
    } else {
        let mut h = table(["Position", "Outcome"]);
        for o in &outcomes {
            h.add_row([
                cell(o.get("position")),
                humanize_instants(&cell(o.get("outcome"))),
            ]);
        }
        println!("{h}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_args_take_any_json_and_refuse_other_text() {
        assert_eq!(
            parse_arg("x:json=[1,2]").unwrap(),
            ("x".into(), json!([1, 2]))
        );
        assert_eq!(
            parse_arg("m:json={\"a\":{\"b\":[true]}}").unwrap(),
            ("m".into(), json!({"a": {"b": [true]}}))
        );
        assert_eq!(parse_arg("s:json=\"t\"").unwrap(), ("s".into(), json!("t")));
        let e = parse_arg("x:json=[1,").unwrap_err();
        assert!(e.contains("the value of x is not JSON"), "{e}");
        assert!(parse_arg(":json=1").is_err());
    }

    #[test]
    fn args_parse_to_typed_values() {
        assert_eq!(parse_arg("n=3").unwrap(), ("n".into(), json!(3)));
        assert_eq!(parse_arg("x=1.5").unwrap(), ("x".into(), json!(1.5)));
        assert_eq!(parse_arg("b=true").unwrap(), ("b".into(), json!(true)));
        assert_eq!(parse_arg("s=hello").unwrap(), ("s".into(), json!("hello")));
        assert_eq!(parse_arg("z=007").unwrap(), ("z".into(), json!("007")));
        assert_eq!(parse_arg("q=\"12\"").unwrap(), ("q".into(), json!("12")));
        assert_eq!(parse_arg("e=").unwrap(), ("e".into(), json!("")));
        assert_eq!(parse_arg("k=a=b").unwrap(), ("k".into(), json!("a=b")));
        assert_eq!(parse_arg("l=[1]").unwrap(), ("l".into(), json!("[1]")));
        assert_eq!(parse_arg("n= 3").unwrap(), ("n".into(), json!(" 3")));
        assert!(parse_arg("novalue").is_err());
        assert!(parse_arg("=v").is_err());
    }

    #[test]
    fn times_parse() {
        assert_eq!(
            parse_at("2026-11-23T22:00:00Z").unwrap(),
            json!(1_795_471_200_000i64)
        );
        let soon = parse_at("+10m").unwrap().as_i64().unwrap();
        let expected = now_ms() + 600_000;
        assert!((soon - expected).abs() < 5_000, "{soon} vs {expected}");
        assert!(parse_at("tomorrow").is_err());
        assert!(parse_at("+10x").is_err());
    }

    #[test]
    fn default_ids_are_valid_and_differ() {
        let a = default_id("hello").unwrap();
        let b = default_id("hello").unwrap();
        assert!(a.starts_with("hello-"), "{a}");
        assert_ne!(a, b);
        ordo_model::ids::OrderId::new(&a).unwrap();
    }
}
