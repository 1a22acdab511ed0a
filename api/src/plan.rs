//! The daily plan as readers see it (`GET /plan` of the controller and of the cockpit): the
//! schedules, and each planned instant with what became of it, from the state's plan
//! ([`ordo_model::schedule::plan`]) and its orders.

use crate::state::State;
use ordo_model::schedule::Status;
use serde::{Deserialize, Serialize};

/// Entries one answer holds at most.
pub const PLAN_ENTRIES_MAX: usize = 10_000;

/// A deployed schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    pub name: String,
    pub workflow: String,
    pub time_zone: String,
    pub paused: bool,
    /// `catch-up`, `latest` or `skip`.
    pub missed: String,
    /// Every instant before this one is planned (ms since the epoch); left out before the
    /// first plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_until: Option<i64>,
}

/// One planned instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PlanEntryView {
    pub schedule: String,
    /// The id of its order (added or to be added).
    pub order_id: String,
    /// The instant, ms since the epoch.
    pub at: i64,
    /// The instant in RFC 3339 with the schedule's UTC offset then.
    pub instant: String,
    /// `planned`, `ordered` or `skipped`.
    pub status: String,
    /// Why it was skipped: `missed`, `cancelled`, `paused`, `replaced`, `refused: …`,
    /// `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The state of its order while the order is kept (`fresh`, `processing`, `finished`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_state: Option<String>,
}

/// `GET /plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub schedules: Vec<ScheduleView>,
    /// By instant, then schedule.
    pub entries: Vec<PlanEntryView>,
    /// More entries matched than one answer holds ([`PLAN_ENTRIES_MAX`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Which entries `GET /plan` answers with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanFilter {
    /// The local date of the instant in its schedule's time zone, `2026-06-01`.
    pub date: Option<String>,
    pub schedule: Option<String>,
}

/// Checks a `date` filter: `YYYY-MM-DD`.
pub fn check_date(date: &str) -> Result<(), String> {
    date.parse::<ordo_model::schedule::plan::Date>()
        .map(|_| ())
        .map_err(|e| format!("bad date {date:?} (YYYY-MM-DD): {e}"))
}

/// The plan of `state`, filtered.
pub fn plan_view(state: &State, filter: &PlanFilter) -> PlanView {
    let plan = &state.plan;
    let schedules = plan
        .schedules
        .values()
        .filter(|p| {
            filter
                .schedule
                .as_deref()
                .is_none_or(|s| s == p.schedule.name.as_str())
        })
        .map(|p| ScheduleView {
            name: p.schedule.name.to_string(),
            workflow: p.schedule.workflow.to_string(),
            time_zone: p.schedule.time_zone.clone(),
            paused: p.paused,
            missed: p.schedule.missed.word().to_owned(),
            planned_until: (p.planned_until.0 != i64::MAX).then_some(p.planned_until.0),
        })
        .collect();
    let mut entries = Vec::new();
    let mut truncated = false;
    for p in plan.schedules.values() {
        if filter
            .schedule
            .as_deref()
            .is_some_and(|s| s != p.schedule.name.as_str())
        {
            continue;
        }
        for (planned, status) in p.entries() {
            let at = planned.at;
            let fire = planned.fire();
            if let Some(d) = &filter.date
                && fire.local().date().to_string() != *d
            {
                continue;
            }
            if entries.len() == PLAN_ENTRIES_MAX {
                truncated = true;
                break;
            }
            let order_id = ordo_model::schedule::order_id(p.schedule.name.as_str(), &fire)
                .map(|id| id.to_string())
                .unwrap_or_default();
            let order_state = ordo_model::ids::OrderId::new(order_id.clone())
                .ok()
                .and_then(|id| state.world.order(&id))
                .map(|o| o.state.name().to_owned());
            let (status, why) = match status {
                Status::Planned => ("planned", None),
                Status::Ordered => ("ordered", None),
                Status::Skipped(why) => ("skipped", Some(why.to_string())),
            };
            entries.push(PlanEntryView {
                schedule: p.schedule.name.to_string(),
                order_id,
                at: at.0,
                instant: fire.rfc3339(),
                status: status.to_owned(),
                why,
                order_state,
            });
        }
    }
    entries.sort_by(|a, b| (a.at, &a.schedule).cmp(&(b.at, &b.schedule)));
    PlanView {
        schedules,
        entries,
        truncated,
    }
}

/// One wall time (or instant) of `GET /plan/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExplainedView {
    /// The wall time the definition names, `HH:MM:SS`.
    pub wall: String,
    /// The rule that names it: `cron <expr>`, `times`, `repeat`, `earlier definition`.
    pub rule: String,
    /// The instant it fires at (ms since the epoch), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    /// The instant in RFC 3339 with the schedule's UTC offset then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instant: Option<String>,
    /// The id of its order (added or to be added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// `planned`, `ordered`, `skipped`, `not-planned-yet`, `not-in-plan`, `excluded`,
    /// `no-instant`.
    pub status: String,
    /// Why it was skipped: `missed`, `cancelled`, `paused`, `replaced`, `refused: …`,
    /// `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The state of its order while the order is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_state: Option<String>,
    /// Why, in words: a change of the UTC offset, the plan's decision.
    pub reasons: Vec<String>,
}

/// `GET /plan/explain?schedule=&date=`: why each instant of a schedule's local date is in the
/// plan or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExplanationView {
    pub schedule: String,
    /// `YYYY-MM-DD`, in the schedule's time zone.
    pub date: String,
    pub time_zone: String,
    /// About the whole day: a pause, the calendar, how far the plan reaches, `missed:`.
    pub notes: Vec<String>,
    /// By wall time, then instant.
    pub instants: Vec<ExplainedView>,
    /// More wall times than one answer holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The explanation of `schedule` on its local `date` (`YYYY-MM-DD`) from the state's plan;
/// `Err((not_found, message))`.
pub fn explain_view(
    state: &State,
    schedule: &str,
    date: &str,
) -> Result<ExplanationView, (bool, String)> {
    use ordo_model::schedule::explain::{Fate, explain};
    let day = date
        .parse::<ordo_model::schedule::plan::Date>()
        .map_err(|e| (false, format!("bad date {date:?} (YYYY-MM-DD): {e}")))?;
    let name = ordo_model::ids::ScheduleName::new(schedule)
        .map_err(|e| (false, format!("schedule name {schedule:?} {e}")))?;
    let e = explain(&state.plan, &name, day, &ordo_model::schedule::BundledZones).map_err(|e| {
        let missing = matches!(
            e,
            ordo_model::schedule::explain::ExplainError::UnknownSchedule(_)
        );
        (missing, e.to_string())
    })?;
    let instants = e
        .instants
        .iter()
        .map(|i| {
            let order_id = i.fire.and_then(|f| f.order_id(&name).ok());
            let order_state = order_id
                .as_ref()
                .and_then(|id| state.world.order(id))
                .map(|o| o.state.name().to_owned());
            ExplainedView {
                wall: format!(
                    "{:02}:{:02}:{:02}",
                    i.wall.hour(),
                    i.wall.minute(),
                    i.wall.second()
                ),
                rule: i.rule.clone(),
                at: i.fire.map(|f| f.at.0),
                instant: i.fire.map(|f| f.fire().rfc3339()),
                order_id: order_id.map(|id| id.to_string()),
                status: i.fate.word().to_owned(),
                why: match &i.fate {
                    Fate::Skipped(why) => Some(why.to_string()),
                    _ => None,
                },
                order_state,
                reasons: i.reasons.clone(),
            }
        })
        .collect();
    Ok(ExplanationView {
        schedule: e.schedule.to_string(),
        date: e.date.to_string(),
        time_zone: e.time_zone,
        notes: e.notes,
        instants,
        truncated: e.truncated,
    })
}
