//! The machine without tokio: an injected clock, the driver's log kept in memory, every action
//! recorded.

use super::*;
use ordo_model::ids::OrderId;
use ordo_model::ids::WorkflowName;
use ordo_model::order::Holder;
use ordo_model::wire::Stream;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use proptest::prelude::*;
use std::path::PathBuf;

const INVENTORY: &str = "\
agent: a1
url: wss://127.0.0.1:9
certificateName: localhost
---
workflow: w
jobs:
  j:
    agent: a1
    script: 'true'
steps:
  - run: j
---
lock: l
limit: 1
---
workflow: wl
jobs:
  j:
    agent: a1
    script: 'true'
steps:
  - lock: l
    do:
      - run: j
";

fn inventory() -> Inventory {
    let files: Vec<SourceFile> = INVENTORY
        .split("---\n")
        .enumerate()
        .map(|(i, text)| SourceFile::new(format!("f{i}.yaml"), text.to_owned()))
        .collect();
    parse_inventory(&files, &Limits::default()).expect("the test inventory is valid")
}

fn agent() -> AgentId {
    AgentId::new("a1").unwrap()
}

fn oid(n: usize) -> OrderId {
    OrderId::new(format!("o{n}")).unwrap()
}

fn add(n: usize, scheduled_for: Option<TimeMs>) -> Command {
    add_to("w", n, scheduled_for)
}

fn add_to(workflow: &str, n: usize, scheduled_for: Option<TimeMs>) -> Command {
    Command::Add {
        id: oid(n),
        workflow: WorkflowName::new(workflow).unwrap(),
        vars: Default::default(),
        scheduled_for,
    }
}

fn no_space() -> NoSpace {
    NoSpace {
        dir: PathBuf::from("/journal"),
        cause: "no space left on device".into(),
    }
}

fn fold<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> State {
    let mut state = State::new();
    for entry in entries {
        for (id, stored) in &entry.events {
            let _ = state.apply(*id, stored);
        }
    }
    state
}

/// A driver in memory: the log, the in-flight proposals, and what the machine asked for.
struct Sim {
    m: Machine,
    /// A follower that never proposes, fed every committed entry.
    follower: Machine,
    now: TimeMs,
    committed: Vec<Entry>,
    in_flight: VecDeque<Entry>,
    actions: Vec<Action>,
    next_token: u64,
    wake: Option<TimeMs>,
}

impl Sim {
    fn new() -> Sim {
        let mut sim = Sim {
            m: Machine::new(State::new(), Settings::default()),
            follower: Machine::new(State::new(), Settings::default()),
            now: TimeMs(1_000_000),
            committed: Vec::new(),
            in_flight: VecDeque::new(),
            actions: Vec::new(),
            next_token: 0,
            wake: None,
        };
        sim.m.became_leader(1);
        sim.flush();
        sim
    }

    fn deployed() -> Sim {
        let mut sim = Sim::new();
        let t = sim.token();
        sim.m.deploy(t, &inventory(), sim.now);
        sim.flush();
        sim.commit_all();
        sim.actions.clear();
        sim
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    /// Takes the machine's actions: appends go in flight, rebuilds are done at once from the
    /// committed log, the rest is recorded.
    fn pump(&mut self) {
        for _ in 0..10 {
            let actions = self.m.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    Action::Append {
                        position, events, ..
                    } => self.in_flight.push_back(Entry { position, events }),
                    Action::Rebuild { committed } => {
                        let state = fold(&self.committed);
                        assert!(state.last_event_id >= committed);
                        self.m.rebuilt(state);
                    }
                    Action::Wake(at) => self.wake = at,
                    other => self.actions.push(other),
                }
            }
        }
        panic!("the machine keeps asking");
    }

    fn flush(&mut self) {
        self.m.flush(self.now);
        self.pump();
    }

    fn commit_one(&mut self) -> bool {
        let Some(entry) = self.in_flight.pop_front() else {
            return false;
        };
        self.m.committed(entry.position, self.now);
        self.follower.apply_committed(&entry, self.now);
        self.committed.push(entry);
        self.pump();
        self.flush();
        true
    }

    fn commit_all(&mut self) {
        for _ in 0..1000 {
            if !self.commit_one() {
                return;
            }
        }
        panic!("proposals without end");
    }

    fn command(&mut self, command: Command) -> Token {
        let t = self.token();
        self.m.command(t, command, self.now);
        self.flush();
        t
    }

    fn replies(&mut self) -> Vec<(Token, Reply)> {
        let mut out = Vec::new();
        let mut rest = Vec::new();
        for a in self.actions.drain(..) {
            match a {
                Action::Reply { token, reply } => out.push((token, reply)),
                other => rest.push(other),
            }
        }
        self.actions = rest;
        out
    }

    fn links(&mut self) -> Vec<(AgentId, LinkMsg)> {
        let mut out = Vec::new();
        let mut rest = Vec::new();
        for a in self.actions.drain(..) {
            match a {
                Action::Link { agent, msg } => out.push((agent, msg)),
                other => rest.push(other),
            }
        }
        self.actions = rest;
        out
    }

    fn couple(&mut self, run_id: u128) {
        let t = self.token();
        let epoch = self.m.cursor(&agent()).epoch;
        self.m.coupled(t, &agent(), run_id, epoch, self.now);
        self.flush();
        self.commit_all();
    }

    /// The state served equals the fold of the committed entries and then the in-flight ones;
    /// the follower's, the fold of the committed ones.
    fn check(&self) {
        let committed = fold(&self.committed);
        assert_eq!(
            self.follower.state(),
            &committed,
            "follower == fold(committed)"
        );
        assert_eq!(self.m.committed_event_id(), committed.last_event_id);
        if self.in_flight.is_empty() {
            assert_eq!(self.m.state(), &committed, "served == fold(committed)");
        } else {
            let all = fold(self.committed.iter().chain(self.in_flight.iter()));
            assert_eq!(
                self.m.state(),
                &all,
                "served == fold(committed ++ in flight)"
            );
        }
    }
}

#[test]
fn a_reply_comes_only_after_its_entry_is_committed() {
    let mut sim = Sim::deployed();
    let t = sim.command(add(1, None));
    assert_eq!(sim.in_flight.len(), 1, "one batch proposed");
    assert!(sim.replies().is_empty(), "no reply before commit");
    assert!(sim.links().is_empty(), "no agent command before commit");
    sim.commit_one();
    let replies = sim.replies();
    assert_eq!(replies.len(), 1);
    let (token, Reply::Command(Ok(r))) = &replies[0] else {
        panic!("an accepted command: {replies:?}");
    };
    assert_eq!(*token, t);
    assert!(!r.duplicate);
    assert!(r.last_event_id > 0 && r.last_event_id <= sim.m.committed_event_id());
    // The order is handed to the agent only now.
    let links = sim.links();
    assert!(
        links.iter().any(|(a, m)| a == &agent()
            && matches!(m, LinkMsg::Command(AgentCommand::AttachOrder { .. }))),
        "{links:?}"
    );
    sim.check();
}

#[test]
fn a_model_refusal_is_answered_at_once() {
    let mut sim = Sim::deployed();
    let t = sim.command(Command::Remove { id: oid(9) });
    let replies = sim.replies();
    assert!(matches!(&replies[..], [(tk, Reply::Command(Err(Refused::Command(_))))] if *tk == t));
    assert!(sim.in_flight.is_empty());
}

#[test]
fn losing_leadership_refuses_pending_replies_and_a_later_commit_gives_nothing() {
    let mut sim = Sim::deployed();
    let t = sim.command(add(1, None));
    let entry = sim.in_flight.pop_front().expect("proposed");
    sim.m.lost_leadership(2, Some("controller-b".into()));
    sim.pump();
    let replies = sim.replies();
    let [(tk, Reply::Command(Err(Refused::NotActive(e))))] = &replies[..] else {
        panic!("a not-active refusal: {replies:?}");
    };
    assert_eq!(*tk, t);
    assert_eq!(e.active.as_deref(), Some("controller-b"));
    assert!(e.to_string().contains("outcome is unknown"), "{e}");
    assert_eq!(
        sim.m.state(),
        &fold(&sim.committed),
        "rolled back to the committed state"
    );
    // The new leader commits the entry after all: this node applies it, and acts on nothing.
    sim.m.apply_committed(&entry, sim.now);
    sim.follower.apply_committed(&entry, sim.now);
    sim.committed.push(entry);
    sim.flush();
    sim.pump();
    assert!(sim.replies().is_empty());
    assert!(sim.links().is_empty());
    assert!(sim.m.state().world.order(&oid(1)).is_some());
    sim.check();
    // New commands are refused at once, naming the active controller.
    let t2 = sim.command(add(2, None));
    let replies = sim.replies();
    assert!(
        matches!(&replies[..], [(tk, Reply::Command(Err(Refused::NotActive(_))))] if *tk == t2)
    );
    assert!(sim.in_flight.is_empty());
}

#[test]
fn a_lost_proposal_rolls_back_and_answers_no_space() {
    let mut sim = Sim::deployed();
    let t1 = sim.command(add(1, None));
    sim.commit_one();
    sim.replies();
    let t2 = sim.command(add(2, None));
    assert_eq!(sim.in_flight.len(), 1);
    sim.in_flight.clear();
    sim.m.proposal_lost(no_space());
    sim.pump();
    let replies = sim.replies();
    let [(tk, Reply::Command(Err(Refused::NoSpace(e))))] = &replies[..] else {
        panic!("a no-space refusal: {replies:?}");
    };
    assert_eq!(*tk, t2);
    assert_ne!(*tk, t1);
    assert_eq!(e, &no_space());
    assert!(sim.m.state().world.order(&oid(2)).is_none());
    assert!(sim.m.state().world.order(&oid(1)).is_some());
    sim.check();
    // While paused, commands are refused at once and nothing is proposed.
    let t3 = sim.command(add(3, None));
    let replies = sim.replies();
    assert!(matches!(&replies[..], [(tk, Reply::Command(Err(Refused::NoSpace(_))))] if *tk == t3));
    assert!(sim.in_flight.is_empty());
    // Space is back: links reconnect, commands work.
    assert_eq!(sim.m.resume_writes(), 1);
    sim.pump();
    assert!(
        sim.actions
            .iter()
            .any(|a| matches!(a, Action::ReconnectLinks))
    );
    sim.command(add(2, None));
    sim.commit_all();
    assert!(matches!(
        &sim.replies()[..],
        [(_, Reply::Command(Ok(r)))] if !r.duplicate
    ));
    sim.check();
}

#[test]
fn a_proposal_written_before_the_lost_one_is_answered_as_done() {
    let mut sim = Sim::deployed();
    let t1 = sim.command(add(1, None));
    let t2 = sim.command(add(2, None));
    assert_eq!(sim.in_flight.len(), 2);
    // The first was written, its commit not reported yet; the second was lost.
    let written = sim.in_flight.pop_front().unwrap();
    sim.follower.apply_committed(&written, sim.now);
    sim.committed.push(written);
    sim.in_flight.clear();
    sim.m.proposal_lost(no_space());
    sim.pump();
    let mut replies = sim.replies();
    replies.sort_by_key(|(t, _)| *t);
    assert!(
        matches!(
            &replies[..],
            [(a, Reply::Command(Ok(_))), (b, Reply::Command(Err(Refused::NoSpace(_))))]
                if *a == t1 && *b == t2
        ),
        "{replies:?}"
    );
    assert!(sim.m.state().world.order(&oid(1)).is_some());
    assert!(sim.m.state().world.order(&oid(2)).is_none());
    sim.check();
}

#[test]
fn timers_fire_from_the_injected_clock() {
    let mut sim = Sim::deployed();
    let at = TimeMs(sim.now.0 + 60_000);
    // Its first step (a lock) is the controller's: the controller holds the fresh order.
    sim.command(add_to("wl", 1, Some(at)));
    sim.commit_all();
    assert_eq!(
        sim.wake,
        Some(at),
        "the machine asks to be woken at the schedule"
    );
    sim.links();
    sim.now = TimeMs(at.0 - 1);
    sim.m.tick(sim.now);
    sim.flush();
    assert!(sim.in_flight.is_empty(), "not yet due");
    sim.now = at;
    sim.m.tick(sim.now);
    sim.flush();
    assert_eq!(sim.in_flight.len(), 1, "the order starts when due");
    assert!(sim.links().is_empty(), "attached only once committed");
    sim.commit_all();
    assert!(
        sim.links()
            .iter()
            .any(|(_, m)| matches!(m, LinkMsg::Command(AgentCommand::AttachOrder { .. })))
    );
    assert_eq!(sim.wake, None);
    sim.check();
}

#[test]
fn agent_events_are_released_only_after_commit() {
    let mut sim = Sim::deployed();
    sim.couple(7);
    assert!(matches!(&sim.replies()[..], [(_, Reply::Coupled(Ok(_)))]));
    sim.command(add(1, None));
    sim.commit_all();
    sim.replies();
    sim.links();
    let epoch = sim.m.cursor(&agent()).epoch;
    let events = vec![AgentEvent {
        id: 1,
        ts: sim.now,
        body: AgentEventBody::Output {
            order_id: oid(1),
            stream: Stream::Stdout,
            chunk: b"hi".to_vec(),
        },
    }];
    sim.m
        .agent_events(&agent(), 7, epoch, events.clone(), sim.now);
    sim.flush();
    assert_eq!(sim.in_flight.len(), 1);
    assert!(sim.links().is_empty(), "no release before commit");
    sim.commit_one();
    assert_eq!(sim.links(), vec![(agent(), LinkMsg::Release(1))]);
    // Sent again (a reconnect): journaled once.
    sim.m.agent_events(&agent(), 7, epoch, events, sim.now);
    sim.flush();
    assert!(sim.in_flight.is_empty());
    assert_eq!(sim.m.cursor(&agent()).after, 1);
    sim.check();
}

#[test]
fn a_follower_replaying_the_committed_entries_has_the_same_state() {
    let mut sim = Sim::deployed();
    sim.couple(3);
    for n in 0..5 {
        sim.command(add(n, None));
    }
    sim.commit_all();
    // The agent takes the orders.
    let epoch = sim.m.cursor(&agent()).epoch;
    let mut events = Vec::new();
    for n in 0..5 {
        let order = sim.m.state().world.order(&oid(n)).cloned().unwrap();
        assert!(matches!(order.holder, Holder::Attaching(_)), "{order:?}");
        events.push(AgentEvent {
            id: n as u64 + 1,
            ts: sim.now,
            body: AgentEventBody::Order(KeyedEvent::order(
                &oid(n),
                OrderEvent::Attached {
                    order: Box::new(order),
                },
            )),
        });
    }
    sim.m.agent_events(&agent(), 3, epoch, events, sim.now);
    sim.flush();
    sim.command(Command::Remove { id: oid(0) });
    sim.commit_all();
    sim.check();
    assert_eq!(sim.follower.state(), sim.m.state());
    assert!(
        sim.follower
            .take_actions()
            .iter()
            .all(|a| matches!(a, Action::WriteSnapshot { .. })),
        "a follower never acts"
    );
}

#[test]
fn a_snapshot_is_asked_for_once_enough_is_committed() {
    let mut sim = Sim::new();
    sim.m.settings_mut().snapshot_events = 3;
    let t = sim.token();
    sim.m.deploy(t, &inventory(), sim.now);
    sim.flush();
    sim.command(add(1, None));
    assert!(
        !sim.actions
            .iter()
            .any(|a| matches!(a, Action::WriteSnapshot { .. }))
    );
    sim.commit_all();
    let snap = sim.actions.iter().find_map(|a| match a {
        Action::WriteSnapshot {
            event_id, bytes, ..
        } => Some((*event_id, bytes.clone())),
        _ => None,
    });
    let (id, bytes) = snap.expect("a snapshot is due");
    assert_eq!(id, sim.m.committed_event_id());
    let state: State = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(&state, sim.m.state());
}

/// One step of a random schedule.
#[derive(Debug, Clone)]
enum Op {
    Add(usize, Option<u16>, bool),
    Cancel(usize),
    Remove(usize),
    Advance(u16),
    CommitOne,
    CommitAll,
    /// The first `n` proposals in flight were written (not yet reported), the rest lost.
    Lose(usize),
    Resume,
    Couple(u8),
    Attach(usize),
    LoseLeadership {
        commit_anyway: bool,
    },
    BecomeLeader,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..6, proptest::option::of(0u16..5000), any::<bool>())
            .prop_map(|(n, s, locked)| Op::Add(n, s, locked)),
        1 => (0usize..6).prop_map(Op::Cancel),
        1 => (0usize..6).prop_map(Op::Remove),
        2 => (0u16..5000).prop_map(Op::Advance),
        4 => Just(Op::CommitOne),
        1 => Just(Op::CommitAll),
        1 => (0usize..3).prop_map(Op::Lose),
        1 => Just(Op::Resume),
        1 => (1u8..3).prop_map(Op::Couple),
        2 => (0usize..6).prop_map(Op::Attach),
        1 => any::<bool>().prop_map(|commit_anyway| Op::LoseLeadership { commit_anyway }),
        1 => Just(Op::BecomeLeader),
    ]
}

impl Sim {
    fn run(&mut self, op: Op) {
        match op {
            Op::Add(n, s, locked) => {
                let at = s.map(|ms| TimeMs(self.now.0 + i64::from(ms)));
                self.command(add_to(if locked { "wl" } else { "w" }, n, at));
            }
            Op::Cancel(n) => {
                self.command(Command::Cancel {
                    id: oid(n),
                    kill: None,
                });
            }
            Op::Remove(n) => {
                self.command(Command::Remove { id: oid(n) });
            }
            Op::Advance(ms) => {
                self.now = TimeMs(self.now.0 + i64::from(ms));
                self.m.tick(self.now);
                self.flush();
            }
            Op::CommitOne => {
                self.commit_one();
            }
            Op::CommitAll => self.commit_all(),
            Op::Lose(written) => {
                if self.in_flight.len() > written {
                    for entry in self.in_flight.drain(..written) {
                        self.follower.apply_committed(&entry, self.now);
                        self.committed.push(entry);
                    }
                    self.in_flight.clear();
                    self.m.proposal_lost(no_space());
                    self.pump();
                }
            }
            Op::Resume => {
                if self.m.paused().is_some() {
                    self.m.resume_writes();
                    self.flush();
                }
            }
            Op::Couple(run) => {
                if self.m.is_leader() {
                    let t = self.token();
                    let epoch = self.m.cursor(&agent()).epoch;
                    self.m
                        .coupled(t, &agent(), u128::from(run), epoch, self.now);
                    self.flush();
                }
            }
            Op::Attach(n) => {
                let Some(order) = self.m.state().world.order(&oid(n)).cloned() else {
                    return;
                };
                let cursor = self.m.cursor(&agent());
                let (Some(run), Holder::Attaching(_)) = (cursor.run_id, &order.holder) else {
                    return;
                };
                let event = AgentEvent {
                    id: cursor.after + 1,
                    ts: self.now,
                    body: AgentEventBody::Order(KeyedEvent::order(
                        &oid(n),
                        OrderEvent::Attached {
                            order: Box::new(order),
                        },
                    )),
                };
                self.m
                    .agent_events(&agent(), run, cursor.epoch, vec![event], self.now);
                self.flush();
            }
            Op::LoseLeadership { commit_anyway } => {
                if !self.m.is_leader() {
                    return;
                }
                let term = self.m.term() + 1;
                let kept: Vec<Entry> = self.in_flight.drain(..).collect();
                self.m.lost_leadership(term, None);
                self.pump();
                for a in &self.actions {
                    if let Action::Reply { reply, .. } = a {
                        assert!(
                            matches!(
                                reply,
                                Reply::Command(Err(Refused::NotActive(_)))
                                    | Reply::Deploy(Err(Refused::NotActive(_)))
                                    | Reply::Coupled(Err(_))
                            ) || self.m.is_leader(),
                        );
                    }
                }
                self.actions.clear();
                if commit_anyway {
                    // The new leader had them and commits them.
                    for entry in kept {
                        self.m.apply_committed(&entry, self.now);
                        self.follower.apply_committed(&entry, self.now);
                        self.committed.push(entry);
                    }
                    self.flush();
                    assert!(
                        self.actions
                            .iter()
                            .all(|a| matches!(a, Action::WriteSnapshot { .. })),
                        "a deposed leader acts on nothing: {:?}",
                        self.actions
                    );
                }
            }
            Op::BecomeLeader => {
                if !self.m.is_leader() {
                    let term = self.m.term() + 1;
                    self.m.became_leader(term);
                    self.flush();
                }
            }
        }
        // Every successful reply names events that are committed.
        let committed = self.m.committed_event_id();
        for a in &self.actions {
            if let Action::Reply {
                reply: Reply::Command(Ok(r)),
                ..
            } = a
            {
                assert!(r.last_event_id <= committed, "{r:?} before commit");
            }
        }
        self.actions.clear();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the inputs and whichever proposals commit or are lost, the state served is the
    /// fold of the committed entries (then the in-flight ones), and a follower's is exactly
    /// the fold of the committed entries.
    #[test]
    fn served_state_is_the_fold_of_committed_entries(ops in proptest::collection::vec(op(), 1..60)) {
        let mut sim = Sim::deployed();
        sim.check();
        for op in ops {
            sim.run(op);
            sim.check();
        }
        if !sim.m.is_leader() {
            sim.m.became_leader(sim.m.term() + 1);
            sim.flush();
        }
        if sim.m.paused().is_some() {
            sim.m.resume_writes();
            sim.flush();
        }
        sim.commit_all();
        sim.check();
        prop_assert_eq!(sim.m.state(), &fold(&sim.committed));
    }
}

/// Issues a join token for `agent` living `ttl_ms`; committed.
fn issue(sim: &mut Sim, hash: &str, agent: Option<AgentId>, ttl_ms: u64) {
    let t = sim.token();
    sim.m
        .issue_join_token(t, hash.to_owned(), agent, ttl_ms, sim.now);
    sim.flush();
    sim.commit_all();
    let replies = sim.replies();
    assert!(
        matches!(&replies[..], [(r, Reply::Command(Ok(_)))] if *r == t),
        "{replies:?}"
    );
}

/// Registers `id` with the token `hash`; the deployment's answer once committed.
fn register_with(sim: &mut Sim, hash: &str, id: &str) -> Result<DeployReply, Refused> {
    let t = sim.token();
    let r = Registration {
        hash: hash.to_owned(),
        id: AgentId::new(id).unwrap(),
        url: "wss://127.0.0.1:10".into(),
        priority: 0,
        process_limit: Some(3),
    };
    sim.m.register(t, &r, sim.now);
    sim.flush();
    sim.commit_all();
    let mut replies = sim.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    match replies.pop() {
        Some((token, Reply::Deploy(r))) if token == t => r,
        other => panic!("{other:?}"),
    }
}

fn subagent_ids(sim: &Sim) -> Vec<String> {
    sim.m.state().world.agents[&agent()]
        .subagents
        .iter()
        .map(|s| s.id.to_string())
        .collect()
}

#[test]
fn a_join_token_registers_a_subagent_once_and_only_before_it_expires() {
    let mut sim = Sim::deployed();
    issue(&mut sim, "h1", Some(agent()), 60_000);
    register_with(&mut sim, "h1", "s1").expect("registered");
    assert_eq!(subagent_ids(&sim), ["s1"]);
    let settings = sim.m.state().world.cluster_settings(&agent());
    assert_eq!(settings.process_limit(&AgentId::new("s1").unwrap()), 3);
    assert!(
        sim.m
            .state()
            .joins
            .is_registered(&agent(), &AgentId::new("s1").unwrap())
    );
    // The link is restarted with the new object.
    assert!(
        sim.actions
            .iter()
            .any(|a| matches!(a, Action::EnsureLink(o, ..) if o.subagents.len() == 1))
    );
    let again = register_with(&mut sim, "h1", "s2").unwrap_err();
    assert!(again.to_string().contains("already used"), "{again}");
    issue(&mut sim, "h2", Some(agent()), 10);
    sim.now = TimeMs(sim.now.0 + 10);
    let late = register_with(&mut sim, "h2", "s2").unwrap_err();
    assert!(late.to_string().contains("expired"), "{late}");
    let unknown = register_with(&mut sim, "nope", "s2").unwrap_err();
    assert!(unknown.to_string().contains("unknown"), "{unknown}");
    // The follower folded the same: the use survives a failover.
    assert_eq!(sim.follower.state().joins, sim.m.state().joins);
    sim.check();
}

#[test]
fn a_standalone_agent_registers_an_agent_object() {
    let mut sim = Sim::deployed();
    issue(&mut sim, "h", None, 60_000);
    register_with(&mut sim, "h", "a2").expect("registered");
    let a2 = &sim.m.state().world.agents[&AgentId::new("a2").unwrap()];
    assert_eq!(a2.url, "wss://127.0.0.1:10");
    assert!(a2.subagents.is_empty());
    issue(&mut sim, "h3", None, 60_000);
    let twice = register_with(&mut sim, "h3", "a2").unwrap_err();
    assert!(twice.to_string().contains("deployed already"), "{twice}");
}

/// Deploys `text` as the file `a.yaml` with `removed`, committed; the deployment succeeds.
fn deploy_ok(sim: &mut Sim, text: &str, removed: ordo_model::deploy::Removals) {
    let t = sim.token();
    let request = DeployRequest {
        files: vec![SourceFile::new("a.yaml", text.to_owned())],
        removed,
        dry_run: false,
        force: false,
    };
    sim.m.deploy_files(t, &request, sim.now);
    sim.flush();
    sim.commit_all();
    let replies = sim.replies();
    assert!(
        matches!(&replies[..], [(_, Reply::Deploy(Ok(_)))]),
        "{replies:?}"
    );
}

#[test]
fn a_deployment_keeps_a_registered_subagent_unless_removed_names_it() {
    let mut sim = Sim::deployed();
    issue(&mut sim, "h1", Some(agent()), 60_000);
    register_with(&mut sim, "h1", "s1").expect("registered");
    let deploy = |sim: &mut Sim, removed: Vec<String>| {
        deploy_ok(
            sim,
            "agent: a1\nurl: wss://127.0.0.1:9\ncertificateName: localhost\n",
            ordo_model::deploy::Removals {
                subagents: removed,
                ..Default::default()
            },
        )
    };
    deploy(&mut sim, Vec::new());
    assert_eq!(subagent_ids(&sim), ["s1"], "kept");
    deploy(&mut sim, vec!["a1/s1".into()]);
    assert!(subagent_ids(&sim).is_empty(), "removed");
    assert!(sim.m.state().joins.registered.is_empty());
    sim.check();
}

#[test]
fn removing_a_subagent_with_kill_tells_the_director_once_committed() {
    let mut sim = Sim::deployed();
    issue(&mut sim, "h1", Some(agent()), 60_000);
    register_with(&mut sim, "h1", "s1").expect("registered");
    sim.actions.clear();
    let s1 = AgentId::new("s1").unwrap();
    let t = sim.token();
    sim.m.remove_subagent(t, &agent(), &s1, true, sim.now);
    sim.flush();
    assert!(sim.links().is_empty(), "nothing before the commit");
    sim.commit_all();
    assert_eq!(
        sim.links(),
        vec![(
            agent(),
            LinkMsg::SubagentRemoved {
                subagent: s1.clone(),
                kill: true
            }
        )]
    );
    assert!(subagent_ids(&sim).is_empty());
    assert!(!sim.m.state().joins.is_registered(&agent(), &s1));
    assert!(matches!(&sim.replies()[..], [(_, Reply::Deploy(Ok(_)))]));
    let t = sim.token();
    sim.m.remove_subagent(t, &agent(), &s1, false, sim.now);
    sim.flush();
    let replies = sim.replies();
    assert!(
        matches!(
            &replies[..],
            [(
                _,
                Reply::Deploy(Err(Refused::Agents(AgentsRefused::UnknownSubagent { .. })))
            )]
        ),
        "{replies:?}"
    );
}

/// A cluster's priority expressions go to its link with its object; removing one subagent or
/// registering another deploys the object alone and keeps the other subagents' expressions
/// and the backup director (the removed one's expression goes with it).
#[test]
fn priority_expressions_reach_the_link_and_survive_removals_and_registrations() {
    let mut sim = Sim::deployed();
    let deploy = |sim: &mut Sim, text: &str| deploy_ok(sim, text, Default::default());
    deploy(
        &mut sim,
        "agent: a1\nurl: wss://127.0.0.1:9\ncertificateName: localhost\n\
         backupDirector: wss://127.0.0.2:9\nselection: priority\nsubagents:\n  \
         - { id: s1, url: \"wss://127.0.0.1:11\", priority: \"10 - $processes\" }\n  \
         - { id: s2, url: \"wss://127.0.0.1:12\", priority: \"$cores\" }\n",
    );
    let id = |s: &str| AgentId::new(s).unwrap();
    let exprs = |sim: &Sim| -> Vec<String> {
        sim.m.state().world.extras.priorities[&agent()]
            .iter()
            .map(|(s, e)| format!("{s}: {e}"))
            .collect()
    };
    assert_eq!(exprs(&sim), ["s1: 10 - $processes", "s2: $cores"]);
    let linked = sim.actions.iter().find_map(|a| match a {
        Action::EnsureLink(o, _, backup, priorities) if o.id == agent() => {
            Some((backup.clone(), priorities.len()))
        }
        _ => None,
    });
    assert_eq!(linked, Some((Some("wss://127.0.0.2:9".to_owned()), 2)));
    let t = sim.token();
    sim.m
        .remove_subagent(t, &agent(), &id("s2"), false, sim.now);
    sim.flush();
    sim.commit_all();
    assert!(matches!(&sim.replies()[..], [(_, Reply::Deploy(Ok(_)))]));
    assert_eq!(subagent_ids(&sim), ["s1"]);
    assert_eq!(exprs(&sim), ["s1: 10 - $processes"]);
    let world = &sim.m.state().world;
    assert_eq!(
        world
            .extras
            .backup_directors
            .get(&agent())
            .map(String::as_str),
        Some("wss://127.0.0.2:9")
    );
    issue(&mut sim, "h1", Some(agent()), 60_000);
    register_with(&mut sim, "h1", "s3").expect("registered");
    assert_eq!(subagent_ids(&sim), ["s1", "s3"]);
    assert_eq!(exprs(&sim), ["s1: 10 - $processes"]);
    assert!(
        sim.m
            .state()
            .world
            .extras
            .backup_directors
            .contains_key(&agent())
    );
    assert_eq!(
        sim.follower.state().world.extras,
        sim.m.state().world.extras
    );
    sim.check();
}
