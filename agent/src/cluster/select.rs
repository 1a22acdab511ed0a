//! Which subagent runs the next job: the agent's `selection` over the live subagents that
//! have room under their `processLimit`.
//!
//! - `round-robin`: the next one after the last pick, in the order the agent object lists them.
//! - `priority`: the highest priority among them; round robin among equals (JS7's
//!   `Prioritized`: distinct priorities are active/passive, equal ones active/active). A
//!   priority is a number, given or computed at this pick from an expression over the
//!   subagent's metrics ([`super::priority`]; one that failed is `-inf`, the lowest).
//! - `ring`: a token passes around the live subagents in the listed order (the ring); the
//!   holder takes the next job, then the token passes to the next live member. A lost member is
//!   skipped (the token leaves it when it is lost, [`ring_settle`]); one that comes back rejoins
//!   at its listed place, and gets jobs again when the token reaches it; a full member passes the
//!   token on ([`ring_pick`]). The token is the director's: it is the one place that knows who
//!   is live.

use ordo_model::ids::AgentId;
use ordo_model::inventory::{JobSelection, Selection};

/// What selection needs to know of one subagent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Never NaN: a whole number, an expression's finite value, or `-inf` for a failed one.
    pub priority: f64,
    pub live: bool,
    pub running: u32,
    pub process_limit: u32,
}

impl Candidate {
    /// Live and running fewer jobs than its limit: it could take one now.
    pub fn available(&self) -> bool {
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
            .max_by(f64::total_cmp)?,
        Selection::Ring => return ring_pick(candidates, cursor),
        Selection::RoundRobin => 0.0,
    };
    debug_assert!(!best.is_nan(), "priorities are never NaN");
    // `==`, not `total_cmp`: 0 and -0 are the same priority.
    let eligible =
        |c: &Candidate| c.available() && (selection != Selection::Priority || c.priority == best);
    let start = *cursor % n;
    let found = (0..n)
        .map(|i| (start + i) % n)
        .find(|&i| eligible(&candidates[i]))?;
    *cursor = found + 1;
    Some(found)
}

/// Narrows `candidates` (the subagents `ids`, in the agent object's order) to a job's own
/// selection: a subagent it does not list gets no room (it stays in the ring, so the token
/// still passes it), a listed one takes the job's priority when it gives one. The selection
/// the job is picked by: the job's, else `agent`'s.
pub fn for_job(
    job: &JobSelection,
    ids: &[&AgentId],
    candidates: &mut [Candidate],
    agent: Selection,
) -> Selection {
    debug_assert_eq!(ids.len(), candidates.len(), "one id per candidate");
    if !job.subagents.is_empty() {
        for (id, c) in ids.iter().zip(candidates.iter_mut()) {
            match job.subagents.iter().find(|s| s.id == **id) {
                Some(s) => {
                    if let Some(p) = s.priority {
                        c.priority = f64::from(p);
                    }
                }
                None => c.process_limit = 0,
            }
        }
    }
    job.selection.unwrap_or(agent)
}

/// The next live member from `from` on in ring order (`from` itself first).
fn next_live(candidates: &[Candidate], from: usize) -> Option<usize> {
    let n = candidates.len();
    (0..n).map(|i| (from + i) % n).find(|&i| candidates[i].live)
}

/// Where the token is after members joined or left: with the member at `token` while it is
/// live, else with the next live member after it; it stays at `token` while none is live (the
/// first to join takes it from there). A member that rejoins does not take the token: it is
/// in the ring again at its place.
pub fn ring_settle(candidates: &[Candidate], token: usize) -> usize {
    let n = candidates.len();
    if n == 0 {
        return 0;
    }
    let token = token % n;
    next_live(candidates, token).unwrap_or(token)
}

/// The ring's pick: the holder of the token (settled first) when it has room, else the next
/// live member with room — each full member passes the token on; then the token passes to the
/// next live member after the one picked. `None` (the token stays) while no live member has
/// room.
pub fn ring_pick(candidates: &[Candidate], token: &mut usize) -> Option<usize> {
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    let holder = ring_settle(candidates, *token);
    let found = (0..n)
        .map(|i| (holder + i) % n)
        .find(|&i| candidates[i].available())?;
    *token = next_live(candidates, (found + 1) % n).unwrap_or(found);
    debug_assert!(candidates[*token].live, "the token is with a live member");
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(priority: i32, live: bool, running: u32) -> Candidate {
        Candidate {
            priority: f64::from(priority),
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
    fn a_job_selection_narrows_the_subagents_and_sets_their_priorities() {
        use ordo_model::inventory::JobSubagent;
        let ids: Vec<AgentId> = ["a", "b", "c"]
            .iter()
            .map(|s| AgentId::new(*s).unwrap())
            .collect();
        let refs: Vec<&AgentId> = ids.iter().collect();
        let job = JobSelection {
            selection: Some(Selection::Priority),
            subagents: vec![
                JobSubagent {
                    id: ids[0].clone(),
                    priority: None,
                },
                JobSubagent {
                    id: ids[2].clone(),
                    priority: Some(7),
                },
            ],
        };
        let mut cs = [c(9, true, 0), c(9, true, 0), c(1, true, 0)];
        let selection = for_job(&job, &refs, &mut cs, Selection::RoundRobin);
        assert_eq!(selection, Selection::Priority);
        assert!(!cs[1].available(), "b is not the job's");
        assert_eq!((cs[0].priority, cs[2].priority), (9.0, 7.0));
        assert_eq!(picks(selection, &cs, 2), [Some(0), Some(0)]);
        // Without a list every subagent may run it, by the agent's selection.
        let mut all = [c(0, true, 0), c(0, true, 0)];
        let any = JobSelection::default();
        let two: Vec<&AgentId> = refs[..2].to_vec();
        assert_eq!(
            for_job(&any, &two, &mut all, Selection::Ring),
            Selection::Ring
        );
        assert!(all.iter().all(Candidate::available));
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

    /// Computed priorities: fractions order, equal values (also 0 and -0) rotate, and a failed
    /// expression (`-inf`) runs a job only when no other subagent is available.
    #[test]
    fn priority_compares_computed_values() {
        let p = |priority: f64, running: u32| Candidate {
            priority,
            ..c(0, true, running)
        };
        let cs = [p(2.5, 0), p(2.25, 0), p(f64::NEG_INFINITY, 0)];
        assert_eq!(picks(Selection::Priority, &cs, 2), [Some(0), Some(0)]);
        let zeros = [p(0.0, 0), p(-0.0, 0), p(-1.0, 0)];
        assert_eq!(
            picks(Selection::Priority, &zeros, 3),
            [Some(0), Some(1), Some(0)]
        );
        let failed = [p(f64::NEG_INFINITY, 0), p(-1e9, 2), p(f64::NEG_INFINITY, 0)];
        assert_eq!(
            picks(Selection::Priority, &failed, 3),
            [Some(0), Some(2), Some(0)]
        );
        let only = [p(f64::NEG_INFINITY, 0), p(-1e9, 0)];
        assert_eq!(picks(Selection::Priority, &only, 1), [Some(1)]);
    }

    fn ring_picks(cs: &[Candidate], token: &mut usize, count: usize) -> Vec<Option<usize>> {
        (0..count).map(|_| ring_pick(cs, token)).collect()
    }

    #[test]
    fn ring_passes_the_token_in_listed_order() {
        let cs = [c(0, true, 0), c(0, true, 0), c(0, true, 0)];
        let mut token = 1;
        assert_eq!(
            ring_picks(&cs, &mut token, 4),
            [Some(1), Some(2), Some(0), Some(1)]
        );
        assert_eq!(token, 2);
        assert_eq!(pick(Selection::Ring, &cs, &mut token), Some(2));
        assert_eq!(token, 0);
        assert_eq!(ring_picks(&[], &mut token, 1), [None]);
    }

    #[test]
    fn ring_skips_a_lost_member_and_the_token_leaves_it() {
        let mut cs = [c(0, true, 0), c(0, true, 0), c(0, true, 0)];
        let mut token = 1;
        // The holder is lost: the token goes on to the next live member.
        cs[1].live = false;
        token = ring_settle(&cs, token);
        assert_eq!(token, 2);
        assert_eq!(
            ring_picks(&cs, &mut token, 4),
            [Some(2), Some(0), Some(2), Some(0)]
        );
        // Lost after the last live one: the token wraps around.
        let mut token = 2;
        cs[2].live = false;
        assert_eq!(ring_settle(&cs, token), 0);
        assert_eq!(ring_picks(&cs, &mut token, 2), [Some(0), Some(0)]);
        // None live: the token stays; the first to join takes it from there.
        cs[0].live = false;
        assert_eq!(ring_settle(&cs, 1), 1);
        assert_eq!(ring_picks(&cs, &mut token, 1), [None]);
        cs[2].live = true;
        assert_eq!(ring_settle(&cs, 1), 2);
    }

    #[test]
    fn ring_a_rejoining_member_takes_its_place_not_the_token() {
        let mut cs = [c(0, true, 0), c(0, false, 0), c(0, true, 0)];
        let mut token = 0;
        assert_eq!(ring_picks(&cs, &mut token, 2), [Some(0), Some(2)]);
        assert_eq!(token, 0);
        // Member 1 comes back while member 0 holds the token: 0 goes first, then 1 in its turn
        // (its listed place, between 0 and 2), not at the end.
        cs[1].live = true;
        assert_eq!(ring_settle(&cs, token), 0);
        assert_eq!(
            ring_picks(&cs, &mut token, 4),
            [Some(0), Some(1), Some(2), Some(0)]
        );
    }

    #[test]
    fn ring_a_full_member_passes_the_token_on() {
        let cs = [c(0, true, 0), c(0, true, 2), c(0, true, 0)];
        let mut token = 1;
        assert_eq!(ring_picks(&cs, &mut token, 3), [Some(2), Some(0), Some(2)]);
        // All full: nothing is picked, the token stays.
        let full = [c(0, true, 2), c(0, true, 2)];
        let mut token = 1;
        assert_eq!(ring_picks(&full, &mut token, 1), [None]);
        assert_eq!(token, 1);
    }
}
