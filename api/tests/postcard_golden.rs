//! The postcard encoding of journal records, snapshots and agent frames is fixed: records
//! written by one build are read by every later one. This test encodes a set of values that
//! covers every record variant and every kind of variable value, and compares the bytes with
//! `golden/postcard.hex`, written when the encoding was last known good. A change of the JSON
//! representation (human-readable serde) must leave these bytes alone.
//!
//! `ORDO_BLESS=1` rewrites the file; do that only for a deliberate, versioned format change.

use ordo_api::join::JoinEvent;
use ordo_api::record::{Body, Record, Stored};
use ordo_api::state::State;
use ordo_model::ids::{AgentId, OrderId, WorkflowName};
use ordo_model::order::{
    AgentCommand, Command, ForkChild, Holder, ItemEvent, KeyedEvent, Kill, Mark, OrderEvent,
    OrderOptions, Outcome, WorkflowSettings, command, deploy,
};
use ordo_model::position::{BlockKey, Position};
use ordo_model::schedule::{PlanEvent, PlannedFire, Skip};
use ordo_model::time::TimeMs;
use ordo_model::value::{Value, Vars};
use ordo_model::wire::{AgentEventBody, Stream, ToAgent};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use std::fmt::Write;

const GOLDEN: &str = "tests/golden/postcard.hex";

fn vars() -> Vars {
    Vars::from([
        ("b".to_owned(), Value::Bool(true)),
        ("f".to_owned(), Value::Number(-1.25e-7)),
        ("i".to_owned(), Value::Number(42.0)),
        ("z".to_owned(), Value::Number(-0.0)),
        ("m".to_owned(), Value::Missing),
        ("s".to_owned(), Value::String("héllo \"x\"".into())),
        (
            "l".to_owned(),
            Value::List(vec![
                Value::Number(1.0),
                Value::String("a".into()),
                Value::List(vec![]),
                Value::Missing,
            ]),
        ),
    ])
}

/// Every value the file covers, with a name per line.
fn samples() -> Vec<(String, Vec<u8>)> {
    let yaml = include_str!("golden/every-instruction.yaml");
    let inv = parse_inventory(
        &[SourceFile::new("every-instruction.yaml", yaml)],
        &Limits::default(),
    )
    .expect("the golden inventory parses");
    let mut state = State::new();
    let mut out = Vec::new();
    let mut id = 1u64 << 16;
    let mut record = |state: &mut State, name: &str, ts: i64, body: Body| {
        let stored = Stored {
            term: 1,
            ts: TimeMs(ts),
            body,
        };
        // Records that do not apply still have a fixed encoding.
        let _ = state.apply(id, &stored);
        id += 1;
        out.push((name.to_owned(), Record::V1(stored).encode()));
    };
    for (i, e) in deploy(&state.world, &inv).into_iter().enumerate() {
        record(&mut state, &format!("deploy {i}"), 1, Body::Event(e));
    }
    let o1 = OrderId::new("o1").unwrap();
    let add = Command::Add {
        id: o1.clone(),
        workflow: WorkflowName::new("every-instruction").unwrap(),
        vars: Vars::from([
            ("day".to_owned(), Value::String("2026-01-02".into())),
            ("plain".to_owned(), Value::Number(1.5)),
        ]),
        scheduled_for: Some(TimeMs(1_700_000_000_000)),
    };
    let accepted = command(&state.world, add, TimeMs(2), &Default::default()).unwrap();
    for (i, e) in accepted.events.into_iter().enumerate() {
        record(&mut state, &format!("add {i}"), 2, Body::Event(e));
    }
    let agent = AgentId::new("cluster").unwrap();
    let order_events = vec![
        OrderEvent::Added {
            workflow: WorkflowName::new("helper").unwrap(),
            version: ordo_model::ids::VersionId(1),
            vars: vars(),
            scheduled_for: None,
            added_by: Some(o1.clone()),
        },
        OrderEvent::Processed {
            outcome: Outcome::Succeeded { values: vars() },
        },
        OrderEvent::Processed {
            outcome: Outcome::Failed {
                message: "rc 7".into(),
                return_code: Some(7),
                uncatchable: true,
            },
        },
        OrderEvent::Processed {
            outcome: Outcome::Disrupted(ordo_model::order::Disruption::ProcessLost),
        },
        OrderEvent::Marked {
            mark: Some(Mark::Cancel {
                kill: Some(Kill::Term),
            }),
            seq: 3,
        },
        OrderEvent::Retrying {
            to: Position::start().enter(BlockKey::Fork("left".into())),
            tries: 2,
            until: Some(TimeMs(99)),
        },
        OrderEvent::Forked {
            children: vec![ForkChild {
                id: o1.child("left").unwrap(),
                branch: BlockKey::Fork("left".into()),
                vars: vars(),
                subagent: Some(AgentId::new("sub-1").unwrap()),
            }],
        },
        OrderEvent::Resumed {
            position: Some(Position::start().next()),
            vars: vars(),
        },
        OrderEvent::PromptAnswered { vars: vars() },
        OrderEvent::Finished { message: None },
    ];
    for (i, event) in order_events.into_iter().enumerate() {
        record(
            &mut state,
            &format!("order event {i}"),
            3,
            Body::Event(KeyedEvent::order(&o1, event)),
        );
    }
    let mut order = state.world.order(&o1).cloned().expect("o1 exists");
    order.holder = Holder::Attaching(agent.clone());
    order.vars = vars();
    record(
        &mut state,
        "agent attached",
        4,
        Body::Agent {
            agent: agent.clone(),
            run_id: u128::MAX - 5,
            agent_event_id: 1,
            body: AgentEventBody::Order(KeyedEvent::order(
                &o1,
                OrderEvent::Attached {
                    order: Box::new(order.clone()),
                },
            )),
        },
    );
    record(
        &mut state,
        "agent output",
        5,
        Body::Agent {
            agent: agent.clone(),
            run_id: u128::MAX - 5,
            agent_event_id: 2,
            body: AgentEventBody::Output {
                order_id: o1.clone(),
                stream: Stream::Stderr,
                chunk: vec![0, 1, 255, b'\n'],
            },
        },
    );
    record(
        &mut state,
        "agent output truncated",
        6,
        Body::Agent {
            agent: agent.clone(),
            run_id: 7,
            agent_event_id: 3,
            body: AgentEventBody::OutputTruncated {
                order_id: o1.clone(),
                cap_bytes: 1 << 20,
            },
        },
    );
    record(
        &mut state,
        "run changed (none before)",
        7,
        Body::AgentRunChanged {
            agent: agent.clone(),
            old: None,
            new: 1,
        },
    );
    record(
        &mut state,
        "run changed",
        8,
        Body::AgentRunChanged {
            agent: agent.clone(),
            old: Some(u128::MAX),
            new: 2,
        },
    );
    out.push((
        "state snapshot".to_owned(),
        postcard::to_allocvec(&state).expect("the state encodes"),
    ));
    let workflow = state
        .world
        .latest(&WorkflowName::new("every-instruction").unwrap())
        .map(|(_, w)| w.clone())
        .expect("deployed");
    let attach = ToAgent::Command {
        seq: 1,
        term: 1,
        command: AgentCommand::AttachOrder {
            order: Box::new(order),
            workflow: Box::new(workflow),
        },
    };
    out.push((
        "agent attach frame".to_owned(),
        postcard::to_allocvec(&attach).expect("the frame encodes"),
    ));
    // Added later, at the end: order options and workflow settings.
    let options = OrderOptions {
        priority: -7,
        delete_when_terminated: Some(true),
    };
    let mut with_options = state.clone();
    let mut id = 1u64 << 20;
    let mut later = |state: &mut State, out: &mut Vec<(String, Vec<u8>)>, name: &str, body| {
        let stored = Stored {
            term: 2,
            ts: TimeMs(9),
            body,
        };
        state
            .apply(id, &stored)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        id += 1;
        out.push((name.to_owned(), Record::V1(stored).encode()));
    };
    let o2 = OrderId::new("o2-é").unwrap();
    let add = Command::AddWithOptions {
        id: o2.clone(),
        workflow: WorkflowName::new("every-instruction").unwrap(),
        vars: Vars::from([
            ("day".to_owned(), Value::String("2026-01-03".into())),
            ("plain".to_owned(), Value::Number(2.0)),
        ]),
        scheduled_for: None,
        options,
    };
    let accepted = command(&with_options.world, add, TimeMs(9), &Default::default()).unwrap();
    assert_eq!(accepted.events.len(), 2, "Added, OptionsSet");
    for (i, e) in accepted.events.into_iter().enumerate() {
        later(
            &mut with_options,
            &mut out,
            &format!("add with options {i}"),
            Body::Event(e),
        );
    }
    later(
        &mut with_options,
        &mut out,
        "workflow settings",
        Body::Event(KeyedEvent::Item(ItemEvent::WorkflowSettings {
            workflow: WorkflowName::new("every-instruction").unwrap(),
            settings: sample_settings(),
        })),
    );
    later(
        &mut with_options,
        &mut out,
        "agent settings",
        Body::Event(KeyedEvent::Item(ItemEvent::AgentSettings {
            agent: AgentId::new("cluster").unwrap(),
            settings: ordo_model::inventory::ClusterSettings {
                lease_timeout: ordo_model::time::DurationMs(2_500),
                process_limits: std::collections::BTreeMap::from([(
                    AgentId::new("sub-1").unwrap(),
                    3,
                )]),
            },
        })),
    );
    out.push((
        "state snapshot with options".to_owned(),
        postcard::to_allocvec(&with_options).expect("the state encodes"),
    ));
    let mut order = with_options.world.order(&o2).cloned().expect("o2 exists");
    order.holder = Holder::Attaching(agent.clone());
    let attach = ToAgent::Command {
        seq: 2,
        term: 2,
        command: AgentCommand::AttachOrderWithOptions {
            order: Box::new(order),
            workflow: Box::new(workflow_of(&with_options)),
            options,
        },
    };
    out.push((
        "agent attach with options frame".to_owned(),
        postcard::to_allocvec(&attach).expect("the frame encodes"),
    ));
    // Added later, at the end: the plan's events, with the removal of a schedule and a
    // calendar.
    let planned = parse_inventory(
        &[SourceFile::new(
            "plan.yaml",
            "workflow: w\nsteps: [ { prompt: x } ]\n---\ncalendar: c\nweekdays: MON-FRI\n---\n\
             schedule: s\nworkflow: w\ncron: \"0 * * * *\"\ncalendar: c\n",
        )],
        &Limits::default(),
    )
    .expect("the plan inventory parses");
    let s = planned.schedules[0].name.clone();
    let at = TimeMs(3_600_000);
    let mut plan_state = State::new();
    for (name, event) in [
        (
            "plan calendar deployed",
            PlanEvent::CalendarDeployed(Box::new(planned.calendars[0].clone())),
        ),
        (
            "plan schedule deployed",
            PlanEvent::ScheduleDeployed(Box::new(planned.schedules[0].clone())),
        ),
        (
            "plan planned",
            PlanEvent::Planned {
                schedule: s.clone(),
                until: TimeMs(7_200_000),
                fires: vec![PlannedFire {
                    at,
                    offset_seconds: 3600,
                }],
            },
        ),
        (
            "plan skipped removed",
            PlanEvent::Skipped {
                schedule: s.clone(),
                at,
                why: Skip::Removed,
            },
        ),
        (
            "plan schedule removed",
            PlanEvent::ScheduleRemoved {
                schedule: s.clone(),
            },
        ),
        (
            "plan calendar removed",
            PlanEvent::CalendarRemoved {
                calendar: planned.calendars[0].name.clone(),
            },
        ),
    ] {
        later(&mut plan_state, &mut out, name, Body::Plan(event));
    }
    assert_eq!(plan_state.plan, ordo_model::schedule::Plan::default());
    // Added later, at the end: join tokens and registrations, the state that holds them, and
    // the removal of a subagent sent to its director.
    let dir = AgentId::new("dir").unwrap();
    let s1 = AgentId::new("s1").unwrap();
    let hash = ordo_api::auth::token_hash("ordo-join-x");
    let mut join_state = State::new();
    for (name, event) in [
        (
            "join token issued",
            JoinEvent::Issued {
                hash: hash.clone(),
                agent: Some(dir.clone()),
                expires: TimeMs(3_600_009),
            },
        ),
        (
            "join token used",
            JoinEvent::Used {
                hash: hash.clone(),
                agent: dir.clone(),
                subagent: Some(s1.clone()),
            },
        ),
    ] {
        later(&mut join_state, &mut out, name, Body::Join(event));
    }
    out.push((
        "state snapshot with join tokens".to_owned(),
        postcard::to_allocvec(&join_state).expect("the state encodes"),
    ));
    later(
        &mut join_state,
        &mut out,
        "subagent unregistered",
        Body::Join(JoinEvent::Unregistered {
            agent: dir.clone(),
            subagent: s1.clone(),
        }),
    );
    out.push((
        "agent subagent removed frame".to_owned(),
        postcard::to_allocvec(&ToAgent::SubagentRemoved {
            subagent: s1,
            kill: true,
        })
        .expect("the frame encodes"),
    ));
    // Added later, at the end: a director pair's backup director, and a snapshot that holds
    // one (its extras end with the backup directors).
    let mut pair_state = with_options.clone();
    later(
        &mut pair_state,
        &mut out,
        "agent backup director",
        Body::Event(KeyedEvent::Item(ItemEvent::AgentBackupDirector {
            agent: AgentId::new("cluster").unwrap(),
            url: Some("wss://backup.example:4444".into()),
        })),
    );
    assert_eq!(pair_state.world.extras.backup_directors.len(), 1);
    out.push((
        "state snapshot with a backup director".to_owned(),
        postcard::to_allocvec(&pair_state).expect("the state encodes"),
    ));
    // Added later, at the end: a workflow's job settings, a snapshot that holds them (after
    // the backup directors), and the attach that carries them to an agent.
    let jobs: ordo_model::inventory::JobSettingsMap = [(
        ordo_model::ids::JobName::new("j").unwrap(),
        ordo_model::inventory::JobSettings {
            restart_budget: Some(2),
            subagent_selection: Some(ordo_model::inventory::JobSelection {
                selection: Some(ordo_model::inventory::Selection::Priority),
                subagents: vec![ordo_model::inventory::JobSubagent {
                    id: AgentId::new("s1").unwrap(),
                    priority: Some(3),
                }],
            }),
        },
    )]
    .into();
    let mut jobs_state = pair_state.clone();
    let jobs_workflow = workflow_of(&jobs_state).name;
    later(
        &mut jobs_state,
        &mut out,
        "job settings",
        Body::Event(KeyedEvent::Item(ItemEvent::JobSettings {
            workflow: jobs_workflow,
            jobs: jobs.clone(),
        })),
    );
    assert_eq!(jobs_state.world.extras.jobs.len(), 1);
    out.push((
        "state snapshot with job settings".to_owned(),
        postcard::to_allocvec(&jobs_state).expect("the state encodes"),
    ));
    let mut order = jobs_state.world.order(&o2).cloned().expect("o2 exists");
    order.holder = Holder::Attaching(agent.clone());
    let attach = ToAgent::Command {
        seq: 3,
        term: 2,
        command: AgentCommand::AttachOrderWithJobs {
            order: Box::new(order),
            workflow: Box::new(workflow_of(&jobs_state)),
            options,
            jobs,
        },
    };
    out.push((
        "agent attach with job settings frame".to_owned(),
        postcard::to_allocvec(&attach).expect("the frame encodes"),
    ));
    // Added later, at the end: subagent priorities given as expressions, a snapshot that holds
    // them (after the backup directors) and the agent's object sent with them.
    let mut prio_state = pair_state.clone();
    later(
        &mut prio_state,
        &mut out,
        "agent priorities",
        Body::Event(KeyedEvent::Item(ItemEvent::AgentPriorities {
            agent: AgentId::new("cluster").unwrap(),
            priorities: sample_priorities(),
        })),
    );
    assert_eq!(prio_state.world.extras.priorities.len(), 1);
    out.push((
        "state snapshot with subagent priorities".to_owned(),
        postcard::to_allocvec(&prio_state).expect("the state encodes"),
    ));
    let cluster = prio_state
        .world
        .agents
        .get(&AgentId::new("cluster").unwrap())
        .cloned()
        .expect("the golden inventory has the agent cluster");
    out.push((
        "agent cluster with priorities frame".to_owned(),
        postcard::to_allocvec(&ToAgent::ClusterWithPriorities {
            agent: Box::new(cluster),
            settings: prio_state
                .world
                .cluster_settings(&AgentId::new("cluster").unwrap()),
            priorities: sample_priorities(),
        })
        .expect("the frame encodes"),
    ));
    out
}

/// The priority expressions of the samples: one subagent's, over its metrics.
fn sample_priorities() -> ordo_model::priority::Priorities {
    [(
        AgentId::new("sub-1").unwrap(),
        ordo_model::expr::parse("100 - $load * 100 / $cores - 10 * $processes").unwrap(),
    )]
    .into()
}

fn workflow_of(state: &State) -> ordo_model::inventory::Workflow {
    state
        .world
        .latest(&WorkflowName::new("every-instruction").unwrap())
        .map(|(_, w)| w.clone())
        .expect("deployed")
}

/// The bytes of the golden line `name`.
fn golden_bytes(name: &str) -> Vec<u8> {
    let golden = std::fs::read_to_string(GOLDEN).expect("the golden file exists");
    let hex = golden
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("{name} in {GOLDEN}"));
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A snapshot written before order options existed reads with none, and writes the same bytes
/// again; one with options keeps them.
#[test]
fn a_state_snapshot_without_options_reads_and_one_with_options_keeps_them() {
    let old = golden_bytes("state snapshot");
    let state: State = postcard::from_bytes(&old).expect("the old snapshot reads");
    assert!(state.world.extras.is_empty());
    assert!(state.world.order(&OrderId::new("o1").unwrap()).is_some());
    assert_eq!(postcard::to_allocvec(&state).unwrap(), old);

    let new = golden_bytes("state snapshot with options");
    let state: State = postcard::from_bytes(&new).expect("the snapshot reads");
    let o2 = OrderId::new("o2-é").unwrap();
    assert_eq!(state.world.priority(&o2), -7);
    let order = state.world.order(&o2).unwrap();
    assert!(state.world.deletes_when_terminated(order));
    assert_eq!(
        state
            .world
            .extras
            .workflows
            .get(&WorkflowName::new("every-instruction").unwrap()),
        Some(&sample_settings())
    );
    assert_eq!(postcard::to_allocvec(&state).unwrap(), new);
    // The JSON form (what `/state` serves the cockpit) keeps them too.
    let json = ordo_api::json::to_string(&state).unwrap();
    let back: State = ordo_api::json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

/// A snapshot with a backup director keeps it; one written before backup directors existed
/// (the snapshot with options) reads without any and writes the same bytes again.
#[test]
fn a_state_snapshot_keeps_its_backup_directors() {
    let old = golden_bytes("state snapshot with options");
    let state: State = postcard::from_bytes(&old).expect("the snapshot reads");
    assert!(state.world.extras.backup_directors.is_empty());
    assert_eq!(postcard::to_allocvec(&state).unwrap(), old);
    let new = golden_bytes("state snapshot with a backup director");
    let state: State = postcard::from_bytes(&new).expect("the snapshot reads");
    assert_eq!(
        state
            .world
            .extras
            .backup_directors
            .get(&AgentId::new("cluster").unwrap())
            .map(String::as_str),
        Some("wss://backup.example:4444")
    );
    assert_eq!(postcard::to_allocvec(&state).unwrap(), new);
    let json = ordo_api::json::to_string(&state).unwrap();
    let back: State = ordo_api::json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

/// A snapshot with subagent priorities keeps them; one written before they existed (the
/// snapshot with a backup director) reads without any and writes the same bytes again.
#[test]
fn a_state_snapshot_keeps_its_subagent_priorities() {
    let old = golden_bytes("state snapshot with a backup director");
    let state: State = postcard::from_bytes(&old).expect("the snapshot reads");
    assert!(state.world.extras.priorities.is_empty());
    assert_eq!(state.world.extras.backup_directors.len(), 1);
    assert_eq!(postcard::to_allocvec(&state).unwrap(), old);
    let new = golden_bytes("state snapshot with subagent priorities");
    let state: State = postcard::from_bytes(&new).expect("the snapshot reads");
    let cluster = AgentId::new("cluster").unwrap();
    assert_eq!(
        state.world.extras.priorities.get(&cluster),
        Some(&sample_priorities())
    );
    assert_eq!(state.world.extras.backup_directors.len(), 1);
    assert_eq!(postcard::to_allocvec(&state).unwrap(), new);
    let json = ordo_api::json::to_string(&state).unwrap();
    let back: State = ordo_api::json::from_str(&json).unwrap();
    assert_eq!(back, state);
    // Without a backup director, the backup directors are written (empty) before them.
    let mut lone = state.clone();
    lone.world.extras.backup_directors.clear();
    let bytes = postcard::to_allocvec(&lone).unwrap();
    let back: State = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, lone);
}

/// A journal written before order options existed still folds to the same state: every old
/// record decodes and applies as it did.
#[test]
fn a_journal_written_before_options_still_folds() {
    let golden = std::fs::read_to_string(GOLDEN).expect("the golden file exists");
    let mut state = State::new();
    let mut applied = 0;
    let mut id = 1u64 << 16;
    for line in golden.lines() {
        let (name, hex) = line.split_once(": ").expect("name: hex");
        if name.starts_with("state")
            || name.contains("frame")
            || name.contains("options")
            || name.starts_with("workflow settings")
            || name.starts_with("agent settings")
            || name.starts_with("agent backup director")
            || name.starts_with("job settings")
            || name.starts_with("agent priorities")
            || name.starts_with("plan ")
            || name.starts_with("join ")
            || name.starts_with("subagent unregistered")
        {
            continue;
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let stored = Record::decode(id, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = state.apply(id, &stored);
        id += 1;
        applied += 1;
    }
    assert!(applied > 10);
    assert!(state.world.extras.is_empty());
    let old: State = postcard::from_bytes(&golden_bytes("state snapshot")).unwrap();
    assert_eq!(state, old);
}

/// The workflow settings of the samples: removal on, one typed parameter.
fn sample_settings() -> WorkflowSettings {
    WorkflowSettings {
        delete_when_terminated: true,
        parameters: [(
            "n".to_owned(),
            ordo_model::order::ParameterRule {
                kind: Some(ordo_model::order::ParameterType::Number),
                final_value: None,
            },
        )]
        .into(),
        allow_undeclared: true,
    }
}

fn hex_lines(samples: &[(String, Vec<u8>)]) -> String {
    let mut text = String::new();
    for (name, bytes) in samples {
        let _ = write!(text, "{name}: ");
        for b in bytes {
            let _ = write!(text, "{b:02x}");
        }
        text.push('\n');
    }
    text
}

#[test]
fn postcard_encodings_are_unchanged() {
    let now = hex_lines(&samples());
    if std::env::var_os("ORDO_BLESS").is_some() {
        std::fs::write(GOLDEN, &now).expect("write the golden file");
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).expect("the golden file exists");
    for (i, (want, got)) in golden.lines().zip(now.lines()).enumerate() {
        let name = want.split(':').next().unwrap_or("");
        assert_eq!(got, want, "line {i} ({name}) of {GOLDEN} differs");
    }
    assert_eq!(
        golden.lines().count(),
        now.lines().count(),
        "samples in {GOLDEN}"
    );
}

/// Every sample decodes back to what was encoded.
#[test]
fn records_decode_to_what_was_encoded() {
    for (name, bytes) in samples() {
        if name.starts_with("state") || name.starts_with("agent attach") || name.contains("frame") {
            continue;
        }
        let stored = Record::decode(1, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Record::V1(stored).encode(), bytes, "{name}");
    }
}
