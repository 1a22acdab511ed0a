//! The records the executor made that are not durable yet, oldest first.
//!
//! Every record the executor makes goes here with its id (ids are consecutive) and leaves
//! when the journal's durable id passes it. Normally each round's new records are handed to
//! the journal at once as one chained batch, so this holds only what is in flight. When an
//! append fails for lack of space, the journal keeps nothing after its durable id: the
//! records stay here, in order, are not handed on while the file system is full, and are
//! handed to the journal again — the same ids, the same order, chained after the durable
//! id — once there is space ([`Unwritten::unsend`], then [`Unwritten::next_batch`]).
//!
//! It also knows the newest durable event of the run, which a `Couple` answered while the
//! journal cannot write reports (only durable events are ever streamed).

use std::collections::VecDeque;

/// Records for `Journal::append_batch_after`: `(Some(id), data)`, ids consecutive.
pub type Batch = Vec<(Option<u64>, Vec<u8>)>;

/// What a record is, as far as the outbox cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Created`: a new run begins; the events before it are of another run.
    Created,
    /// `Event`: an agent event (its id is the agent event id).
    Event,
    Other,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    data: Vec<u8>,
    kind: Kind,
}

/// The records not durable yet.
#[derive(Debug)]
pub struct Unwritten {
    records: VecDeque<Pending>,
    /// Bytes of `data` of every held record.
    bytes: u64,
    /// `Created` records held.
    created: usize,
    /// The last id handed to the journal (never below `durable`).
    sent: u64,
    /// The journal's durable id, as last told.
    durable: u64,
    /// Id of the newest durable `Event` of the run (0: none).
    durable_event: u64,
}

impl Unwritten {
    /// Nothing held: the journal is durable up to `durable`, and `durable_event` is its
    /// newest event of the run.
    pub fn new(durable: u64, durable_event: u64) -> Unwritten {
        Unwritten {
            records: VecDeque::new(),
            bytes: 0,
            created: 0,
            sent: durable,
            durable,
            durable_event,
        }
    }

    /// Holds a new record; its id follows the last one's.
    pub fn push(&mut self, id: u64, data: Vec<u8>, kind: Kind) {
        let last = self.records.back().map_or(self.durable, |p| p.id);
        assert!(
            id == last + 1,
            "record id {id} does not follow the last unwritten id {last}"
        );
        self.bytes += data.len() as u64;
        if kind == Kind::Created {
            self.created += 1;
        }
        self.records.push_back(Pending { id, data, kind });
    }

    /// The journal is durable up to `up_to`: the records up to it leave.
    pub fn durable(&mut self, up_to: u64) {
        if up_to <= self.durable {
            return;
        }
        self.durable = up_to;
        self.sent = self.sent.max(up_to);
        while self.records.front().is_some_and(|p| p.id <= up_to) {
            let Some(p) = self.records.pop_front() else {
                break;
            };
            self.bytes -= p.data.len() as u64;
            match p.kind {
                Kind::Created => {
                    self.created -= 1;
                    self.durable_event = 0;
                }
                Kind::Event => self.durable_event = p.id,
                Kind::Other => {}
            }
        }
    }

    /// The next records not handed to the journal yet, as one batch of at most `bytes_max`
    /// bytes (at least one record), with the id it follows; they count as handed on.
    pub fn next_batch(&mut self, bytes_max: u64) -> Option<(u64, Batch)> {
        let start = self.records.partition_point(|p| p.id <= self.sent);
        let first = self.records.get(start)?;
        let after = first.id - 1;
        debug_assert_eq!(after, self.sent, "batches are chained");
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        for p in self.records.range(start..) {
            let size = p.data.len() as u64;
            if !batch.is_empty() && bytes + size > bytes_max {
                break;
            }
            bytes += size;
            batch.push((Some(p.id), p.data.clone()));
            self.sent = p.id;
        }
        Some((after, batch))
    }

    /// The journal refused what it was handed after the durable id: everything held goes
    /// to it again.
    pub fn unsend(&mut self) {
        self.sent = self.durable;
    }

    /// Bytes of the records held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The last id handed to the journal.
    #[cfg(test)]
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Id of the newest durable event of the run (0: none).
    pub fn durable_event(&self) -> u64 {
        self.durable_event
    }

    /// Whether a held record begins a new run (a reset not durable yet).
    pub fn holds_created(&self) -> bool {
        self.created > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(batch: &[(Option<u64>, Vec<u8>)]) -> Vec<u64> {
        batch.iter().filter_map(|(id, _)| *id).collect()
    }

    fn held(u: &mut Unwritten, range: std::ops::RangeInclusive<u64>, kind: Kind) {
        for id in range {
            u.push(id, vec![id as u8; 10], kind);
        }
    }

    #[test]
    fn records_leave_once_durable_and_events_are_tracked() {
        let mut u = Unwritten::new(10, 7);
        held(&mut u, 11..=12, Kind::Event);
        held(&mut u, 13..=13, Kind::Other);
        assert_eq!((u.len(), u.bytes()), (3, 30));
        u.durable(12);
        assert_eq!((u.len(), u.bytes(), u.durable_event()), (1, 10, 12));
        u.durable(11);
        assert_eq!(u.len(), 1, "the durable id never goes back");
        u.durable(13);
        assert_eq!((u.len(), u.bytes(), u.durable_event()), (0, 0, 12));
        u.push(14, vec![0], Kind::Created);
        assert!(u.holds_created());
        u.durable(14);
        assert!(!u.holds_created());
        assert_eq!(u.durable_event(), 0, "a new run has no event yet");
    }

    #[test]
    fn normal_batches_hand_on_each_record_once() {
        let mut u = Unwritten::new(0, 0);
        held(&mut u, 1..=3, Kind::Event);
        let (after, batch) = u.next_batch(u64::MAX).unwrap();
        assert_eq!((after, ids(&batch)), (0, vec![1, 2, 3]));
        assert!(u.next_batch(u64::MAX).is_none());
        held(&mut u, 4..=4, Kind::Event);
        let (after, batch) = u.next_batch(u64::MAX).unwrap();
        assert_eq!((after, ids(&batch)), (3, vec![4]));
        assert_eq!(batch[0].1, vec![4u8; 10]);
    }

    #[test]
    fn after_a_failure_the_held_records_go_again_in_order_and_in_bounded_batches() {
        let mut u = Unwritten::new(100, 90);
        held(&mut u, 101..=105, Kind::Event);
        let (_, first) = u.next_batch(u64::MAX).unwrap();
        held(&mut u, 106..=108, Kind::Event);
        let (_, second) = u.next_batch(u64::MAX).unwrap();
        assert_eq!(
            (ids(&first), ids(&second)),
            (vec![101, 102, 103, 104, 105], vec![106, 107, 108])
        );
        // The first batch became durable up to 102, then the file system was full.
        u.durable(102);
        u.unsend();
        held(&mut u, 109..=110, Kind::Event);
        assert_eq!(u.len(), 8);
        let mut again = Vec::new();
        let mut afters = Vec::new();
        while let Some((after, batch)) = u.next_batch(25) {
            assert!(batch.len() <= 2, "at most 25 bytes, or one record");
            afters.push(after);
            again.extend(ids(&batch));
        }
        assert_eq!(again, (103..=110).collect::<Vec<_>>());
        assert_eq!(afters, vec![102, 104, 106, 108]);
        assert_eq!(u.sent(), 110);
        // One record larger than the bound goes alone.
        u.push(111, vec![0; 100], Kind::Other);
        let (after, batch) = u.next_batch(25).unwrap();
        assert_eq!((after, ids(&batch)), (110, vec![111]));
    }
}
