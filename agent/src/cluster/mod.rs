//! Agent clusters: one named agent made of a director and subagents (design §4).
//!
//! The agent the controller couples with is the **director**. When its inventory object lists
//! `subagents`, it runs no job itself: [`director`] keeps a session with each subagent and runs
//! every job on one picked by the agent's `selection` ([`select`]) under the subagent's
//! `processLimit` (a subagent's priority may be an expression over its live metrics,
//! [`priority`]). A **subagent** is the same agent binary with a `[subagent]` section in its
//! configuration ([`subagent`]): it keeps no journal and runs the jobs its one director sends.
//! Their protocol and its limits are in [`protocol`].
//!
//! One process per order at a time: a subagent holds its jobs by a lease that its director's
//! heartbeats renew; the director takes the jobs of a subagent whose lease expired for lost
//! (`Disrupted(ProcessLost)`: the model restarts a `restartable` job, attempt + 1, and fails
//! any other order), and the subagent has killed them by then.
//!
//! Health: each subagent reports its host (cores, load, memory) to its director, which keeps
//! the last report with the average job duration it measured and the time the subagent is
//! connected since, and sends them beside its metadata (`FromAgent::SubagentHealth`).
//!
//! Subagents may register themselves with a join token (`crate::register`); a removed one
//! drains, or has its jobs killed and lost (`director`).
//!
//! A backup director is a director pair ([`crate::pair`]): the active one dedicates with its
//! raft term, and a subagent refuses a director of an older term.

pub mod director;
pub mod priority;
pub mod protocol;
pub mod select;
pub mod subagent;
pub mod term_file;
