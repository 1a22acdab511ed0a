//! Ordo's pure model: ids, the inventory (workflows, jobs, agents, locks, boards, schedules,
//! calendars) read from YAML, expressions, the expansion of schedules into fires, and the order
//! state machine shared by controllers, agents and the simulation.
//!
//! This crate does no IO, reads no clock and draws no random numbers: time and randomness are
//! passed in by the caller.
//!
//! With the `testkit` feature, [`testkit`] holds what tests of the model and of the drivers
//! share: random workflows and inputs, and a simulated controller and agents.

pub mod deploy;
pub mod driver;
pub mod env;
pub mod expr;
pub mod ids;
pub mod inventory;
pub mod notice_expr;
pub mod order;
pub mod position;
pub mod priority;
pub mod schedule;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod value;
pub mod wire;
pub mod yaml;
