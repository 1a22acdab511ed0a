//! The controller's journal records.
//!
//! One journal record holds one event. Its journal id is the event id, derived from a
//! raft-shaped position: `event id = index << 16 | offset`, where `index` numbers the batch
//! (a raft log entry; term 1 while the controller runs alone) and `offset` is the event's place
//! in the batch (at most [`BATCH_EVENTS_MAX`] events). Both controllers of a pair give the same
//! event the same id, so a reader can resume on either.
//!
//! Payload: postcard of [`Record`]. Enums are append-only: add variants at the end, never
//! reorder or change one, so old journals keep loading.

use ordo_model::ids::AgentId;
use ordo_model::order::KeyedEvent;
use ordo_model::time::TimeMs;
use ordo_model::wire::AgentEventBody;
use serde::{Deserialize, Serialize};

/// Events in one batch at most (the offset has 16 bits).
pub const BATCH_EVENTS_MAX: usize = 1 << 16;

/// The event id of the `offset`-th event of batch `index`.
pub fn event_id(index: u64, offset: usize) -> u64 {
    debug_assert!(offset < BATCH_EVENTS_MAX);
    index << 16 | offset as u64
}

/// The batch index of an event id.
pub fn index_of(event_id: u64) -> u64 {
    event_id >> 16
}

/// A journal record, versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    V1(Stored),
}

/// One journaled event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The raft term of the batch.
    pub term: u64,
    /// When the controller made (or received) the event.
    pub ts: TimeMs,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// An event of the controller's own state machine.
    Event(KeyedEvent),
    /// An agent's event, journaled once per `(agent, run_id, agent_event_id)`.
    Agent {
        agent: AgentId,
        #[serde(with = "ordo_model::ids::run_id")]
        run_id: u128,
        agent_event_id: u64,
        body: AgentEventBody,
    },
    /// An agent answered with a run id other than the journaled one: the events of the old run
    /// that were not journaled are gone. An alert, never a silent drop.
    AgentRunChanged {
        agent: AgentId,
        #[serde(default, with = "ordo_model::ids::run_id::option")]
        old: Option<u128>,
        #[serde(with = "ordo_model::ids::run_id")]
        new: u128,
    },
    /// A controller of a pair that lagged too far behind was brought up to date with a
    /// snapshot of the replicated log (up to raft entry `index`): its state is that
    /// snapshot's, and the events before this one may be missing from its journal (a reader
    /// that followed it from further back reloads the state). Changes nothing in the state.
    Restored { index: u64 },
    /// An event of the daily plan: schedules and calendars deployed, fires planned, ordered
    /// or skipped ([`ordo_model::schedule::plan`]).
    Plan(ordo_model::schedule::PlanEvent),
    /// A join token issued or used, or a registered subagent removed
    /// ([`crate::join`]).
    Join(crate::join::JoinEvent),
}

/// Why a record cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("journal record {id} does not decode: {source}")]
pub struct DecodeError {
    pub id: u64,
    pub source: postcard::Error,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes every record type")
    }

    pub fn decode(id: u64, bytes: &[u8]) -> Result<Stored, DecodeError> {
        match postcard::from_bytes::<Record>(bytes) {
            Ok(Record::V1(s)) => Ok(s),
            Err(source) => Err(DecodeError { id, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_raft_shaped() {
        assert_eq!(event_id(3, 2), (3 << 16) | 2);
        assert_eq!(index_of(event_id(7, 65535)), 7);
    }

    #[test]
    fn records_round_trip() {
        let r = Record::V1(Stored {
            term: 1,
            ts: TimeMs(5),
            body: Body::AgentRunChanged {
                agent: AgentId::new("a").unwrap(),
                old: None,
                new: 9,
            },
        });
        let bytes = r.encode();
        assert_eq!(Record::V1(Record::decode(1, &bytes).unwrap()), r);
        assert!(Record::decode(1, &bytes[..3]).is_err());
    }
}
