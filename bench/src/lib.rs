//! Shared helpers for Ordo's benchmark programs.
