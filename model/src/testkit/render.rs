//! An inventory written back as Ordo YAML, so that a generated inventory can be deployed the
//! way an operator deploys one (`POST /deploy`, `ordo deploy`).
//!
//! Each object is one YAML document in JSON's flow style (JSON is YAML), documents separated
//! by `---`; every field of a job is written, defaults included, so that reading the text
//! back ([`crate::yaml::parse_inventory`]) gives the inventory it was written from. Covered:
//! workflows (parameters without defaults), jobs, every instruction, agents without
//! subagents, locks and boards; schedules and calendars are not written.

use crate::inventory::{
    Agent, Block, CycleRepeat, CycleScheme, Executable, ForkListOver, Instruction, Inventory, Job,
    ReturnCodes, Workflow,
};
use crate::time::DurationMs;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// The inventory as YAML documents.
pub fn inventory_yaml(inventory: &Inventory) -> String {
    let mut docs: Vec<Json> = Vec::new();
    docs.extend(inventory.agents.iter().map(agent));
    docs.extend(inventory.workflows.iter().map(|w| {
        let mut doc = workflow(w);
        if let (Some(settings), Json::Object(m)) =
            (inventory.workflow_settings.get(&w.name), &mut doc)
        {
            m.insert(
                "deleteWhenTerminated".into(),
                settings.delete_when_terminated.into(),
            );
            if settings.allow_undeclared {
                m.insert("allowUndeclared".into(), true.into());
            }
        }
        doc
    }));
    docs.extend(
        inventory
            .locks
            .iter()
            .map(|l| json!({"lock": l.name.as_str(), "limit": l.limit})),
    );
    docs.extend(
        inventory
            .boards
            .iter()
            .map(|b| json!({"board": b.name.as_str(), "lifetime": duration(b.lifetime)})),
    );
    let texts: Vec<String> = docs.iter().map(Json::to_string).collect();
    texts.join("\n---\n") + "\n"
}

fn duration(d: DurationMs) -> String {
    format!("{}ms", d.0)
}

fn agent(a: &Agent) -> Json {
    let mut m = Map::new();
    m.insert("agent".into(), a.id.as_str().into());
    m.insert("url".into(), a.url.clone().into());
    if let Some(name) = &a.certificate_name {
        m.insert("certificateName".into(), name.clone().into());
    }
    Json::Object(m)
}

fn templates<T: std::fmt::Display>(map: &BTreeMap<String, T>) -> Json {
    Json::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Json::String(v.to_string())))
            .collect(),
    )
}

fn workflow(w: &Workflow) -> Json {
    let mut m = Map::new();
    m.insert("workflow".into(), w.name.as_str().into());
    if !w.parameters.is_empty() {
        let params: Map<String, Json> = w
            .parameters
            .iter()
            .map(|(k, p)| {
                let v = match &p.default {
                    Some(d) => json!({"default": d.to_string()}),
                    None => Json::Null,
                };
                (k.clone(), v)
            })
            .collect();
        m.insert("parameters".into(), Json::Object(params));
    }
    let jobs: Map<String, Json> = w
        .jobs
        .iter()
        .map(|(name, j)| (name.as_str().to_owned(), job(j)))
        .collect();
    m.insert("jobs".into(), Json::Object(jobs));
    m.insert("steps".into(), block(&w.steps));
    if let Some(zone) = cycle_zone(&w.steps) {
        m.insert("timeZone".into(), zone.into());
    }
    Json::Object(m)
}

/// The time zone of the first scheduled cycle (all of a workflow's have the workflow's).
fn cycle_zone(steps: &[Instruction]) -> Option<String> {
    steps.iter().find_map(|i| match i {
        Instruction::Cycle {
            repeat: CycleRepeat::Schedule(s),
            ..
        } => Some(s.time_zone.clone()),
        Instruction::If {
            branches,
            otherwise,
        } => branches
            .iter()
            .map(|(_, b)| b)
            .chain([otherwise])
            .find_map(|b| cycle_zone(b)),
        Instruction::Fork { branches, .. } => branches.iter().find_map(|(_, b)| cycle_zone(b)),
        Instruction::Try { steps, catch } | Instruction::TryRetry { steps, catch, .. } => {
            cycle_zone(steps).or_else(|| cycle_zone(catch))
        }
        Instruction::ForkList { steps, .. }
        | Instruction::Retry { steps, .. }
        | Instruction::Lock { steps, .. }
        | Instruction::Cycle { steps, .. }
        | Instruction::ConsumeNotices { steps, .. }
        | Instruction::ConsumeNoticesWhen { steps, .. }
        | Instruction::Options { steps, .. } => cycle_zone(steps),
        _ => None,
    })
}

fn job(j: &Job) -> Json {
    let mut m = Map::new();
    m.insert("agent".into(), j.agent.as_str().into());
    match &j.executable {
        Executable::Script(s) => m.insert("script".into(), s.clone().into()),
        Executable::Command(argv) => m.insert("command".into(), json!(argv)),
    };
    if !j.env.is_empty() {
        m.insert("env".into(), templates(&j.env));
    }
    if !j.args.is_empty() {
        m.insert("args".into(), templates(&j.args));
    }
    if let Some(t) = j.timeout {
        m.insert("timeout".into(), duration(t).into());
    }
    m.insert("graceTimeout".into(), duration(j.grace_timeout).into());
    m.insert(
        "returnCodes".into(),
        match &j.return_codes {
            ReturnCodes::Success(codes) => json!({ "success": codes }),
            ReturnCodes::Failure(codes) => json!({ "failure": codes }),
        },
    );
    m.insert("restartable".into(), j.restartable.into());
    m.insert("parallelism".into(), j.parallelism.into());
    Json::Object(m)
}

fn block(steps: &Block) -> Json {
    Json::Array(steps.iter().map(instruction).collect())
}

fn instruction(i: &Instruction) -> Json {
    match i {
        Instruction::Run { job, args } => {
            let mut m = Map::new();
            m.insert("run".into(), job.as_str().into());
            if !args.is_empty() {
                m.insert("args".into(), templates(args));
            }
            Json::Object(m)
        }
        Instruction::If {
            branches,
            otherwise,
        } => {
            let mut m = Map::new();
            let mut rest = branches.iter();
            if let Some((cond, then)) = rest.next() {
                m.insert("if".into(), cond.to_string().into());
                m.insert("then".into(), block(then));
            }
            let elifs: Vec<Json> = rest
                .map(|(cond, then)| json!({"if": cond.to_string(), "then": block(then)}))
                .collect();
            if !elifs.is_empty() {
                m.insert("elif".into(), Json::Array(elifs));
            }
            if !otherwise.is_empty() {
                m.insert("else".into(), block(otherwise));
            }
            Json::Object(m)
        }
        Instruction::Fork {
            branches,
            join_if_failed,
        } => {
            let b: Map<String, Json> = branches
                .iter()
                .map(|(id, steps)| (id.as_str().to_owned(), block(steps)))
                .collect();
            json!({"fork": b, "joinIfFailed": join_if_failed})
        }
        Instruction::ForkList {
            over,
            var,
            steps,
            join_if_failed,
        } => {
            let (over, child_to_id, child_to_arguments) = match over {
                ForkListOver::List(e) => (Json::String(e.to_string()), None, None),
                ForkListOver::Subagents(a) => (json!({"subagentsOf": a.as_str()}), None, None),
                ForkListOver::ListWith {
                    list,
                    child_to_id,
                    child_to_arguments,
                } => (
                    Json::String(list.to_string()),
                    child_to_id.as_ref().map(|e| e.to_string()),
                    child_to_arguments.as_ref().map(|e| e.to_string()),
                ),
            };
            let mut step = json!({"forkList": over, "as": var, "do": block(steps), "joinIfFailed": join_if_failed});
            if let Some(e) = child_to_id {
                step["childToId"] = Json::String(e);
            }
            if let Some(e) = child_to_arguments {
                step["childToArguments"] = Json::String(e);
            }
            step
        }
        Instruction::Retry {
            max_tries,
            delays,
            steps,
        } => {
            let delays: Vec<String> = delays.iter().map(|d| duration(*d)).collect();
            json!({"retry": {"maxTries": max_tries, "delays": delays}, "do": block(steps)})
        }
        Instruction::Try { steps, catch } => json!({"try": block(steps), "catch": block(catch)}),
        Instruction::Fail {
            message,
            return_code,
            uncatchable,
        } => {
            let mut m = Map::new();
            if let Some(msg) = message {
                m.insert("message".into(), msg.to_string().into());
            }
            if let Some(rc) = return_code {
                m.insert("returnCode".into(), (*rc).into());
            }
            m.insert("uncatchable".into(), (*uncatchable).into());
            json!({ "fail": m })
        }
        Instruction::Finish { message } => match message {
            Some(msg) => json!({"finish": {"message": msg.to_string()}}),
            None => json!("finish"),
        },
        Instruction::Lock { lock, count, steps } => {
            let mut m = Map::new();
            m.insert("lock".into(), lock.as_str().into());
            if let Some(c) = count {
                m.insert("count".into(), (*c).into());
            }
            m.insert("do".into(), block(steps));
            Json::Object(m)
        }
        Instruction::Prompt { question } => json!({"prompt": question.to_string()}),
        Instruction::Cycle { repeat, steps } => {
            let settings = match repeat {
                CycleRepeat::Times(n) => json!({ "times": n }),
                CycleRepeat::Every { every, for_ } => {
                    json!({"every": duration(*every), "for": duration(*for_)})
                }
                CycleRepeat::Schedule(s) => {
                    let mut m = Map::new();
                    let (kind, d) = match s.scheme {
                        CycleScheme::Periodic { every } => ("periodic", every),
                        CycleScheme::Ticking { every } => ("ticking", every),
                        CycleScheme::Continuous { pause } => ("continuous", pause),
                    };
                    m.insert(kind.into(), duration(d).into());
                    if !s.admission.is_empty() {
                        let periods: Vec<Json> = s
                            .admission
                            .iter()
                            .map(|p| {
                                let days: Vec<&str> =
                                    ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
                                        .iter()
                                        .enumerate()
                                        .filter(|(n, _)| p.weekdays & (1 << n) != 0)
                                        .map(|(_, d)| *d)
                                        .collect();
                                let mut pm = Map::new();
                                if !days.is_empty() {
                                    pm.insert("weekdays".into(), json!(days));
                                }
                                pm.insert(
                                    "from".into(),
                                    format!(
                                        "{:02}:{:02}:{:02}",
                                        p.from_s / 3600,
                                        p.from_s / 60 % 60,
                                        p.from_s % 60
                                    )
                                    .into(),
                                );
                                pm.insert("duration".into(), duration(p.duration).into());
                                Json::Object(pm)
                            })
                            .collect();
                        m.insert("admission".into(), Json::Array(periods));
                    }
                    if let Some(l) = s.limit {
                        m.insert("limit".into(), l.into());
                    }
                    Json::Object(m)
                }
            };
            json!({"cycle": settings, "do": block(steps)})
        }
        Instruction::Break => json!("break"),
        Instruction::Sleep { duration: d } => json!({ "sleep": duration(*d) }),
        Instruction::AddOrder {
            workflow,
            args,
            wait,
        } => {
            let mut m = Map::new();
            m.insert("addOrder".into(), workflow.as_str().into());
            if !args.is_empty() {
                m.insert("args".into(), templates(args));
            }
            m.insert("wait".into(), (*wait).into());
            Json::Object(m)
        }
        Instruction::AddOrderWithOptions {
            workflow,
            args,
            wait,
            options,
        } => {
            let mut m = Map::new();
            m.insert("addOrder".into(), workflow.as_str().into());
            if !args.is_empty() {
                m.insert("args".into(), templates(args));
            }
            m.insert("wait".into(), (*wait).into());
            if options.priority != 0 {
                m.insert("priority".into(), options.priority.into());
            }
            if let Some(d) = options.delete_when_terminated {
                m.insert("deleteWhenTerminated".into(), d.into());
            }
            Json::Object(m)
        }
        Instruction::PostNotice { board, key } => {
            json!({"post": {"board": board.as_str(), "key": key.to_string()}})
        }
        Instruction::ExpectNotices { boards, key } => {
            let boards: Vec<&str> = boards.iter().map(|b| b.as_str()).collect();
            json!({"expect": {"boards": boards, "key": key.to_string()}})
        }
        Instruction::ConsumeNotices { boards, key, steps } => {
            let boards: Vec<&str> = boards.iter().map(|b| b.as_str()).collect();
            json!({"consume": {"boards": boards, "key": key.to_string()}, "do": block(steps)})
        }
        Instruction::ExpectNoticesWhen {
            notices,
            key,
            when_not_announced,
        } => json!({"expect": {
            "boards": notices.to_string(),
            "key": key.to_string(),
            "whenNotAnnounced": when_not_announced.word(),
        }}),
        Instruction::ConsumeNoticesWhen {
            notices,
            key,
            when_not_announced,
            steps,
        } => json!({
            "consume": {
                "boards": notices.to_string(),
                "key": key.to_string(),
                "whenNotAnnounced": when_not_announced.word(),
            },
            "do": block(steps),
        }),
        Instruction::Options {
            stop_on_failure,
            steps,
        } => {
            let mut m = Map::new();
            if let Some(stop) = stop_on_failure {
                m.insert("stopOnFailure".into(), (*stop).into());
            }
            json!({"options": m, "do": block(steps)})
        }
        Instruction::FinishWith {
            failed,
            message,
            values,
        } => {
            let mut m = Map::new();
            m.insert(
                "outcome".into(),
                if *failed { "failed" } else { "succeeded" }.into(),
            );
            if let Some(msg) = message {
                m.insert("message".into(), msg.to_string().into());
            }
            if !values.is_empty() {
                m.insert("values".into(), templates(values));
            }
            json!({ "finish": m })
        }
        Instruction::TryRetry {
            steps,
            catch,
            max_tries,
            delays,
        } => {
            // `delays` is always written: with it the step is a try with retries, even
            // without `maxTries` and with no delay.
            let delays: Vec<String> = delays.iter().map(|d| duration(*d)).collect();
            let mut m = Map::new();
            m.insert("try".into(), block(steps));
            m.insert("catch".into(), block(catch));
            if let Some(n) = max_tries {
                m.insert("maxTries".into(), (*n).into());
            }
            m.insert("delays".into(), json!(delays));
            Json::Object(m)
        }
        Instruction::RetryAgain => json!("retry"),
    }
}
