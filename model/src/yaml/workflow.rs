//! Workflows: parameters, jobs and steps.

use super::cycle_schedule;
use super::diag::Pos;
use super::node::{Kind, Node};
use super::read::{Cx, Fields, closest};
use super::refs::{RefKind, Refs};
use super::schedule;
use super::spec::{self, Obj};
use crate::expr::Template;
use crate::ids::{AgentId, BoardName, BranchId, JobName, LockName, WorkflowName};
use crate::inventory::{
    Block, CycleRepeat, Executable, ForkListOver, Instruction, Job, JobSelection, JobSettings,
    JobSettingsMap, JobSubagent, Parameter, RESTART_BUDGET_MAX, ReturnCodes, WhenNotAnnounced,
    Workflow,
};
use crate::notice_expr::{self, NOTICE_EXPR_BOARDS_MAX, NoticeExpr};
use crate::order::{OrderOptions, ParameterRule, ParameterType, WorkflowSettings};
use crate::schedule::BundledZones;
use crate::time::DurationMs;
use std::collections::{BTreeMap, BTreeSet};

/// The state of one workflow while its steps are read.
struct Wf<'r> {
    name: String,
    jobs: BTreeSet<String>,
    used_jobs: BTreeSet<String>,
    steps: usize,
    too_many_reported: bool,
    refs: &'r mut Refs,
    /// Locks held around the step being read: name, where, and the fork depth they were
    /// taken at (a lock asked for again at a deeper depth is asked by a child order).
    held: Vec<(String, Pos, u32)>,
    /// How many fork branches enclose the step being read.
    forks: u32,
    /// Whether the step being read is in the `catch` of a try with retry (in this order:
    /// a fork branch is another order).
    retry_catch: bool,
    /// The workflow's `timeZone` for scheduled cycles; `None` when it is not known.
    time_zone: Option<String>,
    /// The steps' labels.
    labels: super::labels::Labels,
}

/// Reads a workflow object (its fields already known to be those of [`spec::WORKFLOW`]).
/// The settings of its jobs that have any go to `job_settings`.
pub(crate) fn workflow(
    cx: &mut Cx<'_>,
    f: &Fields<'_>,
    refs: &mut Refs,
    job_settings: &mut JobSettingsMap,
) -> Option<Workflow> {
    let name_node = f.get("workflow")?;
    let name = cx.name(name_node, "`workflow`", WorkflowName::new);
    let parameters = match f.get("parameters") {
        Some(n) => parameters(cx, n),
        None => Some(BTreeMap::new()),
    };
    let mut jobs_ok = true;
    let mut jobs = BTreeMap::new();
    let mut job_pos = BTreeMap::new();
    let mut job_keys = BTreeSet::new();
    if let Some(n) = f.get("jobs") {
        match cx.entries(n, "`jobs`") {
            Some(entries) => {
                if entries.len() > cx.limits.jobs_per_workflow_max {
                    cx.err(
                        n.pos,
                        format!(
                            "{} jobs in one workflow; at most {} are allowed (limit jobs_per_workflow_max)",
                            entries.len(),
                            cx.limits.jobs_per_workflow_max
                        ),
                    );
                    jobs_ok = false;
                }
                for e in entries.iter().take(cx.limits.jobs_per_workflow_max) {
                    let job_name = cx.name(e.key_node, "job name", JobName::new);
                    let job = job(cx, &e.key, e.value, refs);
                    if let (Some(w), Some(n)) =
                        (name_node.scalar(), cx_fields_get(e.value, "jobResources"))
                    {
                        jobs_ok &= refs.resources.uses(cx, &w.text, &e.key, n).is_some();
                    }
                    job_keys.insert(e.key.clone());
                    if job_name.is_some() {
                        job_pos.insert(e.key.clone(), e.key_node.pos);
                    }
                    match (job_name, job) {
                        (Some(n), Some((j, settings))) => {
                            if settings != JobSettings::default() {
                                job_settings.insert(n.clone(), settings);
                            }
                            jobs.insert(n, j);
                        }
                        _ => jobs_ok = false,
                    }
                }
            }
            None => jobs_ok = false,
        }
    }
    let time_zone = match f.get("timeZone") {
        None => Some("UTC".to_owned()),
        Some(n) => schedule::time_zone(cx, n, &BundledZones),
    };
    let mut wf = Wf {
        name: name_node
            .scalar()
            .map_or_else(|| "?".to_owned(), |s| s.text.clone()),
        jobs: job_keys,
        used_jobs: BTreeSet::new(),
        steps: 0,
        too_many_reported: false,
        refs,
        held: Vec::new(),
        forks: 0,
        retry_catch: false,
        time_zone,
        labels: Default::default(),
    };
    let steps = f.get("steps").and_then(|n| {
        let b = block(cx, &mut wf, n, "`steps`", false)?;
        if b.is_empty() {
            cx.err(n.pos, "a workflow needs at least one step");
        }
        Some(b)
    });
    // With broken steps the jobs they use are not all known: no warnings then.
    for (job, pos) in job_pos.iter().filter(|_| steps.is_some()) {
        if !wf.used_jobs.contains(job) {
            cx.warn(
                *pos,
                format!("job `{job}` is never run in workflow `{}`", wf.name),
            );
        }
    }
    let mut workflow = Workflow {
        name: name?,
        parameters: parameters?,
        jobs: if jobs_ok { jobs } else { return None },
        steps: steps?,
    };
    let sources: Vec<&Node> = ["steps", "jobs"].iter().filter_map(|k| f.get(k)).collect();
    wf.labels.resolve(cx, &mut workflow, &sources);
    Some(workflow)
}

/// A workflow's settings beside its definition ([`crate::order::options`]).
pub(crate) fn settings(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<WorkflowSettings> {
    let delete_when_terminated = opt_or(f.get("deleteWhenTerminated"), false, |n| {
        cx.bool(n, "`deleteWhenTerminated`")
    })?;
    let allow_undeclared = opt_or(f.get("allowUndeclared"), false, |n| {
        cx.bool(n, "`allowUndeclared`")
    })?;
    if allow_undeclared
        && f.get("parameters").is_none_or(|n| match &n.kind {
            Kind::Map(entries) => entries.is_empty(),
            _ => false,
        })
        && let Some(pos) = f.key_pos("allowUndeclared")
    {
        cx.warn(
            pos,
            "`allowUndeclared` changes nothing here: a workflow without `parameters` takes any argument",
        );
    }
    Some(WorkflowSettings {
        delete_when_terminated,
        parameters: f.get("parameters").map(parameter_rules).unwrap_or_default(),
        allow_undeclared,
    })
}

/// The types and `final` expressions of the parameters, read leniently: their errors are
/// reported where the parameters are read ([`parameters`]).
fn parameter_rules(node: &Node) -> BTreeMap<String, ParameterRule> {
    let Kind::Map(entries) = &node.kind else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let (Some(name), Kind::Map(fields)) = (k.scalar(), &v.kind) else {
            continue;
        };
        let field = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k.scalar().is_some_and(|s| s.text == key))
                .and_then(|(_, v)| v.scalar())
                .map(|s| s.text.clone())
        };
        let rule = ParameterRule {
            kind: field("type").and_then(|t| ParameterType::from_word(&t)),
            final_value: field("final").and_then(|t| crate::expr::parse(&t).ok()),
        };
        if rule != ParameterRule::default() {
            out.insert(name.text.clone(), rule);
        }
    }
    out
}

fn parameters(cx: &mut Cx<'_>, node: &Node) -> Option<BTreeMap<String, Parameter>> {
    let entries = cx.entries(node, "`parameters`")?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for e in entries {
        ok &= cx.var_name(&e.key, e.key_node.pos, "parameter name");
        let default = match &e.value.kind {
            Kind::Null => Some(None),
            _ => cx
                .fields_in(e.value, &spec::PARAMETER, &format!("parameter `{}`", e.key))
                .and_then(|f| {
                    let mut ok = true;
                    if let Some(t) = f.get("type") {
                        let word = cx.text(t, "`type`");
                        if let Some(word) = word
                            && ParameterType::from_word(&word).is_none()
                        {
                            cx.err(
                                t.pos,
                                format!(
                                    "`type` is one of string, number, boolean, list, map, not {word:?}"
                                ),
                            );
                            ok = false;
                        }
                    }
                    if let Some(fin) = f.get("final") {
                        ok &= cx.expr(fin, "`final`").is_some();
                        if let Some(d) = f.get("default") {
                            cx.err(
                                d.pos,
                                "a `final` parameter has no `default`: its value is `final`",
                            );
                            ok = false;
                        }
                    }
                    let default = match f.get("default") {
                        Some(d) => cx.template(d, "`default`").map(Some),
                        None => Some(None),
                    };
                    if ok { default } else { None }
                }),
        };
        match default {
            Some(default) => {
                out.insert(e.key, Parameter { default });
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn job(cx: &mut Cx<'_>, name: &str, node: &Node, refs: &mut Refs) -> Option<(Job, JobSettings)> {
    let f = cx.fields_in(node, &spec::JOB, &format!("job `{name}`"))?;
    let mut ok = true;
    let agent = f
        .get("agent")
        .and_then(|n| cx.name(n, "`agent`", AgentId::new));
    if let (Some(a), Some(n)) = (&agent, f.get("agent")) {
        refs.add(cx.file, RefKind::Agent, a.as_str(), n.pos);
    }
    let executable = match (f.get("script"), f.get("command")) {
        (Some(s), None) => cx.text(s, "`script`").and_then(|text| {
            if text.trim().is_empty() {
                cx.err(s.pos, "`script` is empty");
                None
            } else {
                Some(Executable::Script(text))
            }
        }),
        (None, Some(c)) => command(cx, c).map(Executable::Command),
        (Some(_), Some(c)) => {
            cx.err(
                f.key_pos("command").unwrap_or(c.pos),
                format!("job `{name}` has either `script` or `command`, not both"),
            );
            None
        }
        (None, None) => {
            cx.err(f.pos, format!("job `{name}` needs `script` or `command`"));
            None
        }
    };
    let env = opt_or(f.get("env"), BTreeMap::new(), |n| {
        vars(cx, n, "env", VarsOf::Env)
    });
    let args = opt_or(f.get("args"), BTreeMap::new(), |n| {
        vars(cx, n, "args", VarsOf::Args)
    });
    let timeout = match f.get("timeout") {
        None => Some(None),
        Some(n) => positive_duration(cx, n, "`timeout`").map(Some),
    };
    let grace_timeout = opt_or(
        f.get("graceTimeout"),
        DurationMs(spec::GRACE_TIMEOUT_DEFAULT_MS),
        |n| cx.duration(n, "`graceTimeout`"),
    );
    let return_codes = opt_or(f.get("returnCodes"), ReturnCodes::default(), |n| {
        return_codes(cx, n)
    });
    let restart_budget = match f.get("restartBudget") {
        None => Some(None),
        Some(n) => cx
            .int(n, "`restartBudget`", 0, RESTART_BUDGET_MAX.into())
            .and_then(|v| u32::try_from(v).ok())
            .map(Some),
    };
    // A budget of restarts makes the job restartable; `restartable: false` beside one is a
    // contradiction to point out.
    let restartable = match (f.get("restartable"), restart_budget) {
        (None, Some(Some(b))) => Some(b > 0),
        (Some(n), Some(Some(b))) if b > 0 && cx.bool(n, "`restartable`") == Some(false) => {
            cx.err(
                n.pos,
                format!("job `{name}` has a `restartBudget` of {b} but is not `restartable`"),
            );
            None
        }
        (n, _) => opt_or(n, false, |n| cx.bool(n, "`restartable`")),
    };
    let subagent_selection = match f.get("subagentSelection") {
        None => Some(None),
        Some(n) => job_selection(cx, name, n).map(Some),
    };
    let parallelism = opt_or(f.get("parallelism"), spec::PARALLELISM_DEFAULT, |n| {
        cx.int(n, "`parallelism`", 1, spec::PARALLELISM_MAX)
            .and_then(|v| u32::try_from(v).ok())
    });
    ok &= executable.is_some();
    if !ok {
        return None;
    }
    let settings = JobSettings {
        restart_budget: restart_budget?,
        subagent_selection: subagent_selection?,
    };
    let job = Job {
        agent: agent?,
        executable: executable?,
        env: env?,
        args: args?,
        timeout: timeout?,
        grace_timeout: grace_timeout?,
        return_codes: return_codes?,
        restartable: restartable?,
        parallelism: parallelism?,
    };
    Some((job, settings))
}

/// A job's `subagentSelection`: `selection` (default: the agent's) and `subagents` (default:
/// all of the agent's), each with its own `priority` (default: the agent object's).
fn job_selection(cx: &mut Cx<'_>, job: &str, node: &Node) -> Option<JobSelection> {
    let f = cx.fields_in(node, &spec::JOB_SELECTION, &format!("job `{job}`"))?;
    let selection = match f.get("selection") {
        None => Some(None),
        Some(n) => super::objects::selection(cx, n).map(Some),
    };
    let mut subagents: Vec<JobSubagent> = Vec::new();
    let mut ok = true;
    if let Some(n) = f.get("subagents") {
        for item in cx.list(n, "`subagents`", "a list of subagents")? {
            let Some(sf) = cx.fields(item, &spec::JOB_SUBAGENT) else {
                ok = false;
                continue;
            };
            let id = sf.get("id").and_then(|n| cx.name(n, "`id`", AgentId::new));
            let priority = match sf.get("priority") {
                None => Some(None),
                Some(n) => cx
                    .int(n, "`priority`", -1_000_000, 1_000_000)
                    .and_then(|v| i32::try_from(v).ok())
                    .map(Some),
            };
            match (id, priority) {
                (Some(id), Some(priority)) => {
                    if subagents.iter().any(|s| s.id == id) {
                        cx.err(item.pos, format!("subagent `{id}` is listed twice"));
                        ok = false;
                    } else {
                        subagents.push(JobSubagent { id, priority });
                    }
                }
                _ => ok = false,
            }
        }
    }
    let selection = selection?;
    ok.then_some(JobSelection {
        selection,
        subagents,
    })
}

/// The value of field `name` of a mapping node, read leniently (the mapping's own reader
/// reports what is wrong with it).
fn cx_fields_get<'n>(node: &'n Node, name: &str) -> Option<&'n Node> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.scalar().is_some_and(|s| s.text == name))
        .map(|(_, v)| v)
}

/// `Some(default)` when the field is absent, else what `read` makes of it.
fn opt_or<T>(node: Option<&Node>, default: T, read: impl FnOnce(&Node) -> Option<T>) -> Option<T> {
    match node {
        None => Some(default),
        Some(n) => read(n),
    }
}

fn positive_duration(cx: &mut Cx<'_>, node: &Node, label: &str) -> Option<DurationMs> {
    let d = cx.duration(node, label)?;
    if d.0 == 0 {
        cx.err(node.pos, format!("{label} must be longer than 0s"));
        return None;
    }
    Some(d)
}

fn command(cx: &mut Cx<'_>, node: &Node) -> Option<Vec<String>> {
    let items = cx.list(node, "`command`", "a list of a program and its arguments")?;
    if items.is_empty() {
        cx.err(node.pos, "`command` needs at least the program to run");
        return None;
    }
    let argv: Vec<Option<String>> = items
        .iter()
        .map(|n| cx.text(n, "an argument of `command`"))
        .collect();
    let argv: Option<Vec<String>> = argv.into_iter().collect();
    let argv = argv?;
    if argv[0].is_empty() {
        cx.err(items[0].pos, "the program of `command` is empty");
        return None;
    }
    Some(argv)
}

/// What a mapping of names to templates sets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarsOf {
    /// A job's environment: a protected name (`crate::env::protected`) takes only a constant.
    Env,
    /// Variables of the order itself (job and step `args`).
    Args,
    /// The arguments of an order `addOrder` adds: no protected name, as at any order's door.
    NewOrder,
}

/// A mapping of variable names (or environment variable names) to templates.
pub(crate) fn vars(
    cx: &mut Cx<'_>,
    node: &Node,
    label: &str,
    of: VarsOf,
) -> Option<BTreeMap<String, Template>> {
    let entries = cx.entries(node, &format!("`{label}`"))?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for e in entries {
        let kind = if of == VarsOf::Env {
            "environment variable name"
        } else {
            "variable name"
        };
        ok &= cx.var_name(&e.key, e.key_node.pos, kind);
        let why = crate::env::protected(&e.key);
        if let (VarsOf::NewOrder, Some(why)) = (of, why) {
            cx.err(
                e.key_node.pos,
                format!(
                    "an order may not be given the variable {}: {} {why}, so it never comes from order input",
                    e.key, e.key
                ),
            );
            ok = false;
        }
        match cx.template(e.value, &format!("`{label}.{}`", e.key)) {
            Some(t) => {
                if let (VarsOf::Env, Some(why)) = (of, why)
                    && t.uses_variables()
                {
                    cx.err(
                        e.value.pos,
                        format!(
                            "`{label}.{k}` takes its value from variables, which orders can set; {k} {why}, so it may only be a constant (write the value itself, without `$`)",
                            k = e.key
                        ),
                    );
                    ok = false;
                }
                out.insert(e.key, t);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn return_codes(cx: &mut Cx<'_>, node: &Node) -> Option<ReturnCodes> {
    let f = cx.fields_in(node, &spec::RETURN_CODES, "`returnCodes`")?;
    let codes = |cx: &mut Cx<'_>, n: &Node, label: &str| -> Option<Vec<i32>> {
        let items = cx.list(n, label, "a list of return codes")?;
        if items.is_empty() {
            cx.err(n.pos, format!("{label} needs at least one return code"));
            return None;
        }
        let codes: Vec<Option<i32>> = items
            .iter()
            .map(|i| {
                cx.int(i, "a return code", 0, 255)
                    .and_then(|v| i32::try_from(v).ok())
            })
            .collect();
        codes.into_iter().collect()
    };
    match (f.get("success"), f.get("failure")) {
        (Some(s), None) => codes(cx, s, "`success`").map(ReturnCodes::Success),
        (None, Some(b)) => codes(cx, b, "`failure`").map(ReturnCodes::Failure),
        (Some(_), Some(b)) => {
            cx.err(
                f.key_pos("failure").unwrap_or(b.pos),
                "`returnCodes` has either `success` or `failure`, not both",
            );
            None
        }
        (None, None) => {
            cx.err(f.pos, "`returnCodes` needs `success` or `failure`");
            None
        }
    }
}

// ---- steps ---------------------------------------------------------------------------------

/// What a step does to the rest of its block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continues,
    /// `fail`, `finish` or `break`: the steps after it in the same block never run.
    Ends(&'static str),
}

fn block(
    cx: &mut Cx<'_>,
    wf: &mut Wf<'_>,
    node: &Node,
    label: &str,
    in_cycle: bool,
) -> Option<Block> {
    let items = cx.list(node, label, "a list of steps")?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    let mut ended: Option<(&'static str, Pos)> = None;
    for item in items {
        if let Some((what, at)) = ended.take() {
            cx.err(
                item.pos,
                format!("unreachable step: the `{what}` at {at} always ends this block"),
            );
        }
        wf.steps += 1;
        if wf.steps > cx.limits.steps_per_workflow_max {
            if !wf.too_many_reported {
                wf.too_many_reported = true;
                cx.err(
                    item.pos,
                    format!(
                        "workflow `{}` has more than {} steps (limit steps_per_workflow_max)",
                        wf.name, cx.limits.steps_per_workflow_max
                    ),
                );
            }
            return None;
        }
        let (step, flow) = step(cx, wf, item, in_cycle);
        if let Flow::Ends(what) = flow {
            ended = Some((what, item.pos));
        }
        match step {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The instruction a step mapping describes, recognised by its first field.
fn step(
    cx: &mut Cx<'_>,
    wf: &mut Wf<'_>,
    node: &Node,
    in_cycle: bool,
) -> (Option<Instruction>, Flow) {
    let unlabelled = wf.labels.take(cx, node, wf.steps);
    let node = unlabelled.as_ref().unwrap_or(node);
    let obj = match &node.kind {
        Kind::Scalar(s) => {
            return match s.text.as_str() {
                "break" => (brk(cx, node, in_cycle), Flow::Ends("break")),
                "retry" => {
                    if !wf.retry_catch {
                        cx.err(
                            node.pos,
                            "`retry` alone tries again from the `catch` of a `try` with `maxTries` or `delays`, and is allowed only there (for a block that is tried again, write `retry: { maxTries: n }` with `do`)",
                        );
                        return (None, Flow::Ends("retry"));
                    }
                    (Some(Instruction::RetryAgain), Flow::Ends("retry"))
                }
                "finish" => (
                    Some(Instruction::Finish { message: None }),
                    Flow::Ends("finish"),
                ),
                "fail" => (
                    Some(Instruction::Fail {
                        message: None,
                        return_code: None,
                        uncatchable: false,
                    }),
                    Flow::Ends("fail"),
                ),
                other => {
                    let hint =
                        match closest(other, spec::INSTRUCTIONS.iter().map(|o| spec::head(o))) {
                            Some(c) if spec::BARE_INSTRUCTIONS.contains(&c) => {
                                format!("; did you mean `{c}`?")
                            }
                            Some(c) => format!("; did you mean `{c}: ...`?"),
                            None => String::new(),
                        };
                    cx.err(
                        node.pos,
                        format!(
                            "unknown step {other:?}: only `break`, `finish`, `fail` and `retry` are written alone{hint}"
                        ),
                    );
                    (None, Flow::Continues)
                }
            };
        }
        Kind::Map(entries) => {
            let mut heads: Vec<(&'static Obj, Pos)> = entries
                .iter()
                .filter_map(|(k, _)| {
                    let key = k.scalar()?.text.as_str();
                    spec::INSTRUCTIONS
                        .iter()
                        .find(|o| spec::head(o) == key)
                        .map(|o| (*o, k.pos))
                })
                .collect();
            // A repeated key is reported by `fields`; count each instruction once.
            let mut seen: Vec<&'static Obj> = Vec::new();
            heads.retain(|(o, _)| {
                let first = !seen.iter().any(|s| std::ptr::eq(*s, *o));
                seen.push(o);
                first
            });
            match heads.as_slice() {
                [(obj, _)] => *obj,
                [] => {
                    let keys: Vec<&str> = entries
                        .iter()
                        .filter_map(|(k, _)| k.scalar().map(|s| s.text.as_str()))
                        .collect();
                    let hint = keys
                        .iter()
                        .find_map(|k| closest(k, spec::INSTRUCTIONS.iter().map(|o| spec::head(o))))
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    cx.err(
                        node.pos,
                        format!("a step must start with an instruction such as `run`, `if`, `fork`, `retry` or `sleep`{hint}"),
                    );
                    return (None, Flow::Continues);
                }
                [(a, _), (b, at), ..] => {
                    cx.err(
                        *at,
                        format!(
                            "one step holds both `{}` and `{}`; write them as two steps",
                            spec::head(a),
                            spec::head(b)
                        ),
                    );
                    return (None, Flow::Continues);
                }
            }
        }
        _ => {
            cx.err(
                node.pos,
                format!(
                    "a step must be a mapping like `run: job`, not {}",
                    node.describe()
                ),
            );
            return (None, Flow::Continues);
        }
    };
    let Some(f) = cx.fields(node, obj) else {
        return (None, Flow::Continues);
    };
    let head = spec::head(obj);
    let flow = match head {
        "fail" | "finish" | "break" => Flow::Ends(head),
        _ => Flow::Continues,
    };
    (instruction(cx, wf, node, head, &f, in_cycle), flow)
}

fn instruction(
    cx: &mut Cx<'_>,
    wf: &mut Wf<'_>,
    node: &Node,
    head: &str,
    f: &Fields<'_>,
    in_cycle: bool,
) -> Option<Instruction> {
    let get = |name: &str| f.get(name);
    match head {
        "run" => run(cx, wf, f),
        "if" => if_(cx, wf, f, in_cycle),
        "fork" => fork(cx, wf, f),
        "forkList" => fork_list(cx, wf, f),
        "retry" => retry(cx, wf, f, in_cycle),
        "try" => {
            let max_tries = match get("maxTries") {
                None => Some(None),
                Some(m) => cx
                    .int(m, "`maxTries`", 1, spec::MAX_TRIES_MAX)
                    .and_then(|v| u32::try_from(v).ok())
                    .map(Some),
            };
            let delays = match get("delays") {
                None => Some(None),
                Some(d) => cx
                    .list(d, "`delays`", "a list of durations")
                    .and_then(|items| {
                        let ds: Vec<Option<DurationMs>> =
                            items.iter().map(|i| cx.duration(i, "`delays`")).collect();
                        ds.into_iter().collect::<Option<Vec<_>>>().map(Some)
                    }),
            };
            let retries = get("maxTries").is_some() || get("delays").is_some();
            let steps = get("try").and_then(|n| block(cx, wf, n, "`try`", in_cycle));
            let outer_catch = wf.retry_catch;
            wf.retry_catch = retries || outer_catch;
            let catch = get("catch").and_then(|n| block(cx, wf, n, "`catch`", in_cycle));
            wf.retry_catch = outer_catch;
            let (steps, catch, max_tries, delays) = (steps?, catch?, max_tries?, delays?);
            if !retries {
                return Some(Instruction::Try { steps, catch });
            }
            Some(Instruction::TryRetry {
                steps,
                catch,
                max_tries,
                delays: delays.unwrap_or_default(),
            })
        }
        "fail" => fail(cx, f),
        "finish" => finish(cx, f),
        "lock" => lock(cx, wf, f, in_cycle),
        "prompt" => get("prompt")
            .and_then(|n| cx.template(n, "`prompt`"))
            .map(|question| Instruction::Prompt { question }),
        "cycle" => cycle(cx, wf, f),
        "sleep" => get("sleep")
            .and_then(|n| cx.duration(n, "`sleep`"))
            .map(|duration| Instruction::Sleep { duration }),
        "addOrder" => add_order(cx, wf, f),
        "post" => post(cx, wf, f),
        "expect" => get("expect")
            .and_then(|n| notices(cx, wf, n, "`expect`"))
            .map(|n| match n.all_of() {
                Some(boards) => Instruction::ExpectNotices { boards, key: n.key },
                None => Instruction::ExpectNoticesWhen {
                    notices: n.expr,
                    key: n.key,
                    when_not_announced: n.when,
                },
            }),
        "consume" => {
            let notices = get("consume").and_then(|n| notices(cx, wf, n, "`consume`"));
            let steps = get("do").and_then(|n| block(cx, wf, n, "`do`", in_cycle));
            let (n, steps) = (notices?, steps?);
            Some(match n.all_of() {
                Some(boards) => Instruction::ConsumeNotices {
                    boards,
                    key: n.key,
                    steps,
                },
                None => Instruction::ConsumeNoticesWhen {
                    notices: n.expr,
                    key: n.key,
                    when_not_announced: n.when,
                    steps,
                },
            })
        }
        "options" => {
            let settings = get("options")
                .and_then(|n| cx.fields_in(n, &spec::OPTIONS_SETTINGS, "`options`"))
                .and_then(|sf| match sf.get("stopOnFailure") {
                    Some(b) => cx.bool(b, "`stopOnFailure`").map(Some),
                    None => Some(None),
                });
            let steps = get("do").and_then(|n| block(cx, wf, n, "`do`", in_cycle));
            Some(Instruction::Options {
                stop_on_failure: settings?,
                steps: steps?,
            })
        }
        "break" => match get("break").map(|n| &n.kind) {
            Some(Kind::Null) => brk(cx, node, in_cycle),
            Some(_) => get("break").and_then(|n| {
                cx.fields_in(n, &spec::NO_SETTINGS, "`break`")?;
                brk(cx, node, in_cycle)
            }),
            None => None,
        },
        _ => None,
    }
}

fn brk(cx: &mut Cx<'_>, node: &Node, in_cycle: bool) -> Option<Instruction> {
    if in_cycle {
        Some(Instruction::Break)
    } else {
        cx.err(
            node.pos,
            "`break` outside a cycle: it leaves the innermost `cycle`, and there is none here",
        );
        None
    }
}

fn run(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let n = f.get("run")?;
    let job = cx.name(n, "`run`", JobName::new);
    let args = opt_or(f.get("args"), BTreeMap::new(), |a| {
        vars(cx, a, "args", VarsOf::Args)
    });
    let text = n.scalar()?.text.as_str();
    if wf.jobs.contains(text) {
        wf.used_jobs.insert(text.to_owned());
    } else if job.is_some() {
        let hint = suggestion_or_nothing(text, wf.jobs.iter().map(String::as_str));
        cx.err(
            n.pos,
            format!("unknown job `{text}` in workflow `{}`{hint}", wf.name),
        );
        return None;
    }
    Some(Instruction::Run {
        job: job?,
        args: args?,
    })
}

/// "; did you mean `x`?" or nothing.
fn suggestion_or_nothing<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

fn if_(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>, in_cycle: bool) -> Option<Instruction> {
    let mut ok = true;
    let mut branches = Vec::new();
    let cond = f.get("if").and_then(|n| cx.expr(n, "`if`"));
    let then = f
        .get("then")
        .and_then(|n| block(cx, wf, n, "`then`", in_cycle));
    match (cond, then) {
        (Some(c), Some(t)) => branches.push((c, t)),
        _ => ok = false,
    }
    if let Some(elifs) = f.get("elif") {
        match cx.list(elifs, "`elif`", "a list of `if`/`then` mappings") {
            Some(items) => {
                for item in items {
                    let Some(ef) = cx.fields(item, &spec::ELIF) else {
                        ok = false;
                        continue;
                    };
                    let cond = ef.get("if").and_then(|n| cx.expr(n, "`if`"));
                    let then = ef
                        .get("then")
                        .and_then(|n| block(cx, wf, n, "`then`", in_cycle));
                    match (cond, then) {
                        (Some(c), Some(t)) => branches.push((c, t)),
                        _ => ok = false,
                    }
                }
            }
            None => ok = false,
        }
    }
    let otherwise = opt_or(f.get("else"), Vec::new(), |n| {
        block(cx, wf, n, "`else`", in_cycle)
    });
    if !ok {
        return None;
    }
    Some(Instruction::If {
        branches,
        otherwise: otherwise?,
    })
}

fn join_if_failed(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<bool> {
    opt_or(f.get("joinIfFailed"), false, |n| {
        cx.bool(n, "`joinIfFailed`")
    })
}

fn fork(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let node = f.get("fork")?;
    let entries = cx.entries(node, "`fork`");
    let join = join_if_failed(cx, f);
    let entries = entries?;
    if entries.is_empty() {
        cx.err(node.pos, "`fork` needs at least one branch");
        return None;
    }
    let mut ok = true;
    let mut branches = Vec::new();
    for e in entries {
        let id = cx.name(e.key_node, "branch name", BranchId::new);
        // A branch is a child order: a `break` inside cannot leave a cycle outside.
        wf.forks += 1;
        let outer_catch = std::mem::replace(&mut wf.retry_catch, false);
        let steps = match &e.value.kind {
            Kind::Map(_) => fork_branch(cx, wf, &e.key, e.value),
            _ => block(cx, wf, e.value, &format!("branch `{}`", e.key), false),
        };
        wf.retry_catch = outer_catch;
        wf.forks -= 1;
        match (id, steps) {
            (Some(id), Some(steps)) => branches.push((id, steps)),
            _ => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(Instruction::Fork {
        branches,
        join_if_failed: join?,
    })
}

/// A fork branch written `{ do: [...], result: {...} }`: its steps, closed by the step
/// its `result` stands for.
fn fork_branch(cx: &mut Cx<'_>, wf: &mut Wf<'_>, name: &str, node: &Node) -> Option<Block> {
    let label = format!("branch `{name}`");
    let bf = cx.fields_in(node, &spec::FORK_BRANCH, &label)?;
    let steps = bf.get("do").and_then(|n| block(cx, wf, n, &label, false));
    let result = opt_or(bf.get("result"), BTreeMap::new(), |n| results(cx, n));
    with_results(wf, steps?, result?)
}

/// A `result:` mapping: variable names to expressions.
fn results(cx: &mut Cx<'_>, node: &Node) -> Option<BTreeMap<String, crate::expr::Expr>> {
    let entries = cx.entries(node, "`result`")?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for e in entries {
        ok &= cx.var_name(&e.key, e.key_node.pos, "variable name");
        match cx.expr(e.value, &format!("`result.{}`", e.key)) {
            Some(x) => {
                out.insert(e.key, x);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `steps` closed by the `finish` with values that a non-empty `result:` stands for
/// (`order::forklist`); counted as a step read, so that labels keep their positions.
fn with_results(
    wf: &mut Wf<'_>,
    mut steps: Block,
    result: BTreeMap<String, crate::expr::Expr>,
) -> Option<Block> {
    if !result.is_empty() {
        wf.steps += 1;
        steps.push(crate::order::forklist::result_step(result));
    }
    Some(steps)
}

fn fork_list(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let over = f.get("forkList").and_then(|n| match &n.kind {
        Kind::Map(_) => {
            let sf = cx.fields_in(n, &spec::SUBAGENTS_OF, "`forkList`")?;
            let a = sf.get("subagentsOf")?;
            let id = cx.name(a, "`subagentsOf`", AgentId::new)?;
            wf.refs.add(cx.file, RefKind::Cluster, id.as_str(), a.pos);
            Some(ForkListOver::Subagents(id))
        }
        _ => cx.expr(n, "`forkList`").map(ForkListOver::List),
    });
    let var = f.get("as").and_then(|n| {
        let text = cx.text(n, "`as`")?;
        cx.var_name(&text, n.pos, "`as`").then_some(text)
    });
    wf.forks += 1;
    let outer_catch = std::mem::replace(&mut wf.retry_catch, false);
    let steps = f.get("do").and_then(|n| block(cx, wf, n, "`do`", false));
    let result = opt_or(f.get("result"), BTreeMap::new(), |n| results(cx, n));
    let steps = match (steps, result) {
        (Some(s), Some(r)) => with_results(wf, s, r),
        _ => None,
    };
    wf.retry_catch = outer_catch;
    wf.forks -= 1;
    let join = join_if_failed(cx, f);
    let child_to_id = opt_or(f.get("childToId"), None, |n| {
        cx.expr(n, "`childToId`").map(Some)
    });
    let child_to_arguments = opt_or(f.get("childToArguments"), None, |n| {
        cx.expr(n, "`childToArguments`").map(Some)
    });
    let over = match (over, child_to_id?, child_to_arguments?) {
        (Some(ForkListOver::List(list)), child_to_id, child_to_arguments)
            if child_to_id.is_some() || child_to_arguments.is_some() =>
        {
            Some(ForkListOver::ListWith {
                list,
                child_to_id,
                child_to_arguments,
            })
        }
        (Some(ForkListOver::Subagents(_)), Some(_), _)
        | (Some(ForkListOver::Subagents(_)), _, Some(_)) => {
            cx.err(
                f.pos,
                "`childToId` and `childToArguments` go with a list; a fork-list over subagents names each child by its subagent",
            );
            None
        }
        (over, _, _) => over,
    };
    Some(Instruction::ForkList {
        over: over?,
        var: var?,
        steps: steps?,
        join_if_failed: join?,
    })
}

fn retry(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>, in_cycle: bool) -> Option<Instruction> {
    let settings = f.get("retry").and_then(|n| {
        let sf = cx.fields_in(n, &spec::RETRY_SETTINGS, "`retry`")?;
        let max_tries = sf.get("maxTries").and_then(|m| {
            cx.int(m, "`maxTries`", 1, spec::MAX_TRIES_MAX)
                .and_then(|v| u32::try_from(v).ok())
        });
        let delays = opt_or(sf.get("delays"), Vec::new(), |d| {
            let items = cx.list(d, "`delays`", "a list of durations")?;
            let ds: Vec<Option<DurationMs>> =
                items.iter().map(|i| cx.duration(i, "`delays`")).collect();
            ds.into_iter().collect()
        });
        Some((max_tries?, delays?))
    });
    let steps = f.get("do").and_then(|n| block(cx, wf, n, "`do`", in_cycle));
    let (max_tries, delays) = settings?;
    Some(Instruction::Retry {
        max_tries,
        delays,
        steps: steps?,
    })
}

fn fail(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let n = f.get("fail")?;
    if matches!(n.kind, Kind::Null) {
        return Some(Instruction::Fail {
            message: None,
            return_code: None,
            uncatchable: false,
        });
    }
    let sf = cx.fields_in(n, &spec::FAIL_SETTINGS, "`fail`")?;
    let message = match sf.get("message") {
        None => Some(None),
        Some(m) => cx.template(m, "`message`").map(Some),
    };
    let return_code = match sf.get("returnCode") {
        None => Some(None),
        Some(r) => cx
            .int(r, "`returnCode`", 0, 255)
            .and_then(|v| i32::try_from(v).ok())
            .map(Some),
    };
    let uncatchable = opt_or(sf.get("uncatchable"), false, |u| {
        cx.bool(u, "`uncatchable`")
    });
    Some(Instruction::Fail {
        message: message?,
        return_code: return_code?,
        uncatchable: uncatchable?,
    })
}

fn finish(cx: &mut Cx<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let n = f.get("finish")?;
    if matches!(n.kind, Kind::Null) {
        return Some(Instruction::Finish { message: None });
    }
    let sf = cx.fields_in(n, &spec::FINISH_SETTINGS, "`finish`")?;
    let message = match sf.get("message") {
        None => Some(None),
        Some(m) => cx.template(m, "`message`").map(Some),
    };
    let failed = match sf.get("outcome") {
        None => Some(None),
        Some(o) => match cx.text(o, "`outcome`").as_deref() {
            Some("succeeded") => Some(Some(false)),
            Some("failed") => Some(Some(true)),
            Some(other) => {
                cx.err(
                    o.pos,
                    format!("`outcome` must be succeeded or failed, not {other:?}"),
                );
                None
            }
            None => None,
        },
    };
    let values = match sf.get("values") {
        None => Some(None),
        Some(v) => vars(cx, v, "values", VarsOf::Args).map(Some),
    };
    let (message, failed, values) = (message?, failed?, values?);
    if failed.is_none() && values.is_none() {
        return Some(Instruction::Finish { message });
    }
    Some(Instruction::FinishWith {
        failed: failed.unwrap_or(false),
        message,
        values: values.unwrap_or_default(),
    })
}

fn lock(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>, in_cycle: bool) -> Option<Instruction> {
    let n = f.get("lock")?;
    let name = cx.name(n, "`lock`", LockName::new);
    let count = match f.get("count") {
        None => Some(None),
        Some(c) => cx
            .int(c, "`count`", 1, spec::LOCK_LIMIT_MAX)
            .and_then(|v| u32::try_from(v).ok())
            .map(Some),
    };
    if let (Some(name), Some(count)) = (&name, &count) {
        wf.refs.add_lock(cx.file, name.as_str(), n.pos, *count);
    }
    // A lock asked for inside its own block can never be granted: the order (or, in a fork
    // branch, its parent, which waits for the child) holds it until the block is left.
    if let Some(name) = &name {
        if let Some((_, at, depth)) = wf.held.iter().find(|(h, _, _)| h == name.as_str()) {
            let why = if *depth == wf.forks {
                format!("the order holds lock `{name}` already (taken at {at})")
            } else {
                format!(
                    "a child order asks for lock `{name}`, which its parent holds (taken at {at}) until the child has ended"
                )
            };
            cx.err(n.pos, format!("{why}; the lock can never be granted"));
        }
        wf.held.push((name.to_string(), n.pos, wf.forks));
    }
    let steps = f.get("do").and_then(|d| block(cx, wf, d, "`do`", in_cycle));
    if name.is_some() {
        wf.held.pop();
    }
    Some(Instruction::Lock {
        lock: name?,
        count: count?,
        steps: steps?,
    })
}

fn cycle(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let time_zone = wf.time_zone.clone();
    let repeat = f.get("cycle").and_then(|n| {
        let sf = cx.fields_in(n, &spec::CYCLE_SETTINGS, "`cycle`")?;
        if cycle_schedule::is_schedule(&sf) {
            return cycle_schedule::schedule(cx, n, &sf, &time_zone?).map(CycleRepeat::Schedule);
        }
        match (sf.get("times"), sf.get("every"), sf.get("for")) {
            (Some(t), None, None) => cx
                .int(t, "`times`", 1, spec::CYCLE_TIMES_MAX)
                .and_then(|v| u32::try_from(v).ok())
                .map(CycleRepeat::Times),
            (None, Some(e), Some(p)) => {
                let every = positive_duration(cx, e, "`every`");
                let for_ = positive_duration(cx, p, "`for`");
                Some(CycleRepeat::Every {
                    every: every?,
                    for_: for_?,
                })
            }
            (None, Some(_), None) | (None, None, Some(_)) => {
                cx.err(n.pos, "a cycle with a period needs both `every` and `for`");
                None
            }
            (Some(_), _, _) if sf.get("every").is_some() || sf.get("for").is_some() => {
                cx.err(
                    n.pos,
                    "a cycle repeats either `times` times or `every` period `for` a while, not both",
                );
                None
            }
            _ => {
                cx.err(n.pos, "a cycle needs `times`, or `every` and `for`");
                None
            }
        }
    });
    let steps = f.get("do").and_then(|n| block(cx, wf, n, "`do`", true));
    Some(Instruction::Cycle {
        repeat: repeat?,
        steps: steps?,
    })
}

fn add_order(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let n = f.get("addOrder")?;
    let workflow = cx.name(n, "`addOrder`", WorkflowName::new);
    let args = opt_or(f.get("args"), BTreeMap::new(), |a| {
        vars(cx, a, "args", VarsOf::NewOrder)
    });
    if let (Some(w), Some(args)) = (&workflow, &args) {
        let names = args.keys().cloned().collect();
        wf.refs.add_order(cx.file, w.as_str(), n.pos, names);
    }
    let wait = opt_or(f.get("wait"), false, |w| cx.bool(w, "`wait`"));
    let priority = opt_or(f.get("priority"), 0, |n| {
        cx.int(n, "`priority`", -spec::PRIORITY_MAX, spec::PRIORITY_MAX)
            .and_then(|v| i32::try_from(v).ok())
    });
    let delete_when_terminated = match f.get("deleteWhenTerminated") {
        None => Some(None),
        Some(n) => cx.bool(n, "`deleteWhenTerminated`").map(Some),
    };
    let options = OrderOptions {
        priority: priority?,
        delete_when_terminated: delete_when_terminated?,
    };
    if options.is_default() {
        return Some(Instruction::AddOrder {
            workflow: workflow?,
            args: args?,
            wait: wait?,
        });
    }
    Some(Instruction::AddOrderWithOptions {
        workflow: workflow?,
        args: args?,
        wait: wait?,
        options,
    })
}

fn post(cx: &mut Cx<'_>, wf: &mut Wf<'_>, f: &Fields<'_>) -> Option<Instruction> {
    let n = f.get("post")?;
    let pf = cx.fields_in(n, &spec::POST_SETTINGS, "`post`")?;
    let board = pf.get("board").and_then(|b| {
        let name = cx.name(b, "`board`", BoardName::new)?;
        wf.refs.add(cx.file, RefKind::Board, name.as_str(), b.pos);
        Some(name)
    });
    let key = pf.get("key").and_then(|k| cx.template(k, "`key`"));
    Some(Instruction::PostNotice {
        board: board?,
        key: key?,
    })
}

/// The notices of an `expect` or `consume`: boards as a list or an expression, the key,
/// and what to do when they are not there.
struct Notices {
    expr: NoticeExpr,
    key: Template,
    when: WhenNotAnnounced,
}

impl Notices {
    /// The boards when the plain instruction says it all: every board needed, each named
    /// once, and `wait`.
    fn all_of(&self) -> Option<Vec<BoardName>> {
        let boards = self.expr.as_all_of()?;
        (self.when == WhenNotAnnounced::Wait && boards.len() == self.expr.boards().len())
            .then_some(boards)
    }
}

fn notices(cx: &mut Cx<'_>, wf: &mut Wf<'_>, node: &Node, label: &str) -> Option<Notices> {
    let nf = cx.fields_in(node, &spec::NOTICES, label)?;
    let expr = nf.get("boards").and_then(|b| {
        if let Some(text) = b.scalar().map(|s| s.text.clone()) {
            return match notice_expr::parse(&text) {
                Ok(e) => {
                    for name in e.boards() {
                        wf.refs.add(cx.file, RefKind::Board, name.as_str(), b.pos);
                    }
                    Some(e)
                }
                Err(e) => {
                    let pos = cx.pos_in_scalar(b, &text, e.offset);
                    cx.err(pos, format!("`boards`: {}", e.message));
                    None
                }
            };
        }
        let items = cx.list(
            b,
            "`boards`",
            "a list of board names or a notice expression",
        )?;
        if items.is_empty() {
            cx.err(b.pos, format!("{label} needs at least one board"));
            return None;
        }
        if items.len() > NOTICE_EXPR_BOARDS_MAX {
            cx.err(
                b.pos,
                format!(
                    "{} boards; at most {NOTICE_EXPR_BOARDS_MAX} are allowed",
                    items.len()
                ),
            );
            return None;
        }
        let mut names = Vec::new();
        let mut ok = true;
        for item in items {
            match cx.name(item, "board name", BoardName::new) {
                Some(name) => {
                    wf.refs
                        .add(cx.file, RefKind::Board, name.as_str(), item.pos);
                    if names.contains(&name) {
                        cx.err(item.pos, format!("board `{name}` is listed twice"));
                        ok = false;
                    }
                    names.push(name);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let mut parts: Vec<NoticeExpr> = names.into_iter().map(NoticeExpr::Board).collect();
        Some(if parts.len() == 1 {
            parts.remove(0)
        } else {
            NoticeExpr::And(parts)
        })
    });
    let key = nf.get("key").and_then(|k| cx.template(k, "`key`"));
    let when = match nf.get("whenNotAnnounced") {
        None => Some(WhenNotAnnounced::Wait),
        Some(w) => match w.scalar().map(|s| s.text.as_str()) {
            Some("wait") => Some(WhenNotAnnounced::Wait),
            Some("skip") => Some(WhenNotAnnounced::Skip),
            Some("dontWait") => Some(WhenNotAnnounced::DontWait),
            _ => {
                cx.err(
                    w.pos,
                    format!(
                        "`whenNotAnnounced` must be wait, skip or dontWait, not {}",
                        w.describe()
                    ),
                );
                None
            }
        },
    };
    Some(Notices {
        expr: expr?,
        key: key?,
        when: when?,
    })
}

#[cfg(test)]
mod tests {
    use crate::ids::{AgentId, JobName, WorkflowName};
    use crate::inventory::{JobSelection, JobSettings, JobSubagent, Selection};

    const YAML: &str = "
workflow: w
jobs:
  plain: { agent: a, script: 'true' }
  budgeted: { agent: a, script: 'true', restartBudget: 3 }
  picky:
    agent: a
    script: 'true'
    restartable: true
    subagentSelection:
      selection: priority
      subagents: [ { id: s1, priority: 10 }, { id: s2 } ]
steps: [ { run: plain }, { run: budgeted }, { run: picky } ]
---
agent: a
url: wss://127.0.0.1:4444
";

    /// `restartBudget` and `subagentSelection` go beside the workflow, only for the jobs
    /// that have them; a budget makes its job restartable.
    #[test]
    fn job_settings_are_kept_beside_the_workflow() {
        let inv = crate::yaml::parse_inventory(
            &[crate::yaml::SourceFile::new("w.yaml", YAML)],
            &crate::yaml::Limits::default(),
        )
        .unwrap();
        let name = |s: &str| JobName::new(s).unwrap();
        let w = &inv.workflows[0];
        assert!(w.jobs[&name("budgeted")].restartable);
        assert!(!w.jobs[&name("plain")].restartable);
        let jobs = &inv.job_settings[&WorkflowName::new("w").unwrap()];
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(jobs[&name("budgeted")].restarts_max(), 3);
        let sub = |id: &str, priority| JobSubagent {
            id: AgentId::new(id).unwrap(),
            priority,
        };
        assert_eq!(
            jobs[&name("picky")],
            JobSettings {
                restart_budget: None,
                subagent_selection: Some(JobSelection {
                    selection: Some(Selection::Priority),
                    subagents: vec![sub("s1", Some(10)), sub("s2", None)],
                }),
            }
        );
        assert_eq!(
            jobs[&name("picky")].restarts_max(),
            crate::inventory::RESTART_BUDGET_MAX
        );

        // Deployed once they are journaled; deployed again unchanged, nothing; without them,
        // an empty map clears them.
        let mut world = crate::order::World::new(crate::order::Side::Controller);
        let events = crate::order::deploy(&world, &inv);
        assert!(
            events
                .iter()
                .any(|e| e.to_string().contains("JobSettings w"))
        );
        for e in &events {
            world.apply(e).unwrap();
        }
        assert_eq!(
            world
                .job_settings(&w.name, &name("budgeted"))
                .restart_budget,
            Some(3)
        );
        assert!(crate::order::deploy(&world, &inv).is_empty());
        let mut bare = inv.clone();
        bare.job_settings.clear();
        let cleared = crate::order::deploy(&world, &bare);
        assert_eq!(cleared.len(), 1, "{cleared:?}");
        world.apply(&cleared[0]).unwrap();
        assert!(world.extras.jobs.is_empty());
    }
}
