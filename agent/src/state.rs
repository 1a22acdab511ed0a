//! The agent's state: the fold of its journal, and its snapshot format.
//!
//! [`AgentState::apply`] is the only way the state changes; recovery (snapshot, then replay
//! of the records after it) and the live executor call it alike, so a restarted agent has the
//! state the live one had.
//!
//! # Snapshot format
//!
//! The bytes of a journal snapshot are the postcard encoding of [`SnapshotFile`], an
//! append-only enum whose variant is the snapshot version (`V1` holds an [`AgentState`]).
//!
//! # Outbox bytes
//!
//! The outbox holds the `Event` records not yet released. Their byte count is exact while
//! events are added; a release subtracts what it covers, counted at marks set every
//! [`OUTBOX_MARK_BYTES`] of events, so after a release that ends between two marks the count
//! is too high by less than one mark (never too low); a release of everything makes it 0.

use crate::record::Record;
use ordo_model::ids::{AgentId, OrderId, WorkflowName};
use ordo_model::inventory::JobSettingsMap;
use ordo_model::order::{
    ApplyError, Extras, KeyedEvent, OrderEvent, OrderState, Side, World, extras_or_empty,
};
use ordo_model::time::TimeMs;
use ordo_model::wire::AgentEventBody;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Bytes of events between two outbox marks.
pub const OUTBOX_MARK_BYTES: u64 = 64 * 1024;

/// A spawned job's process, as journaled by `Record::Process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub attempt: u32,
    pub pgid: u32,
    pub start_time_ticks: u64,
}

/// The unreleased events: their bytes, and marks to count what a release covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    /// Bytes of unreleased events (see the module doc for its precision).
    pub bytes: u64,
    /// Bytes of every event of this run.
    pub total: u64,
    /// Bytes of the events counted as released.
    pub released_total: u64,
    /// Id of the newest event (0: none yet).
    pub last_event_id: u64,
    /// `(event id, total after it)` every [`OUTBOX_MARK_BYTES`], oldest first.
    marks: VecDeque<(u64, u64)>,
}

impl Outbox {
    fn add(&mut self, id: u64, bytes: u64) {
        self.total += bytes;
        self.last_event_id = id;
        let due = self
            .marks
            .back()
            .is_none_or(|(_, total)| self.total - total >= OUTBOX_MARK_BYTES);
        if due {
            self.marks.push_back((id, self.total));
        }
        self.bytes = self.total - self.released_total;
    }

    fn release(&mut self, until: u64) {
        let covered = if until >= self.last_event_id {
            self.marks.clear();
            self.total
        } else {
            let mut covered = self.released_total;
            while let Some((id, total)) = self.marks.front().copied() {
                if id > until {
                    break;
                }
                covered = total;
                self.marks.pop_front();
            }
            covered
        };
        self.released_total = self.released_total.max(covered);
        self.bytes = self.total - self.released_total;
    }
}

/// Why a record does not fit the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("record {id} ({record}): {source}")]
    Apply {
        id: u64,
        record: &'static str,
        source: ApplyError,
    },
    #[error("record {id} ({record}) comes before the record that creates the run")]
    NoRun { id: u64, record: &'static str },
}

/// Everything the agent knows, folded from its journal.
///
/// Its serde writes the fields in this order, then the world's
/// [`extras`](ordo_model::order::Extras) last and only when they are not empty (the world's
/// own serde leaves them out), so a snapshot written before they existed still reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "StoredState")]
pub struct AgentState {
    pub agent_id: AgentId,
    pub run_id: u128,
    /// Id of the `Created` record of this run.
    pub run_start: u64,
    /// The controller cluster the agent is dedicated to.
    pub cluster_id: Option<String>,
    /// The highest term seen.
    pub term: u64,
    /// Events with ids up to this one are released.
    pub released: u64,
    /// The orders attached to this agent and their workflows.
    pub world: World,
    /// Processes of orders that were processing when their record was written.
    pub processes: BTreeMap<OrderId, ProcessEntry>,
    pub outbox: Outbox,
    /// Id of the last record applied.
    pub last_id: u64,
    /// As the director of a cluster: no subagent holds a job beyond this instant
    /// (`Record::Leased`).
    pub lease_horizon: Option<TimeMs>,
}

/// The serde form of [`AgentState`]: its fields, then the world's extras.
#[derive(Deserialize)]
#[serde(rename = "AgentState")]
struct StoredState {
    agent_id: AgentId,
    run_id: u128,
    run_start: u64,
    cluster_id: Option<String>,
    term: u64,
    released: u64,
    world: World,
    processes: BTreeMap<OrderId, ProcessEntry>,
    outbox: Outbox,
    last_id: u64,
    #[serde(default, deserialize_with = "extras_or_empty")]
    extras: Extras,
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    lease_horizon: Option<TimeMs>,
    /// The world's `extras.jobs`. Added after the lease horizon: a snapshot written before it
    /// ends before it.
    #[serde(default, deserialize_with = "ordo_model::order::trailing_or_default")]
    jobs: BTreeMap<WorkflowName, JobSettingsMap>,
}

impl From<StoredState> for AgentState {
    fn from(s: StoredState) -> AgentState {
        let mut world = s.world;
        world.extras = s.extras;
        world.extras.jobs = s.jobs;
        AgentState {
            agent_id: s.agent_id,
            run_id: s.run_id,
            run_start: s.run_start,
            cluster_id: s.cluster_id,
            term: s.term,
            released: s.released,
            world,
            processes: s.processes,
            outbox: s.outbox,
            last_id: s.last_id,
            lease_horizon: s.lease_horizon,
        }
    }
}

impl Serialize for AgentState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let extras = &self.world.extras;
        // Trailing fields go only when set; each needs the ones before it.
        let horizon = self.lease_horizon;
        let jobs = !extras.jobs.is_empty();
        let with_horizon = jobs || horizon.is_some();
        let with_extras = with_horizon || !extras.is_empty();
        let fields = 10 + usize::from(with_extras) + usize::from(with_horizon) + usize::from(jobs);
        let mut st = s.serialize_struct("AgentState", fields)?;
        st.serialize_field("agent_id", &self.agent_id)?;
        st.serialize_field("run_id", &self.run_id)?;
        st.serialize_field("run_start", &self.run_start)?;
        st.serialize_field("cluster_id", &self.cluster_id)?;
        st.serialize_field("term", &self.term)?;
        st.serialize_field("released", &self.released)?;
        st.serialize_field("world", &self.world)?;
        st.serialize_field("processes", &self.processes)?;
        st.serialize_field("outbox", &self.outbox)?;
        st.serialize_field("last_id", &self.last_id)?;
        if with_extras {
            st.serialize_field("extras", extras)?;
        }
        if with_horizon {
            st.serialize_field("lease_horizon", &horizon)?;
        }
        if jobs {
            st.serialize_field("jobs", &extras.jobs)?;
        }
        st.end()
    }
}

/// What a snapshot file holds; the variant is the snapshot version (append-only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SnapshotFile {
    V1(AgentState),
}

impl AgentState {
    /// The state right after a `Created` record with id `id`.
    pub fn new(agent_id: AgentId, run_id: u128, id: u64) -> AgentState {
        AgentState {
            world: World::new(Side::Agent(agent_id.clone())),
            agent_id,
            run_id,
            run_start: id,
            cluster_id: None,
            term: 0,
            released: id,
            processes: BTreeMap::new(),
            outbox: Outbox::default(),
            last_id: id,
            lease_horizon: None,
        }
    }

    /// The state of a journal that starts with `record` (which must be `Created`).
    pub fn from_first(id: u64, record: &Record) -> Result<AgentState, StateError> {
        match record {
            Record::Created {
                agent_id, run_id, ..
            } => Ok(AgentState::new(agent_id.clone(), *run_id, id)),
            other => Err(StateError::NoRun {
                id,
                record: other.name(),
            }),
        }
    }

    /// Applies the record with id `id` whose encoding is `bytes` long. On an error the
    /// state may have changed only in its world's untouched parts (the world itself is
    /// unchanged by a failing `apply`).
    pub fn apply(&mut self, id: u64, record: &Record, bytes: usize) -> Result<(), StateError> {
        match record {
            Record::Created {
                agent_id, run_id, ..
            } => {
                *self = AgentState::new(agent_id.clone(), *run_id, id);
                return Ok(());
            }
            Record::Dedicated { cluster_id } => self.cluster_id = Some(cluster_id.clone()),
            Record::Term { term } => self.term = self.term.max(*term),
            Record::Command { .. } => {}
            Record::Event { body, .. } => {
                if let AgentEventBody::Order(event) = body {
                    self.apply_order_event(event)
                        .map_err(|source| StateError::Apply {
                            id,
                            record: record.name(),
                            source,
                        })?;
                }
                self.outbox.add(id, bytes as u64);
            }
            Record::Process {
                order_id,
                attempt,
                pgid,
                start_time_ticks,
            } => {
                self.processes.insert(
                    order_id.clone(),
                    ProcessEntry {
                        attempt: *attempt,
                        pgid: *pgid,
                        start_time_ticks: *start_time_ticks,
                    },
                );
            }
            Record::Leased { taken_until } => {
                self.lease_horizon = Some(
                    self.lease_horizon
                        .map_or(*taken_until, |h| h.max(*taken_until)),
                );
            }
            Record::SubagentJoined { .. }
            | Record::SubagentLeft { .. }
            | Record::AgentObject { .. } => {}
            Record::Released { until } => {
                let until = (*until).min(self.outbox.last_event_id.max(self.released));
                self.released = self.released.max(until);
                self.outbox.release(self.released);
            }
        }
        self.last_id = id;
        Ok(())
    }

    fn apply_order_event(&mut self, event: &KeyedEvent) -> Result<(), ApplyError> {
        self.world.apply(event)?;
        if let KeyedEvent::Order { id, event } = event {
            let processing = matches!(
                self.world.order(id).map(|o| &o.state),
                Some(OrderState::Processing { .. })
            );
            if !processing || matches!(event, OrderEvent::Detached) {
                self.processes.remove(id);
            }
        }
        Ok(())
    }

    /// The snapshot bytes of this state.
    pub fn to_snapshot(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(&SnapshotFileRef::V1(self))
    }

    /// Reads snapshot bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<AgentState, String> {
        match postcard::from_bytes::<SnapshotFile>(bytes) {
            Ok(SnapshotFile::V1(state)) => Ok(state),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Serialises like [`SnapshotFile`] without cloning the state.
#[derive(Serialize)]
enum SnapshotFileRef<'a> {
    V1(&'a AgentState),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentId {
        AgentId::new("a1").unwrap()
    }

    /// A director's lease horizon survives a snapshot; a state without one has the bytes it
    /// had before horizons existed, and `Leased` records only move it on.
    #[test]
    fn snapshots_keep_the_lease_horizon() {
        let mut state = AgentState::new(agent(), 7, 1);
        let plain = state.to_snapshot().unwrap();
        assert_eq!(
            AgentState::from_snapshot(&plain).unwrap().lease_horizon,
            None
        );
        let leased = |t| Record::Leased {
            taken_until: TimeMs(t),
        };
        state.apply(2, &leased(500), 8).unwrap();
        state.apply(3, &leased(400), 8).unwrap();
        assert_eq!(state.lease_horizon, Some(TimeMs(500)));
        let bytes = state.to_snapshot().unwrap();
        assert!(bytes.len() > plain.len());
        assert_eq!(AgentState::from_snapshot(&bytes).unwrap(), state);
    }

    /// The world's extras (order options) come last and only when there are any: a snapshot
    /// without them has the bytes it had before they existed, and one with them keeps them.
    #[test]
    fn snapshots_keep_order_options_after_everything_else() {
        let mut state = AgentState::new(agent(), 7, 1);
        let plain = state.to_snapshot().unwrap();
        let back = AgentState::from_snapshot(&plain).unwrap();
        assert!(back.world.extras.is_empty());
        assert_eq!(back, state);
        state.world.extras.orders.insert(
            OrderId::new("o1").unwrap(),
            ordo_model::order::OrderOptions {
                priority: 9,
                delete_when_terminated: None,
            },
        );
        let with = state.to_snapshot().unwrap();
        assert!(with.len() > plain.len() && with.starts_with(&plain));
        let back = AgentState::from_snapshot(&with).unwrap();
        assert_eq!(back.world.priority(&OrderId::new("o1").unwrap()), 9);
        assert_eq!(back, state);
    }

    /// Job settings come after the lease horizon (written as none when there is none) and
    /// survive a snapshot; a snapshot without them has the bytes it had before they existed.
    #[test]
    fn snapshots_keep_job_settings_last() {
        use ordo_model::ids::JobName;
        use ordo_model::inventory::JobSettings;
        let mut state = AgentState::new(agent(), 7, 1);
        let plain = state.to_snapshot().unwrap();
        state.world.extras.jobs.insert(
            WorkflowName::new("w").unwrap(),
            [(
                JobName::new("j").unwrap(),
                JobSettings {
                    restart_budget: Some(1),
                    subagent_selection: None,
                },
            )]
            .into(),
        );
        let with = state.to_snapshot().unwrap();
        assert!(with.starts_with(&plain));
        assert_eq!(AgentState::from_snapshot(&with).unwrap(), state);
        state.lease_horizon = Some(TimeMs(5));
        let both = state.to_snapshot().unwrap();
        assert_eq!(AgentState::from_snapshot(&both).unwrap(), state);
    }

    #[test]
    fn outbox_counts_and_releases() {
        let mut o = Outbox::default();
        for id in 1..=100 {
            o.add(id, 10_000);
        }
        assert_eq!(o.bytes, 1_000_000);
        o.release(50);
        // Marks every 64 KiB (7 events): the count may stay high by less than one mark.
        assert!(o.bytes >= 500_000 && o.bytes < 500_000 + OUTBOX_MARK_BYTES + 10_000);
        o.release(40);
        assert!(o.bytes >= 500_000);
        o.release(100);
        assert_eq!(o.bytes, 0);
        o.add(101, 5);
        assert_eq!(o.bytes, 5);
    }

    #[test]
    fn fold_tracks_run_cluster_term_and_release() {
        let created = Record::Created {
            format: 1,
            agent_id: agent(),
            run_id: 9,
        };
        let mut s = AgentState::from_first(1, &created).unwrap();
        s.apply(
            2,
            &Record::Dedicated {
                cluster_id: "main".into(),
            },
            10,
        )
        .unwrap();
        s.apply(3, &Record::Term { term: 4 }, 3).unwrap();
        s.apply(4, &Record::Term { term: 2 }, 3).unwrap();
        assert_eq!(s.term, 4);
        assert_eq!(s.cluster_id.as_deref(), Some("main"));
        let output = Record::Event {
            ts: ordo_model::time::TimeMs(1),
            body: AgentEventBody::OutputTruncated {
                order_id: OrderId::new("o").unwrap(),
                cap_bytes: 1,
            },
        };
        s.apply(5, &output, 20).unwrap();
        s.apply(6, &output, 20).unwrap();
        assert_eq!(s.outbox.bytes, 40);
        s.apply(7, &Record::Released { until: 99 }, 5).unwrap();
        assert_eq!(s.released, 6);
        assert_eq!(s.outbox.bytes, 0);
        let bytes = s.to_snapshot().unwrap();
        assert_eq!(AgentState::from_snapshot(&bytes).unwrap(), s);
        s.apply(8, &created, 10).unwrap();
        assert_eq!(s.cluster_id, None);
        assert_eq!(s.run_start, 8);
        assert!(AgentState::from_first(1, &Record::Term { term: 1 }).is_err());
    }
}
