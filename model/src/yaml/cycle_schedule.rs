//! The schedule of a `cycle`: `periodic`, `ticking` or `continuous`, `admission`, `limit`.

use super::node::Node;
use super::read::{Cx, Fields};
use super::schedule::{time_of_day, weekday_set};
use super::spec;
use crate::inventory::{AdmissionPeriod, CycleSchedule, CycleScheme};
use crate::time::DurationMs;

/// Whether the cycle's settings ask for a schedule.
pub(crate) fn is_schedule(sf: &Fields<'_>) -> bool {
    ["periodic", "ticking", "continuous", "admission", "limit"]
        .iter()
        .any(|k| sf.get(k).is_some())
}

/// Reads the schedule of a cycle in the workflow's `time_zone`.
pub(crate) fn schedule(
    cx: &mut Cx<'_>,
    node: &Node,
    sf: &Fields<'_>,
    time_zone: &str,
) -> Option<CycleSchedule> {
    if ["times", "every", "for"]
        .iter()
        .any(|k| sf.get(k).is_some())
    {
        cx.err(
            node.pos,
            "a cycle repeats `times` times, `every` period `for` a while, or as a schedule says (`periodic`, `ticking`, `continuous`), not several of them",
        );
        return None;
    }
    let schemes: Vec<(&str, &Node)> = ["periodic", "ticking", "continuous"]
        .iter()
        .filter_map(|k| sf.get(k).map(|n| (*k, n)))
        .collect();
    let scheme = match schemes.as_slice() {
        [(kind, n)] => {
            let d = cx.duration(n, &format!("`{kind}`"))?;
            match *kind {
                "continuous" => Some(CycleScheme::Continuous { pause: d }),
                _ if d.0 == 0 => {
                    cx.err(n.pos, format!("`{kind}` must be longer than 0"));
                    None
                }
                "periodic" => Some(CycleScheme::Periodic { every: d }),
                _ => Some(CycleScheme::Ticking { every: d }),
            }
        }
        _ => {
            cx.err(
                node.pos,
                "a cycle with a schedule needs one of `periodic`, `ticking` or `continuous`",
            );
            None
        }
    };
    let admission = match sf.get("admission") {
        None => Some(Vec::new()),
        Some(n) => cx
            .list(n, "`admission`", "a list of admission periods")
            .and_then(|items| {
                let periods: Vec<Option<AdmissionPeriod>> =
                    items.iter().map(|i| period(cx, i)).collect();
                periods.into_iter().collect()
            }),
    };
    let limit = match sf.get("limit") {
        None => Some(None),
        Some(n) => cx
            .int(n, "`limit`", 1, spec::CYCLE_TIMES_MAX)
            .and_then(|v| u32::try_from(v).ok())
            .map(Some),
    };
    Some(CycleSchedule {
        time_zone: time_zone.to_owned(),
        admission: admission?,
        scheme: scheme?,
        limit: limit?,
    })
}

fn period(cx: &mut Cx<'_>, node: &Node) -> Option<AdmissionPeriod> {
    let f = cx.fields_in(node, &spec::ADMISSION, "an admission period")?;
    let weekdays = match f.get("weekdays") {
        None => Some(0),
        Some(n) => weekday_set(cx, n),
    };
    let from = f.get("from").and_then(|n| time_of_day(cx, n, "`from`"));
    let duration = f.get("duration").and_then(|n| {
        let d = cx.duration(n, "`duration`")?;
        if d.0 == 0 || d > DurationMs::from_secs(24 * 3600) {
            cx.err(n.pos, "`duration` must be longer than 0 and at most 24h");
            return None;
        }
        Some(d)
    });
    let from = from?;
    let from_s = u32::try_from(
        i32::from(from.hour()) * 3600 + i32::from(from.minute()) * 60 + i32::from(from.second()),
    )
    .ok()?;
    Some(AdmissionPeriod {
        weekdays: weekdays?,
        from_s,
        duration: duration?,
    })
}
