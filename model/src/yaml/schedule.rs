//! Schedules and calendars (see [`crate::schedule`] for what they mean).

use super::diag::{Diags, Pos, Severity};
use super::node::{Kind, Node};
use super::read::{Cx, Fields, closest};
use super::refs::{DefKind, Defs, RefKind, Refs};
use super::spec;
use super::workflow::{VarsOf, vars};
use crate::expr::{Expr, Template, TemplatePart};
use crate::ids::{CalendarName, ScheduleName, WorkflowName};
use crate::inventory::Inventory;
use crate::schedule::{
    Calendar, CalendarError, CalendarSet, Cron, DateRange, Days, Expander, Missed, PLAN_VARIABLES,
    Repeat, Schedule, Zones,
};
use jiff::civil::{Date, Time};

/// Longest list in a calendar or schedule (dates, ranges, cron expressions, times, ...).
pub(crate) const LIST_ITEMS_MAX: usize = 10_000;

pub(crate) fn schedule(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    defs: &mut Defs,
    refs: &mut Refs,
    zones: &dyn Zones,
) -> Option<Schedule> {
    let name_node = f.get("schedule")?;
    let name = cx.name(name_node, "`schedule`", ScheduleName::new);
    if let Some(n) = &name {
        defs.schedule(cx.file, n.as_str(), name_node.pos);
    }
    let args = match f.get("args") {
        None => Some(Default::default()),
        Some(n) => vars(cx, n, "args", VarsOf::NewOrder).filter(|a| {
            let mut ok = true;
            if let Kind::Map(entries) = &n.kind {
                for (k, v) in entries {
                    let key = k.scalar().map_or("", |s| s.text.as_str());
                    if let Some(t) = a.get(key) {
                        ok &= plan_variables_only(cx, v, key, t);
                    }
                }
            }
            ok
        }),
    };
    let workflow = f.get("workflow").and_then(|n| {
        let w = cx.name(n, "`workflow`", WorkflowName::new)?;
        // The names passed, read leniently: a bad value is reported where it is.
        let passed = match f.get("args").map(|n| &n.kind) {
            Some(Kind::Map(entries)) => entries
                .iter()
                .filter_map(|(k, _)| k.scalar().map(|s| s.text.clone()))
                .collect(),
            _ => Vec::new(),
        };
        refs.add_order(cx.file, w.as_str(), n.pos, passed);
        Some(w)
    });
    let time_zone = match f.get("timeZone") {
        None => Some("UTC".to_owned()),
        Some(n) => time_zone(cx, n, zones),
    };
    let cron = match f.get("cron") {
        None => Some(Vec::new()),
        Some(n) => one_or_list(cx, n, "`cron`")
            .and_then(|items| collect(items.iter().map(|i| cron(cx, i)))),
    };
    let times = match f.get("times") {
        None => Some(Vec::new()),
        Some(n) => one_or_list(cx, n, "`times`")
            .and_then(|items| collect(items.iter().map(|i| time_of_day(cx, i, "`times`")))),
    };
    let repeat = match f.get("repeat") {
        None => Some(None),
        Some(n) => repeat(cx, n).map(Some),
    };
    let calendar = f.get("calendar").map(|n| {
        let c = cx.name(n, "`calendar`", CalendarName::new)?;
        refs.add(cx.file, RefKind::Calendar, c.as_str(), n.pos);
        Some(c)
    });
    let missed = match f.get("missed") {
        None => Some(Missed::default()),
        Some(n) => match cx.text(n, "`missed`").as_deref() {
            Some("catch-up") => Some(Missed::CatchUp),
            Some("latest") => Some(Missed::Latest),
            Some("skip") => Some(Missed::Skip),
            Some(other) => {
                cx.err(
                    n.pos,
                    format!("`missed` must be catch-up, latest or skip, not {other:?}"),
                );
                None
            }
            None => None,
        },
    };
    let priority = match f.get("priority") {
        None => Some(0),
        Some(n) => cx
            .int(n, "`priority`", -spec::PRIORITY_MAX, spec::PRIORITY_MAX)
            .and_then(|v| i32::try_from(v).ok()),
    };
    let paused = match f.get("paused") {
        None => Some(false),
        Some(n) => cx.bool(n, "`paused`"),
    };
    if ["cron", "times", "repeat"]
        .iter()
        .all(|k| f.get(k).is_none())
    {
        cx.err(
            f.pos,
            "a schedule needs `cron`, `times` or `repeat` to say when it fires",
        );
        return None;
    }
    Some(Schedule {
        name: name?,
        workflow: workflow?,
        args: args?,
        time_zone: time_zone?,
        cron: cron?,
        times: times?,
        repeat: repeat?,
        calendar: match calendar {
            None => None,
            Some(c) => Some(c?),
        },
        missed: missed?,
        priority: priority?,
        paused: paused?,
    })
}

/// `Some` of every item, or `None` when any is `None` (after reading them all).
fn collect<T>(items: impl Iterator<Item = Option<T>>) -> Option<Vec<T>> {
    let all: Vec<Option<T>> = items.collect();
    all.into_iter().collect()
}

/// The items of a value that may be one item or a non-empty list of them.
fn one_or_list<'n>(cx: &mut Cx<'_>, node: &'n Node, label: &str) -> Option<Vec<&'n Node>> {
    match &node.kind {
        Kind::Seq(items) if items.is_empty() => {
            cx.err(node.pos, format!("{label} needs at least one item"));
            None
        }
        Kind::Seq(items) => bounded(cx, node, label, items),
        Kind::Scalar(_) => Some(vec![node]),
        _ => {
            cx.err(
                node.pos,
                format!("{label} must be a value or a list, not {}", node.describe()),
            );
            None
        }
    }
}

fn bounded<'n>(
    cx: &mut Cx<'_>,
    node: &'n Node,
    label: &str,
    items: &'n [Node],
) -> Option<Vec<&'n Node>> {
    if items.len() > LIST_ITEMS_MAX {
        cx.err(
            node.pos,
            format!(
                "{label} has {} items; at most {LIST_ITEMS_MAX} are allowed",
                items.len()
            ),
        );
        return None;
    }
    Some(items.iter().collect())
}

fn list<'n>(cx: &mut Cx<'_>, node: &'n Node, label: &str, what: &str) -> Option<Vec<&'n Node>> {
    let items = cx.list(node, label, what)?;
    if items.is_empty() {
        cx.err(node.pos, format!("{label} needs at least one item"));
        return None;
    }
    bounded(cx, node, label, items)
}

/// An argument template may read only the plan variables.
fn plan_variables_only(cx: &mut Cx<'_>, node: &Node, key: &str, t: &Template) -> bool {
    let mut names = Vec::new();
    for part in &t.parts {
        if let TemplatePart::Expr(e) = part {
            variables(e, &mut names);
        }
    }
    let mut ok = true;
    for n in names {
        if !PLAN_VARIABLES.contains(&n.as_str()) {
            cx.err(
                node.pos,
                format!(
                    "`args.{key}` reads ${n}; a schedule's arguments may read only {}",
                    PLAN_VARIABLES.map(|v| format!("${v}")).join(", ")
                ),
            );
            ok = false;
        }
    }
    ok
}

fn variables(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Literal(_) => {}
        Expr::Var(n) => out.push(n.clone()),
        Expr::List(items) | Expr::Call(_, items) => items.iter().for_each(|i| variables(i, out)),
        Expr::Not(x) | Expr::Neg(x) | Expr::Field(x, _) => variables(x, out),
        Expr::Binary(_, a, b) | Expr::Index(a, b) => {
            variables(a, out);
            variables(b, out);
        }
        Expr::Variable(v) => {
            out.push(v.key.clone());
            if let Some(d) = &v.default {
                variables(d, out);
            }
        }
    }
}

pub(crate) fn time_zone(cx: &mut Cx<'_>, node: &Node, zones: &dyn Zones) -> Option<String> {
    let name = cx.text(node, "`timeZone`")?;
    if zones.zone(&name).is_some() {
        return Some(name);
    }
    let known = zones.names();
    let hint = closest(&name, known.iter().map(String::as_str))
        .map(|c| format!("; did you mean {c}?"))
        .unwrap_or_else(|| "; use an IANA name such as Europe/Berlin, or UTC".to_owned());
    cx.err(node.pos, format!("unknown time zone {name:?}{hint}"));
    None
}

fn cron(cx: &mut Cx<'_>, node: &Node) -> Option<Cron> {
    let text = match node.scalar() {
        Some(s) => s.text.clone(),
        None => {
            cx.err(
                node.pos,
                format!(
                    "`cron` must be a cron expression like \"30 2 * * MON-FRI\", not {}",
                    node.describe()
                ),
            );
            return None;
        }
    };
    match Cron::parse(&text) {
        Ok(c) if c.can_fire() => Some(c),
        Ok(c) => {
            cx.err(
                node.pos,
                format!(
                    "`cron` {:?} never fires: no month has such a day",
                    c.as_str()
                ),
            );
            None
        }
        Err(e) => {
            let pos = cx.pos_in_scalar(node, &text, e.offset);
            cx.err(pos, format!("`cron`: {}", e.message));
            None
        }
    }
}

/// `HH:MM` or `HH:MM:SS`, read from the source text (YAML 1.1 would make `02:30` a number).
pub(crate) fn time_of_day(cx: &mut Cx<'_>, node: &Node, label: &str) -> Option<Time> {
    let text = cx.text(node, label)?;
    let parts: Vec<&str> = text.split(':').collect();
    let two_digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    let parsed = if (2..=3).contains(&parts.len()) && parts.iter().all(|p| two_digits(p)) {
        let n = |i: usize| parts.get(i).and_then(|p| p.parse::<i8>().ok()).unwrap_or(0);
        Time::new(n(0), n(1), n(2), 0).ok()
    } else {
        None
    };
    if parsed.is_none() {
        cx.err(
            node.pos,
            format!(
                "{label}: {text:?} is not a time of day; write HH:MM or HH:MM:SS, 00:00 to 23:59:59"
            ),
        );
    }
    parsed
}

fn date(cx: &mut Cx<'_>, node: &Node, label: &str) -> Option<Date> {
    let text = cx.text(node, label)?;
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let parsed = if shaped {
        let n = |r: std::ops::Range<usize>| text[r].parse::<i16>().unwrap_or(0);
        Date::new(n(0..4), n(5..7) as i8, n(8..10) as i8).ok()
    } else {
        None
    };
    if parsed.is_none() {
        cx.err(
            node.pos,
            format!("{label}: {text:?} is not a date; write YYYY-MM-DD, e.g. 2026-12-24"),
        );
    }
    parsed
}

fn repeat(cx: &mut Cx<'_>, node: &Node) -> Option<Repeat> {
    let f = cx.fields_in(node, &spec::REPEAT, "`repeat`")?;
    let every = f.get("every").and_then(|n| {
        let d = cx.duration(n, "`repeat.every`")?;
        if d.0 < 1000 || d.0 > 86_400_000 || d.0 % 1000 != 0 {
            cx.err(
                n.pos,
                format!("`repeat.every` must be whole seconds from 1s to 24h, not {d}"),
            );
            return None;
        }
        Some(d)
    });
    let from = match f.get("from") {
        None => Some(Time::midnight()),
        Some(n) => time_of_day(cx, n, "`repeat.from`"),
    };
    let until = match f.get("until") {
        None => Some(None),
        Some(n) => time_of_day(cx, n, "`repeat.until`").map(Some),
    };
    if let (Some(from), Some(Some(until))) = (from, until)
        && until <= from
    {
        cx.err(
            f.get("until").map_or(f.pos, |n| n.pos),
            format!("`repeat` never fires: `until` {until} is not after `from` {from}"),
        );
        return None;
    }
    Some(Repeat {
        every: every?,
        from: from?,
        until: until?,
    })
}

pub(crate) fn calendar(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    defs: &mut Defs,
    refs: &mut Refs,
) -> Option<Calendar> {
    let name_node = f.get("calendar")?;
    let name = cx.name(name_node, "`calendar`", CalendarName::new);
    if let Some(n) = &name {
        defs.calendar(cx.file, n.as_str(), name_node.pos);
    }
    let from = match f.get("from") {
        None => Some(None),
        Some(n) => date(cx, n, "`from`").map(Some),
    };
    let to = match f.get("to") {
        None => Some(None),
        Some(n) => date(cx, n, "`to`").map(Some),
    };
    if let (Some(Some(a)), Some(Some(b))) = (from, to)
        && b < a
    {
        cx.err(
            f.get("to").map_or(f.pos, |n| n.pos),
            format!("the calendar never holds a date: `to` {b} is before `from` {a}"),
        );
        return None;
    }
    let include = days(cx, f, refs);
    let exclude = match f.get("exclude") {
        None => Some(Days::default()),
        Some(n) => cx
            .fields_in(n, &spec::EXCLUDE, "`exclude`")
            .and_then(|ef| days(cx, &ef, refs)),
    };
    Some(Calendar {
        name: name?,
        from: from?,
        to: to?,
        include: include?,
        exclude: exclude?,
    })
}

/// The day rules of a calendar or of its `exclude`.
fn days(cx: &mut Cx<'_>, f: &Fields<'_>, refs: &mut Refs) -> Option<Days> {
    let weekdays = match f.get("weekdays") {
        None => Some(0),
        Some(n) => one_or_list(cx, n, "`weekdays`").and_then(|items| {
            collect(items.iter().map(|i| weekdays(cx, i)))
                .map(|sets| sets.into_iter().fold(0, |a, b| a | b))
        }),
    };
    let month_days = match f.get("monthDays") {
        None => Some(Vec::new()),
        Some(n) => list(cx, n, "`monthDays`", "a list of days of the month").and_then(|items| {
            collect(items.iter().map(|i| {
                let v = cx.int(i, "a day of the month", -31, 31)?;
                if v == 0 {
                    cx.err(
                        i.pos,
                        "a day of the month is 1 to 31, or -1 (the last day) to -31; not 0",
                    );
                    return None;
                }
                i8::try_from(v).ok()
            }))
        }),
    };
    let dates = match f.get("dates") {
        None => Some(Vec::new()),
        Some(n) => list(cx, n, "`dates`", "a list of dates")
            .and_then(|items| collect(items.iter().map(|i| date(cx, i, "`dates`")))),
    };
    let ranges = match f.get("ranges") {
        None => Some(Vec::new()),
        Some(n) => list(cx, n, "`ranges`", "a list of date ranges").and_then(|items| {
            collect(items.iter().map(|i| {
                let rf = cx.fields_in(i, &spec::DATE_RANGE, "a date range")?;
                let from = rf.get("from").and_then(|n| date(cx, n, "`from`"));
                let to = rf.get("to").and_then(|n| date(cx, n, "`to`"));
                let (from, to) = (from?, to?);
                if to < from {
                    cx.err(
                        rf.get("to").map_or(i.pos, |n| n.pos),
                        format!("the range holds no date: `to` {to} is before `from` {from}"),
                    );
                    return None;
                }
                Some(DateRange { from, to })
            }))
        }),
    };
    let calendars = match f.get("calendars") {
        None => Some(Vec::new()),
        Some(n) => list(cx, n, "`calendars`", "a list of calendar names").and_then(|items| {
            collect(items.iter().map(|i| {
                let c = cx.name(i, "a calendar", CalendarName::new)?;
                refs.add(cx.file, RefKind::Calendar, c.as_str(), i.pos);
                Some(c)
            }))
        }),
    };
    Some(Days {
        weekdays: weekdays?,
        month_days: month_days?,
        dates: dates?,
        ranges: ranges?,
        calendars: calendars?,
    })
}

const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// `MON`, or `MON-FRI` (a range may wrap around the week: `FRI-MON`), as bits, Sunday = 0.
pub(crate) fn weekdays(cx: &mut Cx<'_>, node: &Node) -> Option<u8> {
    let text = cx.text(node, "a day of the week")?;
    let day = |s: &str| {
        WEEKDAY_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s.trim()))
    };
    let set = match text.split_once('-') {
        None => day(&text).map(|d| 1u8 << d),
        Some((a, b)) => match (day(a), day(b)) {
            (Some(a), Some(b)) => {
                let mut set = 0u8;
                let mut d = a;
                loop {
                    set |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
                Some(set)
            }
            _ => None,
        },
    };
    if set.is_none() {
        cx.err(
            node.pos,
            format!(
                "{text:?} is not a day of the week; write one of {} or a range such as MON-FRI",
                WEEKDAY_NAMES.join(", ")
            ),
        );
    }
    set
}

/// What needs every schedule and calendar read: calendars that refer to themselves or nest
/// too deep (errors), and, given the current instant and a `complete` inventory (every object
/// read), schedules with no date to fire on in the next year (warnings).
pub(crate) fn check_plan(
    inventory: &Inventory,
    defs: &Defs,
    zones: &dyn Zones,
    now: Option<jiff::Timestamp>,
    complete: bool,
    diags: &mut Diags,
) {
    let push = |diags: &mut Diags, kind: DefKind, name: &str, severity, message: String| {
        let (file, pos) = defs.position(kind, name).unwrap_or(("", Pos::START));
        diags.push(file, pos, severity, message);
    };
    // References to calendars that are not there are reported elsewhere; without them the
    // calendars read can still be checked for cycles.
    let known: std::collections::BTreeSet<&str> = inventory
        .calendars
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let mut resolvable = inventory.calendars.clone();
    for c in &mut resolvable {
        c.include.calendars.retain(|n| known.contains(n.as_str()));
        c.exclude.calendars.retain(|n| known.contains(n.as_str()));
    }
    match CalendarSet::new(&resolvable) {
        Err(e @ (CalendarError::Cycle(_) | CalendarError::TooDeep(_))) => {
            let first = match &e {
                CalendarError::Cycle(names) | CalendarError::TooDeep(names) => names[0].clone(),
                _ => String::new(),
            };
            push(
                diags,
                DefKind::Calendar,
                &first,
                Severity::Error,
                e.to_string(),
            );
            return;
        }
        // Unknown and duplicate names are reported with the other references.
        Err(_) => return,
        Ok(_) => {}
    }
    let Some(now) = now.filter(|_| complete) else {
        return;
    };
    let Ok(expander) = Expander::new(inventory, zones) else {
        return;
    };
    for (i, s) in inventory.schedules.iter().enumerate() {
        let today = expander.zone(i).to_datetime(now).date();
        if expander.first_day(i, today, 366).is_none() {
            let why = match &s.calendar {
                Some(c) => format!("with calendar `{c}`, "),
                None => String::new(),
            };
            let until = today
                .checked_add(jiff::Span::new().days(365))
                .unwrap_or(today);
            push(
                diags,
                DefKind::Schedule,
                s.name.as_str(),
                Severity::Warning,
                format!(
                    "{why}schedule `{}` has no date to fire on from {today} to {until}",
                    s.name
                ),
            );
        }
    }
}

/// `weekdays` of an admission period: one day or range, or a list of them, as bits
/// (Sunday = 0).
pub(crate) fn weekday_set(cx: &mut Cx<'_>, node: &Node) -> Option<u8> {
    one_or_list(cx, node, "`weekdays`").and_then(|items| {
        collect(items.iter().map(|i| weekdays(cx, i)))
            .map(|sets| sets.into_iter().fold(0, |a, b| a | b))
    })
}
