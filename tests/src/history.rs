//! A history checker over the controller's event stream, in the vocabulary of Jepsen's
//! total-queue checker: orders that were **acknowledged** (added), **lost** (acknowledged but
//! never ended), **unexpected** (events for orders nobody added), and **duplicated** (a job
//! started twice at the same position and attempt, or an order that ended twice).

use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

/// What the events say happened.
#[derive(Debug, Default)]
pub struct History {
    pub added: BTreeSet<String>,
    pub ended: BTreeMap<String, Vec<String>>,
    /// Job starts per order: the number of `ProcessingStarted` events that were not withdrawn.
    pub starts: BTreeMap<String, u32>,
    /// Job starts per order that came after a `Restarted` (a crash of the agent).
    pub restarts: BTreeMap<String, u32>,
    pub unexpected: BTreeSet<String>,
}

impl History {
    /// Reads events as the stream gives them (`{eventId, key, type, ...}`).
    pub fn from_events(events: &[Json]) -> History {
        let mut h = History::default();
        let mut last_id = 0u64;
        for e in events {
            let id = e["eventId"].as_u64().unwrap_or(0);
            assert!(
                id > last_id,
                "event ids must increase: {id} after {last_id}"
            );
            last_id = id;
            let key = e["key"].as_str().unwrap_or("").to_owned();
            let kind = e["type"].as_str().unwrap_or("");
            if key.starts_with("agent:") || key.starts_with("board:") || key == "inventory" {
                continue;
            }
            match kind {
                "Added" => {
                    h.added.insert(key);
                }
                "ProcessingStarted" => *h.starts.entry(key).or_default() += 1,
                // A start taken back before its spawn: the job did not run.
                "ProcessingWithdrawn" => {
                    if let Some(n) = h.starts.get_mut(&key) {
                        *n = n.saturating_sub(1);
                    }
                }
                "Restarted" => *h.restarts.entry(key).or_default() += 1,
                "Finished" | "Cancelled" | "Failed" => {
                    h.ended.entry(key).or_default().push(kind.to_owned())
                }
                "Resumed" => {
                    // A failed order that is resumed may end again.
                    h.ended.remove(&key);
                }
                _ => {
                    if !h.added.contains(&key) && !key.contains('|') {
                        h.unexpected.insert(key);
                    }
                }
            }
        }
        h
    }

    /// Acknowledged orders that never ended.
    pub fn lost(&self, acknowledged: &[String]) -> Vec<String> {
        acknowledged
            .iter()
            .filter(|id| !self.ended.contains_key(*id))
            .cloned()
            .collect()
    }

    /// Orders whose job started more often than `jobs` plus their restarts.
    pub fn duplicated(&self, jobs: u32) -> Vec<String> {
        self.starts
            .iter()
            .filter(|(id, n)| **n > jobs + self.restarts.get(*id).copied().unwrap_or(0))
            .map(|(id, _)| id.clone())
            .collect()
    }
}
