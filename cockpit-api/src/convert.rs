//! The cockpit's own JSON view of a workflow: its steps as a tree for drawing. Orders, locks,
//! boards, agents and event descriptions are the published views of [`ordo_api::view`].

use ordo_model::expr::Template;
use ordo_model::inventory::{Block, CycleRepeat, CycleScheme, ForkListOver, Instruction, Workflow};
use ordo_model::position::{BlockKey, Position};
use serde::Serialize;
use utoipa::ToSchema;

/// One instruction of a workflow, for drawing: its position, kind, a label, and its blocks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepJson {
    /// The position an order has when it is at this instruction, e.g. `1/then:0/0`.
    pub position: String,
    /// run, if, fork, forkList, retry, try, fail, finish, lock, prompt, cycle, break, sleep,
    /// addOrder, postNotice, expectNotices, consumeNotices.
    pub kind: String,
    pub label: String,
    /// The agent a `run` step's job runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Nested blocks (if/else branches, fork branches, try/catch, bodies), in order.
    #[schema(no_recursion)]
    pub blocks: Vec<BlockJson>,
}

/// A nested block of an instruction.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockJson {
    /// The block key in positions: `then:0`, `else`, `fork:<branch>`, `forklist`, `try`,
    /// `catch`, `do`.
    pub key: String,
    pub label: String,
    #[schema(no_recursion)]
    pub steps: Vec<StepJson>,
}

/// The steps of a workflow as a tree.
pub fn steps_json(workflow: &Workflow) -> Vec<StepJson> {
    block_json(workflow, &workflow.steps, &[], 0)
}

/// Deepest nesting drawn; deeper blocks are cut (workflows are validated far below this).
const DRAW_DEPTH_MAX: usize = 64;

fn block_json(
    workflow: &Workflow,
    block: &Block,
    outer: &[(u32, BlockKey)],
    depth: usize,
) -> Vec<StepJson> {
    if depth > DRAW_DEPTH_MAX {
        return Vec::new();
    }
    block
        .iter()
        .enumerate()
        .map(|(i, instruction)| {
            let at = Position {
                outer: outer.to_vec(),
                index: i as u32,
            };
            step_json(workflow, instruction, &at, depth)
        })
        .collect()
}

fn template(t: &Template) -> String {
    t.to_string()
}

fn step_json(workflow: &Workflow, ins: &Instruction, at: &Position, depth: usize) -> StepJson {
    let sub = |key: BlockKey, label: String, steps: &Block| {
        let inner = at.enter(key.clone());
        BlockJson {
            key: key.to_string(),
            label,
            steps: block_json(workflow, steps, &inner.outer, depth + 1),
        }
    };
    let mut agent = None;
    let (kind, label, blocks) = match ins {
        Instruction::Run { job, .. } => {
            agent = workflow.jobs.get(job).map(|j| j.agent.to_string());
            ("run", job.to_string(), vec![])
        }
        Instruction::If {
            branches,
            otherwise,
        } => {
            let mut blocks: Vec<BlockJson> = branches
                .iter()
                .enumerate()
                .map(|(i, (cond, steps))| {
                    let word = if i == 0 { "if" } else { "else if" };
                    sub(BlockKey::Then(i as u32), format!("{word} {cond}"), steps)
                })
                .collect();
            if !otherwise.is_empty() {
                blocks.push(sub(BlockKey::Else, "else".into(), otherwise));
            }
            ("if", "if".into(), blocks)
        }
        Instruction::Fork {
            branches,
            join_if_failed,
        } => (
            "fork",
            if *join_if_failed {
                "fork (join if failed)".into()
            } else {
                "fork".into()
            },
            branches
                .iter()
                .map(|(b, steps)| sub(BlockKey::Fork(b.to_string()), b.to_string(), steps))
                .collect(),
        ),
        Instruction::ForkList {
            over, var, steps, ..
        } => {
            let over = match over {
                ForkListOver::List(e) | ForkListOver::ListWith { list: e, .. } => e.to_string(),
                ForkListOver::Subagents(a) => format!("subagents of {a}"),
            };
            (
                "forkList",
                format!("fork-list over {over}"),
                vec![sub(BlockKey::ForkList, format!("each ${var}"), steps)],
            )
        }
        Instruction::Retry {
            max_tries, steps, ..
        } => (
            "retry",
            format!("retry (at most {max_tries} tries)"),
            vec![sub(BlockKey::Do, "do".into(), steps)],
        ),
        Instruction::Try { steps, catch } => (
            "try",
            "try".into(),
            vec![
                sub(BlockKey::Try, "try".into(), steps),
                sub(BlockKey::Catch, "catch".into(), catch),
            ],
        ),
        Instruction::Fail { message, .. } => (
            "fail",
            match message {
                Some(m) => format!("fail: {}", template(m)),
                None => "fail".into(),
            },
            vec![],
        ),
        Instruction::Finish { message } => (
            "finish",
            match message {
                Some(m) => format!("finish: {}", template(m)),
                None => "finish".into(),
            },
            vec![],
        ),
        Instruction::FinishWith {
            failed, message, ..
        } => (
            "finish",
            format!(
                "finish {}{}",
                if *failed { "failed" } else { "succeeded" },
                message
                    .as_ref()
                    .map(|m| format!(": {}", template(m)))
                    .unwrap_or_default()
            ),
            vec![],
        ),
        Instruction::TryRetry {
            steps,
            catch,
            max_tries,
            ..
        } => (
            "try",
            match max_tries {
                Some(n) => format!("try (retry: at most {n} tries)"),
                None => "try (retry)".into(),
            },
            vec![
                sub(BlockKey::Try, "try".into(), steps),
                sub(BlockKey::Catch, "catch".into(), catch),
            ],
        ),
        Instruction::RetryAgain => ("retry", "retry".into(), vec![]),
        Instruction::Lock { lock, count, steps } => (
            "lock",
            match count {
                Some(c) => format!("lock {lock} ×{c}"),
                None => format!("lock {lock}"),
            },
            vec![sub(BlockKey::Do, "do".into(), steps)],
        ),
        Instruction::Prompt { question } => ("prompt", template(question), vec![]),
        Instruction::Cycle { repeat, steps } => (
            "cycle",
            match repeat {
                CycleRepeat::Times(n) => format!("cycle ×{n}"),
                CycleRepeat::Every { every, for_ } => format!("cycle every {every} for {for_}"),
                CycleRepeat::Schedule(s) => {
                    let scheme = match s.scheme {
                        CycleScheme::Periodic { every } => format!("periodic {every}"),
                        CycleScheme::Ticking { every } => format!("ticking {every}"),
                        CycleScheme::Continuous { pause } => format!("continuous, pause {pause}"),
                    };
                    let periods = if s.admission.is_empty() {
                        String::new()
                    } else {
                        format!(", {} admission periods", s.admission.len())
                    };
                    let limit = s
                        .limit
                        .map(|l| format!(", at most {l} runs"))
                        .unwrap_or_default();
                    format!("cycle {scheme} ({}){periods}{limit}", s.time_zone)
                }
            },
            vec![sub(BlockKey::Do, "do".into(), steps)],
        ),
        Instruction::Break => ("break", "break".into(), vec![]),
        Instruction::Sleep { duration } => ("sleep", format!("sleep {duration}"), vec![]),
        Instruction::AddOrder { workflow, wait, .. }
        | Instruction::AddOrderWithOptions { workflow, wait, .. } => (
            "addOrder",
            if *wait {
                format!("add order to {workflow} and wait")
            } else {
                format!("add order to {workflow}")
            },
            vec![],
        ),
        Instruction::PostNotice { board, key } => (
            "postNotice",
            format!("post notice {} on {board}", template(key)),
            vec![],
        ),
        Instruction::ExpectNotices { boards, key } => (
            "expectNotices",
            format!("expect notice {} on {}", template(key), names(boards)),
            vec![],
        ),
        Instruction::ConsumeNotices { boards, key, steps } => (
            "consumeNotices",
            format!("consume notice {} on {}", template(key), names(boards)),
            vec![sub(BlockKey::Do, "do".into(), steps)],
        ),
        Instruction::ExpectNoticesWhen {
            notices,
            key,
            when_not_announced,
        } => (
            "expectNotices",
            format!(
                "expect notice {} on {notices} ({})",
                template(key),
                when_not_announced.word()
            ),
            vec![],
        ),
        Instruction::ConsumeNoticesWhen {
            notices,
            key,
            when_not_announced,
            steps,
        } => (
            "consumeNotices",
            format!(
                "consume notice {} on {notices} ({})",
                template(key),
                when_not_announced.word()
            ),
            vec![sub(BlockKey::Do, "do".into(), steps)],
        ),
        Instruction::Options {
            stop_on_failure,
            steps,
        } => (
            "options",
            match stop_on_failure {
                Some(true) => "options: stop on failure".into(),
                Some(false) => "options: do not stop on failure".into(),
                None => "options".into(),
            },
            vec![sub(BlockKey::Do, "do".into(), steps)],
        ),
    };
    StepJson {
        position: at.to_string(),
        kind: kind.to_owned(),
        label,
        agent,
        blocks,
    }
}

fn names<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::yaml::{Limits, SourceFile, parse_inventory};

    #[test]
    fn steps_carry_positions_that_orders_use() {
        let yaml = "workflow: w\njobs: { j: { agent: a, script: 'true' } }\nsteps:\n  - run: j\n  - try:\n      - prompt: ok?\n    catch:\n      - run: j\n  - fork:\n      x: [ { run: j } ]\n      y: [ { sleep: 1s } ]\n---\nagent: a\nurl: wss://127.0.0.1:1\n";
        let inv = parse_inventory(&[SourceFile::new("w.yaml", yaml)], &Limits::default()).unwrap();
        let steps = steps_json(&inv.workflows[0]);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].kind, "run");
        assert_eq!(steps[0].agent.as_deref(), Some("a"));
        assert_eq!(steps[1].blocks[0].key, "try");
        assert_eq!(steps[1].blocks[0].steps[0].position, "1/try/0");
        assert_eq!(steps[1].blocks[0].steps[0].kind, "prompt");
        assert_eq!(steps[1].blocks[1].steps[0].position, "1/catch/0");
        assert_eq!(steps[2].blocks[1].key, "fork:y");
        assert_eq!(steps[2].blocks[1].steps[0].label, "sleep 1s");
        let json = serde_json::to_value(&steps).unwrap();
        assert_eq!(json[2]["blocks"][0]["steps"][0]["position"], "2/fork:x/0");
    }
}
