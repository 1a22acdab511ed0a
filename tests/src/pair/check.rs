//! The end of a scenario: every acknowledged order ended, every node caught up and stopped,
//! their committed journals read from copies of their data directories and compared, and the
//! history checker's verdict over them.

use super::{POLL_MS, Pair, cluster_number};
use crate::history::{self, EventJournal, History, Verdict};
use crate::pending_orders;
use anyhow::{Context, Result, anyhow, bail};
use ordo_controller::config::Voter as VoterKind;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What [`Pair::finish`] found.
#[derive(Debug)]
pub struct Finished {
    pub verdict: Verdict,
    pub history: History,
    /// Per node, the ids of its `Restored` records: where it took the leader's snapshot.
    pub restored: BTreeMap<u64, Vec<u64>>,
}

/// A stopped node's committed event journal.
#[derive(Debug, Clone)]
pub struct VoterJournal {
    /// Its events, without `Restored` records.
    pub events: EventJournal,
    /// The ids of its `Restored` records: a node brought up to date by the leader's snapshot
    /// marks where in its own journal; the others have no such record, and the events are
    /// the same.
    pub restored: Vec<u64>,
}

/// Records read from one journal at most.
const JOURNAL_RECORDS_MAX: usize = 10_000_000;

impl Pair {
    /// A stopped node's committed event journal (`<data_dir>/journal`), read from a copy so
    /// that the node's files stay as they are; `None` when the node has none.
    pub async fn journal(&self, id: u64) -> Result<Option<VoterJournal>> {
        let v = self.voter(id);
        assert!(
            !v.is_started(),
            "{} must be stopped to read its journal",
            v.name()
        );
        let source = v.data_dir.join("journal");
        let name = v.name();
        let copy = self.dir.path().join(format!("journal-copy-{id}"));
        tokio::task::spawn_blocking(move || read_journal(&source, &copy, name)).await?
    }

    /// Ends a scenario (after the load stopped) and checks it: waits until every order the
    /// ledger has as acknowledged ended and every running node reached the leader's
    /// commit, stops every node, reads their journals, checks that they agree on their
    /// common prefix and hold every committed event, and runs the history checker over them
    /// (`jobs` jobs per order; `runs`: a file where each job run wrote a line starting with
    /// its order id, or none).
    pub async fn finish(
        &mut self,
        jobs: u32,
        runs: Option<&Path>,
        within: Duration,
    ) -> Result<Finished> {
        let ledger = self.orderer.ledger();
        let acknowledged: Vec<String> = ledger.acknowledged().into_iter().collect();
        self.wait_ended(&acknowledged, within).await?;
        let running: Vec<u64> = self
            .voters
            .iter()
            .filter(|v| v.is_started())
            .map(|v| v.id)
            .collect();
        for id in &running {
            self.wait_caught_up(*id).await?;
        }
        let leader = self.active().await?;
        let committed = cluster_number(&self.health(leader).await?, "committedEventId")
            .ok_or_else(|| anyhow!("the active node's /health has no cluster.committedEventId"))?;
        // The passive nodes first, so that the leader's last commits reach them.
        for id in running.iter().filter(|id| **id != leader) {
            self.stop(*id).await?;
        }
        self.stop(leader).await?;

        let mut journals = Vec::new();
        for v in &self.voters {
            match self.journal(v.id).await? {
                Some(j) => journals.push((v.id, v.kind, j)),
                None if v.kind == VoterKind::Controller => {
                    bail!("{} has no event journal", v.name())
                }
                None => {}
            }
        }
        let restored: BTreeMap<u64, Vec<u64>> = journals
            .iter()
            .map(|(id, _, j)| (*id, j.restored.clone()))
            .collect();
        let journals: Vec<(u64, VoterKind, EventJournal)> = journals
            .into_iter()
            .map(|(id, kind, j)| (id, kind, j.events))
            .collect();
        let only: Vec<EventJournal> = journals.iter().map(|(.., j)| j.clone()).collect();
        history::identical_prefixes(&only)
            .map_err(|e| anyhow!("the voters' committed journals disagree:\n{e}"))?;
        for (id, kind, j) in &journals {
            if *kind == VoterKind::Controller && j.last_id().unwrap_or(0) < committed {
                bail!(
                    "node {id}'s journal ends at event {:?}, before the committed event {committed} it had applied",
                    j.last_id()
                );
            }
        }
        let mut events = Vec::new();
        for (id, bytes) in history::merged(&only) {
            let stored = ordo_api::record::Record::decode(id, &bytes)?;
            let frame = ordo_api::frame::EventFrame::of(id, &stored);
            events.push(serde_json::to_value(&frame)?);
        }
        let history = History::from_events(&events);
        let mut verdict = history.verdict(&ledger.attempted(), &ledger.acknowledged(), jobs);
        if let Some(runs) = runs {
            let text = std::fs::read_to_string(runs).unwrap_or_default();
            let mut ran: BTreeMap<&str, u32> = BTreeMap::new();
            for line in text.lines() {
                let id = line.split_whitespace().next().unwrap_or_default();
                *ran.entry(id).or_default() += 1;
            }
            for (id, n) in ran {
                if n > jobs && !verdict.duplicated.iter().any(|d| d == id) {
                    verdict.duplicated.push(id.to_owned());
                }
            }
        }
        eprintln!(
            "checker: {verdict}; {} requests for {} orders; journals: {}; restored from a snapshot: {restored:?}",
            ledger.attempts(),
            ledger.orders.len(),
            journals
                .iter()
                .map(|(id, _, j)| format!(
                    "node {id} {} events {:?}..={:?}",
                    j.records.len(),
                    j.first_id(),
                    j.last_id()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Finished {
            verdict,
            history,
            restored,
        })
    }

    /// Waits until every order of `ids` ended, asking the active controller.
    pub async fn wait_ended(&mut self, ids: &[String], within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let active = self.active().await?;
            let url = format!("{}/api/v1/orders", self.voter(active).api_url);
            if let Ok(list) = self.clients.viewer.get_json::<Json>(&url).await {
                let all = list["orders"].as_array().cloned().unwrap_or_default();
                let (done, pending) = pending_orders(&all, ids, crate::ENDED);
                if done == ids.len() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!(
                        "{done} of {} acknowledged orders ended in {within:?}; e.g. {pending:?}\n{}\n{}",
                        ids.len(),
                        self.describe().await,
                        self.logs()
                    );
                }
            } else if Instant::now() > deadline {
                bail!(
                    "the active controller did not list its orders\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(4 * POLL_MS)).await;
        }
    }
}

/// Copies the journal at `source` (when there is one) to `copy` and reads every record.
pub fn read_journal(source: &Path, copy: &Path, name: String) -> Result<Option<VoterJournal>> {
    if !source.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(copy)?;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let file_name = entry.file_name();
        if file_name == ordo_journal::LOCK_FILE_NAME || !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::copy(entry.path(), copy.join(&file_name))
            .with_context(|| format!("copying {}", entry.path().display()))?;
    }
    let mut config = ordo_journal::Config::new(copy);
    config.fsync = false;
    let opened = ordo_journal::Journal::open(config)
        .with_context(|| format!("opening a copy of {}", source.display()))?;
    let mut records = Vec::new();
    let mut restored = Vec::new();
    for record in opened.journal.read_after(0)? {
        let record = record?;
        let stored = ordo_api::record::Record::decode(record.id, &record.data)?;
        if matches!(stored.body, ordo_api::record::Body::Restored { .. }) {
            restored.push(record.id);
            continue;
        }
        records.push((record.id, record.data));
        if records.len() > JOURNAL_RECORDS_MAX {
            bail!(
                "{} holds more than {JOURNAL_RECORDS_MAX} records",
                source.display()
            );
        }
    }
    Ok(Some(VoterJournal {
        events: EventJournal { name, records },
        restored,
    }))
}
