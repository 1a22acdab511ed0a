//! Library parts of the `ordo` command that other crates (the tests) reuse.

#[cfg(feature = "servers")]
pub mod local;
pub mod token;
