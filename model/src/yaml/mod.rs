//! The inventory in YAML: workflows, agents, locks, notice boards, schedules and calendars.
//!
//! [`check_inventory`] reads any number of files together (a workflow in one file may use an
//! agent defined in another) and reports **every** problem at once, each with file, line and
//! column; [`parse_inventory`] is the same returning the [`Inventory`] or the diagnostics.
//! The files are read by serde-saphyr into a lenient tree that keeps positions
//! (`node`), then checked here against the vocabulary of `spec`, from which
//! [`json_schema`] is also generated.
//!
//! # Files
//!
//! A file holds one or more YAML documents (separated by `---`). A document is one object or
//! a list of objects. An object is a mapping recognised by its first key: `workflow:`,
//! `agent:`, `lock:`, `board:`, `schedule:`, `calendar:` or `jobResource:` (a schedule also
//! has `workflow:` and `calendar:` fields; when a mapping has several of these keys, the kind
//! that knows most of its keys wins). Names (of workflows, jobs, agents, locks, boards, fork
//! branches) are 1 to 100 bytes of letters, digits, `-`, `_` and `.`, starting with a letter
//! or digit. Variable names (parameters, `args`, `env`, `as`) are letters, digits and `_`, not
//! starting with a digit. Anchors, aliases and merge keys (`<<`) work as in YAML.
//!
//! ```yaml
//! workflow: nightly-etl
//! parameters: { target: { default: prod }, day: {} }   # `day: {}` (or `day:`) is required
//! jobs:
//!   extract: { agent: db, script: "pg_dump app > /tmp/app.sql", timeout: 10m, restartable: true }
//!   load:    { agent: dwh, command: [/usr/bin/load, /tmp/app.sql], env: { TARGET: $target },
//!              returnCodes: { success: [0, 3] } }
//! steps:
//!   - run: extract
//!   - run: load
//! ---
//! agent: db
//! url: wss://db.example.com:4443
//! ---
//! lock: db-maintenance
//! limit: 1
//! ---
//! board: etl-done
//! lifetime: 1d
//! ```
//!
//! # Jobs
//!
//! `agent` (required); exactly one of `script` (run by `/bin/sh -c`) or `command` (a list:
//! program and arguments, run directly); `env` (environment variables; values are templates;
//! a name that changes how a process loads or starts, such as `LD_PRELOAD` or `PATH`, takes a
//! constant only, see [`crate::env`]);
//! `args` (default order variables for the job; values are templates); `timeout` (none by
//! default); `graceTimeout` (SIGTERM to SIGKILL, default 15s); `returnCodes`
//! (`{ success: [0, 3] }` or `{ failure: [1] }`, default success = `[0]`); `restartable`
//! (default false: a job lost with its agent fails the order); `restartBudget` (restarts after
//! a lost process before the order fails, 0..99, default 99; makes the job restartable);
//! `subagentSelection: { selection, subagents: [ { id, priority } ] }` (the job's own choice
//! among its agent cluster's subagents: which may run it, with their priorities for it, and
//! how one is picked; default the agent's); `parallelism` (processes of
//! this job at once on one agent, default 1 as in JS7, at most 100000).
//!
//! # Steps
//!
//! A step is a mapping whose first instruction key says what it is; `break`, `finish`,
//! `fail` and (in the `catch` of a try with retry) `retry` may also be written as a bare word.
//!
//! | step | keys |
//! |---|---|
//! | run a job | `run: job`, `args: { var: template }` |
//! | condition | `if: expression`, `then: [steps]`, `elif: [ { if: expression, then: [steps] } ]`, `else: [steps]` |
//! | parallel branches | `fork: { branch: [steps], other: { do: [steps], result: { name: expression } } }`, `joinIfFailed: false` |
//! | one branch per element | `forkList: $list` or `forkList: { subagentsOf: cluster }`, `as: var`, `do: [steps]`, `result: { name: expression }` (collected into lists on the parent), `childToId`, `childToArguments`, `joinIfFailed: false` |
//! | retry | `retry: { maxTries: 3, delays: [10s, 1m] }`, `do: [steps]` |
//! | try/catch | `try: [steps]`, `catch: [steps]`; with `maxTries: n` or `delays: [durations]`, a bare `retry` in `catch` runs `try` again |
//! | fail | `fail` or `fail: { message: template, returnCode: 0..255, uncatchable: false }` |
//! | finish | `finish` or `finish: { message: template, outcome: succeeded\|failed, values: { name: template } }` |
//! | lock | `lock: name`, `count: n` (omit for exclusive use), `do: [steps]` |
//! | prompt | `prompt: question template` |
//! | cycle | `cycle: { times: 3 }` or `cycle: { every: 10m, for: 1h }` or a schedule `cycle: { ticking: 15m \| periodic: 1h \| continuous: 1m, admission: [ { weekdays: MON-FRI, from: "08:00", duration: 10h } ], limit: n }` (in the workflow's `timeZone`), `do: [steps]` |
//! | break | `break` (leaves the innermost cycle; not across a fork) |
//! | sleep | `sleep: 5m` |
//! | add an order | `addOrder: workflow`, `args: { var: template }`, `wait: false`, `priority: n`, `deleteWhenTerminated: bool` |
//! | notices | `post: { board: b, key: template }`, `expect: { boards: [b], key: template }`, `consume: { boards: [b], key: template }` with `do: [steps]`; `boards` may be a notice expression `"A && (B \|\| C)"` ([`crate::notice_expr`]), and `whenNotAnnounced: wait \| skip \| dontWait` |
//! | options | `options: { stopOnFailure: true }`, `do: [steps]` (an uncaught failure inside stops the order where it failed) |
//!
//! Any step may carry `label: name` (unique in its workflow), which `variable(key, label=name)`
//! reads. `deploy/reference.md` lists every step with its JS7 counterpart.
//!
//! `if` and `forkList` take expressions, `env`, `args`, `default`, `message`, `prompt` and
//! `key` take templates (see [`crate::expr`]). Durations are `90s`, `10m`, `1h30m`, `500ms`,
//! `2d`, or a number of seconds.
//!
//! # Checks
//!
//! YAML syntax; unknown fields (with the nearest known one); wrong types; names defined twice
//! (reported at both places); unknown jobs, agents, locks, boards and workflows; bad names,
//! durations, URLs, expressions and templates (at the offending character where the scalar's
//! text allows); steps after an unconditional `fail`, `finish` or `break`; `break` outside a
//! cycle; a lock `count` above the lock's `limit`; `retry` with `maxTries` below 1; an
//! `addOrder` or schedule that does not pass a parameter the workflow requires, or passes an
//! argument it does not declare ([`crate::order::arguments`]); `allowUndeclared` on a workflow
//! without parameters (a warning); an `env` entry with a protected name ([`crate::env::protected`]) whose value reads variables; an `addOrder`
//! argument with a protected name; every [`Limits`] field; for schedules and calendars, see
//! below. A job that no step runs is a warning.
//!
//! # Agents, locks, boards
//!
//! `agent: id`, `url: wss://host:port` (required; `director:` is another name for it),
//! `backupDirector: wss://host:port` (a director pair: the controller couples with whichever
//! of the two is active), `certificateName` (default: the URL's host), `subagents: [ { id, url, priority, processLimit } ]` (`processLimit` default 64),
//! `selection: round-robin | priority | ring` (default round-robin), `leaseTimeout` (default
//! 10s, at least 500ms). A subagent's `priority` is a whole number (-1000000..1000000,
//! default 0) or a string holding an expression over its live metrics, evaluated by the
//! director at each pick (`priority: "100 - $load * 100 / $cores"`); it may read only the
//! metrics of [`crate::priority::VARIABLES`] (`$processes`, `$clusterProcesses`,
//! `$processLimit`, `$processed`, `$cores`, `$load`, `$memoryFree`, `$memoryTotal` and JS7's
//! names for them), else the YAML error names the subagent. `lock: name`, `limit` (default
//! 1). `board: name`, `lifetime` (default 1d).
//!
//! # Schedules
//!
//! ```yaml
//! schedule: nightly
//! workflow: nightly-etl
//! args: { day: $date }              # templates over $schedule, $date, $time, $scheduledFor
//! timeZone: Europe/Berlin           # IANA name; default UTC
//! cron: "30 2 * * MON-FRI"          # a string or a list
//! times: ["12:00", "18:30:15"]      # fixed times of day (a string or a list)
//! repeat: { every: 15m, from: "07:00", until: "19:00" }
//! calendar: business-days           # only the dates it holds; default every date
//! missed: catch-up                  # catch-up (default) | latest | skip
//! priority: 0                       # -1000000..1000000, higher first
//! paused: false
//! ```
//!
//! A schedule adds an order to `workflow` at each of its fires; it needs at least one of
//! `cron`, `times` and `repeat`, and fires at all of them. `cron` takes 5 fields (minute hour
//! day-of-month month day-of-week) or 6 with seconds first; values, `*`, ranges `a-b`, steps
//! `/n`, lists, `JAN`–`DEC`, `SUN`–`SAT` (0 and 7 are Sunday) and `@daily`, `@hourly`,
//! `@weekly`, `@monthly`, `@yearly` ([`crate::schedule::cron`]). Day of month and day of week
//! combine as in Vixie cron: when either field starts with `*` a date must match both,
//! otherwise either. `times` are `HH:MM` or `HH:MM:SS` (quote them: YAML 1.1 reads `02:30` as
//! a number, though Ordo reads the text as written). `repeat` fires every `every` (whole
//! seconds, 1s to 24h) from `from` (default 00:00) on, before `until` (default: the end of the
//! day), every day. `args` are rendered for each fire; `$date` is the fire's local date
//! (`2026-11-23`), `$time` its wall time (`02:30:00`), `$scheduledFor` its instant in RFC 3339
//! with its offset, `$schedule` the schedule's name. `missed` says what becomes of fires whose
//! instant passed while no order could be added for them (the controller was down): every one
//! adds its order late (`catch-up`), only the latest does (`latest`), or none (`skip`).
//!
//! The fire of `nightly` at 02:30 on 2026-11-23 at UTC offset +01:00 adds the order
//! `#2026-11-23#nightly@02:30:00+01:00`: local date, schedule, wall time and offset, so one
//! `(schedule, instant)` gives one order, with the same id on every controller.
//! `ordo plan preview FILE... --from T --until T` prints the fires of a window, offline.
//!
//! ## Time zones and daylight saving time
//!
//! Wall times are in the schedule's `timeZone`, from the time zone database built into Ordo
//! (the same on every machine of one build). Where the zone's UTC offset changes:
//!
//! | wall time | `times`, and a cron whose minute and hour fields are both values, lists or ranges ("fixed") | `repeat`, and a cron whose minute or hour field starts with `*` ("interval": hourly, every 15 minutes) |
//! |---|---|---|
//! | does not exist (a gap: Berlin, last Sunday in March, 02:00 → 03:00) | fires once, exactly at the end of the gap: `30 2 * * *` fires at 03:00:00+02:00 (seconds zeroed) | does not fire |
//! | exists twice (a fold: Berlin, last Sunday in October, 03:00 → 02:00) | fires once, at its first occurrence (02:30+02:00) | fires at both occurrences (02:30+02:00 and 02:30+01:00) |
//!
//! Fires at one instant collapse into one (02:30 and 03:00 on a spring-forward day are one
//! fire at 03:00). A window `[from, until)` holds the fires at or after `from` and before
//! `until`; a fixed time whose first occurrence lies before `from` does not fire in it, even if
//! its second occurrence is inside.
//!
//! Where this differs from JS7: JS7's documentation says that start times are "calculated for
//! the given time zone" but not what a start time in a skipped or repeated hour does, and its
//! predecessor, JobScheduler 1.x, started a time in the skipped hour an hour early (02:10 at
//! 01:10) and one in the repeated hour twice. Ordo never starts an order before its time has
//! come (the data it works on may not be there yet), so it fires at the first instant the time
//! has passed, the end of the gap; it never starts a fixed time twice (a nightly job run twice
//! does the night's work twice); and it keeps "every 15 minutes" a real 15 minutes, so an
//! interval follows the clock of the zone as it is. JS7's missed orders start as soon as they
//! can (Ordo's `catch-up`, the default); `latest` and `skip` have no JS7 counterpart, for
//! frequent schedules where a backlog of late runs helps nobody. Like JS7's non-working days,
//! a calendar's exclusions win over its inclusions.
//!
//! # Calendars
//!
//! ```yaml
//! calendar: business-days
//! from: 2026-01-01                  # optional: the first and last date it may hold
//! to: 2027-12-31
//! weekdays: MON-FRI                 # a day, a range (may wrap: FRI-MON) or a list of them
//! monthDays: [1, 15, -1]            # 1..31, or -1 (the last day of the month) .. -31
//! dates: [2026-12-31]
//! ranges: [ { from: 2026-07-01, to: 2026-07-31 } ]   # both ends included
//! calendars: [extra-days]           # the dates of other calendars
//! exclude:                          # the same rules; exclusions win
//!   calendars: [holidays-de]        # a holiday list is a calendar of `dates`
//!   dates: [2026-12-24]
//! ```
//!
//! A calendar holds the dates, between `from` and `to`, that match any of its rules (every
//! date when it has none) and none of its `exclude` rules. Calendars may include and exclude
//! each other, at most 16 deep ([`crate::schedule::CALENDAR_DEPTH_MAX`]), never in a cycle.
//!
//! Checks: an unknown time zone (with the nearest known name); cron syntax, at the offending
//! character; a cron that can never fire (`0 0 30 2 *`); bad times of day and dates; a
//! `repeat` whose `until` is not after its `from`; a schedule without `cron`, `times` or
//! `repeat`; unknown workflows and calendars; required parameters not passed in `args`, and
//! undeclared ones passed;
//! `args` that read other variables than the four above or set a protected name; a calendar
//! whose `to` is before its `from`, or a range whose `to` is before its `from`; calendars in a
//! cycle or nested too deep; lists longer than 10 000 items. `ordo check` also warns about a
//! schedule that has no date to fire on in the next year (a calendar whose dates are all past,
//! `0 0 29 2 *` before a leap year).

mod cycle_schedule;
mod diag;
mod labels;
mod node;
mod objects;
mod read;
mod refs;
mod resources;
mod schedule;
mod schema;
mod spec;
mod union;
mod workflow;

pub use diag::{Diagnostic, Severity};
pub use schema::json_schema;
pub use union::Deployed;

use crate::inventory::Inventory;
use crate::schedule::{BundledZones, Zones};
use diag::{Diags, LineIndex, Pos};
use node::{Kind, Node};
use read::{Cx, closest};
use refs::{Defs, Refs};

/// The deepest nesting [`Limits::depth_max`] may allow, whatever it is set to: parsing
/// recurses once per level.
pub const DEPTH_MAX_CAP: usize = 128;

/// One input file: a name for messages (usually its path) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// Limits on what one check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest file, in bytes; checked before parsing.
    pub file_bytes_max: usize,
    /// Most files in one check.
    pub files_max: usize,
    /// Deepest nesting of YAML lists and mappings (at most [`DEPTH_MAX_CAP`]).
    pub depth_max: usize,
    /// Most YAML nodes in one file, counting those an alias repeats.
    pub nodes_per_file_max: usize,
    /// Most nodes that aliases may repeat in one file.
    pub alias_nodes_max: usize,
    /// Most scalar bytes in one file after alias expansion.
    pub expanded_bytes_per_file_max: usize,
    /// Most YAML documents in one file.
    pub documents_per_file_max: usize,
    /// Most steps in one workflow, nested ones included.
    pub steps_per_workflow_max: usize,
    /// Most jobs in one workflow.
    pub jobs_per_workflow_max: usize,
    /// Longest name, in bytes (names are never longer than [`crate::ids::NAME_BYTES_MAX`]).
    pub name_bytes_max: usize,
    /// Most diagnostics reported; the rest are counted.
    pub diagnostics_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            file_bytes_max: 1024 * 1024,
            files_max: 10_000,
            depth_max: 32,
            nodes_per_file_max: 100_000,
            alias_nodes_max: 10_000,
            expanded_bytes_per_file_max: 4 * 1024 * 1024,
            documents_per_file_max: 1_000,
            steps_per_workflow_max: 1_000,
            jobs_per_workflow_max: 1_000,
            name_bytes_max: crate::ids::NAME_BYTES_MAX,
            diagnostics_max: 1_000,
        }
    }
}

/// The result of a check: the inventory when there is no error, and every diagnostic
/// (warnings included) ordered by file, line and column.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub inventory: Option<Inventory>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }
}

/// Reads and checks the files together: the inventory, or every diagnostic (warnings
/// included) when there is at least one error.
pub fn parse_inventory(
    files: &[SourceFile],
    limits: &Limits,
) -> Result<Inventory, Vec<Diagnostic>> {
    let checked = check_inventory(files, limits);
    match checked.inventory {
        Some(inventory) => Ok(inventory),
        None => Err(checked.diagnostics),
    }
}

/// The diagnostic for a file larger than [`Limits::file_bytes_max`], for callers that check
/// the size before reading the file.
pub fn file_too_large(file: &str, bytes: u64, limits: &Limits) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: 1,
        col: 1,
        severity: Severity::Error,
        message: format!(
            "the file is {bytes} bytes long; at most {} bytes are allowed (limit file_bytes_max)",
            limits.file_bytes_max
        ),
    }
}

/// What a check may use beyond the files.
#[derive(Clone, Copy)]
pub struct CheckOptions<'z> {
    /// Where schedules' time zones are looked up.
    pub zones: &'z dyn Zones,
    /// The current instant, for the checks that depend on it: a schedule with no date to
    /// fire on in the next year is a warning. `None` skips them.
    pub now: Option<jiff::Timestamp>,
}

impl Default for CheckOptions<'_> {
    fn default() -> Self {
        CheckOptions {
            zones: &BundledZones,
            now: None,
        }
    }
}

/// Reads and checks the files together, reporting every problem; time zones come from the
/// bundled database and nothing depends on the current instant.
pub fn check_inventory(files: &[SourceFile], limits: &Limits) -> Checked {
    check_inventory_with(files, limits, &CheckOptions::default())
}

/// [`check_inventory`] with a choice of time zones and the current instant.
pub fn check_inventory_with(
    files: &[SourceFile],
    limits: &Limits,
    options: &CheckOptions<'_>,
) -> Checked {
    check_files(files, limits, options, None)
}

/// [`check_inventory_with`] on the union of the files and what is deployed: an object the
/// files define replaces the deployed one of its kind and name, the others count as defined
/// (unless `deployed.removed` names them), and the references of the deployed objects that
/// stay are checked against the definitions in the files, reported there. The inventory
/// returned holds the files' objects only: what the deployment sends.
pub fn check_against_deployed(
    files: &[SourceFile],
    deployed: &Deployed<'_>,
    limits: &Limits,
    options: &CheckOptions<'_>,
) -> Checked {
    check_files(files, limits, options, Some(deployed))
}

fn check_files(
    files: &[SourceFile],
    limits: &Limits,
    options: &CheckOptions<'_>,
    deployed: Option<&Deployed<'_>>,
) -> Checked {
    let mut diags = Diags::new(limits.diagnostics_max);
    let mut inventory = Inventory::default();
    let mut defs = Defs::default();
    let mut refs = Refs::default();
    let mut complete = true;
    for (i, file) in files.iter().enumerate() {
        if i == limits.files_max {
            diags.push(
                &file.name,
                Pos::START,
                Severity::Error,
                format!(
                    "more than {} files in one check (limit files_max)",
                    limits.files_max
                ),
            );
            complete = false;
            break;
        }
        if file.text.len() > limits.file_bytes_max {
            let d = file_too_large(&file.name, file.text.len() as u64, limits);
            diags.push(&d.file, Pos::START, d.severity, d.message);
            complete = false;
            continue;
        }
        let text = file.text.strip_prefix('\u{feff}').unwrap_or(&file.text);
        let (docs, errors) = node::load(text, limits);
        for e in errors {
            diags.push(&file.name, e.pos, Severity::Error, e.message);
        }
        let mut cx = Cx {
            file: &file.name,
            lines: LineIndex::new(text),
            limits,
            diags: &mut diags,
        };
        let mut r = Reading {
            inventory: &mut inventory,
            defs: &mut defs,
            refs: &mut refs,
            zones: options.zones,
        };
        for doc in &docs {
            complete &= document(&mut cx, doc, &mut r);
        }
    }
    refs.resources.apply(&mut inventory, &mut diags);
    if let Some(deployed) = deployed {
        let mut removed = deployed.removed.clone();
        removed.extend(inventory.removed.clone());
        let deployed = Deployed {
            removed: &removed,
            ..*deployed
        };
        union::seed(&deployed, &mut defs, &mut refs);
    }
    defs.check_duplicates(&mut diags);
    defs.check_refs(&refs, &mut diags);
    let now = options.now.filter(|_| !diags.has_errors());
    schedule::check_plan(&inventory, &defs, options.zones, now, complete, &mut diags);
    if !complete && !diags.has_errors() {
        // Every path that drops part of the input reports why; this keeps it that way.
        diags.push(
            files.first().map_or("", |f| f.name.as_str()),
            Pos::START,
            Severity::Error,
            "the inventory could not be built".to_owned(),
        );
    }
    let ok = complete && !diags.has_errors();
    let order: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    Checked {
        inventory: ok.then_some(inventory),
        diagnostics: diags.finish(&order),
    }
}

/// Where the objects read go.
struct Reading<'r> {
    inventory: &'r mut Inventory,
    defs: &'r mut Defs,
    refs: &'r mut Refs,
    zones: &'r dyn Zones,
}

/// `workflow:, agent:, lock:, board:, schedule:, calendar: or jobResource:`
fn heads() -> String {
    let words: Vec<String> = spec::OBJECTS
        .iter()
        .map(|o| format!("{}:", spec::head(o)))
        .collect();
    match words.split_last() {
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Reads one document: an object or a list of objects. False if something could not be read.
fn document(cx: &mut Cx<'_>, doc: &Node, r: &mut Reading<'_>) -> bool {
    match &doc.kind {
        Kind::Null => true,
        Kind::Map(_) => object(cx, doc, r),
        Kind::Seq(items) => {
            let mut ok = true;
            for item in items {
                ok &= object(cx, item, r);
            }
            ok
        }
        Kind::Scalar(_) => {
            cx.err(
                doc.pos,
                format!(
                    "a document holds an object ({}) or a list of them, not {}",
                    heads(),
                    doc.describe()
                ),
            );
            false
        }
    }
}

/// The kind of object a mapping with these keys is: of the objects whose head key it has, the
/// one that knows most of its keys (a schedule has `workflow:` and `calendar:` fields too),
/// the earliest head key on a tie.
fn recognise(keys: &[&str]) -> Option<&'static spec::Obj> {
    let mut best: Option<(&'static spec::Obj, usize)> = None;
    for k in keys {
        for o in spec::OBJECTS.iter().filter(|o| spec::head(o) == *k) {
            let known = keys.iter().filter(|k| o.field(k).is_some()).count();
            if best.is_none_or(|(_, b)| known > b) {
                best = Some((o, known));
            }
        }
    }
    best.map(|(o, _)| o)
}

fn object(cx: &mut Cx<'_>, node: &Node, r: &mut Reading<'_>) -> bool {
    let Kind::Map(entries) = &node.kind else {
        cx.err(
            node.pos,
            format!(
                "an inventory object is a mapping starting with {}, not {}",
                heads(),
                node.describe()
            ),
        );
        return false;
    };
    let keys: Vec<&str> = entries
        .iter()
        .filter_map(|(k, _)| k.scalar().map(|s| s.text.as_str()))
        .collect();
    let Some(obj) = recognise(&keys) else {
        let heads_iter = spec::OBJECTS.iter().map(|o| spec::head(o));
        let hint = keys
            .iter()
            .find_map(|k| closest(k, heads_iter.clone()))
            .map(|c| format!("; did you mean `{c}:`?"))
            .unwrap_or_default();
        cx.err(
            node.pos,
            format!("not an inventory object: it needs a key {}{hint}", heads()),
        );
        return false;
    };
    let Some(f) = cx.fields(node, obj) else {
        return false;
    };
    let (inventory, defs, refs) = (&mut *r.inventory, &mut *r.defs, &mut *r.refs);
    match spec::head(obj) {
        "workflow" => {
            if let Some(n) = f.get("workflow")
                && let Some(s) = n.scalar()
                && crate::ids::WorkflowName::new(s.text.clone()).is_ok()
            {
                defs.workflow(
                    cx.file,
                    &s.text,
                    n.pos,
                    required_parameters(&f),
                    declared_parameters(&f),
                );
            }
            let settings = workflow::settings(cx, &f);
            let mut jobs = Default::default();
            workflow::workflow(cx, &f, refs, &mut jobs).and_then(|w| {
                let settings = settings?;
                if settings != Default::default() {
                    inventory.workflow_settings.insert(w.name.clone(), settings);
                }
                if !jobs.is_empty() {
                    inventory.job_settings.insert(w.name.clone(), jobs);
                }
                inventory.workflows.push(w);
                Some(())
            })
        }
        "agent" => objects::agent(cx, &f, defs).map(|(a, settings, backup, priorities)| {
            if settings != Default::default() {
                inventory.agent_settings.insert(a.id.clone(), settings);
            }
            if let Some(backup) = backup {
                inventory.backup_directors.insert(a.id.clone(), backup);
            }
            if !priorities.is_empty() {
                inventory
                    .subagent_priorities
                    .insert(a.id.clone(), priorities);
            }
            inventory.agents.push(a);
        }),
        "lock" => objects::lock(cx, &f, defs).map(|l| inventory.locks.push(l)),
        "board" => objects::board(cx, &f, defs).map(|b| inventory.boards.push(b)),
        "schedule" => {
            schedule::schedule(cx, &f, defs, refs, r.zones).map(|s| inventory.schedules.push(s))
        }
        "calendar" => schedule::calendar(cx, &f, defs, refs).map(|c| inventory.calendars.push(c)),
        "jobResource" => refs.resources.read(cx, &f),
        "removed" => union::removed(cx, &f).map(|r| inventory.removed.extend(r)),
        _ => None,
    }
    .is_some()
}

/// The only arguments a workflow takes, read leniently: its parameters' names when it has
/// some and does not say `allowUndeclared: true`; `None`: any.
fn declared_parameters(f: &read::Fields<'_>) -> Option<Vec<String>> {
    let allowed = f
        .get("allowUndeclared")
        .and_then(|n| n.scalar())
        .is_some_and(|s| s.text == "true");
    let Some(Node {
        kind: Kind::Map(entries),
        ..
    }) = f.get("parameters")
    else {
        return None;
    };
    let names: Vec<String> = entries
        .iter()
        .filter_map(|(k, _)| k.scalar().map(|s| s.text.clone()))
        .collect();
    (!allowed && !names.is_empty()).then_some(names)
}

/// The parameters of a workflow that have no default, read leniently (their errors are
/// reported when the workflow is read).
fn required_parameters(f: &read::Fields<'_>) -> Vec<String> {
    let Some(Node {
        kind: Kind::Map(entries),
        ..
    }) = f.get("parameters")
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|(_, v)| match &v.kind {
            Kind::Null => true,
            // A parameter with a default, or a `final` one, is not required of callers.
            Kind::Map(fields) => !fields.iter().any(|(k, _)| {
                k.scalar()
                    .is_some_and(|s| s.text == "default" || s.text == "final")
            }),
            _ => false,
        })
        .filter_map(|(k, _)| k.scalar().map(|s| s.text.clone()))
        .collect()
}
