//! Test harness for Ordo: starting real processes, fault proxies and history checks.
