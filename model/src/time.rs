//! Instants and durations as the model sees them: plain integers passed in by the caller.
//!
//! Durations in YAML are written as a sequence of `<number><unit>` with units `ms`, `s`, `m`,
//! `h` and `d`, e.g. `90s`, `10m`, `1h30m`, `500ms`; a bare number means seconds.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct TimeMs(pub i64);

impl TimeMs {
    pub fn plus(self, d: DurationMs) -> TimeMs {
        TimeMs(
            self.0
                .saturating_add(i64::try_from(d.0).unwrap_or(i64::MAX)),
        )
    }
}

/// A duration in milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct DurationMs(pub u64);

/// Longest duration accepted anywhere: 366 days.
pub const DURATION_MS_MAX: u64 = 366 * 24 * 3600 * 1000;

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write e.g. 90s, 10m or 1h30m")]
    Empty,
    #[error("unexpected {0:?} in a duration; write e.g. 90s, 10m or 1h30m")]
    BadChar(char),
    #[error("unknown unit {0:?}; use ms, s, m, h or d")]
    BadUnit(String),
    #[error("duration is longer than 366 days")]
    TooLong,
}

impl DurationMs {
    pub fn from_secs(s: u64) -> DurationMs {
        DurationMs(s.saturating_mul(1000))
    }

    /// Parses `90s`, `10m`, `1h30m`, `500ms`, `2d`, or a bare number of seconds.
    pub fn parse(s: &str) -> Result<DurationMs, DurationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = s.parse().map_err(|_| DurationError::TooLong)?;
            return Self::checked(secs.checked_mul(1000));
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(DurationError::BadChar(rest.chars().next().unwrap_or(' ')));
            }
            let n: u64 = rest[..digits].parse().map_err(|_| DurationError::TooLong)?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let factor = match unit {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => return Err(DurationError::BadUnit(String::new())),
                other => return Err(DurationError::BadUnit(other.to_owned())),
            };
            total = n
                .checked_mul(factor)
                .and_then(|x| total.checked_add(x))
                .ok_or(DurationError::TooLong)?;
        }
        Self::checked(Some(total))
    }

    fn checked(ms: Option<u64>) -> Result<DurationMs, DurationError> {
        match ms {
            Some(ms) if ms <= DURATION_MS_MAX => Ok(DurationMs(ms)),
            _ => Err(DurationError::TooLong),
        }
    }
}

impl fmt::Display for DurationMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        let (d, h, m, s, r) = (
            ms / 86_400_000,
            ms / 3_600_000 % 24,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000,
        );
        for (n, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s"), (r, "ms")] {
            if n > 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        for (s, ms) in [
            ("90s", 90_000),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("2d", 172_800_000),
            ("15", 15_000),
        ] {
            assert_eq!(DurationMs::parse(s), Ok(DurationMs(ms)), "{s}");
        }
        assert_eq!(DurationMs(5_400_000).to_string(), "1h30m");
        assert_eq!(DurationMs::parse(""), Err(DurationError::Empty));
        assert_eq!(
            DurationMs::parse("3w"),
            Err(DurationError::BadUnit("w".into()))
        );
        assert_eq!(DurationMs::parse("400d"), Err(DurationError::TooLong));
        assert_eq!(DurationMs::parse("h"), Err(DurationError::BadChar('h')));
        assert_eq!(
            DurationMs::parse("99999999999999999999s"),
            Err(DurationError::TooLong)
        );
    }
}
