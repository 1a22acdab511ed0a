//! Ordo's append-only, crash-safe event journal.
