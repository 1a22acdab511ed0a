//! What every benchmark program does alike: settings from the environment, JSON lines on
//! stdout, progress on stderr.

use anyhow::{Context, anyhow};
use std::io::Write;

/// The environment variable `name` as a number, or `default` when it is not set.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<T>()
            .map_err(|_| anyhow!("{name} must be a whole number, got {text:?}")),
        Err(_) => Ok(default),
    }
}

/// The environment variable `name`, or `default` when it is not set.
pub fn env_text(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The environment variable `name` as a switch (`0` is off, another number on).
pub fn env_flag(name: &str, default: bool) -> anyhow::Result<bool> {
    Ok(env_number(name, u8::from(default))? != 0)
}

/// Writes one line (a JSON object) to stdout.
pub fn print_line(line: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_give_the_default() {
        assert_eq!(
            env_number("ORDO_BENCH_SURELY_UNSET", 7usize).unwrap(),
            7usize
        );
        assert_eq!(env_text("ORDO_BENCH_SURELY_UNSET", "x"), "x");
        assert!(env_flag("ORDO_BENCH_SURELY_UNSET", true).unwrap());
    }
}
