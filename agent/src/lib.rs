//! The Ordo agent: runs jobs and keeps every order event until the controller releases it.

pub mod runner;
