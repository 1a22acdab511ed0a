//! What `ordo up` prints while it runs: one line per thing a person wants to know about —
//! objects deployed, orders added, ended, failed or waiting for an answer, the agent's link
//! lost and regained — `HH:MM:SS  what`, in local time.
//!
//! It follows the controller's event stream by long poll (`GET /events?after=&timeout=`) and
//! looks at `GET /agents` between polls. Lines go to a printing thread through a bounded
//! channel: a terminal that does not read never slows the servers; lines that do not fit are
//! counted and the count is printed instead.

use ordo_net::client::HttpsClient;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{SyncSender, TrySendError};
use tokio_tungstenite::tungstenite::http::Method;

/// How long one long poll waits for events.
const POLL_TIMEOUT_MS: u64 = 1000;
/// Lines waiting for the terminal before new ones are only counted.
const LINES_QUEUED_MAX: usize = 1000;
/// The longest text of one line, in characters.
const LINE_CHARS_MAX: usize = 200;

/// The event types worth a line, by the `type` of their frame.
fn worth_a_line(kind: &str) -> bool {
    matches!(
        kind,
        "Item" | "Added" | "Finished" | "Failed" | "Cancelled" | "Prompted" | "Suspended"
    ) || kind.ends_with("Deployed")
        || kind == "AgentRunChanged"
}

/// The line for one event frame, if it gets one.
pub fn line_for_event(frame: &Json) -> Option<String> {
    let kind = frame.get("type")?.as_str()?;
    if !worth_a_line(kind) {
        return None;
    }
    // An agent's own record of a workflow it was given is not a deployment.
    let from_agent = frame["event"]["type"] == "agent";
    if from_agent && kind == "Item" {
        return None;
    }
    let key = frame.get("key").and_then(Json::as_str).unwrap_or("");
    let text = frame.get("text").and_then(Json::as_str).unwrap_or("");
    let text: String = human(text).chars().take(LINE_CHARS_MAX).collect();
    let what = if key.is_empty() || key == "inventory" {
        text
    } else {
        format!("{key}: {text}")
    };
    Some(what)
}

/// An event's text with its leading type name in words: `WorkflowDeployed hello v2` →
/// `deployed workflow hello v2`, `Finished "done"` → `finished "done"`.
fn human(text: &str) -> String {
    let (name, rest) = text.split_once(' ').unwrap_or((text, ""));
    let sep = if rest.is_empty() { "" } else { " " };
    match name.strip_suffix("Deployed") {
        Some(object) if !object.is_empty() => format!("deployed {}{sep}{rest}", words(object)),
        _ => format!("{}{sep}{rest}", words(name)),
    }
}

/// `ProcessingStarted` → `processing started`.
fn words(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines for a change of the agents' links since `before` (id → connected).
pub fn lines_for_links(before: &mut BTreeMap<String, bool>, agents: &Json) -> Vec<String> {
    let mut out = Vec::new();
    for a in agents["agents"].as_array().into_iter().flatten() {
        let Some(id) = a["id"].as_str() else { continue };
        let connected = a["connected"].as_bool().unwrap_or(false);
        let was = before.insert(id.to_owned(), connected);
        match (was, connected) {
            (None, true) | (Some(false), true) => out.push(format!(
                "agent {id}: connected ({})",
                a["url"].as_str().unwrap_or("")
            )),
            (Some(true), false) => {
                let why = a["lastError"].as_str().unwrap_or("no reason given");
                out.push(format!(
                    "agent {id}: link lost ({why}); its orders go on there and report back when it is regained"
                ))
            }
            (None, false) => {
                let why = a["lastError"].as_str().unwrap_or("not reached yet");
                out.push(format!("agent {id}: not connected ({why})"))
            }
            _ => {}
        }
    }
    out
}

fn now_local() -> String {
    let now = jiff::Zoned::now();
    now.strftime("%H:%M:%S").to_string()
}

/// The printing end: a thread that writes the lines it gets to stdout.
pub struct Printer {
    tx: SyncSender<String>,
    dropped: u64,
}

impl Printer {
    pub fn start() -> Printer {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(LINES_QUEUED_MAX);
        std::thread::spawn(move || {
            let mut out = std::io::stdout();
            for line in rx {
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
        });
        Printer { tx, dropped: 0 }
    }

    pub fn line(&mut self, what: &str) {
        if self.dropped > 0 {
            let note = format!("{}  ({} lines not shown)", now_local(), self.dropped);
            if self.tx.try_send(note).is_ok() {
                self.dropped = 0;
            }
        }
        match self.tx.try_send(format!("{}  {what}", now_local())) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.dropped += 1,
        }
    }
}

/// Follows the controller at `base` (`…/api/v1`) from event `after` on, printing as it goes;
/// returns only when the controller cannot be asked any more (the caller stops it with the
/// servers).
pub async fn follow(api: HttpsClient, base: String, mut after: u64, mut printer: Printer) {
    let mut links = BTreeMap::new();
    let mut failures_in_a_row = 0u32;
    loop {
        let url = format!("{base}/events?after={after}&timeout={POLL_TIMEOUT_MS}");
        match api.request(Method::GET, &url, None).await {
            Ok(r) if r.status.is_success() => {
                failures_in_a_row = 0;
                for line in r.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let Ok(frame) = serde_json::from_slice::<Json>(line) else {
                        continue;
                    };
                    if let Some(id) = frame.get("eventId").and_then(Json::as_u64) {
                        after = after.max(id);
                    }
                    if let Some(what) = line_for_event(&frame) {
                        printer.line(&what);
                    }
                }
            }
            Ok(r) if r.status.as_u16() == 410 => {
                // The events after `after` are no longer kept: go on from the newest.
                if let Ok(h) = api.get_json::<Json>(&format!("{base}/health")).await {
                    after = h["lastEventId"].as_u64().unwrap_or(after);
                }
            }
            _ => {
                failures_in_a_row += 1;
                if failures_in_a_row == 3 {
                    printer.line("the controller does not answer; waiting for it");
                }
                tokio::time::sleep(std::time::Duration::from_millis(POLL_TIMEOUT_MS)).await;
            }
        }
        if let Ok(agents) = api.get_json::<Json>(&format!("{base}/agents")).await {
            for what in lines_for_links(&mut links, &agents) {
                printer.line(&what);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failures_and_deployments_get_a_line_and_job_output_does_not() {
        let failed =
            json!({"eventId": 5, "type": "Failed", "key": "o-1", "text": "Failed (agent local)"});
        assert_eq!(
            line_for_event(&failed).as_deref(),
            Some("o-1: failed (agent local)")
        );
        let item = json!({"eventId": 6, "type": "Item", "key": "inventory", "text": "WorkflowDeployed hello v2"});
        assert_eq!(
            line_for_event(&item).as_deref(),
            Some("deployed workflow hello v2")
        );
        let agents_copy = json!({"eventId": 6, "type": "Item", "key": "inventory", "text": "WorkflowDeployed hello v2 (agent a)", "event": {"type": "agent"}});
        assert_eq!(line_for_event(&agents_copy), None);
        let output = json!({"eventId": 7, "type": "Stdout", "key": "o-1", "text": "hello"});
        assert_eq!(line_for_event(&output), None);
        let moved = json!({"eventId": 8, "type": "Moved", "key": "o-1", "text": "moved"});
        assert_eq!(line_for_event(&moved), None);
    }

    #[test]
    fn a_link_gets_a_line_when_it_is_lost_and_when_it_is_regained() {
        let mut links = BTreeMap::new();
        let up =
            json!({"agents": [{"id": "local", "url": "wss://127.0.0.1:4444", "connected": true}]});
        let down = json!({"agents": [{"id": "local", "url": "wss://127.0.0.1:4444", "connected": false, "lastError": "connection refused"}]});
        assert_eq!(lines_for_links(&mut links, &up).len(), 1);
        assert!(lines_for_links(&mut links, &up).is_empty());
        let lost = lines_for_links(&mut links, &down);
        assert!(
            lost[0].contains("link lost (connection refused)"),
            "{lost:?}"
        );
        assert!(lines_for_links(&mut links, &down).is_empty());
        assert!(lines_for_links(&mut links, &up)[0].contains("connected"));
    }
}
