//! Golden tests of the order state machine, driven by data.
//!
//! Each file in `tests/golden/cases/` is one case: YAML with
//! - `inventory`: the inventory as Ordo's YAML (several documents allowed), and
//! - `script`: the inputs, in order, each one of
//!   - `add: { id, workflow?, vars?, at?, priority?, deleteWhenTerminated? }` (workflow
//!     defaults to the first one; `at` is a duration after the start of the run),
//!   - `done: { order, rc?, signal?, values? }` (the order's job ends by itself; rc 0 by
//!     default),
//!   - `withdraw: <order>` (the agent withdraws the order's journaled job start: it was never
//!     spawned; an agent does this when a cancel or suspend mark comes before a job worker
//!     took the job),
//!   - `time: 10s` (advance the clock, visiting every timer instant on the way),
//!   - `plan: { id, schedule, missed, late, at }`: the order of a planned instant of
//!     `schedule` (`at` after the start, as `add`), added as the daily plan adds it, with its
//!     `missed:` policy (`catch-up`, `latest`, `skip`) and the plan's `late` duration,
//!   - `stop: <agent>`, `start: <agent>` (the agent is down in between: time passes without
//!     it; it starts again from its journal),
//!   - `crash: <agent>` (the agent dies with its processes and restarts from its journal),
//!     `crash: controller` (the controller restarts from its journal),
//!   - `disconnect: <agent>`, `connect: <agent>` (the link between controller and agent),
//!   - `cancel: { id, kill? }`, `suspend: { id, kill? }` (`kill`: `term` or `kill`),
//!     `resume: { id, position?, vars? }`, `answer: { id, vars? }`, `go: <id>`,
//!     `remove: <id>`, `post: { board, key }`.
//!
//! Agents `a1` and `a2` are always deployed.
//!
//! Variable values are numbers, `true`/`false`, lists written `[a, b]`, maps written as JSON
//! objects (`'{"a": [1]}'`), or text.
//!
//! The output — every event as the side that made it journaled it, then the final state —
//! is compared with the snapshot `tests/golden/snapshots/golden__<case>.snap`. Every run
//! also checks that each side is at its fixpoint after each input, that the controller's
//! copy of an agent's order equals the agent's, and that every journal replays (through
//! postcard) to the live state.

use ordo_model::ids::{AgentId, BoardName, OrderId, ScheduleName, WorkflowName};
use ordo_model::order::{Command, Exit, Kill, OrderOptions};
use ordo_model::position::Position;
use ordo_model::schedule::Missed;
use ordo_model::testkit::sim::Sim;
use ordo_model::time::{DurationMs, TimeMs};
use ordo_model::value::{Value, Vars};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    inventory: String,
    script: Vec<Input>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum Input {
    Add(AddArgs),
    Plan(PlanArgs),
    Stop(String),
    Start(String),
    Done(DoneArgs),
    Withdraw(String),
    Time(String),
    Crash(String),
    Disconnect(String),
    Connect(String),
    Cancel(StopArgs),
    Suspend(StopArgs),
    Resume(ResumeArgs),
    Answer(AnswerArgs),
    Go(String),
    Remove(String),
    Post(PostArgs),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddArgs {
    id: String,
    workflow: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    at: Option<String>,
    priority: Option<i32>,
    delete_when_terminated: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanArgs {
    id: String,
    schedule: String,
    missed: String,
    late: String,
    at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DoneArgs {
    order: String,
    rc: Option<i32>,
    signal: Option<i32>,
    #[serde(default)]
    values: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopArgs {
    id: String,
    kill: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeArgs {
    id: String,
    position: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerArgs {
    id: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostArgs {
    board: String,
    key: String,
}

fn value(text: &str) -> Value {
    let t = text.trim();
    if t.starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(t)
    {
        return v;
    }
    if let Ok(n) = t.parse::<f64>() {
        return Value::Number(n);
    }
    match t {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if inner.trim().is_empty() {
            return Value::List(Vec::new());
        }
        return Value::List(inner.split(',').map(value).collect());
    }
    Value::String(t.to_owned())
}

fn vars(map: &BTreeMap<String, String>) -> Vars {
    map.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

fn kill(k: &Option<String>) -> Result<Option<Kill>, String> {
    match k.as_deref() {
        None => Ok(None),
        Some("term") => Ok(Some(Kill::Term)),
        Some("kill") => Ok(Some(Kill::Kill)),
        Some(other) => Err(format!("kill must be term or kill, not {other:?}")),
    }
}

fn duration(s: &str) -> Result<DurationMs, String> {
    DurationMs::parse(s).map_err(|e| format!("{s:?}: {e}"))
}

fn order_id(s: &str) -> Result<OrderId, String> {
    OrderId::new(s).map_err(|e| format!("order id {s:?} {e}"))
}

/// Agents every case has.
const AGENTS: &str = "\
- { agent: a1, url: \"wss://a1.example:4443\" }
- { agent: a2, url: \"wss://a2.example:4443\" }
";

/// Runs one case and returns its output.
fn run_case(name: &str, text: &str) -> Result<String, String> {
    let case: Case = serde_saphyr::from_str(text).map_err(|e| format!("{name}: {e}"))?;
    let inventory = parse_inventory(
        &[
            SourceFile::new("agents", AGENTS),
            SourceFile::new(format!("{name}/inventory"), case.inventory.clone()),
        ],
        &Limits::default(),
    )
    .map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        format!("{name}: bad inventory:\n{}", lines.join("\n"))
    })?;
    let first_workflow = inventory
        .workflows
        .first()
        .map(|w| w.name.clone())
        .ok_or_else(|| format!("{name}: the inventory has no workflow"))?;
    let mut sim = Sim::new(&inventory);
    if let Err(e) = run_script(name, &case, &first_workflow, &mut sim) {
        return Err(format!("{e}\nthe log so far:\n{}", sim.log));
    }
    sim.check_replay();
    Ok(format!("{}\n{}", sim.log, sim.summary()))
}

fn run_script(
    name: &str,
    case: &Case,
    first_workflow: &WorkflowName,
    sim: &mut Sim,
) -> Result<(), String> {
    for (i, input) in case.script.iter().enumerate() {
        let step = |e: String| format!("{name}: script step {}: {e}", i + 1);
        sim.note(&format!("> {}", describe(input)));
        match input {
            Input::Add(a) => {
                let workflow = match &a.workflow {
                    Some(w) => WorkflowName::new(w.as_str()).map_err(|e| step(e.to_string()))?,
                    None => first_workflow.clone(),
                };
                let scheduled_for = match &a.at {
                    Some(at) => Some(TimeMs(0).plus(duration(at).map_err(step)?)),
                    None => None,
                };
                let _ = sim.command(Command::AddWithOptions {
                    id: order_id(&a.id).map_err(step)?,
                    workflow,
                    vars: vars(&a.vars),
                    scheduled_for,
                    options: OrderOptions {
                        priority: a.priority.unwrap_or(0),
                        delete_when_terminated: a.delete_when_terminated,
                    },
                });
            }
            Input::Plan(p) => {
                let missed = match p.missed.as_str() {
                    "catch-up" => Missed::CatchUp,
                    "latest" => Missed::Latest,
                    "skip" => Missed::Skip,
                    other => return Err(step(format!("missed: {other:?}"))),
                };
                let schedule =
                    ScheduleName::new(p.schedule.as_str()).map_err(|e| step(e.to_string()))?;
                let add = Command::Add {
                    id: order_id(&p.id).map_err(step)?,
                    workflow: first_workflow.clone(),
                    vars: Vars::new(),
                    scheduled_for: Some(TimeMs(0).plus(duration(&p.at).map_err(step)?)),
                };
                let late = duration(&p.late).map_err(step)?;
                let _ = sim.add_planned(add, &schedule, missed, late.0);
            }
            Input::Stop(who) | Input::Start(who) => {
                let agent = AgentId::new(who.as_str()).map_err(|e| step(e.to_string()))?;
                if !sim.agents.contains_key(&agent) {
                    return Err(step(format!("no agent {who}")));
                }
                if matches!(input, Input::Stop(_)) {
                    sim.stop_agent(&agent);
                } else {
                    sim.start_agent(&agent);
                }
            }
            Input::Done(d) => {
                let exit = match (d.rc, d.signal) {
                    (_, Some(s)) => Exit::Signal(s),
                    (rc, None) => Exit::Code(rc.unwrap_or(0)),
                };
                sim.finish_job(&order_id(&d.order).map_err(step)?, exit, vars(&d.values))
                    .map_err(step)?;
            }
            Input::Withdraw(id) => sim
                .withdraw_job(&order_id(id).map_err(step)?)
                .map_err(step)?,
            Input::Time(d) => sim.advance(duration(d).map_err(step)?),
            Input::Crash(who) if who == "controller" => sim.restart_controller(),
            Input::Crash(who) => {
                let agent = AgentId::new(who.as_str()).map_err(|e| step(e.to_string()))?;
                if !sim.agents.contains_key(&agent) {
                    return Err(step(format!("no agent {who}")));
                }
                sim.crash_agent(&agent);
            }
            Input::Disconnect(who) | Input::Connect(who) => {
                let agent = AgentId::new(who.as_str()).map_err(|e| step(e.to_string()))?;
                sim.set_connected(&agent, matches!(input, Input::Connect(_)));
            }
            Input::Cancel(s) => {
                let _ = sim.command(Command::Cancel {
                    id: order_id(&s.id).map_err(step)?,
                    kill: kill(&s.kill).map_err(step)?,
                });
            }
            Input::Suspend(s) => {
                let _ = sim.command(Command::Suspend {
                    id: order_id(&s.id).map_err(step)?,
                    kill: kill(&s.kill).map_err(step)?,
                });
            }
            Input::Resume(r) => {
                let position = match &r.position {
                    Some(p) => Some(p.parse::<Position>().map_err(|e| step(e.to_string()))?),
                    None => None,
                };
                let _ = sim.command(Command::Resume {
                    id: order_id(&r.id).map_err(step)?,
                    position,
                    vars: vars(&r.vars),
                });
            }
            Input::Answer(a) => {
                let _ = sim.command(Command::Answer {
                    id: order_id(&a.id).map_err(step)?,
                    vars: vars(&a.vars),
                });
            }
            Input::Go(id) => {
                let _ = sim.command(Command::Go {
                    id: order_id(id).map_err(step)?,
                });
            }
            Input::Remove(id) => {
                let _ = sim.command(Command::Remove {
                    id: order_id(id).map_err(step)?,
                });
            }
            Input::Post(p) => {
                let _ = sim.command(Command::PostNotice {
                    board: BoardName::new(p.board.as_str()).map_err(|e| step(e.to_string()))?,
                    key: p.key.clone(),
                });
            }
        }
    }
    Ok(())
}

fn describe(input: &Input) -> String {
    let kv = |m: &BTreeMap<String, String>| {
        if m.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(" {}", parts.join(" "))
        }
    };
    match input {
        Input::Add(a) => {
            format!(
                "add {}{}{}{}",
                a.id,
                a.workflow
                    .as_ref()
                    .map(|w| format!(" to {w}"))
                    .unwrap_or_default(),
                a.at.as_ref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default(),
                kv(&a.vars)
            ) + &a
                .priority
                .map(|p| format!(" priority {p}"))
                .unwrap_or_default()
                + match a.delete_when_terminated {
                    Some(true) => " delete-when-terminated",
                    Some(false) => " keep",
                    None => "",
                }
        }
        Input::Done(d) => match d.signal {
            Some(s) => format!("done {} signal {s}{}", d.order, kv(&d.values)),
            None => format!("done {} rc {}{}", d.order, d.rc.unwrap_or(0), kv(&d.values)),
        },
        Input::Plan(p) => format!(
            "plan {} of {} at {} (missed: {}, late after {})",
            p.id, p.schedule, p.at, p.missed, p.late
        ),
        Input::Stop(w) => format!("stop {w}"),
        Input::Start(w) => format!("start {w}"),
        Input::Withdraw(id) => format!("withdraw {id}"),
        Input::Time(t) => format!("time +{t}"),
        Input::Crash(w) => format!("crash {w}"),
        Input::Disconnect(w) => format!("disconnect {w}"),
        Input::Connect(w) => format!("connect {w}"),
        Input::Cancel(s) => format!(
            "cancel {}{}",
            s.id,
            s.kill
                .as_ref()
                .map(|k| format!(" kill={k}"))
                .unwrap_or_default()
        ),
        Input::Suspend(s) => format!(
            "suspend {}{}",
            s.id,
            s.kill
                .as_ref()
                .map(|k| format!(" kill={k}"))
                .unwrap_or_default()
        ),
        Input::Resume(r) => format!(
            "resume {}{}{}",
            r.id,
            r.position
                .as_ref()
                .map(|p| format!(" at {p}"))
                .unwrap_or_default(),
            kv(&r.vars)
        ),
        Input::Answer(a) => format!("answer {}{}", a.id, kv(&a.vars)),
        Input::Go(id) => format!("go {id}"),
        Input::Remove(id) => format!("remove {id}"),
        Input::Post(p) => format!("post {} {}", p.board, p.key),
    }
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("the cases directory exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no golden cases in {}", dir.display());
    let mut failures = Vec::new();
    for path in &names {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("case")
            .to_owned();
        let text = std::fs::read_to_string(path).expect("a case file is readable");
        let result = std::panic::catch_unwind(|| {
            let output = run_case(&name, &text).unwrap_or_else(|e| panic!("{e}"));
            insta::with_settings!({
                snapshot_path => "golden/snapshots",
                prepend_module_to_snapshot => true,
                description => format!("tests/golden/cases/{name}.yaml"),
                omit_expression => true,
            }, {
                insta::assert_snapshot!(name.as_str(), output);
            });
        });
        if result.is_err() {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "golden cases failed: {failures:?}");
}

/// Every workflow of `deploy/examples` runs to its end when every job succeeds and every
/// prompt is answered.
#[test]
fn examples_run_to_the_end() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut files = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/examples exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for p in &paths {
        let text = std::fs::read_to_string(p).expect("an example is readable");
        files.push(SourceFile::new(p.display().to_string(), text));
    }
    let inventory = parse_inventory(&files, &Limits::default()).expect("the examples are valid");
    let mut sim = Sim::new(&inventory);
    sim.verbose = false;
    for w in &inventory.workflows {
        // Every required parameter: no default and not `final` (the workflow sets those).
        let is_final = |name: &str| {
            inventory
                .workflow_settings
                .get(&w.name)
                .and_then(|s| s.parameters.get(name))
                .is_some_and(|r| r.final_value.is_some())
        };
        let vars: Vars = w
            .parameters
            .iter()
            .filter(|(k, p)| p.default.is_none() && !is_final(k))
            .map(|(k, _)| (k.clone(), Value::String("2026-11-23".to_owned())))
            .collect();
        let id = OrderId::new(format!("example-{}", w.name)).expect("a valid id");
        sim.command(Command::Add {
            id,
            workflow: w.name.clone(),
            vars,
            scheduled_for: None,
        })
        .expect("the order is added");
    }
    for _ in 0..1000 {
        let running: Vec<OrderId> = sim
            .agents
            .values()
            .flat_map(|a| a.running.keys().cloned())
            .collect();
        for id in running {
            sim.finish_job(&id, Exit::Code(0), Vars::new())
                .expect("the job runs");
        }
        let prompting: Vec<OrderId> = sim
            .ctrl
            .orders
            .values()
            .filter(|o| matches!(o.state, ordo_model::order::OrderState::Prompting { .. }))
            .map(|o| o.id.clone())
            .collect();
        for id in prompting {
            sim.command(Command::Answer {
                id,
                vars: Vars::new(),
            })
            .expect("the answer is taken");
        }
        if sim.ctrl.orders.values().all(|o| o.state.is_terminal()) {
            break;
        }
        sim.advance(DurationMs::from_secs(1));
    }
    for o in sim.ctrl.orders.values() {
        assert_eq!(
            o.state,
            ordo_model::order::OrderState::Finished,
            "{} ended {} at {}",
            o.id,
            o.state,
            o.position
        );
    }
    // The orders of workflows that remove ended orders (`deleteWhenTerminated`) are gone.
    let kept = inventory
        .workflows
        .iter()
        .filter(|w| {
            !inventory
                .workflow_settings
                .get(&w.name)
                .is_some_and(|s| s.delete_when_terminated)
        })
        .count();
    assert_eq!(sim.ctrl.orders.len(), kept);
    sim.check_replay();
}

/// A fork child asking for a lock its parent holds is disrupted instead of waiting for ever
/// (`ordo check` refuses such a workflow, so the inventory is edited after the check).
#[test]
fn a_child_asking_for_its_parents_lock_is_disrupted() {
    use ordo_model::inventory::Instruction;
    let yaml = "\
workflow: w
jobs:
  job: { agent: a1, script: \"true\" }
steps:
  - lock: outer
    do:
      - fork:
          x: [ { lock: inner, do: [ { run: job } ] } ]
---
lock: outer
---
lock: inner
";
    let mut inventory = parse_inventory(
        &[
            SourceFile::new("agents", AGENTS),
            SourceFile::new("w.yaml", yaml),
        ],
        &Limits::default(),
    )
    .expect("the inventory parses");
    let Instruction::Lock {
        lock: outer, steps, ..
    } = &mut inventory.workflows[0].steps[0]
    else {
        panic!("a lock step");
    };
    let outer = outer.clone();
    let Instruction::Fork { branches, .. } = &mut steps[0] else {
        panic!("a fork step");
    };
    let Instruction::Lock { lock, .. } = &mut branches[0].1[0] else {
        panic!("a lock step in the branch");
    };
    *lock = outer;
    let mut sim = Sim::new(&inventory);
    sim.command(Command::Add {
        id: order_id("o").unwrap(),
        workflow: WorkflowName::new("w").unwrap(),
        vars: Vars::new(),
        scheduled_for: None,
    })
    .expect("the order is added");
    assert!(
        sim.log.contains(
            "o|x: OutcomeAdded disrupted \"lock outer is held by o, which waits for this order: it can never be granted\""
        ),
        "{}",
        sim.log
    );
    assert!(sim.log.contains("o|x: Failed"), "{}", sim.log);
    sim.check_replay();
}

/// An `addOrder` whose arguments the target workflow does not take fails the adding order
/// with the refusal (`ordo check` refuses such a step, so the inventory is edited after the
/// check, as a workflow deployed again under a deployed caller would leave it).
#[test]
fn an_add_order_passing_an_undeclared_argument_fails_the_adding_order() {
    use ordo_model::inventory::Instruction;
    let yaml = "\
workflow: main
steps:
  - addOrder: child
    args: { n: 1 }
---
workflow: child
parameters: { n: {} }
jobs:
  job: { agent: a1, script: \"true\" }
steps:
  - run: job
";
    let mut inventory = parse_inventory(
        &[
            SourceFile::new("agents", AGENTS),
            SourceFile::new("w.yaml", yaml),
        ],
        &Limits::default(),
    )
    .expect("the inventory parses");
    let main = inventory
        .workflows
        .iter_mut()
        .find(|w| w.name.as_str() == "main")
        .expect("workflow main");
    let Instruction::AddOrder { args, .. } = &mut main.steps[0] else {
        panic!("an addOrder step");
    };
    let n = args.remove("n").expect("the argument n");
    args.insert("x".to_owned(), n);
    let mut sim = Sim::new(&inventory);
    sim.command(Command::Add {
        id: order_id("m").unwrap(),
        workflow: WorkflowName::new("main").unwrap(),
        vars: Vars::new(),
        scheduled_for: None,
    })
    .expect("the order is added");
    assert!(
        sim.log
            .contains("add-order: unknown argument `x`; workflow `child` declares: n"),
        "{}",
        sim.log
    );
    assert!(sim.log.contains("m: Failed"), "{}", sim.log);
    assert!(
        !sim.ctrl.orders.keys().any(|id| id.as_str() != "m"),
        "no order was added: {}",
        sim.log
    );
}
