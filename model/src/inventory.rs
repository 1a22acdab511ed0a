//! The validated inventory: workflows, jobs, agents, locks, notice boards, schedules and
//! calendars.
//!
//! These are the types the rest of Ordo works with; they come from YAML through
//! [`crate::yaml`], which checks every rule before building them, so code that holds an
//! [`Inventory`] may rely on: names are unique per kind, every reference (job, agent, lock,
//! board, workflow of `add-order` or of a schedule, calendar) resolves, every expression parsed,
//! every limit holds, every schedule's time zone is known and calendars do not refer to
//! themselves.

use crate::expr::{Expr, Template};
use crate::ids::{AgentId, BoardName, BranchId, JobName, LockName, WorkflowName};
use crate::notice_expr::NoticeExpr;
use crate::schedule::{Calendar, Schedule};
use crate::time::DurationMs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything one deployment holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Inventory {
    pub workflows: Vec<Workflow>,
    pub agents: Vec<Agent>,
    pub locks: Vec<Lock>,
    pub boards: Vec<Board>,
    // Added later, at the end and defaulted. An inventory is never journaled whole (a
    // deployment journals one event per workflow, agent, lock and board), so no journal
    // changes; JSON written without them still reads.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub calendars: Vec<Calendar>,
    /// Deployed objects to remove (`removed:`).
    #[serde(default)]
    pub removed: crate::deploy::Removals,
    /// Workflows' settings that are not part of their versions (only those not the
    /// defaults), see [`crate::order::options`].
    #[serde(default)]
    pub workflow_settings: BTreeMap<WorkflowName, crate::order::WorkflowSettings>,
    /// Agent clusters' settings (only those not the defaults), see [`ClusterSettings`].
    #[serde(default)]
    pub agent_settings: BTreeMap<AgentId, ClusterSettings>,
    /// Agents' backup directors (`backupDirector`: the agent is a director pair), by agent.
    #[serde(default)]
    pub backup_directors: BTreeMap<AgentId, String>,
    /// Jobs' settings beside their definitions (only those not the defaults), by workflow
    /// and job, see [`JobSettings`].
    #[serde(default)]
    pub job_settings: BTreeMap<WorkflowName, JobSettingsMap>,
    /// Subagents' priorities given as expressions (`priority: "10 - $processes"`), by agent
    /// (only agents with some); their [`Subagent::priority`] is 0. See [`crate::priority`].
    #[serde(default)]
    pub subagent_priorities: BTreeMap<AgentId, crate::priority::Priorities>,
}

/// The settings of a workflow's jobs that have any, by job.
pub type JobSettingsMap = BTreeMap<JobName, JobSettings>;

/// The most restarts a job's `restartBudget` may allow: an order runs a job at one position
/// at most [`crate::order::ATTEMPTS_MAX`] times.
pub const RESTART_BUDGET_MAX: u32 = crate::order::ATTEMPTS_MAX - 1;

/// A job's settings that came after the encoding of [`Job`] was fixed. Kept beside the
/// workflow (`Inventory::job_settings`, journaled as `ItemEvent::JobSettings`, folded into
/// `World.extras.jobs`, sent to agents with `AgentCommand::AttachOrderWithJobs`): postcard is
/// positional, a field added to `Job` would shift every byte after it. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSettings {
    /// How often a `restartable` job restarts after its process was lost (its agent or
    /// subagent died, or a subagent's lease ran out) before the order fails; `None`: up to
    /// [`RESTART_BUDGET_MAX`].
    pub restart_budget: Option<u32>,
    /// The subagents of the job's agent cluster that may run it and how one is picked;
    /// `None`: any, by the agent's `selection`.
    pub subagent_selection: Option<JobSelection>,
}

impl JobSettings {
    /// The restarts the job may use.
    pub fn restarts_max(&self) -> u32 {
        self.restart_budget
            .unwrap_or(RESTART_BUDGET_MAX)
            .min(RESTART_BUDGET_MAX)
    }
}

/// A job's own subagent selection (JS7's subagent selection of a job).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSelection {
    /// How one of them is picked; `None`: by the agent's `selection`.
    pub selection: Option<Selection>,
    /// The subagents that may run the job, with their priorities for it (`None`: the one the
    /// agent object gives it); empty: every subagent of the agent.
    pub subagents: Vec<JobSubagent>,
}

/// One subagent of a [`JobSelection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSubagent {
    pub id: AgentId,
    pub priority: Option<i32>,
}

/// A workflow: named jobs and the steps that use them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: WorkflowName,
    /// Parameters an order may or must pass, with defaults.
    pub parameters: BTreeMap<String, Parameter>,
    pub jobs: BTreeMap<JobName, Job>,
    pub steps: Block,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// A default makes the parameter optional.
    pub default: Option<Template>,
}

/// A job: what to run, where, and how to judge it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub agent: AgentId,
    pub executable: Executable,
    /// Environment variables; values are templates over order variables.
    pub env: BTreeMap<String, Template>,
    /// Default arguments: order variables set for this job unless the order has them.
    pub args: BTreeMap<String, Template>,
    pub timeout: Option<DurationMs>,
    /// Time between SIGTERM and SIGKILL when the job is killed or times out.
    pub grace_timeout: DurationMs,
    pub return_codes: ReturnCodes,
    /// May run again after the agent crashed while it ran.
    pub restartable: bool,
    /// How many processes of this job may run at once on one agent.
    pub parallelism: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Executable {
    /// Run by `/bin/sh -c`.
    Script(String),
    /// Run directly, `argv[0]` first.
    Command(Vec<String>),
}

/// Which return codes mean success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReturnCodes {
    Success(Vec<i32>),
    Failure(Vec<i32>),
}

impl ReturnCodes {
    pub fn is_success(&self, code: i32) -> bool {
        match self {
            ReturnCodes::Success(ok) => ok.contains(&code),
            ReturnCodes::Failure(bad) => !bad.contains(&code),
        }
    }
}

impl Default for ReturnCodes {
    fn default() -> Self {
        ReturnCodes::Success(vec![0])
    }
}

pub type Block = Vec<Instruction>;

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Instruction {
    /// Run a job of the workflow.
    Run {
        job: JobName,
        /// Arguments for this step, added to the order's variables for the job.
        args: BTreeMap<String, Template>,
    },
    /// `if`/`else if`/`else`: the first branch whose condition holds.
    If {
        branches: Vec<(Expr, Block)>,
        otherwise: Block,
    },
    /// Named parallel branches; each runs as a child order `parent|branch`.
    Fork {
        branches: Vec<(BranchId, Block)>,
        join_if_failed: bool,
    },
    /// One child order per element of a list (or per subagent of an agent cluster).
    ForkList {
        over: ForkListOver,
        /// The child order's variable holding its element.
        var: String,
        steps: Block,
        join_if_failed: bool,
    },
    /// Run `steps`; on failure try again, up to `max_tries` in all, waiting `delays[i]`
    /// (the last delay repeats) between tries.
    Retry {
        max_tries: u32,
        delays: Vec<DurationMs>,
        steps: Block,
    },
    Try {
        steps: Block,
        catch: Block,
    },
    Fail {
        message: Option<Template>,
        return_code: Option<i32>,
        /// An uncatchable failure passes every `catch`.
        uncatchable: bool,
    },
    /// End the order successfully here.
    Finish {
        message: Option<Template>,
    },
    /// Hold a lock around `steps`: exclusive when `count` is `None`.
    Lock {
        lock: LockName,
        count: Option<u32>,
        steps: Block,
    },
    /// Stop and wait for an answer through the controller.
    Prompt {
        question: Template,
    },
    /// Repeat `steps`.
    Cycle {
        repeat: CycleRepeat,
        steps: Block,
    },
    /// Leave the innermost `cycle`.
    Break,
    Sleep {
        duration: DurationMs,
    },
    /// Add an order to another workflow.
    AddOrder {
        workflow: WorkflowName,
        args: BTreeMap<String, Template>,
        /// Wait until the added order ends, and fail if it failed.
        wait: bool,
    },
    PostNotice {
        board: BoardName,
        key: Template,
    },
    /// Wait until every board has a notice with the key; the notices stay.
    ExpectNotices {
        boards: Vec<BoardName>,
        key: Template,
    },
    /// Wait for the notices, run `steps`, then delete them.
    ConsumeNotices {
        boards: Vec<BoardName>,
        key: Template,
        steps: Block,
    },
    // New variants go at the end: workflows are journaled (postcard).
    /// `finish` with an outcome: end the order here (in a fork branch: the branch) with a
    /// succeeded or failed outcome, a message and named values.
    FinishWith {
        failed: bool,
        message: Option<Template>,
        values: BTreeMap<String, Template>,
    },
    /// `try` with `maxTries` or `delays` (JS7's try with retry): a failure in `steps` runs
    /// `catch`, where [`Instruction::RetryAgain`] starts `steps` again after the delay of the
    /// try; `max_tries` (all tries, `None`: no limit) bounds it.
    TryRetry {
        steps: Block,
        catch: Block,
        max_tries: Option<u32>,
        delays: Vec<DurationMs>,
    },
    /// `retry` inside the `catch` of a [`Instruction::TryRetry`]: try its steps again, or
    /// fail when the tries are used up.
    RetryAgain,
    /// `expect` with a notice expression other than "all of these boards", or with a
    /// `whenNotAnnounced` other than `wait`: go on once `notices` holds for notices with
    /// the key (the notices stay).
    ExpectNoticesWhen {
        notices: NoticeExpr,
        key: Template,
        when_not_announced: WhenNotAnnounced,
    },
    /// `consume` with a notice expression or `whenNotAnnounced`: once `notices` holds, run
    /// `steps`, then delete the notices of its boards that existed when the block began.
    ConsumeNoticesWhen {
        notices: NoticeExpr,
        key: Template,
        when_not_announced: WhenNotAnnounced,
        steps: Block,
    },
    /// JS7's `Options`: with `stop_on_failure`, a failure inside `steps` that nothing inside
    /// catches stops the order where it failed (failed, resumable, locks kept) instead of
    /// going to an outer `catch` or `retry` or failing at the outermost lock step. `None`
    /// takes the setting of an enclosing `options`.
    Options {
        stop_on_failure: Option<bool>,
        steps: Block,
    },
    /// [`Instruction::AddOrder`] with a priority or removal for the added order (only when
    /// one is given: a plain `addOrder` stays [`Instruction::AddOrder`]).
    AddOrderWithOptions {
        workflow: WorkflowName,
        args: BTreeMap<String, Template>,
        wait: bool,
        options: crate::order::OrderOptions,
    },
}

/// What `expect` and `consume` do when the notices are not there. JS7: `WhenNotAnnounced`.
/// Ordo's boards announce no notices, so "not announced" is "not posted".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WhenNotAnnounced {
    /// Wait until the expression holds (JS7 `Wait`).
    #[default]
    Wait,
    /// Go on at once: `expect` moves on; `consume` skips its block when none of its
    /// notices exists, else runs it consuming those that exist (JS7 `SkipWhenNoNotice`).
    Skip,
    /// Go on at once: `expect` moves on; `consume` runs its block, consuming the notices
    /// that exist (JS7 `DontWait`).
    DontWait,
}

impl WhenNotAnnounced {
    /// The YAML word.
    pub fn word(self) -> &'static str {
        match self {
            WhenNotAnnounced::Wait => "wait",
            WhenNotAnnounced::Skip => "skip",
            WhenNotAnnounced::DontWait => "dontWait",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ForkListOver {
    /// An expression that yields a list.
    List(Expr),
    /// Every subagent of this agent cluster.
    Subagents(AgentId),
    // New variants go at the end: workflows are journaled (postcard).
    /// A list, each child's id suffix given by `child_to_id` and further variables by
    /// `child_to_arguments` (a map), both evaluated with the child's element and index set
    /// (see [`crate::order::forklist`]).
    ListWith {
        list: Expr,
        child_to_id: Option<Expr>,
        child_to_arguments: Option<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CycleRepeat {
    /// Run the block this many times.
    Times(u32),
    /// Start the block every `every` until `for_` has passed since the cycle began.
    Every { every: DurationMs, for_: DurationMs },
    // New variants go at the end: workflows are journaled (postcard).
    /// Start the block as a schedule says: in admission periods of the local day the cycle
    /// began on (JS7's `Cycle` with a `Schedule`; see [`crate::schedule::cycle`]).
    Schedule(CycleSchedule),
}

/// When a scheduled `cycle` starts its block. Part of workflows (postcard): append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleSchedule {
    /// The workflow's `timeZone` (IANA name; `UTC` by default).
    pub time_zone: String,
    /// When starts are admitted; none: the whole local day.
    pub admission: Vec<AdmissionPeriod>,
    pub scheme: CycleScheme,
    /// At most this many runs.
    pub limit: Option<u32>,
}

/// `[from, from + duration)` on the days of `weekdays`, in local time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdmissionPeriod {
    /// Bit `n` is the weekday `n`, Sunday = 0; 0: every day.
    pub weekdays: u8,
    /// The start, in seconds after local midnight.
    pub from_s: u32,
    pub duration: DurationMs,
}

/// How a scheduled cycle repeats within its admission periods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CycleScheme {
    /// Every `every` counted from local midnight (JS7 `Periodic`).
    Periodic { every: DurationMs },
    /// Every `every` counted from the start of each admission period (JS7 `Ticking`).
    Ticking { every: DurationMs },
    /// Again `pause` after a run ended (JS7 `Continuous`).
    Continuous { pause: DurationMs },
}

/// An agent: a server that runs jobs, or a cluster of subagents behind one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    /// `wss://host:port`; the controller connects to it.
    pub url: String,
    /// The name the agent's server certificate must carry; defaults to the URL's host.
    pub certificate_name: Option<String>,
    /// Subagents of a cluster; empty for a single agent.
    pub subagents: Vec<Subagent>,
    pub selection: Selection,
}

/// The default [`ClusterSettings::lease_timeout`]: 10 s.
pub const LEASE_TIMEOUT_DEFAULT: DurationMs = DurationMs(10_000);

/// The default process limit of a subagent ([`ClusterSettings::process_limit`]).
pub const SUBAGENT_PROCESS_LIMIT_DEFAULT: u32 = 64;

/// An agent cluster's settings that came after the encoding of [`Agent`] was fixed. They are
/// kept beside the agent object (`Inventory::agent_settings`, journaled as
/// `ItemEvent::AgentSettings`, folded into `World.extras.agents`), so that journals written
/// before them still read: postcard is positional, a field added to `Agent` would shift every
/// byte after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSettings {
    /// How long a subagent's hold on a running job lasts without a renewal (a heartbeat):
    /// after it the director takes the job for lost and the subagent kills it.
    pub lease_timeout: DurationMs,
    /// Jobs the director runs on a subagent at once, for the subagents whose limit is not
    /// [`SUBAGENT_PROCESS_LIMIT_DEFAULT`].
    pub process_limits: BTreeMap<AgentId, u32>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            lease_timeout: LEASE_TIMEOUT_DEFAULT,
            process_limits: BTreeMap::new(),
        }
    }
}

impl ClusterSettings {
    /// How many jobs the director runs on `subagent` at once.
    pub fn process_limit(&self, subagent: &AgentId) -> u32 {
        self.process_limits
            .get(subagent)
            .copied()
            .unwrap_or(SUBAGENT_PROCESS_LIMIT_DEFAULT)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subagent {
    pub id: AgentId,
    pub url: String,
    /// With `selection: priority`: the higher, the sooner it runs a job. 0 for a subagent
    /// whose priority is an expression (`Inventory::subagent_priorities`).
    pub priority: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Selection {
    #[default]
    RoundRobin,
    Priority,
    Ring,
}

impl Selection {
    /// The YAML word.
    pub fn word(self) -> &'static str {
        match self {
            Selection::RoundRobin => "round-robin",
            Selection::Priority => "priority",
            Selection::Ring => "ring",
        }
    }
}

/// A lock: exclusive, or shared by orders whose counts add up to at most `limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub name: LockName,
    pub limit: u32,
}

/// A notice board: orders post notices with a key; others expect or consume them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Board {
    pub name: BoardName,
    /// How long a posted notice lives unless consumed.
    pub lifetime: DurationMs,
}
