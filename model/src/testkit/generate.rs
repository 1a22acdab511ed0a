//! Random workflows and random inputs for the property tests of the order state machine
//! (`model/tests/replay.rs`): a workflow `main` of up to four steps drawn from every
//! instruction (nested three deep), a workflow `child` that `addOrder` adds, jobs on the
//! agents `a1` and `a2`, a lock and notice boards ([`inventory`]); inputs ([`Input`]) that
//! add orders, end jobs, move time, crash and restart sides, cut links and send operator
//! commands, applied to a [`Sim`] by [`apply_input`].
//!
//! The drivers' property test draws from a narrower set: see [`super::driven`].

use crate::expr::{parse, parse_template};
use crate::ids::{AgentId, BoardName, BranchId, JobName, LockName, OrderId, WorkflowName};
use crate::inventory::{
    Board, CycleRepeat, CycleSchedule, CycleScheme, Executable, ForkListOver, Instruction,
    Inventory, Job, Lock, ReturnCodes, WhenNotAnnounced, Workflow,
};
use crate::notice_expr::NoticeExpr;
use crate::order::{Command, Exit, Kill};
use crate::testkit::sim::Sim;
use crate::time::DurationMs;
use crate::value::{Value, Vars};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A name of any of the model's name types; panics on an invalid one (tests only).
pub fn name<T: TryFrom<String>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s.to_owned()).expect("a valid name")
}

/// A job on `agent` that runs `true`; `timeout` in seconds.
pub fn job(agent: &str, restartable: bool, parallelism: u32, timeout: Option<u64>) -> Job {
    Job {
        agent: name(agent),
        executable: Executable::Script("true".to_owned()),
        env: BTreeMap::new(),
        args: BTreeMap::new(),
        timeout: timeout.map(DurationMs::from_secs),
        grace_timeout: DurationMs::from_secs(15),
        return_codes: ReturnCodes::default(),
        restartable,
        parallelism,
    }
}

/// `run: j`.
pub fn run(j: &str) -> Instruction {
    Instruction::Run {
        job: name(j),
        args: BTreeMap::new(),
    }
}

fn leaf() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        6 => prop_oneof![Just("j1"), Just("j2"), Just("j3")].prop_map(run),
        1 => any::<bool>().prop_map(|uncatchable| Instruction::Fail {
            message: None,
            return_code: Some(5),
            uncatchable,
        }),
        1 => Just(Instruction::Finish { message: None }),
        1 => prop_oneof![Just(0u64), Just(10)].prop_map(|s| Instruction::Sleep {
            duration: DurationMs::from_secs(s)
        }),
        1 => Just(Instruction::Break),
        1 => Just(Instruction::Prompt {
            question: parse_template("ok?").expect("a template"),
        }),
        1 => Just(Instruction::PostNotice {
            board: name("b"),
            key: parse_template("k").expect("a template"),
        }),
        1 => Just(Instruction::ExpectNotices {
            boards: vec![name("b")],
            key: parse_template("k").expect("a template"),
        }),
        1 => when_not_announced().prop_map(|when| Instruction::ExpectNoticesWhen {
            notices: b_or_c(),
            key: parse_template("k").expect("a template"),
            when_not_announced: when,
        }),
        1 => any::<bool>().prop_map(|wait| Instruction::AddOrder {
            workflow: name("child"),
            args: BTreeMap::new(),
            wait,
        }),
    ]
}

fn when_not_announced() -> impl Strategy<Value = WhenNotAnnounced> {
    prop_oneof![
        Just(WhenNotAnnounced::Wait),
        Just(WhenNotAnnounced::Skip),
        Just(WhenNotAnnounced::DontWait),
    ]
}

/// `b || c`: a notice expression that is not a plain list of boards.
fn b_or_c() -> NoticeExpr {
    NoticeExpr::Or(vec![
        NoticeExpr::Board(name("b")),
        NoticeExpr::Board(name("c")),
    ])
}

fn block(inner: impl Strategy<Value = Instruction>) -> impl Strategy<Value = Vec<Instruction>> {
    prop::collection::vec(inner, 0..3)
}

/// One step: a leaf, or an instruction with blocks of up to two steps, three deep.
pub fn instruction() -> impl Strategy<Value = Instruction> {
    leaf().prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (block(inner.clone()), block(inner.clone())).prop_map(|(then, otherwise)| {
                Instruction::If {
                    branches: vec![(parse("$returnCode == 0").expect("an expression"), then)],
                    otherwise,
                }
            }),
            (block(inner.clone()), block(inner.clone()))
                .prop_map(|(steps, catch)| Instruction::Try { steps, catch }),
            (1u32..4, any::<bool>(), block(inner.clone())).prop_map(|(max_tries, delay, steps)| {
                Instruction::Retry {
                    max_tries,
                    delays: if delay {
                        vec![DurationMs::from_secs(5)]
                    } else {
                        Vec::new()
                    },
                    steps,
                }
            }),
            (block(inner.clone()), block(inner.clone()), any::<bool>()).prop_map(
                |(a, b, join_if_failed)| Instruction::Fork {
                    branches: vec![(name::<BranchId>("x"), a), (name::<BranchId>("y"), b)],
                    join_if_failed,
                }
            ),
            (block(inner.clone()), any::<bool>()).prop_map(|(steps, join_if_failed)| {
                Instruction::ForkList {
                    over: ForkListOver::List(parse("[1, 2]").expect("an expression")),
                    var: "n".to_owned(),
                    steps,
                    join_if_failed,
                }
            }),
            (block(inner.clone()), any::<bool>()).prop_map(|(steps, continuous)| {
                Instruction::Cycle {
                    repeat: CycleRepeat::Schedule(CycleSchedule {
                        time_zone: "UTC".to_owned(),
                        admission: Vec::new(),
                        scheme: if continuous {
                            CycleScheme::Continuous {
                                pause: DurationMs::from_secs(5),
                            }
                        } else {
                            CycleScheme::Ticking {
                                every: DurationMs::from_secs(10),
                            }
                        },
                        limit: Some(2),
                    }),
                    steps,
                }
            }),
            (block(inner.clone()), any::<bool>()).prop_map(|(steps, every)| Instruction::Cycle {
                repeat: if every {
                    CycleRepeat::Every {
                        every: DurationMs::from_secs(10),
                        for_: DurationMs::from_secs(25),
                    }
                } else {
                    CycleRepeat::Times(2)
                },
                steps,
            }),
            (block(inner.clone()), any::<bool>()).prop_map(|(steps, counted)| Instruction::Lock {
                lock: name::<LockName>("l"),
                count: counted.then_some(1),
                steps,
            }),
            block(inner.clone()).prop_map(|steps| Instruction::ConsumeNotices {
                boards: vec![name("b")],
                key: parse_template("k").expect("a template"),
                steps,
            }),
            (block(inner.clone()), when_not_announced()).prop_map(|(steps, when)| {
                Instruction::ConsumeNoticesWhen {
                    notices: b_or_c(),
                    key: parse_template("k").expect("a template"),
                    when_not_announced: when,
                    steps,
                }
            }),
            (
                block(inner),
                prop_oneof![Just(None), Just(Some(true)), Just(Some(false))]
            )
                .prop_map(|(steps, stop_on_failure)| Instruction::Options {
                    stop_on_failure,
                    steps,
                }),
        ]
    })
}

/// Workflows `main` (with `steps`) and `child`, jobs `j1` (on `a1`, restartable, two at
/// once), `j2` (on `a1`, a 30 s timeout) and `j3` (on `a2`), the lock `l` (limit 2) and the
/// boards `b` and `c` (never posted).
pub fn inventory(steps: Vec<Instruction>) -> Inventory {
    let jobs: BTreeMap<JobName, Job> = [
        (name("j1"), job("a1", true, 2, None)),
        (name("j2"), job("a1", false, 1, Some(30))),
        (name("j3"), job("a2", false, 1, None)),
    ]
    .into_iter()
    .collect();
    Inventory {
        workflows: vec![
            Workflow {
                name: name("main"),
                parameters: BTreeMap::new(),
                jobs: jobs.clone(),
                steps,
            },
            Workflow {
                name: name("child"),
                parameters: BTreeMap::new(),
                jobs,
                steps: vec![run("j3")],
            },
        ],
        agents: Vec::new(),
        locks: vec![Lock {
            name: name("l"),
            limit: 2,
        }],
        boards: vec![
            Board {
                name: name("b"),
                lifetime: DurationMs::from_secs(60),
            },
            Board {
                name: name("c"),
                lifetime: DurationMs::from_secs(60),
            },
        ],
        ..Inventory::default()
    }
}

/// One random input; indexes pick among what exists at that moment.
#[derive(Debug, Clone)]
pub enum Input {
    /// Add the order `o<n>` (`o3` scheduled 5 s ahead).
    Add(u8),
    /// A running job ends with `rc`.
    Done {
        pick: usize,
        rc: i32,
    },
    /// Seconds pass.
    Time(u64),
    /// Agent `a1` (`false`) or `a2` (`true`) crashes with its processes and restarts.
    CrashAgent(bool),
    CrashController,
    /// The link to `a1` or `a2` goes down or up.
    Link {
        second: bool,
        up: bool,
    },
    Cancel {
        pick: usize,
        kill: Option<Kill>,
    },
    Suspend {
        pick: usize,
        kill: Option<Kill>,
    },
    Resume(usize),
    Answer(usize),
    Go(usize),
    Post,
}

/// No kill, SIGTERM or SIGKILL.
pub fn kill() -> impl Strategy<Value = Option<Kill>> {
    prop_oneof![Just(None), Just(Some(Kill::Term)), Just(Some(Kill::Kill))]
}

/// One input, weighted towards ending jobs.
pub fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => (0u8..4).prop_map(Input::Add),
        12 => (any::<usize>(), prop_oneof![Just(0), Just(0), Just(1)])
            .prop_map(|(pick, rc)| Input::Done { pick, rc }),
        3 => prop_oneof![Just(1u64), Just(10), Just(60)].prop_map(Input::Time),
        1 => any::<bool>().prop_map(Input::CrashAgent),
        1 => Just(Input::CrashController),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(second, up)| Input::Link { second, up }),
        1 => (any::<usize>(), kill()).prop_map(|(pick, kill)| Input::Cancel { pick, kill }),
        1 => (any::<usize>(), kill()).prop_map(|(pick, kill)| Input::Suspend { pick, kill }),
        1 => any::<usize>().prop_map(Input::Resume),
        1 => any::<usize>().prop_map(Input::Answer),
        1 => any::<usize>().prop_map(Input::Go),
        1 => Just(Input::Post),
    ]
}

/// The order `pick` chooses among the controller's orders.
pub fn pick_order(sim: &Sim, pick: usize) -> Option<OrderId> {
    let ids: Vec<&OrderId> = sim.ctrl.orders.keys().collect();
    (!ids.is_empty()).then(|| ids[pick % ids.len()].clone())
}

/// Applies one input to the simulation; a refused command is no error.
pub fn apply_input(sim: &mut Sim, input: &Input) {
    let agent = |second: bool| name::<AgentId>(if second { "a2" } else { "a1" });
    match input {
        Input::Add(n) => {
            let mut vars = Vars::new();
            vars.insert("returnCode".to_owned(), Value::Number(0.0));
            let _ = sim.command(Command::Add {
                id: name(&format!("o{n}")),
                workflow: name::<WorkflowName>("main"),
                vars,
                scheduled_for: (*n == 3).then(|| sim.now.plus(DurationMs::from_secs(5))),
            });
        }
        Input::Done { pick, rc } => {
            let running: Vec<OrderId> = sim
                .agents
                .values()
                .flat_map(|a| a.running.keys().cloned())
                .collect();
            if !running.is_empty() {
                let id = running[pick % running.len()].clone();
                sim.finish_job(&id, Exit::Code(*rc), Vars::new())
                    .expect("the job runs");
            }
        }
        Input::Time(s) => sim.advance(DurationMs::from_secs(*s)),
        Input::CrashAgent(second) => sim.crash_agent(&agent(*second)),
        Input::CrashController => sim.restart_controller(),
        Input::Link { second, up } => sim.set_connected(&agent(*second), *up),
        Input::Cancel { pick, kill } => {
            if let Some(id) = pick_order(sim, *pick) {
                let _ = sim.command(Command::Cancel { id, kill: *kill });
            }
        }
        Input::Suspend { pick, kill } => {
            if let Some(id) = pick_order(sim, *pick) {
                let _ = sim.command(Command::Suspend { id, kill: *kill });
            }
        }
        Input::Resume(pick) => {
            if let Some(id) = pick_order(sim, *pick) {
                let _ = sim.command(Command::Resume {
                    id,
                    position: None,
                    vars: Vars::new(),
                });
            }
        }
        Input::Answer(pick) => {
            if let Some(id) = pick_order(sim, *pick) {
                let _ = sim.command(Command::Answer {
                    id,
                    vars: Vars::new(),
                });
            }
        }
        Input::Go(pick) => {
            if let Some(id) = pick_order(sim, *pick) {
                let _ = sim.command(Command::Go { id });
            }
        }
        Input::Post => {
            let _ = sim.command(Command::PostNotice {
                board: name::<BoardName>("b"),
                key: "k".to_owned(),
            });
        }
    }
}
