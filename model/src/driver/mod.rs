//! The machinery both drivers share, the controller's machine and the agent's executor:
//! timers armed from the model's `WakeAt` actions and fired at an instant the caller passes
//! in ([`Timers`]), and work that waits until the journal is durable up to a position
//! ([`Pending`]). Settling (the fixpoint of `step`) is [`crate::order::Settler`], and which
//! ready order starts its job next is [`crate::order::JobQueue`]: they are rules, so they
//! live with the order state machine.
//!
//! Nothing here reads a clock or does IO: a driver passes `now` and the durable position.

mod pending;
mod timers;

pub use pending::Pending;
pub use timers::Timers;
