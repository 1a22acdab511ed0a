//! Shared helpers for Ordo's benchmark programs.

pub mod spawn_rate;
