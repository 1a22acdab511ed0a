//! Why each instant of a schedule on one local date is in the plan or not ([`explain`]): a
//! pure function of the schedule's definition, the deployed calendars and the plan's state.
//!
//! For each wall time the definition names that day (its crons that match the date, its
//! `times`, its `repeat`), in order, it says where it fell — an instant, moved to the end of a
//! gap, once or twice in a fold, nowhere — and what became of that instant in the plan:
//! planned, ordered, skipped (missed, cancelled, paused, replaced, refused), not planned yet,
//! or not in the plan at all. A calendar that does not hold the date says which of its rules
//! leaves it out. Instants in the plan that the current definition does not give (an earlier
//! definition's) are listed too.

use super::calendar::{CalendarSet, Days};
use super::plan::{Plan, PlannedFire, SchedulePlan, Skip, Status};
use super::zones::Zones;
use super::{Missed, Schedule};
use crate::ids::ScheduleName;
use crate::time::TimeMs;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use std::fmt;

/// Wall times of one day explained at most (a `repeat` every second gives 86,400).
pub const EXPLAINED_TIMES_MAX: usize = 2_000;

/// Why a schedule's day cannot be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("schedule {0} is not deployed")]
    UnknownSchedule(String),
    #[error("schedule {schedule}: unknown time zone {zone:?}")]
    UnknownZone { schedule: String, zone: String },
}

/// What became of one instant in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Planned, its order not added yet.
    Planned,
    /// Its order was added.
    Ordered,
    /// Decided not to add (or to cancel) its order.
    Skipped(Skip),
    /// After the plan's high-water mark: planned later, as the plan moves on.
    NotPlannedYet,
    /// Before the mark but not in the plan: the schedule was deployed (or changed) after it,
    /// or it is older than the plan keeps.
    NotInPlan,
    /// The calendar does not hold the date: no instant.
    Excluded,
    /// The wall time does not exist that day and the rule fires nowhere for it.
    NoInstant,
}

impl Fate {
    /// `planned`, `ordered`, `skipped`, `not-planned-yet`, `not-in-plan`, `excluded`,
    /// `no-instant`.
    pub fn word(&self) -> &'static str {
        match self {
            Fate::Planned => "planned",
            Fate::Ordered => "ordered",
            Fate::Skipped(_) => "skipped",
            Fate::NotPlannedYet => "not-planned-yet",
            Fate::NotInPlan => "not-in-plan",
            Fate::Excluded => "excluded",
            Fate::NoInstant => "no-instant",
        }
    }
}

/// One wall time of the day, or one instant of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// The wall time the definition names (for a plan entry of an earlier definition: its
    /// local time).
    pub wall: Time,
    /// Which rule names it: `cron <expr>`, `times`, `repeat`, or `earlier definition`.
    pub rule: String,
    /// The instant it fires at, if any.
    pub fire: Option<PlannedFire>,
    pub fate: Fate,
    /// Why, in words, in the order they apply.
    pub reasons: Vec<String>,
}

/// The explanation of one schedule's local date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub schedule: ScheduleName,
    pub date: Date,
    pub time_zone: String,
    /// About the whole day: the calendar, a pause, how far the plan reaches.
    pub notes: Vec<String>,
    /// By wall time, then instant.
    pub instants: Vec<Explained>,
    /// More wall times than [`EXPLAINED_TIMES_MAX`]; the rest are left out.
    pub truncated: bool,
}

/// Explains the instants of `schedule` on its local `date` (see the module doc).
pub fn explain(
    plan: &Plan,
    schedule: &ScheduleName,
    date: Date,
    zones: &dyn Zones,
) -> Result<Explanation, ExplainError> {
    let p = plan
        .schedules
        .get(schedule)
        .ok_or_else(|| ExplainError::UnknownSchedule(schedule.to_string()))?;
    let s = &p.schedule;
    let tz = zones
        .zone(&s.time_zone)
        .ok_or_else(|| ExplainError::UnknownZone {
            schedule: schedule.to_string(),
            zone: s.time_zone.clone(),
        })?;
    let mut notes = Vec::new();
    if p.paused {
        notes.push("the schedule is paused: it adds no orders until it is resumed".to_owned());
    }
    if p.planned_until.0 == i64::MAX {
        notes.push("the schedule has not been planned yet".to_owned());
    } else {
        notes.push(format!(
            "the plan reaches until {}",
            at_text(&tz, p.planned_until)
        ));
    }
    notes.push(format!(
        "missed: {} ({})",
        s.missed.word(),
        missed_words(s.missed)
    ));
    let excluded = calendar_note(plan, s, date);
    if let Some(why) = &excluded {
        notes.push(why.clone());
    }
    let (walls, truncated) = wall_times(s, date);
    let mut instants = Vec::new();
    let mut seen: Vec<TimeMs> = Vec::new();
    for (wall, rule, interval) in walls {
        if excluded.is_some() {
            instants.push(Explained {
                wall,
                rule,
                fire: None,
                fate: Fate::Excluded,
                reasons: vec!["the calendar does not hold the date".to_owned()],
            });
            continue;
        }
        let dt = date.to_datetime(wall);
        let placed = place(&tz, dt, interval);
        if placed.is_empty() {
            instants.push(Explained {
                wall,
                rule,
                fire: None,
                fate: Fate::NoInstant,
                reasons: vec![format!(
                    "{} does not exist that day (the clocks go forward); an interval time in \
                     the gap does not fire",
                    clock(wall)
                )],
            });
            continue;
        }
        for (fire, dst) in placed {
            let mut reasons: Vec<String> = dst.into_iter().collect();
            if seen.contains(&fire.at) {
                reasons
                    .push("the same instant as an earlier time of the day: it fires once".into());
                instants.push(Explained {
                    wall,
                    rule: rule.clone(),
                    fire: Some(fire),
                    fate: fate_of(p, fire.at),
                    reasons,
                });
                continue;
            }
            seen.push(fire.at);
            let fate = fate_of(p, fire.at);
            reasons.extend(fate_reasons(p, &fate));
            instants.push(Explained {
                wall,
                rule: rule.clone(),
                fire: Some(fire),
                fate,
                reasons,
            });
        }
    }
    // Entries of the plan on that date the current definition does not give.
    for (fire, status) in p.entries() {
        if seen.contains(&fire.at) || fire.fire().local().date() != date {
            continue;
        }
        let fate = match status {
            Status::Planned => Fate::Planned,
            Status::Ordered => Fate::Ordered,
            Status::Skipped(why) => Fate::Skipped(why.clone()),
        };
        let mut reasons =
            vec!["planned by an earlier definition of the schedule (or its calendar)".to_owned()];
        reasons.extend(fate_reasons(p, &fate));
        instants.push(Explained {
            wall: fire.fire().local().time(),
            rule: "earlier definition".to_owned(),
            fire: Some(fire),
            fate,
            reasons,
        });
    }
    instants.sort_by_key(|e| (e.wall, e.fire.map(|f| f.at)));
    Ok(Explanation {
        schedule: schedule.clone(),
        date,
        time_zone: s.time_zone.clone(),
        notes,
        instants,
        truncated,
    })
}

fn missed_words(m: Missed) -> &'static str {
    match m {
        Missed::CatchUp => "every instant missed runs late",
        Missed::Latest => "of the instants missed, only the latest runs late",
        Missed::Skip => "an instant missed does not run",
    }
}

/// The wall times the definition names on `date`, with their rule and whether they are
/// interval times; at most [`EXPLAINED_TIMES_MAX`].
fn wall_times(s: &Schedule, date: Date) -> (Vec<(Time, String, bool)>, bool) {
    let mut out = Vec::new();
    let mut truncated = false;
    let mut push = |t: Time, rule: &str, interval: bool| {
        if out.len() < EXPLAINED_TIMES_MAX {
            out.push((t, rule.to_owned(), interval));
        } else {
            truncated = true;
        }
    };
    for c in &s.cron {
        if !c.matches_date(date) {
            continue;
        }
        let rule = format!("cron {}", c.as_str());
        for (h, m, sec) in c.times() {
            if let Ok(t) = Time::new(h, m, sec, 0) {
                push(t, &rule, c.is_interval());
            }
        }
    }
    for t in &s.times {
        push(*t, "times", false);
    }
    if let Some(r) = &s.repeat {
        for t in r.times() {
            push(t, "repeat", true);
        }
    }
    out.sort_by_key(|(t, _, _)| *t);
    (out, truncated)
}

/// Where a wall time fires, by the expansion's policy ([`super::expand`]), with a word about
/// a change of offset when one applies.
fn place(tz: &TimeZone, dt: DateTime, interval: bool) -> Vec<(PlannedFire, Option<String>)> {
    let fire = |offset: Offset| {
        offset.to_timestamp(dt).ok().map(|t| PlannedFire {
            at: TimeMs(t.as_millisecond()),
            offset_seconds: offset.seconds(),
        })
    };
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            fire(offset).map(|f| (f, None)).into_iter().collect()
        }
        AmbiguousOffset::Fold { before, after } => {
            let t = clock(dt.time());
            if interval {
                [before, after]
                    .into_iter()
                    .filter_map(fire)
                    .map(|f| {
                        let why = format!(
                            "{t} occurs twice (the clocks go back): an interval time fires at \
                             each occurrence, this one at offset {}",
                            offset_text(f.offset_seconds)
                        );
                        (f, Some(why))
                    })
                    .collect()
            } else {
                let why = format!(
                    "{t} occurs twice (the clocks go back): a fixed time fires once, at its \
                     first occurrence"
                );
                fire(before).map(|f| (f, Some(why))).into_iter().collect()
            }
        }
        AmbiguousOffset::Gap { after, .. } => {
            if interval {
                return Vec::new();
            }
            let Ok(probe) = after.to_timestamp(dt) else {
                return Vec::new();
            };
            let Some(change) = tz.following(probe).next() else {
                return Vec::new();
            };
            let f = PlannedFire {
                at: TimeMs(change.timestamp().as_millisecond()),
                offset_seconds: change.offset().seconds(),
            };
            let why = format!(
                "{} does not exist that day (the clocks go forward): a fixed time fires at the \
                 end of the gap, {}",
                clock(dt.time()),
                f.fire().rfc3339()
            );
            vec![(f, Some(why))]
        }
    }
}

fn fate_of(p: &SchedulePlan, at: TimeMs) -> Fate {
    match p.status(at) {
        Some(Status::Planned) => Fate::Planned,
        Some(Status::Ordered) => Fate::Ordered,
        Some(Status::Skipped(why)) => Fate::Skipped(why.clone()),
        None if p.planned_until.0 == i64::MAX || at >= p.planned_until => Fate::NotPlannedYet,
        None => Fate::NotInPlan,
    }
}

fn fate_reasons(p: &SchedulePlan, fate: &Fate) -> Vec<String> {
    let missed = p.schedule.missed.word();
    let why = match fate {
        Fate::Planned if p.paused => {
            "planned; the schedule is paused: its order is not added until it is resumed, then \
             the missed: policy decides if its instant has passed"
                .to_owned()
        }
        Fate::Planned => "planned: its order is added ahead of its instant".to_owned(),
        Fate::Ordered => "its order was added".to_owned(),
        Fate::Skipped(Skip::Missed) => format!(
            "missed: its instant passed while no controller could add its order or while its \
             agent was down, and the policy missed: {missed} dropped it"
        ),
        Fate::Skipped(Skip::Cancelled) => "cancelled by hand (plan skip or plan cancel)".to_owned(),
        Fate::Skipped(Skip::Paused) => {
            "the schedule was paused before its order started: the order was cancelled".to_owned()
        }
        Fate::Skipped(Skip::Replaced) => "a deployment changed the schedule (or its calendar) \
             and the new definition does not fire then: its order was cancelled"
            .to_owned(),
        Fate::Skipped(Skip::Refused { error }) => {
            format!("its order could not be added: {error}")
        }
        Fate::Skipped(Skip::Removed) => {
            "the schedule was removed before its order started: the order was cancelled".to_owned()
        }
        Fate::NotPlannedYet => {
            "not planned yet: the plan moves on day by day, `days_ahead` ahead".to_owned()
        }
        Fate::NotInPlan => "not in the plan: the schedule was deployed or changed after this \
             instant, or it is older than the history the plan keeps"
            .to_owned(),
        Fate::Excluded | Fate::NoInstant => return Vec::new(),
    };
    vec![why]
}

/// Why the schedule's calendar does not hold `date`, or `None` when it does (or there is none).
fn calendar_note(plan: &Plan, s: &Schedule, date: Date) -> Option<String> {
    let name = s.calendar.as_ref()?;
    let set = match CalendarSet::new(&plan.calendars) {
        Ok(set) => set,
        Err(e) => return Some(format!("the calendars cannot be used: {e}")),
    };
    let Some(i) = set.index(name.as_str()) else {
        return Some(format!("calendar {name} is not deployed"));
    };
    if set.contains(i, date) {
        return None;
    }
    Some(format!(
        "calendar {name} does not hold {date}: {}",
        calendar_why(&set, i, date)
    ))
}

/// Which rule of the calendar at `i` leaves `date` out (it does not hold it).
fn calendar_why(set: &CalendarSet<'_>, i: usize, date: Date) -> String {
    let c = set.calendar(i);
    if let Some(from) = c.from.filter(|f| date < *f) {
        return format!("it starts on {from}");
    }
    if let Some(to) = c.to.filter(|t| date > *t) {
        return format!("it ends on {to}");
    }
    if let Some(rule) = own_rule(&c.exclude, date) {
        return format!("its exclude rule {rule} matches");
    }
    for n in &c.exclude.calendars {
        if set.index(n.as_str()).is_some_and(|k| set.contains(k, date)) {
            return format!("it excludes calendar {n}, which holds the date");
        }
    }
    if !c.include.is_empty() {
        let mut why = "no include rule matches".to_owned();
        let nested: Vec<String> = c
            .include
            .calendars
            .iter()
            .filter_map(|n| {
                let k = set.index(n.as_str())?;
                Some(format!("{n}: {}", calendar_why(set, k, date)))
            })
            .collect();
        if !nested.is_empty() {
            why.push_str(&format!(" (included calendars: {})", nested.join("; ")));
        }
        return why;
    }
    "it does not hold the date".to_owned()
}

/// The first own rule of `days` that matches `date`, in words.
fn own_rule(days: &Days, date: Date) -> Option<String> {
    let only = |d: Days| d.matches_own(date);
    let weekday = Days {
        weekdays: days.weekdays,
        ..Days::default()
    };
    if only(weekday) {
        return Some(format!("weekday {}", date.weekday_name()));
    }
    if !days.month_days.is_empty()
        && only(Days {
            month_days: days.month_days.clone(),
            ..Days::default()
        })
    {
        return Some(format!("month day of {date}"));
    }
    if days.dates.contains(&date) {
        return Some(format!("date {date}"));
    }
    days.ranges
        .iter()
        .find(|r| (r.from..=r.to).contains(&date))
        .map(|r| format!("range {}..{}", r.from, r.to))
}

trait WeekdayName {
    fn weekday_name(&self) -> &'static str;
}

impl WeekdayName for Date {
    fn weekday_name(&self) -> &'static str {
        use jiff::civil::Weekday::*;
        match self.weekday() {
            Monday => "Monday",
            Tuesday => "Tuesday",
            Wednesday => "Wednesday",
            Thursday => "Thursday",
            Friday => "Friday",
            Saturday => "Saturday",
            Sunday => "Sunday",
        }
    }
}

fn clock(t: Time) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", s / 3600, s / 60 % 60)
}

fn at_text(tz: &TimeZone, t: TimeMs) -> String {
    let ts = super::plan::timestamp(t);
    let offset = tz.to_offset(ts);
    PlannedFire {
        at: t,
        offset_seconds: offset.seconds(),
    }
    .fire()
    .rfc3339()
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", clock(self.wall), self.rule)?;
        if let Some(fire) = &self.fire {
            write!(f, " → {}", fire.fire().rfc3339())?;
        }
        write!(f, ": {}", self.fate.word())?;
        if let Fate::Skipped(why) = &self.fate {
            write!(f, " ({why})")?;
        }
        for r in &self.reasons {
            write!(f, "; {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CalendarName;
    use crate::schedule::calendar::Calendar;
    use crate::schedule::plan::PlanEvent;
    use crate::schedule::{BundledZones, Cron};
    use jiff::civil::{date, time};

    fn schedule(times: Vec<Time>, cron: &[&str], calendar: Option<&str>) -> Schedule {
        Schedule {
            name: ScheduleName::new("s").unwrap(),
            workflow: crate::ids::WorkflowName::new("w").unwrap(),
            args: Default::default(),
            time_zone: "Europe/Berlin".into(),
            cron: cron.iter().map(|c| Cron::parse(c).unwrap()).collect(),
            times,
            repeat: None,
            calendar: calendar.map(|c| CalendarName::new(c).unwrap()),
            missed: Missed::Skip,
            priority: 0,
            paused: false,
        }
    }

    fn planned(s: Schedule, from: Date, until: Date) -> Plan {
        planned_with(Plan::default(), s, from, until)
    }

    fn planned_with(mut plan: Plan, s: Schedule, from: Date, until: Date) -> Plan {
        let name = s.name.clone();
        plan.apply(&PlanEvent::ScheduleDeployed(Box::new(s.clone())))
            .unwrap();
        let tz = BundledZones.zone("Europe/Berlin").unwrap();
        let ms = |d: Date| {
            TimeMs(
                tz.to_timestamp(d.to_datetime(Time::midnight()))
                    .unwrap()
                    .as_millisecond(),
            )
        };
        plan.apply(&PlanEvent::Replanned {
            schedule: name.clone(),
            from: ms(from),
        })
        .unwrap();
        let x = plan.expander(&BundledZones).unwrap();
        let window = super::super::Window {
            from: super::super::plan::timestamp(ms(from)),
            until: super::super::plan::timestamp(ms(until)),
        };
        let fires: Vec<PlannedFire> = x
            .fires(&s, window, &super::super::ExpandLimits::default())
            .unwrap()
            .iter()
            .map(PlannedFire::of)
            .collect();
        plan.apply(&PlanEvent::Planned {
            schedule: name,
            until: ms(until),
            fires,
        })
        .unwrap();
        plan
    }

    fn name() -> ScheduleName {
        ScheduleName::new("s").unwrap()
    }

    #[test]
    fn a_time_in_the_spring_gap_moves_to_its_end_and_an_interval_time_there_is_gone() {
        let s = schedule(vec![time(2, 30, 0, 0)], &["15 * * * *"], None);
        let plan = planned(s, date(2026, 3, 28), date(2026, 3, 31));
        let e = explain(&plan, &name(), date(2026, 3, 29), &BundledZones).unwrap();
        let fixed = e
            .instants
            .iter()
            .find(|i| i.rule == "times")
            .expect("the fixed time");
        assert_eq!(fixed.fate, Fate::Planned);
        assert_eq!(
            fixed.fire.unwrap().fire().rfc3339(),
            "2026-03-29T03:00:00+02:00"
        );
        assert!(fixed.reasons[0].contains("end of the gap"), "{fixed}");
        let gone = e
            .instants
            .iter()
            .find(|i| i.wall == time(2, 15, 0, 0))
            .expect("the hourly 02:15");
        assert_eq!(gone.fate, Fate::NoInstant, "{gone}");
        assert_eq!(
            e.instants
                .iter()
                .filter(|i| i.rule.starts_with("cron"))
                .count(),
            24
        );
    }

    #[test]
    fn a_fixed_time_in_the_autumn_fold_fires_once_an_interval_time_twice() {
        let s = schedule(
            vec![time(2, 30, 0, 0)],
            &["45 2 * * *", "*/30 2 * * *"],
            None,
        );
        let plan = planned(s, date(2026, 10, 24), date(2026, 10, 27));
        let e = explain(&plan, &name(), date(2026, 10, 25), &BundledZones).unwrap();
        let at_230: Vec<&Explained> = e
            .instants
            .iter()
            .filter(|i| i.wall == time(2, 30, 0, 0))
            .collect();
        // `times` once (first occurrence), the interval cron twice; the first occurrence is
        // the same instant for both rules: it fires once.
        assert_eq!(at_230.len(), 3, "{at_230:?}");
        assert!(
            at_230
                .iter()
                .any(|i| i.reasons.iter().any(|r| r.contains("fires once")))
        );
        let fixed = e
            .instants
            .iter()
            .find(|i| i.rule == "cron 45 2 * * *")
            .unwrap();
        assert_eq!(
            fixed.fire.unwrap().offset_seconds,
            7200,
            "first occurrence: +02:00"
        );
        assert!(fixed.reasons[0].contains("first occurrence"), "{fixed}");
    }

    #[test]
    fn a_calendar_says_which_rule_leaves_a_date_out() {
        let mut plan = Plan::default();
        plan.apply(&PlanEvent::CalendarDeployed(Box::new(Calendar {
            name: CalendarName::new("workdays").unwrap(),
            from: None,
            to: None,
            include: Days::default(),
            exclude: Days {
                weekdays: 0b100_0001,
                ..Days::default()
            },
        })))
        .unwrap();
        let plan = planned_with(
            plan,
            schedule(vec![time(8, 0, 0, 0)], &[], Some("workdays")),
            date(2026, 6, 1),
            date(2026, 6, 1),
        );
        let e = explain(&plan, &name(), date(2026, 6, 6), &BundledZones).unwrap();
        assert!(
            e.notes
                .iter()
                .any(|n| n.contains("calendar workdays does not hold 2026-06-06")
                    && n.contains("weekday Saturday")),
            "{:?}",
            e.notes
        );
        assert_eq!(e.instants[0].fate, Fate::Excluded);
        let monday = explain(&plan, &name(), date(2026, 6, 8), &BundledZones).unwrap();
        assert_eq!(monday.instants[0].fate, Fate::NotPlannedYet, "{:?}", monday);
    }

    #[test]
    fn the_plan_says_what_became_of_each_instant() {
        let s = schedule(
            vec![time(8, 0, 0, 0), time(9, 0, 0, 0), time(10, 0, 0, 0)],
            &[],
            None,
        );
        let mut plan = planned(s, date(2026, 6, 1), date(2026, 6, 3));
        let at = |h: i8| {
            let tz = BundledZones.zone("Europe/Berlin").unwrap();
            TimeMs(
                tz.to_timestamp(date(2026, 6, 1).at(h, 0, 0, 0))
                    .unwrap()
                    .as_millisecond(),
            )
        };
        plan.apply(&PlanEvent::Ordered {
            schedule: name(),
            at: at(8),
        })
        .unwrap();
        plan.apply(&PlanEvent::Skipped {
            schedule: name(),
            at: at(9),
            why: Skip::Missed,
        })
        .unwrap();
        plan.apply(&PlanEvent::Paused {
            schedule: name(),
            paused: true,
        })
        .unwrap();
        let e = explain(&plan, &name(), date(2026, 6, 1), &BundledZones).unwrap();
        let fates: Vec<&Fate> = e.instants.iter().map(|i| &i.fate).collect();
        assert_eq!(
            fates,
            vec![&Fate::Ordered, &Fate::Skipped(Skip::Missed), &Fate::Planned]
        );
        assert!(e.instants[1].reasons[0].contains("missed: skip"));
        assert!(e.instants[2].reasons[0].contains("paused"));
        assert!(e.notes[0].contains("paused"));
        let later = explain(&plan, &name(), date(2026, 6, 5), &BundledZones).unwrap();
        assert!(later.instants.iter().all(|i| i.fate == Fate::NotPlannedYet));
        let earlier = explain(&plan, &name(), date(2026, 5, 30), &BundledZones).unwrap();
        assert!(earlier.instants.iter().all(|i| i.fate == Fate::NotInPlan));
    }
}
