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
    /// Why it was skipped: `missed`, `cancelled`, `paused`, `replaced`, `refused: …`.
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
