//! raft-rs logs through `slog`; this drain forwards its records to `tracing` (target `raft`),
//! with the key-value pairs appended to the message.

use std::fmt::{self, Write};

use slog::{Drain, KV, Level, Never, OwnedKVList, Record, Serializer};

/// A `slog` drain that forwards to `tracing`.
pub(crate) struct TracingDrain;

struct Pairs(String);

impl Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), Never> {
        let mut pairs = Pairs(String::new());
        let _ = record.kv().serialize(record, &mut pairs);
        let _ = values.serialize(record, &mut pairs);
        let message = record.msg();
        let pairs = pairs.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{message}{pairs}"),
            Level::Warning => tracing::warn!(target: "raft", "{message}{pairs}"),
            Level::Info => tracing::info!(target: "raft", "{message}{pairs}"),
            Level::Debug => tracing::debug!(target: "raft", "{message}{pairs}"),
            Level::Trace => tracing::trace!(target: "raft", "{message}{pairs}"),
        }
        Ok(())
    }
}

/// The logger handed to raft-rs.
pub(crate) fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
