//! A history checker over the controller's event stream, in the vocabulary of Jepsen's
//! total-queue checker: orders that were **attempted** (a client sent them at least once),
//! **acknowledged** (a controller answered that it took them), **lost** (acknowledged but
//! never ended), **unexpected** (in the history but never attempted, or with events but never
//! added), and **duplicated** (a job started more often than the workflow's jobs and the
//! agent crashes that explain a new start).
//!
//! [`identical_prefixes`] compares the committed event journals of the voters of a pair: on
//! the ids they all hold, the same ids in the same order with the same bytes.

use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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
            if key.starts_with("agent:")
                || key.starts_with("board:")
                || key == "inventory"
                || key == "controller"
            {
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

impl History {
    /// Every order id the history names: added, ended, started or with stray events.
    pub fn orders(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.added.iter().cloned().collect();
        all.extend(self.ended.keys().cloned());
        all.extend(self.starts.keys().cloned());
        all.extend(self.unexpected.iter().cloned());
        all
    }

    /// The checker's verdict on what clients `attempted` and saw `acknowledged`, for a
    /// workflow that starts `jobs` jobs per order.
    pub fn verdict(
        &self,
        attempted: &BTreeSet<String>,
        acknowledged: &BTreeSet<String>,
        jobs: u32,
    ) -> Verdict {
        let acknowledged_list: Vec<String> = acknowledged.iter().cloned().collect();
        let mut unexpected: BTreeSet<String> = self
            .orders()
            .into_iter()
            .filter(|id| !attempted.contains(id))
            .collect();
        unexpected.extend(self.unexpected.iter().cloned());
        Verdict {
            attempted: attempted.len(),
            acknowledged: acknowledged.len(),
            ended: self.ended.len(),
            finished: self
                .ended
                .values()
                .filter(|kinds| kinds.last().is_some_and(|k| k == "Finished"))
                .count(),
            lost: self.lost(&acknowledged_list),
            unexpected: unexpected.into_iter().collect(),
            duplicated: self.duplicated(jobs),
            ended_twice: self
                .ended
                .iter()
                .filter(|(_, kinds)| kinds.len() > 1)
                .map(|(id, _)| id.clone())
                .collect(),
        }
    }
}

/// What the checker found; [`Verdict::is_clean`] when nothing was lost, unexpected or
/// duplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub attempted: usize,
    pub acknowledged: usize,
    /// Orders that ended (finished, cancelled or failed).
    pub ended: usize,
    pub finished: usize,
    /// Acknowledged but never ended.
    pub lost: Vec<String>,
    /// In the history but never attempted (or with events but never added).
    pub unexpected: Vec<String>,
    /// A job started more often than the workflow's jobs plus the agent crashes.
    pub duplicated: Vec<String>,
    /// Ended more than once without a resume in between.
    pub ended_twice: Vec<String>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.unexpected.is_empty()
            && self.duplicated.is_empty()
            && self.ended_twice.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let some = |ids: &[String]| -> String {
            let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
            format!("{} {shown:?}", ids.len())
        };
        write!(
            f,
            "attempted {}, acknowledged {}, ended {} (finished {}), lost {}, unexpected {}, duplicated {}, ended twice {}",
            self.attempted,
            self.acknowledged,
            self.ended,
            self.finished,
            some(&self.lost),
            some(&self.unexpected),
            some(&self.duplicated),
            some(&self.ended_twice),
        )
    }
}

/// The committed event journal of one voter: `(event id, record bytes)` in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventJournal {
    /// Whose journal (a name for messages, e.g. `node 2`).
    pub name: String,
    pub records: Vec<(u64, Vec<u8>)>,
}

impl EventJournal {
    pub fn first_id(&self) -> Option<u64> {
        self.records.first().map(|(id, _)| *id)
    }

    pub fn last_id(&self) -> Option<u64> {
        self.records.last().map(|(id, _)| *id)
    }

    /// The records with ids in `from..=to`.
    fn window(&self, from: u64, to: u64) -> &[(u64, Vec<u8>)] {
        let start = self.records.partition_point(|(id, _)| *id < from);
        let end = self.records.partition_point(|(id, _)| *id <= to);
        &self.records[start..end.max(start)]
    }
}

/// Checks that the journals agree where they overlap: for every two of them, over the ids
/// from the later first id to the earlier last id, the same ids in the same order with the
/// same bytes (a journal that starts later, from a snapshot, is compared from its start).
/// Also checks that each journal's ids increase. Returns every disagreement found, described.
pub fn identical_prefixes(journals: &[EventJournal]) -> Result<(), String> {
    let mut problems = Vec::new();
    for j in journals {
        if let Some(w) = j.records.windows(2).find(|w| w[0].0 >= w[1].0) {
            problems.push(format!(
                "{}: event id {} follows {}",
                j.name, w[1].0, w[0].0
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    for (i, a) in journals.iter().enumerate() {
        for b in &journals[i + 1..] {
            let (Some(a_first), Some(a_last), Some(b_first), Some(b_last)) =
                (a.first_id(), a.last_id(), b.first_id(), b.last_id())
            else {
                continue;
            };
            let (from, to) = (a_first.max(b_first), a_last.min(b_last));
            if from > to {
                continue;
            }
            let (wa, wb) = (a.window(from, to), b.window(from, to));
            let differs = wa
                .iter()
                .zip(wb)
                .position(|(x, y)| x != y)
                .or((wa.len() != wb.len()).then_some(wa.len().min(wb.len())));
            if let Some(at) = differs {
                let show = |w: &[(u64, Vec<u8>)]| {
                    w.get(at)
                        .map(|(id, bytes)| format!("event {id} ({} bytes)", bytes.len()))
                        .unwrap_or_else(|| "nothing".to_owned())
                };
                problems.push(format!(
                    "{} and {} disagree on ids {from}..={to}: at position {at}, {} has {} and {} has {}",
                    a.name,
                    b.name,
                    a.name,
                    show(wa),
                    b.name,
                    show(wb)
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The union of journals that agree ([`identical_prefixes`]), in id order.
pub fn merged(journals: &[EventJournal]) -> Vec<(u64, Vec<u8>)> {
    let mut all = BTreeMap::new();
    for j in journals {
        for (id, bytes) in &j.records {
            all.entry(*id).or_insert_with(|| bytes.clone());
        }
    }
    all.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: u64, key: &str, kind: &str) -> Json {
        json!({"eventId": id, "key": key, "type": kind})
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_clean_history_has_a_clean_verdict() {
        let h = History::from_events(&[
            event(1, "a", "Added"),
            event(2, "a", "ProcessingStarted"),
            event(3, "a", "Finished"),
            event(4, "agent:a1", "Coupled"),
        ]);
        let v = h.verdict(&set(&["a", "b"]), &set(&["a"]), 1);
        assert!(v.is_clean(), "{v}");
        assert_eq!((v.attempted, v.acknowledged, v.finished), (2, 1, 1));
    }

    #[test]
    fn counts_lost_unexpected_and_duplicated_orders() {
        let h = History::from_events(&[
            event(1, "lost", "Added"),
            event(2, "stray", "Added"),
            event(3, "stray", "Finished"),
            event(4, "twice", "Added"),
            event(5, "twice", "ProcessingStarted"),
            event(6, "twice", "ProcessingStarted"),
            event(7, "twice", "Finished"),
            event(8, "ghost", "Moved"),
        ]);
        let v = h.verdict(&set(&["lost", "twice"]), &set(&["lost", "twice"]), 1);
        assert_eq!(v.lost, ["lost"]);
        assert_eq!(v.unexpected, ["ghost", "stray"]);
        assert_eq!(v.duplicated, ["twice"]);
        assert!(!v.is_clean());
    }

    #[test]
    fn a_crash_of_the_agent_explains_a_second_start() {
        let h = History::from_events(&[
            event(1, "a", "Added"),
            event(2, "a", "ProcessingStarted"),
            event(3, "a", "Restarted"),
            event(4, "a", "ProcessingStarted"),
            event(5, "a", "Finished"),
            event(6, "b", "Added"),
            event(7, "b", "ProcessingStarted"),
            event(8, "b", "ProcessingWithdrawn"),
            event(9, "b", "ProcessingStarted"),
            event(10, "b", "Finished"),
        ]);
        let v = h.verdict(&set(&["a", "b"]), &set(&["a", "b"]), 1);
        assert!(v.is_clean(), "{v}");
    }

    #[test]
    fn an_order_that_ends_twice_is_reported() {
        let h = History::from_events(&[
            event(1, "a", "Added"),
            event(2, "a", "Finished"),
            event(3, "a", "Finished"),
        ]);
        let v = h.verdict(&set(&["a"]), &set(&["a"]), 1);
        assert_eq!(v.ended_twice, ["a"]);
    }

    fn journal(name: &str, records: &[(u64, &str)]) -> EventJournal {
        EventJournal {
            name: name.to_owned(),
            records: records
                .iter()
                .map(|(id, text)| (*id, text.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn journals_that_agree_on_their_common_prefix_pass() {
        let a = journal("a", &[(1, "x"), (2, "y"), (65536, "z")]);
        let b = journal("b", &[(1, "x"), (2, "y")]);
        // Started later from a snapshot: compared from its first id.
        let c = journal("c", &[(65536, "z"), (65537, "w")]);
        let empty = journal("empty", &[]);
        identical_prefixes(&[a.clone(), b, c.clone(), empty]).unwrap();
        let all = merged(&[a, c]);
        assert_eq!(
            all.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [1, 2, 65536, 65537]
        );
    }

    #[test]
    fn journals_that_differ_are_named() {
        let a = journal("a", &[(1, "x"), (2, "y"), (3, "z")]);
        let other_bytes = journal("b", &[(1, "x"), (2, "Y")]);
        let e = identical_prefixes(&[a.clone(), other_bytes]).unwrap_err();
        assert!(
            e.contains("a and b disagree") && e.contains("event 2"),
            "{e}"
        );
        // A missing id inside the common range.
        let gap = journal("c", &[(1, "x"), (3, "z")]);
        let e = identical_prefixes(&[a.clone(), gap]).unwrap_err();
        assert!(e.contains("a and c disagree"), "{e}");
        let backwards = journal("d", &[(2, "y"), (1, "x")]);
        let e = identical_prefixes(&[a, backwards]).unwrap_err();
        assert!(e.contains("d: event id 1 follows 2"), "{e}");
    }
}
