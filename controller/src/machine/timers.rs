//! The machine's timers: at most one per order and one per board, ordered by instant.

use ordo_model::ids::{BoardName, OrderId};
use ordo_model::time::TimeMs;
use std::collections::{BTreeMap, BTreeSet};

/// What a timer wakes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    Order(OrderId),
    Board(BoardName),
}

#[derive(Debug, Default)]
pub struct Timers {
    due: BTreeSet<(TimeMs, Timer)>,
    at: BTreeMap<Timer, TimeMs>,
}

impl Timers {
    /// Arms `timer` at `at`, replacing its instant before.
    pub fn set(&mut self, timer: Timer, at: TimeMs) {
        self.clear_one(&timer);
        self.due.insert((at, timer.clone()));
        self.at.insert(timer, at);
    }

    pub fn clear_one(&mut self, timer: &Timer) {
        if let Some(at) = self.at.remove(timer) {
            self.due.remove(&(at, timer.clone()));
        }
    }

    pub fn clear(&mut self) {
        self.due.clear();
        self.at.clear();
    }

    /// The next instant a timer is due.
    pub fn next(&self) -> Option<TimeMs> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Takes one timer due at `now`, earliest first.
    pub fn pop_due(&mut self, now: TimeMs) -> Option<Timer> {
        let (at, _) = self.due.first()?;
        if *at > now {
            return None;
        }
        let (_, timer) = self.due.pop_first()?;
        self.at.remove(&timer);
        Some(timer)
    }
}
