//! Schedule expansion against an independent oracle.
//!
//! Random schedules (cron expressions built from random field sets, times of day, repeats, a
//! weekday calendar with excluded dates) in random time zones are written as YAML, read by the
//! validator and expanded over windows around changes of the UTC offset. The oracle knows the
//! field sets directly (it parses nothing) and walks every minute of real time from two days
//! before the window, applying the documented policy to the wall clock it sees:
//!
//! - an interval rule fires at every minute whose wall time it matches;
//! - a fixed wall time fires the first time the wall clock shows it, or, when the clock jumps
//!   over it, at the minute of the jump; never twice;
//! - only instants in `[from, until)` count, each once.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use ordo_model::schedule::{BundledZones, ExpandLimits, Expander, Window, Zones, order_id};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use proptest::prelude::*;
use std::collections::BTreeSet;

const ZONES: [&str; 12] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe", // 30-minute changes
    "Asia/Kathmandu",      // +05:45
    "America/Santiago",
    "America/Havana", // changes at midnight
    "Pacific/Chatham",
    "Europe/Dublin", // negative DST in the database
    "America/St_Johns",
    "Africa/Casablanca",
    "Asia/Tehran",
    "UTC",
];

/// One cron field: `*`, `*/step` or a list of values.
#[derive(Debug, Clone)]
enum Field {
    Star,
    Step(u8),
    List(Vec<u8>),
}

impl Field {
    fn text(&self) -> String {
        match self {
            Field::Star => "*".into(),
            Field::Step(s) => format!("*/{s}"),
            Field::List(v) => v.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
        }
    }

    fn starred(&self) -> bool {
        !matches!(self, Field::List(_))
    }

    /// Whether `v` is in the field; `min` is the field's lowest value.
    fn has(&self, v: u8, min: u8) -> bool {
        match self {
            Field::Star => true,
            Field::Step(s) => (v - min).is_multiple_of(*s),
            Field::List(l) => l.contains(&v),
        }
    }
}

fn field(min: u8, max: u8, steps: u8) -> impl Strategy<Value = Field> {
    prop_oneof![
        1 => Just(Field::Star),
        1 => (2..=steps).prop_map(Field::Step),
        3 => prop::collection::vec(min..=max, 1..4).prop_map(Field::List),
    ]
}

#[derive(Debug, Clone)]
struct CronSpec {
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

impl CronSpec {
    fn text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.minute.text(),
            self.hour.text(),
            self.dom.text(),
            self.month.text(),
            self.dow.text()
        )
    }

    fn interval(&self) -> bool {
        self.minute.starred() || self.hour.starred()
    }

    /// Vixie cron, written again here.
    fn matches(&self, w: DateTime) -> bool {
        let dom = self.dom.has(w.day() as u8, 1);
        let dow = self.dow.has(w.weekday().to_sunday_zero_offset() as u8, 0);
        let day = if self.dom.starred() || self.dow.starred() {
            dom && dow
        } else {
            dom || dow
        };
        day && self.month.has(w.month() as u8, 1)
            && self.hour.has(w.hour() as u8, 0)
            && self.minute.has(w.minute() as u8, 0)
    }
}

fn cron_spec() -> impl Strategy<Value = CronSpec> {
    (
        field(0, 59, 30),
        field(0, 23, 12),
        // Days up to 28 and any month: every combination can fire.
        field(1, 28, 10),
        prop_oneof![3 => Just(Field::Star), 1 => field(1, 12, 6)],
        field(0, 6, 3),
    )
        .prop_map(|(minute, hour, dom, month, dow)| CronSpec {
            minute,
            hour,
            dom,
            month,
            dow,
        })
}

#[derive(Debug, Clone)]
struct RepeatSpec {
    every_min: u32,
    from_min: u32,
    until_min: Option<u32>,
}

impl RepeatSpec {
    fn matches(&self, w: DateTime) -> bool {
        let m = u32::from(w.hour() as u8) * 60 + u32::from(w.minute() as u8);
        m >= self.from_min
            && self.until_min.is_none_or(|u| m < u)
            && (m - self.from_min).is_multiple_of(self.every_min)
    }
}

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[derive(Debug, Clone)]
struct Case {
    zone: &'static str,
    crons: Vec<CronSpec>,
    /// Minutes of the day.
    times: Vec<u32>,
    repeat: Option<RepeatSpec>,
    /// Weekdays the calendar holds (bits, Sunday = 0), and dates it excludes (days after the
    /// window's first date); `None`: no calendar.
    calendar: Option<(u8, Vec<u8>)>,
    /// Hours between a change of the zone's offset and the window's start, and its length.
    lead_h: i64,
    len_h: i64,
    /// Which change: the first after this many days into 2024.
    day: i64,
    /// Fixed times this many minutes from the wall time at which the offset changes (so that
    /// gaps and folds are hit often); the first one is also written as a cron.
    near: Vec<i16>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(&ZONES[..]),
        prop::collection::vec(cron_spec(), 0..3),
        prop::collection::vec(0u32..1440, 0..3),
        prop::option::of((7u32..240, 0u32..1440, prop::option::of(1u32..=1440))),
        prop::option::of((1u8..128, prop::collection::vec(0u8..6, 0..3))),
        0i64..40,
        1i64..72,
        0i64..(365 * 6),
        prop::collection::vec(-120i16..120, 0..3),
    )
        .prop_filter_map(
            "a schedule needs a rule",
            |(zone, crons, times, repeat, calendar, lead_h, len_h, day, near)| {
                let repeat = repeat.and_then(|(every_min, from_min, until)| {
                    let until_min = until.filter(|u| *u > from_min);
                    (until.is_none() || until_min.is_some()).then_some(RepeatSpec {
                        every_min,
                        from_min,
                        until_min,
                    })
                });
                let rules = crons.len() + times.len() + near.len();
                (rules > 0 || repeat.is_some()).then_some(Case {
                    zone,
                    crons,
                    times,
                    repeat,
                    calendar,
                    lead_h,
                    len_h,
                    day,
                    near,
                })
            },
        )
}

impl Case {
    fn change(&self, tz: &TimeZone) -> Timestamp {
        let probe = Timestamp::from_second(1_704_067_200 + self.day * 86_400).unwrap();
        tz.following(probe).next().map_or(probe, |t| t.timestamp())
    }

    /// Every fixed time of day, in minutes: `times` and those near the change.
    fn all_times(&self, tz: &TimeZone) -> Vec<u32> {
        let minute = SignedDuration::from_mins(1);
        let at_change = tz.to_datetime(self.change(tz) - minute) + minute;
        let mut all = self.times.clone();
        for k in &self.near {
            let w = at_change + SignedDuration::from_mins(i64::from(*k));
            all.push(w.hour() as u32 * 60 + w.minute() as u32);
        }
        all
    }

    /// The cron written for the first time near the change.
    fn near_cron(&self, tz: &TimeZone) -> Option<CronSpec> {
        let first = *self.all_times(tz).get(self.times.len())?;
        Some(CronSpec {
            minute: Field::List(vec![(first % 60) as u8]),
            hour: Field::List(vec![(first / 60) as u8]),
            dom: Field::Star,
            month: Field::Star,
            dow: Field::Star,
        })
    }

    fn window(&self, tz: &TimeZone) -> Window {
        let from = self.change(tz) - SignedDuration::from_hours(self.lead_h);
        Window {
            from,
            until: from + SignedDuration::from_hours(self.len_h),
        }
    }

    fn excluded(&self, first: Date) -> Vec<Date> {
        self.calendar.as_ref().map_or(Vec::new(), |(_, days)| {
            days.iter()
                .map(|d| {
                    first
                        .checked_add(jiff::Span::new().days(i64::from(*d)))
                        .unwrap()
                })
                .collect()
        })
    }

    fn yaml(&self, tz: &TimeZone, window: Window) -> String {
        let mut y = String::from(
            "workflow: w\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n---\nschedule: s\nworkflow: w\n",
        );
        y += &format!("timeZone: {}\n", self.zone);
        let crons: Vec<CronSpec> = self
            .crons
            .iter()
            .cloned()
            .chain(self.near_cron(tz))
            .collect();
        if !crons.is_empty() {
            y += "cron:\n";
            for c in &crons {
                y += &format!("  - \"{}\"\n", c.text());
            }
        }
        let times = self.all_times(tz);
        if !times.is_empty() {
            let t: Vec<String> = times.iter().map(|m| format!("\"{}\"", hhmm(*m))).collect();
            y += &format!("times: [{}]\n", t.join(", "));
        }
        if let Some(r) = &self.repeat {
            y += &format!(
                "repeat: {{ every: {}m, from: \"{}\"",
                r.every_min,
                hhmm(r.from_min)
            );
            if let Some(u) = r.until_min {
                // 24:00 is written as the end of the day: no `until`.
                if u < 1440 {
                    y += &format!(", until: \"{}\"", hhmm(u));
                }
            }
            y += " }\n";
        }
        if let Some((weekdays, _)) = &self.calendar {
            y += "calendar: c\n---\ncalendar: c\nweekdays: [";
            let names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
            let days: Vec<&str> = (0..7)
                .filter(|d| weekdays & (1 << d) != 0)
                .map(|d| names[d])
                .collect();
            y += &days.join(", ");
            y += "]\n";
            let first = tz.to_datetime(window.from).date();
            let excluded = self.excluded(first);
            if !excluded.is_empty() {
                let d: Vec<String> = excluded.iter().map(Date::to_string).collect();
                y += &format!("exclude: {{ dates: [{}] }}\n", d.join(", "));
            }
        }
        y
    }

    fn holds(&self, date: Date, excluded: &[Date]) -> bool {
        match &self.calendar {
            None => true,
            Some((weekdays, _)) => {
                weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0
                    && !excluded.contains(&date)
            }
        }
    }

    /// `times` are all fixed times of day, the near ones included.
    fn fixed(&self, w: DateTime, excluded: &[Date], times: &[u32]) -> bool {
        self.holds(w.date(), excluded)
            && (times.contains(&(u32::from(w.hour() as u8) * 60 + u32::from(w.minute() as u8)))
                || self.crons.iter().any(|c| !c.interval() && c.matches(w)))
    }

    fn interval(&self, w: DateTime, excluded: &[Date]) -> bool {
        self.holds(w.date(), excluded)
            && (self.crons.iter().any(|c| c.interval() && c.matches(w))
                || self.repeat.as_ref().is_some_and(|r| r.matches(w)))
    }

    /// Walks every minute from two days before the window to its end.
    fn oracle(&self, tz: &TimeZone, window: Window) -> BTreeSet<Timestamp> {
        let excluded = self.excluded(tz.to_datetime(window.from).date());
        let times = self.all_times(tz);
        let minute = SignedDuration::from_mins(1);
        let mut t = window.from - SignedDuration::from_hours(48);
        let mut prev = tz.to_datetime(t - minute);
        let mut shown: BTreeSet<DateTime> = BTreeSet::new();
        let mut out = BTreeSet::new();
        while t < window.until {
            let wall = tz.to_datetime(t);
            let mut fire = self.interval(wall, &excluded);
            // The wall times the clock jumped over, and the one it shows.
            let mut w = prev + minute;
            if wall < w {
                w = wall; // the clock went back: only what it shows now
            }
            while w <= wall {
                if self.fixed(w, &excluded, &times) && shown.insert(w) {
                    fire = true;
                }
                w += minute;
            }
            if fire && t >= window.from {
                out.insert(t);
            }
            prev = wall;
            t += minute;
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn expansion_matches_the_minute_walking_oracle(c in case()) {
        let tz = BundledZones.zone(c.zone).unwrap();
        let window = c.window(&tz);
        let yaml = c.yaml(&tz, window);
        let inv = match parse_inventory(&[SourceFile::new("case.yaml", yaml.clone())], &Limits::default()) {
            Ok(inv) => inv,
            Err(d) => panic!("{yaml}\n{d:#?}"),
        };
        let expander = Expander::new(&inv, &BundledZones).unwrap();
        let fires = expander.fires(window, &ExpandLimits::default()).unwrap();
        let got: Vec<Timestamp> = fires.iter().map(|f| f.instant).collect();
        let want: Vec<Timestamp> = c.oracle(&tz, window).into_iter().collect();
        let show = |v: &[Timestamp]| -> Vec<String> {
            v.iter().map(|t| t.to_zoned(tz.clone()).to_string()).collect()
        };
        prop_assert_eq!(show(&got), show(&want), "{}\nwindow {:?}", yaml, window);
        let mut ids = BTreeSet::new();
        for f in &fires {
            prop_assert_eq!(f.offset, tz.to_offset(f.instant));
            let id = order_id("s", f).unwrap();
            prop_assert!(ids.insert(id.to_string()), "id {} twice", id);
        }
    }
}

/// The documented examples, written out.
#[test]
fn the_documented_policy_holds_in_berlin() {
    let yaml = "workflow: w\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n---\nschedule: nightly\nworkflow: w\ntimeZone: Europe/Berlin\ncron: \"30 2 * * *\"\n---\nschedule: quarter\nworkflow: w\ntimeZone: Europe/Berlin\ncron: \"*/15 2 * * *\"\n";
    let inv = parse_inventory(&[SourceFile::new("b.yaml", yaml)], &Limits::default()).unwrap();
    let e = Expander::new(&inv, &BundledZones).unwrap();
    let lines = |from: &str, until: &str| -> Vec<String> {
        let window = Window {
            from: from.parse().unwrap(),
            until: until.parse().unwrap(),
        };
        e.fires(window, &ExpandLimits::default())
            .unwrap()
            .iter()
            .map(|f| format!("{} {}", f.rfc3339(), e.order_id(f).unwrap()))
            .collect()
    };
    // Spring forward: 02:30 does not exist; the fixed schedule fires at 03:00, the
    // interval one not at all.
    assert_eq!(
        lines("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        vec!["2026-03-29T03:00:00+02:00 #2026-03-29#nightly@03:00:00+02:00"]
    );
    // Fall back: 02:xx happens twice; the fixed one fires at the first, the interval one at
    // both.
    assert_eq!(
        lines("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
        vec![
            "2026-10-25T02:00:00+02:00 #2026-10-25#quarter@02:00:00+02:00",
            "2026-10-25T02:15:00+02:00 #2026-10-25#quarter@02:15:00+02:00",
            "2026-10-25T02:30:00+02:00 #2026-10-25#nightly@02:30:00+02:00",
            "2026-10-25T02:30:00+02:00 #2026-10-25#quarter@02:30:00+02:00",
            "2026-10-25T02:45:00+02:00 #2026-10-25#quarter@02:45:00+02:00",
            "2026-10-25T02:00:00+01:00 #2026-10-25#quarter@02:00:00+01:00",
            "2026-10-25T02:15:00+01:00 #2026-10-25#quarter@02:15:00+01:00",
            "2026-10-25T02:30:00+01:00 #2026-10-25#quarter@02:30:00+01:00",
            "2026-10-25T02:45:00+01:00 #2026-10-25#quarter@02:45:00+01:00",
        ]
    );
}

#[test]
fn arguments_are_rendered_with_the_plan_variables() {
    let yaml = "workflow: w\nparameters: { day: {}, at: {}, label: {} }\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n---\nschedule: s\nworkflow: w\ntimeZone: America/New_York\ntimes: [\"23:30\"]\nargs: { day: $date, at: $scheduledFor, label: \"run of $schedule at $time\" }\n";
    let inv = parse_inventory(&[SourceFile::new("a.yaml", yaml)], &Limits::default()).unwrap();
    let e = Expander::new(&inv, &BundledZones).unwrap();
    let window = Window {
        from: "2026-11-23T12:00:00Z".parse().unwrap(),
        until: "2026-11-24T12:00:00Z".parse().unwrap(),
    };
    let fires = e.fires(window, &ExpandLimits::default()).unwrap();
    assert_eq!(fires.len(), 1);
    let args = e.args(&fires[0]).unwrap();
    let text = |k: &str| args[k].to_string();
    assert_eq!(text("day"), "2026-11-23");
    assert_eq!(text("at"), "2026-11-23T23:30:00-05:00");
    assert_eq!(text("label"), "run of s at 23:30:00");
    assert_eq!(fires[0].time_ms().0, 1_795_494_600_000);
}

#[test]
fn paused_schedules_and_calendars_shape_the_plan() {
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/schedules.yaml"),
    )
    .unwrap();
    let mut files = vec![SourceFile::new("schedules.yaml", yaml)];
    for name in ["etl.yaml", "maintenance.yaml", "report.yaml", "agents.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/examples")
            .join(name);
        files.push(SourceFile::new(
            name,
            std::fs::read_to_string(path).unwrap(),
        ));
    }
    let inv = parse_inventory(&files, &Limits::default()).unwrap();
    let e = Expander::new(&inv, &BundledZones).unwrap();
    // Thursday 2026-12-24 to Monday 2027-01-04: the office is closed until the 31st, the 1st
    // is a holiday, the 2nd and 3rd a weekend.
    let window = Window {
        from: "2026-12-24T00:00:00+01:00".parse().unwrap(),
        until: "2027-01-05T00:00:00+01:00".parse().unwrap(),
    };
    let fires = e.fires(window, &ExpandLimits::default()).unwrap();
    let nightly: Vec<String> = fires
        .iter()
        .filter(|f| inv.schedules[f.schedule as usize].name.as_str() == "nightly")
        .map(|f| f.rfc3339())
        .collect();
    assert_eq!(nightly, vec!["2027-01-04T02:30:00+01:00"]);
    let checks = fires
        .iter()
        .filter(|f| inv.schedules[f.schedule as usize].name.as_str() == "maintenance-checks")
        .count();
    assert_eq!(checks, 48, "07:00 to 19:00 every 15 minutes on the 4th");
    assert!(
        fires
            .iter()
            .all(|f| inv.schedules[f.schedule as usize].name.as_str() != "month-end-report"),
        "a paused schedule adds no orders"
    );
    // Its fires are there when asked for by index.
    let paused = inv
        .schedules
        .iter()
        .position(|s| s.name.as_str() == "month-end-report")
        .unwrap();
    let mut out = Vec::new();
    e.fires_of(paused, window, &ExpandLimits::default(), &mut out)
        .unwrap();
    let got: Vec<String> = out.iter().map(|f| f.rfc3339()).collect();
    assert_eq!(got, vec!["2026-12-31T18:00:00-05:00"]);
}
