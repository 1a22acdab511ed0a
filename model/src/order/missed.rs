//! The `missed:` policy of a planned order, applied by whoever holds the order at its instant.
//!
//! The daily plan adds the order of a planned instant ahead of time (`attach_ahead_ms`), and the
//! model hands it to the agent of its first job at once. When nobody could start it at its
//! instant (its agent was down, the controller was down with the order still on it) and its
//! holder gets to it more than `late_ms` after the instant, the schedule's `missed:` policy
//! decides, by the same rule the controller's planner uses for instants whose order was never
//! added ([`keeps`]):
//!
//! - `catch-up`: it starts, late;
//! - `latest`: it starts only if no other planned order of the same schedule that its holder
//!   holds is also late and planned for a later instant;
//! - `skip`: it does not start.
//!
//! An order that does not start gets [`OrderEvent::Missed`] and is then cancelled by the
//! controller (an agent hands it back first); the controller's fold marks its instant in the
//! plan as skipped (missed).
//!
//! The policy travels with the order as a [`Frame::Planned`] that the controller's
//! [`OrderEvent::PlannedBy`] puts on it right after `Added`: the `Order` an agent is handed
//! carries it, and no persisted struct changes. The frame sits at [`PLANNED_AT`], a position
//! no instruction has, so no instruction finds it as its own and the order's first move drops
//! it.

use super::event::{KeyedEvent, OrderEvent};
use super::state::{BlockFrame, Frame, Order, OrderState};
use super::step::cancel_events;
use super::world::World;
use super::{Accepted, Command, CommandError, OrderLimits, command};
use crate::ids::ScheduleName;
use crate::position::Position;
use crate::schedule::Missed;
use crate::time::TimeMs;

/// Where a [`Frame::Planned`] sits: an index no block reaches, enclosing nothing.
pub const PLANNED_AT: Position = Position {
    outer: Vec::new(),
    index: u32::MAX,
};

/// The plan's policy an order carries, if it is a planned order that has not moved yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy<'o> {
    pub schedule: &'o ScheduleName,
    pub missed: Missed,
    pub late_ms: u64,
    /// Set once the holder found the instant missed and the policy drops the order.
    pub missed_by_ms: Option<u64>,
}

/// The policy `order` carries.
pub fn policy(order: &Order) -> Option<Policy<'_>> {
    order.frames.iter().find_map(|f| match &f.frame {
        Frame::Planned {
            schedule,
            missed,
            late_ms,
            missed_by_ms,
        } if f.at == PLANNED_AT => Some(Policy {
            schedule,
            missed: *missed,
            late_ms: *late_ms,
            missed_by_ms: *missed_by_ms,
        }),
        _ => None,
    })
}

/// Whether the `i`-th (from 0, in instant order) of `late` late instants of a schedule still
/// adds (or starts) its order under `missed`: the one rule of the controller's planner and of
/// an order's holder.
pub fn keeps(missed: Missed, i: usize, late: usize) -> bool {
    debug_assert!(i < late, "the instant is one of the late ones");
    match missed {
        Missed::CatchUp => true,
        Missed::Latest => i + 1 == late,
        Missed::Skip => false,
    }
}

/// How late an instant `at` is at `now`, if it passed by more than `late_ms`.
pub fn late_by(at: TimeMs, now: TimeMs, late_ms: u64) -> Option<u64> {
    let by = u64::try_from(now.0.saturating_sub(at.0)).ok()?;
    (by > late_ms).then_some(by)
}

/// What the holder of the fresh order `o` does about its policy at `now` (`None`: nothing,
/// the order starts or waits as any scheduled order). Called by `step` for a fresh order
/// without a go mark.
pub(crate) fn decide(
    world: &World,
    o: &Order,
    now: TimeMs,
    controller: bool,
) -> Option<Vec<KeyedEvent>> {
    debug_assert_eq!(o.state, OrderState::Fresh);
    let p = policy(o)?;
    if p.missed_by_ms.is_some() {
        // Dropped: the controller cancels it; an agent hands it back for that.
        return Some(if controller {
            cancel_events(o)
        } else {
            vec![KeyedEvent::order(&o.id, OrderEvent::Detachable)]
        });
    }
    let at = o.scheduled_for?;
    let by = late_by(at, now, p.late_ms)?;
    // The late planned orders of the same schedule this side holds, in instant order.
    let mut late: Vec<TimeMs> = world
        .orders
        .values()
        .filter(|x| x.state == OrderState::Fresh && x.holder.is_held_by(world.side()))
        .filter_map(|x| {
            let q = policy(x)?;
            let t = x.scheduled_for?;
            (q.schedule == p.schedule
                && q.missed_by_ms.is_none()
                && late_by(t, now, q.late_ms).is_some())
            .then_some(t)
        })
        .collect();
    late.sort_unstable();
    late.dedup();
    let i = late.iter().position(|t| *t == at)?;
    if keeps(p.missed, i, late.len()) {
        return None;
    }
    Some(vec![KeyedEvent::order(
        &o.id,
        OrderEvent::Missed { late_by_ms: by },
    )])
}

/// Puts the policy on `order` (applying [`OrderEvent::PlannedBy`]).
pub(crate) fn set_policy(order: &mut Order, schedule: &ScheduleName, missed: Missed, late_ms: u64) {
    order
        .frames
        .retain(|f| !matches!(f.frame, Frame::Planned { .. }));
    order.frames.push(BlockFrame {
        at: PLANNED_AT,
        frame: Frame::Planned {
            schedule: schedule.clone(),
            missed,
            late_ms,
            missed_by_ms: None,
        },
    });
}

/// Marks `order` as missed (applying [`OrderEvent::Missed`]).
pub(crate) fn set_missed(order: &mut Order, by: u64) -> Result<(), String> {
    let frame = order
        .frames
        .iter_mut()
        .find_map(|f| match &mut f.frame {
            Frame::Planned { missed_by_ms, .. } if f.at == PLANNED_AT => Some(missed_by_ms),
            _ => None,
        })
        .ok_or_else(|| "the order is not a planned order".to_owned())?;
    if frame.is_some() {
        return Err("the order was missed already".to_owned());
    }
    *frame = Some(by);
    Ok(())
}

/// The events that add the planned order `add` (a [`Command::Add`] or
/// [`Command::AddWithOptions`] with the instant as its
/// scheduled time) of `schedule` with its policy: the add's own, then
/// [`OrderEvent::PlannedBy`] (none when the order existed already).
pub fn add_planned(
    world: &World,
    add: Command,
    schedule: &ScheduleName,
    missed: Missed,
    late_ms: u64,
    now: TimeMs,
    limits: &OrderLimits,
) -> Result<Accepted, CommandError> {
    let id = match &add {
        Command::Add { id, .. } | Command::AddWithOptions { id, .. } => id.clone(),
        _ => {
            debug_assert!(false, "add_planned takes an add");
            return command(world, add, now, limits);
        }
    };
    let mut accepted = command(world, add, now, limits)?;
    if !accepted.duplicate && !accepted.events.is_empty() {
        accepted.events.push(KeyedEvent::order(
            &id,
            OrderEvent::PlannedBy {
                schedule: schedule.clone(),
                missed,
                late_ms,
            },
        ));
    }
    Ok(accepted)
}
