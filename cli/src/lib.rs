//! Library parts of the `ordo` command that other crates (the tests) reuse.

pub mod local;
