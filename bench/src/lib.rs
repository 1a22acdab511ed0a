//! Shared helpers for Ordo's benchmark programs.

pub mod local_ordo;
pub mod proc_cpu;
pub mod slurm;
pub mod spawn_rate;
pub mod stats;
