//! The daily planner of the active controller: turns the deployed schedules into planned
//! orders, sans IO (time passed in), as the [`crate::machine`] asks.
//!
//! **What it journals.** Everything it decides is a [`PlanEvent`] (or the model's order events)
//! in the machine's batch, so what has been planned is the fold of the journal
//! ([`ordo_model::schedule::plan`]): a new active controller (a failover, a restart) plans
//! from each schedule's high-water mark and never plans an instant twice; an instant ordered
//! in the same batch as its order's `Added` is never ordered again, and an order id that
//! exists already is taken as the instant's order (one order per `(schedule, instant)`).
//!
//! **The rounds.** Whenever the plan is due ([`Planner::is_due`]), [`Planner::run`]:
//! 1. extends each running schedule's plan to `plan_days_ahead` days ahead (one day more at a
//!    time, so a schedule is planned about once a day), at most `plan_fires_per_schedule_max`
//!    planned instants per schedule;
//! 2. adds the order of each planned instant `plan_attach_ahead_ms` before it, with the
//!    instant as its scheduled time: the model hands it to the agent of its first job at once,
//!    and that agent starts it at its instant even when no controller is reachable then;
//! 3. applies the schedule's `missed:` policy to instants more than `plan_late_ms` in the past
//!    whose order was never added (no controller was active, the schedule was paused):
//!    `catch-up` adds every one (they start at once), `latest` only the latest, `skip` none;
//!    the others are journaled as skipped (`missed`). An order added ahead of time carries
//!    the policy and `plan_late_ms` (`PlannedBy`), so that its holder applies the same rule
//!    when it gets to the order late ([`ordo_model::order::missed`]);
//! 4. forgets decided instants older than the order retention.
//!
//! **Deployments and commands** ([`deploy`], [`command`]): a new schedule is planned from the
//! deployment on; a changed one (or one whose calendar changed) is planned again from now on —
//! planned instants after now are dropped, and orders already added for later instants that
//! have not started are cancelled unless the new definition fires then too; nothing past is
//! touched. A pause cancels the orders of the schedule that have not started and stops the
//! planning; at resume, the instants passed meanwhile follow the `missed:` policy. A removed
//! schedule's orders that have not started are cancelled (wherever they are: the model's
//! cancel reaches the agent holding one), then the schedule leaves the plan
//! (`ScheduleRemoved`); orders that started run to their end. A removed calendar leaves the
//! plan after the schedules (the deployment's check refuses it while one that stays names it).

#[cfg(test)]
mod tests;

use crate::record::Body;
use crate::state::State;
use ordo_model::deploy::Removals;
use ordo_model::ids::{OrderId, ScheduleName};
use ordo_model::inventory::Inventory;
use ordo_model::order::{self, Command, CommandError, OrderLimits, OrderOptions, OrderState};
use ordo_model::schedule::plan::{Date, timestamp};
use ordo_model::schedule::{
    BundledZones, ExpandLimits, Plan, PlanEvent, PlannedFire, Schedule, SchedulePlan, Skip, Status,
    Window, args_of,
};
use ordo_model::time::TimeMs;
use std::collections::BTreeSet;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Fires in one `Planned` event at most (the journal record stays small).
pub const PLANNED_EVENT_FIRES_MAX: usize = 1000;

/// Fires planned, and orders added or skipped, in one round at most; the rest follow in the
/// next round.
pub const ROUND_FIRES_MAX: usize = 50_000;

/// The planner's settings (`[plan]` of the controller's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSettings {
    /// How far ahead the plan is kept, in days.
    pub days_ahead: u32,
    /// How long before its instant a planned order is added (and handed to its agent).
    pub attach_ahead_ms: u64,
    /// An instant passed by more than this when its order would be added was missed.
    pub late_ms: u64,
    /// Planned instants of one schedule not yet decided, at most.
    pub fires_per_schedule_max: usize,
    /// How long decided instants stay in the plan (the order retention).
    pub history_ms: u64,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            days_ahead: 7,
            attach_ahead_ms: 3600 * 1000,
            late_ms: 60 * 1000,
            fires_per_schedule_max: 10_000,
            history_ms: 24 * 3600 * 1000,
        }
    }
}

/// A command on the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCommand {
    /// The planned order `order` (a plan id, `#date#schedule@time±offset`) is skipped: not
    /// added, or cancelled if added and not started.
    Skip {
        order: OrderId,
    },
    Pause {
        schedule: ScheduleName,
    },
    Resume {
        schedule: ScheduleName,
    },
    /// The planned instants of the local `date` (of each schedule's time zone), of one
    /// schedule or of all, that have not started are skipped: not added, or cancelled if
    /// added and not started. Instants of that day the plan does not hold yet (beyond
    /// `days_ahead`) are not touched.
    CancelDay {
        date: Date,
        schedule: Option<ScheduleName>,
    },
    /// The orders of the instants of `schedule` on the local dates `from..=until` that have
    /// passed are added now (they start at once), except instants whose order was added
    /// already: ids are the plan's, so a second backfill adds nothing twice while the orders
    /// are kept. The `missed:` policy does not apply: a backfill is asked for.
    Backfill {
        schedule: ScheduleName,
        from: Date,
        until: Date,
    },
}

/// Local days one backfill covers at most.
pub const BACKFILL_DAYS_MAX: i64 = 366;

/// Orders one backfill adds at most: one request's work stays bounded (a longer range is
/// backfilled in parts).
pub const BACKFILL_FIRES_MAX: usize = 1_000;

/// When the plan next needs a round.
#[derive(Debug, Default)]
pub struct Planner {
    /// Set when the plan changed in a way the due instant does not know of.
    dirty: bool,
    due: Option<TimeMs>,
}

impl Planner {
    /// Something changed (a deployment, a command, a new leader, a rebuilt state): the next
    /// round looks at every schedule.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Whether a round is due at `now`.
    pub fn is_due(&self, now: TimeMs) -> bool {
        self.dirty || self.due.is_some_and(|d| d <= now)
    }

    /// The instant the next round is due, for the machine's wake-up.
    pub fn next_wake(&self) -> Option<TimeMs> {
        self.due
    }

    /// One round (see the module doc): the events to journal, in order. Reads `state` as it
    /// is before them; the machine emits them and then calls [`Planner::done`].
    pub fn run(
        &mut self,
        state: &State,
        now: TimeMs,
        settings: &PlanSettings,
        limits: &OrderLimits,
    ) -> Vec<Body> {
        self.dirty = false;
        let plan = &state.plan;
        let expander = match plan.expander(&BundledZones) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("the plan's calendars cannot be used: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut budget = ROUND_FIRES_MAX;
        for (name, p) in &plan.schedules {
            if p.paused || budget == 0 {
                continue;
            }
            let fresh = extend(&expander, p, now, settings, &mut budget, &mut out);
            decide(
                state,
                p,
                &fresh,
                now,
                settings,
                limits,
                &mut budget,
                &mut out,
            );
            if budget == 0 {
                tracing::info!(schedule = %name, "planning goes on in the next round");
                self.dirty = true;
            }
        }
        if let Some(oldest) = plan.oldest() {
            let before = TimeMs(now.0.saturating_sub(ms(settings.history_ms)));
            // At most one `Forgotten` an hour.
            if oldest.0 < before.0.saturating_sub(3600 * 1000) {
                out.push(Body::Plan(PlanEvent::Forgotten { before }));
            }
        }
        out
    }

    /// Works out when the next round is due, from the state after a round's events.
    pub fn done(&mut self, plan: &Plan, settings: &PlanSettings) {
        let ahead = ms(settings.attach_ahead_ms);
        let horizon = i64::from(settings.days_ahead) * DAY_MS;
        self.due = plan
            .schedules
            .values()
            .filter(|p| !p.paused)
            .filter_map(|p| {
                let order = p.planned.keys().next().map(|at| at.0.saturating_sub(ahead));
                // A schedule at its most planned instants extends once one is decided.
                let extend = (p.planned_until.0 != i64::MAX
                    && p.planned.len() < settings.fires_per_schedule_max)
                    .then(|| p.planned_until.0.saturating_sub(horizon));
                order.into_iter().chain(extend).min()
            })
            .min()
            .map(TimeMs);
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Plans the fires of `p` from its mark up to `days_ahead` days (and one more) from `now`;
/// returns the new fires not planned before.
fn extend(
    expander: &ordo_model::schedule::plan::PlanExpander<'_>,
    p: &SchedulePlan,
    now: TimeMs,
    settings: &PlanSettings,
    budget: &mut usize,
    out: &mut Vec<Body>,
) -> Vec<PlannedFire> {
    let horizon = i64::from(settings.days_ahead) * DAY_MS;
    let from = p.planned_until;
    if from.0 == i64::MAX || from.0 >= now.0.saturating_add(horizon) {
        return Vec::new();
    }
    let until = TimeMs(now.0.saturating_add(horizon).saturating_add(DAY_MS));
    // Expansion windows are at most 366 days: a longer gap (a controller down for longer)
    // loses its oldest fires.
    let from = TimeMs(from.0.max(until.0.saturating_sub(366 * DAY_MS)));
    let room = settings
        .fires_per_schedule_max
        .saturating_sub(p.planned.len())
        .min(*budget);
    if room == 0 {
        return Vec::new();
    }
    let mut fires = Vec::new();
    let mut reached = from;
    // Day by day, so that a schedule that fires often stops at the room it has.
    while reached < until && fires.len() <= room {
        let next = TimeMs(reached.0.saturating_add(DAY_MS).min(until.0));
        let window = Window {
            from: timestamp(reached),
            until: timestamp(next),
        };
        let limits = ExpandLimits {
            window_days_max: 2,
            fires_max: usize::MAX,
        };
        match expander.fires(&p.schedule, window, &limits) {
            Ok(found) => fires.extend(found.iter().map(PlannedFire::of)),
            Err(e) => {
                tracing::error!(schedule = %p.schedule.name, "cannot plan: {e}");
                return Vec::new();
            }
        }
        reached = next;
    }
    if fires.len() > room {
        reached = fires[room].at;
        fires.truncate(room);
    }
    if reached <= p.planned_until {
        return Vec::new();
    }
    *budget -= fires.len();
    let fresh: Vec<PlannedFire> = fires
        .iter()
        .filter(|f| !p.planned.contains_key(&f.at) && !p.decided.contains_key(&f.at))
        .copied()
        .collect();
    let chunks = fires.len().div_ceil(PLANNED_EVENT_FIRES_MAX).max(1);
    for (i, chunk) in fires
        .chunks(PLANNED_EVENT_FIRES_MAX)
        .chain(
            // A window without fires still moves the mark.
            std::iter::repeat_n(&[][..], usize::from(fires.is_empty())),
        )
        .enumerate()
    {
        let until = if i + 1 < chunks {
            fires[(i + 1) * PLANNED_EVENT_FIRES_MAX].at
        } else {
            reached
        };
        out.push(Body::Plan(PlanEvent::Planned {
            schedule: p.schedule.name.clone(),
            until,
            fires: chunk.to_vec(),
        }));
    }
    fresh
}

/// Adds the orders of the planned instants of `p` (and of the `fresh` ones just planned)
/// that are due, by the `missed:` policy for those passed long ago.
#[allow(clippy::too_many_arguments)]
fn decide(
    state: &State,
    p: &SchedulePlan,
    fresh: &[PlannedFire],
    now: TimeMs,
    settings: &PlanSettings,
    limits: &OrderLimits,
    budget: &mut usize,
    out: &mut Vec<Body>,
) {
    let due_until = now.0.saturating_add(ms(settings.attach_ahead_ms));
    let late_before = now.0.saturating_sub(ms(settings.late_ms));
    let mut due: Vec<PlannedFire> = p
        .planned
        .range(..=TimeMs(due_until))
        .map(|(at, o)| PlannedFire {
            at: *at,
            offset_seconds: *o,
        })
        .chain(fresh.iter().copied().take_while(|f| f.at.0 <= due_until))
        .collect();
    due.sort_unstable();
    due.dedup_by_key(|f| f.at);
    due.truncate(*budget);
    *budget -= due.len();
    let missed = due.iter().take_while(|f| f.at.0 < late_before).count();
    let name = &p.schedule.name;
    for (i, f) in due.iter().enumerate() {
        let keep = i >= missed || order::missed::keeps(p.schedule.missed, i, missed);
        if keep {
            out.extend(add_order(state, &p.schedule, f, now, settings, limits));
        } else {
            out.push(Body::Plan(PlanEvent::Skipped {
                schedule: name.clone(),
                at: f.at,
                why: Skip::Missed,
            }));
        }
    }
}

/// The events that add the order of fire `f` of `schedule`, or skip it when it cannot be
/// added.
fn add_order(
    state: &State,
    schedule: &Schedule,
    f: &PlannedFire,
    now: TimeMs,
    settings: &PlanSettings,
    limits: &OrderLimits,
) -> Vec<Body> {
    let name = &schedule.name;
    let refused = |error: String| {
        tracing::warn!(schedule = %name, at = f.at.0, "planned order not added: {error}");
        vec![Body::Plan(PlanEvent::Skipped {
            schedule: name.clone(),
            at: f.at,
            why: Skip::Refused { error },
        })]
    };
    let id = match f.order_id(name) {
        Ok(id) => id,
        Err(e) => return refused(e.to_string()),
    };
    let vars = match args_of(schedule, &f.fire()) {
        Ok(v) => v,
        Err(e) => return refused(format!("arguments: {e}")),
    };
    // A planned order carries its schedule's priority.
    let add = Command::AddWithOptions {
        id,
        workflow: schedule.workflow.clone(),
        vars,
        scheduled_for: Some(f.at),
        options: OrderOptions {
            priority: schedule.priority,
            delete_when_terminated: None,
        },
    };
    // The policy travels with the order: whoever holds it at its instant applies it.
    let planned = order::missed::add_planned(
        &state.world,
        add,
        name,
        schedule.missed,
        settings.late_ms,
        now,
        limits,
    );
    match planned {
        Ok(accepted) => {
            let mut out: Vec<Body> = accepted.events.into_iter().map(Body::Event).collect();
            out.push(Body::Plan(PlanEvent::Ordered {
                schedule: name.clone(),
                at: f.at,
            }));
            out
        }
        Err(e) => refused(e.to_string()),
    }
}

/// Whether the order of a plan id was added and has not started.
fn not_started(state: &State, id: &OrderId) -> bool {
    state
        .world
        .order(id)
        .is_some_and(|o| o.state == OrderState::Fresh)
}

/// Cancels the order of the fire at `at` of `p` if it was added and has not started, and
/// journals why; nothing when it started.
fn withdraw(
    state: &State,
    p: &SchedulePlan,
    at: TimeMs,
    why: Skip,
    now: TimeMs,
    out: &mut Vec<Body>,
) {
    let Some(fire) = p.fire_at(at) else { return };
    let Ok(id) = fire.order_id(&p.schedule.name) else {
        return;
    };
    if !not_started(state, &id) {
        return;
    }
    let cancel = Command::Cancel { id, kill: None };
    match order::command(&state.world, cancel, now, &OrderLimits::default()) {
        Ok(a) => {
            out.extend(a.events.into_iter().map(Body::Event));
            out.push(Body::Plan(PlanEvent::Skipped {
                schedule: p.schedule.name.clone(),
                at,
                why,
            }));
        }
        Err(e) => tracing::warn!(schedule = %p.schedule.name, "cannot cancel a planned order: {e}"),
    }
}

/// The events of a deployment for its schedules and calendars and of the removal of the
/// `removed` ones (see the module doc).
pub fn deploy(state: &State, inventory: &Inventory, removed: &Removals, now: TimeMs) -> Vec<Body> {
    let plan = &state.plan;
    let mut out = Vec::new();
    // The calendars as they will be, to expand the new definitions with.
    let mut after = Plan {
        schedules: Default::default(),
        calendars: plan.calendars.clone(),
    };
    let mut calendars_changed = false;
    for c in &inventory.calendars {
        let old = plan.calendars.iter().find(|k| k.name == c.name);
        if old != Some(c) {
            calendars_changed |= old.is_some();
            let e = PlanEvent::CalendarDeployed(Box::new(c.clone()));
            let _ = after.apply(&e);
            out.push(Body::Plan(e));
        }
    }
    let mut deployed = BTreeSet::new();
    for s in &inventory.schedules {
        deployed.insert(&s.name);
        let Some(p) = plan.schedules.get(&s.name) else {
            out.push(Body::Plan(PlanEvent::ScheduleDeployed(Box::new(s.clone()))));
            out.push(Body::Plan(PlanEvent::Replanned {
                schedule: s.name.clone(),
                from: now,
            }));
            continue;
        };
        let same_but_pause = Schedule {
            paused: p.schedule.paused,
            ..s.clone()
        } == p.schedule;
        let calendar_moved = calendars_changed && s.calendar.is_some();
        if same_but_pause && !calendar_moved && p.schedule.paused == s.paused {
            continue;
        }
        out.push(Body::Plan(PlanEvent::ScheduleDeployed(Box::new(s.clone()))));
        if s.paused && !p.paused {
            pause_orders(state, p, now, &mut out);
        }
        if !same_but_pause || calendar_moved {
            replan(state, &after, p, s, now, &mut out);
        }
    }
    // Schedules the deployment does not name stay as they are (deployments add and change),
    // unless removed.
    for name in &removed.schedules {
        debug_assert!(
            !deployed.contains(name),
            "the check refuses deploying and removing"
        );
        let Some(p) = plan.schedules.get(name) else {
            continue;
        };
        for (at, e) in &p.decided {
            if e.status == Status::Ordered {
                withdraw(state, p, *at, Skip::Removed, now, &mut out);
            }
        }
        out.push(Body::Plan(PlanEvent::ScheduleRemoved {
            schedule: name.clone(),
        }));
    }
    for name in &removed.calendars {
        if plan.calendars.iter().any(|c| &c.name == name) {
            out.push(Body::Plan(PlanEvent::CalendarRemoved {
                calendar: name.clone(),
            }));
        }
    }
    out
}

/// Drops the plan of `p` from `now` on (for the new definition `s`), cancelling orders added
/// for later instants that `s` does not fire at.
fn replan(
    state: &State,
    after: &Plan,
    p: &SchedulePlan,
    s: &Schedule,
    now: TimeMs,
    out: &mut Vec<Body>,
) {
    let keep: BTreeSet<TimeMs> = match after.expander(&BundledZones) {
        Ok(x) => {
            let end = p.decided.keys().next_back().copied().unwrap_or(now);
            let window = Window {
                from: timestamp(now),
                until: timestamp(TimeMs(end.0.saturating_add(1))),
            };
            x.fires(s, window, &ExpandLimits::default())
                .map(|f| f.iter().map(|f| f.time_ms()).collect())
                .unwrap_or_default()
        }
        Err(_) => BTreeSet::new(),
    };
    for (at, e) in p.decided.range(now..) {
        if e.status == Status::Ordered && !keep.contains(at) {
            withdraw(state, p, *at, Skip::Replaced, now, out);
        }
    }
    out.push(Body::Plan(PlanEvent::Replanned {
        schedule: s.name.clone(),
        from: now,
    }));
}

/// Cancels the orders of `p` that were added and have not started.
fn pause_orders(state: &State, p: &SchedulePlan, now: TimeMs, out: &mut Vec<Body>) {
    for (at, e) in &p.decided {
        if e.status == Status::Ordered {
            withdraw(state, p, *at, Skip::Paused, now, out);
        }
    }
}

/// The events of a command on the plan.
pub fn command(
    state: &State,
    command: PlanCommand,
    now: TimeMs,
) -> Result<Vec<Body>, CommandError> {
    let plan = &state.plan;
    let schedule_of = |name: &ScheduleName| {
        plan.schedules
            .get(name)
            .ok_or_else(|| CommandError::UnknownSchedule(name.clone()))
    };
    let mut out = Vec::new();
    match command {
        PlanCommand::Pause { schedule } => {
            let p = schedule_of(&schedule)?;
            if !p.paused {
                out.push(Body::Plan(PlanEvent::Paused {
                    schedule,
                    paused: true,
                }));
                pause_orders(state, p, now, &mut out);
            }
        }
        PlanCommand::Resume { schedule } => {
            if schedule_of(&schedule)?.paused {
                out.push(Body::Plan(PlanEvent::Paused {
                    schedule,
                    paused: false,
                }));
            }
        }
        PlanCommand::CancelDay { date, schedule } => {
            let selected: Vec<&SchedulePlan> = match &schedule {
                Some(name) => vec![schedule_of(name)?],
                None => plan.schedules.values().collect(),
            };
            for p in selected {
                for (fire, status) in p.entries() {
                    if fire.fire().local().date() != date {
                        continue;
                    }
                    match status {
                        Status::Planned => out.push(Body::Plan(PlanEvent::Skipped {
                            schedule: p.schedule.name.clone(),
                            at: fire.at,
                            why: Skip::Cancelled,
                        })),
                        Status::Ordered => {
                            withdraw(state, p, fire.at, Skip::Cancelled, now, &mut out);
                        }
                        Status::Skipped(_) => {}
                    }
                }
            }
        }
        PlanCommand::Backfill {
            schedule,
            from,
            until,
        } => {
            let p = schedule_of(&schedule)?;
            backfill(state, p, from, until, now, &mut out)?;
        }
        PlanCommand::Skip { order } => {
            let (p, at) =
                find(plan, &order).ok_or_else(|| CommandError::UnknownOrder(order.clone()))?;
            match p.status(at).unwrap_or(&Status::Planned) {
                Status::Planned => out.push(Body::Plan(PlanEvent::Skipped {
                    schedule: p.schedule.name.clone(),
                    at,
                    why: Skip::Cancelled,
                })),
                Status::Ordered if not_started(state, &order) => {
                    withdraw(state, p, at, Skip::Cancelled, now, &mut out);
                }
                Status::Ordered => {
                    return Err(CommandError::Refused {
                        id: order,
                        why: "its order has started; cancel the order instead".into(),
                    });
                }
                Status::Skipped(_) => {}
            }
        }
    }
    Ok(out)
}

/// The schedule and instant of a plan id (`#<date>#<schedule>@<time><offset>`).
pub fn find<'p>(plan: &'p Plan, id: &OrderId) -> Option<(&'p SchedulePlan, TimeMs)> {
    let rest = id.as_str().strip_prefix('#')?;
    let (_, rest) = rest.split_once('#')?;
    let (name, _) = rest.rsplit_once('@')?;
    let p = plan.schedules.get(&ScheduleName::new(name).ok()?)?;
    p.entries().into_iter().find_map(|(fire, _)| {
        (fire.order_id(&p.schedule.name).ok().as_ref() == Some(id)).then_some((p, fire.at))
    })
}

/// The events of a backfill of `p` over the local dates `from..=until` (see
/// [`PlanCommand::Backfill`]).
fn backfill(
    state: &State,
    p: &SchedulePlan,
    from: Date,
    until: Date,
    now: TimeMs,
    out: &mut Vec<Body>,
) -> Result<(), CommandError> {
    let bad = CommandError::Plan;
    if until < from {
        return Err(bad(format!("--until {until} is before --from {from}")));
    }
    let days = from.until(until).map(|s| s.get_days()).unwrap_or(i32::MAX);
    if i64::from(days) >= BACKFILL_DAYS_MAX {
        return Err(bad(format!(
            "a backfill covers at most {BACKFILL_DAYS_MAX} days; {from}..{until} is longer"
        )));
    }
    let zones = BundledZones;
    let tz = ordo_model::schedule::Zones::zone(&zones, &p.schedule.time_zone)
        .ok_or_else(|| bad(format!("unknown time zone {:?}", p.schedule.time_zone)))?;
    let start = tz
        .to_timestamp(from.to_datetime(jiff::civil::Time::midnight()))
        .map_err(|e| bad(e.to_string()))?;
    let end = until
        .tomorrow()
        .ok()
        .and_then(|d| {
            tz.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        })
        .ok_or_else(|| bad(format!("{until} has no next day")))?;
    let end = end.min(timestamp(now));
    if end <= start {
        return Ok(());
    }
    let expander = state
        .plan
        .expander(&zones)
        .map_err(|e| bad(e.to_string()))?;
    let limits = ExpandLimits {
        window_days_max: u32::try_from(BACKFILL_DAYS_MAX + 2).unwrap_or(u32::MAX),
        fires_max: BACKFILL_FIRES_MAX,
    };
    let window = Window {
        from: start,
        until: end,
    };
    let fires = expander
        .fires(&p.schedule, window, &limits)
        .map_err(|e| match e {
            ordo_model::schedule::ExpandError::TooManyFires { max } => bad(format!(
                "schedule `{}` fires more than {max} times from {from} to {until}; a backfill adds at most {max} orders: split the range",
                p.schedule.name
            )),
            e => bad(e.to_string()),
        })?;
    let name = &p.schedule.name;
    let mut unplanned = Vec::new();
    let mut due = Vec::new();
    for f in fires.iter().map(PlannedFire::of) {
        let added = !matches!(f.order_id(name), Ok(id) if state.world.order(&id).is_none());
        match p.status(f.at) {
            Some(Status::Ordered) => continue,
            _ if added => continue,
            None => unplanned.push(f),
            Some(_) => {}
        }
        due.push(f);
    }
    // Instants the plan does not hold (before the schedule was deployed, or forgotten) are
    // put in it first, its mark unchanged.
    for chunk in unplanned.chunks(PLANNED_EVENT_FIRES_MAX) {
        out.push(Body::Plan(PlanEvent::Planned {
            schedule: name.clone(),
            until: p.planned_until,
            fires: chunk.to_vec(),
        }));
    }
    let limits = OrderLimits::default();
    for f in &due {
        let Ok(id) = f.order_id(name) else { continue };
        let vars = match args_of(&p.schedule, &f.fire()) {
            Ok(v) => v,
            Err(e) => return Err(bad(format!("arguments of {id}: {e}"))),
        };
        let add = Command::Add {
            id,
            workflow: p.schedule.workflow.clone(),
            vars,
            scheduled_for: Some(f.at),
        };
        let accepted = order::command(&state.world, add, now, &limits)?;
        out.extend(accepted.events.into_iter().map(Body::Event));
        out.push(Body::Plan(PlanEvent::Ordered {
            schedule: name.clone(),
            at: f.at,
        }));
    }
    Ok(())
}
