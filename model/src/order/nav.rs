//! Finding instructions and blocks by position, and what a block needs to run on one agent.

use crate::ids::AgentId;
use crate::inventory::{Block, ForkListOver, Instruction, Workflow};
use crate::position::{BlockKey, Position};

/// The block `key` of `instruction`, if it has one.
pub fn sub_block<'a>(instruction: &'a Instruction, key: &BlockKey) -> Option<&'a Block> {
    match (instruction, key) {
        (Instruction::If { branches, .. }, BlockKey::Then(i)) => {
            branches.get(*i as usize).map(|(_, b)| b)
        }
        (Instruction::If { otherwise, .. }, BlockKey::Else) => Some(otherwise),
        (Instruction::Fork { branches, .. }, BlockKey::Fork(name)) => branches
            .iter()
            .find(|(b, _)| b.as_str() == name)
            .map(|(_, b)| b),
        (Instruction::ForkList { steps, .. }, BlockKey::ForkList)
        | (Instruction::Try { steps, .. }, BlockKey::Try)
        | (Instruction::TryRetry { steps, .. }, BlockKey::Try)
        | (Instruction::Retry { steps, .. }, BlockKey::Do)
        | (Instruction::Lock { steps, .. }, BlockKey::Do)
        | (Instruction::Cycle { steps, .. }, BlockKey::Do)
        | (Instruction::ConsumeNotices { steps, .. }, BlockKey::Do)
        | (Instruction::ConsumeNoticesWhen { steps, .. }, BlockKey::Do)
        | (Instruction::Options { steps, .. }, BlockKey::Do) => Some(steps),
        (Instruction::Try { catch, .. }, BlockKey::Catch)
        | (Instruction::TryRetry { catch, .. }, BlockKey::Catch) => Some(catch),
        _ => None,
    }
}

/// Every block of an instruction with its key, in the order the YAML reader reads them
/// (the inverse of [`sub_block`]; the one list of which instruction holds which blocks).
pub fn sub_blocks(instruction: &Instruction) -> Vec<(BlockKey, &Block)> {
    match instruction {
        Instruction::If {
            branches,
            otherwise,
        } => {
            let mut out: Vec<(BlockKey, &Block)> = branches
                .iter()
                .enumerate()
                .map(|(i, (_, b))| (BlockKey::Then(i as u32), b))
                .collect();
            out.push((BlockKey::Else, otherwise));
            out
        }
        Instruction::Fork { branches, .. } => branches
            .iter()
            .map(|(id, b)| (BlockKey::Fork(id.to_string()), b))
            .collect(),
        Instruction::ForkList { steps, .. } => vec![(BlockKey::ForkList, steps)],
        Instruction::Try { steps, catch } | Instruction::TryRetry { steps, catch, .. } => {
            vec![(BlockKey::Try, steps), (BlockKey::Catch, catch)]
        }
        Instruction::Retry { steps, .. }
        | Instruction::Lock { steps, .. }
        | Instruction::Cycle { steps, .. }
        | Instruction::ConsumeNotices { steps, .. }
        | Instruction::ConsumeNoticesWhen { steps, .. }
        | Instruction::Options { steps, .. } => vec![(BlockKey::Do, steps)],
        Instruction::Run { .. }
        | Instruction::Fail { .. }
        | Instruction::Finish { .. }
        | Instruction::Prompt { .. }
        | Instruction::Break
        | Instruction::Sleep { .. }
        | Instruction::AddOrder { .. }
        | Instruction::AddOrderWithOptions { .. }
        | Instruction::PostNotice { .. }
        | Instruction::ExpectNotices { .. }
        | Instruction::ExpectNoticesWhen { .. }
        | Instruction::FinishWith { .. }
        | Instruction::RetryAgain => Vec::new(),
    }
}

/// The block reached by following `outer` from the workflow's steps.
pub fn block_at<'a>(steps: &'a Block, outer: &[(u32, BlockKey)]) -> Option<&'a Block> {
    let mut block = steps;
    for (index, key) in outer {
        block = sub_block(block.get(*index as usize)?, key)?;
    }
    Some(block)
}

/// The instruction at `position`; `None` at the end of a block or for a bad position.
pub fn instruction_at<'a>(steps: &'a Block, position: &Position) -> Option<&'a Instruction> {
    block_at(steps, &position.outer)?.get(position.index as usize)
}

/// Whether `position` names an instruction or the end of a block.
pub fn is_valid(steps: &Block, position: &Position) -> bool {
    block_at(steps, &position.outer).is_some_and(|b| position.index as usize <= b.len())
}

/// The level in `position.outer` of the fork branch the order runs, if it is a fork child:
/// the innermost `fork:<b>` or `forklist` key.
pub fn branch_level(position: &Position) -> Option<usize> {
    position
        .outer
        .iter()
        .rposition(|(_, k)| matches!(k, BlockKey::Fork(_) | BlockKey::ForkList))
}

/// Whether every instruction of `block` (nested included) can run on `agent` without the
/// controller: its jobs run on `agent` and it has no lock, notice, prompt, add-order or
/// fork-list over subagents.
pub fn stays_on(workflow: &Workflow, block: &Block, agent: &AgentId) -> bool {
    block
        .iter()
        .all(|i| instruction_stays_on(workflow, i, agent))
}

fn instruction_stays_on(workflow: &Workflow, instruction: &Instruction, agent: &AgentId) -> bool {
    match instruction {
        Instruction::Run { job, .. } => workflow.jobs.get(job).is_some_and(|j| &j.agent == agent),
        Instruction::If {
            branches,
            otherwise,
        } => {
            branches.iter().all(|(_, b)| stays_on(workflow, b, agent))
                && stays_on(workflow, otherwise, agent)
        }
        Instruction::Fork { branches, .. } => {
            branches.iter().all(|(_, b)| stays_on(workflow, b, agent))
        }
        Instruction::ForkList { over, steps, .. } => {
            matches!(over, ForkListOver::List(_) | ForkListOver::ListWith { .. })
                && stays_on(workflow, steps, agent)
        }
        Instruction::Retry { steps, .. }
        | Instruction::Cycle { steps, .. }
        | Instruction::Options { steps, .. } => stays_on(workflow, steps, agent),
        Instruction::Try { steps, catch } | Instruction::TryRetry { steps, catch, .. } => {
            stays_on(workflow, steps, agent) && stays_on(workflow, catch, agent)
        }
        Instruction::Fail { .. }
        | Instruction::Finish { .. }
        | Instruction::FinishWith { .. }
        | Instruction::RetryAgain
        | Instruction::Break
        | Instruction::Sleep { .. } => true,
        Instruction::Lock { .. }
        | Instruction::Prompt { .. }
        | Instruction::AddOrder { .. }
        | Instruction::AddOrderWithOptions { .. }
        | Instruction::PostNotice { .. }
        | Instruction::ExpectNotices { .. }
        | Instruction::ConsumeNotices { .. }
        | Instruction::ExpectNoticesWhen { .. }
        | Instruction::ConsumeNoticesWhen { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobName;
    use std::collections::BTreeMap;

    fn run(job: &str) -> Instruction {
        Instruction::Run {
            job: JobName::new(job).unwrap(),
            args: BTreeMap::new(),
        }
    }

    #[test]
    fn positions_lead_to_instructions() {
        let steps = vec![
            run("a"),
            Instruction::Try {
                steps: vec![run("b"), Instruction::Break],
                catch: vec![run("c")],
            },
        ];
        let at = |s: &str| instruction_at(&steps, &s.parse().unwrap()).cloned();
        assert_eq!(at("0"), Some(run("a")));
        assert_eq!(at("1/try/0"), Some(run("b")));
        assert_eq!(at("1/catch/0"), Some(run("c")));
        assert_eq!(at("1/try/2"), None);
        assert!(is_valid(&steps, &"1/try/2".parse().unwrap()));
        assert!(!is_valid(&steps, &"1/try/3".parse().unwrap()));
        assert!(!is_valid(&steps, &"0/do/0".parse().unwrap()));
        assert!(!is_valid(&steps, &"1/do/0".parse().unwrap()));
        assert_eq!(branch_level(&"1/fork:x/2/try/0".parse().unwrap()), Some(0));
        assert_eq!(branch_level(&"1/try/0".parse().unwrap()), None);
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;
    use crate::yaml::{Limits, SourceFile, parse_inventory};

    /// Every block `sub_blocks` lists is the one `sub_block` finds under its key, for every
    /// instruction of the workflow that uses each instruction.
    #[test]
    fn sub_blocks_and_sub_block_agree_on_every_instruction() {
        let text = include_str!("../../tests/good/every-instruction.yaml");
        let inventory = parse_inventory(
            &[SourceFile::new("every-instruction.yaml", text)],
            &Limits::default(),
        )
        .expect("the file checks");
        fn walk(block: &Block, seen: &mut usize) {
            for i in block {
                for (key, inner) in sub_blocks(i) {
                    let found = sub_block(i, &key).expect("a listed block is found by its key");
                    assert!(std::ptr::eq(found, inner), "{key:?}");
                    *seen += 1;
                    walk(inner, seen);
                }
            }
        }
        let mut seen = 0;
        for w in &inventory.workflows {
            walk(&w.steps, &mut seen);
        }
        assert!(seen > 10, "only {seen} blocks");
    }
}
