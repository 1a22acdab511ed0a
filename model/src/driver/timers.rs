//! Timers: at most one per key, ordered by instant; `now` is the caller's.

use crate::time::TimeMs;
use std::collections::{BTreeMap, BTreeSet};

/// At most one timer per key (an order, a board), ordered by instant.
#[derive(Debug, Clone)]
pub struct Timers<K: Ord + Clone> {
    due: BTreeSet<(TimeMs, K)>,
    at: BTreeMap<K, TimeMs>,
}

impl<K: Ord + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            due: BTreeSet::new(),
            at: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    /// Arms the timer of `key` at `at`, replacing its instant before.
    pub fn set(&mut self, key: K, at: TimeMs) {
        if self.at.get(&key) == Some(&at) {
            return;
        }
        self.clear_one(&key);
        self.due.insert((at, key.clone()));
        self.at.insert(key, at);
        debug_assert_eq!(self.due.len(), self.at.len());
    }

    pub fn clear_one(&mut self, key: &K) {
        if let Some(at) = self.at.remove(key) {
            let removed = self.due.remove(&(at, key.clone()));
            debug_assert!(removed, "a timer's instant is in both indexes");
        }
    }

    pub fn clear(&mut self) {
        self.due.clear();
        self.at.clear();
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The instant the timer of `key` is armed at.
    pub fn get(&self, key: &K) -> Option<TimeMs> {
        self.at.get(key).copied()
    }

    /// The next instant a timer is due.
    pub fn next(&self) -> Option<TimeMs> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Takes one timer due at `now`, earliest first.
    pub fn pop_due(&mut self, now: TimeMs) -> Option<K> {
        let (at, _) = self.due.first()?;
        if *at > now {
            return None;
        }
        let (_, key) = self.due.pop_first()?;
        self.at.remove(&key);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_timer_per_key_earliest_first() {
        let mut t = Timers::default();
        t.set("a", TimeMs(30));
        t.set("b", TimeMs(10));
        t.set("a", TimeMs(20));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(TimeMs(10)));
        assert_eq!(t.pop_due(TimeMs(5)), None);
        assert_eq!(t.pop_due(TimeMs(25)), Some("b"));
        assert_eq!(t.pop_due(TimeMs(25)), Some("a"));
        assert_eq!(t.pop_due(TimeMs(25)), None);
        t.set("c", TimeMs(1));
        t.clear_one(&"c");
        assert!(t.is_empty());
    }
}
