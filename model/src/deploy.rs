//! A deployment measured against what is deployed: the deployed inventory as the controller
//! holds it ([`deployed_inventory`]), what a deployment adds, changes and removes and which
//! live orders a change touches ([`diff`]), and the events of removals ([`removal_events`]).
//!
//! The YAML side (the files checked together with what is deployed) is
//! [`crate::yaml::check_against_deployed`]; the controller runs both on every deployment and a
//! dry run answers with the [`Diff`] alone.
//!
//! A changed workflow gets a new version; orders keep running on the version they were added
//! with. An order **would be stranded** by a change when the position it stands at does not
//! exist in the new version or holds another kind of instruction there: it could never be
//! moved onto the new version (JS7's "transfer orders" moves orders only between positions
//! that match). Such a deployment is refused unless forced. A removal is refused, forced or
//! not, while something still needs the object: a live order of a removed workflow, an order
//! attached to a removed agent, holding or waiting for a removed lock or waiting for notices
//! of a removed board, or a deployed workflow or schedule that stays and names it.

use crate::ids::{
    AgentId, BoardName, CalendarName, LockName, OrderId, ScheduleName, VersionId, WorkflowName,
};
use crate::inventory::{Block, Board, ForkListOver, Instruction, Inventory, Lock, Workflow};
use crate::order::nav::{instruction_at, is_valid};
use crate::order::{Frame, ItemEvent, KeyedEvent, OrderState, Wait, World};
use crate::schedule::{Calendar, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Objects a deployment removes, by kind (`removed:` in an inventory file, `ordo undeploy`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Removals {
    pub workflows: Vec<WorkflowName>,
    pub agents: Vec<AgentId>,
    pub locks: Vec<LockName>,
    pub boards: Vec<BoardName>,
    /// Schedules: their plan goes, and their planned orders that have not started are
    /// cancelled (by the controller's planner).
    pub schedules: Vec<ScheduleName>,
    pub calendars: Vec<CalendarName>,
    /// Subagents to take out of their agent, as `agent/subagent` (the controller deploys the
    /// agent without them; a subagent that registered itself goes only so, or by
    /// `ordo agents remove-subagent`).
    pub subagents: Vec<String>,
}

/// `agent/subagent` as [`Removals::subagents`] names a subagent.
pub fn subagent_ref(text: &str) -> Result<(AgentId, AgentId), String> {
    let (agent, subagent) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not agent/subagent"))?;
    let agent = AgentId::new(agent).map_err(|e| format!("agent {agent:?} {e}"))?;
    let subagent = AgentId::new(subagent).map_err(|e| format!("subagent {subagent:?} {e}"))?;
    Ok((agent, subagent))
}

impl Removals {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.workflows.len()
            + self.agents.len()
            + self.locks.len()
            + self.boards.len()
            + self.schedules.len()
            + self.calendars.len()
            + self.subagents.len()
    }

    /// The names that are deployed (`deployed`: [`deployed_inventory`] with the plan's
    /// schedules and calendars): a `removed:` in a file passes over the others, so deploying
    /// the same files again changes nothing.
    pub fn deployed_only(&self, deployed: &Inventory) -> Removals {
        fn keep<T: Clone>(names: &[T], is_deployed: impl Fn(&T) -> bool) -> Vec<T> {
            names.iter().filter(|n| is_deployed(n)).cloned().collect()
        }
        Removals {
            workflows: keep(&self.workflows, |n| {
                deployed.workflows.iter().any(|w| &w.name == n)
            }),
            agents: keep(&self.agents, |n| deployed.agents.iter().any(|a| &a.id == n)),
            locks: keep(&self.locks, |n| deployed.locks.iter().any(|l| &l.name == n)),
            boards: keep(&self.boards, |n| {
                deployed.boards.iter().any(|b| &b.name == n)
            }),
            schedules: keep(&self.schedules, |n| {
                deployed.schedules.iter().any(|s| &s.name == n)
            }),
            calendars: keep(&self.calendars, |n| {
                deployed.calendars.iter().any(|c| &c.name == n)
            }),
            subagents: keep(&self.subagents, |n| {
                subagent_ref(n).is_ok_and(|(a, s)| {
                    deployed
                        .agents
                        .iter()
                        .any(|d| d.id == a && d.subagents.iter().any(|x| x.id == s))
                })
            }),
        }
    }

    /// Adds `other`'s names, each once.
    pub fn extend(&mut self, other: Removals) {
        fn add<T: PartialEq>(to: &mut Vec<T>, from: Vec<T>) {
            for x in from {
                if !to.contains(&x) {
                    to.push(x);
                }
            }
        }
        add(&mut self.workflows, other.workflows);
        add(&mut self.agents, other.agents);
        add(&mut self.locks, other.locks);
        add(&mut self.boards, other.boards);
        add(&mut self.schedules, other.schedules);
        add(&mut self.calendars, other.calendars);
        add(&mut self.subagents, other.subagents);
    }
}

/// The kind of an inventory object, as the diff names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemKind {
    Workflow,
    Agent,
    Lock,
    Board,
    Schedule,
    Calendar,
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ItemKind::Workflow => "workflow",
            ItemKind::Agent => "agent",
            ItemKind::Lock => "lock",
            ItemKind::Board => "board",
            ItemKind::Schedule => "schedule",
            ItemKind::Calendar => "calendar",
        })
    }
}

/// One object a deployment adds, changes or removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemChange {
    pub kind: ItemKind,
    pub name: String,
    /// A workflow's version before: the one changed or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<VersionId>,
    /// A workflow's version after: the one added or changed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionId>,
    /// What changed, when it is one value (`limit 2 → 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A live order of a changed or removed workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AffectedOrder {
    pub order: OrderId,
    pub workflow: WorkflowName,
    /// The version the order runs on (and keeps running on).
    pub version: VersionId,
    /// Where it stands, as `ordo` writes positions (`2/try/0`).
    pub position: String,
    /// The order's state name.
    pub state: String,
    /// Why the deployment would strand it; `None` when its position is still there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stranded: Option<String>,
}

/// What a deployment does to what is deployed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    pub added: Vec<ItemChange>,
    pub changed: Vec<ItemChange>,
    pub removed: Vec<ItemChange>,
    /// Live orders of changed and removed workflows.
    pub affected: Vec<AffectedOrder>,
    /// Why the deployment cannot be made at all, forced or not (a removal something needs).
    pub refused: Vec<String>,
}

impl Diff {
    /// The orders the deployment would strand; the deployment needs `force` when there are any.
    pub fn stranded(&self) -> impl Iterator<Item = &AffectedOrder> {
        self.affected.iter().filter(|o| o.stranded.is_some())
    }

    /// Whether the deployment changes nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The blocks nested directly in an instruction ([`crate::order::nav::sub_blocks`]).
pub fn sub_blocks(i: &Instruction) -> Vec<&Block> {
    crate::order::nav::sub_blocks(i)
        .into_iter()
        .map(|(_, b)| b)
        .collect()
}

/// The name of an instruction's kind, as the YAML writes it.
pub fn instruction_kind(i: &Instruction) -> &'static str {
    match i {
        Instruction::Run { .. } => "run",
        Instruction::If { .. } => "if",
        Instruction::Fork { .. } => "fork",
        Instruction::ForkList { .. } => "forkList",
        Instruction::Retry { .. } => "retry",
        Instruction::Try { .. } | Instruction::TryRetry { .. } => "try",
        Instruction::Fail { .. } => "fail",
        Instruction::Finish { .. } | Instruction::FinishWith { .. } => "finish",
        Instruction::Lock { .. } => "lock",
        Instruction::Prompt { .. } => "prompt",
        Instruction::Cycle { .. } => "cycle",
        Instruction::Break => "break",
        Instruction::Sleep { .. } => "sleep",
        Instruction::AddOrder { .. } | Instruction::AddOrderWithOptions { .. } => "addOrder",
        Instruction::PostNotice { .. } => "post",
        Instruction::ExpectNotices { .. } | Instruction::ExpectNoticesWhen { .. } => "expect",
        Instruction::ConsumeNotices { .. } | Instruction::ConsumeNoticesWhen { .. } => "consume",
        Instruction::Options { .. } => "options",
        Instruction::RetryAgain => "retry (in catch)",
    }
}

/// What a workflow names: agents of its jobs and fork-lists, locks, boards and the workflows
/// it adds orders to.
#[derive(Debug, Default)]
pub struct Uses<'w> {
    pub agents: BTreeSet<&'w AgentId>,
    pub locks: BTreeSet<&'w LockName>,
    pub boards: BTreeSet<&'w BoardName>,
    pub workflows: BTreeSet<&'w WorkflowName>,
}

impl<'w> Uses<'w> {
    pub fn of(workflow: &'w Workflow) -> Uses<'w> {
        let mut u = Uses::default();
        u.agents.extend(workflow.jobs.values().map(|j| &j.agent));
        u.block(&workflow.steps);
        u
    }

    fn block(&mut self, block: &'w Block) {
        for i in block {
            match i {
                Instruction::Lock { lock, .. } => {
                    self.locks.insert(lock);
                }
                Instruction::ForkList {
                    over: ForkListOver::Subagents(a),
                    ..
                } => {
                    self.agents.insert(a);
                }
                Instruction::AddOrder { workflow, .. }
                | Instruction::AddOrderWithOptions { workflow, .. } => {
                    self.workflows.insert(workflow);
                }
                Instruction::PostNotice { board, .. } => {
                    self.boards.insert(board);
                }
                Instruction::ExpectNotices { boards, .. }
                | Instruction::ConsumeNotices { boards, .. } => self.boards.extend(boards),
                Instruction::ExpectNoticesWhen { notices, .. }
                | Instruction::ConsumeNoticesWhen { notices, .. } => {
                    self.boards.extend(notices.board_refs())
                }
                _ => {}
            }
            for b in sub_blocks(i) {
                self.block(b);
            }
        }
    }
}

/// What the world holds as an inventory: the newest version of each workflow, the agents,
/// locks and boards. Schedules and calendars live in the controller's plan; the caller adds
/// them.
pub fn deployed_inventory(world: &World) -> Inventory {
    Inventory {
        workflows: world
            .workflows
            .keys()
            .filter_map(|n| world.latest(n).map(|(_, w)| w.clone()))
            .collect(),
        agents: world.agents.values().cloned().collect(),
        locks: world
            .locks
            .iter()
            .map(|(name, l)| Lock {
                name: name.clone(),
                limit: l.limit,
            })
            .collect(),
        boards: world
            .boards
            .iter()
            .map(|(name, b)| Board {
                name: name.clone(),
                lifetime: b.lifetime,
            })
            .collect(),
        schedules: Vec::new(),
        calendars: Vec::new(),
        removed: Removals::default(),
        workflow_settings: world.extras.workflows.clone(),
        agent_settings: world.extras.agents.clone(),
        backup_directors: world.extras.backup_directors.clone(),
        job_settings: world.extras.jobs.clone(),
        subagent_priorities: world.extras.priorities.clone(),
    }
}

fn change(kind: ItemKind, name: &str) -> ItemChange {
    ItemChange {
        kind,
        name: name.to_owned(),
        from_version: None,
        version: None,
        detail: None,
    }
}

/// What deploying `new` and removing `removals` does to the world: objects added, changed
/// and removed (with workflow versions), the live orders of changed and removed workflows
/// with where they stand and whether the change strands them, and the removals that cannot
/// be made. `deployed` is [`deployed_inventory`] with the plan's schedules and calendars.
pub fn diff(world: &World, deployed: &Inventory, new: &Inventory, removals: &Removals) -> Diff {
    let mut d = Diff::default();
    for w in &new.workflows {
        match world.latest(&w.name) {
            None => d.added.push(ItemChange {
                version: Some(VersionId(1)),
                ..change(ItemKind::Workflow, w.name.as_str())
            }),
            Some((_, old)) if old == w => {}
            Some((v, _)) => {
                let next = VersionId(v.0 + 1);
                d.changed.push(ItemChange {
                    from_version: Some(v),
                    version: Some(next),
                    ..change(ItemKind::Workflow, w.name.as_str())
                });
                affected(world, &w.name, Some((next, w)), &mut d.affected);
            }
        }
    }
    for a in &new.agents {
        let priorities = |p: &BTreeMap<AgentId, crate::priority::Priorities>| {
            p.get(&a.id).filter(|p| !p.is_empty()).cloned()
        };
        let same_priorities =
            priorities(&world.extras.priorities) == priorities(&new.subagent_priorities);
        match world.agents.get(&a.id) {
            None => d.added.push(change(ItemKind::Agent, a.id.as_str())),
            Some(old) if old == a && same_priorities => {}
            Some(old) if old == a => d.changed.push(ItemChange {
                detail: Some("subagent priorities".to_owned()),
                ..change(ItemKind::Agent, a.id.as_str())
            }),
            Some(old) => d.changed.push(ItemChange {
                detail: (old.url != a.url).then(|| format!("url {} → {}", old.url, a.url)),
                ..change(ItemKind::Agent, a.id.as_str())
            }),
        }
    }
    for l in &new.locks {
        match world.locks.get(&l.name) {
            None => d.added.push(change(ItemKind::Lock, l.name.as_str())),
            Some(old) if old.limit == l.limit => {}
            Some(old) => d.changed.push(ItemChange {
                detail: Some(format!("limit {} → {}", old.limit, l.limit)),
                ..change(ItemKind::Lock, l.name.as_str())
            }),
        }
    }
    for b in &new.boards {
        match world.boards.get(&b.name) {
            None => d.added.push(change(ItemKind::Board, b.name.as_str())),
            Some(old) if old.lifetime == b.lifetime => {}
            Some(old) => d.changed.push(ItemChange {
                detail: Some(format!("lifetime {} → {}", old.lifetime, b.lifetime)),
                ..change(ItemKind::Board, b.name.as_str())
            }),
        }
    }
    for s in &new.schedules {
        match deployed.schedules.iter().find(|o| o.name == s.name) {
            None => d.added.push(change(ItemKind::Schedule, s.name.as_str())),
            Some(old) if old == s => {}
            Some(_) => d.changed.push(change(ItemKind::Schedule, s.name.as_str())),
        }
    }
    for c in &new.calendars {
        match deployed.calendars.iter().find(|o| o.name == c.name) {
            None => d.added.push(change(ItemKind::Calendar, c.name.as_str())),
            Some(old) if old == c => {}
            Some(_) => d.changed.push(change(ItemKind::Calendar, c.name.as_str())),
        }
    }
    removed(world, deployed, new, removals, &mut d);
    d
}

/// The live orders of workflow `name`; with `to`, whether moving to that version would
/// strand each, else (a removal) every one is stranded.
fn affected(
    world: &World,
    name: &WorkflowName,
    to: Option<(VersionId, &Workflow)>,
    out: &mut Vec<AffectedOrder>,
) {
    for o in world.orders.values() {
        if &o.workflow != name || o.state.is_terminal() {
            continue;
        }
        let stranded = match to {
            None => Some("its workflow is removed".to_owned()),
            Some((v, new)) => {
                let old = world
                    .workflow(&o.workflow, o.version)
                    .and_then(|w| instruction_at(&w.steps, &o.position));
                if !is_valid(&new.steps, &o.position) {
                    Some(format!("position {} does not exist in {v}", o.position))
                } else {
                    let now = instruction_at(&new.steps, &o.position);
                    match (old, now) {
                        (Some(a), Some(b)) if instruction_kind(a) != instruction_kind(b) => {
                            Some(format!(
                                "position {} holds `{}` in {v}, not `{}`",
                                o.position,
                                instruction_kind(b),
                                instruction_kind(a)
                            ))
                        }
                        (Some(a), None) => Some(format!(
                            "position {} is the end of a block in {v}, not `{}`",
                            o.position,
                            instruction_kind(a)
                        )),
                        (None, Some(b)) => Some(format!(
                            "position {} holds `{}` in {v}, not the end of a block",
                            o.position,
                            instruction_kind(b)
                        )),
                        _ => None,
                    }
                }
            }
        };
        out.push(AffectedOrder {
            order: o.id.clone(),
            workflow: o.workflow.clone(),
            version: o.version,
            position: o.position.to_string(),
            state: o.state.name().to_owned(),
            stranded,
        });
    }
}

/// The removals and why any of them cannot be made.
fn removed(world: &World, deployed: &Inventory, new: &Inventory, rm: &Removals, d: &mut Diff) {
    // The workflows and schedules that stay deployed after this deployment: the new ones and
    // the deployed ones neither replaced nor removed.
    let staying: Vec<&Workflow> = new
        .workflows
        .iter()
        .chain(deployed.workflows.iter().filter(|w| {
            !rm.workflows.contains(&w.name) && !new.workflows.iter().any(|n| n.name == w.name)
        }))
        .filter(|w| !rm.workflows.contains(&w.name))
        .collect();
    // The schedules and calendars that stay, likewise.
    let staying_schedules: Vec<&Schedule> = new
        .schedules
        .iter()
        .chain(
            deployed
                .schedules
                .iter()
                .filter(|s| !new.schedules.iter().any(|n| n.name == s.name)),
        )
        .filter(|s| !rm.schedules.contains(&s.name))
        .collect();
    let staying_calendars: Vec<&Calendar> = new
        .calendars
        .iter()
        .chain(
            deployed
                .calendars
                .iter()
                .filter(|c| !new.calendars.iter().any(|n| n.name == c.name)),
        )
        .filter(|c| !rm.calendars.contains(&c.name))
        .collect();
    let both = rm
        .workflows
        .iter()
        .filter(|n| new.workflows.iter().any(|w| &w.name == *n))
        .map(|n| format!("workflow `{n}`"))
        .chain(
            rm.agents
                .iter()
                .filter(|n| new.agents.iter().any(|a| &a.id == *n))
                .map(|n| format!("agent `{n}`")),
        )
        .chain(
            rm.locks
                .iter()
                .filter(|n| new.locks.iter().any(|l| &l.name == *n))
                .map(|n| format!("lock `{n}`")),
        )
        .chain(
            rm.boards
                .iter()
                .filter(|n| new.boards.iter().any(|b| &b.name == *n))
                .map(|n| format!("board `{n}`")),
        )
        .chain(
            rm.schedules
                .iter()
                .filter(|n| new.schedules.iter().any(|s| &s.name == *n))
                .map(|n| format!("schedule `{n}`")),
        )
        .chain(
            rm.calendars
                .iter()
                .filter(|n| new.calendars.iter().any(|c| &c.name == *n))
                .map(|n| format!("calendar `{n}`")),
        );
    for what in both {
        d.refused
            .push(format!("{what} is both deployed and removed"));
    }
    let uses: Vec<(&Workflow, Uses<'_>)> = staying.iter().map(|w| (*w, Uses::of(w))).collect();
    let used_by = |what: &str, name: &str, hit: &dyn Fn(&Uses<'_>) -> bool| -> Vec<String> {
        uses.iter()
            .filter(|(_, u)| hit(u))
            .map(|(w, _)| format!("{what} `{name}` is used by workflow `{}`", w.name))
            .collect()
    };
    for name in &rm.workflows {
        let Some((v, _)) = world.latest(name) else {
            d.refused.push(format!(
                "workflow `{name}` is not deployed; nothing to remove"
            ));
            continue;
        };
        d.removed.push(ItemChange {
            from_version: Some(v),
            ..change(ItemKind::Workflow, name.as_str())
        });
        let before = d.affected.len();
        affected(world, name, None, &mut d.affected);
        let live = d.affected.len() - before;
        if live > 0 {
            d.refused.push(format!(
                "workflow `{name}` has {live} live order(s); cancel them or let them end first"
            ));
        }
        d.refused.extend(used_by("workflow", name.as_str(), &|u| {
            u.workflows.contains(name)
        }));
        for s in staying_schedules.iter().filter(|s| &s.workflow == name) {
            d.refused.push(format!(
                "workflow `{name}` is used by schedule `{}`",
                s.name
            ));
        }
    }
    for id in &rm.agents {
        if !world.agents.contains_key(id) {
            d.refused
                .push(format!("agent `{id}` is not deployed; nothing to remove"));
            continue;
        }
        d.removed.push(change(ItemKind::Agent, id.as_str()));
        d.refused
            .extend(used_by("agent", id.as_str(), &|u| u.agents.contains(id)));
        let attached = world
            .orders
            .values()
            .filter(|o| !o.state.is_terminal() && o.holder.agent() == Some(id))
            .count();
        if attached > 0 {
            d.refused.push(format!(
                "agent `{id}` holds {attached} order(s); they must leave it first"
            ));
        }
    }
    for name in &rm.locks {
        let Some(state) = world.locks.get(name) else {
            d.refused
                .push(format!("lock `{name}` is not deployed; nothing to remove"));
            continue;
        };
        d.removed.push(change(ItemKind::Lock, name.as_str()));
        d.refused
            .extend(used_by("lock", name.as_str(), &|u| u.locks.contains(name)));
        let users = state.holders.len() + state.queue.len();
        if users > 0 {
            d.refused.push(format!(
                "lock `{name}` is held or awaited by {users} order(s)"
            ));
        }
    }
    for name in &rm.boards {
        if !world.boards.contains_key(name) {
            d.refused
                .push(format!("board `{name}` is not deployed; nothing to remove"));
            continue;
        }
        d.removed.push(change(ItemKind::Board, name.as_str()));
        d.refused.extend(used_by("board", name.as_str(), &|u| {
            u.boards.contains(name)
        }));
        let waiting = world
            .orders
            .values()
            .filter(|o| {
                let waits = matches!(&o.state, OrderState::Waiting(Wait::Notices { boards, .. }) if boards.contains(name));
                let consumes = o.frames.iter().any(
                    |f| matches!(&f.frame, Frame::Notices { boards, .. } if boards.contains(name)),
                );
                !o.state.is_terminal() && (waits || consumes)
            })
            .count();
        if waiting > 0 {
            d.refused.push(format!(
                "board `{name}` has {waiting} order(s) waiting for or consuming its notices"
            ));
        }
    }
    for name in &rm.schedules {
        if !deployed.schedules.iter().any(|s| &s.name == name) {
            d.refused.push(format!(
                "schedule `{name}` is not deployed; nothing to remove"
            ));
            continue;
        }
        let waiting = planned_not_started(world, name).count();
        d.removed.push(ItemChange {
            detail: (waiting > 0)
                .then(|| format!("{waiting} planned order(s) not started are cancelled")),
            ..change(ItemKind::Schedule, name.as_str())
        });
    }
    for name in &rm.calendars {
        if !deployed.calendars.iter().any(|c| &c.name == name) {
            d.refused.push(format!(
                "calendar `{name}` is not deployed; nothing to remove"
            ));
            continue;
        }
        d.removed.push(change(ItemKind::Calendar, name.as_str()));
        for s in staying_schedules
            .iter()
            .filter(|s| s.calendar.as_ref() == Some(name))
        {
            d.refused.push(format!(
                "calendar `{name}` is used by schedule `{}`",
                s.name
            ));
        }
        for c in staying_calendars
            .iter()
            .filter(|c| c.include.calendars.contains(name) || c.exclude.calendars.contains(name))
        {
            d.refused.push(format!(
                "calendar `{name}` is used by calendar `{}`",
                c.name
            ));
        }
    }
}

/// The orders of `schedule`'s planned instants that were added and have not started: the
/// ones its removal cancels (wherever they are; their `missed:` policy names the schedule).
pub fn planned_not_started<'w>(
    world: &'w World,
    schedule: &'w ScheduleName,
) -> impl Iterator<Item = &'w crate::order::Order> + 'w {
    world.orders.values().filter(move |o| {
        o.state == OrderState::Fresh
            && o.frames
                .iter()
                .any(|f| matches!(&f.frame, Frame::Planned { schedule: s, .. } if s == schedule))
    })
}

/// The events that remove the objects; the caller has checked [`Diff::refused`] is empty.
/// Schedules and calendars are the plan's: the controller's planner removes them.
pub fn removal_events(world: &World, removals: &Removals) -> Vec<KeyedEvent> {
    let mut out = Vec::new();
    for n in removals
        .workflows
        .iter()
        .filter(|n| world.workflows.contains_key(*n))
    {
        out.push(KeyedEvent::Item(ItemEvent::WorkflowRemoved(n.clone())));
    }
    for a in removals
        .agents
        .iter()
        .filter(|a| world.agents.contains_key(*a))
    {
        out.push(KeyedEvent::Item(ItemEvent::AgentRemoved(a.clone())));
    }
    for l in removals
        .locks
        .iter()
        .filter(|l| world.locks.contains_key(*l))
    {
        out.push(KeyedEvent::Item(ItemEvent::LockRemoved(l.clone())));
    }
    for b in removals
        .boards
        .iter()
        .filter(|b| world.boards.contains_key(*b))
    {
        out.push(KeyedEvent::Item(ItemEvent::BoardRemoved(b.clone())));
    }
    out
}

#[cfg(test)]
mod tests;
