//! The planner inside the machine, without tokio: an injected clock, every proposal committed
//! at once (or lost), the journal kept in memory and folded.

use super::*;
use crate::machine::{Action, Entry, Machine, Settings, Token};
use ordo_model::order::{KeyedEvent, OrderEvent};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use std::collections::BTreeMap;

const HOUR: i64 = 3600 * 1000;
/// 2026-06-01T00:00:00Z.
const T0: i64 = 1_780_272_000_000;

fn inventory(schedule: &str) -> Inventory {
    let files = [
        "agent: a1\nurl: wss://127.0.0.1:9\ncertificateName: localhost\n",
        "workflow: w\njobs:\n  j:\n    agent: a1\n    script: 'true'\nsteps:\n  - run: j\n",
        schedule,
    ];
    let files: Vec<SourceFile> = files
        .iter()
        .enumerate()
        .map(|(i, t)| SourceFile::new(format!("f{i}.yaml"), (*t).to_owned()))
        .collect();
    parse_inventory(&files, &Limits::default()).expect("the test inventory is valid")
}

fn hourly(missed: &str) -> Inventory {
    inventory(&format!(
        "schedule: s\nworkflow: w\nargs: {{ day: $date }}\ncron: \"0 * * * *\"\nmissed: {missed}\n"
    ))
}

fn settings() -> Settings {
    Settings {
        plan: PlanSettings {
            days_ahead: 1,
            attach_ahead_ms: HOUR as u64,
            late_ms: 60_000,
            fires_per_schedule_max: 1000,
            history_ms: 48 * HOUR as u64,
        },
        ..Settings::default()
    }
}

/// One controller, or a pair of machines sharing one committed log.
struct Sim {
    m: Machine,
    now: TimeMs,
    log: Vec<Entry>,
    term: u64,
    wake: Option<TimeMs>,
    next_token: u64,
    /// Commands sent to agents, in order.
    links: Vec<(ordo_model::ids::AgentId, crate::machine::LinkMsg)>,
}

fn fold(log: &[Entry]) -> State {
    let mut s = State::new();
    for e in log {
        for (id, stored) in &e.events {
            let _ = s.apply(*id, stored);
        }
    }
    s
}

impl Sim {
    fn new(inv: &Inventory) -> Sim {
        let mut sim = Sim {
            m: Machine::new(State::new(), settings()),
            now: TimeMs(T0),
            log: Vec::new(),
            term: 1,
            wake: None,
            next_token: 0,
            links: Vec::new(),
        };
        sim.m.became_leader(1);
        sim.flush();
        sim.deploy(inv);
        sim
    }

    fn deploy(&mut self, inv: &Inventory) {
        self.next_token += 1;
        self.m.deploy(Token(self.next_token), inv, self.now);
        self.flush();
    }

    /// A deployment of no files removing `removed`; the machine's answer.
    fn remove(&mut self, removed: Removals) -> crate::machine::Reply {
        self.next_token += 1;
        let token = Token(self.next_token);
        let request = crate::machine::DeployRequest {
            removed,
            ..Default::default()
        };
        self.m.deploy_files(token, &request, self.now);
        self.m.flush(self.now);
        let mut answer = None;
        for _ in 0..100 {
            let actions = self.m.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Append {
                        position, events, ..
                    } => {
                        self.log.push(Entry { position, events });
                        self.m.committed(position, self.now);
                    }
                    Action::Wake(at) => self.wake = at,
                    Action::Link { agent, msg } => self.links.push((agent, msg)),
                    Action::Reply { token: t, reply } if t == token => answer = Some(reply),
                    _ => {}
                }
            }
        }
        answer.expect("the deployment is answered")
    }

    fn plan(&mut self, command: PlanCommand) {
        self.next_token += 1;
        self.m
            .plan_command(Token(self.next_token), command, self.now);
        self.flush();
    }

    /// A round, with every proposal committed at once.
    fn flush(&mut self) {
        self.m.flush(self.now);
        for _ in 0..100 {
            let actions = self.m.take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                match a {
                    Action::Append {
                        position, events, ..
                    } => {
                        self.log.push(Entry { position, events });
                        self.m.committed(position, self.now);
                    }
                    Action::Wake(at) => self.wake = at,
                    Action::Rebuild { .. } => self.m.rebuilt(fold(&self.log)),
                    Action::Link { agent, msg } => self.links.push((agent, msg)),
                    _ => {}
                }
            }
        }
        panic!("the machine keeps asking");
    }

    /// Time goes on to `until`, the machine woken whenever it asked.
    fn run_until(&mut self, until: i64) {
        for _ in 0..100_000 {
            match self.wake {
                Some(at) if at.0 <= until => {
                    self.now = TimeMs(at.0.max(self.now.0));
                    self.m.tick(self.now);
                    self.flush();
                }
                _ => break,
            }
        }
        self.now = TimeMs(until);
        self.m.tick(self.now);
        self.flush();
    }

    /// Another controller takes over from the committed log (a failover, a restart).
    fn fail_over(&mut self) {
        self.term += 1;
        let next = self.log.last().map_or(2, |e| e.position.index + 1);
        self.m = Machine::new(fold(&self.log), settings());
        self.m.became_leader_at(self.term, next);
        self.wake = None;
        self.flush();
    }

    fn state(&self) -> State {
        let s = fold(&self.log);
        assert_eq!(
            self.m.state(),
            &s,
            "the machine's state is the fold of its log"
        );
        s
    }

    /// Every order added, with how often.
    fn added(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in &self.log {
            for (_, stored) in &e.events {
                if let Body::Event(KeyedEvent::Order {
                    id,
                    event: OrderEvent::Added { .. },
                }) = &stored.body
                {
                    *out.entry(id.to_string()).or_default() += 1;
                }
            }
        }
        out
    }

    fn statuses(&self) -> Vec<(i64, Status)> {
        let s = self.state();
        let p = &s.plan.schedules[&ScheduleName::new("s").unwrap()];
        p.entries()
            .into_iter()
            .map(|(f, st)| ((f.at.0 - T0) / HOUR, st.clone()))
            .collect()
    }
}

#[test]
fn a_deployed_schedule_is_planned_ahead_and_its_next_order_attached_early() {
    let sim = Sim::new(&hourly("catch-up"));
    let s = sim.state();
    let p = &s.plan.schedules[&ScheduleName::new("s").unwrap()];
    assert_eq!(
        p.planned_until.0,
        T0 + 48 * HOUR,
        "one day ahead, and one more"
    );
    assert_eq!(p.entries().len(), 48, "every hour from the deployment on");
    // The fires at T0 and T0+1h are within the attach horizon.
    assert_eq!(
        sim.added().keys().cloned().collect::<Vec<_>>(),
        vec![
            "#2026-06-01#s@00:00:00+00:00".to_owned(),
            "#2026-06-01#s@01:00:00+00:00".to_owned()
        ]
    );
    let o = s
        .world
        .order(&OrderId::new("#2026-06-01#s@01:00:00+00:00").unwrap())
        .unwrap();
    assert_eq!(o.scheduled_for, Some(TimeMs(T0 + HOUR)));
    assert_eq!(
        o.vars.get("day"),
        Some(&ordo_model::value::Value::String("2026-06-01".into())),
        "the arguments are rendered with the plan variables"
    );
    assert!(
        sim.links.iter().any(|(a, m)| a.as_str() == "a1"
            && matches!(m, crate::machine::LinkMsg::Command(
                ordo_model::order::AgentCommand::AttachOrder { order, .. }) if order.id == o.id)),
        "the scheduled order is handed to its agent ahead of time"
    );
    assert_eq!(
        sim.wake,
        Some(TimeMs(T0 + HOUR)),
        "next: the order of 02:00"
    );
}

#[test]
fn days_of_running_order_each_instant_once_and_extend_the_plan() {
    let mut sim = Sim::new(&hourly("catch-up"));
    sim.run_until(T0 + 72 * HOUR + 1);
    let added = sim.added();
    assert!(added.values().all(|n| *n == 1), "each order added once");
    // Every hour up to 72 h + the attach horizon.
    assert_eq!(added.len(), 74);
    let s = sim.state();
    let p = &s.plan.schedules[&ScheduleName::new("s").unwrap()];
    assert!(p.planned_until.0 >= T0 + 96 * HOUR);
    assert!(
        p.entries()
            .iter()
            .all(|(f, _)| f.at.0 >= T0 + 72 * HOUR - 48 * HOUR - HOUR),
        "decided instants older than the history are forgotten"
    );
}

#[test]
fn a_failover_neither_loses_nor_repeats_an_instant() {
    let mut sim = Sim::new(&hourly("catch-up"));
    for k in 1..20 {
        sim.run_until(T0 + k * 5 * HOUR / 2);
        sim.fail_over();
    }
    sim.run_until(T0 + 50 * HOUR);
    let added = sim.added();
    assert!(added.values().all(|n| *n == 1), "{added:?}");
    assert_eq!(
        added.len(),
        52,
        "every hour up to 50 h + the horizon, none lost"
    );
    assert!(
        sim.statuses()
            .iter()
            .filter(|(h, _)| *h <= 51)
            .all(|(_, s)| *s == Status::Ordered)
    );
}

/// The controller is away for 5 hours; then `missed:` decides.
fn outage(missed: &str) -> Vec<(i64, Status)> {
    let mut sim = Sim::new(&hourly(missed));
    sim.run_until(T0 + HOUR / 2);
    // Away: no round from 00:30 to 07:30 (the orders of 00:00 and 01:00 were added).
    sim.now = TimeMs(T0 + 7 * HOUR + HOUR / 2);
    sim.fail_over();
    assert!(sim.added().values().all(|n| *n == 1));
    sim.statuses()
        .into_iter()
        .filter(|(h, _)| *h <= 8)
        .collect()
}

#[test]
fn missed_instants_follow_the_policy() {
    use Status::*;
    let missed = || Skipped(Skip::Missed);
    assert_eq!(
        outage("catch-up"),
        (0..=8).map(|h| (h, Ordered)).collect::<Vec<_>>()
    );
    assert_eq!(
        outage("latest"),
        vec![
            (0, Ordered),
            (1, Ordered),
            (2, missed()),
            (3, missed()),
            (4, missed()),
            (5, missed()),
            (6, missed()),
            (7, Ordered),
            (8, Ordered)
        ]
    );
    assert_eq!(
        outage("skip"),
        vec![
            (0, Ordered),
            (1, Ordered),
            (2, missed()),
            (3, missed()),
            (4, missed()),
            (5, missed()),
            (6, missed()),
            (7, missed()),
            (8, Ordered)
        ]
    );
}

#[test]
fn a_pause_cancels_orders_not_started_and_a_resume_applies_the_policy() {
    let mut sim = Sim::new(&hourly("latest"));
    sim.run_until(T0 + HOUR / 2);
    sim.plan(PlanCommand::Pause {
        schedule: ScheduleName::new("s").unwrap(),
    });
    let s = sim.state();
    let o = s
        .world
        .order(&OrderId::new("#2026-06-01#s@01:00:00+00:00").unwrap())
        .unwrap();
    assert!(
        o.mark.is_some() || o.state.is_terminal(),
        "cancelled: {o:?}"
    );
    sim.run_until(T0 + 4 * HOUR + HOUR / 2);
    assert_eq!(sim.added().len(), 2, "nothing added while paused");
    sim.plan(PlanCommand::Resume {
        schedule: ScheduleName::new("s").unwrap(),
    });
    let st: Vec<_> = sim
        .statuses()
        .into_iter()
        .filter(|(h, _)| *h <= 5)
        .collect();
    assert_eq!(
        st,
        vec![
            (0, Status::Ordered),
            (1, Status::Skipped(Skip::Paused)),
            (2, Status::Skipped(Skip::Missed)),
            (3, Status::Skipped(Skip::Missed)),
            (4, Status::Ordered),
            (5, Status::Ordered)
        ]
    );
}

#[test]
fn a_changed_schedule_is_planned_again_from_now_on_and_past_instants_stay() {
    let mut sim = Sim::new(&hourly("catch-up"));
    sim.run_until(T0 + 2 * HOUR + HOUR / 2);
    // Now every two hours, at odd hours: the order of 03:00 (added) stays, the plan of
    // 04:00 goes.
    sim.deploy(&inventory(
        "schedule: s\nworkflow: w\ncron: \"0 1-23/2 * * *\"\n",
    ));
    let st: Vec<_> = sim
        .statuses()
        .into_iter()
        .filter(|(h, _)| *h <= 7)
        .collect();
    assert_eq!(
        st,
        vec![
            (0, Status::Ordered),
            (1, Status::Ordered),
            (2, Status::Ordered),
            (3, Status::Ordered),
            (5, Status::Planned),
            (7, Status::Planned)
        ]
    );
    // Now at even hours: the order of 03:00, not started, is cancelled.
    sim.deploy(&inventory(
        "schedule: s\nworkflow: w\ncron: \"0 */2 * * *\"\n",
    ));
    let st: Vec<_> = sim
        .statuses()
        .into_iter()
        .filter(|(h, _)| *h <= 4)
        .collect();
    assert_eq!(
        st,
        vec![
            (0, Status::Ordered),
            (1, Status::Ordered),
            (2, Status::Ordered),
            (3, Status::Skipped(Skip::Replaced)),
            (4, Status::Planned)
        ]
    );
    assert!(sim.added().values().all(|n| *n == 1));
}

#[test]
fn a_planned_order_is_skipped_by_hand() {
    let mut sim = Sim::new(&hourly("catch-up"));
    sim.plan(PlanCommand::Skip {
        order: OrderId::new("#2026-06-01#s@05:00:00+00:00").unwrap(),
    });
    sim.plan(PlanCommand::Skip {
        order: OrderId::new("#2026-06-01#s@01:00:00+00:00").unwrap(),
    });
    sim.run_until(T0 + 6 * HOUR);
    let st: Vec<_> = sim
        .statuses()
        .into_iter()
        .filter(|(h, _)| *h <= 5)
        .collect();
    assert_eq!(st[1], (1, Status::Skipped(Skip::Cancelled)));
    assert_eq!(st[5], (5, Status::Skipped(Skip::Cancelled)));
    assert!(!sim.added().contains_key("#2026-06-01#s@05:00:00+00:00"));
    assert!(
        super::command(
            &sim.state(),
            PlanCommand::Skip {
                order: OrderId::new("#2026-06-01#nope@05:00:00+00:00").unwrap()
            },
            sim.now
        )
        .is_err()
    );
}

#[test]
fn a_paused_schedule_from_yaml_plans_nothing() {
    let sim = Sim::new(&inventory(
        "schedule: s\nworkflow: w\ncron: \"0 * * * *\"\npaused: true\n",
    ));
    assert!(sim.added().is_empty());
    assert!(sim.statuses().is_empty());
}

#[test]
fn planned_orders_carry_their_schedules_priority_to_the_agent() {
    let sim = Sim::new(&inventory(
        "schedule: s\nworkflow: w\ncron: \"0 * * * *\"\npriority: 12\n",
    ));
    let s = sim.state();
    let id = OrderId::new("#2026-06-01#s@01:00:00+00:00").unwrap();
    assert!(s.world.order(&id).is_some());
    assert_eq!(s.world.priority(&id), 12);
    assert!(
        sim.links
            .iter()
            .any(|(_, m)| matches!(m, crate::machine::LinkMsg::Command(
                ordo_model::order::AgentCommand::AttachOrderWithOptions { order, options, .. })
                if order.id == id && options.priority == 12)),
        "the agent is given the priority with the order"
    );
}

#[test]
fn an_order_added_ahead_carries_its_schedules_missed_policy_to_its_agent() {
    let sim = Sim::new(&hourly("skip"));
    let attached: Vec<&ordo_model::order::Order> =
        sim.links
            .iter()
            .filter_map(|(_, m)| match m {
                crate::machine::LinkMsg::Command(
                    ordo_model::order::AgentCommand::AttachOrder { order, .. },
                ) => Some(&**order),
                _ => None,
            })
            .collect();
    assert!(!attached.is_empty());
    for o in attached {
        let p = ordo_model::order::missed::policy(o).expect("the order carries the policy");
        assert_eq!(p.schedule.as_str(), "s");
        assert_eq!(p.missed, ordo_model::schedule::Missed::Skip);
        assert_eq!(p.late_ms, 60_000, "the plan's late_ms");
        assert_eq!(p.missed_by_ms, None);
    }
}

#[test]
fn the_planned_instants_of_a_day_are_cancelled() {
    let mut sim = Sim::new(&hourly("catch-up"));
    let day = "2026-06-01".parse().unwrap();
    assert!(
        super::command(
            &sim.state(),
            PlanCommand::CancelDay {
                date: day,
                schedule: Some(ScheduleName::new("nope").unwrap()),
            },
            sim.now
        )
        .is_err(),
        "an unknown schedule"
    );
    sim.plan(PlanCommand::CancelDay {
        date: day,
        schedule: Some(ScheduleName::new("s").unwrap()),
    });
    sim.run_until(T0 + 30 * HOUR);
    let st = sim.statuses();
    assert_eq!(
        st[0],
        (0, Status::Ordered),
        "its order had started at its instant"
    );
    assert!(
        st.iter()
            .filter(|(h, _)| (1..24).contains(h))
            .all(|(_, s)| *s == Status::Skipped(Skip::Cancelled)),
        "{st:?}"
    );
    assert!(
        st.iter()
            .filter(|(h, _)| (24..30).contains(h))
            .all(|(_, s)| *s == Status::Ordered),
        "the next day runs: {st:?}"
    );
    let s = sim.state();
    let o = s
        .world
        .order(&OrderId::new("#2026-06-01#s@01:00:00+00:00").unwrap());
    assert!(
        o.is_none_or(|o| o.state == OrderState::Cancelled || o.mark.is_some()),
        "the added order is cancelled: {o:?}"
    );
}

#[test]
fn a_backfill_adds_the_past_instants_once() {
    let mut sim = Sim::new(&hourly("skip"));
    sim.run_until(T0 + 5 * HOUR + 1);
    let before = sim.added();
    let backfill = PlanCommand::Backfill {
        schedule: ScheduleName::new("s").unwrap(),
        from: "2026-05-31".parse().unwrap(),
        until: "2026-06-01".parse().unwrap(),
    };
    sim.plan(backfill.clone());
    let added = sim.added();
    assert!(added.values().all(|n| *n == 1), "each order added once");
    let new: Vec<&String> = added.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(new.len(), 24, "the day before the deployment: {new:?}");
    assert!(new.iter().all(|k| k.starts_with("#2026-05-31#s@")));
    let s = sim.state();
    let o = s
        .world
        .order(&OrderId::new("#2026-05-31#s@07:00:00+00:00").unwrap())
        .unwrap();
    assert!(
        ordo_model::order::missed::policy(o).is_none(),
        "a backfilled order is asked for: no missed: policy"
    );
    assert_ne!(o.state, OrderState::Cancelled);
    let st = sim.statuses();
    assert!(
        st.iter()
            .filter(|(h, _)| *h < 0)
            .all(|(_, s)| *s == Status::Ordered),
        "{st:?}"
    );
    sim.plan(backfill);
    assert_eq!(sim.added(), added, "a second backfill adds nothing");
    assert!(
        super::command(
            &sim.state(),
            PlanCommand::Backfill {
                schedule: ScheduleName::new("s").unwrap(),
                from: "2025-01-01".parse().unwrap(),
                until: "2026-06-01".parse().unwrap(),
            },
            sim.now
        )
        .is_err(),
        "more than a year"
    );
    // Hourly for 60 days is 1440 orders: more than one backfill adds.
    let refused = super::command(
        &sim.state(),
        PlanCommand::Backfill {
            schedule: ScheduleName::new("s").unwrap(),
            from: "2026-03-01".parse().unwrap(),
            until: "2026-04-29".parse().unwrap(),
        },
        sim.now,
    );
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("split the range")),
        "{refused:?}"
    );
}

fn before_s1_holder(s: &State) -> ordo_model::order::Holder {
    let o = &orders_of(s, "s")[&1];
    assert!(o.holder.agent().is_some(), "on its way to the agent: {o:?}");
    o.holder.clone()
}

/// The orders of schedule `name` added so far, by hour from T0.
fn orders_of(s: &State, name: &str) -> BTreeMap<i64, ordo_model::order::Order> {
    s.world
        .orders
        .values()
        .filter(|o| o.id.as_str().contains(&format!("#{name}@")))
        .map(|o| ((o.scheduled_for.unwrap().0 - T0) / HOUR, o.clone()))
        .collect()
}

#[test]
fn a_removed_schedule_cancels_its_orders_not_started_and_leaves_the_rest() {
    // `s` runs a job on the agent (its orders are handed to it ahead of their instant); `r`
    // starts with a prompt on the controller (its order of 00:00 has started by 00:30); `t`
    // stays.
    let mut sim = Sim::new(&inventory(
        "workflow: p\nsteps: [ { prompt: ok? } ]\n---\n\
         schedule: s\nworkflow: w\ncron: \"0 * * * *\"\n---\n\
         schedule: r\nworkflow: p\ncron: \"0 * * * *\"\n---\n\
         schedule: t\nworkflow: w\ncron: \"0 * * * *\"\n",
    ));
    sim.run_until(T0 + HOUR / 2);
    let before = sim.state();
    assert_eq!(orders_of(&before, "s").len(), 2, "00:00 and 01:00 added");
    assert_eq!(orders_of(&before, "r")[&0].state.name(), "prompting");
    let reply = sim.remove(Removals {
        schedules: vec![
            ScheduleName::new("s").unwrap(),
            ScheduleName::new("r").unwrap(),
        ],
        ..Removals::default()
    });
    let crate::machine::Reply::Deploy(Ok(reply)) = reply else {
        panic!("the removal is made: {reply:?}");
    };
    assert!(
        reply.changes.iter().any(|c| c.contains("ScheduleRemoved")),
        "{:?}",
        reply.changes
    );
    let after = sim.state();
    assert!(
        !after
            .plan
            .schedules
            .contains_key(&ScheduleName::new("s").unwrap())
    );
    assert!(
        !after
            .plan
            .schedules
            .contains_key(&ScheduleName::new("r").unwrap())
    );
    assert!(
        after
            .plan
            .schedules
            .contains_key(&ScheduleName::new("t").unwrap())
    );
    // Handed to the agent and not started (01:00): cancelled there (marked, the agent is
    // told). The one whose instant has come (00:00) runs on.
    let s = orders_of(&after, "s");
    assert!(
        matches!(s[&1].mark, Some(ordo_model::order::Mark::Cancel { .. })),
        "{:?}",
        s[&1]
    );
    assert_eq!(s[&1].holder, before_s1_holder(&before));
    assert!(
        s[&0].mark.is_none() && s[&0].state.name() != "fresh",
        "{:?}",
        s[&0]
    );
    let r = orders_of(&after, "r");
    assert_eq!(r[&0].state.name(), "prompting", "the started order runs on");
    assert!(r[&0].mark.is_none());
    assert!(r[&1].state.is_terminal(), "{:?}", r[&1]);
    for (hour, o) in orders_of(&after, "t") {
        assert!(
            o.mark.is_none() && !o.state.is_terminal(),
            "t at {hour}h is left alone: {o:?}"
        );
    }
    // The plan journaled why before the schedule went.
    let plan_events: Vec<String> = sim
        .log
        .iter()
        .flat_map(|e| &e.events)
        .filter_map(|(_, st)| match &st.body {
            Body::Plan(e) if e.key() == "schedule:s" => Some(e.to_string()),
            _ => None,
        })
        .collect();
    let n = plan_events.len();
    assert_eq!(
        plan_events[n - 2..],
        [
            format!("Skipped s at {}: removed", T0 + HOUR),
            "ScheduleRemoved s".to_owned()
        ],
        "{plan_events:?}"
    );
    // Nothing of them is planned or added from now on; `t` goes on.
    let added = sim.added();
    sim.run_until(T0 + 3 * HOUR);
    let later = sim.added();
    let new: Vec<&String> = later.keys().filter(|k| !added.contains_key(*k)).collect();
    assert!(!new.is_empty());
    assert!(new.iter().all(|k| k.contains("#t@")), "{new:?}");
    // The removal again: nothing to remove.
    let again = sim.remove(Removals {
        schedules: vec![ScheduleName::new("s").unwrap()],
        ..Removals::default()
    });
    assert!(
        matches!(&again, crate::machine::Reply::Deploy(Err(e)) if e.to_string().contains("schedule `s` is not deployed")),
        "{again:?}"
    );
}

/// A planned order passes the rule of every added order: an argument its workflow does not
/// declare refuses it, and its instant shows why (deploy refuses such a schedule, so the
/// inventory is edited after the check, as a workflow deployed without the check would leave
/// it). The plan's own variables (`$date`, `$scheduledFor`, …) are not arguments: only the
/// schedule's `args` are passed.
#[test]
fn a_planned_order_with_an_undeclared_argument_is_refused_and_its_instant_says_why() {
    let files = [
        "agent: a1\nurl: wss://127.0.0.1:9\ncertificateName: localhost\n",
        "workflow: w\nparameters: { day: {} }\njobs:\n  j:\n    agent: a1\n    script: 'true'\nsteps:\n  - run: j\n",
        "schedule: s\nworkflow: w\nargs: { day: $date }\ncron: \"0 * * * *\"\n",
    ];
    let files: Vec<SourceFile> = files
        .iter()
        .enumerate()
        .map(|(i, t)| SourceFile::new(format!("f{i}.yaml"), (*t).to_owned()))
        .collect();
    let good = parse_inventory(&files, &Limits::default()).expect("the test inventory is valid");
    let sim = Sim::new(&good);
    assert!(
        sim.added().contains_key("#2026-06-01#s@01:00:00+00:00"),
        "{:?}",
        sim.added()
    );
    let mut bad = good.clone();
    let day = bad.schedules[0].args["day"].clone();
    bad.schedules[0].args.insert("dya".to_owned(), day);
    let sim = Sim::new(&bad);
    assert!(sim.added().is_empty(), "{:?}", sim.added());
    // The instants whose orders were due to be added (the first ones) were refused; the
    // later ones are still planned.
    let refused: Vec<String> = sim
        .statuses()
        .into_iter()
        .filter_map(|(_, status)| match status {
            Status::Skipped(Skip::Refused { error }) => Some(error),
            Status::Planned => None,
            other => panic!("refused or planned, not {other:?}"),
        })
        .collect();
    assert!(!refused.is_empty());
    for error in refused {
        assert!(
            error.contains("unknown argument `dya`; workflow `w` declares: day"),
            "{error}"
        );
    }
}
