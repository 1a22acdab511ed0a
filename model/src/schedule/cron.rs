//! Cron expressions: parsing and matching a local date and wall time.
//!
//! # Syntax
//!
//! Five fields, `minute hour day-of-month month day-of-week`, or six with seconds first,
//! `second minute hour day-of-month month day-of-week`, separated by spaces. A field is a
//! comma-separated list of items; an item is `*`, a value `n`, a range `a-b`, or either of the
//! last two or `*` followed by a step `/s` (`*/15`, `8-18/2`, `5/10` = from 5 to the end every
//! 10). Ranges:
//!
//! | field | values | names |
//! |---|---|---|
//! | second | 0–59 | |
//! | minute | 0–59 | |
//! | hour | 0–23 | |
//! | day of month | 1–31 | |
//! | month | 1–12 | `JAN`–`DEC` |
//! | day of week | 0–7 (0 and 7 are Sunday) | `SUN`–`SAT` |
//!
//! Names are case-insensitive. `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
//! (`@midnight`) and `@hourly` stand for `0 0 1 1 *`, `0 0 1 * *`, `0 0 * * 0`, `0 0 * * *` and
//! `0 * * * *`. `L`, `W`, `#` and `?` are not cron here: a calendar says "the last day of the
//! month" (`monthDays: [-1]`).
//!
//! # Meaning
//!
//! Day of month and day of week combine as in Vixie cron: when either field starts with `*`,
//! a day must match both (so `*` leaves the other field alone); otherwise a day matching either
//! one matches (`0 0 1,15 * MON` is the 1st, the 15th and every Monday). A day must always
//! match the month.
//!
//! A cron whose minute or hour field starts with `*` is an **interval** (it fires at every real
//! instant whose wall clock matches); any other is **fixed** (see [`super`] for what
//! that means around daylight saving time changes).

use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest cron expression, in bytes.
pub const CRON_BYTES_MAX: usize = 256;

/// A parsed cron expression; serialised as its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cron {
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    days_star: bool,
    weekdays_star: bool,
    interval: bool,
}

/// Why a cron expression does not parse: a message and the byte offset in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset})")]
pub struct CronError {
    pub offset: usize,
    pub message: String,
}

fn error(offset: usize, message: impl Into<String>) -> CronError {
    CronError {
        offset,
        message: message.into(),
    }
}

#[derive(Clone, Copy)]
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: FieldSpec = FieldSpec {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const WEEKDAY: FieldSpec = FieldSpec {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// The days in each month of a leap year: the most a month can have.
const MONTH_DAYS_MAX: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl Cron {
    /// Parses an expression of 5 fields, or 6 with seconds first, or a `@` macro.
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        if text.len() > CRON_BYTES_MAX {
            return Err(error(
                0,
                format!(
                    "the expression is {} bytes long; at most {CRON_BYTES_MAX} are allowed",
                    text.len()
                ),
            ));
        }
        let lead = text.len() - text.trim_start().len();
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => Some("0 0 1 1 *"),
            "@monthly" => Some("0 0 1 * *"),
            "@weekly" => Some("0 0 * * 0"),
            "@daily" | "@midnight" => Some("0 0 * * *"),
            "@hourly" => Some("0 * * * *"),
            _ if trimmed.starts_with('@') => {
                return Err(error(
                    lead,
                    format!(
                        "unknown macro {trimmed:?}; use @yearly, @monthly, @weekly, @daily or @hourly"
                    ),
                ));
            }
            _ => None,
        };
        let (source, base) = match expanded {
            Some(e) => (e, None),
            None => (text, Some(0)),
        };
        // Offsets point into `text`; a macro's errors cannot happen.
        let fields: Vec<(usize, &str)> = split_fields(source)
            .into_iter()
            .map(|(o, f)| (base.map_or(lead, |b| b + o), f))
            .collect();
        let (sec, rest): (Option<Piece>, &[Piece]) = match fields.len() {
            5 => (None, &fields[..]),
            6 => (Some(fields[0]), &fields[1..]),
            0 => return Err(error(0, "the expression is empty")),
            n => {
                let at = fields.get(6).map_or(text.len(), |f| f.0);
                return Err(error(
                    at,
                    format!(
                        "{n} fields; write 5 (minute hour day-of-month month day-of-week) or 6 with seconds first"
                    ),
                ));
            }
        };
        let seconds = match sec {
            Some((o, f)) => field(f, o, SECOND)?,
            None => 1,
        };
        let minutes = field(rest[0].1, rest[0].0, MINUTE)?;
        let hours = field(rest[1].1, rest[1].0, HOUR)?;
        let days = field(rest[2].1, rest[2].0, DAY)?;
        let months = field(rest[3].1, rest[3].0, MONTH)?;
        let mut weekdays = field(rest[4].1, rest[4].0, WEEKDAY)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            text: trimmed.to_owned(),
            seconds,
            minutes,
            hours: u32::try_from(hours).unwrap_or(u32::MAX),
            days: u32::try_from(days).unwrap_or(u32::MAX),
            months: u16::try_from(months).unwrap_or(u16::MAX),
            weekdays: u8::try_from(weekdays).unwrap_or(u8::MAX),
            days_star: rest[2].1.starts_with('*'),
            weekdays_star: rest[4].1.starts_with('*'),
            interval: rest[0].1.starts_with('*') || rest[1].1.starts_with('*'),
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the minute or hour field starts with `*`: the cron fires at every real instant
    /// that matches, none in a skipped hour and twice in a repeated one.
    pub fn is_interval(&self) -> bool {
        self.interval
    }

    /// Whether the cron fires on this local date (month, and day of month / day of week
    /// combined as in Vixie cron).
    pub fn matches_date(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << weekday_bit(date.weekday())) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The hours, minutes and seconds it fires at on a matching date, in order.
    pub fn times(&self) -> impl Iterator<Item = (i8, i8, i8)> + '_ {
        bits(u64::from(self.hours)).flat_map(move |h| {
            bits(self.minutes)
                .flat_map(move |m| bits(self.seconds).map(move |s| (h as i8, m as i8, s as i8)))
        })
    }

    /// How many times of day it fires at on a matching date.
    pub fn times_per_day(&self) -> u32 {
        self.hours.count_ones() * self.minutes.count_ones() * self.seconds.count_ones()
    }

    /// Whether some date can ever match, whatever the year: false for `0 0 30 2 *` (the 30th
    /// of February) and the like.
    pub fn can_fire(&self) -> bool {
        if !(self.days_star || self.weekdays_star) {
            // Either field matching is enough; every month has days 1..=28 and every weekday.
            return self.months != 0 && (self.days != 0 || self.weekdays != 0);
        }
        if self.weekdays == 0 {
            return false;
        }
        // Both must match. A day that exists in a month (Feb 29 in leap years) falls on every
        // weekday in some year, so the day-of-month and month fields decide alone.
        (1..=12u32).any(|m| {
            self.months & (1 << m) != 0
                && (1..=MONTH_DAYS_MAX[m as usize - 1]).any(|d| self.days & (1 << d) != 0)
        })
    }
}

impl TryFrom<String> for Cron {
    type Error = CronError;
    fn try_from(s: String) -> Result<Cron, CronError> {
        Cron::parse(&s)
    }
}

impl From<Cron> for String {
    fn from(c: Cron) -> String {
        c.text
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A field of the expression and its byte offset.
type Piece<'a> = (usize, &'a str);

/// Sunday = 0, as cron counts.
pub(crate) fn weekday_bit(w: Weekday) -> u32 {
    u32::from(w.to_sunday_zero_offset().unsigned_abs())
}

/// The positions of the set bits, lowest first.
fn bits(mut set: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        if set == 0 {
            return None;
        }
        let b = set.trailing_zeros();
        set &= set - 1;
        Some(b)
    })
}

/// The fields of `text` with their byte offsets, split on ASCII whitespace.
fn split_fields(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_ascii_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// The set of one field as bits; `offset` is where the field starts in the expression.
fn field(text: &str, offset: usize, spec: FieldSpec) -> Result<u64, CronError> {
    let mut set = 0u64;
    let mut at = offset;
    for item in text.split(',') {
        set |= item_bits(item, at, spec)?;
        at += item.len() + 1;
    }
    Ok(set)
}

fn item_bits(item: &str, at: usize, spec: FieldSpec) -> Result<u64, CronError> {
    if item.is_empty() {
        return Err(error(
            at,
            format!("an empty item in the {} field", spec.name),
        ));
    }
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => {
            let step_at = at + r.len() + 1;
            let step: u32 = s.parse().map_err(|_| {
                error(
                    step_at,
                    format!("step {s:?} in the {} field is not a number", spec.name),
                )
            })?;
            if step == 0 || step > spec.max {
                return Err(error(
                    step_at,
                    format!(
                        "step {step} in the {} field must be between 1 and {}",
                        spec.name, spec.max
                    ),
                ));
            }
            (r, Some(step))
        }
        None => (item, None),
    };
    let (lo, hi) = if range == "*" {
        (spec.min, spec.max)
    } else if let Some((a, b)) = range.split_once('-') {
        let lo = value(a, at, spec)?;
        let hi = value(b, at + a.len() + 1, spec)?;
        if lo > hi {
            return Err(error(
                at,
                format!(
                    "range {range:?} in the {} field runs backwards; write the smaller value first",
                    spec.name
                ),
            ));
        }
        (lo, hi)
    } else {
        let v = value(range, at, spec)?;
        // `5/10` runs from 5 to the end of the field.
        (v, if step.is_some() { spec.max } else { v })
    };
    let step = step.unwrap_or(1);
    let mut set = 0u64;
    let mut v = lo;
    while v <= hi {
        set |= 1 << v;
        v += step;
    }
    Ok(set)
}

fn value(text: &str, at: usize, spec: FieldSpec) -> Result<u32, CronError> {
    if let Ok(v) = text.parse::<u32>()
        && text.bytes().all(|b| b.is_ascii_digit())
    {
        if (spec.min..=spec.max).contains(&v) {
            return Ok(v);
        }
        return Err(error(
            at,
            format!(
                "{v} is out of range for the {} field ({}-{})",
                spec.name, spec.min, spec.max
            ),
        ));
    }
    let upper = text.to_ascii_uppercase();
    if let Some(i) = spec.names.iter().position(|n| *n == upper) {
        let first = if spec.min == 0 { 0 } else { 1 };
        return Ok(first + i as u32);
    }
    let hint = match text {
        "L" | "W" | "?" => {
            "; `L`, `W` and `?` are not supported: use a calendar (`monthDays: [-1]` is the last day of the month)"
                .to_owned()
        }
        t if t.contains('#') => "; `#` is not supported: use a calendar".to_owned(),
        _ if !spec.names.is_empty() => {
            format!("; use a number or one of {}", spec.names.join(", "))
        }
        _ => String::new(),
    };
    Err(error(
        at,
        format!("{text:?} is not a value of the {} field{hint}", spec.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn fields_parse() {
        let c = Cron::parse("30 2 * * MON-FRI").unwrap();
        assert!(!c.is_interval());
        assert_eq!(c.times().collect::<Vec<_>>(), vec![(2, 30, 0)]);
        assert!(c.matches_date(date(2026, 11, 23))); // a Monday
        assert!(!c.matches_date(date(2026, 11, 22))); // a Sunday
        let c = Cron::parse("*/15 * * * *").unwrap();
        assert!(c.is_interval());
        assert_eq!(c.times_per_day(), 96);
        let c = Cron::parse("0 30 2 * * *").unwrap();
        assert_eq!(c.times().collect::<Vec<_>>(), vec![(2, 30, 0)]);
        let c = Cron::parse("*/20 0 0 * * *").unwrap();
        assert!(!c.is_interval(), "seconds do not make an interval");
        assert_eq!(c.times_per_day(), 3);
        let c = Cron::parse("0 0 * * 7").unwrap();
        assert!(c.matches_date(date(2026, 11, 22)));
        let c = Cron::parse("5/20 8-10/2 * jan,Dec *").unwrap();
        assert_eq!(
            c.times().collect::<Vec<_>>(),
            vec![
                (8, 5, 0),
                (8, 25, 0),
                (8, 45, 0),
                (10, 5, 0),
                (10, 25, 0),
                (10, 45, 0)
            ]
        );
        assert!(c.matches_date(date(2026, 12, 1)) && !c.matches_date(date(2026, 11, 1)));
        assert_eq!(Cron::parse(" @daily ").unwrap().as_str(), "@daily");
        assert!(Cron::parse("@hourly").unwrap().is_interval());
    }

    #[test]
    fn day_of_month_and_week_combine_as_in_vixie_cron() {
        // Neither starts with `*`: either matches.
        let c = Cron::parse("0 0 1,15 * MON").unwrap();
        assert!(c.matches_date(date(2026, 11, 1))); // Sunday the 1st
        assert!(c.matches_date(date(2026, 11, 23))); // a Monday
        assert!(!c.matches_date(date(2026, 11, 24)));
        // One starts with `*`: both must match.
        let c = Cron::parse("0 0 */2 * MON").unwrap();
        assert!(c.matches_date(date(2026, 11, 23))); // Monday the 23rd (odd)
        assert!(!c.matches_date(date(2026, 11, 30))); // Monday the 30th (even)
        let c = Cron::parse("0 0 13 * *").unwrap();
        assert!(c.matches_date(date(2026, 11, 13)) && !c.matches_date(date(2026, 11, 14)));
    }

    #[test]
    fn errors_point_at_the_field() {
        let e = Cron::parse("30 25 * * *").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("out of range for the hour field"), "{e}");
        let e = Cron::parse("0 0 * * MON-XYZ").unwrap_err();
        assert_eq!(e.offset, 12);
        let e = Cron::parse("0 0 L * *").unwrap_err();
        assert!(e.message.contains("monthDays"), "{e}");
        let e = Cron::parse("0 0 * *").unwrap_err();
        assert!(e.message.contains("4 fields"), "{e}");
        let e = Cron::parse("*/0 * * * *").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(Cron::parse("0 0 5-1 * *").is_err());
        assert!(Cron::parse("0 0 1,,2 * *").is_err());
        assert!(Cron::parse("@often").is_err());
        assert!(Cron::parse(&"1 ".repeat(200)).is_err());
    }

    #[test]
    fn impossible_days_never_fire() {
        assert!(!Cron::parse("0 0 30 2 *").unwrap().can_fire());
        assert!(!Cron::parse("0 0 31 4,6,9,11 *").unwrap().can_fire());
        assert!(Cron::parse("0 0 29 2 *").unwrap().can_fire());
        // Not both restricted: Mondays in February.
        assert!(Cron::parse("0 0 30 2 MON").unwrap().can_fire());
        assert!(Cron::parse("0 0 * * *").unwrap().can_fire());
    }

    #[test]
    fn serde_is_the_text() {
        let c = Cron::parse("0 9 * * 1-5").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"0 9 * * 1-5\"");
        assert_eq!(serde_json::from_str::<Cron>(&json).unwrap(), c);
    }
}
