//! The machine's timers: at most one per order and one per board, ordered by instant
//! (the model's [`ordo_model::driver::Timers`], which the agent uses too).

use ordo_model::ids::{BoardName, OrderId};

/// What a timer wakes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    Order(OrderId),
    Board(BoardName),
}

pub type Timers = ordo_model::driver::Timers<Timer>;
