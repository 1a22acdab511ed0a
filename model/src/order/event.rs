//! Events: the only way a [`World`](super::World) changes.
//!
//! Events are journaled with postcard, so these enums are **append-only**: add new variants at
//! the end, never reorder, rename the wire meaning of, or remove a variant, and never add a
//! field to an existing variant (add a new variant instead). No `flatten`, `untagged` or
//! `skip_serializing_if`.

use super::options::{OrderOptions, WorkflowSettings};
use super::state::{Mark, Order, Outcome, fmt_vars};
use crate::ids::{AgentId, BoardName, LockName, OrderId, ScheduleName, VersionId, WorkflowName};
use crate::inventory::{Agent, Board, Lock, Workflow};
use crate::position::{BlockKey, Position};
use crate::schedule::Missed;
use crate::time::TimeMs;
use crate::value::Vars;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An event and the object it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyedEvent {
    Order { id: OrderId, event: OrderEvent },
    Board { board: BoardName, event: BoardEvent },
    Item(ItemEvent),
}

impl KeyedEvent {
    pub fn order(id: &OrderId, event: OrderEvent) -> KeyedEvent {
        KeyedEvent::Order {
            id: id.clone(),
            event,
        }
    }

    /// The key as text: the order id, `board:<name>`, or `inventory`.
    pub fn key(&self) -> String {
        match self {
            KeyedEvent::Order { id, .. } => id.to_string(),
            KeyedEvent::Board { board, .. } => format!("board:{board}"),
            KeyedEvent::Item(_) => "inventory".to_owned(),
        }
    }
}

/// A new child order of a fork.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForkChild {
    pub id: OrderId,
    /// The block the child runs: `fork:<branch>` or `forklist`.
    pub branch: BlockKey,
    pub vars: Vars,
    pub subagent: Option<AgentId>,
}

/// An order's event. Append-only (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// A fresh order (by a command or an `add-order` of `added_by`).
    Added {
        workflow: WorkflowName,
        version: VersionId,
        vars: Vars,
        scheduled_for: Option<TimeMs>,
        added_by: Option<OrderId>,
    },
    /// Fresh → ready.
    Started,
    /// Controller: hand the order to `agent`.
    Attachable {
        agent: AgentId,
    },
    /// Agent: it has the order (the controller's copy as it was handed over).
    Attached {
        order: Box<Order>,
    },
    /// Agent: hand the order back to the controller.
    Detachable,
    /// Agent: the order is gone from the agent; the controller holds it.
    Detached,
    /// Agent executor: the order's job starts. Journaled (durably) before the process is
    /// spawned, so a restarted agent knows every job it may have started (design §7); `at` is
    /// when the start was journaled. `pgid` is 0 when the process group was not known then
    /// (the agent keeps it in its own journal).
    ProcessingStarted {
        at: TimeMs,
        pgid: u32,
    },
    /// Agent executor: the job ended.
    Processed {
        outcome: Outcome,
    },
    /// An outcome not from a job: `fail`, an expression error, a missing lock, ...
    OutcomeAdded {
        outcome: Outcome,
    },
    Moved {
        to: Position,
    },
    /// A restartable job's process was lost: run it again.
    Restarted {
        attempt: u32,
    },
    /// A failure was caught: continue in the `catch` block at `to`.
    Caught {
        to: Position,
    },
    /// A failure inside a `retry`: try its block again (`tries` counts from 1), after a
    /// delay if `until` is set.
    Retrying {
        to: Position,
        tries: u32,
        until: Option<TimeMs>,
    },
    /// A failure nothing caught: the order stops, resumable.
    Failed,
    /// A fork child's failure, joined by its fork (`joinIfFailed`).
    FailedInFork,
    Sleeping {
        until: TimeMs,
    },
    /// A retry delay or a cycle pause is over.
    DelayEnded,
    /// A `cycle` begins its first run.
    CycleStarted {
        at: TimeMs,
    },
    /// A `cycle` begins another run, after a pause until `until` if set.
    CycleContinued {
        iteration: u32,
        slot: u64,
        until: Option<TimeMs>,
    },
    /// The order waits for these new child orders.
    Forked {
        children: Vec<ForkChild>,
    },
    /// Every child ended; the children are gone.
    Joined {
        outcome: Outcome,
    },
    LockQueued {
        lock: LockName,
        count: u32,
    },
    /// The lock is held; the order enters the lock's block.
    LockAcquired {
        lock: LockName,
        count: u32,
    },
    LockReleased {
        lock: LockName,
    },
    ExpectingNotices {
        boards: Vec<BoardName>,
        key: String,
        consume: bool,
    },
    /// The notices exist; the order enters the block that consumes them when it ends.
    ConsumingNotices {
        boards: Vec<BoardName>,
        key: String,
    },
    Prompted {
        question: String,
    },
    /// The answer's variables are set and the order moves past the prompt.
    PromptAnswered {
        vars: Vars,
    },
    /// An `add-order` added (or found) `order`; waits for it if `wait`, else moves on.
    AddedOrder {
        order: OrderId,
        wait: bool,
    },
    /// Controller: a new mark (or none), number `seq`.
    Marked {
        mark: Option<Mark>,
        seq: u32,
    },
    /// Agent: it has mark `seq` (stale ones are ignored).
    MarkedOnAgent {
        mark: Option<Mark>,
        seq: u32,
    },
    Suspended,
    /// Ready again (fresh again if suspended while fresh), optionally elsewhere.
    Resumed {
        position: Option<Position>,
        vars: Vars,
    },
    Cancelled,
    Finished {
        message: Option<String>,
    },
    /// A finished or cancelled order leaves the state.
    Removed,
    /// Agent executor: the job whose start was journaled was never spawned after all (a cancel
    /// or suspend mark came while it waited for a job worker): processing → ready, without an
    /// outcome, at the same attempt.
    ProcessingWithdrawn,
    /// A failure nothing caught, inside lock blocks: the locks were released just before,
    /// and the order stops at `to`, the outermost lock step it was in (JS7's
    /// `OrderFailed(movedTo)`), resumable there (it asks for the locks again).
    FailedAt {
        to: Position,
    },
    /// Into the `try` block of a try with retry at `to`, for its `tries`-th try (1 on
    /// entry; a `retry` in its `catch` gives the next), after a delay if `until` is set.
    TryAgain {
        to: Position,
        tries: u32,
        until: Option<TimeMs>,
    },
    /// A failure nothing caught inside `options: {stopOnFailure: true}`: the order stops
    /// failed where it failed, keeping its locks and blocks, resumable there (JS7's
    /// `OrderStopped`).
    Stopped,
    /// The order's priority and removal (see [`super::options`]): on the controller right
    /// after `Added`, on an agent right after `Attached`. Never the defaults.
    OptionsSet {
        options: OrderOptions,
    },
    /// Controller: the order is the planned order of an instant of `schedule`; its `missed:`
    /// policy and the plan's `late_ms` travel with it (a [`super::Frame::Planned`]), so that
    /// whoever holds it at its instant applies the policy ([`super::missed`]).
    PlannedBy {
        schedule: ScheduleName,
        missed: Missed,
        late_ms: u64,
    },
    /// Its holder found the planned instant passed by `late_by_ms` (more than its `late_ms`)
    /// and the policy says it does not run: the order is cancelled (an agent hands it back
    /// first), and the plan shows the instant as missed.
    Missed {
        late_by_ms: u64,
    },
}

/// A notice board's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BoardEvent {
    Posted { key: String, until: TimeMs },
    Deleted { key: String },
}

/// A deployed inventory object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ItemEvent {
    WorkflowDeployed {
        version: VersionId,
        workflow: Box<Workflow>,
    },
    AgentDeployed(Agent),
    LockDeployed(Lock),
    BoardDeployed(Board),
    // New variants go at the end: item events are journaled (postcard).
    /// The workflow is no longer deployed: every version of it is dropped. Deploy refuses
    /// this while a live order uses one of them (`crate::deploy`).
    WorkflowRemoved(WorkflowName),
    /// The agent is no longer deployed; deploy refuses this while a deployed workflow names
    /// it or an order is attached to it.
    AgentRemoved(AgentId),
    /// The lock is no longer deployed; refused while a workflow names it or an order holds or
    /// waits for it.
    LockRemoved(LockName),
    /// The board and its notices are gone; refused while a workflow names it or an order
    /// waits for its notices.
    BoardRemoved(BoardName),
    /// A workflow's settings for the orders added from now on (see [`super::options`]).
    WorkflowSettings {
        workflow: WorkflowName,
        settings: WorkflowSettings,
    },
    /// An agent cluster's settings (lease timeout, subagents' process limits), deployed with
    /// its agent object, kept beside it ([`crate::inventory::ClusterSettings`]).
    AgentSettings {
        agent: AgentId,
        settings: crate::inventory::ClusterSettings,
    },
    /// The URL of an agent's backup director (`backupDirector`: the agent is a director
    /// pair), kept beside its object; `None`: the agent has none.
    AgentBackupDirector {
        agent: AgentId,
        url: Option<String>,
    },
    /// The settings of a workflow's jobs (restart budgets, subagent selections), for its
    /// orders from now on, kept beside the workflow ([`crate::inventory::JobSettings`]); an
    /// empty map: none has any. Journaled by the controller at deployment, and by an agent
    /// that got them with an order (`AgentCommand::AttachOrderWithJobs`).
    JobSettings {
        workflow: WorkflowName,
        jobs: crate::inventory::JobSettingsMap,
    },
    /// An agent cluster's subagent priorities given as expressions (subagent → expression,
    /// [`crate::priority`]), kept beside its object; empty: it has none.
    AgentPriorities {
        agent: AgentId,
        priorities: crate::priority::Priorities,
    },
}

impl OrderEvent {
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::Added { .. } => "Added",
            OrderEvent::Started => "Started",
            OrderEvent::Attachable { .. } => "Attachable",
            OrderEvent::Attached { .. } => "Attached",
            OrderEvent::Detachable => "Detachable",
            OrderEvent::Detached => "Detached",
            OrderEvent::ProcessingStarted { .. } => "ProcessingStarted",
            OrderEvent::Processed { .. } => "Processed",
            OrderEvent::OutcomeAdded { .. } => "OutcomeAdded",
            OrderEvent::Moved { .. } => "Moved",
            OrderEvent::Restarted { .. } => "Restarted",
            OrderEvent::Caught { .. } => "Caught",
            OrderEvent::Retrying { .. } => "Retrying",
            OrderEvent::Failed => "Failed",
            OrderEvent::FailedInFork => "FailedInFork",
            OrderEvent::Sleeping { .. } => "Sleeping",
            OrderEvent::DelayEnded => "DelayEnded",
            OrderEvent::CycleStarted { .. } => "CycleStarted",
            OrderEvent::CycleContinued { .. } => "CycleContinued",
            OrderEvent::Forked { .. } => "Forked",
            OrderEvent::Joined { .. } => "Joined",
            OrderEvent::LockQueued { .. } => "LockQueued",
            OrderEvent::LockAcquired { .. } => "LockAcquired",
            OrderEvent::LockReleased { .. } => "LockReleased",
            OrderEvent::ExpectingNotices { .. } => "ExpectingNotices",
            OrderEvent::ConsumingNotices { .. } => "ConsumingNotices",
            OrderEvent::Prompted { .. } => "Prompted",
            OrderEvent::PromptAnswered { .. } => "PromptAnswered",
            OrderEvent::AddedOrder { .. } => "AddedOrder",
            OrderEvent::Marked { .. } => "Marked",
            OrderEvent::MarkedOnAgent { .. } => "MarkedOnAgent",
            OrderEvent::Suspended => "Suspended",
            OrderEvent::Resumed { .. } => "Resumed",
            OrderEvent::Cancelled => "Cancelled",
            OrderEvent::Finished { .. } => "Finished",
            OrderEvent::Removed => "Removed",
            OrderEvent::ProcessingWithdrawn => "ProcessingWithdrawn",
            // The same failure for readers (frame types, `ordo order add --wait`), with the
            // position it stopped at.
            OrderEvent::FailedAt { .. } => "Failed",
            OrderEvent::TryAgain { .. } => "TryAgain",
            // A failed order for readers, like `FailedAt`; the line says it stopped.
            OrderEvent::Stopped => "Failed",
            OrderEvent::OptionsSet { .. } => "OptionsSet",
            OrderEvent::PlannedBy { .. } => "PlannedBy",
            OrderEvent::Missed { .. } => "Missed",
        }
    }
}

fn names<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_mark(f: &mut fmt::Formatter<'_>, mark: &Option<Mark>) -> fmt::Result {
    match mark {
        Some(m) => write!(f, "{m}"),
        None => f.write_str("none"),
    }
}

impl fmt::Display for OrderEvent {
    /// One line, for logs and golden files.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            OrderEvent::Added {
                workflow,
                version,
                vars,
                scheduled_for,
                added_by,
            } => {
                write!(f, " {workflow} {version} ")?;
                fmt_vars(f, vars)?;
                if let Some(t) = scheduled_for {
                    write!(f, " at {}", t.0)?;
                }
                if let Some(by) = added_by {
                    write!(f, " by {by}")?;
                }
                Ok(())
            }
            OrderEvent::Attachable { agent } => write!(f, " {agent}"),
            OrderEvent::Attached { order } => {
                write!(f, " at {} {}", order.position, order.state)
            }
            OrderEvent::ProcessingStarted { at, pgid } => {
                write!(f, " at {}", at.0)?;
                if *pgid != 0 {
                    write!(f, " pgid {pgid}")?;
                }
                Ok(())
            }
            OrderEvent::Processed { outcome }
            | OrderEvent::OutcomeAdded { outcome }
            | OrderEvent::Joined { outcome } => write!(f, " {outcome}"),
            OrderEvent::Moved { to } | OrderEvent::Caught { to } => write!(f, " {to}"),
            OrderEvent::FailedAt { to } => write!(f, " at {to} (locks released)"),
            OrderEvent::Stopped => f.write_str(" (stopOnFailure: stopped here)"),
            OrderEvent::Restarted { attempt } => write!(f, " attempt {attempt}"),
            OrderEvent::Retrying { to, tries, until }
            | OrderEvent::TryAgain { to, tries, until } => {
                write!(f, " {to} try {tries}")?;
                if let Some(t) = until {
                    write!(f, " at {}", t.0)?;
                }
                Ok(())
            }
            OrderEvent::Sleeping { until } => write!(f, " until {}", until.0),
            OrderEvent::CycleStarted { at } => write!(f, " at {}", at.0),
            OrderEvent::CycleContinued {
                iteration,
                slot,
                until,
            } => {
                write!(f, " run {iteration} slot {slot}")?;
                if let Some(t) = until {
                    write!(f, " at {}", t.0)?;
                }
                Ok(())
            }
            OrderEvent::Forked { children } => {
                let ids: Vec<&OrderId> = children.iter().map(|c| &c.id).collect();
                write!(f, " {}", names(&ids))
            }
            OrderEvent::LockQueued { lock, count } | OrderEvent::LockAcquired { lock, count } => {
                write!(f, " {lock} ×{count}")
            }
            OrderEvent::LockReleased { lock } => write!(f, " {lock}"),
            OrderEvent::ExpectingNotices {
                boards,
                key,
                consume,
            } => write!(
                f,
                " {key:?} on {}{}",
                names(boards),
                if *consume { " (consume)" } else { "" }
            ),
            OrderEvent::ConsumingNotices { boards, key } if boards.is_empty() => {
                write!(f, " {key:?} on no board")
            }
            OrderEvent::ConsumingNotices { boards, key } => {
                write!(f, " {key:?} on {}", names(boards))
            }
            OrderEvent::Prompted { question } => write!(f, " {question:?}"),
            OrderEvent::PromptAnswered { vars } => {
                f.write_str(" ")?;
                fmt_vars(f, vars)
            }
            OrderEvent::AddedOrder { order, wait } => {
                write!(f, " {order}{}", if *wait { " (wait)" } else { "" })
            }
            OrderEvent::Marked { mark, seq } | OrderEvent::MarkedOnAgent { mark, seq } => {
                f.write_str(" ")?;
                fmt_mark(f, mark)?;
                write!(f, " #{seq}")
            }
            OrderEvent::Resumed { position, vars } => {
                if let Some(p) = position {
                    write!(f, " at {p}")?;
                }
                if !vars.is_empty() {
                    f.write_str(" ")?;
                    fmt_vars(f, vars)?;
                }
                Ok(())
            }
            OrderEvent::Finished { message: Some(m) } => write!(f, " {m:?}"),
            OrderEvent::OptionsSet { options } => {
                write!(f, " priority {}", options.priority)?;
                match options.delete_when_terminated {
                    Some(true) => f.write_str(" delete-when-terminated"),
                    Some(false) => f.write_str(" keep"),
                    None => Ok(()),
                }
            }
            OrderEvent::PlannedBy {
                schedule,
                missed,
                late_ms,
            } => write!(
                f,
                " {schedule} missed: {} late after {late_ms} ms",
                missed.word()
            ),
            OrderEvent::Missed { late_by_ms } => write!(f, " by {late_by_ms} ms"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for BoardEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardEvent::Posted { key, until } => {
                write!(f, "NoticePosted {key:?} until {}", until.0)
            }
            BoardEvent::Deleted { key } => write!(f, "NoticeDeleted {key:?}"),
        }
    }
}

impl fmt::Display for ItemEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemEvent::WorkflowDeployed { version, workflow } => {
                write!(f, "WorkflowDeployed {} {version}", workflow.name)
            }
            ItemEvent::AgentDeployed(a) => write!(f, "AgentDeployed {}", a.id),
            ItemEvent::LockDeployed(l) => write!(f, "LockDeployed {} limit {}", l.name, l.limit),
            ItemEvent::BoardDeployed(b) => write!(f, "BoardDeployed {}", b.name),
            ItemEvent::WorkflowRemoved(n) => write!(f, "WorkflowRemoved {n}"),
            ItemEvent::AgentRemoved(a) => write!(f, "AgentRemoved {a}"),
            ItemEvent::LockRemoved(l) => write!(f, "LockRemoved {l}"),
            ItemEvent::BoardRemoved(b) => write!(f, "BoardRemoved {b}"),
            ItemEvent::WorkflowSettings { workflow, settings } => {
                write!(
                    f,
                    "WorkflowSettings {workflow} deleteWhenTerminated {}",
                    settings.delete_when_terminated
                )?;
                if settings.allow_undeclared {
                    write!(f, " allowUndeclared")?;
                }
                Ok(())
            }
            ItemEvent::AgentSettings { agent, settings } => write!(
                f,
                "AgentSettings {agent} leaseTimeout {} processLimits {:?}",
                settings.lease_timeout, settings.process_limits
            ),
            ItemEvent::AgentBackupDirector { agent, url } => match url {
                Some(url) => write!(f, "AgentBackupDirector {agent} {url}"),
                None => write!(f, "AgentBackupDirector {agent} none"),
            },
            ItemEvent::JobSettings { workflow, jobs } => {
                write!(f, "JobSettings {workflow}")?;
                for (job, s) in jobs {
                    write!(f, " {job}")?;
                    if let Some(b) = s.restart_budget {
                        write!(f, " restartBudget {b}")?;
                    }
                    if let Some(sel) = &s.subagent_selection {
                        let ids: Vec<&str> = sel.subagents.iter().map(|x| x.id.as_str()).collect();
                        write!(f, " subagents [{}]", ids.join(","))?;
                        if let Some(mode) = sel.selection {
                            write!(f, " selection {mode:?}")?;
                        }
                    }
                }
                Ok(())
            }
            ItemEvent::AgentPriorities { agent, priorities } => {
                write!(f, "AgentPriorities {agent}")?;
                if priorities.is_empty() {
                    return write!(f, " none");
                }
                for (subagent, expr) in priorities {
                    write!(f, " {subagent}: {expr:?}", expr = expr.to_string())?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for KeyedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedEvent::Order { id, event } => write!(f, "{id}: {event}"),
            KeyedEvent::Board { board, event } => write!(f, "board {board}: {event}"),
            KeyedEvent::Item(e) => write!(f, "{e}"),
        }
    }
}
