//! The fixpoint loop: apply events, step the orders they affect, until nothing moves.

use super::event::{ItemEvent, KeyedEvent, OrderEvent};
use super::state::{Holder, OrderState, Wait};
use super::step::step;
use super::world::{ApplyError, World};
use crate::ids::{AgentId, LockName, OrderId};
use crate::time::TimeMs;
use std::collections::{BTreeSet, VecDeque};

/// The orders whose `step` may give new events once `event` is applied. Call it before
/// applying the event (a detached or joined order is gone afterwards).
pub fn affected(world: &World, event: &KeyedEvent) -> Vec<OrderId> {
    let mut out = Vec::new();
    let lock_heads = |lock: &LockName, out: &mut Vec<OrderId>| {
        if let Some(state) = world.locks.get(lock) {
            out.extend(state.queue.iter().take(2).map(|(id, _)| id.clone()));
        }
    };
    match event {
        KeyedEvent::Item(ItemEvent::LockDeployed(lock)) => lock_heads(&lock.name, &mut out),
        KeyedEvent::Item(_) => {}
        KeyedEvent::Board { board, .. } => {
            for o in world.orders.values() {
                if let OrderState::Waiting(Wait::Notices { boards, .. }) = &o.state
                    && boards.contains(board)
                {
                    out.push(o.id.clone());
                }
            }
        }
        KeyedEvent::Order { id, event } => {
            out.push(id.clone());
            if let Some(o) = world.order(id) {
                out.extend(o.parent.iter().cloned());
                out.extend(o.added_by.iter().cloned());
                if let OrderState::Waiting(Wait::Children { children }) = &o.state {
                    out.extend(children.iter().cloned());
                }
                if let OrderState::Waiting(Wait::Lock { lock, .. }) = &o.state {
                    lock_heads(lock, &mut out);
                }
            }
            match event {
                OrderEvent::Forked { children } => {
                    out.extend(children.iter().map(|c| c.id.clone()))
                }
                OrderEvent::LockReleased { lock } | OrderEvent::LockAcquired { lock, .. } => {
                    lock_heads(lock, &mut out)
                }
                _ => {}
            }
        }
    }
    out
}

/// A queue of orders to step, for callers that apply events as they make them (agents,
/// simulations, tests). The controller may use it too, or step, journal and apply
/// committed events in rounds with [`affected`].
#[derive(Debug, Default, Clone)]
pub struct Settler {
    queue: VecDeque<OrderId>,
    queued: BTreeSet<OrderId>,
}

impl Settler {
    pub fn new() -> Settler {
        Settler::default()
    }

    pub fn push(&mut self, id: OrderId) {
        if self.queued.insert(id.clone()) {
            self.queue.push_back(id);
        }
    }

    /// Queues every order this side holds (after a restart, or when time advanced).
    pub fn push_held(&mut self, world: &World) {
        let held: Vec<OrderId> = world
            .orders
            .values()
            .filter(|o| o.holder.is_held_by(world.side()))
            .map(|o| o.id.clone())
            .collect();
        for id in held {
            self.push(id);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Applies an event and queues the orders it affects.
    pub fn apply(&mut self, world: &mut World, event: &KeyedEvent) -> Result<(), ApplyError> {
        let ids = affected(world, event);
        world.apply(event)?;
        for id in ids {
            self.push(id);
        }
        Ok(())
    }

    /// Steps queued orders and applies their events (appending them to `out`) until the
    /// queue is empty — the fixpoint, returns `true` — or `events_max` events were made —
    /// returns `false`; call again to go on.
    ///
    /// The fixpoint is reached: every event either moves an order forward through a finite
    /// unfolding of its workflow (cycles and retries are bounded by their counts and
    /// periods), or makes it wait (job, timer, lock, notice, answer, other orders, other
    /// side), and an order is stepped again only after an event that concerns it.
    pub fn run(
        &mut self,
        world: &mut World,
        now: TimeMs,
        events_max: usize,
        out: &mut Vec<KeyedEvent>,
    ) -> Result<bool, ApplyError> {
        let mut made = 0;
        while let Some(id) = self.queue.pop_front() {
            self.queued.remove(&id);
            for event in step(world, &id, now) {
                self.apply(world, &event)?;
                out.push(event);
                made += 1;
            }
            if made >= events_max {
                return Ok(self.queue.is_empty());
            }
        }
        Ok(true)
    }
}

/// Whether the controller should apply an event forwarded by `agent`: the event must
/// concern an order that agent holds (or is being handed to or from it), or be the
/// deployment of a workflow it was given.
pub fn accepts_from_agent(
    world: &World,
    agent: &AgentId,
    event: &KeyedEvent,
) -> Result<(), String> {
    match event {
        KeyedEvent::Item(ItemEvent::WorkflowDeployed { .. }) => Ok(()),
        KeyedEvent::Item(_) | KeyedEvent::Board { .. } => Err(format!(
            "agent {agent} may not change the inventory or boards"
        )),
        KeyedEvent::Order { id, event } => {
            let Some(o) = world.order(id) else {
                return Err(format!("agent {agent} reports unknown order {id}"));
            };
            let ok = match event {
                OrderEvent::Attached { .. } => o.holder == Holder::Attaching(agent.clone()),
                OrderEvent::Detached => o.holder == Holder::Detaching(agent.clone()),
                OrderEvent::MarkedOnAgent { .. } => {
                    matches!(&o.holder, Holder::Agent(a) | Holder::Detaching(a) if a == agent)
                }
                OrderEvent::Added { .. }
                | OrderEvent::Attachable { .. }
                | OrderEvent::Marked { .. }
                | OrderEvent::Removed => false,
                _ => o.holder == Holder::Agent(agent.clone()),
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "agent {agent} reports {} for order {id}, held by {}",
                    event.name(),
                    o.holder
                ))
            }
        }
    }
}
