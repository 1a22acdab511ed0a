//! Why an order is not moving, in words: what `ordo order show` and an order's page say under
//! "waiting for" (a process slot of the job's `parallelism`, a lock and who holds it, notices,
//! an answer, a scheduled time, a timer, the agent it is being handed to or from).
//!
//! A reader's explanation from the state it folded, not a rule: the model decides what
//! happens, this only describes what an order waits for now.

use ordo_model::inventory::Instruction;
use ordo_model::order::nav::instruction_at;
use ordo_model::order::{Holder, Order, OrderState, Wait, World};

/// What an order waits for: the words, and the instant it waits until when it is a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    pub text: String,
    pub until_ms: Option<i64>,
}

fn why(text: String) -> Why {
    Why {
        text,
        until_ms: None,
    }
}

fn until(text: &str, ms: i64) -> Why {
    Why {
        text: text.to_owned(),
        until_ms: Some(ms),
    }
}

/// What `o` waits for in `world`, if it waits for anything.
pub fn why_waiting(world: &World, o: &Order) -> Option<Why> {
    match &o.holder {
        Holder::Attaching(agent) => return Some(why(format!("being handed to agent {agent}"))),
        Holder::Detaching(agent) => {
            return Some(why(format!("being handed back by agent {agent}")));
        }
        _ => {}
    }
    if let Some(mark) = &o.mark
        && !o.mark_delivered
        && let Some(agent) = o.holder.agent()
    {
        return Some(why(format!("agent {agent} to take the mark: {mark}")));
    }
    match &o.state {
        OrderState::Fresh | OrderState::Suspended { fresh: true } => {
            o.scheduled_for.map(|t| until("its scheduled time", t.0))
        }
        OrderState::Ready => job_slot(world, o).map(why),
        OrderState::Waiting(w) => Some(match w {
            Wait::Sleep { until: t } => until("the end of its sleep", t.0),
            Wait::RetryDelay { until: t } => until("its next try", t.0),
            Wait::Cycle { until: t } => until("the next cycle", t.0),
            other => why(match other {
                Wait::Lock { lock, count } => lock_text(world, o, lock, *count),
                Wait::Sleep { .. } | Wait::RetryDelay { .. } | Wait::Cycle { .. } => String::new(),
                Wait::Notices { boards, key, .. } => {
                    let missing: Vec<&str> = boards
                        .iter()
                        .filter(|b| {
                            world
                                .boards
                                .get(*b)
                                .is_none_or(|s| !s.notices.contains_key(key))
                        })
                        .map(|b| b.as_str())
                        .collect();
                    format!("a notice {key:?} on {}", missing.join(", "))
                }
                Wait::Children { children } => {
                    let open = children
                        .iter()
                        .filter(|c| world.orders.get(*c).is_some_and(|c| !c.state.is_terminal()))
                        .count();
                    format!("{open} of its {} fork children to end", children.len())
                }
                Wait::AddedOrder { order } => format!("the order it added, {order}, to end"),
            }),
        }),
        OrderState::Prompting { question } => Some(why(format!("an answer to {question:?}"))),
        OrderState::Suspended { .. } => Some(why("an operator to resume it".to_owned())),
        OrderState::Failed => Some(why("an operator to resume or cancel it".to_owned())),
        _ => None,
    }
}

fn lock_text(world: &World, o: &Order, lock: &ordo_model::ids::LockName, count: u32) -> String {
    let Some(state) = world.locks.get(lock) else {
        return format!("lock {lock} (not deployed)");
    };
    let holders: Vec<String> = state
        .holders
        .iter()
        .map(|(id, n)| {
            if state.limit == 1 {
                id.to_string()
            } else {
                format!("{id} ×{n}")
            }
        })
        .collect();
    let place = state.queue.iter().position(|q| q.0 == o.id).map(|i| i + 1);
    let mut text = format!("lock {lock} (×{count} of {})", state.limit);
    if !holders.is_empty() {
        text.push_str(&format!(", held by {}", holders.join(", ")));
    }
    if let Some(p) = place {
        text.push_str(&format!(", place {p} in its queue"));
    }
    text
}

/// A ready order at a job whose `parallelism` is used up on its agent.
fn job_slot(world: &World, o: &Order) -> Option<String> {
    let workflow = world.workflow(&o.workflow, o.version)?;
    let Some(Instruction::Run { job, .. }) = instruction_at(&workflow.steps, &o.position) else {
        return None;
    };
    let spec = workflow.jobs.get(job)?;
    let running = world
        .orders
        .values()
        .filter(|other| {
            other.workflow == o.workflow
                && matches!(other.state, OrderState::Processing { .. })
                && world
                    .workflow(&other.workflow, other.version)
                    .and_then(|w| instruction_at(&w.steps, &other.position))
                    .is_some_and(|i| matches!(i, Instruction::Run { job: j, .. } if j == job))
        })
        .count();
    if running as u64 >= u64::from(spec.parallelism) {
        Some(format!(
            "a process slot of job {job} on agent {} ({running} running, parallelism {})",
            spec.agent, spec.parallelism
        ))
    } else {
        Some(format!("job {job} to start on agent {}", spec.agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::ids::{LockName, OrderId, VersionId};
    use ordo_model::order::{LockState, Side};
    use ordo_model::time::TimeMs;
    use ordo_model::yaml::{Limits, SourceFile, parse_inventory};

    const YAML: &str = "
workflow: w
jobs:
  slow: { agent: a, script: sleep 1 }
steps:
  - lock: l
    do:
      - run: slow
---
agent: a
url: wss://127.0.0.1:4444
---
lock: l
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

    fn order(world: &mut World, id: &str, position: &str, state: OrderState) -> OrderId {
        let id = OrderId::new(id).unwrap();
        let mut o = Order::fresh(
            id.clone(),
            ordo_model::ids::WorkflowName::new("w").unwrap(),
            VersionId(1),
            Default::default(),
            None,
        );
        o.position = position.parse().unwrap();
        o.state = state;
        world.orders.insert(id.clone(), o);
        id
    }

    #[test]
    fn a_queued_order_names_the_lock_its_holder_and_its_place() {
        let mut world = world();
        let a = order(&mut world, "a", "0/do/0", OrderState::Ready);
        let lock = LockName::new("l").unwrap();
        let b = order(
            &mut world,
            "b",
            "0",
            OrderState::Waiting(Wait::Lock {
                lock: lock.clone(),
                count: 1,
            }),
        );
        let mut state = LockState {
            limit: 1,
            ..Default::default()
        };
        state.holders.insert(a, 1);
        state.queue.push_back((b.clone(), 1));
        world.locks.insert(lock, state);
        let why = why_waiting(&world, &world.orders[&b]).unwrap();
        assert_eq!(
            why.text,
            "lock l (×1 of 1), held by a, place 1 in its queue"
        );
        assert_eq!(why.until_ms, None);
    }

    #[test]
    fn a_ready_order_says_whether_its_job_has_a_free_process_slot() {
        let mut world = world();
        let a = order(&mut world, "a", "0/do/0", OrderState::Ready);
        let why = why_waiting(&world, &world.orders[&a]).unwrap();
        assert_eq!(why.text, "job slow to start on agent a");
        order(
            &mut world,
            "b",
            "0/do/0",
            OrderState::Processing {
                since: TimeMs(1),
                pgid: 0,
            },
        );
        let why = why_waiting(&world, &world.orders[&a]).unwrap();
        assert_eq!(
            why.text,
            "a process slot of job slow on agent a (1 running, parallelism 1)"
        );
    }

    #[test]
    fn a_scheduled_order_waits_until_its_time_and_a_finished_one_for_nothing() {
        let mut world = world();
        let a = order(&mut world, "a", "0", OrderState::Fresh);
        world.orders.get_mut(&a).unwrap().scheduled_for = Some(TimeMs(5_000));
        let why = why_waiting(&world, &world.orders[&a]).unwrap();
        assert_eq!(
            (why.text.as_str(), why.until_ms),
            ("its scheduled time", Some(5_000))
        );
        world.orders.get_mut(&a).unwrap().state = OrderState::Finished;
        assert_eq!(why_waiting(&world, &world.orders[&a]), None);
    }
}
