//! `ordo logs ID [--follow]`: an order's job output (`GET /orders/{id}/log`, text).
//!
//! `--follow` keeps printing new output until the order is finished, cancelled or failed.
//! It reads `GET /orders/{id}/log/ws` when the API has it: each text frame is output (a JSON
//! object with a `text` or `chunk` string is unwrapped, one with `error` ends the command with
//! exit 1, one with `end` is the end), each binary frame raw output, the close the end. Where
//! that route is missing it polls `/log` and the order's state instead.

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
        emit(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    // The order must exist (and the token work) before anything is followed.
    api.get(&format!("/orders/{id}")).await?;
    match api.websocket(&format!("/orders/{id}/log/ws")).await {
        Ok(mut ws) => loop {
            match ws.next().await {
                Ok(Incoming::Closed) => return Ok(ExitCode::SUCCESS),
                Ok(Incoming::Binary(b)) => emit(&b)?,
                Ok(Incoming::Text(t)) => match serde_json::from_str::<Json>(&t) {
                    Ok(Json::Object(o)) => {
                        if let Some(e) = o.get("error").and_then(Json::as_str) {
                            return Err(Failure::failed(e.to_owned()).into());
                        }
                        if let Some(s) = ["text", "chunk"]
                            .iter()
                            .find_map(|k| o.get(*k).and_then(Json::as_str))
                        {
                            emit(s.as_bytes())?;
                        }
                        if o.get("end").is_some_and(|e| e != &Json::Bool(false)) {
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                    _ => emit(t.as_bytes())?,
                },
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
