//! The pure half of the drivers' property test (`tests/tests/drivers.rs`): random workflows
//! and inputs that a real controller and real agents must carry out exactly as the
//! simulation does, what the simulation reaches for them, and how the two are compared.
//!
//! # What is generated, and why not more
//!
//! The real system runs its orders side by side on a wall clock; the simulation runs them one
//! after the other. So the test applies each input only once both have come to rest (a *quiet
//! point*: every job that ends by itself has ended, every timer within reach has fired), and
//! the generator keeps to constructs whose state at a quiet point does not depend on the
//! interleaving of orders or on how long anything took:
//!
//! - no lock is ever contended: the lock `l` has a limit far above what the orders can take,
//!   and steps take it with `count: 1` (which order got a contended lock first is a race);
//! - no `consume` (it deletes notices another order may be expecting: a race); notices are
//!   posted and expected, and live an hour, far longer than a test;
//! - no `cycle` with a period (how many runs fit in a period depends on how long runs take);
//! - jobs that block (`b1` on `a1`, `b2` on `a2`, restartable) run with a parallelism far above
//!   what can run at once, so no order ever waits for a slot behind a blocked one; the jobs
//!   that end at once (`j1`, `j2`, `j3`) have small parallelisms, and which order gets a slot
//!   first changes nothing at rest;
//! - durations are milliseconds: sleeps, retry delays, the timeout of `t1` (which blocks, so it
//!   always times out) and `o3`'s schedule;
//! - the workflow is one that `ordo deploy` takes ([`deployable`]);
//! - no link cuts (the real links carry on by themselves).
//!
//! # What a job does
//!
//! Each start of a job of order `o` is the order's run `n` (1, 2, ... over its whole life), and
//! what the run does is a function of `(seed, o, n)` ([`job_result`]): its return code and the
//! value it returns as `value`. `b1`, `b2` and `t1` block until the test releases them (or they
//! are killed or time out). [`expect`] records every run the simulation starts; the real jobs
//! look their run up in that table, so a run the simulation did not make shows as a failure.

use crate::expr::parse;
use crate::expr::parse_template;
use crate::ids::{AgentId, BoardName, BranchId, JobName, LockName, OrderId, WorkflowName};
use crate::inventory::{
    Agent, Block, Board, CycleRepeat, Executable, ForkListOver, Instruction, Inventory, Job, Lock,
    ReturnCodes, Workflow,
};
use crate::order::nav::instruction_at;
use crate::order::{Command, Exit, Frame, Holder, Kill, Order, OrderState, Wait, World};
use crate::testkit::generate::{kill, name, run};
use crate::testkit::sim::Sim;
use crate::time::{DurationMs, TimeMs};
use crate::value::{Value, Vars};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// Jobs that end at once.
pub const QUICK_JOBS: [&str; 3] = ["j1", "j2", "j3"];

/// The order ids [`Input::Add`] adds: `o0` .. `o3`.
pub const ORDERS_MAX: u8 = 4;

/// How long after its addition `o3` is scheduled.
pub const SCHEDULE_DELAY_MS: u64 = 100;

/// `t1`'s timeout.
pub const TIMEOUT_MS: u64 = 200;

/// The longest wait the simulation lets pass to reach a quiet point.
const HORIZON_MS: u64 = 60_000;

/// Most moves (a job ended, a timer fired) from one quiet point to the next.
const QUIESCE_MOVES_MAX: usize = 10_000;

/// One generated case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The steps of the workflow `main` (deployable).
    pub steps: Block,
    /// The inputs; the first one adds `o0`.
    pub inputs: Vec<Input>,
    /// Decides what each job run does ([`job_result`]).
    pub seed: u64,
}

/// One input; indexes pick among what exists at that moment, and an input with nothing to
/// pick is skipped.
#[derive(Debug, Clone)]
pub enum Input {
    /// Add the order `o<n>` to `main` (`o3` scheduled [`SCHEDULE_DELAY_MS`] ahead).
    Add(u8),
    /// A blocked job (of `b1` or `b2`) ends.
    Release(usize),
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
    /// Post the notice `k` on the board `b`.
    Post,
    /// Agent `a1` (`false`) or `a2` (`true`) stops and starts again; its jobs are killed
    /// with it and reported lost.
    RestartAgent(bool),
    /// The controller stops and starts again from its journal.
    RestartController,
}

/// A random case with up to `inputs_max` inputs after the first `Add`.
pub fn case(inputs_max: usize) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(instruction(), 1..4),
        prop::collection::vec(input(), 0..inputs_max.max(1)),
        any::<u64>(),
    )
        .prop_map(|(steps, more, seed)| {
            let mut steps = deployable(&steps);
            if steps.is_empty() {
                steps.push(run("j1"));
            }
            let mut inputs = vec![Input::Add(0)];
            inputs.extend(more);
            Case {
                steps,
                inputs,
                seed,
            }
        })
}

fn leaf() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        6 => prop_oneof![Just("j1"), Just("j2"), Just("j3")].prop_map(run),
        3 => prop_oneof![Just("b1"), Just("b2")].prop_map(run),
        1 => Just(run("t1")),
        1 => any::<bool>().prop_map(|uncatchable| Instruction::Fail {
            message: None,
            return_code: Some(5),
            uncatchable,
        }),
        1 => Just(Instruction::Finish { message: None }),
        1 => any::<bool>().prop_map(|failed| Instruction::FinishWith {
            failed,
            message: None,
            values: [("finished".to_owned(), parse_template("yes").expect("a template"))]
                .into_iter()
                .collect(),
        }),
        1 => prop_oneof![Just(0u64), Just(30)].prop_map(|ms| Instruction::Sleep {
            duration: DurationMs(ms)
        }),
        1 => Just(Instruction::Break),
        2 => Just(Instruction::Prompt {
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
        1 => any::<bool>().prop_map(|wait| Instruction::AddOrder {
            workflow: name("child"),
            args: BTreeMap::new(),
            wait,
        }),
    ]
}

fn block(inner: impl Strategy<Value = Instruction>) -> impl Strategy<Value = Vec<Instruction>> {
    prop::collection::vec(inner, 0..3)
}

/// One step for the drivers: a leaf, or an instruction with blocks of up to two steps,
/// three deep (not yet [`deployable`]).
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
            (
                block(inner.clone()),
                block(inner.clone()),
                any::<bool>(),
                1u32..4,
                any::<bool>(),
            )
                .prop_map(|(steps, mut catch, again, max_tries, delay)| {
                    if again {
                        catch.push(Instruction::RetryAgain);
                    }
                    Instruction::TryRetry {
                        steps,
                        catch,
                        // Always a limit: a `retry` that always comes would never end.
                        max_tries: Some(max_tries),
                        delays: if delay {
                            vec![DurationMs(20)]
                        } else {
                            Vec::new()
                        },
                    }
                }),
            (1u32..4, any::<bool>(), block(inner.clone())).prop_map(|(max_tries, delay, steps)| {
                Instruction::Retry {
                    max_tries,
                    delays: if delay {
                        vec![DurationMs(20)]
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
            block(inner.clone()).prop_map(|steps| Instruction::Cycle {
                repeat: CycleRepeat::Times(2),
                steps,
            }),
            block(inner).prop_map(|steps| Instruction::Lock {
                lock: name::<LockName>("l"),
                count: Some(1),
                steps,
            }),
        ]
    })
}

/// The block as `ordo deploy` takes it: steps after a `fail`, `finish`, `break` or `retry`
/// dropped, a `break` outside a cycle (a fork's branch is outside any cycle) and a `retry`
/// outside the `catch` of a try with retries dropped, a lock step inside a block of the same
/// lock (or in a fork branch under it) replaced by its steps.
pub fn deployable(steps: &Block) -> Block {
    fix(
        steps,
        &Within {
            cycle: false,
            retry_catch: false,
            locks: Vec::new(),
        },
    )
}

/// What encloses a block.
#[derive(Clone)]
struct Within {
    cycle: bool,
    retry_catch: bool,
    locks: Vec<LockName>,
}

impl Within {
    fn branch(&self) -> Within {
        Within {
            cycle: false,
            retry_catch: false,
            locks: self.locks.clone(),
        }
    }
}

fn fix(steps: &Block, w: &Within) -> Block {
    let mut out = Vec::new();
    for step in steps {
        let fixed: Vec<Instruction> = match step {
            Instruction::Break if !w.cycle => continue,
            Instruction::RetryAgain if !w.retry_catch => continue,
            Instruction::If {
                branches,
                otherwise,
            } => vec![Instruction::If {
                branches: branches
                    .iter()
                    .map(|(c, b)| (c.clone(), fix(b, w)))
                    .collect(),
                otherwise: fix(otherwise, w),
            }],
            Instruction::Try { steps, catch } => vec![Instruction::Try {
                steps: fix(steps, w),
                catch: fix(catch, w),
            }],
            Instruction::TryRetry {
                steps,
                catch,
                max_tries,
                delays,
            } => vec![Instruction::TryRetry {
                steps: fix(steps, w),
                catch: fix(
                    catch,
                    &Within {
                        retry_catch: true,
                        ..w.clone()
                    },
                ),
                max_tries: *max_tries,
                delays: delays.clone(),
            }],
            Instruction::Retry {
                max_tries,
                delays,
                steps,
            } => vec![Instruction::Retry {
                max_tries: *max_tries,
                delays: delays.clone(),
                steps: fix(steps, w),
            }],
            Instruction::Fork {
                branches,
                join_if_failed,
            } => vec![Instruction::Fork {
                branches: branches
                    .iter()
                    .map(|(id, b)| (id.clone(), fix(b, &w.branch())))
                    .collect(),
                join_if_failed: *join_if_failed,
            }],
            Instruction::ForkList {
                over,
                var,
                steps,
                join_if_failed,
            } => vec![Instruction::ForkList {
                over: over.clone(),
                var: var.clone(),
                steps: fix(steps, &w.branch()),
                join_if_failed: *join_if_failed,
            }],
            Instruction::Cycle { repeat, steps } => vec![Instruction::Cycle {
                repeat: repeat.clone(),
                steps: fix(
                    steps,
                    &Within {
                        cycle: true,
                        ..w.clone()
                    },
                ),
            }],
            Instruction::Lock { lock, steps, .. } if w.locks.contains(lock) => fix(steps, w),
            Instruction::Lock { lock, count, steps } => {
                let mut inner = w.clone();
                inner.locks.push(lock.clone());
                vec![Instruction::Lock {
                    lock: lock.clone(),
                    count: *count,
                    steps: fix(steps, &inner),
                }]
            }
            Instruction::ConsumeNotices { boards, key, steps } => {
                vec![Instruction::ConsumeNotices {
                    boards: boards.clone(),
                    key: key.clone(),
                    steps: fix(steps, w),
                }]
            }
            Instruction::ConsumeNoticesWhen {
                notices,
                key,
                when_not_announced,
                steps,
            } => vec![Instruction::ConsumeNoticesWhen {
                notices: notices.clone(),
                key: key.clone(),
                when_not_announced: *when_not_announced,
                steps: fix(steps, w),
            }],
            Instruction::Options {
                stop_on_failure,
                steps,
            } => vec![Instruction::Options {
                stop_on_failure: *stop_on_failure,
                steps: fix(steps, w),
            }],
            other => vec![other.clone()],
        };
        for kept in fixed {
            let ends = matches!(
                kept,
                Instruction::Fail { .. }
                    | Instruction::Finish { .. }
                    | Instruction::FinishWith { .. }
                    | Instruction::Break
                    | Instruction::RetryAgain
            );
            out.push(kept);
            if ends {
                return out;
            }
        }
    }
    out
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => (0..ORDERS_MAX).prop_map(Input::Add),
        6 => any::<usize>().prop_map(Input::Release),
        1 => (any::<usize>(), kill()).prop_map(|(pick, kill)| Input::Cancel { pick, kill }),
        1 => (any::<usize>(), kill()).prop_map(|(pick, kill)| Input::Suspend { pick, kill }),
        1 => any::<usize>().prop_map(Input::Resume),
        2 => any::<usize>().prop_map(Input::Answer),
        1 => any::<usize>().prop_map(Input::Go),
        1 => Just(Input::Post),
        1 => any::<bool>().prop_map(Input::RestartAgent),
        1 => Just(Input::RestartController),
    ]
}

fn job(
    agent: &str,
    script: &str,
    restartable: bool,
    parallelism: u32,
    timeout_ms: Option<u64>,
) -> Job {
    Job {
        agent: name(agent),
        executable: Executable::Script(script.to_owned()),
        env: BTreeMap::new(),
        args: BTreeMap::new(),
        timeout: timeout_ms.map(DurationMs),
        grace_timeout: DurationMs(1_000),
        return_codes: ReturnCodes::default(),
        restartable,
        parallelism,
    }
}

/// Far above how many orders can run one job at once.
const WIDE: u32 = 1_000;

/// The inventory of a case: the workflow `main` with the case's steps and the jobs `j1` (on
/// `a1`, restartable, two at once), `j2` (on `a1`), `j3` (on `a2`), `b1` (on `a1`), `b2` (on
/// `a2`, restartable) and `t1` (on `a2`, [`TIMEOUT_MS`]); `child` (what `addOrder` adds: `j3`),
/// the lock `l` and the board `b`. Every job runs `script`; `agents` are deployed too.
pub fn inventory(steps: &Block, script: &str, agents: Vec<Agent>) -> Inventory {
    let jobs: BTreeMap<JobName, Job> = [
        ("j1", job("a1", script, true, 2, None)),
        ("j2", job("a1", script, false, 1, None)),
        ("j3", job("a2", script, false, 1, None)),
        ("b1", job("a1", script, false, WIDE, None)),
        ("b2", job("a2", script, true, WIDE, None)),
        ("t1", job("a2", script, false, WIDE, Some(TIMEOUT_MS))),
    ]
    .into_iter()
    .map(|(n, j)| (name(n), j))
    .collect();
    let child_jobs = [(name("j3"), job("a2", script, false, 1, None))]
        .into_iter()
        .collect();
    Inventory {
        workflows: vec![
            Workflow {
                name: name("main"),
                parameters: BTreeMap::new(),
                jobs,
                steps: steps.clone(),
            },
            Workflow {
                name: name("child"),
                parameters: BTreeMap::new(),
                jobs: child_jobs,
                steps: vec![run("j3")],
            },
        ],
        agents,
        locks: vec![Lock {
            name: name("l"),
            limit: WIDE,
        }],
        boards: vec![Board {
            name: name("b"),
            lifetime: DurationMs(3_600_000),
        }],
        ..Inventory::default()
    }
}

/// Run `n` of order `order` (from 1): its return code and the value it returns.
pub fn job_result(seed: u64, order: &OrderId, n: u32) -> (i32, u32) {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for b in order.as_str().bytes().chain(n.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 31;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 29;
    let rc = if h.is_multiple_of(4) { 1 } else { 0 };
    (rc, ((h >> 8) % 100) as u32)
}

/// One run of a job, as the simulation made it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Run {
    pub order: OrderId,
    /// The order's run number, from 1.
    pub n: u32,
    pub job: JobName,
    pub attempt: u32,
    pub rc: i32,
    pub value: u32,
    /// It waits for the test to release it.
    pub blocks: bool,
}

impl Run {
    /// The values the run returns.
    pub fn values(&self) -> Vars {
        let mut v = Vars::new();
        v.insert("value".to_owned(), Value::String(self.value.to_string()));
        v
    }
}

/// A generated input made concrete: what the test does to the real system.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Add { id: OrderId, delay_ms: Option<u64> },
    Release { order: OrderId, n: u32 },
    Cancel { id: OrderId, kill: Option<Kill> },
    Suspend { id: OrderId, kill: Option<Kill> },
    Resume { id: OrderId },
    Answer { id: OrderId },
    Go { id: OrderId },
    Post,
    RestartAgent(AgentId),
    RestartController,
}

/// How the controller answers a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Done { duplicate: bool },
    Refused,
}

/// A step and the quiet point after it.
#[derive(Debug, Clone)]
pub struct Point {
    pub step: Step,
    /// The answer to a command (`None` for releases and restarts).
    pub reply: Option<Reply>,
    pub view: View,
    /// How many of [`Expected::runs`] were started by then.
    pub runs: usize,
}

/// What the simulation reached for a case.
#[derive(Debug, Clone)]
pub struct Expected {
    pub points: Vec<Point>,
    /// Every job run, in the order the simulation started them.
    pub runs: Vec<Run>,
}

/// A lock's holders (with their counts) and its queue.
pub type LockView = (BTreeMap<OrderId, u32>, VecDeque<(OrderId, u32)>);

/// What is compared at a quiet point: the controller's orders without instants and process
/// groups, the locks' holders and queues, the keys of live notices.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub orders: BTreeMap<OrderId, Order>,
    pub locks: BTreeMap<LockName, LockView>,
    pub notices: BTreeMap<BoardName, BTreeSet<String>>,
}

/// The view of a controller's world.
pub fn view(world: &World) -> View {
    View {
        orders: world
            .orders
            .iter()
            .map(|(id, o)| (id.clone(), normalized(o)))
            .collect(),
        locks: world
            .locks
            .iter()
            .map(|(n, l)| (n.clone(), (l.holders.clone(), l.queue.clone())))
            .collect(),
        notices: world
            .boards
            .iter()
            .map(|(n, b)| (n.clone(), b.notices.keys().cloned().collect()))
            .collect(),
    }
}

/// The order with every instant and process group set to 0.
pub fn normalized(order: &Order) -> Order {
    let mut o = order.clone();
    let zero = TimeMs(0);
    o.state = match o.state {
        OrderState::Processing { .. } => OrderState::Processing {
            since: zero,
            pgid: 0,
        },
        OrderState::Waiting(Wait::Sleep { .. }) => OrderState::Waiting(Wait::Sleep { until: zero }),
        OrderState::Waiting(Wait::RetryDelay { .. }) => {
            OrderState::Waiting(Wait::RetryDelay { until: zero })
        }
        OrderState::Waiting(Wait::Cycle { .. }) => OrderState::Waiting(Wait::Cycle { until: zero }),
        other => other,
    };
    o.scheduled_for = o.scheduled_for.map(|_| zero);
    for f in &mut o.frames {
        if let Frame::Cycle { since, .. } = &mut f.frame {
            *since = zero;
        }
    }
    o
}

/// What differs between two views, one line per order (or lock, or board).
pub fn diff(expected: &View, actual: &View) -> String {
    let mut out = String::new();
    let ids: BTreeSet<&OrderId> = expected.orders.keys().chain(actual.orders.keys()).collect();
    for id in ids {
        let (e, a) = (expected.orders.get(id), actual.orders.get(id));
        if e != a {
            let (se, sa) = (show(e), show(a));
            if se == sa {
                let _ = writeln!(out, "order {id}:\n  expected {e:?}\n  actual   {a:?}");
            } else {
                let _ = writeln!(out, "order {id}:\n  expected {se}\n  actual   {sa}");
            }
        }
    }
    if expected.locks != actual.locks {
        let _ = writeln!(
            out,
            "locks: expected {:?}, actual {:?}",
            expected.locks, actual.locks
        );
    }
    if expected.notices != actual.notices {
        let _ = writeln!(
            out,
            "notices: expected {:?}, actual {:?}",
            expected.notices, actual.notices
        );
    }
    out
}

fn show(o: Option<&Order>) -> String {
    match o {
        None => "(none)".to_owned(),
        Some(o) => {
            let mut s = format!(
                "{} at {} [{}] attempt {} vars {:?}",
                o.state, o.position, o.holder, o.attempt, o.vars
            );
            if let Some(m) = &o.mark {
                let _ = write!(
                    s,
                    " mark {m} #{} delivered {}",
                    o.mark_seq, o.mark_delivered
                );
            }
            let outcomes: Vec<String> = o
                .outcomes
                .iter()
                .map(|h| format!("{}: {}", h.position, h.outcome))
                .collect();
            let _ = write!(s, " outcomes [{}]", outcomes.join("; "));
            s
        }
    }
}

/// Checks that no agent runs more processes of a job than its parallelism, as the
/// controller's world shows them (its copy of every order an agent holds).
pub fn parallelism_holds(world: &World) -> Result<(), String> {
    let mut running: BTreeMap<(&AgentId, &WorkflowName, &JobName), u32> = BTreeMap::new();
    for o in world.orders.values() {
        let (OrderState::Processing { .. }, Holder::Agent(agent)) = (&o.state, &o.holder) else {
            continue;
        };
        let Some(workflow) = world.workflow(&o.workflow, o.version) else {
            continue;
        };
        let Some(Instruction::Run { job, .. }) = instruction_at(&workflow.steps, &o.position)
        else {
            continue;
        };
        let count = running.entry((agent, &o.workflow, job)).or_default();
        *count += 1;
        let limit = workflow.jobs.get(job).map_or(u32::MAX, |j| j.parallelism);
        if *count > limit {
            return Err(format!(
                "agent {agent} runs {count} processes of job {job} of workflow {}, parallelism {limit}",
                o.workflow
            ));
        }
    }
    Ok(())
}

/// Runs the case through the simulation: each input, then the quiet point after it.
pub fn expect(inventory: &Inventory, case: &Case) -> Expected {
    let mut sim = Sim::new(inventory);
    sim.verbose = false;
    let mut d = Driver {
        sim,
        seed: case.seed,
        runs: Vec::new(),
        counted: 0,
        per_order: BTreeMap::new(),
    };
    let mut points = Vec::new();
    for input in &case.inputs {
        if let Some((step, reply)) = d.apply(input) {
            d.quiesce();
            points.push(Point {
                step,
                reply,
                view: view(&d.sim.ctrl),
                runs: d.runs.len(),
            });
        }
    }
    d.sim.check_replay();
    Expected {
        points,
        runs: d.runs,
    }
}

struct Driver {
    sim: Sim,
    seed: u64,
    runs: Vec<Run>,
    /// How many of the simulation's starts are in `runs`.
    counted: usize,
    per_order: BTreeMap<OrderId, u32>,
}

impl Driver {
    fn note_starts(&mut self) {
        while let Some((_, start)) = self.sim.started.get(self.counted) {
            self.counted += 1;
            let n = self.per_order.entry(start.order.clone()).or_default();
            *n += 1;
            let (rc, value) = job_result(self.seed, &start.order, *n);
            self.runs.push(Run {
                order: start.order.clone(),
                n: *n,
                job: start.job.clone(),
                attempt: start.attempt,
                rc,
                value,
                blocks: !QUICK_JOBS.contains(&start.job.as_str()),
            });
        }
    }

    /// The order's latest run.
    fn run_of(&self, order: &OrderId) -> Run {
        self.runs
            .iter()
            .rev()
            .find(|r| &r.order == order)
            .cloned()
            .unwrap_or_else(|| panic!("order {order} has no run"))
    }

    fn end_job(&mut self, order: &OrderId) -> Run {
        let run = self.run_of(order);
        self.sim
            .finish_job(order, Exit::Code(run.rc), run.values())
            .unwrap_or_else(|e| panic!("{e}"));
        run
    }

    /// Ends the jobs that end at once and lets every timer within reach fire, until nothing
    /// moves.
    fn quiesce(&mut self) {
        for _ in 0..QUIESCE_MOVES_MAX {
            self.note_starts();
            let quick = self
                .sim
                .agents
                .values()
                .flat_map(|a| a.running.iter())
                .find(|(_, r)| QUICK_JOBS.contains(&r.start.job.as_str()))
                .map(|(o, _)| o.clone());
            if let Some(order) = quick {
                self.end_job(&order);
                continue;
            }
            match self.sim.next_instant() {
                Some(t) if t <= self.sim.now.plus(DurationMs(HORIZON_MS)) => {
                    let wait = u64::try_from(t.0 - self.sim.now.0).unwrap_or(0);
                    self.sim.advance(DurationMs(wait));
                }
                _ => return,
            }
        }
        panic!("no quiet point after {QUIESCE_MOVES_MAX} moves");
    }

    fn pick(&self, pick: usize) -> Option<OrderId> {
        crate::testkit::generate::pick_order(&self.sim, pick)
    }

    fn command(&mut self, cmd: Command) -> Option<Reply> {
        Some(match self.sim.command(cmd) {
            Ok(duplicate) => Reply::Done { duplicate },
            Err(_) => Reply::Refused,
        })
    }

    /// Applies the input; `None` when it has nothing to act on.
    fn apply(&mut self, input: &Input) -> Option<(Step, Option<Reply>)> {
        Some(match input {
            Input::Add(n) => {
                let id: OrderId = name(&format!("o{n}"));
                let delay_ms = (*n == ORDERS_MAX - 1).then_some(SCHEDULE_DELAY_MS);
                let mut vars = Vars::new();
                vars.insert("returnCode".to_owned(), Value::Number(0.0));
                let reply = self.command(Command::Add {
                    id: id.clone(),
                    workflow: name::<WorkflowName>("main"),
                    vars,
                    scheduled_for: delay_ms.map(|d| self.sim.now.plus(DurationMs(d))),
                });
                (Step::Add { id, delay_ms }, reply)
            }
            Input::Release(pick) => {
                let blocked: Vec<OrderId> = self
                    .sim
                    .agents
                    .values()
                    .flat_map(|a| a.running.iter())
                    .filter(|(_, r)| matches!(r.start.job.as_str(), "b1" | "b2"))
                    .map(|(o, _)| o.clone())
                    .collect();
                if blocked.is_empty() {
                    return None;
                }
                let order = blocked[pick % blocked.len()].clone();
                let run = self.end_job(&order);
                (Step::Release { order, n: run.n }, None)
            }
            Input::Cancel { pick, kill } => {
                let id = self.pick(*pick)?;
                let reply = self.command(Command::Cancel {
                    id: id.clone(),
                    kill: *kill,
                });
                (Step::Cancel { id, kill: *kill }, reply)
            }
            Input::Suspend { pick, kill } => {
                let id = self.pick(*pick)?;
                let reply = self.command(Command::Suspend {
                    id: id.clone(),
                    kill: *kill,
                });
                (Step::Suspend { id, kill: *kill }, reply)
            }
            Input::Resume(pick) => {
                let id = self.pick(*pick)?;
                let reply = self.command(Command::Resume {
                    id: id.clone(),
                    position: None,
                    vars: Vars::new(),
                });
                (Step::Resume { id }, reply)
            }
            Input::Answer(pick) => {
                let id = self.pick(*pick)?;
                let reply = self.command(Command::Answer {
                    id: id.clone(),
                    vars: Vars::new(),
                });
                (Step::Answer { id }, reply)
            }
            Input::Go(pick) => {
                let id = self.pick(*pick)?;
                let reply = self.command(Command::Go { id: id.clone() });
                (Step::Go { id }, reply)
            }
            Input::Post => {
                let reply = self.command(Command::PostNotice {
                    board: name("b"),
                    key: "k".to_owned(),
                });
                (Step::Post, reply)
            }
            Input::RestartAgent(second) => {
                let agent: AgentId = name(if *second { "a2" } else { "a1" });
                self.sim.crash_agent(&agent);
                (Step::RestartAgent(agent), None)
            }
            Input::RestartController => {
                self.sim.restart_controller();
                (Step::RestartController, None)
            }
        })
    }
}
