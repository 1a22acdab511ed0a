//! The queues of orders the cockpit shows: where each order stands towards a job process.
//!
//! The one definition, read from an order's state in the published [`World`] (what the
//! controller folded, never a rule of its own):
//!
//! | Queue | Orders |
//! |---|---|
//! | `waiting` | `ready` at a job (`run`): waiting for a process — a slot of the job's `parallelism`, of the agent's `processes_max`, a subagent, or the handover to the agent |
//! | `running` | `processing`: the job's process runs (or its start is journaled) |
//! | `finished` | `finished` |
//! | `failed` | `failed` (a fork child's failure joined with `joinIfFailed` included) |
//!
//! Every other order — fresh or scheduled, waiting for a lock, a notice, a time or its fork
//! children, prompting, suspended, cancelled, or ready at an instruction that is not a job —
//! is in no queue.
//!
//! An order's agent, for filters: the agent that holds it (or is being handed it), else the
//! agent of the job at its position. Ended orders are back at the controller and have none.

use ordo_model::ids::AgentId;
use ordo_model::inventory::Instruction;
use ordo_model::order::nav::instruction_at;
use ordo_model::order::{Order, OrderState, World};

/// A queue of orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Queue {
    Waiting,
    Running,
    Finished,
    Failed,
}

/// Every queue, in the order the UI shows them.
pub const QUEUES: [Queue; 4] = [
    Queue::Waiting,
    Queue::Running,
    Queue::Finished,
    Queue::Failed,
];

/// Every queue's name, as [`QUEUES`].
pub const QUEUE_NAMES: [&str; 4] = ["waiting", "running", "finished", "failed"];

impl Queue {
    pub fn name(self) -> &'static str {
        match self {
            Queue::Waiting => "waiting",
            Queue::Running => "running",
            Queue::Finished => "finished",
            Queue::Failed => "failed",
        }
    }

    /// The queue of a name, or an error naming the queues.
    pub fn parse(name: &str) -> Result<Queue, String> {
        QUEUES
            .into_iter()
            .find(|q| q.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown queue {name:?}; use one of {}",
                    QUEUE_NAMES.join(", ")
                )
            })
    }

    /// The order state name ([`crate::view::STATE_NAMES`]) of every order in this queue.
    pub fn state_name(self) -> &'static str {
        match self {
            Queue::Waiting => "ready",
            Queue::Running => "processing",
            Queue::Finished => "finished",
            Queue::Failed => "failed",
        }
    }
}

/// The queue `o` is in, if any.
pub fn queue_of(world: &World, o: &Order) -> Option<Queue> {
    match o.state {
        OrderState::Ready => job_agent(world, o).map(|_| Queue::Waiting),
        OrderState::Processing { .. } => Some(Queue::Running),
        OrderState::Finished => Some(Queue::Finished),
        OrderState::Failed | OrderState::FailedInFork => Some(Queue::Failed),
        _ => None,
    }
}

/// The agent of the job at the order's position, when it is at a job.
pub fn job_agent<'w>(world: &'w World, o: &Order) -> Option<&'w AgentId> {
    let workflow = world.workflow(&o.workflow, o.version)?;
    match instruction_at(&workflow.steps, &o.position)? {
        Instruction::Run { job, .. } => workflow.jobs.get(job).map(|j| &j.agent),
        _ => None,
    }
}

/// The agent an order is with: its holder's, else its job's.
pub fn order_agent<'w>(world: &'w World, o: &'w Order) -> Option<&'w AgentId> {
    o.holder.agent().or_else(|| job_agent(world, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::ids::{OrderId, VersionId, WorkflowName};
    use ordo_model::order::{Holder, Side, Wait};
    use ordo_model::time::TimeMs;
    use ordo_model::yaml::{Limits, SourceFile, parse_inventory};

    const YAML: &str = "
workflow: w
jobs:
  work: { agent: a, script: sleep 1 }
steps:
  - sleep: 1s
  - run: work
---
agent: a
url: wss://127.0.0.1:4444
";

    fn world() -> World {
        let inventory = parse_inventory(&[SourceFile::new("w.yaml", YAML)], &Limits::default())
            .expect("the inventory checks");
        let mut world = World::new(Side::Controller);
        for w in inventory.workflows {
            world
                .workflows
                .entry(w.name.clone())
                .or_default()
                .insert(VersionId(1), w);
        }
        world
    }

    fn order(position: &str, state: OrderState, holder: Holder) -> Order {
        let mut o = Order::fresh(
            OrderId::new("o").unwrap(),
            WorkflowName::new("w").unwrap(),
            VersionId(1),
            Default::default(),
            None,
        );
        o.position = position.parse().unwrap();
        o.state = state;
        o.holder = holder;
        o
    }

    #[test]
    fn every_order_is_in_at_most_one_queue_by_its_state() {
        let world = world();
        let a = AgentId::new("a").unwrap();
        let at_agent = Holder::Agent(a.clone());
        let cases = [
            // Ready at the job: waiting for a process, on the agent or on its way there.
            (
                "1",
                OrderState::Ready,
                at_agent.clone(),
                Some(Queue::Waiting),
            ),
            (
                "1",
                OrderState::Ready,
                Holder::Attaching(a.clone()),
                Some(Queue::Waiting),
            ),
            (
                "1",
                OrderState::Ready,
                Holder::Controller,
                Some(Queue::Waiting),
            ),
            // Ready at the sleep: not at a job.
            ("0", OrderState::Ready, Holder::Controller, None),
            (
                "1",
                OrderState::Processing {
                    since: TimeMs(1),
                    pgid: 7,
                },
                at_agent.clone(),
                Some(Queue::Running),
            ),
            (
                "2",
                OrderState::Finished,
                Holder::Controller,
                Some(Queue::Finished),
            ),
            (
                "1",
                OrderState::Failed,
                at_agent.clone(),
                Some(Queue::Failed),
            ),
            (
                "1",
                OrderState::FailedInFork,
                at_agent.clone(),
                Some(Queue::Failed),
            ),
            ("1", OrderState::Cancelled, Holder::Controller, None),
            ("0", OrderState::Fresh, Holder::Controller, None),
            (
                "1",
                OrderState::Suspended { fresh: false },
                at_agent.clone(),
                None,
            ),
            (
                "0",
                OrderState::Waiting(Wait::Sleep { until: TimeMs(5) }),
                Holder::Controller,
                None,
            ),
        ];
        for (position, state, holder, queue) in cases {
            let o = order(position, state.clone(), holder);
            assert_eq!(queue_of(&world, &o), queue, "{state:?} at {position}");
            if let Some(q) = queue {
                assert_eq!(q.state_name(), o.state.name(), "{state:?}");
            }
        }
    }

    #[test]
    fn an_order_is_with_its_holder_or_its_jobs_agent() {
        let world = world();
        let a = AgentId::new("a").unwrap();
        let o = order("1", OrderState::Ready, Holder::Controller);
        assert_eq!(order_agent(&world, &o), Some(&a));
        let o = order("2", OrderState::Finished, Holder::Controller);
        assert_eq!(order_agent(&world, &o), None);
        let b = AgentId::new("b").unwrap();
        let o = order("0", OrderState::Ready, Holder::Agent(b.clone()));
        assert_eq!(order_agent(&world, &o), Some(&b));
    }

    #[test]
    fn names_parse_back() {
        for (q, name) in QUEUES.into_iter().zip(QUEUE_NAMES) {
            assert_eq!(q.name(), name);
            assert_eq!(Queue::parse(name), Ok(q));
        }
        let e = Queue::parse("stuck").unwrap_err();
        assert!(e.contains("stuck") && e.contains("waiting"), "{e}");
    }
}
