//! [`JobQueue`]: which ready order of an agent starts its job next.
//!
//! The rule: an order held by this agent, `Ready` at a job of this agent and without a mark,
//! waits for its job. It starts when its job has fewer orders `Processing` than its
//! `parallelism` (a start counts from the moment it is decided: the driver journals
//! `ProcessingStarted` at once, before the process exists) and the driver has room: a place
//! among the jobs handed to its workers, and an outbox that is not full — unreleased event
//! bytes plus, per processing order, its headroom (`log_bytes_max` and its final events)
//! below `outbox_bytes_max`. Among the orders that may start, the one of the highest priority
//! ([`World::priority`]) starts first, and among equal priorities the one that became ready
//! first (FIFO per job, and across jobs by the same rank).
//!
//! The queue is the agent's bookkeeping of that rule, kept up to date from the orders a round
//! touched ([`JobQueue::note`]) so that a start costs no scan of every order. In debug builds
//! and in tests, [`JobQueue::check`] recounts it from the world.

use super::action::{StartJob, start_job};
use super::nav::instruction_at;
use super::state::{Order, OrderState, Side};
use super::world::World;
use crate::ids::{JobName, OrderId, WorkflowName};
use crate::inventory::Instruction;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// An order's place in its job's queue: higher priority first, then earlier ready first.
type Rank = (Reverse<i32>, u64);

/// A job of a workflow (its `parallelism` counts across the workflow's versions).
pub type JobKey = (WorkflowName, JobName);

/// What the driver has room for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Jobs the workers can take now.
    pub starts_max: usize,
    /// Unreleased event bytes in the outbox.
    pub outbox_bytes: u64,
    pub outbox_bytes_max: u64,
    /// Outbox bytes kept free per processing order for its output and final events.
    pub headroom_per_job_bytes: u64,
}

impl Room {
    /// Room without limits (simulations).
    pub fn unlimited() -> Room {
        Room {
            starts_max: usize::MAX,
            outbox_bytes: 0,
            outbox_bytes_max: u64::MAX,
            headroom_per_job_bytes: 0,
        }
    }
}

/// An order the queue let go: its job, rendered, or why it could not be rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    Job(Box<StartJob>),
    /// The job's arguments or environment could not be rendered: the order is disrupted at
    /// its job (`step` disrupts such an order before it waits, so this is a backstop).
    Unrenderable {
        order: OrderId,
        error: String,
    },
}

/// The starts of one look at the queue.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Starts {
    pub starts: Vec<Start>,
    /// Starts wait for the outbox to have room.
    pub outbox_full: bool,
}

/// Ready orders waiting for their job, and the orders processing per job.
#[derive(Debug, Default, Clone)]
pub struct JobQueue {
    next_seq: u64,
    /// Per job, its waiting orders by rank (highest priority, then earliest ready, first).
    waiting: BTreeMap<JobKey, BTreeSet<(Rank, OrderId)>>,
    queued: BTreeMap<OrderId, (JobKey, Rank)>,
    /// Orders `Processing` per job.
    running: BTreeMap<JobKey, u32>,
    running_total: u64,
    counted: BTreeMap<OrderId, JobKey>,
    /// Nothing could start at the last look, and nothing changed since.
    settled: bool,
}

/// The job the order stands at, when its side runs it.
fn own_job(world: &World, o: &Order) -> Option<JobKey> {
    let Side::Agent(me) = world.side() else {
        return None;
    };
    if !o.holder.is_held_by(world.side()) {
        return None;
    }
    let workflow = world.workflow(&o.workflow, o.version)?;
    let Some(Instruction::Run { job, .. }) = instruction_at(&workflow.steps, &o.position) else {
        return None;
    };
    let spec = workflow.jobs.get(job)?;
    (spec.agent == *me).then(|| (o.workflow.clone(), job.clone()))
}

/// Whether the order waits for its job: the rule of the module doc.
pub fn waits_for_job(world: &World, o: &Order) -> Option<JobKey> {
    if o.state != OrderState::Ready || o.mark.is_some() {
        return None;
    }
    own_job(world, o)
}

fn processing_job(world: &World, o: &Order) -> Option<JobKey> {
    if !matches!(o.state, OrderState::Processing { .. }) {
        return None;
    }
    own_job(world, o)
}

impl JobQueue {
    pub fn new() -> JobQueue {
        JobQueue::default()
    }

    /// A queue for the world as it is (after a restart): every order it holds is noted.
    pub fn of(world: &World) -> JobQueue {
        let mut queue = JobQueue::new();
        queue.note_all(world);
        queue
    }

    /// Notes every order of the world and every order the queue knows (which may have left
    /// the world): for a driver that does not track what changed.
    pub fn note_all(&mut self, world: &World) {
        let mut ids: BTreeSet<OrderId> = world.orders.keys().cloned().collect();
        ids.extend(self.counted.keys().cloned());
        ids.extend(self.queued.keys().cloned());
        self.note(world, &ids);
    }

    /// Orders waiting for their job.
    pub fn waiting(&self) -> usize {
        self.queued.len()
    }

    /// Orders processing (their start decided).
    pub fn processing(&self) -> u64 {
        self.running_total
    }

    /// Forgets everything (the agent was reset).
    pub fn clear(&mut self) {
        *self = JobQueue::new();
    }

    /// Something outside the world changed the room (events released, space back): look again.
    pub fn wake(&mut self) {
        self.settled = false;
    }

    /// Takes note of orders that may have changed (a round's touched orders).
    pub fn note<'a>(&mut self, world: &World, ids: impl IntoIterator<Item = &'a OrderId>) {
        for id in ids {
            let (waits, processing) = match world.order(id) {
                Some(o) => (waits_for_job(world, o), processing_job(world, o)),
                None => (None, None),
            };
            self.count(id, processing);
            self.queue(world, id, waits);
        }
    }

    fn count(&mut self, id: &OrderId, processing: Option<JobKey>) {
        if self.counted.get(id) == processing.as_ref() {
            return;
        }
        if let Some(old) = self.counted.remove(id) {
            let n = self.running.get_mut(&old);
            assert!(
                n.as_ref().is_some_and(|n| **n > 0),
                "order {id} was counted at job {}/{} without a count there",
                old.0,
                old.1
            );
            if let Some(n) = n {
                *n -= 1;
                if *n == 0 {
                    self.running.remove(&old);
                }
            }
            self.running_total -= 1;
            self.settled = false;
        }
        if let Some(key) = processing {
            *self.running.entry(key.clone()).or_default() += 1;
            self.running_total += 1;
            self.counted.insert(id.clone(), key);
        }
    }

    fn queue(&mut self, world: &World, id: &OrderId, waits: Option<JobKey>) {
        match (self.queued.get(id), waits) {
            (Some((key, _)), Some(now)) if *key == now => {}
            (None, None) => {}
            (_, waits) => {
                self.unqueue(id);
                if let Some(key) = waits {
                    let rank = (Reverse(world.priority(id)), self.next_seq);
                    self.next_seq += 1;
                    self.waiting
                        .entry(key.clone())
                        .or_default()
                        .insert((rank, id.clone()));
                    self.queued.insert(id.clone(), (key, rank));
                    self.settled = false;
                }
            }
        }
    }

    fn unqueue(&mut self, id: &OrderId) {
        if let Some((key, rank)) = self.queued.remove(id) {
            let mut removed = false;
            if let Some(set) = self.waiting.get_mut(&key) {
                removed = set.remove(&(rank, id.clone()));
                if set.is_empty() {
                    self.waiting.remove(&key);
                }
            }
            debug_assert!(removed, "a queued order is in its job's queue");
        }
    }

    /// The orders that start now, in order, and takes them out of the queue. The driver must
    /// journal `ProcessingStarted` for each started job at once (they count as processing
    /// from here), and disrupt each unrenderable one at its job.
    pub fn starts(&mut self, world: &World, room: Room) -> Starts {
        let mut out = Starts::default();
        if self.settled {
            return out;
        }
        while out.starts.len() < room.starts_max {
            let Some((key, id)) = self.next_startable(world) else {
                self.settled = true;
                return out;
            };
            let headroom = self
                .running_total
                .saturating_mul(room.headroom_per_job_bytes);
            if room.outbox_bytes.saturating_add(headroom) >= room.outbox_bytes_max {
                out.outbox_full = true;
                self.settled = true;
                return out;
            }
            self.unqueue(&id);
            let Some(o) = world.order(&id) else {
                debug_assert!(false, "a queued order {id} is in the world");
                continue;
            };
            match start_job(world, o) {
                Ok(start) => {
                    self.count(&id, Some(key));
                    out.starts.push(Start::Job(Box::new(start)));
                }
                Err(error) => out.starts.push(Start::Unrenderable { order: id, error }),
            }
        }
        out
    }

    /// The head of the job queues with a free slot of the best rank.
    fn next_startable(&self, world: &World) -> Option<(JobKey, OrderId)> {
        let mut best: Option<(Rank, &JobKey, &OrderId)> = None;
        for (key, set) in &self.waiting {
            let Some((rank, id)) = set.first() else {
                continue;
            };
            if best.is_some_and(|(b, _, _)| b < *rank) {
                continue;
            }
            let parallelism = world
                .order(id)
                .and_then(|o| world.workflow(&o.workflow, o.version))
                .and_then(|w| w.jobs.get(&key.1))
                .map_or(1, |j| j.parallelism.max(1));
            if self.running.get(key).copied().unwrap_or(0) < parallelism {
                best = Some((*rank, key, id));
            }
        }
        best.map(|(_, key, id)| (key.clone(), id.clone()))
    }

    /// Recounts the queue from the world and panics where it disagrees: the invariants of the
    /// agent's bookkeeping (debug builds and tests call it after every round).
    pub fn check(&self, world: &World) {
        let mut running: BTreeMap<JobKey, u32> = BTreeMap::new();
        for o in world.orders.values() {
            if let Some(key) = processing_job(world, o) {
                *running.entry(key).or_default() += 1;
            }
            let waits = waits_for_job(world, o);
            assert_eq!(
                self.queued.get(&o.id).map(|(k, _)| k),
                waits.as_ref(),
                "order {} waits for its job exactly when it is queued",
                o.id
            );
        }
        assert_eq!(running, self.running, "orders processing per job");
        assert_eq!(
            self.running_total,
            running.values().map(|n| u64::from(*n)).sum::<u64>(),
            "orders processing in all"
        );
        assert_eq!(
            self.queued.len(),
            self.waiting.values().map(BTreeSet::len).sum::<usize>(),
            "every queued order is in its job's queue once"
        );
        for id in self.queued.keys() {
            assert!(world.order(id).is_some(), "queued order {id} exists");
        }
    }
}
