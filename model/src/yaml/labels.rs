//! Step labels (`label: step-a` on any step) and the positions that `variable(key,
//! label=…)` and `variable(key, job=…)` read, filled in once a workflow is read.
//!
//! A label names one step of its workflow (unique per workflow). Labels are not kept in the
//! deployed workflow: what uses them, `variable(..., label=…)`, is given the labelled step's
//! position when the workflow is read, so the order state machine reads the outcome kept at
//! that position (see `order::scope`). `variable(..., job=…)` is given the positions of every
//! step that runs the job.

use super::diag::Pos;
use super::node::{Kind, Node};
use super::read::Cx;
use crate::expr::access::is_bare_name;
use crate::expr::{Expr, Template, VarFrom};
use crate::ids::JobName;
use crate::inventory::{Block, ForkListOver, Instruction, Workflow};
use crate::order::nav::sub_blocks;
use crate::position::Position;
use std::collections::BTreeMap;

/// The field that labels a step.
pub(crate) const LABEL: &str = "label";

/// The labels of one workflow while it is read: each with the number of its step in reading
/// order (1 for the first) and where it is written.
#[derive(Default)]
pub(crate) struct Labels {
    found: Vec<(String, usize, Pos)>,
}

impl Labels {
    /// Takes `label:` out of a step mapping, checks it, and records it for step number
    /// `step`; returns the mapping without it (`None` when it has no label).
    pub(crate) fn take(&mut self, cx: &mut Cx<'_>, node: &Node, step: usize) -> Option<Node> {
        let Kind::Map(entries) = &node.kind else {
            return None;
        };
        let at = entries
            .iter()
            .position(|(k, _)| k.scalar().is_some_and(|s| s.text == LABEL))?;
        let value = &entries[at].1;
        match value.scalar().map(|s| s.text.clone()) {
            Some(label) if is_bare_name(&label) && label.len() <= cx.limits.name_bytes_max => {
                if let Some((_, _, first)) = self.found.iter().find(|(l, _, _)| *l == label) {
                    cx.err(
                        value.pos,
                        format!("label `{label}` is used twice in this workflow; first at {first}"),
                    );
                } else {
                    self.found.push((label, step, value.pos));
                }
            }
            _ => cx.err(
                value.pos,
                format!(
                    "`label` must be a name: letters, digits, '-', '_' and '.', starting with a letter, at most {} bytes",
                    cx.limits.name_bytes_max
                ),
            ),
        }
        let mut stripped = node.clone();
        if let Kind::Map(entries) = &mut stripped.kind {
            entries.remove(at);
        }
        Some(stripped)
    }

    /// Fills in the positions of every `variable(..., label=…)` and `variable(..., job=…)`
    /// of `workflow` (steps and jobs); a label no step has, or a job the workflow does not
    /// define, is reported where it is written (searched in `sources`, the workflow's YAML).
    pub(crate) fn resolve(&self, cx: &mut Cx<'_>, workflow: &mut Workflow, sources: &[&Node]) {
        let mut numbered: Vec<(Position, Option<JobName>)> = Vec::new();
        number(&workflow.steps, &Position::start(), &mut numbered);
        let labels: BTreeMap<&str, Position> = self
            .found
            .iter()
            .filter_map(|(label, step, _)| {
                Some((
                    label.as_str(),
                    numbered.get(step.checked_sub(1)?)?.0.clone(),
                ))
            })
            .collect();
        let mut unknown: Vec<(String, String)> = Vec::new();
        let jobs: Vec<String> = workflow.jobs.keys().map(|j| j.to_string()).collect();
        let mut fill = |e: &mut Expr| {
            let Expr::Variable(var) = e else {
                return;
            };
            match &mut var.from {
                VarFrom::Label { label, positions } => match labels.get(label.as_str()) {
                    Some(p) => *positions = vec![p.clone()],
                    None => unknown.push(("label".into(), label.clone())),
                },
                VarFrom::Job { job, positions } => {
                    if jobs.iter().any(|j| j == job) {
                        *positions = numbered
                            .iter()
                            .filter(|(_, j)| j.as_ref().is_some_and(|j| j.as_str() == job))
                            .map(|(p, _)| p.clone())
                            .collect();
                    } else {
                        unknown.push(("job".into(), job.clone()));
                    }
                }
                VarFrom::Order | VarFrom::Argument => {}
            }
        };
        for job in workflow.jobs.values_mut() {
            for t in job.env.values_mut().chain(job.args.values_mut()) {
                t.visit_mut(&mut fill);
            }
        }
        block_exprs(&mut workflow.steps, &mut fill);
        for (what, name) in unknown {
            let pos = find(cx, sources, &what, &name).unwrap_or(workflow_pos(sources));
            let known = if what == "label" {
                let mut names: Vec<&str> = labels.keys().copied().collect();
                names.truncate(10);
                format!("its labels: {}", names.join(", "))
            } else {
                format!("its jobs: {}", jobs.join(", "))
            };
            cx.err(
                pos,
                format!(
                    "variable(..., {what}={name}): workflow `{}` has no {what} `{name}` ({known})",
                    workflow.name
                ),
            );
        }
    }
}

fn workflow_pos(sources: &[&Node]) -> Pos {
    sources.first().map_or(Pos { line: 1, col: 1 }, |n| n.pos)
}

/// Where `what=name` is written in a scalar under `sources`.
fn find(cx: &Cx<'_>, sources: &[&Node], what: &str, name: &str) -> Option<Pos> {
    let pattern = format!(r#"{what}\s*=\s*["']?{}"#, regex::escape(name));
    let re = regex::Regex::new(&pattern).ok()?;
    let mut stack: Vec<&Node> = sources.to_vec();
    while let Some(node) = stack.pop() {
        match &node.kind {
            Kind::Map(entries) => {
                for (k, v) in entries.iter().rev() {
                    stack.push(v);
                    stack.push(k);
                }
            }
            Kind::Seq(items) => stack.extend(items.iter().rev()),
            _ => {
                if let Some(s) = node.scalar()
                    && let Some(m) = re.find(&s.text)
                {
                    return Some(cx.pos_in_scalar(node, &s.text, m.start()));
                }
            }
        }
    }
    None
}

/// Every step of `block` in reading order (a step, then the steps inside it), with its
/// position and the job it runs. The YAML reader counts steps in this same order.
fn number(block: &Block, at: &Position, out: &mut Vec<(Position, Option<JobName>)>) {
    let mut position = at.clone();
    for instruction in block {
        let job = match instruction {
            Instruction::Run { job, .. } => Some(job.clone()),
            _ => None,
        };
        out.push((position.clone(), job));
        for (key, inner) in sub_blocks(instruction) {
            number(inner, &position.enter(key), out);
        }
        position = position.next();
    }
}

/// Calls `f` on every expression of `block`'s steps and the steps inside them.
fn block_exprs(block: &mut Block, f: &mut dyn FnMut(&mut Expr)) {
    for instruction in block {
        instruction_exprs(instruction, f);
    }
}

fn templates<'a>(items: impl Iterator<Item = &'a mut Template>, f: &mut dyn FnMut(&mut Expr)) {
    for t in items {
        t.visit_mut(f);
    }
}

fn instruction_exprs(instruction: &mut Instruction, f: &mut dyn FnMut(&mut Expr)) {
    match instruction {
        Instruction::Run { args, .. }
        | Instruction::AddOrder { args, .. }
        | Instruction::AddOrderWithOptions { args, .. } => templates(args.values_mut(), f),
        Instruction::If {
            branches,
            otherwise,
        } => {
            for (condition, steps) in branches {
                condition.visit_mut(f);
                block_exprs(steps, f);
            }
            block_exprs(otherwise, f);
        }
        Instruction::Fork { branches, .. } => {
            for (_, steps) in branches {
                block_exprs(steps, f);
            }
        }
        Instruction::ForkList { over, steps, .. } => {
            match over {
                ForkListOver::List(e) => e.visit_mut(f),
                ForkListOver::ListWith {
                    list,
                    child_to_id,
                    child_to_arguments,
                } => {
                    list.visit_mut(f);
                    for e in child_to_id.iter_mut().chain(child_to_arguments.iter_mut()) {
                        e.visit_mut(f);
                    }
                }
                ForkListOver::Subagents(_) => {}
            }
            block_exprs(steps, f);
        }
        Instruction::Try { steps, catch } | Instruction::TryRetry { steps, catch, .. } => {
            block_exprs(steps, f);
            block_exprs(catch, f);
        }
        Instruction::Retry { steps, .. }
        | Instruction::Lock { steps, .. }
        | Instruction::Cycle { steps, .. }
        | Instruction::Options { steps, .. } => block_exprs(steps, f),
        Instruction::ConsumeNotices { key, steps, .. }
        | Instruction::ConsumeNoticesWhen { key, steps, .. } => {
            key.visit_mut(f);
            block_exprs(steps, f);
        }
        Instruction::Fail { message, .. } | Instruction::Finish { message } => {
            templates(message.iter_mut(), f)
        }
        Instruction::FinishWith {
            message, values, ..
        } => {
            templates(message.iter_mut(), f);
            templates(values.values_mut(), f);
        }
        Instruction::Prompt { question } => question.visit_mut(f),
        Instruction::PostNotice { key, .. }
        | Instruction::ExpectNotices { key, .. }
        | Instruction::ExpectNoticesWhen { key, .. } => key.visit_mut(f),
        Instruction::Break | Instruction::Sleep { .. } | Instruction::RetryAgain => {}
    }
}
