//! Calendars: sets of local dates, built from weekdays, days of the month, dates, date ranges
//! and other calendars, minus exclusions.
//!
//! A date is in a calendar when it lies within the calendar's `from`..=`to` (both optional,
//! both inclusive), matches one of its inclusion rules (a calendar without any includes every
//! date) and matches none of its exclusion rules: exclusions win. A rule matches a date when
//! its weekday is listed, its day of the month is listed (`-1` is the last day of the month,
//! `-2` the one before), the date is listed, it lies in a listed range (inclusive at both
//! ends), or it is in a listed calendar.
//!
//! Calendars refer to each other by name; [`CalendarSet`] resolves the names once, refuses
//! unknown names and cycles, and bounds the nesting by [`CALENDAR_DEPTH_MAX`].

use super::cron::weekday_bit;
use crate::ids::CalendarName;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Deepest chain of calendars including or excluding each other.
pub const CALENDAR_DEPTH_MAX: usize = 16;

/// A named set of dates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calendar {
    pub name: CalendarName,
    /// The first date the calendar can hold.
    pub from: Option<Date>,
    /// The last date the calendar can hold.
    pub to: Option<Date>,
    /// Dates the calendar holds; when no rule is given, every date.
    pub include: Days,
    /// Dates it does not hold, whatever `include` says.
    pub exclude: Days,
}

/// Rules that match dates; a date matches when any rule does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Days {
    /// Bits 0..=6, Sunday = 0.
    pub weekdays: u8,
    /// 1..=31 from the start of the month, -1..=-31 from its end (-1 = the last day).
    pub month_days: Vec<i8>,
    pub dates: Vec<Date>,
    pub ranges: Vec<DateRange>,
    pub calendars: Vec<CalendarName>,
}

/// The dates from `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    pub from: Date,
    pub to: Date,
}

impl Days {
    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        self.weekdays == 0
            && self.month_days.is_empty()
            && self.dates.is_empty()
            && self.ranges.is_empty()
            && self.calendars.is_empty()
    }

    /// Whether a rule other than a calendar matches.
    pub(crate) fn matches_own(&self, date: Date) -> bool {
        if self.weekdays & (1 << weekday_bit(date.weekday())) != 0 {
            return true;
        }
        if !self.month_days.is_empty() {
            let day = date.day();
            let from_end = day - date.days_in_month() - 1;
            if self.month_days.iter().any(|d| *d == day || *d == from_end) {
                return true;
            }
        }
        self.dates.contains(&date) || self.ranges.iter().any(|r| (r.from..=r.to).contains(&date))
    }
}

/// Why calendars cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar `{0}` is defined twice")]
    Duplicate(String),
    #[error("calendar `{from}` refers to the unknown calendar `{to}`")]
    Unknown { from: String, to: String },
    #[error("calendar `{}` refers to itself: {}", .0[0], .0.join(" → "))]
    Cycle(Vec<String>),
    #[error(
        "calendars nest more than {CALENDAR_DEPTH_MAX} deep: {}",
        .0.join(" → ")
    )]
    TooDeep(Vec<String>),
}

/// Calendars with their references resolved to indices: acyclic and at most
/// [`CALENDAR_DEPTH_MAX`] deep, so [`CalendarSet::contains`] always ends.
#[derive(Debug, Clone)]
pub struct CalendarSet<'c> {
    calendars: Vec<&'c Calendar>,
    by_name: BTreeMap<&'c str, usize>,
    include: Vec<Vec<usize>>,
    exclude: Vec<Vec<usize>>,
}

impl<'c> CalendarSet<'c> {
    pub fn new(calendars: &'c [Calendar]) -> Result<CalendarSet<'c>, CalendarError> {
        let mut by_name = BTreeMap::new();
        for (i, c) in calendars.iter().enumerate() {
            if by_name.insert(c.name.as_str(), i).is_some() {
                return Err(CalendarError::Duplicate(c.name.to_string()));
            }
        }
        let resolve = |c: &Calendar, names: &[CalendarName]| -> Result<Vec<usize>, CalendarError> {
            names
                .iter()
                .map(|n| {
                    by_name
                        .get(n.as_str())
                        .copied()
                        .ok_or_else(|| CalendarError::Unknown {
                            from: c.name.to_string(),
                            to: n.to_string(),
                        })
                })
                .collect()
        };
        let mut include = Vec::with_capacity(calendars.len());
        let mut exclude = Vec::with_capacity(calendars.len());
        for c in calendars {
            include.push(resolve(c, &c.include.calendars)?);
            exclude.push(resolve(c, &c.exclude.calendars)?);
        }
        let set = CalendarSet {
            calendars: calendars.iter().collect(),
            by_name,
            include,
            exclude,
        };
        set.check_nesting()?;
        Ok(set)
    }

    /// Finds cycles and chains deeper than [`CALENDAR_DEPTH_MAX`], depth first with an explicit
    /// stack; each calendar is finished once.
    fn check_nesting(&self) -> Result<(), CalendarError> {
        let n = self.calendars.len();
        // 0 = unseen, 1 = on the path, 2 = done; `height` = longest chain below, itself included.
        let mut mark = vec![0u8; n];
        let mut height = vec![0usize; n];
        for root in 0..n {
            if mark[root] != 0 {
                continue;
            }
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            mark[root] = 1;
            while let Some(top) = path.last_mut() {
                let (node, next) = *top;
                top.1 += 1;
                let refs = self.refs(node);
                if let Some(&child) = refs.get(next) {
                    match mark[child] {
                        0 => {
                            if path.len() >= CALENDAR_DEPTH_MAX {
                                let mut names = self.names(&path);
                                names.push(self.calendars[child].name.to_string());
                                return Err(CalendarError::TooDeep(names));
                            }
                            mark[child] = 1;
                            path.push((child, 0));
                        }
                        1 => {
                            let start = path.iter().position(|(p, _)| *p == child).unwrap_or(0);
                            let mut names = self.names(&path[start..]);
                            names.push(self.calendars[child].name.to_string());
                            return Err(CalendarError::Cycle(names));
                        }
                        _ => {
                            if path.len() + height[child] > CALENDAR_DEPTH_MAX {
                                let mut names = self.names(&path);
                                names.push(self.calendars[child].name.to_string());
                                return Err(CalendarError::TooDeep(names));
                            }
                        }
                    }
                } else {
                    height[node] = 1 + refs.iter().map(|c| height[*c]).max().unwrap_or(0);
                    mark[node] = 2;
                    path.pop();
                }
            }
        }
        Ok(())
    }

    fn refs(&self, i: usize) -> Vec<usize> {
        self.include[i]
            .iter()
            .chain(&self.exclude[i])
            .copied()
            .collect()
    }

    fn names(&self, path: &[(usize, usize)]) -> Vec<String> {
        path.iter()
            .map(|(i, _)| self.calendars[*i].name.to_string())
            .collect()
    }

    /// The index of a calendar by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn calendar(&self, index: usize) -> &'c Calendar {
        self.calendars[index]
    }

    /// Whether the calendar at `index` holds `date`.
    pub fn contains(&self, index: usize, date: Date) -> bool {
        let c = self.calendars[index];
        if c.from.is_some_and(|f| date < f) || c.to.is_some_and(|t| date > t) {
            return false;
        }
        let included = c.include.is_empty()
            || c.include.matches_own(date)
            || self.include[index].iter().any(|i| self.contains(*i, date));
        included
            && !(c.exclude.matches_own(date)
                || self.exclude[index].iter().any(|i| self.contains(*i, date)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn cal(name: &str, include: Days, exclude: Days) -> Calendar {
        Calendar {
            name: CalendarName::new(name).unwrap(),
            from: None,
            to: None,
            include,
            exclude,
        }
    }

    fn names(n: &[&str]) -> Vec<CalendarName> {
        n.iter().map(|s| CalendarName::new(*s).unwrap()).collect()
    }

    #[test]
    fn rules_combine_and_exclusions_win() {
        let holidays = cal(
            "holidays",
            Days {
                dates: vec![date(2026, 12, 25), date(2026, 12, 26)],
                ..Days::default()
            },
            Days::default(),
        );
        let business = cal(
            "business",
            Days {
                weekdays: 0b0011_1110,
                ..Days::default()
            },
            Days {
                calendars: names(&["holidays"]),
                ranges: vec![DateRange {
                    from: date(2026, 12, 28),
                    to: date(2026, 12, 31),
                }],
                ..Days::default()
            },
        );
        let ends = cal(
            "ends",
            Days {
                month_days: vec![-1, 1],
                ..Days::default()
            },
            Days::default(),
        );
        let all = [holidays, business, ends];
        let set = CalendarSet::new(&all).unwrap();
        let b = set.index("business").unwrap();
        assert!(set.contains(b, date(2026, 12, 24))); // Thursday
        assert!(!set.contains(b, date(2026, 12, 25))); // holiday, Friday
        assert!(!set.contains(b, date(2026, 12, 27))); // Sunday
        assert!(!set.contains(b, date(2026, 12, 29))); // excluded range
        let e = set.index("ends").unwrap();
        assert!(set.contains(e, date(2028, 2, 29)));
        assert!(!set.contains(e, date(2028, 2, 28)));
        assert!(set.contains(e, date(2027, 2, 28)));
        assert!(set.contains(e, date(2027, 3, 1)));
    }

    #[test]
    fn cycles_unknown_names_and_depth_are_refused() {
        let a = cal(
            "a",
            Days {
                calendars: names(&["b"]),
                ..Days::default()
            },
            Days::default(),
        );
        let b = cal(
            "b",
            Days::default(),
            Days {
                calendars: names(&["a"]),
                ..Days::default()
            },
        );
        let err = CalendarSet::new(&[a.clone(), b]).unwrap_err();
        assert_eq!(err.to_string(), "calendar `a` refers to itself: a → b → a");
        assert!(matches!(
            CalendarSet::new(std::slice::from_ref(&a)),
            Err(CalendarError::Unknown { .. })
        ));
        let chain: Vec<Calendar> = (0..=CALENDAR_DEPTH_MAX)
            .map(|i| {
                let refs = if i < CALENDAR_DEPTH_MAX {
                    names(&[&format!("c{}", i + 1)])
                } else {
                    Vec::new()
                };
                cal(
                    &format!("c{i}"),
                    Days {
                        calendars: refs,
                        ..Days::default()
                    },
                    Days::default(),
                )
            })
            .collect();
        assert!(matches!(
            CalendarSet::new(&chain),
            Err(CalendarError::TooDeep(_))
        ));
        assert!(CalendarSet::new(&chain[1..]).is_ok());
    }
}
