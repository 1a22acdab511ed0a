//! What the property tests of the model and of the drivers share (feature `testkit`).
//!
//! - [`sim`]: a simulated controller and agents that run the order state machine the way the
//!   real executors must, with simulated processes and a clock that moves only when told;
//! - [`generate`]: random workflows and inputs for the model's replay test;
//! - [`driven`]: the narrower random cases that real drivers must carry out exactly as the
//!   simulation does, what the simulation reaches for them, and the comparison;
//! - [`render`]: an inventory written back as the YAML an operator deploys.
//!
//! All of it is as pure as the rest of the model: no IO, no clock, and randomness only from
//! the proptest runner that draws the cases.

pub mod driven;
pub mod generate;
pub mod render;
pub mod sim;
