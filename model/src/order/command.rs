//! Inputs that are not steps: operator commands on the controller, the controller's
//! commands on an agent, deployment, notice expiry, and lost processes after a crash.

use super::event::{BoardEvent, ItemEvent, KeyedEvent, OrderEvent};
use super::input::{InputError, OrderLimits};
use super::nav::{branch_level, is_valid};
use super::options::{OrderOptions, ParameterType, WorkflowSettings};
use super::state::{
    Disruption, Frame, Holder, Kill, Mark, Order, OrderState, Outcome, Side, Wait, encloses,
};
use super::step::cancel_events;
use super::world::World;
use crate::expr;
use crate::ids::{BoardName, OrderId, ScheduleName, VersionId, WorkflowName};
use crate::inventory::{Inventory, Workflow};
use crate::position::Position;
use crate::time::TimeMs;
use crate::value::{Value, Vars};
use serde::{Deserialize, Serialize};

/// An operator's command to the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Add an order to the newest version of `workflow`; idempotent per id.
    Add {
        id: OrderId,
        workflow: WorkflowName,
        vars: Vars,
        scheduled_for: Option<TimeMs>,
    },
    /// Cancel the order (and its fork's children); kill its running job if `kill` is set,
    /// otherwise let the job end first.
    Cancel {
        id: OrderId,
        kill: Option<Kill>,
    },
    /// Suspend the order at its next safe point; kill its running job if `kill` is set.
    Suspend {
        id: OrderId,
        kill: Option<Kill>,
    },
    /// Resume a suspended or failed order, optionally at another position of the same or an
    /// enclosing block, with variables set; or withdraw a suspension not yet done.
    Resume {
        id: OrderId,
        position: Option<Position>,
        vars: Vars,
    },
    /// Answer a prompt; the variables are set and the order moves on.
    Answer {
        id: OrderId,
        vars: Vars,
    },
    /// End the order's wait (schedule, sleep, retry delay, cycle pause) now.
    Go {
        id: OrderId,
    },
    /// Remove a finished or cancelled order from the state.
    Remove {
        id: OrderId,
    },
    PostNotice {
        board: BoardName,
        key: String,
    },
    DeleteNotice {
        board: BoardName,
        key: String,
    },
    /// [`Command::Add`] with a priority or removal ([`OrderOptions`]); with the default
    /// options it is exactly `Add`.
    AddWithOptions {
        id: OrderId,
        workflow: WorkflowName,
        vars: Vars,
        scheduled_for: Option<TimeMs>,
        options: OrderOptions,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add { .. } | Command::AddWithOptions { .. } => "add",
            Command::Cancel { .. } => "cancel",
            Command::Suspend { .. } => "suspend",
            Command::Resume { .. } => "resume",
            Command::Answer { .. } => "answer",
            Command::Go { .. } => "go",
            Command::Remove { .. } => "remove",
            Command::PostNotice { .. } => "post-notice",
            Command::DeleteNotice { .. } => "delete-notice",
        }
    }
}

/// The controller's command to an agent (sent for [`Action`](super::Action)s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentCommand {
    AttachOrder {
        order: Box<Order>,
        workflow: Box<Workflow>,
    },
    DetachOrder {
        id: OrderId,
    },
    MarkOrder {
        id: OrderId,
        mark: Option<Mark>,
        seq: u32,
    },
    /// [`AgentCommand::AttachOrder`] of an order with options set (sent only then, so that
    /// an agent that does not know this command still takes every other order).
    AttachOrderWithOptions {
        order: Box<Order>,
        workflow: Box<Workflow>,
        options: OrderOptions,
    },
    /// [`AgentCommand::AttachOrderWithOptions`] of an order whose workflow has job settings
    /// ([`crate::inventory::JobSettings`]): the agent keeps them for the workflow (sent only
    /// then, for the same reason).
    AttachOrderWithJobs {
        order: Box<Order>,
        workflow: Box<Workflow>,
        options: OrderOptions,
        jobs: crate::inventory::JobSettingsMap,
    },
}

/// A command's events; `duplicate` when an `Add` found the id taken (no events then).
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub events: Vec<KeyedEvent>,
    pub duplicate: bool,
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("order {0} does not exist")]
    UnknownOrder(OrderId),
    #[error("workflow {0} is not deployed")]
    UnknownWorkflow(WorkflowName),
    #[error("board {0} is not deployed")]
    UnknownBoard(BoardName),
    #[error("order {id}: {why}")]
    Refused { id: OrderId, why: String },
    #[error("bad order id {0}: '|' is kept for fork children")]
    ReservedId(OrderId),
    #[error("variables: {0}")]
    Vars(String),
    /// The command's input breaks a rule of [`super::input`] (a limit, a name, an instant).
    #[error("order {id}: {error}")]
    Input { id: OrderId, error: InputError },
    #[error("this command is for {expected}, and this is {actual}")]
    WrongSide { expected: String, actual: Side },
    #[error("schedule {0} is not deployed")]
    UnknownSchedule(ScheduleName),
    /// A command on the daily plan that does not fit it (a window too long, too many fires).
    #[error("{0}")]
    Plan(String),
}

fn refused(id: &OrderId, why: impl Into<String>) -> CommandError {
    CommandError::Refused {
        id: id.clone(),
        why: why.into(),
    }
}

/// The order's variables from a workflow's parameters: given values, then defaults
/// (rendered over the values so far, in name order). A missing required one is an error;
/// variables that are not parameters are refused unless the workflow declares none or lets
/// them through ([`super::arguments`]). The parameters' types and `final` values are those
/// of `world`'s settings for the workflow ([`prepare_vars_with`]).
pub fn prepare_vars_in(world: &World, workflow: &Workflow, vars: Vars) -> Result<Vars, String> {
    prepare_vars_with(workflow, world.extras.workflows.get(&workflow.name), vars)
}

/// [`prepare_vars_in`] without types or `final` values.
pub fn prepare_vars(workflow: &Workflow, vars: Vars) -> Result<Vars, String> {
    prepare_vars_with(workflow, None, vars)
}

/// The order's variables from a workflow's parameters and its `settings`: a `final`
/// parameter may not be given and is evaluated last, over the other variables; every
/// parameter with a type must have a value of that type.
pub fn prepare_vars_with(
    workflow: &Workflow,
    settings: Option<&WorkflowSettings>,
    mut vars: Vars,
) -> Result<Vars, String> {
    super::arguments::undeclared_arguments(
        workflow.name.as_str(),
        workflow.parameters.keys().map(String::as_str),
        settings.is_some_and(|s| s.allow_undeclared),
        vars.keys().map(String::as_str),
    )?;
    let rules = settings.map(|s| &s.parameters);
    let rule = |name: &str| rules.and_then(|r| r.get(name));
    let is_final = |name: &str| rule(name).is_some_and(|r| r.final_value.is_some());
    for name in vars.keys() {
        if is_final(name) {
            return Err(format!(
                "parameter {name} of workflow {} is final: the workflow sets it, an order may not pass it",
                workflow.name
            ));
        }
    }
    for (name, parameter) in &workflow.parameters {
        if vars.contains_key(name) || is_final(name) {
            continue;
        }
        match &parameter.default {
            Some(default) => {
                let value = expr::render(default, &vars)
                    .map_err(|e| format!("default of parameter {name}: {e}"))?;
                // YAML's `default: 3` is the text "3": a typed parameter reads it as its type.
                let value = match (rule(name).and_then(|r| r.kind), value) {
                    (Some(ParameterType::Number), Value::String(t)) => t
                        .trim()
                        .parse::<f64>()
                        .map(Value::Number)
                        .unwrap_or(Value::String(t)),
                    (Some(ParameterType::Boolean), Value::String(t)) => match t.trim() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => Value::String(t),
                    },
                    (_, value) => value,
                };
                vars.insert(name.clone(), value);
            }
            None => {
                return Err(format!("workflow {} needs parameter {name}", workflow.name));
            }
        }
    }
    for (name, r) in rules.into_iter().flatten() {
        if let Some(e) = &r.final_value {
            let value = expr::eval(e, &vars).map_err(|e| format!("final parameter {name}: {e}"))?;
            vars.insert(name.clone(), value);
        }
    }
    for (name, r) in rules.into_iter().flatten() {
        if let (Some(kind), Some(value)) = (r.kind, vars.get(name))
            && !kind.holds(value)
        {
            return Err(format!(
                "parameter {name} of workflow {} is a {}, not {value}",
                workflow.name,
                kind.word()
            ));
        }
    }
    Ok(vars)
}

fn order<'a>(world: &'a World, id: &OrderId) -> Result<&'a Order, CommandError> {
    world
        .order(id)
        .ok_or_else(|| CommandError::UnknownOrder(id.clone()))
}

fn events(events: Vec<KeyedEvent>) -> Result<Accepted, CommandError> {
    Ok(Accepted {
        events,
        duplicate: false,
    })
}

fn next_mark(o: &Order, mark: Option<Mark>) -> KeyedEvent {
    KeyedEvent::order(
        &o.id,
        OrderEvent::Marked {
            mark,
            seq: o.mark_seq.saturating_add(1),
        },
    )
}

fn input(id: &OrderId, result: Result<(), InputError>) -> Result<(), CommandError> {
    result.map_err(|error| CommandError::Input {
        id: id.clone(),
        error,
    })
}

/// Decides an operator command on the controller's world. The events are not applied.
/// What an order is given from outside (`Add`, and the variables of `Resume` and `Answer`)
/// must pass the rules of [`super::input`] under `limits` first.
pub fn command(
    world: &World,
    command: Command,
    now: TimeMs,
    limits: &OrderLimits,
) -> Result<Accepted, CommandError> {
    if world.side() != &Side::Controller {
        return Err(CommandError::WrongSide {
            expected: "the controller".to_owned(),
            actual: world.side().clone(),
        });
    }
    match command {
        Command::Add {
            id,
            workflow,
            vars,
            scheduled_for,
        } => {
            input(&id, limits.check_add(&id, &vars, scheduled_for))?;
            if world.order(&id).is_some() {
                return Ok(Accepted {
                    events: Vec::new(),
                    duplicate: true,
                });
            }
            if id.as_str().contains('|') {
                return Err(CommandError::ReservedId(id));
            }
            let (version, target) = world
                .latest(&workflow)
                .ok_or_else(|| CommandError::UnknownWorkflow(workflow.clone()))?;
            let vars = prepare_vars_in(world, target, vars).map_err(CommandError::Vars)?;
            events(vec![KeyedEvent::order(
                &id,
                OrderEvent::Added {
                    workflow,
                    version,
                    vars,
                    scheduled_for,
                    added_by: None,
                },
            )])
        }
        Command::AddWithOptions {
            id,
            workflow,
            vars,
            scheduled_for,
            options,
        } => {
            let add = Command::Add {
                id: id.clone(),
                workflow,
                vars,
                scheduled_for,
            };
            let mut accepted = self::command(world, add, now, limits)?;
            if !accepted.duplicate && !options.is_default() {
                accepted
                    .events
                    .push(KeyedEvent::order(&id, OrderEvent::OptionsSet { options }));
            }
            Ok(accepted)
        }
        Command::Cancel { id, kill } => {
            let o = order(world, &id)?;
            match o.state {
                OrderState::Cancelled => return events(Vec::new()),
                OrderState::Finished => return Err(refused(&id, "it has finished")),
                OrderState::FailedInFork => {
                    return Err(refused(&id, "it failed in its fork and waits for the join"));
                }
                _ => {}
            }
            let mut out = Vec::new();
            cancel_tree(world, o, kill, &mut out, 0);
            events(out)
        }
        Command::Suspend { id, kill } => {
            let o = order(world, &id)?;
            match &o.state {
                OrderState::Suspended { .. } => return events(Vec::new()),
                s if s.is_terminal() => return Err(refused(&id, format!("it is {s}"))),
                OrderState::FailedInFork => {
                    return Err(refused(&id, "it failed in its fork and waits for the join"));
                }
                _ => {}
            }
            if let Some(Mark::Cancel { .. }) = o.mark {
                return Err(refused(&id, "it is being cancelled"));
            }
            let safe = matches!(
                &o.state,
                OrderState::Fresh
                    | OrderState::Ready
                    | OrderState::Prompting { .. }
                    | OrderState::Failed
            ) || matches!(&o.state, OrderState::Waiting(w) if !matches!(w, Wait::Children { .. } | Wait::AddedOrder { .. }));
            if o.holder == Holder::Controller && safe {
                events(vec![KeyedEvent::order(&id, OrderEvent::Suspended)])
            } else if o.mark == Some(Mark::Suspend { kill }) {
                events(Vec::new())
            } else {
                events(vec![next_mark(o, Some(Mark::Suspend { kill }))])
            }
        }
        Command::Resume { id, position, vars } => {
            input(&id, limits.check_vars(&vars))?;
            let o = order(world, &id)?;
            match (&o.state, &o.holder) {
                (OrderState::Suspended { .. } | OrderState::Failed, Holder::Controller) => {
                    let mut out = Vec::new();
                    if let Some(to) = &position {
                        check_resume_position(world, o, to)?;
                        for f in o.frames.iter().rev() {
                            if let Frame::Lock { lock, .. } = &f.frame
                                && !encloses(&f.at, to)
                            {
                                out.push(KeyedEvent::order(
                                    &id,
                                    OrderEvent::LockReleased { lock: lock.clone() },
                                ));
                            }
                        }
                    }
                    out.push(KeyedEvent::order(
                        &id,
                        OrderEvent::Resumed { position, vars },
                    ));
                    events(out)
                }
                _ if matches!(o.mark, Some(Mark::Suspend { .. })) => {
                    if position.is_some() || !vars.is_empty() {
                        return Err(refused(
                            &id,
                            "it is not suspended yet; resume without position and variables withdraws the suspension",
                        ));
                    }
                    events(vec![next_mark(o, None)])
                }
                _ => Err(refused(
                    &id,
                    format!(
                        "only a suspended or failed order can be resumed; it is {}",
                        o.state
                    ),
                )),
            }
        }
        Command::Answer { id, vars } => {
            input(&id, limits.check_vars(&vars))?;
            let o = order(world, &id)?;
            match (&o.state, &o.holder) {
                (OrderState::Prompting { .. }, Holder::Controller) => {
                    events(vec![KeyedEvent::order(
                        &id,
                        OrderEvent::PromptAnswered { vars },
                    )])
                }
                _ => Err(refused(
                    &id,
                    format!("it is not prompting; it is {}", o.state),
                )),
            }
        }
        Command::Go { id } => {
            let o = order(world, &id)?;
            let waiting = match &o.state {
                OrderState::Fresh => o.scheduled_for.is_some_and(|t| t > now),
                OrderState::Waiting(w) => w.until().is_some(),
                _ => false,
            };
            if !waiting {
                return Err(refused(
                    &id,
                    format!("it does not wait for a time; it is {}", o.state),
                ));
            }
            if o.holder != Holder::Controller {
                return events(vec![next_mark(o, Some(Mark::Go))]);
            }
            let event = match &o.state {
                OrderState::Fresh => OrderEvent::Started,
                OrderState::Waiting(Wait::Sleep { .. }) => OrderEvent::Moved {
                    to: o.position.next(),
                },
                _ => OrderEvent::DelayEnded,
            };
            events(vec![KeyedEvent::order(&id, event)])
        }
        Command::Remove { id } => {
            let o = order(world, &id)?;
            if !o.state.is_terminal() {
                return Err(refused(
                    &id,
                    format!(
                        "only a finished or cancelled order can be removed; it is {}",
                        o.state
                    ),
                ));
            }
            if o.parent.is_some() {
                return Err(refused(&id, "a fork child goes away with its join"));
            }
            events(vec![KeyedEvent::order(&id, OrderEvent::Removed)])
        }
        Command::PostNotice { board, key } => {
            let state = world
                .boards
                .get(&board)
                .ok_or_else(|| CommandError::UnknownBoard(board.clone()))?;
            let until = now.plus(state.lifetime);
            events(vec![KeyedEvent::Board {
                board,
                event: BoardEvent::Posted { key, until },
            }])
        }
        Command::DeleteNotice { board, key } => {
            let state = world
                .boards
                .get(&board)
                .ok_or_else(|| CommandError::UnknownBoard(board.clone()))?;
            if !state.notices.contains_key(&key) {
                return events(Vec::new());
            }
            events(vec![KeyedEvent::Board {
                board,
                event: BoardEvent::Deleted { key },
            }])
        }
    }
}

/// Cancels `o` where it stands if the controller holds it at a safe point, else marks it;
/// a forked order's children are cancelled too (the parent's mark waits for the join).
fn cancel_tree(
    world: &World,
    o: &Order,
    kill: Option<Kill>,
    out: &mut Vec<KeyedEvent>,
    depth: u32,
) {
    if o.state.is_terminal() || o.state == OrderState::FailedInFork || depth > 64 {
        return;
    }
    if let OrderState::Waiting(Wait::Children { children }) = &o.state {
        for c in children {
            if let Some(child) = world.order(c) {
                cancel_tree(world, child, kill, out, depth + 1);
            }
        }
    }
    let safe = !matches!(
        o.state,
        OrderState::Processing { .. } | OrderState::Waiting(Wait::Children { .. })
    );
    if o.holder == Holder::Controller && safe {
        out.extend(cancel_events(o));
    } else if o.mark != Some(Mark::Cancel { kill }) {
        out.push(next_mark(o, Some(Mark::Cancel { kill })));
    }
}

/// A resume position must exist and lie in the order's block or an enclosing one (not
/// outside its fork branch).
fn check_resume_position(world: &World, o: &Order, to: &Position) -> Result<(), CommandError> {
    let workflow = world
        .workflow(&o.workflow, o.version)
        .ok_or_else(|| CommandError::UnknownWorkflow(o.workflow.clone()))?;
    if !is_valid(&workflow.steps, to) {
        return Err(refused(
            &o.id,
            format!("position {to} is not in the workflow"),
        ));
    }
    let current = &o.position.outer;
    let prefix = to.outer.len() <= current.len() && current[..to.outer.len()] == to.outer[..];
    let in_branch = branch_level(&o.position).is_none_or(|level| to.outer.len() > level);
    if !prefix || !in_branch {
        return Err(refused(
            &o.id,
            format!(
                "position {to} is not in the block of {} or an enclosing one",
                o.position
            ),
        ));
    }
    Ok(())
}

/// Decides a controller's command on an agent's world. Repeated commands give no events.
pub fn agent_command(
    world: &World,
    command: AgentCommand,
) -> Result<Vec<KeyedEvent>, CommandError> {
    let Side::Agent(me) = world.side() else {
        return Err(CommandError::WrongSide {
            expected: "an agent".to_owned(),
            actual: world.side().clone(),
        });
    };
    match command {
        AgentCommand::AttachOrderWithJobs {
            order,
            workflow,
            options,
            jobs,
        } => {
            let name = workflow.name.clone();
            let command = AgentCommand::AttachOrderWithOptions {
                order,
                workflow,
                options,
            };
            let mut out = agent_command(world, command)?;
            if !out.is_empty() && world.extras.jobs.get(&name) != Some(&jobs) {
                // Before the order's events: its first step already runs by them.
                out.insert(
                    0,
                    KeyedEvent::Item(ItemEvent::JobSettings {
                        workflow: name,
                        jobs,
                    }),
                );
            }
            Ok(out)
        }
        AgentCommand::AttachOrderWithOptions {
            order,
            workflow,
            options,
        } => {
            let id = order.id.clone();
            let mut out = agent_command(world, AgentCommand::AttachOrder { order, workflow })?;
            if !out.is_empty() && !options.is_default() {
                out.push(KeyedEvent::order(&id, OrderEvent::OptionsSet { options }));
            }
            Ok(out)
        }
        AgentCommand::AttachOrder { order, workflow } => {
            if world.order(&order.id).is_some() {
                return Ok(Vec::new());
            }
            if order.holder != Holder::Attaching(me.clone()) {
                return Err(refused(
                    &order.id,
                    format!("it is {}, not attaching to {me}", order.holder),
                ));
            }
            if workflow.name != order.workflow {
                return Err(refused(
                    &order.id,
                    format!("it runs {}, not {}", order.workflow, workflow.name),
                ));
            }
            let mut out = Vec::new();
            match world.workflow(&order.workflow, order.version) {
                Some(w) if w != workflow.as_ref() => {
                    return Err(refused(
                        &order.id,
                        format!(
                            "workflow {} {} differs from the one here",
                            order.workflow, order.version
                        ),
                    ));
                }
                Some(_) => {}
                None => out.push(KeyedEvent::Item(ItemEvent::WorkflowDeployed {
                    version: order.version,
                    workflow,
                })),
            }
            let id = order.id.clone();
            out.push(KeyedEvent::order(&id, OrderEvent::Attached { order }));
            Ok(out)
        }
        AgentCommand::DetachOrder { id } => match world.order(&id) {
            None => Ok(Vec::new()),
            Some(o) if o.holder == Holder::Detaching(me.clone()) => {
                Ok(vec![KeyedEvent::order(&id, OrderEvent::Detached)])
            }
            Some(o) => Err(refused(&id, format!("it is held by {}", o.holder))),
        },
        AgentCommand::MarkOrder { id, mark, seq } => match world.order(&id) {
            Some(o) if seq > o.mark_seq => Ok(vec![KeyedEvent::order(
                &id,
                OrderEvent::MarkedOnAgent { mark, seq },
            )]),
            _ => Ok(Vec::new()),
        },
    }
}

/// The command that carries out [`Action::Attach`](super::Action::Attach).
pub fn attach_command(world: &World, id: &OrderId) -> Option<AgentCommand> {
    let order = world.order(id)?;
    let workflow = world.workflow(&order.workflow, order.version)?;
    let options = world.options(id);
    if let Some(jobs) = world.extras.jobs.get(&order.workflow) {
        return Some(AgentCommand::AttachOrderWithJobs {
            order: Box::new(order.clone()),
            workflow: Box::new(workflow.clone()),
            options,
            jobs: jobs.clone(),
        });
    }
    if options.is_default() {
        return Some(AgentCommand::AttachOrder {
            order: Box::new(order.clone()),
            workflow: Box::new(workflow.clone()),
        });
    }
    Some(AgentCommand::AttachOrderWithOptions {
        order: Box::new(order.clone()),
        workflow: Box::new(workflow.clone()),
        options,
    })
}

/// The events that deploy an inventory: a new version of each changed workflow, and the
/// agents, locks and boards that are new or changed.
pub fn deploy(world: &World, inventory: &Inventory) -> Vec<KeyedEvent> {
    let mut out = Vec::new();
    for workflow in &inventory.workflows {
        let version = match world.latest(&workflow.name) {
            Some((_, w)) if w == workflow => None,
            Some((v, _)) => Some(VersionId(v.0 + 1)),
            None => Some(VersionId(1)),
        };
        if let Some(version) = version {
            out.push(KeyedEvent::Item(ItemEvent::WorkflowDeployed {
                version,
                workflow: Box::new(workflow.clone()),
            }));
        }
        let settings = inventory
            .workflow_settings
            .get(&workflow.name)
            .cloned()
            .unwrap_or_default();
        let now = world
            .extras
            .workflows
            .get(&workflow.name)
            .cloned()
            .unwrap_or_default();
        if settings != now {
            out.push(KeyedEvent::Item(ItemEvent::WorkflowSettings {
                workflow: workflow.name.clone(),
                settings,
            }));
        }
        let jobs = inventory.job_settings.get(&workflow.name);
        if world.extras.jobs.get(&workflow.name) != jobs {
            out.push(KeyedEvent::Item(ItemEvent::JobSettings {
                workflow: workflow.name.clone(),
                jobs: jobs.cloned().unwrap_or_default(),
            }));
        }
    }
    for agent in &inventory.agents {
        if world.agents.get(&agent.id) != Some(agent) {
            out.push(KeyedEvent::Item(ItemEvent::AgentDeployed(agent.clone())));
        }
        let settings = inventory
            .agent_settings
            .get(&agent.id)
            .cloned()
            .unwrap_or_default();
        if world.cluster_settings(&agent.id) != settings {
            out.push(KeyedEvent::Item(ItemEvent::AgentSettings {
                agent: agent.id.clone(),
                settings,
            }));
        }
        let backup = inventory.backup_directors.get(&agent.id);
        if world.extras.backup_directors.get(&agent.id) != backup {
            out.push(KeyedEvent::Item(ItemEvent::AgentBackupDirector {
                agent: agent.id.clone(),
                url: backup.cloned(),
            }));
        }
        let priorities = inventory
            .subagent_priorities
            .get(&agent.id)
            .filter(|p| !p.is_empty());
        if world.extras.priorities.get(&agent.id) != priorities {
            out.push(KeyedEvent::Item(ItemEvent::AgentPriorities {
                agent: agent.id.clone(),
                priorities: priorities.cloned().unwrap_or_default(),
            }));
        }
    }
    for lock in &inventory.locks {
        if world.locks.get(&lock.name).map(|l| l.limit) != Some(lock.limit) {
            out.push(KeyedEvent::Item(ItemEvent::LockDeployed(lock.clone())));
        }
    }
    for board in &inventory.boards {
        if world.boards.get(&board.name).map(|b| b.lifetime) != Some(board.lifetime) {
            out.push(KeyedEvent::Item(ItemEvent::BoardDeployed(board.clone())));
        }
    }
    out
}

/// The events that delete a board's notices whose life ended at `now`.
pub fn expire_notices(world: &World, board: &BoardName, now: TimeMs) -> Vec<KeyedEvent> {
    let Some(state) = world.boards.get(board) else {
        return Vec::new();
    };
    state
        .notices
        .iter()
        .filter(|(_, until)| **until <= now)
        .map(|(key, _)| KeyedEvent::Board {
            board: board.clone(),
            event: BoardEvent::Deleted { key: key.clone() },
        })
        .collect()
}

/// Agent recovery: every order this agent's journal shows processing lost its process
/// (the agent kills surviving process groups first, design §7). A start is journaled before
/// the spawn, so this covers every job the agent may have started, also one that had ended
/// before the crash and one that was never spawned; `step` then restarts a `restartable` job
/// (attempt + 1) and fails the order otherwise.
pub fn lost_processes(world: &World) -> Vec<KeyedEvent> {
    world
        .orders
        .values()
        .filter(|o| {
            o.holder.is_held_by(world.side()) && matches!(o.state, OrderState::Processing { .. })
        })
        .map(|o| {
            KeyedEvent::order(
                &o.id,
                OrderEvent::Processed {
                    outcome: Outcome::Disrupted(Disruption::ProcessLost),
                },
            )
        })
        .collect()
}
