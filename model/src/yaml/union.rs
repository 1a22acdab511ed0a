//! Checking files together with what is deployed: the deployed objects the files do not
//! define again (and that are not being removed) count as defined, and their references are
//! checked against the objects the files define in their place (a lock's new limit against the
//! counts of the deployed workflows that take it, an agent that lost its subagents, a new
//! required parameter against the `addOrder`s and schedules that do not pass it, a parameter
//! dropped (or `allowUndeclared` turned off) against those that pass it), reported at the new
//! definition.

use super::diag::Pos;
use super::read::{Cx, Fields};
use super::refs::{DEPLOYED_FILE, DefKind, Defs, RefKind, Refs};
use super::spec;
use crate::deploy::Removals;
use crate::ids::IdError;
use crate::inventory::{Block, ForkListOver, Instruction, Inventory, Workflow};

/// What is deployed, and what of it the deployment removes.
#[derive(Debug, Clone, Copy)]
pub struct Deployed<'a> {
    pub inventory: &'a Inventory,
    pub removed: &'a Removals,
}

/// Adds the deployed objects that the files do not define and that stay, with their
/// references.
pub(crate) fn seed(deployed: &Deployed<'_>, defs: &mut Defs, refs: &mut Refs) {
    let inv = deployed.inventory;
    let rm = deployed.removed;
    let keep = |defs: &Defs, kind: DefKind, name: &str, removed: bool| {
        !removed && defs.position(kind, name).is_none()
    };
    let workflows: Vec<&Workflow> = inv
        .workflows
        .iter()
        .filter(|w| {
            keep(
                defs,
                DefKind::Workflow,
                w.name.as_str(),
                rm.workflows.contains(&w.name),
            )
        })
        .collect();
    let agents: Vec<_> = inv
        .agents
        .iter()
        .filter(|a| {
            keep(
                defs,
                DefKind::Agent,
                a.id.as_str(),
                rm.agents.contains(&a.id),
            )
        })
        .collect();
    let locks: Vec<_> = inv
        .locks
        .iter()
        .filter(|l| {
            keep(
                defs,
                DefKind::Lock,
                l.name.as_str(),
                rm.locks.contains(&l.name),
            )
        })
        .collect();
    let boards: Vec<_> = inv
        .boards
        .iter()
        .filter(|b| {
            keep(
                defs,
                DefKind::Board,
                b.name.as_str(),
                rm.boards.contains(&b.name),
            )
        })
        .collect();
    let schedules: Vec<_> = inv
        .schedules
        .iter()
        .filter(|s| {
            keep(
                defs,
                DefKind::Schedule,
                s.name.as_str(),
                rm.schedules.contains(&s.name),
            )
        })
        .collect();
    let calendars: Vec<_> = inv
        .calendars
        .iter()
        .filter(|c| {
            keep(
                defs,
                DefKind::Calendar,
                c.name.as_str(),
                rm.calendars.contains(&c.name),
            )
        })
        .collect();
    for w in workflows {
        let required = w
            .parameters
            .iter()
            .filter(|(_, p)| p.default.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        let allow_undeclared = inv
            .workflow_settings
            .get(&w.name)
            .is_some_and(|s| s.allow_undeclared);
        let declared = (!allow_undeclared && !w.parameters.is_empty())
            .then(|| w.parameters.keys().cloned().collect());
        defs.workflow(
            DEPLOYED_FILE,
            w.name.as_str(),
            Pos::START,
            required,
            declared,
        );
        let by = format!("workflow `{}`", w.name);
        for job in w.jobs.values() {
            refs.add_deployed(&by, RefKind::Agent, job.agent.as_str(), None, None);
        }
        block_refs(&by, &w.steps, refs);
    }
    for a in agents {
        defs.agent(
            DEPLOYED_FILE,
            a.id.as_str(),
            Pos::START,
            !a.subagents.is_empty(),
        );
        for s in &a.subagents {
            defs.subagent(DEPLOYED_FILE, s.id.as_str(), Pos::START);
        }
    }
    for l in locks {
        defs.lock(DEPLOYED_FILE, l.name.as_str(), Pos::START, l.limit);
    }
    for b in boards {
        defs.board(DEPLOYED_FILE, b.name.as_str(), Pos::START);
    }
    for s in schedules {
        defs.schedule(DEPLOYED_FILE, s.name.as_str(), Pos::START);
        let by = format!("schedule `{}`", s.name);
        let args = s.args.keys().cloned().collect();
        refs.add_deployed(
            &by,
            RefKind::Workflow,
            s.workflow.as_str(),
            None,
            Some(args),
        );
        if let Some(c) = &s.calendar {
            refs.add_deployed(&by, RefKind::Calendar, c.as_str(), None, None);
        }
    }
    for c in calendars {
        defs.calendar(DEPLOYED_FILE, c.name.as_str(), Pos::START);
        let by = format!("calendar `{}`", c.name);
        for n in c.include.calendars.iter().chain(&c.exclude.calendars) {
            refs.add_deployed(&by, RefKind::Calendar, n.as_str(), None, None);
        }
    }
}

/// The references of a deployed block's instructions, nested ones included.
fn block_refs(by: &str, block: &Block, refs: &mut Refs) {
    for i in block {
        match i {
            Instruction::Lock { lock, count, .. } => {
                refs.add_deployed(by, RefKind::Lock, lock.as_str(), *count, None);
            }
            Instruction::ForkList {
                over: ForkListOver::Subagents(a),
                ..
            } => refs.add_deployed(by, RefKind::Cluster, a.as_str(), None, None),
            Instruction::AddOrder { workflow, args, .. } => refs.add_deployed(
                by,
                RefKind::Workflow,
                workflow.as_str(),
                None,
                Some(args.keys().cloned().collect()),
            ),
            Instruction::PostNotice { board, .. } => {
                refs.add_deployed(by, RefKind::Board, board.as_str(), None, None);
            }
            Instruction::ExpectNotices { boards, .. }
            | Instruction::ConsumeNotices { boards, .. } => {
                for b in boards {
                    refs.add_deployed(by, RefKind::Board, b.as_str(), None, None);
                }
            }
            _ => {}
        }
        for b in crate::deploy::sub_blocks(i) {
            block_refs(by, b, refs);
        }
    }
}

/// `removed: { workflows: [a], agents: [..], locks: [..], boards: [..], schedules: [..],
/// calendars: [..], subagents: [agent/subagent, ..] }`.
pub(crate) fn removed(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<Removals> {
    let node = f.get("removed")?;
    let kinds = cx.fields_in(node, &spec::REMOVED_KINDS, "`removed`")?;
    fn names<T>(
        cx: &mut Cx<'_>,
        kinds: &Fields<'_>,
        key: &str,
        make: fn(String) -> Result<T, IdError>,
    ) -> Option<Vec<T>> {
        let Some(n) = kinds.get(key) else {
            return Some(Vec::new());
        };
        let label = format!("`removed.{key}`");
        let items = cx.list(n, &label, "a list of names")?;
        let names: Vec<Option<T>> = items.iter().map(|i| cx.name(i, &label, make)).collect();
        names.into_iter().collect()
    }
    let workflows = names(cx, &kinds, "workflows", crate::ids::WorkflowName::new);
    let agents = names(cx, &kinds, "agents", crate::ids::AgentId::new);
    let locks = names(cx, &kinds, "locks", crate::ids::LockName::new);
    let boards = names(cx, &kinds, "boards", crate::ids::BoardName::new);
    let schedules = names(cx, &kinds, "schedules", crate::ids::ScheduleName::new);
    let calendars = names(cx, &kinds, "calendars", crate::ids::CalendarName::new);
    let subagents = match kinds.get("subagents") {
        None => Some(Vec::new()),
        Some(n) => {
            let label = "`removed.subagents`";
            cx.list(n, label, "a list of agent/subagent")
                .and_then(|items| {
                    let refs: Vec<Option<String>> = items
                        .iter()
                        .map(|i| match i.scalar() {
                            Some(s) => match crate::deploy::subagent_ref(&s.text) {
                                Ok(_) => Some(s.text.clone()),
                                Err(e) => {
                                    cx.err(i.pos, format!("{label}: {e}"));
                                    None
                                }
                            },
                            None => {
                                cx.err(i.pos, format!("{label} holds agent/subagent texts"));
                                None
                            }
                        })
                        .collect();
                    refs.into_iter().collect()
                })
        }
    };
    Some(Removals {
        workflows: workflows?,
        agents: agents?,
        locks: locks?,
        boards: boards?,
        schedules: schedules?,
        calendars: calendars?,
        subagents: subagents?,
    })
}
