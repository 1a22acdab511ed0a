//! The starts of a `cycle` with a schedule (JS7's `Cycle` with `Schedule`): admission
//! periods in a time zone and a scheme (`periodic`, `ticking`, `continuous`), bounded by
//! `limit`.
//!
//! A cycle covers the local day it began on: the admission periods that begin that day (and
//! one that began the day before and is still open when the cycle begins). A start lies in an
//! admission period, `[from, from + duration)`, at or after `now`, after the previous start;
//! starts that passed while a run went on are skipped, not caught up. Without admission
//! periods the whole local day is admitted — 23 or 25 hours long on the days the clocks
//! change. A `from` that a clock change skips is moved on by the length of the gap (02:30
//! becomes 03:30 on the day Berlin springs forward), an ambiguous one is the earlier
//! instant; durations are real time.
//!
//! Pure: `now` comes in, time zones from the bundled database ([`BundledZones`]).

use super::zones::{BundledZones, Zones};
use crate::inventory::{AdmissionPeriod, CycleSchedule, CycleScheme};
use crate::time::TimeMs;
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

/// The instant of `date` at `seconds` after local midnight in `zone`.
fn local(zone: &TimeZone, date: Date, seconds: u32) -> Option<i64> {
    let time = Time::new(
        i8::try_from(seconds / 3600).ok()?,
        i8::try_from(seconds / 60 % 60).ok()?,
        i8::try_from(seconds % 60).ok()?,
        0,
    )
    .ok()?;
    let zoned = date.to_datetime(time).to_zoned(zone.clone()).ok()?;
    Some(zoned.timestamp().as_millisecond())
}

/// Whether `period` applies on `date` (bit `n` of `weekdays` is the weekday `n`, Sunday = 0;
/// no bits: every day).
fn applies(period: &AdmissionPeriod, date: Date) -> bool {
    let day = date.weekday().to_sunday_zero_offset();
    period.weekdays == 0 || period.weekdays & (1 << day) != 0
}

/// The admission periods `[start, end)` in ms of the cycle that began at `since`, sorted.
fn periods(schedule: &CycleSchedule, zone: &TimeZone, since: TimeMs) -> Vec<(i64, i64)> {
    let Ok(ts) = Timestamp::from_millisecond(since.0) else {
        return Vec::new();
    };
    let day0 = ts.to_zoned(zone.clone()).date();
    let mut out = Vec::new();
    if schedule.admission.is_empty() {
        if let (Some(start), Some(next)) = (local(zone, day0, 0), day0.tomorrow().ok())
            && let Some(end) = local(zone, next, 0)
        {
            out.push((start, end));
        }
        return out;
    }
    for date in [day0.yesterday().ok(), Some(day0)].into_iter().flatten() {
        for p in &schedule.admission {
            if !applies(p, date) {
                continue;
            }
            let Some(start) = local(zone, date, p.from_s) else {
                continue;
            };
            let end = start.saturating_add(i64::try_from(p.duration.0).unwrap_or(i64::MAX));
            // One of the day before counts only while it is still open.
            if date != day0 && end <= since.0 {
                continue;
            }
            out.push((start, end));
        }
    }
    out.sort_unstable();
    out
}

/// The start of local midnight of the day the cycle began.
fn midnight(zone: &TimeZone, since: TimeMs) -> Option<i64> {
    let ts = Timestamp::from_millisecond(since.0).ok()?;
    local(zone, ts.to_zoned(zone.clone()).date(), 0)
}

/// The smallest `base + k * every` (k whole, any sign) at or after `lower`.
fn next_multiple(base: i64, every: i64, lower: i64) -> i64 {
    let every = every.max(1);
    let k = (lower - base).div_euclid(every) + i64::from((lower - base).rem_euclid(every) != 0);
    base.saturating_add(k.saturating_mul(every))
}

/// The next start of the cycle that began at `since`, at or after `now`: the first when
/// `previous` is `None`, else the one after the start `previous`. `None`: the cycle ends
/// (its periods are over, or the time zone is unknown).
pub fn next_start(
    schedule: &CycleSchedule,
    since: TimeMs,
    now: TimeMs,
    previous: Option<TimeMs>,
) -> Option<TimeMs> {
    let zone = BundledZones.zone(&schedule.time_zone)?;
    let mut lower = now.0.max(since.0);
    if let Some(p) = previous {
        lower = lower.max(p.0.saturating_add(1));
    }
    let base = midnight(&zone, since)?;
    let mut best: Option<i64> = None;
    for (start, end) in periods(schedule, &zone, since) {
        let candidate = match schedule.scheme {
            CycleScheme::Ticking { every } => {
                next_multiple(start, i64::try_from(every.0).ok()?, lower.max(start))
            }
            CycleScheme::Periodic { every } => {
                next_multiple(base, i64::try_from(every.0).ok()?, lower.max(start))
            }
            CycleScheme::Continuous { pause } => {
                let after = match previous {
                    Some(_) => now.0.saturating_add(i64::try_from(pause.0).ok()?),
                    None => lower,
                };
                after.max(lower).max(start)
            }
        };
        if candidate < end {
            best = Some(best.map_or(candidate, |b| b.min(candidate)));
        }
    }
    best.map(TimeMs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DurationMs;

    fn at(s: &str) -> TimeMs {
        TimeMs(s.parse::<Timestamp>().unwrap().as_millisecond())
    }

    fn show(t: Option<TimeMs>, zone: &str) -> String {
        match t {
            None => "end".into(),
            Some(t) => Timestamp::from_millisecond(t.0)
                .unwrap()
                .to_zoned(BundledZones.zone(zone).unwrap())
                .strftime("%a %F %T %Z")
                .to_string(),
        }
    }

    fn schedule(zone: &str, admission: Vec<AdmissionPeriod>, scheme: CycleScheme) -> CycleSchedule {
        CycleSchedule {
            time_zone: zone.into(),
            admission,
            scheme,
            limit: None,
        }
    }

    /// Every start from `since` on, each run taking `run` ms, at most 50.
    fn starts(s: &CycleSchedule, since: TimeMs, run: i64) -> Vec<String> {
        let mut out = Vec::new();
        let mut now = since;
        let mut prev = None;
        while out.len() < 50 {
            let Some(t) = next_start(s, since, now, prev) else {
                break;
            };
            out.push(show(Some(t), &s.time_zone));
            prev = Some(t);
            now = TimeMs(t.0 + run);
        }
        out
    }

    const WEEKDAYS: u8 = 0b0111110;

    #[test]
    fn ticking_within_an_admission_period_on_weekdays() {
        let s = schedule(
            "Europe/Berlin",
            vec![AdmissionPeriod {
                weekdays: WEEKDAYS,
                from_s: 8 * 3600,
                duration: DurationMs::from_secs(3600),
            }],
            CycleScheme::Ticking {
                every: DurationMs::from_secs(25 * 60),
            },
        );
        // Monday 2026-12-07, begun before the period.
        assert_eq!(
            starts(&s, at("2026-12-07T05:00:00Z"), 1000),
            [
                "Mon 2026-12-07 08:00:00 CET",
                "Mon 2026-12-07 08:25:00 CET",
                "Mon 2026-12-07 08:50:00 CET"
            ]
        );
        // A run that overruns a tick: the missed tick is skipped.
        assert_eq!(
            starts(&s, at("2026-12-07T07:00:00Z"), 30 * 60 * 1000),
            ["Mon 2026-12-07 08:00:00 CET", "Mon 2026-12-07 08:50:00 CET"]
        );
        // Sunday: no period, the cycle ends at once.
        assert!(starts(&s, at("2026-12-06T07:00:00Z"), 1000).is_empty());
        // Begun after the period: nothing that day.
        assert!(starts(&s, at("2026-12-07T10:00:00Z"), 1000).is_empty());
    }

    #[test]
    fn periodic_counts_from_midnight_continuous_pauses() {
        let periodic = schedule(
            "UTC",
            vec![AdmissionPeriod {
                weekdays: 0,
                from_s: 8 * 3600 + 10 * 60,
                duration: DurationMs::from_secs(3600),
            }],
            CycleScheme::Periodic {
                every: DurationMs::from_secs(30 * 60),
            },
        );
        assert_eq!(
            starts(&periodic, at("2026-12-07T00:00:00Z"), 1000),
            ["Mon 2026-12-07 08:30:00 UTC", "Mon 2026-12-07 09:00:00 UTC"]
        );
        let continuous = schedule(
            "UTC",
            vec![AdmissionPeriod {
                weekdays: 0,
                from_s: 8 * 3600,
                duration: DurationMs::from_secs(600),
            }],
            CycleScheme::Continuous {
                pause: DurationMs::from_secs(60),
            },
        );
        assert_eq!(
            starts(&continuous, at("2026-12-07T08:05:00Z"), 2 * 60 * 1000),
            ["Mon 2026-12-07 08:05:00 UTC", "Mon 2026-12-07 08:08:00 UTC"]
        );
    }

    #[test]
    fn a_period_across_midnight_and_the_days_the_clocks_change() {
        // 22:00 for 4 hours: a cycle begun at 01:00 is still in Sunday's period.
        let night = schedule(
            "UTC",
            vec![AdmissionPeriod {
                weekdays: 0,
                from_s: 22 * 3600,
                duration: DurationMs::from_secs(4 * 3600),
            }],
            CycleScheme::Ticking {
                every: DurationMs::from_secs(3600),
            },
        );
        assert_eq!(
            starts(&night, at("2026-12-07T00:30:00Z"), 1000),
            [
                "Mon 2026-12-07 01:00:00 UTC",
                "Mon 2026-12-07 22:00:00 UTC",
                "Mon 2026-12-07 23:00:00 UTC",
                "Tue 2026-12-08 00:00:00 UTC",
                "Tue 2026-12-08 01:00:00 UTC"
            ]
        );
        // The whole day, every 6 hours from midnight, on the day Berlin springs forward
        // (23 hours) and the day it falls back (25 hours).
        let day = schedule(
            "Europe/Berlin",
            Vec::new(),
            CycleScheme::Periodic {
                every: DurationMs::from_secs(6 * 3600),
            },
        );
        assert_eq!(
            starts(&day, at("2026-03-28T23:00:00Z"), 1000),
            [
                "Sun 2026-03-29 00:00:00 CET",
                "Sun 2026-03-29 07:00:00 CEST",
                "Sun 2026-03-29 13:00:00 CEST",
                "Sun 2026-03-29 19:00:00 CEST"
            ]
        );
        assert_eq!(
            starts(&day, at("2026-10-24T22:00:00Z"), 1000),
            [
                "Sun 2026-10-25 00:00:00 CEST",
                "Sun 2026-10-25 05:00:00 CET",
                "Sun 2026-10-25 11:00:00 CET",
                "Sun 2026-10-25 17:00:00 CET",
                "Sun 2026-10-25 23:00:00 CET"
            ]
        );
        // 02:30 does not exist on the spring day: the period begins at 03:30 CEST.
        let gap = schedule(
            "Europe/Berlin",
            vec![AdmissionPeriod {
                weekdays: 0,
                from_s: 2 * 3600 + 30 * 60,
                duration: DurationMs::from_secs(3600),
            }],
            CycleScheme::Ticking {
                every: DurationMs::from_secs(30 * 60),
            },
        );
        assert_eq!(
            starts(&gap, at("2026-03-28T23:00:00Z"), 1000),
            [
                "Sun 2026-03-29 03:30:00 CEST",
                "Sun 2026-03-29 04:00:00 CEST"
            ]
        );
    }
}
