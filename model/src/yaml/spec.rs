//! The YAML vocabulary as data: every object, instruction and field with its type and meaning.
//!
//! The validator takes its field names, required flags and unknown-field suggestions from
//! these tables, and the JSON Schema is generated from them, so the two cannot drift apart.

/// The type of a field's value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    /// An inventory name: letters, digits, `-`, `_`, `.`.
    Name,
    /// A variable or environment variable name: letters, digits and `_`, not starting with a
    /// digit.
    VarName,
    /// Any text.
    Str,
    /// A URL `wss://host:port`.
    Url,
    /// A template (`$name`, `${expression}`, `$$`); numbers and booleans are taken as text.
    Template,
    /// An expression.
    Expr,
    /// `90s`, `10m`, `1h30m`, `500ms`, `2d`, or a number of seconds.
    Duration,
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// A whole number in this range, or an expression in a string.
    IntOrExpr {
        min: i64,
        max: i64,
    },
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A list of this type.
    List(&'static Ty),
    /// A mapping from variable names to templates.
    Vars,
    /// A mapping from environment variable names to templates.
    Env,
    /// A list of instructions.
    Block,
    /// A mapping of fork branch names to blocks.
    Branches,
    /// A mapping of job names to jobs.
    Jobs,
    /// A mapping of parameter names to parameters (or nothing for a required parameter).
    Params,
    /// A mapping with these fields.
    Obj(&'static Obj),
    /// Nothing, or a mapping with these fields.
    NullOr(&'static Obj),
    /// An expression yielding a list, or a mapping with these fields.
    ExprOr(&'static Obj),
    /// One value of this type, or a list of them.
    OneOrList(&'static Ty),
    /// A date `2026-12-24`.
    Date,
    /// A time of day `02:30` or `02:30:15`.
    TimeOfDay,
    /// An IANA time zone name.
    TimeZone,
    /// A cron expression.
    Cron,
    /// A day of the week `MON`, or a range of them `MON-FRI`.
    Weekdays,
    /// A day of the month: 1..=31 from its start, -1..=-31 from its end.
    MonthDay,
    /// A list of board names (all needed), or a notice expression `A && (B || C)`.
    NoticeExpr,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub doc: &'static str,
}

/// A mapping: its name for messages and schema definitions, and its fields.
#[derive(Debug)]
pub(crate) struct Obj {
    /// For messages ("a job") and as the schema definition name.
    pub what: &'static str,
    pub id: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
}

impl Obj {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.name)
    }
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required: true,
        doc,
    }
}

const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required: false,
        doc,
    }
}

pub(crate) const GRACE_TIMEOUT_DEFAULT_MS: u64 = 15_000;
pub(crate) const PARALLELISM_DEFAULT: u32 = 1;
pub(crate) const PARALLELISM_MAX: i64 = 100_000;
pub(crate) const LOCK_LIMIT_MAX: i64 = 1_000_000;
pub(crate) const BOARD_LIFETIME_DEFAULT_MS: u64 = 24 * 3600 * 1000;
pub(crate) const MAX_TRIES_MAX: i64 = 1_000_000;
pub(crate) const CYCLE_TIMES_MAX: i64 = 1_000_000;

const RETURN_CODE: Ty = Ty::Int { min: 0, max: 255 };

// ---- inventory objects ---------------------------------------------------------------------

pub(crate) static WORKFLOW: Obj = Obj {
    what: "workflow",
    id: "workflow",
    doc: "A workflow: named jobs and the steps that run them.",
    fields: &[
        req("workflow", Ty::Name, "The workflow's name."),
        opt(
            "parameters",
            Ty::Params,
            "Variables an order may pass; one with a `default` is optional, one without is required. A workflow with parameters refuses an argument it does not declare.",
        ),
        opt(
            "allowUndeclared",
            Ty::Bool,
            "Let orders pass arguments besides the declared `parameters` (default false: refused with the declared names).",
        ),
        opt("jobs", Ty::Jobs, "The jobs the steps run, by name."),
        req("steps", Ty::Block, "The instructions, run in order."),
        opt(
            "timeZone",
            Ty::TimeZone,
            "The time zone of its scheduled cycles' admission periods and days (default UTC).",
        ),
        opt(
            "deleteWhenTerminated",
            Ty::Bool,
            "Remove an order once it has finished or was cancelled, unless the order says otherwise; a failed order stays (default false: ended orders stay for the controller's retention).",
        ),
    ],
};

pub(crate) static PARAMETER: Obj = Obj {
    what: "parameter",
    id: "parameter",
    doc: "A workflow parameter; write `{}` or nothing for a required one.",
    fields: &[
        opt(
            "default",
            Ty::Template,
            "The value when the order does not pass one; makes the parameter optional.",
        ),
        opt(
            "type",
            Ty::Enum(&["string", "number", "boolean", "list", "map"]),
            "The type the value must have, checked when an order is added (default: any).",
        ),
        opt(
            "final",
            Ty::Expr,
            "An expression over the order's other variables, evaluated when the order is added; the order may not pass the parameter (no `default` with it).",
        ),
    ],
};

pub(crate) static JOB: Obj = Obj {
    what: "job",
    id: "job",
    doc: "A job: a script or a command run on an agent.",
    fields: &[
        req("agent", Ty::Name, "The agent that runs the job."),
        opt(
            "script",
            Ty::Str,
            "A shell script, run by `/bin/sh -c`. Give `script` or `command`.",
        ),
        opt(
            "command",
            Ty::List(&Ty::Str),
            "A program and its arguments, run directly. Give `script` or `command`.",
        ),
        opt(
            "env",
            Ty::Env,
            "Environment variables for the process; values are templates over order variables. Names that change how a process loads or starts (LD_*, PATH, ...) take constants only.",
        ),
        opt(
            "args",
            Ty::Vars,
            "Default arguments: order variables set for this job unless the order has them.",
        ),
        opt(
            "timeout",
            Ty::Duration,
            "The job is killed when it runs longer (default: no limit).",
        ),
        opt(
            "graceTimeout",
            Ty::Duration,
            "Time between SIGTERM and SIGKILL when the job is killed (default 15s).",
        ),
        opt(
            "returnCodes",
            Ty::Obj(&RETURN_CODES),
            "Which return codes mean success (default: only 0).",
        ),
        opt(
            "restartable",
            Ty::Bool,
            "May run again when the agent crashed while it ran (default false).",
        ),
        opt(
            "restartBudget",
            Ty::Int {
                min: 0,
                max: crate::inventory::RESTART_BUDGET_MAX as i64,
            },
            "How often the job restarts after its process was lost (its agent or subagent died, or a subagent's lease ran out) before the order fails; makes the job `restartable` (default 99 when `restartable`).",
        ),
        opt(
            "subagentSelection",
            Ty::Obj(&JOB_SELECTION),
            "The job's own choice among the subagents of its agent cluster (default: any, by the agent's `selection`).",
        ),
        opt(
            "parallelism",
            Ty::Int {
                min: 1,
                max: PARALLELISM_MAX,
            },
            "How many processes of this job may run at once on one agent (default 1).",
        ),
        opt(
            "jobResources",
            Ty::List(&Ty::Name),
            "Job resources whose `env` and `args` the job takes, where it sets no value of the name itself (an earlier resource wins over a later one).",
        ),
    ],
};

pub(crate) static JOB_RESOURCE: Obj = Obj {
    what: "job resource",
    id: "jobResource",
    doc: "Environment variables and arguments declared once, for the jobs that name it in `jobResources`.",
    fields: &[
        req("jobResource", Ty::Name, "The job resource's name."),
        opt(
            "env",
            Ty::Env,
            "Environment variables of the jobs; values are templates over order variables.",
        ),
        opt(
            "args",
            Ty::Vars,
            "Default arguments of the jobs: order variables set for the job unless the order has them.",
        ),
    ],
};

pub(crate) static RETURN_CODES: Obj = Obj {
    what: "returnCodes",
    id: "returnCodes",
    doc: "Give `success` (these codes succeed) or `failure` (these codes fail, all others succeed).",
    fields: &[
        opt(
            "success",
            Ty::List(&RETURN_CODE),
            "The return codes that mean success.",
        ),
        opt(
            "failure",
            Ty::List(&RETURN_CODE),
            "The return codes that mean failure; every other code means success.",
        ),
    ],
};

pub(crate) static AGENT: Obj = Obj {
    what: "agent",
    id: "agent",
    doc: "An agent: a server that runs jobs, or a cluster of subagents behind one name.",
    fields: &[
        req("agent", Ty::Name, "The agent's id."),
        opt(
            "url",
            Ty::Url,
            "`wss://host:port`; the controller connects to it. Required, unless `director` gives it.",
        ),
        opt(
            "director",
            Ty::Url,
            "Another name for `url`: the director of a director pair (give one of the two).",
        ),
        opt(
            "backupDirector",
            Ty::Url,
            "`wss://host:port` of the backup director of a director pair: the controller couples with whichever of `url` and `backupDirector` is active.",
        ),
        opt(
            "certificateName",
            Ty::Str,
            "The name the agent's server certificate must carry (default: the URL's host).",
        ),
        opt(
            "subagents",
            Ty::List(&Ty::Obj(&SUBAGENT)),
            "The subagents of a cluster.",
        ),
        opt(
            "selection",
            Ty::Enum(&["round-robin", "priority", "ring"]),
            "How a cluster picks a subagent for a job (default round-robin).",
        ),
        opt(
            "leaseTimeout",
            Ty::Duration,
            "How long a subagent holds a running job without a heartbeat; then the job is lost and restarted elsewhere if `restartable` (default 10s, at least 500ms).",
        ),
    ],
};

pub(crate) static JOB_SELECTION: Obj = Obj {
    what: "subagent selection",
    id: "jobSubagentSelection",
    doc: "Which subagents of the job's agent cluster may run the job, and how one is picked.",
    fields: &[
        opt(
            "selection",
            Ty::Enum(&["round-robin", "priority", "ring"]),
            "How a subagent is picked for the job (default: the agent's `selection`).",
        ),
        opt(
            "subagents",
            Ty::List(&Ty::Obj(&JOB_SUBAGENT)),
            "The subagents that may run the job (default: all of the agent's); one that is not in the agent's cluster never does. The job fails when none of them is live for a whole `leaseTimeout`.",
        ),
    ],
};

pub(crate) static JOB_SUBAGENT: Obj = Obj {
    what: "subagent of a job",
    id: "jobSubagent",
    doc: "A subagent that may run the job.",
    fields: &[
        req("id", Ty::Name, "The subagent's id."),
        opt(
            "priority",
            Ty::Int {
                min: -1_000_000,
                max: 1_000_000,
            },
            "Its priority for this job with `selection: priority` (default: the one in the agent object).",
        ),
    ],
};

pub(crate) static SUBAGENT: Obj = Obj {
    what: "subagent",
    id: "subagent",
    doc: "A member of an agent cluster.",
    fields: &[
        req("id", Ty::Name, "The subagent's id."),
        req("url", Ty::Url, "`wss://host:port`."),
        opt(
            "priority",
            Ty::IntOrExpr {
                min: -1_000_000,
                max: 1_000_000,
            },
            "With `selection: priority`, the highest available one runs the next job (default 0). A whole number, or an expression over the subagent's live metrics evaluated at each pick: `$processes` (`$js7SubagentProcessCount`), `$clusterProcesses` (`$js7ClusterSubagentProcessCount`), `$processLimit`, `$processed`, and from the subagent's last report `$cores`, `$load` (`$js7CpuLoad`, 1-minute load average), `$memoryFree` (`$js7FreeMemorySize`, bytes), `$memoryTotal` (`$js7TotalMemorySize`, bytes), e.g. \"100 - $load * 100 / $cores\". An expression that fails or gives no number is the lowest priority.",
        ),
        opt(
            "processLimit",
            Ty::Int {
                min: 1,
                max: 100_000,
            },
            "How many jobs run on this subagent at once (default 64).",
        ),
    ],
};

pub(crate) static LOCK: Obj = Obj {
    what: "lock",
    id: "lock",
    doc: "A lock: exclusive, or shared by orders whose counts add up to at most `limit`.",
    fields: &[
        req("lock", Ty::Name, "The lock's name."),
        opt(
            "limit",
            Ty::Int {
                min: 1,
                max: LOCK_LIMIT_MAX,
            },
            "The capacity for counted use (default 1).",
        ),
    ],
};

pub(crate) static BOARD: Obj = Obj {
    what: "board",
    id: "board",
    doc: "A notice board: orders post notices with a key; others expect or consume them.",
    fields: &[
        req("board", Ty::Name, "The board's name."),
        opt(
            "lifetime",
            Ty::Duration,
            "How long a posted notice lives unless consumed (default 1d).",
        ),
    ],
};

pub(crate) const PRIORITY_MAX: i64 = 1_000_000;

pub(crate) static SCHEDULE: Obj = Obj {
    what: "schedule",
    id: "schedule",
    doc: "A schedule: when to add orders to a workflow. Give `cron`, `times` or `repeat` (or several).",
    fields: &[
        req("schedule", Ty::Name, "The schedule's name."),
        req("workflow", Ty::Name, "The workflow the orders run."),
        opt(
            "args",
            Ty::Vars,
            "The orders' arguments; templates over $schedule, $date, $time and $scheduledFor.",
        ),
        opt(
            "timeZone",
            Ty::TimeZone,
            "The IANA time zone its wall times are in, e.g. Europe/Berlin (default UTC).",
        ),
        opt(
            "cron",
            Ty::OneOrList(&Ty::Cron),
            "Cron expressions: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first.",
        ),
        opt(
            "times",
            Ty::OneOrList(&Ty::TimeOfDay),
            "Times of day, `02:30` or `02:30:15`, on every date of the calendar.",
        ),
        opt(
            "repeat",
            Ty::Obj(&REPEAT),
            "Every period between two times of day, on every date of the calendar.",
        ),
        opt(
            "calendar",
            Ty::Name,
            "Fires only on the dates this calendar holds (default: every date).",
        ),
        opt(
            "missed",
            Ty::Enum(&["catch-up", "latest", "skip"]),
            "Fires missed while no order could be added: all added late (catch-up, the default), only the latest, or none (skip).",
        ),
        opt(
            "priority",
            Ty::Int {
                min: -PRIORITY_MAX,
                max: PRIORITY_MAX,
            },
            "Higher first when orders compete (default 0).",
        ),
        opt(
            "paused",
            Ty::Bool,
            "A paused schedule adds no orders (default false).",
        ),
    ],
};

pub(crate) static REPEAT: Obj = Obj {
    what: "repeat",
    id: "repeat",
    doc: "Fires every period from `from` on, before `until`, at every real instant with that wall time.",
    fields: &[
        req(
            "every",
            Ty::Duration,
            "The period: at least 1s, at most 24h, whole seconds.",
        ),
        opt(
            "from",
            Ty::TimeOfDay,
            "The first time of day (default 00:00).",
        ),
        opt(
            "until",
            Ty::TimeOfDay,
            "No fire at or after this time of day (default: the end of the day).",
        ),
    ],
};

pub(crate) static CALENDAR: Obj = Obj {
    what: "calendar",
    id: "calendar",
    doc: "A calendar: the dates matching any of its rules (every date without rules), within `from`..`to`, minus `exclude`.",
    fields: &[
        req("calendar", Ty::Name, "The calendar's name."),
        opt("from", Ty::Date, "The first date it may hold."),
        opt("to", Ty::Date, "The last date it may hold."),
        opt(
            "weekdays",
            Ty::OneOrList(&Ty::Weekdays),
            "Days of the week: `MON-FRI`, or a list such as [MON, WED].",
        ),
        opt(
            "monthDays",
            Ty::List(&Ty::MonthDay),
            "Days of the month: 1 to 31, or -1 (the last day) to -31.",
        ),
        opt("dates", Ty::List(&Ty::Date), "Single dates."),
        opt(
            "ranges",
            Ty::List(&Ty::Obj(&DATE_RANGE)),
            "Date ranges, both ends included.",
        ),
        opt(
            "calendars",
            Ty::List(&Ty::Name),
            "Other calendars whose dates it holds too.",
        ),
        opt(
            "exclude",
            Ty::Obj(&EXCLUDE),
            "Dates it never holds, whatever the rules above say.",
        ),
    ],
};

pub(crate) static EXCLUDE: Obj = Obj {
    what: "exclude",
    id: "exclude",
    doc: "Dates a calendar never holds: those matching any of these rules.",
    fields: &[
        opt(
            "weekdays",
            Ty::OneOrList(&Ty::Weekdays),
            "Days of the week: `SAT-SUN`, or a list.",
        ),
        opt(
            "monthDays",
            Ty::List(&Ty::MonthDay),
            "Days of the month: 1 to 31, or -1 (the last day) to -31.",
        ),
        opt("dates", Ty::List(&Ty::Date), "Single dates, e.g. holidays."),
        opt(
            "ranges",
            Ty::List(&Ty::Obj(&DATE_RANGE)),
            "Date ranges, both ends included.",
        ),
        opt(
            "calendars",
            Ty::List(&Ty::Name),
            "Calendars whose dates it never holds, e.g. a holiday list.",
        ),
    ],
};

pub(crate) static DATE_RANGE: Obj = Obj {
    what: "date range",
    id: "dateRange",
    doc: "The dates from `from` to `to`, both included.",
    fields: &[
        req("from", Ty::Date, "The first date."),
        req("to", Ty::Date, "The last date."),
    ],
};

pub(crate) static REMOVED: Obj = Obj {
    what: "removal",
    id: "removed",
    doc: "Objects the deployment removes (`crate::deploy`): refused while a deployed workflow names one or a live order uses it; one that is not deployed is passed over.",
    fields: &[req(
        "removed",
        Ty::Obj(&REMOVED_KINDS),
        "The names to remove, by kind.",
    )],
};

pub(crate) static REMOVED_KINDS: Obj = Obj {
    what: "list of removals",
    id: "removedKinds",
    doc: "The names to remove, by kind.",
    fields: &[
        opt("workflows", Ty::List(&Ty::Name), "Workflows to remove."),
        opt("agents", Ty::List(&Ty::Name), "Agents to remove."),
        opt("locks", Ty::List(&Ty::Name), "Locks to remove."),
        opt("boards", Ty::List(&Ty::Name), "Notice boards to remove."),
        opt(
            "schedules",
            Ty::List(&Ty::Name),
            "Schedules to remove; their planned orders that have not started are cancelled.",
        ),
        opt("calendars", Ty::List(&Ty::Name), "Calendars to remove."),
        opt(
            "subagents",
            Ty::List(&Ty::Str),
            "Subagents to take out of their agent, as agent/subagent (drained by its director).",
        ),
    ],
};

/// The objects a document may hold, each recognised by its first field.
pub(crate) static OBJECTS: [&Obj; 8] = [
    &WORKFLOW,
    &AGENT,
    &LOCK,
    &BOARD,
    &SCHEDULE,
    &CALENDAR,
    &REMOVED,
    &JOB_RESOURCE,
];

// ---- instructions --------------------------------------------------------------------------

/// Instructions written as a bare word in a step list.
pub(crate) static BARE_INSTRUCTIONS: [&str; 4] = ["break", "finish", "fail", "retry"];

pub(crate) static RUN: Obj = Obj {
    what: "run step",
    id: "run",
    doc: "Runs a job of the workflow.",
    fields: &[
        req("run", Ty::Name, "The job's name."),
        opt(
            "args",
            Ty::Vars,
            "Variables for this run, added to the order's variables for the job.",
        ),
    ],
};

pub(crate) static IF: Obj = Obj {
    what: "if step",
    id: "if",
    doc: "Runs `then` when the expression holds, else the first `elif` that holds, else `else`.",
    fields: &[
        req(
            "if",
            Ty::Expr,
            "A boolean expression, e.g. `$returnCode == 3`.",
        ),
        req("then", Ty::Block, "Steps run when the condition holds."),
        opt(
            "elif",
            Ty::List(&Ty::Obj(&ELIF)),
            "Further conditions, tried in order.",
        ),
        opt("else", Ty::Block, "Steps run when no condition holds."),
    ],
};

pub(crate) static ELIF: Obj = Obj {
    what: "elif branch",
    id: "elif",
    doc: "A further condition of an `if`.",
    fields: &[
        req("if", Ty::Expr, "A boolean expression."),
        req("then", Ty::Block, "Steps run when it holds."),
    ],
};

pub(crate) static FORK: Obj = Obj {
    what: "fork step",
    id: "fork",
    doc: "Runs named branches in parallel as child orders, then joins them.",
    fields: &[
        req("fork", Ty::Branches, "The branches, by name."),
        opt(
            "joinIfFailed",
            Ty::Bool,
            "A failed branch joins at once and fails the fork (default false: it stays failed for an operator).",
        ),
    ],
};

pub(crate) static FORK_LIST: Obj = Obj {
    what: "forkList step",
    id: "forkList",
    doc: "Runs `do` once per element of a list (or per subagent of a cluster) in parallel.",
    fields: &[
        req(
            "forkList",
            Ty::ExprOr(&SUBAGENTS_OF),
            "An expression giving a list, e.g. `$hosts`, or `{ subagentsOf: cluster }`.",
        ),
        req(
            "as",
            Ty::VarName,
            "The variable holding each child order's element.",
        ),
        req("do", Ty::Block, "The steps of each child order."),
        opt(
            "joinIfFailed",
            Ty::Bool,
            "A failed child joins at once and fails the step (default false).",
        ),
        opt(
            "childToId",
            Ty::Expr,
            "An expression giving each child's id suffix (`parent|<suffix>`), with `$<as>` and `$forkListIndex` set; default the index.",
        ),
        opt(
            "childToArguments",
            Ty::Expr,
            "An expression giving a map of further variables for each child, with `$<as>` and `$forkListIndex` set.",
        ),
        opt(
            "result",
            Ty::Vars,
            "Expressions evaluated in each child at its end, by name; at the join each name is a list on the parent, one element per child in order.",
        ),
    ],
};

pub(crate) static FORK_BRANCH: Obj = Obj {
    what: "fork branch",
    id: "forkBranch",
    doc: "A fork branch with a result: its steps and the values it gives its parent.",
    fields: &[
        req("do", Ty::Block, "The branch's steps."),
        opt(
            "result",
            Ty::Vars,
            "Expressions evaluated in the child order at its end, by name; set on the parent at the join.",
        ),
    ],
};

pub(crate) static SUBAGENTS_OF: Obj = Obj {
    what: "forkList source",
    id: "subagentsOf",
    doc: "One child order per subagent of an agent cluster.",
    fields: &[req("subagentsOf", Ty::Name, "The agent cluster.")],
};

pub(crate) static RETRY: Obj = Obj {
    what: "retry step",
    id: "retry",
    doc: "Runs `do`; when it fails, tries again.",
    fields: &[
        req("retry", Ty::Obj(&RETRY_SETTINGS), "How often and when."),
        req("do", Ty::Block, "The steps to try."),
    ],
};

pub(crate) static RETRY_SETTINGS: Obj = Obj {
    what: "retry settings",
    id: "retrySettings",
    doc: "`maxTries` counts the first try.",
    fields: &[
        req(
            "maxTries",
            Ty::Int {
                min: 1,
                max: MAX_TRIES_MAX,
            },
            "Tries in all, the first included.",
        ),
        opt(
            "delays",
            Ty::List(&Ty::Duration),
            "Waits between tries; the last one repeats (default: none).",
        ),
    ],
};

pub(crate) static TRY: Obj = Obj {
    what: "try step",
    id: "try",
    doc: "Runs `try`; when it fails, runs `catch` instead of failing.",
    fields: &[
        req("try", Ty::Block, "The steps to try."),
        req(
            "catch",
            Ty::Block,
            "Steps run when `try` failed; `[]` ignores the failure. With `maxTries` or `delays`, a bare `retry` in it runs `try` again.",
        ),
        opt(
            "maxTries",
            Ty::Int {
                min: 1,
                max: MAX_TRIES_MAX,
            },
            "Tries in all for `retry` in `catch` (default: no limit); once used up, a `catch` that begins with `retry` passes the failure on.",
        ),
        opt(
            "delays",
            Ty::List(&Ty::Duration),
            "Waits before each `retry` of `catch`; the last one repeats (default: none).",
        ),
    ],
};

pub(crate) static FAIL: Obj = Obj {
    what: "fail step",
    id: "fail",
    doc: "Fails the order here; a bare `fail` needs no settings.",
    fields: &[req(
        "fail",
        Ty::NullOr(&FAIL_SETTINGS),
        "Nothing, or the settings.",
    )],
};

pub(crate) static FAIL_SETTINGS: Obj = Obj {
    what: "fail settings",
    id: "failSettings",
    doc: "How the order fails.",
    fields: &[
        opt("message", Ty::Template, "Why it failed."),
        opt("returnCode", RETURN_CODE, "The return code to report."),
        opt(
            "uncatchable",
            Ty::Bool,
            "Passes every `catch` (default false).",
        ),
    ],
};

pub(crate) static FINISH: Obj = Obj {
    what: "finish step",
    id: "finish",
    doc: "Ends the order successfully here; a bare `finish` needs no settings.",
    fields: &[req(
        "finish",
        Ty::NullOr(&FINISH_SETTINGS),
        "Nothing, or the settings.",
    )],
};

pub(crate) static FINISH_SETTINGS: Obj = Obj {
    what: "finish settings",
    id: "finishSettings",
    doc: "How the order finishes.",
    fields: &[
        opt("message", Ty::Template, "Why it finished."),
        opt(
            "outcome",
            Ty::Enum(&["succeeded", "failed"]),
            "The order's (in a fork branch: the branch's) outcome (default succeeded); a failed branch fails its child order.",
        ),
        opt(
            "values",
            Ty::Vars,
            "Named values of the outcome; they become order variables.",
        ),
    ],
};

pub(crate) static LOCK_STEP: Obj = Obj {
    what: "lock step",
    id: "lockStep",
    doc: "Holds a lock while `do` runs.",
    fields: &[
        req("lock", Ty::Name, "The lock."),
        opt(
            "count",
            Ty::Int {
                min: 1,
                max: LOCK_LIMIT_MAX,
            },
            "Take this much of a counted lock (default: the whole lock, exclusively).",
        ),
        req("do", Ty::Block, "The steps run under the lock."),
    ],
};

pub(crate) static PROMPT: Obj = Obj {
    what: "prompt step",
    id: "prompt",
    doc: "Stops until someone answers the question.",
    fields: &[req("prompt", Ty::Template, "The question.")],
};

pub(crate) static CYCLE: Obj = Obj {
    what: "cycle step",
    id: "cycle",
    doc: "Repeats `do` a number of times, every period for a while, or as a schedule says; `break` leaves it.",
    fields: &[
        req("cycle", Ty::Obj(&CYCLE_SETTINGS), "How it repeats."),
        req("do", Ty::Block, "The steps repeated."),
    ],
};

pub(crate) static CYCLE_SETTINGS: Obj = Obj {
    what: "cycle settings",
    id: "cycleSettings",
    doc: "Give `times`; or `every` and `for`; or a schedule: one of `periodic`, `ticking`, `continuous`, with `admission` and `limit`.",
    fields: &[
        opt(
            "times",
            Ty::Int {
                min: 1,
                max: CYCLE_TIMES_MAX,
            },
            "Run the steps this many times.",
        ),
        opt("every", Ty::Duration, "Start the steps every period..."),
        opt("for", Ty::Duration, "...until this much time has passed."),
        opt(
            "periodic",
            Ty::Duration,
            "A schedule: start every period counted from local midnight, within `admission`.",
        ),
        opt(
            "ticking",
            Ty::Duration,
            "A schedule: start every period counted from the start of each admission period.",
        ),
        opt(
            "continuous",
            Ty::Duration,
            "A schedule: start again this pause after each run, within `admission`.",
        ),
        opt(
            "admission",
            Ty::List(&Ty::Obj(&ADMISSION)),
            "With a schedule: when starts are admitted, in the workflow's `timeZone` (default: the whole day the cycle began).",
        ),
        opt(
            "limit",
            Ty::Int {
                min: 1,
                max: CYCLE_TIMES_MAX,
            },
            "With a schedule: at most this many runs.",
        ),
    ],
};

pub(crate) static ADMISSION: Obj = Obj {
    what: "admission period",
    id: "admission",
    doc: "Starts admitted from `from` for `duration` on the given days.",
    fields: &[
        opt(
            "weekdays",
            Ty::OneOrList(&Ty::Weekdays),
            "The days it begins on (default: every day).",
        ),
        req("from", Ty::TimeOfDay, "Its start, local time."),
        req("duration", Ty::Duration, "How long it lasts."),
    ],
};

pub(crate) static SLEEP: Obj = Obj {
    what: "sleep step",
    id: "sleep",
    doc: "Waits.",
    fields: &[req("sleep", Ty::Duration, "How long.")],
};

pub(crate) static ADD_ORDER: Obj = Obj {
    what: "addOrder step",
    id: "addOrder",
    doc: "Adds an order to another workflow.",
    fields: &[
        req("addOrder", Ty::Name, "The workflow."),
        opt("args", Ty::Vars, "The new order's variables."),
        opt(
            "wait",
            Ty::Bool,
            "Wait until the added order ends, and fail if it failed (default false).",
        ),
        opt(
            "priority",
            Ty::Int {
                min: -PRIORITY_MAX,
                max: PRIORITY_MAX,
            },
            "The added order's priority: higher first in lock and job queues (default 0).",
        ),
        opt(
            "deleteWhenTerminated",
            Ty::Bool,
            "Remove the added order once it has finished or was cancelled (default: as its workflow says).",
        ),
    ],
};

pub(crate) static POST: Obj = Obj {
    what: "post step",
    id: "post",
    doc: "Posts a notice on a board.",
    fields: &[req("post", Ty::Obj(&POST_SETTINGS), "Where and what.")],
};

pub(crate) static POST_SETTINGS: Obj = Obj {
    what: "notice",
    id: "notice",
    doc: "A notice: a board and a key.",
    fields: &[
        req("board", Ty::Name, "The board."),
        req("key", Ty::Template, "The notice's key, e.g. `$day`."),
    ],
};

pub(crate) static EXPECT: Obj = Obj {
    what: "expect step",
    id: "expect",
    doc: "Waits until the boards have notices with the key (every listed board, or as the expression says); the notices stay.",
    fields: &[req("expect", Ty::Obj(&NOTICES), "Which notices.")],
};

pub(crate) static CONSUME: Obj = Obj {
    what: "consume step",
    id: "consume",
    doc: "Waits for the notices, runs `do`, then deletes them.",
    fields: &[
        req("consume", Ty::Obj(&NOTICES), "Which notices."),
        req(
            "do",
            Ty::Block,
            "The steps run before the notices are deleted.",
        ),
    ],
};

pub(crate) static NOTICES: Obj = Obj {
    what: "notices",
    id: "notices",
    doc: "Notices with one key on one or more boards.",
    fields: &[
        req(
            "boards",
            Ty::NoticeExpr,
            "The boards: a list (each needs the notice), or an expression over board names with `&&`, `||` and parentheses, e.g. `A && (B || C)`.",
        ),
        req("key", Ty::Template, "The notices' key, e.g. `$day`."),
        opt(
            "whenNotAnnounced",
            Ty::Enum(&["wait", "skip", "dontWait"]),
            "When the boards do not have the notices: `wait` (default) until they do; `skip`: go on at once (`consume` skips its block when none of its notices exists); `dontWait`: go on at once (`consume` runs its block, consuming those that exist).",
        ),
    ],
};

pub(crate) static OPTIONS: Obj = Obj {
    what: "options step",
    id: "options",
    doc: "Runs `do` with options; with `stopOnFailure` a failure inside that nothing inside catches stops the order where it failed, resumable there.",
    fields: &[
        req("options", Ty::Obj(&OPTIONS_SETTINGS), "The options."),
        req("do", Ty::Block, "The steps run with the options."),
    ],
};

pub(crate) static OPTIONS_SETTINGS: Obj = Obj {
    what: "options settings",
    id: "optionsSettings",
    doc: "Options of a block.",
    fields: &[opt(
        "stopOnFailure",
        Ty::Bool,
        "Stop a failed order where it failed (locks kept) instead of passing the failure to an outer `catch` or `retry` (default: as the enclosing `options`, else false).",
    )],
};

/// Every instruction written as a mapping, recognised by its first field.
pub(crate) static INSTRUCTIONS: [&Obj; 18] = [
    &RUN, &IF, &FORK, &FORK_LIST, &RETRY, &TRY, &FAIL, &FINISH, &LOCK_STEP, &PROMPT, &CYCLE,
    &SLEEP, &ADD_ORDER, &POST, &EXPECT, &CONSUME, &BREAK, &OPTIONS,
];

pub(crate) static BREAK: Obj = Obj {
    what: "break step",
    id: "break",
    doc: "Leaves the innermost cycle; usually written as the bare word `break`.",
    fields: &[req("break", Ty::NullOr(&NO_SETTINGS), "Nothing.")],
};

pub(crate) static NO_SETTINGS: Obj = Obj {
    what: "settings",
    id: "noSettings",
    doc: "Nothing to set.",
    fields: &[],
};

/// The key that names an instruction or object: the first field of its table.
pub(crate) fn head(obj: &Obj) -> &'static str {
    obj.fields.first().map_or("", |f| f.name)
}
