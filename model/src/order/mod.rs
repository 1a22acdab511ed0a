//! The order state machine: one pure model that the controller, every agent and the
//! simulation run alike.
//!
//! # The world and its events
//!
//! A [`World`] holds what one side knows: deployed workflows by name and version, agents,
//! locks (limit, holders, a FIFO queue), notice boards (notices by key with their end), and
//! orders. [`World::apply`] with a [`KeyedEvent`] is the only way it changes; it is
//! deterministic and leaves the world unchanged when it fails, so a replay of the journal
//! gives the state the live run had. The controller's world is the fold of its journal; an
//! agent's world ([`World::new`] with [`Side::Agent`]) is the fold of the agent's own journal
//! and holds only the orders attached to it. The controller applies the agent's events, as
//! forwarded over the wire, with the same `apply` (check them with [`accepts_from_agent`]).
//! Events are postcard-serialisable and **append-only** (see [`event`]).
//!
//! # Orders
//!
//! An [`Order`] has an id, a workflow name and version, a position (`3/fork:b/1/try/0`),
//! variables, an outcome history, an attempt counter, frames of the enclosing instructions
//! that need memory (retry tries, cycle runs, held locks, notices to consume), a holder and
//! perhaps a mark. Its [`OrderState`] is one of: `Fresh` (scheduled), `Ready`, `Processing`,
//! `Processed` (an outcome the next step handles), `Waiting` (sleep, retry delay, cycle pause,
//! lock, notices, child orders, an added order), `Prompting`, `Suspended`, `Failed`
//! (resumable), `FailedInFork` (a child joined as failed), and the terminal `Cancelled` and
//! `Finished`.
//!
//! Outcomes: `Succeeded { values }` (a job's named values and `returnCode`, which become order
//! variables), `Failed { message, return_code, uncatchable }`, `TimedOut`, `Killed`,
//! `Disrupted(ProcessLost)`, `Disrupted(Problem)` (an expression that does not evaluate, a
//! variable that is not set, a lock that can never be granted: the order cannot go on here).
//! A failure goes to the innermost enclosing `try` (its `catch`) or `retry` with tries left
//! (again from the start of its block, after its delay); `fail` with `uncatchable` and
//! `Disrupted` pass both. A lost process of a `restartable` job puts the order
//! back at the job with attempt + 1 (at most [`ATTEMPTS_MAX`]); of any other job it fails the
//! order. A failure nothing catches makes the order `Failed`: visible, resumable, cancellable.
//!
//! Forks: each branch (or list element, or subagent) runs as a child order `parent|branch`
//! (`parent|0`, `parent|1`, ... for a list) that starts with the parent's variables (plus the
//! element). A child ends at the end of its branch (or by `finish`). A child's uncaught failure
//! makes it `FailedInFork` when the fork has `joinIfFailed`, else plain `Failed` (an operator
//! resumes or cancels it) and the parent waits. The parent joins when every child has ended,
//! failed in fork, or was cancelled: the join fails (catchably) if any child failed or was
//! cancelled; otherwise it succeeds and the parent receives, child by child in branch order,
//! every variable a child has with a value differing from the parent's (`returnCode` and the
//! fork-list variable excepted); a later branch wins a conflict. The children go away with the
//! join.
//!
//! Locks are exclusive (`count` omitted: the whole limit) or counted; they are granted in
//! FIFO order (the first in the queue blocks later ones) and released when the block is left,
//! or the order fails, is cancelled or finishes: a failure nothing catches releases the
//! order's locks and stops it at the outermost lock step it was in (`FailedAt`), where a
//! resume asks for them again. A suspended order keeps its locks.
//! Notices: `post-notice` posts a notice for the board's lifetime; `expect-notices` waits
//! until every board has a live notice with the key; `consume-notices` also runs a block and
//! deletes the notices when the block is left (not when the order is cancelled). `add-order`
//! adds the order `<id>@<n>` (n counts the order's additions) to the newest workflow version and,
//! with `wait`, waits for it: finished moves on; cancelled or failed fails the waiting order.
//!
//! # Sides and ownership (design §7)
//!
//! Only the holder of an order moves it. The agent runs jobs, `if`, `retry` (with its
//! delays), `try`/`catch`, `fail`, `sleep`, `cycle`, `break`, and forks whose branches stay on
//! it ([`nav::stays_on`]). A lock, notices, a prompt, an `add-order`, a job of another agent, a
//! failure nothing catches, the end of the order, and leaving a lock or consume block hand the
//! order back (`Detachable` → the controller's `Detach` → `Detached`). The controller runs
//! those and attaches the order to the agent of its next job (`Attachable` → `Attach` →
//! `Attached`). A scheduled order whose first instruction is a job is attached early; the
//! agent starts it at its instant.
//!
//! Operator commands go to the controller ([`command()`]). What an order is given from outside
//! (its id, arguments and instant, `resume` and `answer` variables, `addOrder` arguments)
//! passes the rules and limits of [`input`] first; the caller passes the limits. On an order the controller holds
//! at a safe point (not processing, not waiting for its children) they act at once; otherwise
//! the controller records a [`Mark`] (`Marked`, numbered), sends it to the agent
//! (`Action::Mark` → [`AgentCommand::MarkOrder`] → `MarkedOnAgent`), and the holder honours it
//! at the next safe point: cancel and suspend hand the order back (the controller then cancels
//! or suspends it), after killing the job if asked (`Action::Kill`); go ends a timer wait.
//!
//! # The loop each side runs
//!
//! 1. Inputs become events: [`command()`] (operator, controller), [`agent_command`] (attach,
//!    detach, mark; agent), the executor's `ProcessingStarted` (journaled before the spawn),
//!    `Processed` (use [`job_outcome`]) and `ProcessingWithdrawn` (a journaled start that was
//!    never spawned), [`lost_processes`] (agent recovery: every start without an outcome is
//!    `Disrupted(ProcessLost)`; `step` decides what that means), [`expire_notices`],
//!    [`deploy`].
//! 2. Journal and apply them; then [`step()`] every affected order ([`affected`]) and apply what
//!    it returns, again and again until no step returns events: the fixpoint. [`Settler`] does
//!    this, for both drivers and the simulation; it also collects the orders a round touched. `step` moves one order as far as it can without waiting and emits at most
//!    [`STEP_EVENTS_MAX`] events per call, so a `cycle` of a million empty runs cannot
//!    monopolise a call; the fixpoint is still reached because every event moves an order
//!    forward through a finite unfolding of its workflow or makes it wait.
//! 3. [`actions_for`] the touched orders derives from the state what the executor must do:
//!    kill, withdraw a start that was not spawned, wake orders at an instant, attach, detach
//!    and mark orders, expire notices. On an agent, [`JobQueue`] decides which ready order
//!    starts its job next (within `parallelism` and the driver's room, rendered). Time never
//!    enters the state except through events, and `now` is a parameter: the model reads no
//!    clock. A restarted executor computes the same actions from the recovered state and
//!    skips what it already did.

pub mod action;
pub mod arguments;
pub mod command;
pub mod event;
pub mod forklist;
pub mod input;
pub mod missed;
pub mod nav;
pub mod options;
pub mod queue;
pub mod scope;
pub mod settle;
pub mod state;
pub mod step;
pub mod world;

pub use action::{
    Action, Exit, StartJob, actions, actions_for, board_actions, job_outcome, start_job,
};
pub use arguments::undeclared_arguments;
pub use command::{
    Accepted, AgentCommand, Command, CommandError, agent_command, attach_command, command, deploy,
    expire_notices, lost_processes, prepare_vars, prepare_vars_in, prepare_vars_with,
};
pub use event::{BoardEvent, ForkChild, ItemEvent, KeyedEvent, OrderEvent};
pub use input::{InputError, OrderLimits};
pub use options::{
    Extras, OrderOptions, ParameterRule, ParameterType, WorkflowSettings, extras_or_empty,
    trailing_or_default,
};
pub use queue::{JobKey, JobQueue, Room, Start, Starts};
pub use settle::{Driver, Settler, accepts_from_agent, affected, refused};
pub use state::{
    BlockFrame, Disruption, Frame, HistoricOutcome, Holder, Kill, Mark, Order, OrderState, Outcome,
    Side, TIMED_OUT, TIMED_OUT_RETURN_CODE, Wait, job_result,
};
pub use step::{ATTEMPTS_MAX, FORK_CHILDREN_MAX, STEP_EVENTS_MAX, step, step_with};
pub use world::{ApplyError, BoardState, LockState, World};
