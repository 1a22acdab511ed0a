//! The controller's published API: what every reader of a controller (the cockpit, the `ordo`
//! command, tests, other programs) may rely on, apart from the controller's internals.
//!
//! - [`record`]: the journal records (`Stored`, `Body`), postcard on disk, raft-shaped ids;
//! - [`state`]: the pure fold of those records ([`state::State::apply`]), which the controller
//!   runs over its journal and a reader runs over the event stream to hold the same state;
//! - [`frame`]: the event frame of the stream and the state snapshot, versioned by
//!   [`FORMAT_VERSION`];
//! - [`json`]: the one JSON form of the record and state types (JSON-first: camelCase,
//!   `{"type": …}` enums, plain values, unset fields left out), while their postcard bytes
//!   stay as they are;
//! - [`view`]: the typed JSON views the APIs answer with (orders, agents, locks, boards,
//!   snapshots, event descriptions, state names);
//! - [`plan`]: the daily plan's view (schedules, planned instants and what became of them);
//! - [`queue`]: the queues of orders (waiting for a process, running, finished, failed);
//! - [`why`]: what an order waits for, in words;
//! - [`auth`]: roles and token hashing;
//! - [`join`]: one-time join tokens and the subagents that registered with them;
//! - [`limits`]: the sizes readers of the stream size their limits by.
//!
//! It depends on the model and serde only: no runtime, no web framework, no journal.

pub mod auth;
pub mod frame;
pub mod join;
pub mod json;
pub mod limits;
pub mod plan;
pub mod queue;
pub mod record;
pub mod state;
pub mod view;
pub mod why;

/// The format version of event frames and state snapshots this build writes and reads.
/// Raise it with every change a reader of the previous version would misread.
pub const FORMAT_VERSION: u32 = 1;
