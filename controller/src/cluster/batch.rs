//! The data of one raft entry of the controller: a batch of events.
//!
//! Format: postcard of [`Batch`], a versioned enum (append-only: add variants at the end).
//! `Batch::V1(events)` holds the events of the entry in order; event `k` of the entry at raft
//! index `i` has the event id `i << 16 | k` (`ordo_api::record::event_id`), so the ids are
//! not stored. A batch is never empty (raft's empty entry is a new leader's).

use crate::machine::{Entry, Position};
use crate::record::{BATCH_EVENTS_MAX, Stored, event_id};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Batch<E> {
    V1(Vec<E>),
}

/// The entry data of `events` (ids and all from one entry).
pub fn encode<'a>(events: impl Iterator<Item = &'a Stored>) -> Vec<u8> {
    let events: Vec<&Stored> = events.collect();
    assert!(
        !events.is_empty() && events.len() <= BATCH_EVENTS_MAX,
        "a batch holds 1 to {BATCH_EVENTS_MAX} events, not {}",
        events.len()
    );
    postcard::to_allocvec(&Batch::V1(events)).expect("events always encode")
}

/// The entry at `position` from its data.
pub fn decode(position: Position, data: &[u8]) -> Result<Entry, String> {
    let Batch::V1(events): Batch<Stored> = postcard::from_bytes(data).map_err(|e| {
        format!(
            "the committed entry at index {} (term {}) does not decode: {e}",
            position.index, position.term
        )
    })?;
    if events.is_empty() || events.len() > BATCH_EVENTS_MAX {
        return Err(format!(
            "the committed entry at index {} holds {} events",
            position.index,
            events.len()
        ));
    }
    Ok(Entry {
        position,
        events: events
            .into_iter()
            .enumerate()
            .map(|(k, s)| (event_id(position.index, k), s))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Body;
    use ordo_model::ids::AgentId;
    use ordo_model::time::TimeMs;

    #[test]
    fn a_batch_reads_back_with_its_ids() {
        let stored = |n: u128| Stored {
            term: 3,
            ts: TimeMs(7),
            body: Body::AgentRunChanged {
                agent: AgentId::new("a").unwrap(),
                old: None,
                new: n,
            },
        };
        let events = [stored(1), stored(2)];
        let data = encode(events.iter());
        let position = Position { term: 3, index: 9 };
        let entry = decode(position, &data).unwrap();
        assert_eq!(entry.position, position);
        assert_eq!(
            entry.events,
            vec![(event_id(9, 0), stored(1)), (event_id(9, 1), stored(2))]
        );
        assert!(decode(position, &data[..data.len() - 1]).is_err());
        assert!(
            decode(position, &[0, 0]).is_err(),
            "an empty batch is refused"
        );
    }
}
