//! `ordo watch`: the live event feed, one line per event:
//! `<time> [<event id>] <key>: <text>` (`--json`: the event objects, one a line).
//!
//! It starts after `--after ID`, else at the API's current `lastEventId` (`GET /health`), and
//! reads `GET /events/ws?after=` (one event object per text frame). When the socket cannot be
//! opened it long-polls `GET /events?after=&timeout=` (NDJSON); when a socket closes it opens
//! a new one after the last event seen, so nothing is skipped or printed twice. A frame
//! `{"error": ...}` (e.g. the id is no longer kept) ends the command with exit 1.

use crate::client::{Api, Incoming, query};
use crate::exit::Failure;
use crate::output::time_ms_precise;
use crate::profile::Global;
use serde_json::Value as Json;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Reconnections in a row without an event before giving up.
const RECONNECTS_MAX: u32 = 10;
/// How long one long poll waits for an event.
const LONG_POLL_MS: u64 = 25_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start after this event id (0: every event still kept); default: now.
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
    /// Only events of this key (an order id, `inventory`, `board:NAME`, ...).
    #[arg(long)]
    pub key: Option<String>,
    /// Stop after this many events (counted after the --key filter).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Print each event as one line of JSON.
    #[arg(long)]
    pub json: bool,
}

struct Feed<'a> {
    args: &'a Args,
    after: u64,
    shown: u64,
}

enum Step {
    Go,
    Done,
}

impl Feed<'_> {
    /// Handles one event object; `Done` when `--count` is reached.
    fn event(&mut self, e: &Json) -> Result<Step, Failure> {
        if let Some(err) = e.get("error").and_then(Json::as_str) {
            return Err(Failure::failed(err.to_owned()));
        }
        let Some(id) = e.get("eventId").and_then(Json::as_u64) else {
            return Err(Failure::failed(format!("an event without eventId: {e}")));
        };
        if id <= self.after {
            return Ok(Step::Go);
        }
        self.after = id;
        let key = e.get("key").and_then(Json::as_str).unwrap_or("");
        if self.args.key.as_deref().is_some_and(|k| k != key) {
            return Ok(Step::Go);
        }
        let line = if self.args.json {
            e.to_string()
        } else {
            let ts = e.get("ts").and_then(Json::as_i64).unwrap_or(0);
            let text = e
                .get("text")
                .and_then(Json::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| e.get("type").map(Json::to_string).unwrap_or_default());
            let text = text.trim_end_matches('\n').replace('\n', "\\n");
            format!("{} [{id}] {key}: {text}", time_ms_precise(ts))
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| Failure::failed(format!("writing the feed: {e}")))?;
        self.shown += 1;
        Ok(match self.args.count {
            Some(n) if self.shown >= n => Step::Done,
            _ => Step::Go,
        })
    }
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let after = match args.after {
        Some(a) => a,
        None => {
            let health = api.health().await?;
            health
                .get("lastEventId")
                .and_then(Json::as_u64)
                .unwrap_or(0)
        }
    };
    if args.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut feed = Feed {
        args,
        after,
        shown: 0,
    };
    let mut failures = 0u32;
    loop {
        let path = format!(
            "/events/ws{}",
            query(&[("after", Some(feed.after.to_string()))])
        );
        let mut ws = match api.websocket(&path).await {
            Ok(ws) => ws,
            Err(e) => {
                eprintln!("ordo: no event WebSocket ({e}); long-polling instead");
                return long_poll(&api, &mut feed).await;
            }
        };
        let before = feed.after;
        let ended = loop {
            match ws.next().await {
                Ok(Incoming::Text(t)) => {
                    let e: Json = serde_json::from_str(&t)
                        .map_err(|e| Failure::failed(format!("an event is not JSON: {e}")))?;
                    if let Step::Done = feed.event(&e)? {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Ok(Incoming::Binary(_)) => {}
                Ok(Incoming::Closed) => break "the server closed the feed".to_owned(),
                Err(e) => break e,
            }
        };
        failures = if feed.after > before { 0 } else { failures + 1 };
        if failures >= RECONNECTS_MAX {
            return Err(Failure::unreachable(format!(
                "the event feed keeps breaking ({ended}); gave up after {RECONNECTS_MAX} tries"
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
    }
}

async fn long_poll(api: &Api, feed: &mut Feed<'_>) -> anyhow::Result<ExitCode> {
    loop {
        let q = query(&[
            ("after", Some(feed.after.to_string())),
            ("timeout", Some(LONG_POLL_MS.to_string())),
        ]);
        let text = api.get_text(&format!("/events{q}")).await?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let e: Json = serde_json::from_str(line)
                .map_err(|e| Failure::failed(format!("an event is not JSON: {e}")))?;
            if let Step::Done = feed.event(&e)? {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}
