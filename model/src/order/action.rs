//! [`actions`]: what the executor of a side must do, derived from the state alone.

use super::scope::OrderScope;
use super::state::{Holder, Kill, Mark, Order, OrderState, Outcome, RETURN_CODE, Side};
use super::world::World;
use crate::expr;
use crate::ids::{AgentId, BoardName, JobName, OrderId, VersionId, WorkflowName};
use crate::inventory::{Executable, Instruction, ReturnCodes};
use crate::position::Position;
use crate::time::{DurationMs, TimeMs};
use crate::value::{Value, Vars};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything an agent needs to start a job's process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartJob {
    pub order: OrderId,
    pub agent: AgentId,
    /// The subagent the order is pinned to, if any.
    pub subagent: Option<AgentId>,
    pub workflow: WorkflowName,
    pub version: VersionId,
    pub position: Position,
    pub job: JobName,
    /// 1 for the first start at this position, + 1 per restart.
    pub attempt: u32,
    pub executable: Executable,
    /// The job's `env:`, rendered. A protected name ([`crate::env::protected`]) is here only
    /// when its template is a constant.
    pub env: BTreeMap<String, String>,
    /// The variables the job sees: its default arguments, then the order's variables, then
    /// the step's arguments (later ones win).
    pub args: Vars,
    pub timeout: Option<DurationMs>,
    pub grace_timeout: DurationMs,
    pub return_codes: ReturnCodes,
    /// The job's own subagent selection, if it has one ([`JobSettings`](crate::inventory::JobSettings)).
    pub subagent_selection: Option<crate::inventory::JobSelection>,
}

/// What the executor of a side must do now. Actions follow from the state: a restarted
/// executor computes the same ones, so it must skip what it has started already (a job per
/// order and attempt, a timer per order and instant, a message per order and holder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Agent: take back the order's job if no process was spawned for it yet and emit
    /// `ProcessingWithdrawn` (a cancel or suspend mark came); a job already (being) spawned
    /// runs on, and a `Kill` of the same round kills it. Which ready order starts its job
    /// next is [`JobQueue`](super::JobQueue)'s rule.
    Withdraw { order: OrderId },
    /// Agent: kill the order's process group (SIGTERM, SIGKILL after `grace_timeout`, or
    /// SIGKILL at once).
    Kill {
        order: OrderId,
        pgid: u32,
        kill: Kill,
        grace_timeout: DurationMs,
    },
    /// Step the order again at `at` (a schedule, sleep, retry delay or cycle pause).
    WakeAt { order: OrderId, at: TimeMs },
    /// Controller: send `AgentCommand::AttachOrder` (see [`attach_command`](super::attach_command)).
    Attach { order: OrderId, agent: AgentId },
    /// Controller: send `AgentCommand::DetachOrder`.
    Detach { order: OrderId, agent: AgentId },
    /// Controller: send `AgentCommand::MarkOrder`.
    Mark {
        order: OrderId,
        agent: AgentId,
        mark: Option<Mark>,
        seq: u32,
    },
    /// Controller: at `at`, call `expire_notices` for this board.
    ExpireNotices { board: BoardName, at: TimeMs },
}

/// The job the order is about to run, rendered; the error says what could not be rendered.
pub fn start_job(world: &World, order: &Order) -> Result<StartJob, String> {
    let workflow = world
        .workflow(&order.workflow, order.version)
        .ok_or_else(|| format!("workflow {} {} is not here", order.workflow, order.version))?;
    let Some(Instruction::Run { job: name, args }) =
        super::nav::instruction_at(&workflow.steps, &order.position)
    else {
        return Err(format!("no job at {}", order.position));
    };
    let job = workflow
        .jobs
        .get(name)
        .ok_or_else(|| format!("job {name} is not in the workflow"))?;
    let scope = OrderScope::new(order);
    let mut vars = Vars::new();
    for (k, t) in &job.args {
        let v = expr::render(t, &scope).map_err(|e| format!("job {name} argument {k}: {e}"))?;
        vars.insert(k.clone(), v);
    }
    for (k, v) in &order.vars {
        vars.insert(k.clone(), v.clone());
    }
    let mut step_args = Vars::new();
    for (k, t) in args {
        let v = expr::render(t, &scope).map_err(|e| format!("step argument {k}: {e}"))?;
        step_args.insert(k.clone(), v);
    }
    vars.extend(step_args);
    let scope = OrderScope {
        order,
        args: Some(&vars),
    };
    let mut env = BTreeMap::new();
    for (k, t) in &job.env {
        // Deploy refuses this already; a workflow that bypassed the check never starts.
        if let Some(why) = crate::env::protected(k)
            && t.uses_variables()
        {
            return Err(format!(
                "job {name} env {k}: {k} {why}, so it may only be set to a constant, not from variables"
            ));
        }
        let v = expr::render(t, &scope).map_err(|e| format!("job {name} env {k}: {e}"))?;
        env.insert(k.clone(), v.to_string());
    }
    Ok(StartJob {
        order: order.id.clone(),
        agent: job.agent.clone(),
        subagent: order.subagent.clone(),
        workflow: order.workflow.clone(),
        version: order.version,
        position: order.position.clone(),
        job: name.clone(),
        attempt: order.attempt,
        executable: job.executable.clone(),
        env,
        args: vars,
        timeout: job.timeout,
        grace_timeout: job.grace_timeout,
        return_codes: job.return_codes.clone(),
        subagent_selection: world.job_settings(&order.workflow, name).subagent_selection,
    })
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// The outcome of a process that ended by itself (not timed out, not killed by the agent):
/// the return codes decide; `values` are the named values it returned.
pub fn job_outcome(return_codes: &ReturnCodes, exit: Exit, values: Vars) -> Outcome {
    match exit {
        Exit::Code(code) if return_codes.is_success(code) => {
            let mut values = values;
            values.insert(RETURN_CODE.to_owned(), Value::Number(f64::from(code)));
            Outcome::Succeeded { values }
        }
        Exit::Code(code) => Outcome::Failed {
            message: format!("return code {code} means failure"),
            return_code: Some(code),
            uncatchable: false,
        },
        Exit::Signal(signal) => Outcome::failed(format!("terminated by signal {signal}")),
    }
}

/// The actions for the world's side, in a stable order (by order id, then boards).
pub fn actions(world: &World) -> Vec<Action> {
    let mut out = Vec::new();
    for o in world.orders.values() {
        order_actions(world, o, &mut out);
    }
    out.extend(board_actions(world));
    out
}

/// The actions of the given orders only, in their order: what an executor needs after a
/// batch of events touched them, without looking at every order. Unknown ids are skipped.
pub fn actions_for<'a>(world: &World, ids: impl IntoIterator<Item = &'a OrderId>) -> Vec<Action> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(o) = world.orders.get(id) {
            order_actions(world, o, &mut out);
        }
    }
    out
}

/// The controller's notice expiries: for each board, the end of its first notice to expire.
pub fn board_actions(world: &World) -> Vec<Action> {
    if *world.side() != Side::Controller {
        return Vec::new();
    }
    world
        .boards
        .iter()
        .filter_map(|(name, board)| {
            board
                .notices
                .values()
                .min()
                .map(|at| Action::ExpireNotices {
                    board: name.clone(),
                    at: *at,
                })
        })
        .collect()
}

fn order_actions(world: &World, o: &Order, out: &mut Vec<Action>) {
    let side = world.side();
    match (side, &o.holder) {
        (Side::Controller, Holder::Attaching(agent)) => out.push(Action::Attach {
            order: o.id.clone(),
            agent: agent.clone(),
        }),
        (Side::Controller, Holder::Detaching(agent)) => out.push(Action::Detach {
            order: o.id.clone(),
            agent: agent.clone(),
        }),
        (Side::Controller, Holder::Agent(agent)) if !o.mark_delivered && o.mark_seq > 0 => out
            .push(Action::Mark {
                order: o.id.clone(),
                agent: agent.clone(),
                mark: o.mark.clone(),
                seq: o.mark_seq,
            }),
        _ => {}
    }
    if !o.holder.is_held_by(side) {
        return;
    }
    match &o.state {
        OrderState::Fresh => {
            if let Some(at) = o.scheduled_for {
                out.push(Action::WakeAt {
                    order: o.id.clone(),
                    at,
                });
            }
        }
        OrderState::Waiting(w) => {
            if let Some(at) = w.until() {
                out.push(Action::WakeAt {
                    order: o.id.clone(),
                    at,
                });
            }
        }
        OrderState::Processing { pgid, .. } => {
            if o.mark.as_ref().is_some_and(Mark::stops) {
                out.push(Action::Withdraw {
                    order: o.id.clone(),
                });
            }
            if let Some(kill) = o.mark.as_ref().and_then(|m| m.kill()) {
                let grace_timeout = world
                    .workflow(&o.workflow, o.version)
                    .and_then(|w| w.jobs.get(job_name(world, o)?))
                    .map_or(DurationMs(0), |j| j.grace_timeout);
                out.push(Action::Kill {
                    order: o.id.clone(),
                    pgid: *pgid,
                    kill,
                    grace_timeout,
                });
            }
        }
        _ => {}
    }
}

fn job_name<'a>(world: &'a World, o: &Order) -> Option<&'a JobName> {
    let workflow = world.workflow(&o.workflow, o.version)?;
    match super::nav::instruction_at(&workflow.steps, &o.position)? {
        Instruction::Run { job, .. } => Some(job),
        _ => None,
    }
}
