//! Expansion: the fires of schedules in a window of time, by the policy of [`super`].

use super::Schedule;
use super::calendar::{CalendarError, CalendarSet};
use super::zones::Zones;
use crate::expr::{EvalError, Scope, render};
use crate::ids::{IdError, OrderId};
use crate::inventory::Inventory;
use crate::time::TimeMs;
use crate::value::{Value, Vars};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// The variables a schedule's `args` may read.
pub const PLAN_VARIABLES: [&str; 4] = ["schedule", "date", "time", "scheduledFor"];

/// The instants from `from` (included) to `until` (excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub until: Timestamp,
}

/// Limits on one expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandLimits {
    /// Longest window, in days of 24 hours.
    pub window_days_max: u32,
    /// Most fires one expansion returns, all schedules together.
    pub fires_max: usize,
}

impl Default for ExpandLimits {
    fn default() -> ExpandLimits {
        ExpandLimits {
            window_days_max: 366,
            fires_max: 1_000_000,
        }
    }
}

/// One fire: schedule number `schedule` (its index in the inventory) at `instant`, where the
/// schedule's time zone is at UTC offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fire {
    pub instant: Timestamp,
    pub schedule: u32,
    pub offset: Offset,
}

impl Fire {
    /// The local date and wall time of the fire.
    pub fn local(&self) -> DateTime {
        self.offset.to_datetime(self.instant)
    }

    /// The instant in RFC 3339 with the offset in force: `2026-03-29T03:00:00+02:00`.
    pub fn rfc3339(&self) -> String {
        let local = self.local();
        format!(
            "{}T{}{}",
            local.date(),
            clock(local.time()),
            offset_text(self.offset)
        )
    }

    /// The instant in milliseconds since the epoch.
    pub fn time_ms(&self) -> TimeMs {
        TimeMs(self.instant.as_millisecond())
    }
}

/// `02:30:00`: whole seconds (fires never have fractions).
fn clock(t: Time) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// `+01:00`, `-07:00`, or with seconds for the odd historical offset (`+00:19:32`).
fn offset_text(o: Offset) -> String {
    let total = o.seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let a = total.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    }
}

/// The id of the order a fire adds: `#<local date>#<schedule>@<wall time><offset>`, e.g.
/// `#2026-11-23#nightly@02:30:00+01:00`.
pub fn order_id(schedule: &str, fire: &Fire) -> Result<OrderId, IdError> {
    let local = fire.local();
    OrderId::new(format!(
        "#{}#{schedule}@{}{}",
        local.date(),
        clock(local.time()),
        offset_text(fire.offset)
    ))
}

/// Why schedules cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error(
        "the window is {days} days long; at most {max} days are allowed (limit window_days_max)"
    )]
    WindowTooLong { days: i64, max: u32 },
    #[error("more than {max} fires in the window (limit fires_max); ask for a shorter window")]
    TooManyFires { max: usize },
    #[error("schedule `{schedule}`: unknown time zone {zone:?}")]
    UnknownZone { schedule: String, zone: String },
    #[error("schedule `{schedule}`: unknown calendar `{calendar}`")]
    UnknownCalendar { schedule: String, calendar: String },
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

/// Appends the fires of one schedule in `window` to `out`, in order of their instants, each
/// instant once. `days` says which local dates the schedule's calendar holds; `index` is put in
/// each [`Fire`]. An error when the window is longer than the limits allow or `out` would hold
/// more than `fires_max` fires.
pub fn expand(
    schedule: &Schedule,
    index: u32,
    tz: &TimeZone,
    days: &dyn Fn(Date) -> bool,
    window: Window,
    limits: &ExpandLimits,
    out: &mut Vec<Fire>,
) -> Result<(), ExpandError> {
    if window.until <= window.from {
        return Ok(());
    }
    let span = window.until.duration_since(window.from);
    let max = SignedDuration::from_hours(24 * i64::from(limits.window_days_max));
    if span > max {
        return Err(ExpandError::WindowTooLong {
            days: (span.as_secs() + 86_399) / 86_400,
            max: limits.window_days_max,
        });
    }
    let start = out.len();
    let mut emit = Emit {
        tz,
        window,
        schedule: index,
        out,
        fires_max: limits.fires_max,
    };
    // A fire of the day before can land in the window when a gap pushes it forward.
    let first = tz.to_datetime(window.from).date();
    let mut date = first.yesterday().unwrap_or(first);
    let last = tz.to_datetime(window.until).date();
    while date <= last {
        if days(date) {
            for c in &schedule.cron {
                if c.matches_date(date) {
                    for (h, m, s) in c.times() {
                        let t = Time::new(h, m, s, 0).unwrap_or(Time::midnight());
                        emit.wall(date.to_datetime(t), c.is_interval())?;
                    }
                }
            }
            for t in &schedule.times {
                emit.wall(date.to_datetime(*t), false)?;
            }
            if let Some(r) = &schedule.repeat {
                for t in r.times() {
                    emit.wall(date.to_datetime(t), true)?;
                }
            }
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    let fires = &mut emit.out[start..];
    fires.sort_unstable();
    let mut kept = start;
    for i in start..emit.out.len() {
        if kept == start || emit.out[kept - 1].instant != emit.out[i].instant {
            emit.out[kept] = emit.out[i];
            kept += 1;
        }
    }
    emit.out.truncate(kept);
    Ok(())
}

/// Turns wall times of one schedule into fires within the window.
struct Emit<'a> {
    tz: &'a TimeZone,
    window: Window,
    schedule: u32,
    out: &'a mut Vec<Fire>,
    fires_max: usize,
}

impl Emit<'_> {
    /// A wall time, fixed (gap: at its end; fold: first occurrence) or interval (gap: none;
    /// fold: both occurrences).
    fn wall(&mut self, dt: DateTime, interval: bool) -> Result<(), ExpandError> {
        match self.tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => self.at(dt, offset),
            AmbiguousOffset::Fold { before, after } => {
                self.at(dt, before)?;
                if interval {
                    self.at(dt, after)?;
                }
                Ok(())
            }
            AmbiguousOffset::Gap { after, .. } => {
                if interval {
                    return Ok(());
                }
                // Read with the offset after the change, the wall time is an instant before
                // it; the next transition from there is the change, the gap's end.
                let Ok(probe) = after.to_timestamp(dt) else {
                    return Ok(());
                };
                match self.tz.following(probe).next() {
                    Some(t) => self.push(t.timestamp(), t.offset()),
                    None => Ok(()),
                }
            }
        }
    }

    fn at(&mut self, dt: DateTime, offset: Offset) -> Result<(), ExpandError> {
        match offset.to_timestamp(dt) {
            Ok(instant) => self.push(instant, offset),
            Err(_) => Ok(()),
        }
    }

    fn push(&mut self, instant: Timestamp, offset: Offset) -> Result<(), ExpandError> {
        if instant < self.window.from || instant >= self.window.until {
            return Ok(());
        }
        if self.out.len() >= self.fires_max {
            return Err(ExpandError::TooManyFires {
                max: self.fires_max,
            });
        }
        self.out.push(Fire {
            instant,
            schedule: self.schedule,
            offset,
        });
        Ok(())
    }
}

/// The schedules of an inventory with their time zones and calendars resolved, ready to
/// expand.
#[derive(Debug, Clone)]
pub struct Expander<'i> {
    schedules: &'i [crate::schedule::Schedule],
    calendars: CalendarSet<'i>,
    zones: Vec<TimeZone>,
    calendar_of: Vec<Option<usize>>,
}

impl<'i> Expander<'i> {
    /// Resolves every schedule's time zone through `zones` and calendar by name.
    pub fn new(inventory: &'i Inventory, zones: &dyn Zones) -> Result<Expander<'i>, ExpandError> {
        let calendars = CalendarSet::new(&inventory.calendars)?;
        let mut tzs = Vec::with_capacity(inventory.schedules.len());
        let mut calendar_of = Vec::with_capacity(inventory.schedules.len());
        for s in &inventory.schedules {
            let tz = zones
                .zone(&s.time_zone)
                .ok_or_else(|| ExpandError::UnknownZone {
                    schedule: s.name.to_string(),
                    zone: s.time_zone.clone(),
                })?;
            tzs.push(tz);
            calendar_of.push(match &s.calendar {
                None => None,
                Some(c) => Some(calendars.index(c.as_str()).ok_or_else(|| {
                    ExpandError::UnknownCalendar {
                        schedule: s.name.to_string(),
                        calendar: c.to_string(),
                    }
                })?),
            });
        }
        Ok(Expander {
            schedules: &inventory.schedules,
            calendars,
            zones: tzs,
            calendar_of,
        })
    }

    pub fn schedules(&self) -> &'i [Schedule] {
        self.schedules
    }

    /// The time zone of schedule number `index`.
    pub fn zone(&self, index: usize) -> &TimeZone {
        &self.zones[index]
    }

    /// Whether schedule number `index`'s calendar holds `date` (always, without a calendar).
    pub fn holds(&self, index: usize, date: Date) -> bool {
        self.calendar_of[index].is_none_or(|c| self.calendars.contains(c, date))
    }

    /// Appends the fires of schedule number `index` (paused or not) to `out`; see [`expand`].
    pub fn fires_of(
        &self,
        index: usize,
        window: Window,
        limits: &ExpandLimits,
        out: &mut Vec<Fire>,
    ) -> Result<(), ExpandError> {
        let days = |d: Date| self.holds(index, d);
        expand(
            &self.schedules[index],
            u32::try_from(index).unwrap_or(u32::MAX),
            &self.zones[index],
            &days,
            window,
            limits,
            out,
        )
    }

    /// The fires of every schedule that is not paused, ordered by instant, then schedule name.
    pub fn fires(&self, window: Window, limits: &ExpandLimits) -> Result<Vec<Fire>, ExpandError> {
        let mut out = Vec::new();
        for (i, s) in self.schedules.iter().enumerate() {
            if !s.paused {
                self.fires_of(i, window, limits, &mut out)?;
            }
        }
        // Each schedule's rank by name, so that the sort compares integers.
        let mut by_name: Vec<u32> = (0..self.schedules.len() as u32).collect();
        by_name.sort_unstable_by(|a, b| {
            self.schedules[*a as usize]
                .name
                .cmp(&self.schedules[*b as usize].name)
        });
        let mut rank = vec![0u32; self.schedules.len()];
        for (r, i) in by_name.iter().enumerate() {
            rank[*i as usize] = r as u32;
        }
        // Unique keys (a schedule fires once per instant): unstable is deterministic, and
        // sorts in place.
        out.sort_unstable_by_key(|f| (f.instant, rank[f.schedule as usize]));
        Ok(out)
    }

    fn name(&self, fire: &Fire) -> &str {
        self.schedules[fire.schedule as usize].name.as_str()
    }

    /// The id of the order a fire adds ([`order_id`]).
    pub fn order_id(&self, fire: &Fire) -> Result<OrderId, IdError> {
        order_id(self.name(fire), fire)
    }

    /// The arguments of the order a fire adds: the schedule's `args` rendered with the plan
    /// variables.
    pub fn args(&self, fire: &Fire) -> Result<Vars, EvalError> {
        let schedule = &self.schedules[fire.schedule as usize];
        let scope = PlanScope {
            schedule: schedule.name.as_str(),
            fire,
        };
        schedule
            .args
            .iter()
            .map(|(k, t)| Ok((k.clone(), render(t, &scope)?)))
            .collect()
    }

    /// The first local date from `today` on, at most `days` dates, on which schedule number
    /// `index` could fire: its calendar holds the date and a cron matches it (or it has
    /// `times` or a `repeat`). Times of day are not looked at.
    pub fn first_day(&self, index: usize, today: Date, days: u32) -> Option<Date> {
        let s = &self.schedules[index];
        let every_day = !s.times.is_empty() || s.repeat.is_some_and(|r| r.times().next().is_some());
        let mut date = today;
        for _ in 0..days {
            if self.holds(index, date) && (every_day || s.cron.iter().any(|c| c.matches_date(date)))
            {
                return Some(date);
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// The arguments of the order that `fire` of `schedule` adds: its `args` rendered with the
/// plan variables (the fire's `schedule` index is not looked at).
pub fn args_of(schedule: &Schedule, fire: &Fire) -> Result<Vars, EvalError> {
    let scope = PlanScope {
        schedule: schedule.name.as_str(),
        fire,
    };
    schedule
        .args
        .iter()
        .map(|(k, t)| Ok((k.clone(), render(t, &scope)?)))
        .collect()
}

/// The plan variables of one fire.
struct PlanScope<'a> {
    schedule: &'a str,
    fire: &'a Fire,
}

impl Scope for PlanScope<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        let local = self.fire.local();
        Some(Value::String(match name {
            "schedule" => self.schedule.to_owned(),
            "date" => local.date().to_string(),
            "time" => clock(local.time()),
            "scheduledFor" => self.fire.rfc3339(),
            _ => return None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BundledZones, Cron, Missed};
    use jiff::civil::time;

    fn schedule(cron: &[&str], times: &[Time]) -> Schedule {
        Schedule {
            name: crate::ids::ScheduleName::new("s").unwrap(),
            workflow: crate::ids::WorkflowName::new("w").unwrap(),
            args: Default::default(),
            time_zone: "Europe/Berlin".into(),
            cron: cron.iter().map(|c| Cron::parse(c).unwrap()).collect(),
            times: times.to_vec(),
            repeat: None,
            calendar: None,
            missed: Missed::CatchUp,
            priority: 0,
            paused: false,
        }
    }

    fn fires(s: &Schedule, from: &str, until: &str) -> Vec<String> {
        let tz = BundledZones.zone(&s.time_zone).unwrap();
        let window = Window {
            from: from.parse().unwrap(),
            until: until.parse().unwrap(),
        };
        let mut out = Vec::new();
        expand(
            s,
            0,
            &tz,
            &|_| true,
            window,
            &ExpandLimits::default(),
            &mut out,
        )
        .unwrap();
        out.iter().map(Fire::rfc3339).collect()
    }

    #[test]
    fn a_time_in_the_spring_gap_fires_at_its_end() {
        // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST.
        let s = schedule(&["30 2 * * *"], &[]);
        assert_eq!(
            fires(&s, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
            vec![
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
        // Seconds in the gap land on the gap's end too, collapsing with 03:00 itself.
        let s = schedule(&["15 30 2 * * *", "0 0 3 * * *"], &[time(2, 0, 0, 0)]);
        assert_eq!(
            fires(&s, "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"),
            vec!["2026-03-29T03:00:00+02:00"]
        );
    }

    #[test]
    fn a_time_in_the_autumn_fold_fires_at_its_first_occurrence() {
        // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET.
        let s = schedule(&["30 2 * * *"], &[]);
        assert_eq!(
            fires(&s, "2026-10-25T00:00:00Z", "2026-10-26T00:00:00Z"),
            vec!["2026-10-25T02:30:00+02:00"]
        );
        // The window starts between the two occurrences: no fire.
        assert!(fires(&s, "2026-10-25T00:45:00Z", "2026-10-25T12:00:00Z").is_empty());
    }

    #[test]
    fn intervals_skip_the_gap_and_repeat_the_fold() {
        let s = schedule(&["30 * * * *"], &[]);
        let spring = fires(&s, "2026-03-29T00:00:00+01:00", "2026-03-29T04:00:00+02:00");
        assert_eq!(
            spring,
            vec![
                "2026-03-29T00:30:00+01:00",
                "2026-03-29T01:30:00+01:00",
                "2026-03-29T03:30:00+02:00"
            ]
        );
        let autumn = fires(&s, "2026-10-25T01:00:00+02:00", "2026-10-25T03:00:00+01:00");
        assert_eq!(
            autumn,
            vec![
                "2026-10-25T01:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:30:00+01:00"
            ]
        );
    }

    #[test]
    fn ids_stay_unique_in_the_fold() {
        let s = schedule(&["30 * * * *"], &[]);
        let tz = BundledZones.zone("Europe/Berlin").unwrap();
        let window = Window {
            from: "2026-10-25T00:00:00Z".parse().unwrap(),
            until: "2026-10-25T03:00:00Z".parse().unwrap(),
        };
        let mut out = Vec::new();
        expand(
            &s,
            0,
            &tz,
            &|_| true,
            window,
            &ExpandLimits::default(),
            &mut out,
        )
        .unwrap();
        let ids: Vec<String> = out
            .iter()
            .map(|f| order_id("nightly", f).unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            vec![
                "#2026-10-25#nightly@02:30:00+02:00",
                "#2026-10-25#nightly@02:30:00+01:00",
                "#2026-10-25#nightly@03:30:00+01:00"
            ]
        );
    }

    #[test]
    fn limits_hold() {
        let s = schedule(&["* * * * * *"], &[]);
        let tz = TimeZone::UTC;
        let mut out = Vec::new();
        let window = Window {
            from: "2026-01-01T00:00:00Z".parse().unwrap(),
            until: "2026-01-02T00:00:00Z".parse().unwrap(),
        };
        let limits = ExpandLimits {
            fires_max: 1000,
            ..ExpandLimits::default()
        };
        assert_eq!(
            expand(&s, 0, &tz, &|_| true, window, &limits, &mut out),
            Err(ExpandError::TooManyFires { max: 1000 })
        );
        let long = Window {
            from: "2026-01-01T00:00:00Z".parse().unwrap(),
            until: "2027-01-03T00:00:00Z".parse().unwrap(),
        };
        assert!(matches!(
            expand(
                &s,
                0,
                &tz,
                &|_| true,
                long,
                &ExpandLimits::default(),
                &mut out
            ),
            Err(ExpandError::WindowTooLong { days: 367, .. })
        ));
    }
}
