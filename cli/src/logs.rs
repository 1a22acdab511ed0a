//! `ordo logs ID [--follow]`: an order's job output (`GET /orders/{id}/log`, text; `--json`
//! prints `{"id", "log"}`).
//!
//! `--follow` keeps printing new output until the order ends. It reads the cockpit's
//! `GET /orders/{id}/log/ws`: text frames `{eventId, type, text}` with `type` `Stdout` or
//! `Stderr` (output, printed as it is), `OutputTruncated` (printed as `[text]` on a line of its
//! own, as `/log` does), `{type: Gap, text}` (a notice on stderr), `{type: End, state}` (the
//! order ended: done), `{error}` (exit 1); a close also ends it. Where that route is missing
//! (the controller's own API) it polls `/log` and the order's state until the order is
//! finished, cancelled or failed.

use crate::client::{Api, Incoming, encode};
use crate::exit::Failure;
use crate::order::is_settled;
use crate::profile::Global;
use serde_json::Value as Json;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Time between two polls of the log.
const POLL_INTERVAL_MS: u64 = 300;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Order id.
    pub id: String,
    /// Keep printing new output until the order ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Print `{"id", "log"}` as JSON (not with --follow).
    #[arg(long, conflicts_with = "follow")]
    pub json: bool,
}

fn emit(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::failed(format!("writing the output: {e}")))
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let id = encode(&args.id);
    if !args.follow {
        let text = api.get_text(&format!("/orders/{id}/log")).await?;
        if args.json {
            crate::output::print_json(&serde_json::json!({"id": args.id, "log": text}));
        } else {
            emit(text.as_bytes())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The order must exist (and the token work) before anything is followed.
    api.get(&format!("/orders/{id}")).await?;
    match api.websocket(&format!("/orders/{id}/log/ws")).await {
        Ok(mut ws) => loop {
            match ws.next().await {
                Ok(Incoming::Closed) => return Ok(ExitCode::SUCCESS),
                Ok(Incoming::Binary(b)) => emit(&b)?,
                Ok(Incoming::Text(t)) => {
                    let frame: Json = serde_json::from_str(&t).map_err(|e| {
                        Failure::failed(format!("a log frame is not JSON ({e}): {t}"))
                    })?;
                    if let Some(e) = frame.get("error").and_then(Json::as_str) {
                        return Err(Failure::failed(e.to_owned()).into());
                    }
                    let text = frame.get("text").and_then(Json::as_str).unwrap_or("");
                    match frame.get("type").and_then(Json::as_str) {
                        Some("End") => return Ok(ExitCode::SUCCESS),
                        Some("Gap") => eprintln!("ordo: {text}"),
                        Some("OutputTruncated") => emit(format!("\n[{text}]\n").as_bytes())?,
                        _ => emit(text.as_bytes())?,
                    }
                }
                Err(e) => {
                    return Err(Failure::unreachable(format!("the log stream broke: {e}")).into());
                }
            }
        },
        Err(_) => poll(&api, &id).await,
    }
}

/// Prints what the log gained since the last poll until the order ends.
async fn poll(api: &Api, id: &str) -> anyhow::Result<ExitCode> {
    let mut printed = 0usize;
    loop {
        // Read the state first: output that arrives before an order ends is in the next log.
        let order = api.get(&format!("/orders/{id}")).await?;
        let state = order.get("state").and_then(Json::as_str).unwrap_or("");
        let text = api.get_text(&format!("/orders/{id}/log")).await?;
        if text.len() > printed && text.is_char_boundary(printed) {
            emit(&text.as_bytes()[printed..])?;
            printed = text.len();
        }
        if is_settled(state) && state != "prompting" {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}
