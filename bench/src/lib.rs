//! Shared helpers for Ordo's benchmark programs.

pub mod agent_cluster;
pub mod controller_client;
pub mod local_ordo;
pub mod local_pair;
pub mod pair_load;
pub mod proc_cpu;
pub mod program;
pub mod slurm;
pub mod spawn_rate;
pub mod stats;
pub mod workload;
