//! The fixpoint loop: apply events, step the orders they affect, until nothing moves.

use super::event::{ItemEvent, KeyedEvent, OrderEvent};
use super::input::OrderLimits;
use super::state::{Holder, OrderState, Wait};
use super::step::step_with;
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
                // An ended added order may be removed once its waiter has moved on.
                if let OrderState::Waiting(Wait::AddedOrder { order }) = &o.state {
                    out.push(order.clone());
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

/// What a driver gives the [`Settler`]: its world, and a way to journal and apply an event.
pub trait Driver {
    fn world(&self) -> &World;
    /// Journals `event` (in the round's batch) and applies it to the world. When the world
    /// refuses it, nothing is journaled and nothing changed: the driver logs [`refused`]'s
    /// message.
    fn emit(&mut self, event: KeyedEvent);
}

/// The one policy for an event a side made (by `step`, a command or a job's end) that its
/// own world refuses: that is a bug of the model. Debug builds and tests stop here; a release
/// build leaves the event out of the journal (the state did not change, so journal and state
/// agree) and the driver logs the message this returns as an error.
pub fn refused(event: &KeyedEvent, error: &dyn std::fmt::Display) -> String {
    let message = format!(
        "an event this side made does not apply to its own state and is not journaled: {} {} ({error})",
        event.key(),
        match event {
            KeyedEvent::Order { event, .. } => event.name(),
            KeyedEvent::Item(_) => "inventory event",
            KeyedEvent::Board { .. } => "board event",
        }
    );
    debug_assert!(false, "{message}");
    message
}

/// The orders to step, and the orders a round touched (stepped, or concerned by an event),
/// whose actions the driver works out after the round.
///
/// Events enter through [`Settler::note`], before they are applied; [`Settler::settle`] steps
/// queued orders through a [`Driver`] until the fixpoint or a bound.
#[derive(Debug, Default, Clone)]
pub struct Settler {
    queue: VecDeque<OrderId>,
    queued: BTreeSet<OrderId>,
    touched: Vec<OrderId>,
    touched_set: BTreeSet<OrderId>,
}

impl Settler {
    pub fn new() -> Settler {
        Settler::default()
    }

    pub fn push(&mut self, id: OrderId) {
        self.touch(&id);
        if self.queued.insert(id.clone()) {
            self.queue.push_back(id);
        }
    }

    /// Marks an order as touched (its actions are worked out again) without stepping it.
    pub fn touch(&mut self, id: &OrderId) {
        if self.touched_set.insert(id.clone()) {
            self.touched.push(id.clone());
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

    /// Queues every order (a new leader, a rebuild).
    pub fn push_all(&mut self, world: &World) {
        let ids: Vec<OrderId> = world.orders.keys().cloned().collect();
        for id in ids {
            self.push(id);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Slots of the queue (a driver keeps them bounded after a large round).
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    pub fn shrink_to(&mut self, slots: usize) {
        self.queue.shrink_to(slots);
        self.touched.shrink_to(slots);
    }

    /// The orders touched since the last call, in the order they were first touched.
    pub fn take_touched(&mut self) -> Vec<OrderId> {
        self.touched_set.clear();
        std::mem::take(&mut self.touched)
    }

    /// Forgets queued and touched orders.
    pub fn clear(&mut self) {
        *self = Settler::default();
    }

    /// Queues the orders `event` affects; call it before the event is applied.
    pub fn note(&mut self, world: &World, event: &KeyedEvent) {
        for id in affected(world, event) {
            self.push(id);
        }
    }

    /// Applies an event and queues the orders it affects.
    pub fn apply(&mut self, world: &mut World, event: &KeyedEvent) -> Result<(), ApplyError> {
        self.note(world, event);
        world.apply(event)
    }

    /// Steps queued orders and emits their events through `driver`, until the queue is
    /// empty — the fixpoint, returns `true` — or `events_max` events were made — returns
    /// `false`; call again to go on.
    ///
    /// The fixpoint is reached: every event either moves an order forward through a finite
    /// unfolding of its workflow (cycles and retries are bounded by their counts and
    /// periods), or makes it wait (job, timer, lock, notice, answer, other orders, other
    /// side), and an order is stepped again only after an event that concerns it.
    pub fn settle<D: Driver>(
        &mut self,
        driver: &mut D,
        now: TimeMs,
        limits: &OrderLimits,
        events_max: usize,
    ) -> bool {
        let mut made = 0;
        while made < events_max {
            let Some(id) = self.queue.pop_front() else {
                return true;
            };
            self.queued.remove(&id);
            for event in step_with(driver.world(), &id, now, limits) {
                self.note(driver.world(), &event);
                driver.emit(event);
                made += 1;
            }
        }
        self.queue.is_empty()
    }

    /// [`Settler::settle`] on a bare world (simulations, tests): the events are applied and
    /// appended to `out`; an event that does not apply is [`refused`].
    pub fn run(
        &mut self,
        world: &mut World,
        now: TimeMs,
        events_max: usize,
        out: &mut Vec<KeyedEvent>,
    ) -> bool {
        struct Bare<'a> {
            world: &'a mut World,
            out: &'a mut Vec<KeyedEvent>,
        }
        impl Driver for Bare<'_> {
            fn world(&self) -> &World {
                self.world
            }
            fn emit(&mut self, event: KeyedEvent) {
                match self.world.apply(&event) {
                    Ok(()) => self.out.push(event),
                    Err(e) => {
                        refused(&event, &e);
                    }
                }
            }
        }
        self.settle(
            &mut Bare { world, out },
            now,
            &OrderLimits::default(),
            events_max,
        )
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
        // An agent repeats the job settings it was handed with an order; once they were
        // deployed anew here its copy is older and changes nothing.
        KeyedEvent::Item(ItemEvent::JobSettings { workflow, jobs }) => {
            match world.extras.jobs.get(workflow) == Some(jobs) {
                true => Ok(()),
                false => Err(format!(
                    "agent {agent} repeats job settings of {workflow} that are not the deployed ones"
                )),
            }
        }
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
                // An agent repeats the options it was handed, never others.
                OrderEvent::OptionsSet { options } => {
                    o.holder == Holder::Agent(agent.clone()) && world.options(id) == *options
                }
                OrderEvent::Added { .. }
                | OrderEvent::PlannedBy { .. }
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
