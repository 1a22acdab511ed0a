//! Which subagent runs the next job: the agent's `selection` over the live subagents that
//! have room under their `processLimit`.
//!
//! - `round-robin`: the next one after the last pick, in the order the agent object lists them.
//! - `priority`: the highest priority among them; round robin among equals (JS7's
//!   `Prioritized`: distinct priorities are active/passive, equal ones active/active).
//! - `ring` is not carried out yet: it picks like `round-robin`.

use ordo_model::inventory::Selection;

/// What selection needs to know of one subagent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub priority: i32,
    pub live: bool,
    pub running: u32,
    pub process_limit: u32,
}

impl Candidate {
    fn available(&self) -> bool {
        self.live && self.running < self.process_limit
    }
}

/// The index of the subagent to run the next job, if any is available; `cursor` is where the
/// round robin goes on next time (kept by the caller, moved by a pick).
pub fn pick(selection: Selection, candidates: &[Candidate], cursor: &mut usize) -> Option<usize> {
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    let best = match selection {
        Selection::Priority => candidates
            .iter()
            .filter(|c| c.available())
            .map(|c| c.priority)
            .max()?,
        Selection::RoundRobin | Selection::Ring => 0,
    };
    let eligible =
        |c: &Candidate| c.available() && (selection != Selection::Priority || c.priority == best);
    let start = *cursor % n;
    let found = (0..n)
        .map(|i| (start + i) % n)
        .find(|&i| eligible(&candidates[i]))?;
    *cursor = found + 1;
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(priority: i32, live: bool, running: u32) -> Candidate {
        Candidate {
            priority,
            live,
            running,
            process_limit: 2,
        }
    }

    fn picks(selection: Selection, cs: &[Candidate], count: usize) -> Vec<Option<usize>> {
        let mut cursor = 0;
        (0..count)
            .map(|_| pick(selection, cs, &mut cursor))
            .collect()
    }

    #[test]
    fn round_robin_skips_lost_and_full_subagents() {
        let cs = [c(0, true, 0), c(0, false, 0), c(0, true, 2), c(0, true, 1)];
        assert_eq!(
            picks(Selection::RoundRobin, &cs, 4),
            [Some(0), Some(3), Some(0), Some(3)]
        );
        let none = [c(0, false, 0), c(0, true, 2)];
        assert_eq!(picks(Selection::RoundRobin, &none, 1), [None]);
        assert_eq!(picks(Selection::RoundRobin, &[], 1), [None]);
    }

    #[test]
    fn priority_takes_the_highest_available_and_rotates_among_equals() {
        let cs = [c(1, true, 0), c(5, true, 0), c(5, true, 0), c(9, false, 0)];
        assert_eq!(
            picks(Selection::Priority, &cs, 4),
            [Some(1), Some(2), Some(1), Some(2)]
        );
        // The highest ones are full: the next priority runs the job.
        let full = [c(1, true, 0), c(5, true, 2)];
        assert_eq!(picks(Selection::Priority, &full, 1), [Some(0)]);
    }
}
