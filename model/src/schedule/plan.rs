//! The daily plan: what the active controller has planned of each schedule, as the fold of
//! journaled [`PlanEvent`]s.
//!
//! # Format
//!
//! [`PlanEvent`] is journaled (postcard) and [`Plan`] is part of the controller's snapshot, so
//! both are **append-only**: new variants at the end, never a changed or removed one.
//!
//! # What the fold holds
//!
//! For every deployed schedule ([`SchedulePlan`]): its definition, whether it is paused, its
//! **high-water mark** `planned_until` (every fire before it has been planned: the plan of a
//! schedule never covers an instant twice, whoever the active controller is), and one
//! [`Entry`] per planned instant with its [`Status`]: still planned, ordered (its order was
//! added, with the id [`super::order_id`] gives), or skipped and why. Deployed calendars are
//! kept beside them, by name.
//!
//! # Rules of the fold
//!
//! - `Planned { schedule, until, fires }` adds an entry per fire where none is (an entry kept
//!   through a re-plan stays as it is) and raises the mark to `until`.
//! - `Replanned { schedule, from }` drops the entries at or after `from` that are still only
//!   planned and lowers the mark to `from`: what the controller plans next starts there. A new
//!   schedule starts with its mark at the end of time, so its first `Replanned` sets it.
//! - `Ordered` and `Skipped` decide one entry (or change why it is skipped);
//!   `Forgotten { before }` drops the decided entries before it.
//! - `ScheduleRemoved` drops the schedule with its mark and every entry, planned or decided;
//!   `CalendarRemoved` drops the calendar. Deployed again, a schedule starts afresh.

use super::Schedule;
use super::calendar::{Calendar, CalendarSet};
use super::expand::{ExpandError, ExpandLimits, Fire, Window, expand};
use super::zones::Zones;
use crate::ids::{CalendarName, IdError, OrderId, ScheduleName};
use crate::time::TimeMs;
use jiff::Timestamp;
pub use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One planned instant of a schedule: when, and the UTC offset of the schedule's time zone then
/// (which the order id carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlannedFire {
    pub at: TimeMs,
    pub offset_seconds: i32,
}

impl PlannedFire {
    pub fn of(fire: &Fire) -> PlannedFire {
        PlannedFire {
            at: fire.time_ms(),
            offset_seconds: fire.offset.seconds(),
        }
    }

    /// The fire (schedule index 0), for ids and plan variables.
    pub fn fire(&self) -> Fire {
        Fire {
            instant: Timestamp::from_millisecond(self.at.0).unwrap_or(Timestamp::UNIX_EPOCH),
            schedule: 0,
            offset: Offset::from_seconds(self.offset_seconds).unwrap_or(Offset::UTC),
        }
    }

    /// The id of the order of this fire of `schedule`.
    pub fn order_id(&self, schedule: &ScheduleName) -> Result<OrderId, IdError> {
        super::order_id(schedule.as_str(), &self.fire())
    }
}

/// Why a planned instant adds no order. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Skip {
    /// Its instant passed while no controller could add its order, and the schedule's
    /// `missed:` policy (`skip`, or `latest` for all but the latest) drops it.
    Missed,
    /// Cancelled by hand.
    Cancelled,
    /// Its order had been added but not started when the schedule was paused: cancelled.
    Paused,
    /// Its order had been added but not started when the schedule changed and the new
    /// definition does not fire then: cancelled.
    Replaced,
    /// The order could not be added (its workflow is gone, its arguments do not pass).
    Refused { error: String },
    /// Its order had been added but not started when the schedule was removed: cancelled.
    Removed,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Missed => f.write_str("missed"),
            Skip::Cancelled => f.write_str("cancelled"),
            Skip::Paused => f.write_str("paused"),
            Skip::Replaced => f.write_str("replaced"),
            Skip::Refused { error } => write!(f, "refused: {error}"),
            Skip::Removed => f.write_str("removed"),
        }
    }
}

/// What became of a planned instant. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Planned,
    Ordered,
    Skipped(Skip),
}

/// One planned instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub offset_seconds: i32,
    pub status: Status,
}

/// The plan of one schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulePlan {
    pub schedule: Schedule,
    pub paused: bool,
    /// Every fire before this instant has been planned.
    pub planned_until: TimeMs,
    /// Instants planned and not decided yet, with the UTC offset (seconds) then.
    pub planned: BTreeMap<TimeMs, i32>,
    /// Instants decided: ordered or skipped (never [`Status::Planned`]).
    pub decided: BTreeMap<TimeMs, Entry>,
}

impl SchedulePlan {
    /// The planned fire at `at`, decided or not.
    pub fn fire_at(&self, at: TimeMs) -> Option<PlannedFire> {
        let offset_seconds = match self.planned.get(&at) {
            Some(o) => *o,
            None => self.decided.get(&at)?.offset_seconds,
        };
        Some(PlannedFire { at, offset_seconds })
    }

    /// The status of the instant `at`, if it is in the plan.
    pub fn status(&self, at: TimeMs) -> Option<&Status> {
        if self.planned.contains_key(&at) {
            return Some(&Status::Planned);
        }
        self.decided.get(&at).map(|e| &e.status)
    }

    /// Every instant of the plan, in order: the fire and its status.
    pub fn entries(&self) -> Vec<(PlannedFire, &Status)> {
        let mut out: Vec<(PlannedFire, &Status)> = self
            .planned
            .iter()
            .map(|(at, o)| {
                let f = PlannedFire {
                    at: *at,
                    offset_seconds: *o,
                };
                (f, &Status::Planned)
            })
            .chain(self.decided.iter().map(|(at, e)| {
                let f = PlannedFire {
                    at: *at,
                    offset_seconds: e.offset_seconds,
                };
                (f, &e.status)
            }))
            .collect();
        out.sort_by_key(|(f, _)| f.at);
        out
    }
}

/// A journaled event of the plan. Append-only (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlanEvent {
    /// A schedule, new or changed.
    ScheduleDeployed(Box<Schedule>),
    /// A calendar, new or changed.
    CalendarDeployed(Box<Calendar>),
    /// The fires of `schedule` from its mark to `until` (excluded).
    Planned {
        schedule: ScheduleName,
        until: TimeMs,
        fires: Vec<PlannedFire>,
    },
    /// The plan of `schedule` from `from` on is made again.
    Replanned {
        schedule: ScheduleName,
        from: TimeMs,
    },
    /// The order of the fire at `at` was added (or found).
    Ordered { schedule: ScheduleName, at: TimeMs },
    /// The fire at `at` adds no order.
    Skipped {
        schedule: ScheduleName,
        at: TimeMs,
        why: Skip,
    },
    Paused {
        schedule: ScheduleName,
        paused: bool,
    },
    /// Entries before `before` that are decided are dropped (they are history).
    Forgotten { before: TimeMs },
    /// The schedule and its plan are gone (its orders not started were cancelled before).
    ScheduleRemoved { schedule: ScheduleName },
    /// The calendar is gone (no schedule or calendar that stays names it).
    CalendarRemoved { calendar: CalendarName },
}

impl PlanEvent {
    pub fn name(&self) -> &'static str {
        match self {
            PlanEvent::ScheduleDeployed(_) => "ScheduleDeployed",
            PlanEvent::CalendarDeployed(_) => "CalendarDeployed",
            PlanEvent::Planned { .. } => "Planned",
            PlanEvent::Replanned { .. } => "Replanned",
            PlanEvent::Ordered { .. } => "Ordered",
            PlanEvent::Skipped { .. } => "Skipped",
            PlanEvent::Paused { .. } => "Paused",
            PlanEvent::Forgotten { .. } => "Forgotten",
            PlanEvent::ScheduleRemoved { .. } => "ScheduleRemoved",
            PlanEvent::CalendarRemoved { .. } => "CalendarRemoved",
        }
    }

    /// `schedule:<name>` for an event of one schedule, `calendar:<name>`, or `plan`.
    pub fn key(&self) -> String {
        match self {
            PlanEvent::ScheduleDeployed(s) => format!("schedule:{}", s.name),
            PlanEvent::CalendarDeployed(c) => format!("calendar:{}", c.name),
            PlanEvent::Planned { schedule, .. }
            | PlanEvent::Replanned { schedule, .. }
            | PlanEvent::Ordered { schedule, .. }
            | PlanEvent::Skipped { schedule, .. }
            | PlanEvent::Paused { schedule, .. }
            | PlanEvent::ScheduleRemoved { schedule } => format!("schedule:{schedule}"),
            PlanEvent::CalendarRemoved { calendar } => format!("calendar:{calendar}"),
            PlanEvent::Forgotten { .. } => "plan".to_owned(),
        }
    }
}

impl fmt::Display for PlanEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            PlanEvent::ScheduleDeployed(s) => write!(f, " {} → {}", s.name, s.workflow),
            PlanEvent::CalendarDeployed(c) => write!(f, " {}", c.name),
            PlanEvent::Planned {
                schedule,
                until,
                fires,
            } => write!(f, " {schedule}: {} fires until {}", fires.len(), until.0),
            PlanEvent::Replanned { schedule, from } => write!(f, " {schedule} from {}", from.0),
            PlanEvent::Ordered { schedule, at } => write!(f, " {schedule} at {}", at.0),
            PlanEvent::Skipped { schedule, at, why } => {
                write!(f, " {schedule} at {}: {why}", at.0)
            }
            PlanEvent::Paused { schedule, paused } => {
                write!(f, " {schedule}{}", if *paused { "" } else { " resumed" })
            }
            PlanEvent::Forgotten { before } => write!(f, " before {}", before.0),
            PlanEvent::ScheduleRemoved { schedule } => write!(f, " {schedule}"),
            PlanEvent::CalendarRemoved { calendar } => write!(f, " {calendar}"),
        }
    }
}

/// The plan: the fold of the [`PlanEvent`]s.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub schedules: BTreeMap<ScheduleName, SchedulePlan>,
    /// Sorted by name.
    pub calendars: Vec<Calendar>,
}

impl Plan {
    /// Applies one event; an event that does not fit (of a schedule never deployed, say)
    /// changes nothing and says why.
    pub fn apply(&mut self, event: &PlanEvent) -> Result<(), String> {
        match event {
            PlanEvent::ScheduleDeployed(s) => {
                match self.schedules.get_mut(&s.name) {
                    Some(p) => {
                        p.schedule = (**s).clone();
                        p.paused = s.paused;
                    }
                    None => {
                        self.schedules.insert(
                            s.name.clone(),
                            SchedulePlan {
                                schedule: (**s).clone(),
                                paused: s.paused,
                                planned_until: TimeMs(i64::MAX),
                                planned: BTreeMap::new(),
                                decided: BTreeMap::new(),
                            },
                        );
                    }
                }
                Ok(())
            }
            PlanEvent::CalendarDeployed(c) => {
                match self.calendars.binary_search_by(|k| k.name.cmp(&c.name)) {
                    Ok(i) => self.calendars[i] = (**c).clone(),
                    Err(i) => self.calendars.insert(i, (**c).clone()),
                }
                Ok(())
            }
            PlanEvent::Planned {
                schedule,
                until,
                fires,
            } => {
                let p = self.get_mut(schedule)?;
                for f in fires {
                    if !p.decided.contains_key(&f.at) {
                        p.planned.entry(f.at).or_insert(f.offset_seconds);
                    }
                }
                p.planned_until = *until;
                Ok(())
            }
            PlanEvent::Replanned { schedule, from } => {
                let p = self.get_mut(schedule)?;
                p.planned.split_off(from);
                p.planned_until = p.planned_until.min(*from);
                Ok(())
            }
            PlanEvent::Ordered { schedule, at } => self.set(schedule, *at, Status::Ordered),
            PlanEvent::Skipped { schedule, at, why } => {
                self.set(schedule, *at, Status::Skipped(why.clone()))
            }
            PlanEvent::Paused { schedule, paused } => {
                self.get_mut(schedule)?.paused = *paused;
                Ok(())
            }
            PlanEvent::Forgotten { before } => {
                for p in self.schedules.values_mut() {
                    p.decided = p.decided.split_off(before);
                }
                Ok(())
            }
            PlanEvent::ScheduleRemoved { schedule } => self
                .schedules
                .remove(schedule)
                .map(|_| ())
                .ok_or_else(|| format!("schedule {schedule} is not deployed")),
            PlanEvent::CalendarRemoved { calendar } => {
                match self.calendars.binary_search_by(|k| k.name.cmp(calendar)) {
                    Ok(i) => {
                        self.calendars.remove(i);
                        Ok(())
                    }
                    Err(_) => Err(format!("calendar {calendar} is not deployed")),
                }
            }
        }
    }

    fn get_mut(&mut self, schedule: &ScheduleName) -> Result<&mut SchedulePlan, String> {
        self.schedules
            .get_mut(schedule)
            .ok_or_else(|| format!("schedule {schedule} is not deployed"))
    }

    fn set(&mut self, schedule: &ScheduleName, at: TimeMs, status: Status) -> Result<(), String> {
        let p = self.get_mut(schedule)?;
        if status == Status::Planned {
            return Err("an instant is decided, never planned again".into());
        }
        let offset_seconds = match p.planned.remove(&at) {
            Some(o) => o,
            None => match p.decided.get(&at) {
                Some(e) => e.offset_seconds,
                None => {
                    return Err(format!(
                        "schedule {schedule} has nothing planned at {}",
                        at.0
                    ));
                }
            },
        };
        p.decided.insert(
            at,
            Entry {
                offset_seconds,
                status,
            },
        );
        Ok(())
    }

    /// The earliest decided instant of all schedules, if any (for forgetting history).
    pub fn oldest(&self) -> Option<TimeMs> {
        self.schedules
            .values()
            .filter_map(|p| p.decided.keys().next().copied())
            .min()
    }

    /// Expands the plan's schedules with its calendars and time zones from `zones`.
    pub fn expander<'p>(&'p self, zones: &'p dyn Zones) -> Result<PlanExpander<'p>, ExpandError> {
        Ok(PlanExpander {
            plan: self,
            calendars: CalendarSet::new(&self.calendars)?,
            zones,
        })
    }
}

/// Expands single schedules of a [`Plan`].
pub struct PlanExpander<'p> {
    plan: &'p Plan,
    calendars: CalendarSet<'p>,
    zones: &'p dyn Zones,
}

impl PlanExpander<'_> {
    /// The fires of `schedule` in `window`, in order (see [`expand`]).
    pub fn fires(
        &self,
        schedule: &Schedule,
        window: Window,
        limits: &ExpandLimits,
    ) -> Result<Vec<Fire>, ExpandError> {
        let _ = self.plan;
        let tz: TimeZone =
            self.zones
                .zone(&schedule.time_zone)
                .ok_or_else(|| ExpandError::UnknownZone {
                    schedule: schedule.name.to_string(),
                    zone: schedule.time_zone.clone(),
                })?;
        let calendar = match &schedule.calendar {
            None => None,
            Some(c) => Some(self.calendars.index(c.as_str()).ok_or_else(|| {
                ExpandError::UnknownCalendar {
                    schedule: schedule.name.to_string(),
                    calendar: c.to_string(),
                }
            })?),
        };
        let days = |d: Date| calendar.is_none_or(|c| self.calendars.contains(c, d));
        let mut out = Vec::new();
        expand(schedule, 0, &tz, &days, window, limits, &mut out)?;
        Ok(out)
    }
}

/// The instant of a [`TimeMs`], clamped into jiff's range.
pub fn timestamp(t: TimeMs) -> Timestamp {
    Timestamp::from_millisecond(t.0).unwrap_or(if t.0 < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Cron, Missed};

    fn schedule() -> Schedule {
        Schedule {
            name: ScheduleName::new("s").unwrap(),
            workflow: crate::ids::WorkflowName::new("w").unwrap(),
            args: Default::default(),
            time_zone: "UTC".into(),
            cron: vec![Cron::parse("0 * * * *").unwrap()],
            times: vec![],
            repeat: None,
            calendar: None,
            missed: Missed::CatchUp,
            priority: 0,
            paused: false,
        }
    }

    fn fire(at: i64) -> PlannedFire {
        PlannedFire {
            at: TimeMs(at),
            offset_seconds: 0,
        }
    }

    #[test]
    fn the_fold_keeps_a_mark_and_decided_entries_through_a_replan() {
        let name = ScheduleName::new("s").unwrap();
        let mut plan = Plan::default();
        plan.apply(&PlanEvent::ScheduleDeployed(Box::new(schedule())))
            .unwrap();
        assert_eq!(plan.schedules[&name].planned_until, TimeMs(i64::MAX));
        plan.apply(&PlanEvent::Replanned {
            schedule: name.clone(),
            from: TimeMs(0),
        })
        .unwrap();
        plan.apply(&PlanEvent::Planned {
            schedule: name.clone(),
            until: TimeMs(40),
            fires: vec![fire(10), fire(20), fire(30)],
        })
        .unwrap();
        plan.apply(&PlanEvent::Ordered {
            schedule: name.clone(),
            at: TimeMs(20),
        })
        .unwrap();
        plan.apply(&PlanEvent::Replanned {
            schedule: name.clone(),
            from: TimeMs(15),
        })
        .unwrap();
        let p = &plan.schedules[&name];
        assert_eq!(p.planned_until, TimeMs(15));
        let ats = |p: &SchedulePlan| p.entries().iter().map(|(f, _)| f.at).collect::<Vec<_>>();
        assert_eq!(
            ats(p),
            vec![TimeMs(10), TimeMs(20)],
            "the ordered entry stays, the planned one after `from` goes"
        );
        plan.apply(&PlanEvent::Planned {
            schedule: name.clone(),
            until: TimeMs(50),
            fires: vec![fire(20), fire(45)],
        })
        .unwrap();
        assert_eq!(
            plan.schedules[&name].status(TimeMs(20)),
            Some(&Status::Ordered)
        );
        plan.apply(&PlanEvent::Forgotten { before: TimeMs(30) })
            .unwrap();
        assert_eq!(
            ats(&plan.schedules[&name]),
            vec![TimeMs(10), TimeMs(45)],
            "only decided entries are forgotten"
        );
        assert!(
            plan.apply(&PlanEvent::Ordered {
                schedule: name,
                at: TimeMs(99)
            })
            .is_err()
        );
    }

    #[test]
    fn a_removed_schedule_leaves_the_plan_with_its_entries_and_comes_back_afresh() {
        let name = ScheduleName::new("s").unwrap();
        let other = Schedule {
            name: ScheduleName::new("t").unwrap(),
            ..schedule()
        };
        let mut plan = Plan::default();
        for e in [
            PlanEvent::ScheduleDeployed(Box::new(schedule())),
            PlanEvent::ScheduleDeployed(Box::new(other.clone())),
            PlanEvent::Replanned {
                schedule: name.clone(),
                from: TimeMs(0),
            },
            PlanEvent::Planned {
                schedule: name.clone(),
                until: TimeMs(40),
                fires: vec![fire(10), fire(20), fire(30)],
            },
            PlanEvent::Ordered {
                schedule: name.clone(),
                at: TimeMs(10),
            },
            PlanEvent::Skipped {
                schedule: name.clone(),
                at: TimeMs(20),
                why: Skip::Cancelled,
            },
        ] {
            plan.apply(&e).unwrap();
        }
        let removed = PlanEvent::ScheduleRemoved {
            schedule: name.clone(),
        };
        assert_eq!(removed.key(), "schedule:s");
        assert_eq!(removed.to_string(), "ScheduleRemoved s");
        plan.apply(&removed).unwrap();
        assert!(!plan.schedules.contains_key(&name));
        assert!(plan.schedules.contains_key(&other.name), "others stay");
        assert_eq!(plan.oldest(), None, "its decided entries went with it");
        assert!(plan.apply(&removed).is_err(), "removed once");
        assert!(
            plan.apply(&PlanEvent::Ordered {
                schedule: name.clone(),
                at: TimeMs(30)
            })
            .is_err(),
            "nothing of it is left to decide"
        );
        plan.apply(&PlanEvent::ScheduleDeployed(Box::new(schedule())))
            .unwrap();
        let p = &plan.schedules[&name];
        assert_eq!(p.planned_until, TimeMs(i64::MAX));
        assert!(p.entries().is_empty(), "deployed again, it starts afresh");
    }

    #[test]
    fn a_removed_calendar_leaves_the_plan() {
        use crate::schedule::calendar::Days;
        let calendar = |name: &str| Calendar {
            name: CalendarName::new(name).unwrap(),
            include: Days::default(),
            exclude: Days::default(),
            from: None,
            to: None,
        };
        let mut plan = Plan::default();
        for n in ["b", "a"] {
            plan.apply(&PlanEvent::CalendarDeployed(Box::new(calendar(n))))
                .unwrap();
        }
        let removed = PlanEvent::CalendarRemoved {
            calendar: CalendarName::new("a").unwrap(),
        };
        assert_eq!(removed.key(), "calendar:a");
        plan.apply(&removed).unwrap();
        assert_eq!(plan.calendars, vec![calendar("b")]);
        assert!(plan.apply(&removed).is_err());
    }

    #[test]
    fn planned_fires_give_the_ids_of_the_issue() {
        let f = PlannedFire {
            at: TimeMs(
                "2026-11-23T01:30:00Z"
                    .parse::<Timestamp>()
                    .unwrap()
                    .as_millisecond(),
            ),
            offset_seconds: 3600,
        };
        assert_eq!(
            f.order_id(&ScheduleName::new("nightly").unwrap())
                .unwrap()
                .as_str(),
            "#2026-11-23#nightly@02:30:00+01:00"
        );
    }
}
