//! Schedules and calendars, and their expansion into fires: the instants at which a schedule
//! adds an order to its workflow.
//!
//! This is pure: no clock, no IO. Time zones come in as [`jiff::tz::TimeZone`] values, found by
//! a [`Zones`] the caller passes; [`BundledZones`] is the copy of the IANA time zone database
//! built into the program, the same on every machine of one build.
//!
//! # What a schedule fires at
//!
//! A schedule names a time zone (default `UTC`), at most one calendar, and any of: cron
//! expressions ([`cron`]), times of day, and a repeat (every period between two times of day).
//! On each local date of the time zone that the calendar holds (every date without a
//! calendar), it fires at the wall times of that date that
//!
//! - a cron expression matches, when the cron matches the date,
//! - `times` lists,
//! - `repeat` gives: `from`, `from + every`, ... before `until` (default: the end of the day).
//!
//! Wall times are turned into instants ([`expand()`]) by this policy, which holds in every time
//! zone and at every change of its UTC offset (daylight saving time or otherwise):
//!
//! - **Fixed** times (a cron whose minute and hour fields do not start with `*`, and `times`):
//!   a wall time that does not exist (it falls in a gap, such as 02:30 on the day Berlin moves
//!   its clocks from 02:00 to 03:00) fires once, exactly at the end of the gap (03:00:00, the
//!   instant of the change; its seconds are zero). A wall time that occurs twice (it falls in a
//!   fold, the hour repeated when clocks go back) fires once, at its first occurrence.
//! - **Interval** times (a cron whose minute or hour field starts with `*`, such as hourly or
//!   every 15 minutes, and `repeat`): every real instant whose wall clock matches fires, so
//!   nothing fires in a gap and a time in a fold fires twice, once per occurrence.
//! - A window `[from, until)` holds the fires at or after `from` and before `until`. A fixed
//!   time whose first occurrence lies before `from` does not fire in the window, even when its
//!   second occurrence lies inside.
//! - Fires at the same instant collapse into one: a schedule fires at most once per instant.
//!
//! # Order ids
//!
//! The fire of schedule `nightly` at 02:30 local time on 2026-11-23 at UTC offset +01:00 adds
//! the order `#2026-11-23#nightly@02:30:00+01:00` ([`order_id`]): the local date, the schedule,
//! the local wall time and the offset in force. One instant gives one id, and the two
//! occurrences of a time in a fold differ by their offset, so the id stays unique per
//! `(schedule, instant)` and the same on every controller.
//!
//! # Arguments
//!
//! A schedule's `args` are templates ([`crate::expr`]) rendered for each fire with these
//! variables: `$schedule` (its name), `$date` (the local date, `2026-11-23`), `$time` (the
//! local wall time, `02:30:00`) and `$scheduledFor` (the instant in RFC 3339 with its offset).

pub mod calendar;
pub mod cron;
pub mod cycle;
pub mod expand;
pub mod explain;
pub mod plan;
mod zones;

pub use calendar::{CALENDAR_DEPTH_MAX, Calendar, CalendarError, CalendarSet, DateRange, Days};
pub use cron::{Cron, CronError};
pub use expand::{
    ExpandError, ExpandLimits, Expander, Fire, PLAN_VARIABLES, Window, args_of, expand, order_id,
};
pub use plan::{Entry, Plan, PlanEvent, PlannedFire, SchedulePlan, Skip, Status};
pub use zones::{BundledZones, Zones};

use crate::expr::Template;
use crate::ids::{CalendarName, ScheduleName, WorkflowName};
use crate::time::DurationMs;
use jiff::civil::Time;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A schedule: when to add orders to a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: ScheduleName,
    pub workflow: WorkflowName,
    /// The orders' arguments; templates over the plan variables ([`PLAN_VARIABLES`]).
    pub args: BTreeMap<String, Template>,
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub cron: Vec<Cron>,
    /// Fixed times of day.
    pub times: Vec<Time>,
    pub repeat: Option<Repeat>,
    /// Only the dates this calendar holds; every date when `None`.
    pub calendar: Option<CalendarName>,
    pub missed: Missed,
    /// Higher first when orders compete; 0 by default.
    pub priority: i32,
    /// A paused schedule adds no orders.
    pub paused: bool,
}

/// `every` from `from` on, before `until` (the end of the day when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    pub every: DurationMs,
    pub from: Time,
    pub until: Option<Time>,
}

impl Repeat {
    /// The wall times of one day, in order.
    pub fn times(&self) -> impl Iterator<Item = Time> + '_ {
        let step = i64::try_from(self.every.0 / 1000)
            .unwrap_or(i64::MAX)
            .max(1);
        let end = self.until.map_or(86_400, seconds_of_day);
        let start = seconds_of_day(self.from);
        (0..)
            .map(move |i: i64| start.saturating_add(i.saturating_mul(step)))
            .take_while(move |s| *s < end)
            .filter_map(time_of_second)
    }
}

/// Seconds since midnight of a wall time (fractions dropped).
pub(crate) fn seconds_of_day(t: Time) -> i64 {
    i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second())
}

fn time_of_second(s: i64) -> Option<Time> {
    let h = i8::try_from(s / 3600).ok()?;
    let m = i8::try_from(s / 60 % 60).ok()?;
    let sec = i8::try_from(s % 60).ok()?;
    Time::new(h, m, sec, 0).ok()
}

/// What becomes of fires whose instant passed while no order could be added for them (the
/// controller was down, or the schedule paused and resumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Missed {
    /// Every missed fire adds its order, late.
    #[default]
    CatchUp,
    /// Only the latest missed fire adds its order.
    Latest,
    /// Missed fires add no order.
    Skip,
}

impl Missed {
    /// The word used in YAML.
    pub fn word(self) -> &'static str {
        match self {
            Missed::CatchUp => "catch-up",
            Missed::Latest => "latest",
            Missed::Skip => "skip",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::time;

    #[test]
    fn repeats_stay_within_their_day() {
        let r = Repeat {
            every: DurationMs::parse("5h").unwrap(),
            from: time(8, 0, 0, 0),
            until: None,
        };
        let got: Vec<Time> = r.times().collect();
        assert_eq!(
            got,
            vec![
                time(8, 0, 0, 0),
                time(13, 0, 0, 0),
                time(18, 0, 0, 0),
                time(23, 0, 0, 0)
            ]
        );
        let r = Repeat {
            every: DurationMs::parse("15m").unwrap(),
            from: time(9, 0, 0, 0),
            until: Some(time(10, 0, 0, 0)),
        };
        assert_eq!(r.times().count(), 4, "until is not included");
    }
}
