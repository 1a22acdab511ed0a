//! Work that waits until the journal is durable (or committed) up to a position: the answer
//! to a command, a job handed to its workers, a message to an agent, a snapshot.

use std::collections::BTreeMap;

/// Effects keyed by the journal position they wait for; they come out in position order,
/// and in the order they were queued within one position.
#[derive(Debug, Clone)]
pub struct Pending<E> {
    by_position: BTreeMap<u64, Vec<E>>,
    len: usize,
}

impl<E> Default for Pending<E> {
    fn default() -> Self {
        Pending {
            by_position: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<E> Pending<E> {
    /// Queues `effect` to run once position `at` is durable.
    pub fn push(&mut self, at: u64, effect: E) {
        self.by_position.entry(at).or_default().push(effect);
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes out every effect whose position is at most `durable`, in order.
    pub fn take_due(&mut self, durable: u64) -> Vec<E> {
        let later = match durable.checked_add(1) {
            Some(next) => self.by_position.split_off(&next),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.by_position, later);
        self.take(due)
    }

    /// Takes out every effect whose position is after `position` (their entries were lost).
    pub fn take_after(&mut self, position: u64) -> Vec<E> {
        let Some(next) = position.checked_add(1) else {
            return Vec::new();
        };
        let after = self.by_position.split_off(&next);
        self.take(after)
    }

    /// Takes out every effect.
    pub fn take_all(&mut self) -> Vec<E> {
        let all = std::mem::take(&mut self.by_position);
        self.take(all)
    }

    fn take(&mut self, effects: BTreeMap<u64, Vec<E>>) -> Vec<E> {
        let out: Vec<E> = effects.into_values().flatten().collect();
        self.len -= out.len();
        debug_assert_eq!(
            self.len,
            self.by_position.values().map(Vec::len).sum::<usize>()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_come_out_by_position() {
        let mut p = Pending::default();
        p.push(3, "c");
        p.push(1, "a");
        p.push(1, "b");
        p.push(7, "d");
        assert_eq!(p.take_due(0), Vec::<&str>::new());
        assert_eq!(p.take_due(3), vec!["a", "b", "c"]);
        assert_eq!(p.len(), 1);
        p.push(9, "e");
        assert_eq!(p.take_after(7), vec!["e"]);
        assert_eq!(p.take_all(), vec!["d"]);
        assert!(p.is_empty());
        p.push(u64::MAX, "x");
        assert_eq!(p.take_due(u64::MAX), vec!["x"]);
    }
}
