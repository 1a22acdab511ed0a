//! [`step`]: move one order as far as its holder can without waiting.

use super::action::start_job;
use super::event::{BoardEvent, ForkChild, KeyedEvent, OrderEvent};
use super::forklist;
use super::input::OrderLimits;
use super::nav::{block_at, branch_level, instruction_at, stays_on};
use super::options::OrderOptions;
use super::scope::{OrderScope, eval_for, render_text};
use super::state::{
    BlockFrame, Disruption, Frame, Mark, Order, OrderState, Outcome, RETURN_CODE, Side, Wait,
    encloses,
};
use super::world::{World, apply_local};
use crate::expr;
use crate::ids::{AgentId, OrderId};
use crate::inventory::{CycleRepeat, ForkListOver, Instruction, WhenNotAnnounced, Workflow};
use crate::notice_expr::NoticeExpr;
use crate::position::{BlockKey, Position};
use crate::schedule::cycle;
use crate::time::{DurationMs, TimeMs};
use crate::value::{Value, Vars};

/// Most events one `step` call emits; the caller steps the order again for more.
pub const STEP_EVENTS_MAX: usize = 256;
/// Most child orders one fork-list creates.
pub const FORK_CHILDREN_MAX: usize = 10_000;
/// Most starts of one job at one position after lost processes; then the order fails.
pub const ATTEMPTS_MAX: u32 = 100;

/// Moves the order `id` as far as the world's side can take it at `now` without waiting,
/// and returns the events (not applied). Empty when the order must wait (for a job, a
/// timer, a lock, a notice, an answer, other orders, or the other side) or when this side
/// does not hold it. At most [`STEP_EVENTS_MAX`] events; step again for more.
///
/// The arguments of an `addOrder` are checked with the default [`OrderLimits`]; the
/// controller, which runs `addOrder`, uses [`step_with`] and its configured limits.
pub fn step(world: &World, id: &OrderId, now: TimeMs) -> Vec<KeyedEvent> {
    step_with(world, id, now, &OrderLimits::default())
}

/// [`step`], checking the arguments of an `addOrder` with `limits` (see [`super::input`]).
pub fn step_with(
    world: &World,
    id: &OrderId,
    now: TimeMs,
    limits: &OrderLimits,
) -> Vec<KeyedEvent> {
    let side = world.side();
    let Some(start) = world.order(id) else {
        return Vec::new();
    };
    if !start.holder.is_held_by(side) {
        return Vec::new();
    }
    let Some(workflow) = world.workflow(&start.workflow, start.version) else {
        return Vec::new();
    };
    let cx = Cx {
        world,
        workflow,
        side,
        now,
        controller: *side == Side::Controller,
        limits,
    };
    let mut order = start.clone();
    let mut out = Vec::new();
    while out.len() < STEP_EVENTS_MAX {
        let events = cx.decide(&order);
        if events.is_empty() {
            break;
        }
        let mut go_on = true;
        for event in events {
            match &event {
                KeyedEvent::Order {
                    id: key,
                    event: OrderEvent::Removed,
                } if key == id => {
                    out.push(event);
                    return out;
                }
                KeyedEvent::Order { id: key, event: e } if key == id => {
                    if apply_local(&mut order, e).is_err() {
                        // A decision that does not apply is a defect; emit nothing more.
                        debug_assert!(false, "step produced {e} that does not apply to {id}");
                        return out;
                    }
                    go_on &= continues(e);
                }
                _ => go_on = false,
            }
            out.push(event);
        }
        if !go_on {
            break;
        }
    }
    out
}

/// Events after which the same step may go on: they change only the order itself and
/// leave it able to move.
fn continues(event: &OrderEvent) -> bool {
    matches!(
        event,
        OrderEvent::Started
            | OrderEvent::Moved { .. }
            | OrderEvent::Caught { .. }
            | OrderEvent::Restarted { .. }
            | OrderEvent::OutcomeAdded { .. }
            | OrderEvent::DelayEnded
            | OrderEvent::CycleStarted { .. }
            | OrderEvent::Retrying { until: None, .. }
            | OrderEvent::TryAgain { until: None, .. }
            | OrderEvent::CycleContinued { until: None, .. }
            | OrderEvent::Marked { .. }
            | OrderEvent::MarkedOnAgent { .. }
            | OrderEvent::PlannedBy { .. }
            | OrderEvent::Missed { .. }
    )
}

struct Cx<'a> {
    world: &'a World,
    workflow: &'a Workflow,
    side: &'a Side,
    now: TimeMs,
    controller: bool,
    limits: &'a OrderLimits,
}

fn mine(order: &Order, events: Vec<OrderEvent>) -> Vec<KeyedEvent> {
    events
        .into_iter()
        .map(|e| KeyedEvent::order(&order.id, e))
        .collect()
}

impl Cx<'_> {
    fn decide(&self, o: &Order) -> Vec<KeyedEvent> {
        let timer_wait = matches!(&o.state, OrderState::Waiting(w) if w.until().is_some());
        if o.mark == Some(Mark::Go) && !(timer_wait || o.state == OrderState::Fresh) {
            // A go for a wait that is over already.
            return mine(o, vec![self.clear_mark(o)]);
        }
        match &o.state {
            OrderState::Fresh => {
                if let Some(e) = self.stop_mark(o) {
                    return e;
                }
                let go = o.mark == Some(Mark::Go);
                if !go
                    && let Some(e) = super::missed::decide(self.world, o, self.now, self.controller)
                {
                    return e;
                }
                if go || o.scheduled_for.is_none_or(|t| t <= self.now) {
                    let mut events = Vec::new();
                    if go {
                        events.push(self.clear_mark(o));
                    }
                    events.push(OrderEvent::Started);
                    return mine(o, events);
                }
                // Scheduled: the controller hands it early to the agent of its first job.
                if self.controller
                    && let Some(Instruction::Run { job, .. }) =
                        instruction_at(&self.workflow.steps, &o.position)
                    && let Some(job) = self.workflow.jobs.get(job)
                {
                    return mine(
                        o,
                        vec![OrderEvent::Attachable {
                            agent: job.agent.clone(),
                        }],
                    );
                }
                Vec::new()
            }
            OrderState::Ready => {
                if let Some(e) = self.stop_mark(o) {
                    return e;
                }
                self.ready(o)
            }
            OrderState::Processing { .. } => Vec::new(),
            OrderState::Processed { outcome } => self.processed(o, outcome),
            OrderState::Waiting(wait) => self.waiting(o, wait),
            OrderState::Prompting { .. } => self.stop_mark(o).unwrap_or_default(),
            OrderState::Suspended { .. } => match o.mark {
                Some(Mark::Cancel { .. }) => cancel_events(o),
                _ => Vec::new(),
            },
            OrderState::Failed => match &o.mark {
                Some(Mark::Cancel { .. }) | Some(Mark::Suspend { .. }) => {
                    self.stop_mark(o).unwrap_or_default()
                }
                _ => Vec::new(),
            },
            OrderState::FailedInFork => {
                if !self.controller && !self.parent_here(o) {
                    mine(o, vec![OrderEvent::Detachable])
                } else {
                    Vec::new()
                }
            }
            OrderState::Cancelled | OrderState::Finished => self.terminated(o),
        }
    }

    /// An ended order the controller removes at once when it is to be deleted when
    /// terminated ([`World::deletes_when_terminated`]), unless an order still waits for it
    /// (an `addOrder` with `wait`: it goes once that one has seen how it ended).
    fn terminated(&self, o: &Order) -> Vec<KeyedEvent> {
        if !self.controller || !self.world.deletes_when_terminated(o) {
            return Vec::new();
        }
        let awaited = o.added_by.as_ref().and_then(|by| self.world.order(by)).is_some_and(
            |by| matches!(&by.state, OrderState::Waiting(Wait::AddedOrder { order }) if order == &o.id),
        );
        if awaited {
            return Vec::new();
        }
        mine(o, vec![OrderEvent::Removed])
    }

    /// The event that removes a mark once it has done its work.
    fn clear_mark(&self, o: &Order) -> OrderEvent {
        if self.controller {
            OrderEvent::Marked {
                mark: None,
                seq: o.mark_seq.saturating_add(1),
            }
        } else {
            OrderEvent::MarkedOnAgent {
                mark: None,
                seq: o.mark_seq,
            }
        }
    }

    /// Honours a cancel or suspend mark at a safe point: the controller cancels or
    /// suspends, an agent hands the order back.
    fn stop_mark(&self, o: &Order) -> Option<Vec<KeyedEvent>> {
        let mark = o.mark.as_ref().filter(|m| m.stops())?;
        if !self.controller {
            return Some(mine(o, vec![OrderEvent::Detachable]));
        }
        Some(match mark {
            Mark::Cancel { .. } => cancel_events(o),
            _ => mine(o, vec![OrderEvent::Suspended]),
        })
    }

    fn fail(&self, o: &Order, message: impl Into<String>) -> Vec<KeyedEvent> {
        mine(
            o,
            vec![OrderEvent::OutcomeAdded {
                outcome: Outcome::failed(message),
            }],
        )
    }

    /// The order cannot go on here (an expression error, a lock never granted): an uncatchable
    /// `Disrupted` outcome at the current position.
    fn disrupt(&self, o: &Order, problem: impl Into<String>) -> Vec<KeyedEvent> {
        mine(
            o,
            vec![OrderEvent::OutcomeAdded {
                outcome: Outcome::disrupted(problem),
            }],
        )
    }

    /// Leaves the blocks `to` is not in and emits `event` (a move); an agent hands the order
    /// back instead when a lock must be released or notices consumed.
    fn transition(&self, o: &Order, to: &Position, event: OrderEvent) -> Vec<KeyedEvent> {
        let exits: Vec<&BlockFrame> = o
            .frames
            .iter()
            .rev()
            .filter(|f| f.frame.needs_controller() && !encloses(&f.at, to))
            .collect();
        if !exits.is_empty() && !self.controller {
            return mine(o, vec![OrderEvent::Detachable]);
        }
        let mut events = self.leave(o, &exits);
        events.push(KeyedEvent::order(&o.id, event));
        events
    }

    fn move_to(&self, o: &Order, to: Position) -> Vec<KeyedEvent> {
        self.transition(o, &to.clone(), OrderEvent::Moved { to })
    }

    /// Lock releases and notice consumptions for leaving these frames, innermost first.
    fn leave(&self, o: &Order, frames: &[&BlockFrame]) -> Vec<KeyedEvent> {
        let mut events = Vec::new();
        for f in frames {
            match &f.frame {
                Frame::Lock { lock, .. } => events.push(KeyedEvent::order(
                    &o.id,
                    OrderEvent::LockReleased { lock: lock.clone() },
                )),
                Frame::Notices { boards, key } => {
                    for board in boards {
                        if self
                            .world
                            .boards
                            .get(board)
                            .is_some_and(|b| b.notices.contains_key(key))
                        {
                            events.push(KeyedEvent::Board {
                                board: board.clone(),
                                event: BoardEvent::Deleted { key: key.clone() },
                            });
                        }
                    }
                }
                Frame::Retry { .. } | Frame::Cycle { .. } | Frame::Planned { .. } => {}
            }
        }
        events
    }

    /// A failure nothing caught: the controller fails the order, an agent hands it back.
    /// A failed order holds no lock: its locks are released and it stops at the outermost
    /// lock step it was in, where a resume asks for them again.
    fn fail_here(&self, o: &Order) -> Vec<KeyedEvent> {
        if !self.controller {
            return mine(o, vec![OrderEvent::Detachable]);
        }
        let Some(outermost) = o.frames.iter().find(|f| f.frame.is_lock()) else {
            return mine(o, vec![OrderEvent::Failed]);
        };
        let to = outermost.at.clone();
        let locks: Vec<&BlockFrame> = o
            .frames
            .iter()
            .rev()
            .filter(|f| f.frame.is_lock())
            .collect();
        let mut events = self.leave(o, &locks);
        events.push(KeyedEvent::order(&o.id, OrderEvent::FailedAt { to }));
        events
    }

    /// A failure nothing caught inside `options: {stopOnFailure: true}`: the controller
    /// stops the order where it failed (locks and blocks kept), an agent hands it back.
    fn stop_here(&self, o: &Order) -> Vec<KeyedEvent> {
        if !self.controller {
            return mine(o, vec![OrderEvent::Detachable]);
        }
        mine(o, vec![OrderEvent::Stopped])
    }

    fn parent_here(&self, o: &Order) -> bool {
        o.parent.as_ref().is_some_and(|p| self.world.holds(p))
    }

    fn ready(&self, o: &Order) -> Vec<KeyedEvent> {
        let p = &o.position;
        let Some(block) = block_at(&self.workflow.steps, &p.outer) else {
            return mine(
                o,
                vec![OrderEvent::OutcomeAdded {
                    outcome: Outcome::Failed {
                        message: format!("position {p} is not in workflow {}", o.workflow),
                        return_code: None,
                        uncatchable: true,
                    },
                }],
            );
        };
        let Some(instruction) = block.get(p.index as usize) else {
            return self.end_of_block(o);
        };
        let controller_only = |events: Vec<KeyedEvent>| {
            if self.controller {
                events
            } else {
                mine(o, vec![OrderEvent::Detachable])
            }
        };
        match instruction {
            Instruction::Run { job, .. } => {
                let Some(spec) = self.workflow.jobs.get(job) else {
                    return self.fail(o, format!("job {job} is not in the workflow"));
                };
                match self.side {
                    Side::Controller => mine(
                        o,
                        vec![OrderEvent::Attachable {
                            agent: spec.agent.clone(),
                        }],
                    ),
                    Side::Agent(a) if a == &spec.agent => {
                        match start_job(self.world, o) {
                            // The executor starts it (see `actions`).
                            Ok(_) => Vec::new(),
                            Err(message) => self.disrupt(o, message),
                        }
                    }
                    Side::Agent(_) => mine(o, vec![OrderEvent::Detachable]),
                }
            }
            Instruction::If {
                branches,
                otherwise,
            } => {
                for (i, (condition, steps)) in branches.iter().enumerate() {
                    match eval_for(o, condition) {
                        Ok(Value::Bool(true)) => {
                            return if steps.is_empty() {
                                self.move_to(o, p.next())
                            } else {
                                self.move_to(o, p.enter(BlockKey::Then(i as u32)))
                            };
                        }
                        Ok(Value::Bool(false)) => {}
                        Ok(other) => {
                            return self.disrupt(
                                o,
                                format!(
                                    "the condition of if is a {}, not a boolean",
                                    other.type_name()
                                ),
                            );
                        }
                        Err(e) => return self.disrupt(o, format!("if: {e}")),
                    }
                }
                if otherwise.is_empty() {
                    self.move_to(o, p.next())
                } else {
                    self.move_to(o, p.enter(BlockKey::Else))
                }
            }
            Instruction::Fork { branches, .. } => {
                if let Side::Agent(a) = self.side
                    && !branches.iter().all(|(_, b)| stays_on(self.workflow, b, a))
                {
                    return mine(o, vec![OrderEvent::Detachable]);
                }
                let mut children = Vec::new();
                for (branch, _) in branches {
                    let Ok(id) = o.id.child(branch.as_str()) else {
                        return self.fail(o, format!("the child order id of {} is too long", o.id));
                    };
                    children.push(ForkChild {
                        id,
                        branch: BlockKey::Fork(branch.to_string()),
                        vars: o.vars.clone(),
                        subagent: None,
                    });
                }
                self.fork(o, children)
            }
            Instruction::ForkList {
                over, var, steps, ..
            } => self.fork_list(o, over, var, steps),
            Instruction::Retry { steps, .. } => {
                if steps.is_empty() {
                    self.move_to(o, p.next())
                } else {
                    self.move_to(o, p.enter(BlockKey::Do))
                }
            }
            Instruction::Try { steps, .. } => {
                if steps.is_empty() {
                    self.move_to(o, p.next())
                } else {
                    self.move_to(o, p.enter(BlockKey::Try))
                }
            }
            Instruction::TryRetry { steps, .. } => {
                if steps.is_empty() {
                    self.move_to(o, p.next())
                } else {
                    mine(
                        o,
                        vec![OrderEvent::TryAgain {
                            to: p.enter(BlockKey::Try),
                            tries: 1,
                            until: None,
                        }],
                    )
                }
            }
            Instruction::RetryAgain => self.retry_again(o),
            Instruction::Fail {
                message,
                return_code,
                uncatchable,
            } => {
                let message = match message {
                    Some(t) => match render_text(o, t) {
                        Ok(m) => m,
                        Err(e) => return self.disrupt(o, format!("fail message: {e}")),
                    },
                    None => "failed".to_owned(),
                };
                mine(
                    o,
                    vec![OrderEvent::OutcomeAdded {
                        outcome: Outcome::Failed {
                            message,
                            return_code: *return_code,
                            uncatchable: *uncatchable,
                        },
                    }],
                )
            }
            Instruction::Finish { message: None } => self.finish(o, None),
            Instruction::Finish { message } | Instruction::FinishWith { message, .. } => {
                // The outcome is recorded first, so that its message and values are kept
                // whoever ends the order (an agent hands a finish outside a fork branch back
                // to the controller); `processed` then finishes.
                let message = match message {
                    Some(t) => match render_text(o, t) {
                        Ok(m) => Some(m),
                        Err(e) => return self.disrupt(o, format!("finish message: {e}")),
                    },
                    None => None,
                };
                let (failed, values) = match instruction {
                    Instruction::FinishWith { failed, values, .. } => (*failed, values),
                    _ => (false, &std::collections::BTreeMap::new()),
                };
                let scope = OrderScope::new(o);
                let mut named = Vars::new();
                for (name, template) in values {
                    match expr::render(template, &scope) {
                        Ok(v) => {
                            named.insert(name.clone(), v);
                        }
                        Err(e) => return self.disrupt(o, format!("finish value {name}: {e}")),
                    }
                }
                mine(
                    o,
                    vec![OrderEvent::OutcomeAdded {
                        outcome: Outcome::Completed {
                            succeeded: !failed,
                            message,
                            return_code: None,
                            values: named,
                        },
                    }],
                )
            }
            Instruction::Lock { lock, count, .. } => controller_only(self.lock(o, lock, *count)),
            Instruction::Prompt { question } => controller_only(match render_text(o, question) {
                Ok(question) => mine(o, vec![OrderEvent::Prompted { question }]),
                Err(e) => self.disrupt(o, format!("prompt: {e}")),
            }),
            Instruction::Cycle { repeat, steps } => {
                let never = match repeat {
                    CycleRepeat::Times(n) => *n == 0,
                    CycleRepeat::Every { for_, .. } => for_.0 == 0,
                    CycleRepeat::Schedule(s) => s.limit == Some(0),
                };
                if never || steps.is_empty() {
                    return self.move_to(o, p.next());
                }
                let CycleRepeat::Schedule(schedule) = repeat else {
                    return mine(o, vec![OrderEvent::CycleStarted { at: self.now }]);
                };
                // The first start may lie ahead: the cycle begins now and waits for it.
                match cycle::next_start(schedule, self.now, self.now, None) {
                    None => self.move_to(o, p.next()),
                    Some(first) => mine(
                        o,
                        vec![
                            OrderEvent::CycleStarted { at: self.now },
                            OrderEvent::CycleContinued {
                                iteration: 1,
                                slot: u64::try_from(first.0).unwrap_or(0),
                                until: (first > self.now).then_some(first),
                            },
                        ],
                    ),
                }
            }
            Instruction::Break => {
                for level in (0..p.outer.len()).rev() {
                    let (index, key) = &p.outer[level];
                    if matches!(key, BlockKey::Fork(_) | BlockKey::ForkList) {
                        break;
                    }
                    let at = Position {
                        outer: p.outer[..level].to_vec(),
                        index: *index,
                    };
                    if *key == BlockKey::Do
                        && matches!(
                            instruction_at(&self.workflow.steps, &at),
                            Some(Instruction::Cycle { .. })
                        )
                    {
                        return self.move_to(o, at.next());
                    }
                }
                self.fail(o, "break outside a cycle")
            }
            Instruction::Sleep { duration } => {
                if duration.0 == 0 {
                    self.move_to(o, p.next())
                } else {
                    mine(
                        o,
                        vec![OrderEvent::Sleeping {
                            until: self.now.plus(*duration),
                        }],
                    )
                }
            }
            Instruction::AddOrder {
                workflow,
                args,
                wait,
            } => controller_only(self.add_order(o, workflow, args, *wait, OrderOptions::default())),
            Instruction::AddOrderWithOptions {
                workflow,
                args,
                wait,
                options,
            } => controller_only(self.add_order(o, workflow, args, *wait, *options)),
            Instruction::PostNotice { board, key } => controller_only({
                match (self.world.boards.get(board), render_text(o, key)) {
                    (None, _) => self.fail(o, format!("board {board} is not deployed")),
                    (_, Err(e)) => self.disrupt(o, format!("post-notice: {e}")),
                    (Some(state), Ok(key)) => {
                        let mut events = vec![KeyedEvent::Board {
                            board: board.clone(),
                            event: BoardEvent::Posted {
                                key,
                                until: self.now.plus(state.lifetime),
                            },
                        }];
                        events.extend(self.move_to(o, p.next()));
                        events
                    }
                }
            }),
            Instruction::ExpectNotices { boards, key } => {
                controller_only(self.notices(o, boards, key, false))
            }
            Instruction::ConsumeNotices { boards, key, .. } => {
                controller_only(self.notices(o, boards, key, true))
            }
            Instruction::ExpectNoticesWhen {
                notices,
                key,
                when_not_announced,
            } => controller_only(self.notices_when(o, notices, key, *when_not_announced, false)),
            Instruction::ConsumeNoticesWhen {
                notices,
                key,
                when_not_announced,
                ..
            } => controller_only(self.notices_when(o, notices, key, *when_not_announced, true)),
            Instruction::Options { steps, .. } => {
                if steps.is_empty() {
                    self.move_to(o, p.next())
                } else {
                    self.move_to(o, p.enter(BlockKey::Do))
                }
            }
        }
    }

    fn end_of_block(&self, o: &Order) -> Vec<KeyedEvent> {
        let p = &o.position;
        let Some((_, key)) = p.outer.last() else {
            return self.finish(o, None);
        };
        let Some(parent) = p.parent() else {
            return Vec::new();
        };
        match key {
            BlockKey::Then(_) | BlockKey::Else | BlockKey::Try | BlockKey::Catch => {
                self.move_to(o, parent.next())
            }
            BlockKey::Fork(_) | BlockKey::ForkList => {
                // A child at the end of its branch waits for the join where its parent is.
                if !self.controller && !self.parent_here(o) {
                    mine(o, vec![OrderEvent::Detachable])
                } else {
                    Vec::new()
                }
            }
            BlockKey::Do => match instruction_at(&self.workflow.steps, &parent) {
                Some(Instruction::Cycle { repeat, .. }) => self.cycle_next(o, &parent, repeat),
                _ => self.move_to(o, parent.next()),
            },
        }
    }

    /// `finish` (or the end of the workflow): a fork child goes to the end of its branch,
    /// any other order finishes on the controller.
    fn finish(&self, o: &Order, message: Option<String>) -> Vec<KeyedEvent> {
        let p = &o.position;
        if let Some(level) = branch_level(p) {
            let outer = p.outer[..=level].to_vec();
            let len = block_at(&self.workflow.steps, &outer).map_or(0, |b| b.len());
            return self.move_to(
                o,
                Position {
                    outer,
                    index: len as u32,
                },
            );
        }
        if !self.controller {
            return mine(o, vec![OrderEvent::Detachable]);
        }
        let frames: Vec<&BlockFrame> = o
            .frames
            .iter()
            .rev()
            .filter(|f| f.frame.needs_controller())
            .collect();
        let mut events = self.leave(o, &frames);
        events.push(KeyedEvent::order(&o.id, OrderEvent::Finished { message }));
        events
    }

    /// After the outcome of a `finish` was recorded: outside a fork branch the order finishes
    /// (with the outcome's message); in a branch a success ends the branch, a failure fails
    /// the child order as its fork decides (`joinIfFailed`), passing any `try` or `retry`
    /// inside the branch.
    fn finished(&self, o: &Order, outcome: &Outcome, with_message: bool) -> Vec<KeyedEvent> {
        let message = match outcome {
            Outcome::Completed { message, .. } if with_message => message.clone(),
            _ => None,
        };
        if outcome.is_success() || branch_level(&o.position).is_none() {
            return self.finish(o, message);
        }
        let p = &o.position;
        let level = branch_level(p).unwrap_or(0);
        let (index, _) = &p.outer[level];
        let at = Position {
            outer: p.outer[..level].to_vec(),
            index: *index,
        };
        match instruction_at(&self.workflow.steps, &at) {
            Some(
                Instruction::Fork {
                    join_if_failed: true,
                    ..
                }
                | Instruction::ForkList {
                    join_if_failed: true,
                    ..
                },
            ) => self.failed_in_fork(o),
            _ => self.fail_here(o),
        }
    }

    fn processed(&self, o: &Order, outcome: &Outcome) -> Vec<KeyedEvent> {
        let p = &o.position;
        let stopping = o.mark.as_ref().is_some_and(|m| m.stops());
        if let Some(Instruction::Finish { message } | Instruction::FinishWith { message, .. }) =
            instruction_at(&self.workflow.steps, p)
        {
            return self.finished(o, outcome, message.is_some());
        }
        match outcome {
            _ if outcome.is_success() => return self.move_to(o, p.next()),
            // A failure of an order being cancelled is not handled any more.
            _ if matches!(o.mark, Some(Mark::Cancel { .. })) => {
                return self.stop_mark(o).unwrap_or_default();
            }
            Outcome::Killed | Outcome::Disrupted(_) if stopping => {
                return self.stop_mark(o).unwrap_or_default();
            }
            Outcome::Disrupted(Disruption::ProcessLost) => {
                // A lost process spends one restart of the job's budget (attempt 1 is the
                // first run); once it is spent the order fails with the lost process.
                let restarts_max = match instruction_at(&self.workflow.steps, p) {
                    Some(Instruction::Run { job, .. })
                        if self.workflow.jobs.get(job).is_some_and(|j| j.restartable) =>
                    {
                        self.world.job_settings(&o.workflow, job).restarts_max()
                    }
                    _ => 0,
                };
                debug_assert!(restarts_max < ATTEMPTS_MAX, "a budget beyond ATTEMPTS_MAX");
                if o.attempt.saturating_sub(1) < restarts_max {
                    return mine(
                        o,
                        vec![OrderEvent::Restarted {
                            attempt: o.attempt + 1,
                        }],
                    );
                }
            }
            _ => {}
        }
        let uncatchable = outcome.is_uncatchable();
        // The innermost `options` that says anything about stopOnFailure decides.
        let mut options_decided = false;
        for level in (0..p.outer.len()).rev() {
            let (index, key) = &p.outer[level];
            let at = Position {
                outer: p.outer[..level].to_vec(),
                index: *index,
            };
            match (instruction_at(&self.workflow.steps, &at), key) {
                (
                    Some(Instruction::TryRetry {
                        catch, max_tries, ..
                    }),
                    BlockKey::Try,
                ) if !uncatchable => {
                    // A catch that only retries passes the failure on once the tries are
                    // used up (JS7), keeping the failure's own outcome.
                    let tries = match o.frame_at(&at) {
                        Some(Frame::Retry { tries }) => *tries,
                        _ => 1,
                    };
                    let used_up = max_tries.is_some_and(|m| tries >= m)
                        && matches!(catch.first(), Some(Instruction::RetryAgain));
                    if !used_up {
                        let to = if catch.is_empty() {
                            at.next()
                        } else {
                            at.enter(BlockKey::Catch)
                        };
                        return self.transition(o, &to.clone(), OrderEvent::Caught { to });
                    }
                }
                (Some(Instruction::Try { catch, .. }), BlockKey::Try) if !uncatchable => {
                    let to = if catch.is_empty() {
                        at.next()
                    } else {
                        at.enter(BlockKey::Catch)
                    };
                    return self.transition(o, &to.clone(), OrderEvent::Caught { to });
                }
                (
                    Some(Instruction::Retry {
                        max_tries, delays, ..
                    }),
                    BlockKey::Do,
                ) if !uncatchable => {
                    let tries = match o.frame_at(&at) {
                        Some(Frame::Retry { tries }) => *tries,
                        _ => 1,
                    };
                    if tries < *max_tries {
                        let delay = delays
                            .get((tries as usize - 1).min(delays.len().saturating_sub(1)))
                            .copied()
                            .unwrap_or(DurationMs(0));
                        let to = at.enter(BlockKey::Do);
                        let event = OrderEvent::Retrying {
                            to: to.clone(),
                            tries: tries + 1,
                            until: (delay.0 > 0).then(|| self.now.plus(delay)),
                        };
                        return self.transition(o, &to, event);
                    }
                }
                (
                    Some(
                        Instruction::Fork { join_if_failed, .. }
                        | Instruction::ForkList { join_if_failed, .. },
                    ),
                    BlockKey::Fork(_) | BlockKey::ForkList,
                ) => {
                    if !*join_if_failed {
                        return self.fail_here(o);
                    }
                    return self.failed_in_fork(o);
                }
                (
                    Some(Instruction::Options {
                        stop_on_failure: Some(stop),
                        ..
                    }),
                    BlockKey::Do,
                ) if !options_decided => {
                    if *stop {
                        return self.stop_here(o);
                    }
                    options_decided = true;
                }
                _ => {}
            }
        }
        self.fail_here(o)
    }

    /// `retry` in the catch of a try with retry: its try block again after the try's delay,
    /// or a failure when the tries are used up.
    fn retry_again(&self, o: &Order) -> Vec<KeyedEvent> {
        let p = &o.position;
        for level in (0..p.outer.len()).rev() {
            let (index, key) = &p.outer[level];
            if matches!(key, BlockKey::Fork(_) | BlockKey::ForkList) {
                break;
            }
            let at = Position {
                outer: p.outer[..level].to_vec(),
                index: *index,
            };
            let Some(Instruction::TryRetry {
                max_tries, delays, ..
            }) = instruction_at(&self.workflow.steps, &at)
            else {
                continue;
            };
            if *key != BlockKey::Catch {
                continue;
            }
            let tries = match o.frame_at(&at) {
                Some(Frame::Retry { tries }) => *tries,
                _ => 1,
            };
            if max_tries.is_some_and(|m| tries >= m) {
                let why = o
                    .outcomes
                    .iter()
                    .rev()
                    .map(|h| &h.outcome)
                    .find(|oc| !oc.is_success())
                    .map(|oc| format!("; the last: {oc}"))
                    .unwrap_or_default();
                return self.fail(o, format!("retry: {tries} tries failed{why}"));
            }
            let delay = delays
                .get((tries as usize - 1).min(delays.len().saturating_sub(1)))
                .copied()
                .unwrap_or(DurationMs(0));
            let to = at.enter(BlockKey::Try);
            let event = OrderEvent::TryAgain {
                to: to.clone(),
                tries: tries + 1,
                until: (delay.0 > 0).then(|| self.now.plus(delay)),
            };
            return self.transition(o, &to, event);
        }
        self.disrupt(
            o,
            "retry outside the catch of a try with maxTries or delays",
        )
    }

    /// A fork child's failure joined by its fork: release its locks, then `FailedInFork`.
    fn failed_in_fork(&self, o: &Order) -> Vec<KeyedEvent> {
        let locks: Vec<&BlockFrame> = o
            .frames
            .iter()
            .rev()
            .filter(|f| f.frame.is_lock())
            .collect();
        if !locks.is_empty() && !self.controller {
            return mine(o, vec![OrderEvent::Detachable]);
        }
        let mut events = self.leave(o, &locks);
        events.push(KeyedEvent::order(&o.id, OrderEvent::FailedInFork));
        events
    }

    fn waiting(&self, o: &Order, wait: &Wait) -> Vec<KeyedEvent> {
        match wait {
            Wait::Sleep { until } | Wait::RetryDelay { until } | Wait::Cycle { until } => {
                if let Some(e) = self.stop_mark(o) {
                    return e;
                }
                let go = o.mark == Some(Mark::Go);
                if !go && self.now < *until {
                    return Vec::new();
                }
                let mut events = Vec::new();
                if go {
                    events.push(KeyedEvent::order(&o.id, self.clear_mark(o)));
                }
                match wait {
                    Wait::Sleep { .. } => events.extend(self.move_to(o, o.position.next())),
                    _ => events.push(KeyedEvent::order(&o.id, OrderEvent::DelayEnded)),
                }
                events
            }
            Wait::Lock { lock, count } => {
                if let Some(e) = self.stop_mark(o) {
                    return e;
                }
                match self.world.locks.get(lock) {
                    Some(state)
                        if state.queue.front().is_some_and(|(q, _)| q == &o.id)
                            && state.fits(*count) =>
                    {
                        mine(
                            o,
                            vec![OrderEvent::LockAcquired {
                                lock: lock.clone(),
                                count: *count,
                            }],
                        )
                    }
                    _ => Vec::new(),
                }
            }
            Wait::Notices {
                boards,
                key,
                consume,
            } => {
                if let Some(e) = self.stop_mark(o) {
                    return e;
                }
                if let Some(
                    Instruction::ExpectNoticesWhen { notices, .. }
                    | Instruction::ConsumeNoticesWhen { notices, .. },
                ) = instruction_at(&self.workflow.steps, &o.position)
                {
                    return self
                        .notices_fulfilled(o, notices, key, *consume)
                        .unwrap_or_default();
                }
                if !self.all_notices(boards, key) {
                    return Vec::new();
                }
                if *consume {
                    mine(
                        o,
                        vec![OrderEvent::ConsumingNotices {
                            boards: boards.clone(),
                            key: key.clone(),
                        }],
                    )
                } else {
                    self.move_to(o, o.position.next())
                }
            }
            Wait::Children { children } => self.join(o, children),
            Wait::AddedOrder { order } => {
                if let Some(Mark::Cancel { .. }) = o.mark {
                    return self.stop_mark(o).unwrap_or_default();
                }
                match self.world.order(order).map(|a| &a.state) {
                    None => self.fail(o, format!("the added order {order} is gone")),
                    Some(OrderState::Finished) => self.move_to(o, o.position.next()),
                    Some(OrderState::Cancelled) => {
                        self.fail(o, format!("the added order {order} was cancelled"))
                    }
                    Some(OrderState::Failed) => {
                        let why = self
                            .world
                            .order(order)
                            .and_then(|a| a.last_outcome())
                            .map(|oc| format!(": {oc}"))
                            .unwrap_or_default();
                        self.fail(o, format!("the added order {order} failed{why}"))
                    }
                    Some(_) => Vec::new(),
                }
            }
        }
    }

    fn all_notices(&self, boards: &[crate::ids::BoardName], key: &str) -> bool {
        boards.iter().all(|b| {
            self.world
                .boards
                .get(b)
                .is_some_and(|s| s.has(key, self.now))
        })
    }

    fn notices(
        &self,
        o: &Order,
        boards: &[crate::ids::BoardName],
        key: &crate::expr::Template,
        consume: bool,
    ) -> Vec<KeyedEvent> {
        if let Some(b) = boards.iter().find(|b| !self.world.boards.contains_key(*b)) {
            return self.fail(o, format!("board {b} is not deployed"));
        }
        let key = match render_text(o, key) {
            Ok(k) => k,
            Err(e) => return self.disrupt(o, format!("notice key: {e}")),
        };
        if !self.all_notices(boards, &key) {
            return mine(
                o,
                vec![OrderEvent::ExpectingNotices {
                    boards: boards.to_vec(),
                    key,
                    consume,
                }],
            );
        }
        if consume {
            mine(
                o,
                vec![OrderEvent::ConsumingNotices {
                    boards: boards.to_vec(),
                    key,
                }],
            )
        } else {
            self.move_to(o, o.position.next())
        }
    }

    /// `expect`/`consume` with a notice expression: go on once it holds, else as
    /// `whenNotAnnounced` says (see [`WhenNotAnnounced`]).
    fn notices_when(
        &self,
        o: &Order,
        notices: &NoticeExpr,
        key: &crate::expr::Template,
        when: WhenNotAnnounced,
        consume: bool,
    ) -> Vec<KeyedEvent> {
        let boards = notices.boards();
        if let Some(b) = boards.iter().find(|b| !self.world.boards.contains_key(*b)) {
            return self.fail(o, format!("board {b} is not deployed"));
        }
        let key = match render_text(o, key) {
            Ok(k) => k,
            Err(e) => return self.disrupt(o, format!("notice key: {e}")),
        };
        if let Some(events) = self.notices_fulfilled(o, notices, &key, consume) {
            return events;
        }
        // Not fulfilled. No board announces notices, so every missing one is "not
        // announced" and `whenNotAnnounced` decides.
        let p = &o.position;
        match when {
            WhenNotAnnounced::Wait => mine(
                o,
                vec![OrderEvent::ExpectingNotices {
                    boards,
                    key,
                    consume,
                }],
            ),
            _ if !consume => self.move_to(o, p.next()),
            _ => {
                let present = self.present_boards(&boards, &key);
                if when == WhenNotAnnounced::Skip && present.is_empty() {
                    return self.move_to(o, p.next());
                }
                mine(
                    o,
                    vec![OrderEvent::ConsumingNotices {
                        boards: present,
                        key,
                    }],
                )
            }
        }
    }

    /// The events of a fulfilled notice expression (move on, or consume the notices that
    /// exist), or `None` while it does not hold.
    fn notices_fulfilled(
        &self,
        o: &Order,
        notices: &NoticeExpr,
        key: &str,
        consume: bool,
    ) -> Option<Vec<KeyedEvent>> {
        let has = |b: &crate::ids::BoardName| {
            self.world
                .boards
                .get(b)
                .is_some_and(|s| s.has(key, self.now))
        };
        if !notices.holds(&has) {
            return None;
        }
        Some(if consume {
            mine(
                o,
                vec![OrderEvent::ConsumingNotices {
                    boards: self.present_boards(&notices.boards(), key),
                    key: key.to_owned(),
                }],
            )
        } else {
            self.move_to(o, o.position.next())
        })
    }

    /// The boards of `boards` with a live notice `key`.
    fn present_boards(
        &self,
        boards: &[crate::ids::BoardName],
        key: &str,
    ) -> Vec<crate::ids::BoardName> {
        boards
            .iter()
            .filter(|b| {
                self.world
                    .boards
                    .get(*b)
                    .is_some_and(|s| s.has(key, self.now))
            })
            .cloned()
            .collect()
    }

    fn lock(&self, o: &Order, lock: &crate::ids::LockName, count: Option<u32>) -> Vec<KeyedEvent> {
        let Some(state) = self.world.locks.get(lock) else {
            return self.disrupt(o, format!("lock {lock} is not deployed"));
        };
        let count = count.unwrap_or(state.limit);
        if count == 0 || count > state.limit {
            return self.disrupt(
                o,
                format!(
                    "lock {lock} has a limit of {}, {count} asked: it can never be granted",
                    state.limit
                ),
            );
        }
        if holds_lock(o, lock) {
            return self.disrupt(
                o,
                format!("the order holds lock {lock} already: it can never be granted again"),
            );
        }
        // A fork child asking for a lock one of its parents holds would wait for ever: the
        // parent keeps it until its children have joined.
        let mut parent = o.parent.as_ref();
        for _ in 0..FORK_DEPTH_MAX {
            let Some(p) = parent.and_then(|id| self.world.order(id)) else {
                break;
            };
            if holds_lock(p, lock) {
                return self.disrupt(
                    o,
                    format!(
                        "lock {lock} is held by {}, which waits for this order: it can never be granted",
                        p.id
                    ),
                );
            }
            parent = p.parent.as_ref();
        }
        let event = if state.queue.is_empty() && state.fits(count) {
            OrderEvent::LockAcquired {
                lock: lock.clone(),
                count,
            }
        } else {
            OrderEvent::LockQueued {
                lock: lock.clone(),
                count,
            }
        };
        mine(o, vec![event])
    }

    fn cycle_next(&self, o: &Order, at: &Position, repeat: &CycleRepeat) -> Vec<KeyedEvent> {
        let Some(Frame::Cycle {
            iteration,
            since,
            slot,
        }) = o.frame_at(at)
        else {
            return self.move_to(o, at.next());
        };
        let (iteration, since, slot) = (*iteration, *since, *slot);
        let event = match repeat {
            CycleRepeat::Times(n) => {
                if iteration >= *n {
                    return self.move_to(o, at.next());
                }
                OrderEvent::CycleContinued {
                    iteration: iteration + 1,
                    slot: slot + 1,
                    until: None,
                }
            }
            CycleRepeat::Every { every, for_ } => {
                let every = every.0.max(1);
                let end = since.plus(*for_);
                let elapsed = u64::try_from(self.now.0.saturating_sub(since.0)).unwrap_or(0);
                let next = (slot + 1).max(elapsed.div_ceil(every));
                let start = since.plus(DurationMs(next.saturating_mul(every)));
                if start >= end {
                    return self.move_to(o, at.next());
                }
                OrderEvent::CycleContinued {
                    iteration: iteration.saturating_add(1),
                    slot: next,
                    until: (start > self.now).then_some(start),
                }
            }
            // `slot` holds the previous start (ms).
            CycleRepeat::Schedule(schedule) => {
                if schedule.limit.is_some_and(|l| iteration >= l) {
                    return self.move_to(o, at.next());
                }
                let previous = TimeMs(i64::try_from(slot).unwrap_or(i64::MAX));
                let Some(start) = cycle::next_start(schedule, since, self.now, Some(previous))
                else {
                    return self.move_to(o, at.next());
                };
                OrderEvent::CycleContinued {
                    iteration: iteration.saturating_add(1),
                    slot: u64::try_from(start.0).unwrap_or(0),
                    until: (start > self.now).then_some(start),
                }
            }
        };
        mine(o, vec![event])
    }

    fn fork(&self, o: &Order, children: Vec<ForkChild>) -> Vec<KeyedEvent> {
        if children.is_empty() {
            return self.move_to(o, o.position.next());
        }
        if let Some(c) = children
            .iter()
            .find(|c| self.world.orders.contains_key(&c.id))
        {
            return self.fail(o, format!("order {} exists already", c.id));
        }
        mine(o, vec![OrderEvent::Forked { children }])
    }

    fn fork_list(
        &self,
        o: &Order,
        over: &ForkListOver,
        var: &str,
        steps: &crate::inventory::Block,
    ) -> Vec<KeyedEvent> {
        let (list, child_to_id, child_to_arguments) = match over {
            ForkListOver::List(expr) => (Some(expr), None, None),
            ForkListOver::ListWith {
                list,
                child_to_id,
                child_to_arguments,
            } => (
                Some(list),
                child_to_id.as_ref(),
                child_to_arguments.as_ref(),
            ),
            ForkListOver::Subagents(_) => (None, None, None),
        };
        let items: Vec<(String, Value, Option<AgentId>)> = match (over, list) {
            (_, Some(expr)) => {
                if let Side::Agent(a) = self.side
                    && !stays_on(self.workflow, steps, a)
                {
                    return mine(o, vec![OrderEvent::Detachable]);
                }
                match eval_for(o, expr) {
                    Ok(Value::List(items)) if items.len() > FORK_CHILDREN_MAX => {
                        return self.fail(o, too_many_children(items.len()));
                    }
                    Ok(Value::List(items)) => {
                        let children =
                            forklist::list_children(o, items, var, child_to_id, child_to_arguments);
                        return match children {
                            Ok(children) => self.fork(
                                o,
                                children
                                    .into_iter()
                                    .map(|c| ForkChild {
                                        id: c.id,
                                        branch: BlockKey::ForkList,
                                        vars: c.vars,
                                        subagent: None,
                                    })
                                    .collect(),
                            ),
                            Err(problem) => self.disrupt(o, format!("fork-list: {problem}")),
                        };
                    }
                    Ok(other) => {
                        return self.disrupt(
                            o,
                            format!("fork-list needs a list, not a {}", other.type_name()),
                        );
                    }
                    Err(e) => return self.disrupt(o, format!("fork-list: {e}")),
                }
            }
            (ForkListOver::Subagents(agent), None) => {
                if !self.controller {
                    return mine(o, vec![OrderEvent::Detachable]);
                }
                let Some(spec) = self.world.agents.get(agent) else {
                    return self.fail(o, format!("agent {agent} is not deployed"));
                };
                let ids: Vec<AgentId> = if spec.subagents.is_empty() {
                    vec![spec.id.clone()]
                } else {
                    spec.subagents.iter().map(|s| s.id.clone()).collect()
                };
                ids.into_iter()
                    .map(|id| (id.to_string(), Value::String(id.to_string()), Some(id)))
                    .collect()
            }
            (_, None) => Vec::new(),
        };
        if items.len() > FORK_CHILDREN_MAX {
            return self.fail(o, too_many_children(items.len()));
        }
        let mut children = Vec::with_capacity(items.len());
        for (index, (name, value, subagent)) in items.into_iter().enumerate() {
            let Ok(id) = o.id.child(&name) else {
                return self.fail(
                    o,
                    format!("the child order id {}|{name} is not valid", o.id),
                );
            };
            let mut vars = o.vars.clone();
            vars.insert(var.to_owned(), value);
            vars.insert(
                forklist::FORK_LIST_INDEX.to_owned(),
                Value::Number(index as f64),
            );
            children.push(ForkChild {
                id,
                branch: BlockKey::ForkList,
                vars,
                subagent,
            });
        }
        self.fork(o, children)
    }

    fn join(&self, o: &Order, children: &[OrderId]) -> Vec<KeyedEvent> {
        let mut failed = Vec::new();
        let mut merged = Vars::new();
        let (skip, results) = match instruction_at(&self.workflow.steps, &o.position) {
            Some(Instruction::ForkList { var, steps, .. }) => {
                (Some(var.as_str()), forklist::result_names(steps))
            }
            _ => (None, Vec::new()),
        };
        // A fork-list's results: one list per name, an element per child in order.
        let mut lists: Vec<Vec<Value>> = vec![Vec::with_capacity(children.len()); results.len()];
        for id in children {
            let Some(child) = self.world.order(id) else {
                if !self.controller {
                    return mine(o, vec![OrderEvent::Detachable]);
                }
                failed.push(format!("{id} is gone"));
                continue;
            };
            if !child.holder.is_held_by(self.side) {
                return if self.controller {
                    Vec::new()
                } else {
                    mine(o, vec![OrderEvent::Detachable])
                };
            }
            match &child.state {
                OrderState::Ready if self.at_branch_end(o, child) => {
                    for (list, name) in lists.iter_mut().zip(&results) {
                        list.push(child.vars.get(*name).cloned().unwrap_or(Value::Missing));
                    }
                    for (k, v) in &child.vars {
                        if k != RETURN_CODE
                            && Some(k.as_str()) != skip
                            && k != forklist::FORK_LIST_INDEX
                            && !results.contains(&k.as_str())
                            && o.vars.get(k) != Some(v)
                        {
                            merged.insert(k.clone(), v.clone());
                        }
                    }
                }
                OrderState::FailedInFork => failed.push(match child.last_outcome() {
                    Some(oc) => format!("{id} {oc}"),
                    None => format!("{id} failed"),
                }),
                OrderState::Cancelled => failed.push(format!("{id} was cancelled")),
                _ => return Vec::new(),
            }
        }
        for (name, list) in results.iter().zip(lists) {
            merged.insert((*name).to_owned(), Value::List(list));
        }
        let outcome = if failed.is_empty() {
            Outcome::Succeeded { values: merged }
        } else {
            Outcome::failed(format!("child orders failed: {}", failed.join("; ")))
        };
        mine(o, vec![OrderEvent::Joined { outcome }])
    }

    fn at_branch_end(&self, parent: &Order, child: &Order) -> bool {
        let depth = parent.position.outer.len() + 1;
        child.position.outer.len() == depth
            && block_at(&self.workflow.steps, &child.position.outer)
                .is_some_and(|b| b.len() == child.position.index as usize)
    }

    fn add_order(
        &self,
        o: &Order,
        workflow: &crate::ids::WorkflowName,
        args: &std::collections::BTreeMap<String, crate::expr::Template>,
        wait: bool,
        options: OrderOptions,
    ) -> Vec<KeyedEvent> {
        let Ok(id) = OrderId::new(format!("{}@{}", o.id, o.added_orders.saturating_add(1))) else {
            return self.fail(o, format!("the added order's id for {} is not valid", o.id));
        };
        let Some((version, target)) = self.world.latest(workflow) else {
            return self.fail(o, format!("workflow {workflow} is not deployed"));
        };
        let scope = OrderScope::new(o);
        let mut vars = Vars::new();
        for (name, template) in args {
            match expr::render(template, &scope) {
                Ok(v) => {
                    vars.insert(name.clone(), v);
                }
                Err(e) => return self.disrupt(o, format!("add-order argument {name}: {e}")),
            }
        }
        // The new order's arguments pass the same door as an order added from outside.
        if let Err(e) = self.limits.check_vars(&vars) {
            return self.fail(o, format!("add-order to {workflow}: {e}"));
        }
        let vars = match super::command::prepare_vars_in(self.world, target, vars) {
            Ok(v) => v,
            Err(e) => return self.fail(o, format!("add-order: {e}")),
        };
        let mut events = Vec::new();
        if !self.world.orders.contains_key(&id) {
            events.push(KeyedEvent::order(
                &id,
                OrderEvent::Added {
                    workflow: workflow.clone(),
                    version,
                    vars,
                    scheduled_for: None,
                    added_by: Some(o.id.clone()),
                },
            ));
            if !options.is_default() {
                events.push(KeyedEvent::order(&id, OrderEvent::OptionsSet { options }));
            }
        }
        events.push(KeyedEvent::order(
            &o.id,
            OrderEvent::AddedOrder { order: id, wait },
        ));
        events
    }
}

/// How far `lock` follows an order's parents.
pub(crate) const FORK_DEPTH_MAX: usize = 64;

fn holds_lock(o: &Order, lock: &crate::ids::LockName) -> bool {
    o.frames
        .iter()
        .any(|f| matches!(&f.frame, Frame::Lock { lock: l, .. } if l == lock))
}

/// The events that cancel `o` where it stands: release its locks, then cancel.
pub(crate) fn cancel_events(o: &Order) -> Vec<KeyedEvent> {
    let mut events: Vec<KeyedEvent> = o
        .frames
        .iter()
        .rev()
        .filter_map(|f| match &f.frame {
            Frame::Lock { lock, .. } => Some(KeyedEvent::order(
                &o.id,
                OrderEvent::LockReleased { lock: lock.clone() },
            )),
            _ => None,
        })
        .collect();
    events.push(KeyedEvent::order(&o.id, OrderEvent::Cancelled));
    events
}

/// The failure of a fork-list over more than [`FORK_CHILDREN_MAX`] elements.
fn too_many_children(elements: usize) -> String {
    format!("fork-list over {elements} elements; at most {FORK_CHILDREN_MAX} are allowed")
}
