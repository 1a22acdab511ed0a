//! An order and everything it carries: state, holder, mark, outcomes, block frames.
//!
//! These types travel inside events (`Attached` carries a whole [`Order`]) and snapshots, so
//! the append-only rule of [`super::event`] holds for them too: new enum variants go at the
//! end, and a struct never gains, loses or reorders a field without a new event variant.

use crate::ids::{AgentId, BoardName, LockName, OrderId, ScheduleName, WorkflowName};
use crate::position::Position;
use crate::schedule::Missed;
use crate::time::TimeMs;
use crate::value::{Value, Vars};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How many outcomes an order keeps; older ones are dropped (the journal keeps them all).
pub const OUTCOMES_MAX: usize = 100;

/// Where a state machine runs: the controller, or one agent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    Controller,
    Agent(AgentId),
}

/// Who holds an order, i.e. whose `step` may move it (design §7 "Ownership of orders").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holder {
    /// The controller holds it.
    Controller,
    /// The controller hands it to the agent; nobody moves it until the agent has it.
    Attaching(AgentId),
    /// The agent holds it.
    Agent(AgentId),
    /// The agent hands it back; nobody moves it until the controller has it.
    Detaching(AgentId),
}

impl Holder {
    /// The agent involved, if any.
    pub fn agent(&self) -> Option<&AgentId> {
        match self {
            Holder::Controller => None,
            Holder::Attaching(a) | Holder::Agent(a) | Holder::Detaching(a) => Some(a),
        }
    }

    /// Whether `side` may move an order held like this.
    pub fn is_held_by(&self, side: &Side) -> bool {
        match (self, side) {
            (Holder::Controller, Side::Controller) => true,
            (Holder::Agent(a), Side::Agent(b)) => a == b,
            _ => false,
        }
    }
}

/// How a running job is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kill {
    /// SIGTERM, then SIGKILL after the job's grace timeout.
    Term,
    /// SIGKILL at once.
    Kill,
}

/// A request applied by the order's holder at the next safe point (JS7's OrderMark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mark {
    /// Cancel; kill the running job first when `kill` is set.
    Cancel { kill: Option<Kill> },
    /// Suspend; kill the running job first when `kill` is set.
    Suspend { kill: Option<Kill> },
    /// End the current wait (schedule, sleep, retry delay, cycle pause) now.
    Go,
}

impl Mark {
    pub fn kill(&self) -> Option<Kill> {
        match self {
            Mark::Cancel { kill } | Mark::Suspend { kill } => *kill,
            Mark::Go => None,
        }
    }

    /// Cancel and suspend are honoured by handing the order to the controller.
    pub fn stops(&self) -> bool {
        matches!(self, Mark::Cancel { .. } | Mark::Suspend { .. })
    }
}

/// Why an order was disrupted: an uncatchable outcome that fails the order where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disruption {
    /// The agent (or subagent) died while the job ran.
    ProcessLost,
    /// The workflow cannot go on here: an expression that does not evaluate (a variable that
    /// is not set, a value of the wrong type), a lock that can never be granted. Passes every
    /// `try` and `retry` (JS7's `Disrupted(problem)`); a restart does not help, so only an
    /// operator's resume (after fixing the cause) moves the order on.
    Problem(String),
}

/// The result of a job, a `fail`, a join or an awaited added order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Named values, including `returnCode` for a job; they become order variables.
    Succeeded { values: Vars },
    Failed {
        message: String,
        return_code: Option<i32>,
        /// Passes every `try` and `retry`.
        uncatchable: bool,
    },
    /// The job ran longer than its timeout and was killed.
    TimedOut,
    /// The job was killed (cancel or suspend with kill, or from outside).
    Killed,
    /// The process was lost: restart a restartable job, fail the order otherwise.
    Disrupted(Disruption),
    /// An outcome with a message and named values (JS7's `Completed`): a `finish` with an
    /// outcome, or a job that failed after returning values. The values become order
    /// variables either way; a failure is caught like `Failed`.
    Completed {
        succeeded: bool,
        message: Option<String>,
        return_code: Option<i32>,
        values: Vars,
    },
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::Succeeded { .. }
                | Outcome::Completed {
                    succeeded: true,
                    ..
                }
        )
    }

    /// Passes every `try` and `retry`.
    pub fn is_uncatchable(&self) -> bool {
        matches!(
            self,
            Outcome::Failed {
                uncatchable: true,
                ..
            } | Outcome::Disrupted(_)
        )
    }

    /// An uncatchable [`Disruption::Problem`].
    pub fn disrupted(problem: impl Into<String>) -> Outcome {
        Outcome::Disrupted(Disruption::Problem(problem.into()))
    }

    pub fn failed(message: impl Into<String>) -> Outcome {
        Outcome::Failed {
            message: message.into(),
            return_code: None,
            uncatchable: false,
        }
    }
}

/// An outcome and where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoricOutcome {
    pub position: Position,
    pub outcome: Outcome,
}

/// What an order in state `Waiting` waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Wait {
    /// A `sleep`.
    Sleep { until: TimeMs },
    /// The delay before the next try of a `retry`.
    RetryDelay { until: TimeMs },
    /// The next period of a `cycle`.
    Cycle { until: TimeMs },
    /// Its turn in the lock's queue.
    Lock { lock: LockName, count: u32 },
    /// Notices with `key` on every board.
    Notices {
        boards: Vec<BoardName>,
        key: String,
        consume: bool,
    },
    /// Its fork's child orders.
    Children { children: Vec<OrderId> },
    /// An order it added.
    AddedOrder { order: OrderId },
}

impl Wait {
    /// The instant a timer wait ends.
    pub fn until(&self) -> Option<TimeMs> {
        match self {
            Wait::Sleep { until } | Wait::RetryDelay { until } | Wait::Cycle { until } => {
                Some(*until)
            }
            _ => None,
        }
    }
}

/// An order's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderState {
    /// Added, not started; starts at `scheduled_for` (or at once).
    Fresh,
    /// Ready to run the instruction at its position.
    Ready,
    /// Its job runs (or is about to: the start is journaled before the spawn).
    Processing {
        since: TimeMs,
        /// The job's process group; 0 when it was not known as the start was journaled.
        pgid: u32,
    },
    /// A job, `fail`, join or awaited order gave this outcome; the next step handles it.
    Processed {
        outcome: Outcome,
    },
    Waiting(Wait),
    /// Waits for an answer to `question`.
    Prompting {
        question: String,
    },
    /// Stopped by an operator; `fresh` if it had not started.
    Suspended {
        fresh: bool,
    },
    /// A failure no `try` caught; an operator may resume or cancel it.
    Failed,
    /// A fork child's failure, joined by a fork with `joinIfFailed` (the join fails).
    FailedInFork,
    Cancelled,
    Finished,
}

impl OrderState {
    /// Finished or cancelled: nothing moves it any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, OrderState::Finished | OrderState::Cancelled)
    }

    /// The user-facing name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            OrderState::Fresh => "fresh",
            OrderState::Ready | OrderState::Processed { .. } => "ready",
            OrderState::Processing { .. } => "processing",
            OrderState::Waiting(_) => "waiting",
            OrderState::Prompting { .. } => "prompting",
            OrderState::Suspended { .. } => "suspended",
            OrderState::Failed | OrderState::FailedInFork => "failed",
            OrderState::Cancelled => "cancelled",
            OrderState::Finished => "finished",
        }
    }
}

/// What an order remembers about an instruction whose block it is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// A `retry` whose block runs for the `tries`-th time (present from the second try).
    Retry { tries: u32 },
    /// A `cycle` in its `iteration`-th run (from 1), started at period `slot` (from 0) of
    /// the cycle that began at `since`.
    Cycle {
        iteration: u32,
        since: TimeMs,
        slot: u64,
    },
    /// A held lock, released when the block is left.
    Lock { lock: LockName, count: u32 },
    /// Notices consumed when the block is left.
    Notices { boards: Vec<BoardName>, key: String },
    /// A planned order's `missed:` policy, from its schedule, carried with the order (to the
    /// agent it is attached to) until its first move; at [`super::missed::PLANNED_AT`], a
    /// position no instruction has. `missed_by_ms` is set once its holder found its instant
    /// passed by that much and the policy drops it (see [`super::missed`]).
    Planned {
        schedule: ScheduleName,
        missed: Missed,
        late_ms: u64,
        missed_by_ms: Option<u64>,
    },
}

impl Frame {
    /// Lock frames must be released by an event; the others go away with a move.
    pub fn is_lock(&self) -> bool {
        matches!(self, Frame::Lock { .. })
    }

    /// Frames only the controller may leave (lock release, notice consumption).
    pub fn needs_controller(&self) -> bool {
        matches!(self, Frame::Lock { .. } | Frame::Notices { .. })
    }
}

/// A frame and the position of its instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockFrame {
    pub at: Position,
    pub frame: Frame,
}

/// An order: a run of a workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub workflow: WorkflowName,
    pub version: crate::ids::VersionId,
    pub position: Position,
    pub state: OrderState,
    /// Arguments, returned values, `returnCode`, and values set on resume or answer.
    pub vars: Vars,
    pub scheduled_for: Option<TimeMs>,
    pub holder: Holder,
    pub mark: Option<Mark>,
    /// Increased by the controller with every new mark (or mark removal).
    pub mark_seq: u32,
    /// The holding agent has the mark of `mark_seq`.
    pub mark_delivered: bool,
    /// Starts of the job at this position during this visit: 1, then + 1 per restart after
    /// a lost process or a resume at the same position.
    pub attempt: u32,
    /// The last [`OUTCOMES_MAX`] outcomes, oldest first.
    pub outcomes: Vec<HistoricOutcome>,
    /// Frames of the enclosing instructions that need one, outermost first.
    pub frames: Vec<BlockFrame>,
    /// The forked order this one is a branch of.
    pub parent: Option<OrderId>,
    /// The order whose `add-order` added this one.
    pub added_by: Option<OrderId>,
    /// How many orders this one added; names the next one.
    pub added_orders: u32,
    /// The subagent every job of this order runs on (fork-list over subagents).
    pub subagent: Option<AgentId>,
}

impl Order {
    /// A fresh order at the start of its workflow.
    pub fn fresh(
        id: OrderId,
        workflow: WorkflowName,
        version: crate::ids::VersionId,
        vars: Vars,
        scheduled_for: Option<TimeMs>,
    ) -> Order {
        Order {
            id,
            workflow,
            version,
            position: Position::start(),
            state: OrderState::Fresh,
            vars,
            scheduled_for,
            holder: Holder::Controller,
            mark: None,
            mark_seq: 0,
            mark_delivered: false,
            attempt: 1,
            outcomes: Vec::new(),
            frames: Vec::new(),
            parent: None,
            added_by: None,
            added_orders: 0,
            subagent: None,
        }
    }

    /// The frame of the instruction at `at`, if the order has one.
    pub fn frame_at(&self, at: &Position) -> Option<&Frame> {
        self.frames.iter().find(|f| &f.at == at).map(|f| &f.frame)
    }

    /// The last outcome.
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.outcomes.last().map(|h| &h.outcome)
    }

    /// Records an outcome and takes its values into the variables. A job's return code
    /// ends an earlier `timedOut`; a timed-out job sets `returnCode` to
    /// [`TIMED_OUT_RETURN_CODE`] and `timedOut` to true.
    pub(crate) fn add_outcome(&mut self, outcome: &Outcome) {
        let return_code = match outcome {
            Outcome::Succeeded { values } | Outcome::Completed { values, .. } => {
                values.contains_key(RETURN_CODE)
            }
            Outcome::Failed { return_code, .. } => return_code.is_some(),
            _ => false,
        };
        if return_code {
            self.vars.remove(TIMED_OUT);
        }
        match outcome {
            Outcome::TimedOut => {
                self.vars.insert(
                    RETURN_CODE.to_owned(),
                    Value::Number(f64::from(TIMED_OUT_RETURN_CODE)),
                );
                self.vars.insert(TIMED_OUT.to_owned(), Value::Bool(true));
            }
            Outcome::Succeeded { values } => {
                for (k, v) in values {
                    self.vars.insert(k.clone(), v.clone());
                }
            }
            Outcome::Completed {
                return_code,
                values,
                ..
            } => {
                for (k, v) in values {
                    self.vars.insert(k.clone(), v.clone());
                }
                if let Some(rc) = return_code {
                    self.vars
                        .insert(RETURN_CODE.to_owned(), Value::Number(f64::from(*rc)));
                }
            }
            Outcome::Failed {
                return_code: Some(rc),
                ..
            } => {
                self.vars
                    .insert(RETURN_CODE.to_owned(), Value::Number(f64::from(*rc)));
            }
            _ => {}
        }
        if self.outcomes.len() >= OUTCOMES_MAX {
            self.outcomes.remove(0);
        }
        self.outcomes.push(HistoricOutcome {
            position: self.position.clone(),
            outcome: outcome.clone(),
        });
    }
}

/// The variable that holds a job's return code.
pub const RETURN_CODE: &str = "returnCode";
/// The variable that is true after a job that timed out (until the next job's return code).
pub const TIMED_OUT: &str = "timedOut";
/// The return code of a job that timed out: 128 + SIGTERM, as a shell reports a process
/// ended by SIGTERM (JS7 reports the same), also when SIGKILL was needed after the grace
/// timeout.
pub const TIMED_OUT_RETURN_CODE: i32 = 143;

/// The outcome of a job whose process ended by itself: [`super::job_outcome`], except that
/// a failed job keeps the named values it returned (they become order variables, like a
/// successful job's), as JS7 keeps them.
pub fn job_result(
    return_codes: &crate::inventory::ReturnCodes,
    exit: super::Exit,
    values: Vars,
) -> Outcome {
    match super::job_outcome(return_codes, exit, values.clone()) {
        Outcome::Failed {
            message,
            return_code,
            uncatchable,
        } if !values.is_empty() && !uncatchable => Outcome::Completed {
            succeeded: false,
            message: Some(message),
            return_code,
            values,
        },
        other => other,
    }
}

/// Whether the instruction at `at` encloses `pos` (`pos` is in one of its blocks).
pub fn encloses(at: &Position, pos: &Position) -> bool {
    let depth = at.outer.len();
    pos.outer.len() > depth && pos.outer[..depth] == at.outer[..] && pos.outer[depth].0 == at.index
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Controller => f.write_str("controller"),
            Side::Agent(a) => write!(f, "agent {a}"),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Controller => f.write_str("controller"),
            Holder::Attaching(a) => write!(f, "attaching to {a}"),
            Holder::Agent(a) => write!(f, "agent {a}"),
            Holder::Detaching(a) => write!(f, "detaching from {a}"),
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kill = |k: &Option<Kill>| match k {
            None => "",
            Some(Kill::Term) => " (kill)",
            Some(Kill::Kill) => " (kill at once)",
        };
        match self {
            Mark::Cancel { kill: k } => write!(f, "cancel{}", kill(k)),
            Mark::Suspend { kill: k } => write!(f, "suspend{}", kill(k)),
            Mark::Go => f.write_str("go"),
        }
    }
}

pub(crate) fn fmt_vars(f: &mut fmt::Formatter<'_>, vars: &Vars) -> fmt::Result {
    f.write_str("{")?;
    for (i, (k, v)) in vars.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        match v {
            Value::String(s) => write!(f, "{k}: {s:?}")?,
            Value::Missing => write!(f, "{k}: missing")?,
            Value::List(items) => {
                write!(f, "{k}: [")?;
                for (j, item) in items.iter().enumerate() {
                    if j > 0 {
                        f.write_str(", ")?;
                    }
                    match item {
                        Value::String(s) => write!(f, "{s:?}")?,
                        other => write!(f, "{other}")?,
                    }
                }
                f.write_str("]")?;
            }
            Value::Map(entries) => {
                write!(f, "{k}: ")?;
                fmt_vars(f, entries)?;
            }
            other => write!(f, "{k}: {other}")?,
        }
    }
    f.write_str("}")
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded { values } => {
                f.write_str("succeeded ")?;
                fmt_vars(f, values)
            }
            Outcome::Failed {
                message,
                return_code,
                uncatchable,
            } => {
                write!(f, "failed {message:?}")?;
                if let Some(rc) = return_code {
                    write!(f, " rc={rc}")?;
                }
                if *uncatchable {
                    f.write_str(" uncatchable")?;
                }
                Ok(())
            }
            Outcome::Completed {
                succeeded,
                message,
                return_code,
                values,
            } => {
                f.write_str(if *succeeded { "succeeded" } else { "failed" })?;
                if let Some(m) = message {
                    write!(f, " {m:?}")?;
                }
                if let Some(rc) = return_code {
                    write!(f, " rc={rc}")?;
                }
                if !values.is_empty() {
                    f.write_str(" ")?;
                    fmt_vars(f, values)?;
                }
                Ok(())
            }
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::Killed => f.write_str("killed"),
            Outcome::Disrupted(Disruption::ProcessLost) => f.write_str("disrupted (process lost)"),
            Outcome::Disrupted(Disruption::Problem(problem)) => {
                write!(f, "disrupted {problem:?}")
            }
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Sleep { until } => write!(f, "sleep until {}", until.0),
            Wait::RetryDelay { until } => write!(f, "retry delay until {}", until.0),
            Wait::Cycle { until } => write!(f, "next cycle at {}", until.0),
            Wait::Lock { lock, count } => write!(f, "lock {lock} ×{count}"),
            Wait::Notices {
                boards,
                key,
                consume,
            } => {
                let names: Vec<&str> = boards.iter().map(|b| b.as_str()).collect();
                let verb = if *consume { "consume" } else { "expect" };
                write!(f, "{verb} notice {key:?} on {}", names.join(", "))
            }
            Wait::Children { children } => {
                let names: Vec<&str> = children.iter().map(|c| c.as_str()).collect();
                write!(f, "children {}", names.join(", "))
            }
            Wait::AddedOrder { order } => write!(f, "order {order}"),
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderState::Fresh => f.write_str("fresh"),
            OrderState::Ready => f.write_str("ready"),
            OrderState::Processing { since, pgid: 0 } => {
                write!(f, "processing since {}", since.0)
            }
            OrderState::Processing { since, pgid } => {
                write!(f, "processing since {} (pgid {pgid})", since.0)
            }
            OrderState::Processed { outcome } => write!(f, "processed: {outcome}"),
            OrderState::Waiting(w) => write!(f, "waiting for {w}"),
            OrderState::Prompting { question } => write!(f, "prompting {question:?}"),
            OrderState::Suspended { fresh: true } => f.write_str("suspended (fresh)"),
            OrderState::Suspended { fresh: false } => f.write_str("suspended"),
            OrderState::Failed => f.write_str("failed"),
            OrderState::FailedInFork => f.write_str("failed in fork"),
            OrderState::Cancelled => f.write_str("cancelled"),
            OrderState::Finished => f.write_str("finished"),
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Retry { tries } => write!(f, "retry try {tries}"),
            Frame::Cycle {
                iteration,
                since,
                slot,
            } => write!(f, "cycle run {iteration} (slot {slot} since {})", since.0),
            Frame::Lock { lock, count } => write!(f, "lock {lock} ×{count}"),
            Frame::Notices { boards, key } => {
                let names: Vec<&str> = boards.iter().map(|b| b.as_str()).collect();
                write!(f, "notices {key:?} on {}", names.join(", "))
            }
            Frame::Planned {
                schedule,
                missed,
                late_ms,
                missed_by_ms,
            } => {
                write!(
                    f,
                    "planned by {schedule} (missed: {}, late after {late_ms} ms)",
                    missed.word()
                )?;
                if let Some(by) = missed_by_ms {
                    write!(f, ", missed by {by} ms")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encloses_checks_the_instruction_path() {
        let at: Position = "2/do/1".parse().unwrap();
        assert!(encloses(&at, &"2/do/1/do/0".parse().unwrap()));
        assert!(encloses(&at, &"2/do/1/then:0/3/try/0".parse().unwrap()));
        assert!(!encloses(&at, &"2/do/1".parse().unwrap()));
        assert!(!encloses(&at, &"2/do/2/do/0".parse().unwrap()));
        assert!(!encloses(&at, &"3".parse().unwrap()));
    }
}
