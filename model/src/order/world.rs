//! The state one side holds, and [`World::apply`], the only function that changes it.

use super::event::{BoardEvent, ItemEvent, KeyedEvent, OrderEvent};
use super::options::{Extras, OrderOptions};
use super::state::{BlockFrame, Frame, Holder, Order, OrderState, Side, Wait, encloses};
use crate::ids::{AgentId, BoardName, LockName, OrderId, VersionId, WorkflowName};
use crate::inventory::{Agent, Workflow};
use crate::position::{BlockKey, Position};
use crate::time::{DurationMs, TimeMs};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A lock: its limit, who holds how much, and who waits: higher priority first, then first
/// come first served.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LockState {
    pub limit: u32,
    pub holders: BTreeMap<OrderId, u32>,
    pub queue: VecDeque<(OrderId, u32)>,
}

impl LockState {
    pub fn used(&self) -> u64 {
        self.holders.values().map(|c| u64::from(*c)).sum()
    }

    /// Whether `count` more fit.
    pub fn fits(&self, count: u32) -> bool {
        self.used() + u64::from(count) <= u64::from(self.limit)
    }
}

/// A notice board: how long a notice lives, and the notices by key with their end.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BoardState {
    pub lifetime: DurationMs,
    pub notices: BTreeMap<String, TimeMs>,
}

impl BoardState {
    /// Whether a live notice with `key` exists at `now`.
    pub fn has(&self, key: &str, now: TimeMs) -> bool {
        self.notices.get(key).is_some_and(|until| *until > now)
    }
}

/// Why an event does not apply. The world is unchanged when `apply` fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("order {0} does not exist")]
    UnknownOrder(OrderId),
    #[error("order {0} exists already")]
    OrderExists(OrderId),
    #[error("workflow {0} {1} is not deployed")]
    UnknownWorkflow(WorkflowName, VersionId),
    #[error("workflow {0} {1} is deployed already with other content")]
    WorkflowChanged(WorkflowName, VersionId),
    #[error("lock {0} is not deployed")]
    UnknownLock(LockName),
    #[error("board {0} is not deployed")]
    UnknownBoard(BoardName),
    /// The event does not fit the order's state.
    #[error("order {order}: {event} does not apply: {why}")]
    Unexpected {
        order: OrderId,
        event: &'static str,
        why: String,
    },
}

/// Everything one side knows: deployed items, orders, locks and boards.
///
/// The controller's world is the fold of its journal; an agent's world is the fold of its own
/// journal and holds only the orders attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct World {
    side: Side,
    pub workflows: BTreeMap<WorkflowName, BTreeMap<VersionId, Workflow>>,
    pub agents: BTreeMap<AgentId, Agent>,
    pub locks: BTreeMap<LockName, LockState>,
    pub boards: BTreeMap<BoardName, BoardState>,
    pub orders: BTreeMap<OrderId, Order>,
    /// Order options and workflow settings ([`super::options`]). Left out of the world's own
    /// serde: the states that snapshot a world write it last.
    #[serde(skip)]
    pub extras: Extras,
}

impl World {
    pub fn new(side: Side) -> World {
        World {
            side,
            workflows: BTreeMap::new(),
            agents: BTreeMap::new(),
            locks: BTreeMap::new(),
            boards: BTreeMap::new(),
            orders: BTreeMap::new(),
            extras: Extras::default(),
        }
    }

    /// The options an order was added with (a fork child has its parent's).
    pub fn options(&self, id: &OrderId) -> OrderOptions {
        let mut id = id;
        for _ in 0..=super::step::FORK_DEPTH_MAX {
            if let Some(options) = self.extras.orders.get(id) {
                return *options;
            }
            match self.orders.get(id).and_then(|o| o.parent.as_ref()) {
                Some(parent) => id = parent,
                None => break,
            }
        }
        OrderOptions::default()
    }

    /// The settings of job `job` of workflow `workflow` (the defaults when it has none).
    pub fn job_settings(
        &self,
        workflow: &crate::ids::WorkflowName,
        job: &crate::ids::JobName,
    ) -> crate::inventory::JobSettings {
        self.extras
            .jobs
            .get(workflow)
            .and_then(|jobs| jobs.get(job))
            .cloned()
            .unwrap_or_default()
    }

    /// The order's priority: higher goes first in lock and job queues.
    pub fn priority(&self, id: &OrderId) -> i32 {
        self.options(id).priority
    }

    /// Whether the order is removed once it has finished or was cancelled: as it was added,
    /// else as its workflow says. A fork child never is (it goes with its join).
    pub fn deletes_when_terminated(&self, o: &Order) -> bool {
        if o.parent.is_some() {
            return false;
        }
        match self
            .extras
            .orders
            .get(&o.id)
            .and_then(|x| x.delete_when_terminated)
        {
            Some(delete) => delete,
            None => self
                .extras
                .workflows
                .get(&o.workflow)
                .is_some_and(|s| s.delete_when_terminated),
        }
    }

    /// The side this world belongs to; `step` and `actions` act for it.
    pub fn side(&self) -> &Side {
        &self.side
    }

    pub fn workflow(&self, name: &WorkflowName, version: VersionId) -> Option<&Workflow> {
        self.workflows.get(name)?.get(&version)
    }

    /// The newest deployed version of a workflow.
    pub fn latest(&self, name: &WorkflowName) -> Option<(VersionId, &Workflow)> {
        self.workflows
            .get(name)?
            .iter()
            .next_back()
            .map(|(v, w)| (*v, w))
    }

    /// The settings of agent cluster `agent` (the defaults when none were deployed).
    pub fn cluster_settings(&self, agent: &AgentId) -> crate::inventory::ClusterSettings {
        self.extras.agents.get(agent).cloned().unwrap_or_default()
    }

    pub fn order(&self, id: &OrderId) -> Option<&Order> {
        self.orders.get(id)
    }

    /// Whether this side holds the order (may move it).
    pub fn holds(&self, id: &OrderId) -> bool {
        self.orders
            .get(id)
            .is_some_and(|o| o.holder.is_held_by(&self.side))
    }

    /// Applies one event. Deterministic: the same events in the same order give the same world.
    pub fn apply(&mut self, event: &KeyedEvent) -> Result<(), ApplyError> {
        match event {
            KeyedEvent::Item(e) => self.apply_item(e),
            KeyedEvent::Board { board, event } => self.apply_board(board, event),
            KeyedEvent::Order { id, event } => self.apply_order(id, event),
        }
    }

    fn apply_item(&mut self, event: &ItemEvent) -> Result<(), ApplyError> {
        match event {
            ItemEvent::WorkflowDeployed { version, workflow } => {
                let in_use = self
                    .orders
                    .values()
                    .any(|o| o.workflow == workflow.name && o.version == *version);
                let versions = self.workflows.entry(workflow.name.clone()).or_default();
                match versions.get(version) {
                    // A version no order here uses may be replaced: the workflow was removed
                    // and deployed again, numbering its versions from 1 (an agent keeps the
                    // workflows it was given).
                    Some(existing) if existing != workflow.as_ref() && !in_use => {
                        versions.insert(*version, workflow.as_ref().clone());
                        Ok(())
                    }
                    Some(existing) if existing != workflow.as_ref() => {
                        Err(ApplyError::WorkflowChanged(workflow.name.clone(), *version))
                    }
                    Some(_) => Ok(()),
                    None => {
                        versions.insert(*version, workflow.as_ref().clone());
                        Ok(())
                    }
                }
            }
            ItemEvent::AgentDeployed(agent) => {
                self.agents.insert(agent.id.clone(), agent.clone());
                Ok(())
            }
            ItemEvent::LockDeployed(lock) => {
                self.locks.entry(lock.name.clone()).or_default().limit = lock.limit;
                Ok(())
            }
            ItemEvent::BoardDeployed(board) => {
                self.boards.entry(board.name.clone()).or_default().lifetime = board.lifetime;
                Ok(())
            }
            ItemEvent::WorkflowRemoved(name) => {
                self.workflows.remove(name);
                self.extras.jobs.remove(name);
                Ok(())
            }
            ItemEvent::AgentRemoved(id) => {
                self.agents.remove(id);
                self.extras.agents.remove(id);
                self.extras.backup_directors.remove(id);
                self.extras.priorities.remove(id);
                Ok(())
            }
            ItemEvent::LockRemoved(name) => {
                self.locks.remove(name);
                Ok(())
            }
            ItemEvent::BoardRemoved(name) => {
                self.boards.remove(name);
                Ok(())
            }
            ItemEvent::AgentPriorities { agent, priorities } => {
                if priorities.is_empty() {
                    self.extras.priorities.remove(agent);
                } else {
                    self.extras
                        .priorities
                        .insert(agent.clone(), priorities.clone());
                }
                Ok(())
            }
            ItemEvent::AgentBackupDirector { agent, url } => {
                match url {
                    Some(url) => {
                        self.extras
                            .backup_directors
                            .insert(agent.clone(), url.clone());
                    }
                    None => {
                        self.extras.backup_directors.remove(agent);
                    }
                }
                Ok(())
            }
            ItemEvent::AgentSettings { agent, settings } => {
                if *settings == crate::inventory::ClusterSettings::default() {
                    self.extras.agents.remove(agent);
                } else {
                    self.extras.agents.insert(agent.clone(), settings.clone());
                }
                Ok(())
            }
            ItemEvent::JobSettings { workflow, jobs } => {
                if jobs.is_empty() {
                    self.extras.jobs.remove(workflow);
                } else {
                    self.extras.jobs.insert(workflow.clone(), jobs.clone());
                }
                Ok(())
            }
            ItemEvent::WorkflowSettings { workflow, settings } => {
                if *settings == super::WorkflowSettings::default() {
                    self.extras.workflows.remove(workflow);
                } else {
                    self.extras
                        .workflows
                        .insert(workflow.clone(), settings.clone());
                }
                Ok(())
            }
        }
    }

    fn apply_board(&mut self, name: &BoardName, event: &BoardEvent) -> Result<(), ApplyError> {
        let board = self
            .boards
            .get_mut(name)
            .ok_or_else(|| ApplyError::UnknownBoard(name.clone()))?;
        match event {
            BoardEvent::Posted { key, until } => {
                board.notices.insert(key.clone(), *until);
            }
            BoardEvent::Deleted { key } => {
                board.notices.remove(key);
            }
        }
        Ok(())
    }

    fn apply_order(&mut self, id: &OrderId, event: &OrderEvent) -> Result<(), ApplyError> {
        let unexpected = |why: String| ApplyError::Unexpected {
            order: id.clone(),
            event: event.name(),
            why,
        };
        match event {
            OrderEvent::Added {
                workflow,
                version,
                vars,
                scheduled_for,
                added_by,
            } => {
                if self.orders.contains_key(id) {
                    return Err(ApplyError::OrderExists(id.clone()));
                }
                if self.workflow(workflow, *version).is_none() {
                    return Err(ApplyError::UnknownWorkflow(workflow.clone(), *version));
                }
                let mut order = Order::fresh(
                    id.clone(),
                    workflow.clone(),
                    *version,
                    vars.clone(),
                    *scheduled_for,
                );
                order.added_by = added_by.clone();
                self.orders.insert(id.clone(), order);
                return Ok(());
            }
            OrderEvent::Attached { order } => return self.apply_attached(id, order),
            OrderEvent::Detached => {
                let order = self
                    .orders
                    .get_mut(id)
                    .ok_or_else(|| ApplyError::UnknownOrder(id.clone()))?;
                let Holder::Detaching(agent) = &order.holder else {
                    return Err(unexpected(format!("the order is held by {}", order.holder)));
                };
                if self.side == Side::Agent(agent.clone()) {
                    self.orders.remove(id);
                    self.extras.orders.remove(id);
                } else {
                    order.holder = Holder::Controller;
                }
                return Ok(());
            }
            OrderEvent::Removed => {
                let order = self
                    .orders
                    .get(id)
                    .ok_or_else(|| ApplyError::UnknownOrder(id.clone()))?;
                if !order.state.is_terminal() {
                    return Err(unexpected(format!("the order is {}", order.state)));
                }
                self.orders.remove(id);
                self.extras.orders.remove(id);
                return Ok(());
            }
            OrderEvent::OptionsSet { options } => {
                if !self.orders.contains_key(id) {
                    return Err(ApplyError::UnknownOrder(id.clone()));
                }
                if options.is_default() {
                    self.extras.orders.remove(id);
                } else {
                    self.extras.orders.insert(id.clone(), *options);
                }
                return Ok(());
            }
            _ => {}
        }
        let before = self
            .orders
            .get(id)
            .ok_or_else(|| ApplyError::UnknownOrder(id.clone()))?;
        let prior = before.state.clone();
        let mut order = before.clone();
        apply_local(&mut order, event).map_err(unexpected)?;
        // Effects beyond the order itself; validate before changing anything.
        match event {
            OrderEvent::Forked { children } => {
                for child in children {
                    if self.orders.contains_key(&child.id) {
                        return Err(ApplyError::OrderExists(child.id.clone()));
                    }
                }
                for child in children {
                    let mut c = Order::fresh(
                        child.id.clone(),
                        order.workflow.clone(),
                        order.version,
                        child.vars.clone(),
                        None,
                    );
                    c.position = order.position.enter(child.branch.clone());
                    c.state = OrderState::Ready;
                    c.holder = order.holder.clone();
                    c.parent = Some(id.clone());
                    c.subagent = child.subagent.clone().or_else(|| order.subagent.clone());
                    self.orders.insert(child.id.clone(), c);
                }
            }
            OrderEvent::Joined { .. } => {
                if let OrderState::Waiting(Wait::Children { children }) = &prior {
                    for c in children {
                        self.orders.remove(c);
                        self.extras.orders.remove(c);
                    }
                }
            }
            OrderEvent::LockQueued { lock, count } => {
                let queue = &self
                    .locks
                    .get(lock)
                    .ok_or_else(|| ApplyError::UnknownLock(lock.clone()))?
                    .queue;
                // Behind every order of the same or a higher priority (FIFO within one).
                let priority = self.priority(id);
                let at = queue
                    .iter()
                    .position(|(q, _)| self.priority(q) < priority)
                    .unwrap_or(queue.len());
                if let Some(state) = self.locks.get_mut(lock) {
                    state.queue.insert(at, (id.clone(), *count));
                }
            }
            OrderEvent::LockAcquired { lock, count } => {
                let state = self
                    .locks
                    .get_mut(lock)
                    .ok_or_else(|| ApplyError::UnknownLock(lock.clone()))?;
                let queued_first = state.queue.front().is_some_and(|(o, _)| o == id);
                if !(state.queue.is_empty() || queued_first) {
                    return Err(unexpected(format!(
                        "other orders wait for lock {lock} first"
                    )));
                }
                if !state.fits(*count) {
                    return Err(unexpected(format!("lock {lock} has no room for {count}")));
                }
                if queued_first {
                    state.queue.pop_front();
                }
                state.holders.insert(id.clone(), *count);
            }
            OrderEvent::LockReleased { lock } => {
                let state = self
                    .locks
                    .get_mut(lock)
                    .ok_or_else(|| ApplyError::UnknownLock(lock.clone()))?;
                state.holders.remove(id);
            }
            OrderEvent::Suspended | OrderEvent::Cancelled => {
                if let OrderState::Waiting(Wait::Lock { lock, .. }) = &prior
                    && let Some(state) = self.locks.get_mut(lock)
                {
                    state.queue.retain(|(o, _)| o != id);
                }
            }
            _ => {}
        }
        self.orders.insert(id.clone(), order);
        Ok(())
    }

    fn apply_attached(&mut self, id: &OrderId, snapshot: &Order) -> Result<(), ApplyError> {
        let unexpected = |why: String| ApplyError::Unexpected {
            order: id.clone(),
            event: "Attached",
            why,
        };
        let Holder::Attaching(agent) = &snapshot.holder else {
            return Err(unexpected(format!(
                "the handed-over order is held by {}",
                snapshot.holder
            )));
        };
        if &snapshot.id != id {
            return Err(unexpected(format!(
                "the handed-over order is {}",
                snapshot.id
            )));
        }
        if self.side == Side::Agent(agent.clone()) {
            if self.orders.contains_key(id) {
                return Err(ApplyError::OrderExists(id.clone()));
            }
            if self
                .workflow(&snapshot.workflow, snapshot.version)
                .is_none()
            {
                return Err(ApplyError::UnknownWorkflow(
                    snapshot.workflow.clone(),
                    snapshot.version,
                ));
            }
            let mut order = snapshot.clone();
            order.holder = Holder::Agent(agent.clone());
            order.mark_delivered = true;
            self.orders.insert(id.clone(), order);
            return Ok(());
        }
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| ApplyError::UnknownOrder(id.clone()))?;
        if order.holder != snapshot.holder {
            return Err(unexpected(format!("the order is held by {}", order.holder)));
        }
        order.holder = Holder::Agent(agent.clone());
        order.mark_delivered = order.mark_seq == snapshot.mark_seq;
        Ok(())
    }
}

/// Removes the frames a move to `to` leaves; lock frames must have been released before.
fn leave_frames(order: &mut Order, to: &Position) -> Result<(), String> {
    if let Some(f) = order
        .frames
        .iter()
        .find(|f| f.frame.is_lock() && !encloses(&f.at, to))
    {
        return Err(format!("it still holds {} taken at {}", f.frame, f.at));
    }
    order.frames.retain(|f| encloses(&f.at, to));
    Ok(())
}

fn expect_state(order: &Order, ok: bool) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("the order is {}", order.state))
    }
}

fn is_do_of(position: &Position) -> Result<Position, String> {
    match position.outer.last() {
        Some((_, BlockKey::Do)) => position
            .parent()
            .ok_or_else(|| "no enclosing block".to_owned()),
        _ => Err(format!("{position} is not in a do block")),
    }
}

/// The part of an order event that changes the order itself (shared by `apply` and `step`).
pub(crate) fn apply_local(order: &mut Order, event: &OrderEvent) -> Result<(), String> {
    use OrderState as S;
    let terminal = order.state.is_terminal();
    match event {
        OrderEvent::Added { .. }
        | OrderEvent::Attached { .. }
        | OrderEvent::Detached
        | OrderEvent::Removed
        | OrderEvent::OptionsSet { .. } => {
            return Err("handled by the world".to_owned());
        }
        OrderEvent::Started => {
            expect_state(order, order.state == S::Fresh)?;
            order.state = S::Ready;
        }
        OrderEvent::PlannedBy {
            schedule,
            missed,
            late_ms,
        } => {
            expect_state(order, order.state == S::Fresh)?;
            super::missed::set_policy(order, schedule, *missed, *late_ms);
        }
        OrderEvent::Missed { late_by_ms } => {
            expect_state(order, order.state == S::Fresh)?;
            super::missed::set_missed(order, *late_by_ms)?;
        }
        OrderEvent::Attachable { agent } => {
            expect_state(order, !terminal)?;
            if order.holder != Holder::Controller {
                return Err(format!("the order is held by {}", order.holder));
            }
            order.holder = Holder::Attaching(agent.clone());
        }
        OrderEvent::Detachable => {
            let Holder::Agent(agent) = &order.holder else {
                return Err(format!("the order is held by {}", order.holder));
            };
            order.holder = Holder::Detaching(agent.clone());
        }
        OrderEvent::ProcessingStarted { at, pgid } => {
            expect_state(order, order.state == S::Ready)?;
            order.state = S::Processing {
                since: *at,
                pgid: *pgid,
            };
        }
        OrderEvent::ProcessingWithdrawn => {
            expect_state(order, matches!(order.state, S::Processing { .. }))?;
            order.state = S::Ready;
        }
        OrderEvent::Processed { outcome } => {
            expect_state(order, matches!(order.state, S::Processing { .. }))?;
            order.add_outcome(outcome);
            order.state = S::Processed {
                outcome: outcome.clone(),
            };
        }
        OrderEvent::OutcomeAdded { outcome } => {
            expect_state(order, matches!(order.state, S::Ready | S::Waiting(_)))?;
            order.add_outcome(outcome);
            order.state = S::Processed {
                outcome: outcome.clone(),
            };
        }
        OrderEvent::Moved { to } => {
            expect_state(
                order,
                matches!(
                    order.state,
                    S::Ready
                        | S::Processed { .. }
                        | S::Waiting(
                            Wait::Sleep { .. } | Wait::Notices { .. } | Wait::AddedOrder { .. }
                        )
                ),
            )?;
            leave_frames(order, to)?;
            order.position = to.clone();
            order.state = S::Ready;
            order.attempt = 1;
        }
        OrderEvent::Restarted { attempt } => {
            expect_state(order, matches!(order.state, S::Processed { .. }))?;
            order.state = S::Ready;
            order.attempt = *attempt;
        }
        OrderEvent::Caught { to } => {
            expect_state(order, matches!(order.state, S::Processed { .. }))?;
            leave_frames(order, to)?;
            order.position = to.clone();
            order.state = S::Ready;
            order.attempt = 1;
        }
        OrderEvent::Retrying { to, tries, until } => {
            expect_state(order, matches!(order.state, S::Processed { .. }))?;
            let retry = is_do_of(to)?;
            leave_frames(order, to)?;
            order.frames.retain(|f| f.at != retry);
            order.frames.push(BlockFrame {
                at: retry,
                frame: Frame::Retry { tries: *tries },
            });
            order.position = to.clone();
            order.attempt = 1;
            order.state = match until {
                Some(until) => S::Waiting(Wait::RetryDelay { until: *until }),
                None => S::Ready,
            };
        }
        OrderEvent::Failed => {
            expect_state(order, matches!(order.state, S::Processed { .. }))?;
            order.state = S::Failed;
        }
        OrderEvent::TryAgain { to, tries, until } => {
            expect_state(order, order.state == S::Ready)?;
            let retry = match to.outer.last() {
                Some((_, BlockKey::Try)) => {
                    to.parent().ok_or_else(|| "no enclosing block".to_owned())?
                }
                _ => return Err(format!("{to} is not in a try block")),
            };
            leave_frames(order, to)?;
            order.frames.retain(|f| f.at != retry);
            order.frames.push(BlockFrame {
                at: retry,
                frame: Frame::Retry { tries: *tries },
            });
            order.position = to.clone();
            order.attempt = 1;
            order.state = match until {
                Some(until) => S::Waiting(Wait::RetryDelay { until: *until }),
                None => S::Ready,
            };
        }
        OrderEvent::FailedAt { to } => {
            expect_state(order, matches!(order.state, S::Processed { .. }))?;
            leave_frames(order, to)?;
            order.position = to.clone();
            order.attempt = 1;
            order.state = S::Failed;
        }
        OrderEvent::Stopped => {
            expect_state(order, matches!(order.state, S::Processed { .. }))?;
            order.state = S::Failed;
        }
        OrderEvent::FailedInFork => {
            expect_state(order, matches!(order.state, S::Processed { .. }))?;
            if order.frames.iter().any(|f| f.frame.is_lock()) {
                return Err("it still holds a lock".to_owned());
            }
            order.frames.clear();
            order.state = S::FailedInFork;
        }
        OrderEvent::Sleeping { until } => {
            expect_state(order, order.state == S::Ready)?;
            order.state = S::Waiting(Wait::Sleep { until: *until });
        }
        OrderEvent::DelayEnded => {
            expect_state(
                order,
                matches!(
                    order.state,
                    S::Waiting(Wait::RetryDelay { .. } | Wait::Cycle { .. })
                ),
            )?;
            order.state = S::Ready;
        }
        OrderEvent::CycleStarted { at } => {
            expect_state(order, order.state == S::Ready)?;
            let cycle = order.position.clone();
            order.frames.push(BlockFrame {
                at: cycle.clone(),
                frame: Frame::Cycle {
                    iteration: 1,
                    since: *at,
                    slot: 0,
                },
            });
            order.position = cycle.enter(BlockKey::Do);
            order.attempt = 1;
        }
        OrderEvent::CycleContinued {
            iteration,
            slot,
            until,
        } => {
            expect_state(order, order.state == S::Ready)?;
            let cycle = is_do_of(&order.position)?;
            let frame = order
                .frames
                .iter_mut()
                .find(|f| f.at == cycle)
                .ok_or_else(|| format!("no cycle frame at {cycle}"))?;
            let Frame::Cycle { since, .. } = frame.frame else {
                return Err(format!("the frame at {cycle} is {}", frame.frame));
            };
            frame.frame = Frame::Cycle {
                iteration: *iteration,
                since,
                slot: *slot,
            };
            order.position = cycle.enter(BlockKey::Do);
            order.attempt = 1;
            order.state = match until {
                Some(until) => S::Waiting(Wait::Cycle { until: *until }),
                None => S::Ready,
            };
        }
        OrderEvent::Forked { children } => {
            expect_state(order, order.state == S::Ready)?;
            order.state = S::Waiting(Wait::Children {
                children: children.iter().map(|c| c.id.clone()).collect(),
            });
        }
        OrderEvent::Joined { outcome } => {
            expect_state(
                order,
                matches!(order.state, S::Waiting(Wait::Children { .. })),
            )?;
            order.add_outcome(outcome);
            order.state = S::Processed {
                outcome: outcome.clone(),
            };
        }
        OrderEvent::LockQueued { lock, count } => {
            expect_state(order, order.state == S::Ready)?;
            order.state = S::Waiting(Wait::Lock {
                lock: lock.clone(),
                count: *count,
            });
        }
        OrderEvent::LockAcquired { lock, count } => {
            expect_state(
                order,
                order.state == S::Ready || matches!(order.state, S::Waiting(Wait::Lock { .. })),
            )?;
            let at = order.position.clone();
            order.frames.push(BlockFrame {
                at: at.clone(),
                frame: Frame::Lock {
                    lock: lock.clone(),
                    count: *count,
                },
            });
            order.position = at.enter(BlockKey::Do);
            order.state = S::Ready;
            order.attempt = 1;
        }
        OrderEvent::LockReleased { lock } => {
            let i = order
                .frames
                .iter()
                .rposition(|f| matches!(&f.frame, Frame::Lock { lock: l, .. } if l == lock))
                .ok_or_else(|| format!("it does not hold lock {lock}"))?;
            order.frames.remove(i);
        }
        OrderEvent::ExpectingNotices {
            boards,
            key,
            consume,
        } => {
            expect_state(order, order.state == S::Ready)?;
            order.state = S::Waiting(Wait::Notices {
                boards: boards.clone(),
                key: key.clone(),
                consume: *consume,
            });
        }
        OrderEvent::ConsumingNotices { boards, key } => {
            expect_state(
                order,
                order.state == S::Ready || matches!(order.state, S::Waiting(Wait::Notices { .. })),
            )?;
            let at = order.position.clone();
            order.frames.push(BlockFrame {
                at: at.clone(),
                frame: Frame::Notices {
                    boards: boards.clone(),
                    key: key.clone(),
                },
            });
            order.position = at.enter(BlockKey::Do);
            order.state = S::Ready;
            order.attempt = 1;
        }
        OrderEvent::Prompted { question } => {
            expect_state(order, order.state == S::Ready)?;
            order.state = S::Prompting {
                question: question.clone(),
            };
        }
        OrderEvent::PromptAnswered { vars } => {
            expect_state(order, matches!(order.state, S::Prompting { .. }))?;
            order.vars.extend(vars.clone());
            order.position = order.position.next();
            order.state = S::Ready;
            order.attempt = 1;
        }
        OrderEvent::AddedOrder { order: added, wait } => {
            expect_state(order, order.state == S::Ready)?;
            order.added_orders = order.added_orders.saturating_add(1);
            if *wait {
                order.state = S::Waiting(Wait::AddedOrder {
                    order: added.clone(),
                });
            } else {
                order.position = order.position.next();
                order.attempt = 1;
            }
        }
        OrderEvent::Marked { mark, seq } => {
            expect_state(order, !terminal)?;
            order.mark = mark.clone();
            order.mark_seq = *seq;
            order.mark_delivered = false;
        }
        OrderEvent::MarkedOnAgent { mark, seq } => {
            if *seq >= order.mark_seq {
                order.mark = mark.clone();
                order.mark_seq = *seq;
                order.mark_delivered = true;
            }
        }
        OrderEvent::Suspended => {
            expect_state(
                order,
                !terminal
                    && !matches!(
                        order.state,
                        S::Processing { .. } | S::Suspended { .. } | S::FailedInFork
                    ),
            )?;
            order.state = S::Suspended {
                fresh: order.state == S::Fresh,
            };
            order.mark = None;
        }
        OrderEvent::Resumed { position, vars } => {
            let fresh = match order.state {
                S::Suspended { fresh } => fresh,
                S::Failed => false,
                _ => return Err(format!("the order is {}", order.state)),
            };
            let to = position.as_ref().unwrap_or(&order.position).clone();
            // Another start of the job that ran here, or a first one.
            let again =
                to == order.position && order.outcomes.last().is_some_and(|h| h.position == to);
            order.attempt = if again {
                order.attempt.saturating_add(1)
            } else {
                1
            };
            leave_frames(order, &to)?;
            order.position = to;
            order.vars.extend(vars.clone());
            order.state = if fresh && position.is_none() {
                S::Fresh
            } else {
                S::Ready
            };
        }
        OrderEvent::Cancelled => {
            expect_state(
                order,
                !terminal && !matches!(order.state, S::Processing { .. }),
            )?;
            if order.frames.iter().any(|f| f.frame.is_lock()) {
                return Err("it still holds a lock".to_owned());
            }
            order.frames.clear();
            order.state = S::Cancelled;
            order.mark = None;
        }
        OrderEvent::Finished { .. } => {
            expect_state(order, !terminal)?;
            if order.frames.iter().any(|f| f.frame.is_lock()) {
                return Err("it still holds a lock".to_owned());
            }
            order.frames.clear();
            order.state = S::Finished;
            order.mark = None;
        }
    }
    Ok(())
}
