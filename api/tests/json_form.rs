//! The JSON form of the published types (`ordo_api::json`): the shapes readers see, and that
//! every record, frame and state reads back to exactly what was written.

use ordo_api::frame::{EventFrame, StateSnapshot, StreamMessage, parse_message};
use ordo_api::json;
use ordo_api::record::{Body, Stored};
use ordo_api::state::State;
use ordo_model::expr::{BinaryOp, Expr};
use ordo_model::ids::{AgentId, OrderId, VersionId, WorkflowName};
use ordo_model::order::{
    Command, Holder, KeyedEvent, Kill, Mark, OrderEvent, Outcome, command, deploy, step,
};
use ordo_model::position::{BlockKey, Position};
use ordo_model::time::TimeMs;
use ordo_model::value::{Value, Vars};
use ordo_model::wire::{AgentEventBody, Stream};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use serde_json::json;

fn order(event: OrderEvent) -> Body {
    Body::Event(KeyedEvent::order(&OrderId::new("o1").unwrap(), event))
}

#[test]
fn enums_are_typed_objects_with_camel_case_names() {
    assert_eq!(
        json::to_value(&order(OrderEvent::Started)).unwrap(),
        json!({"type": "event", "event": {"type": "order", "id": "o1", "event": {"type": "started"}}})
    );
    // A struct variant: its fields beside the type; unset fields left out.
    assert_eq!(
        json::to_value(&OrderEvent::Retrying {
            to: Position::start(),
            tries: 2,
            until: None,
        })
        .unwrap(),
        json!({"type": "retrying", "to": {"outer": [], "index": 0}, "tries": 2})
    );
    assert_eq!(
        json::to_value(&OrderEvent::Added {
            workflow: WorkflowName::new("w").unwrap(),
            version: VersionId(3),
            vars: Vars::from([
                ("n".to_owned(), Value::from(1.5)),
                ("m".to_owned(), Value::Missing)
            ]),
            scheduled_for: Some(TimeMs(7)),
            added_by: None,
        })
        .unwrap(),
        json!({"type": "added", "workflow": "w", "version": 3, "vars": {"m": null, "n": 1.5}, "scheduledFor": 7})
    );
    // A newtype variant: its value under the variant's name.
    assert_eq!(
        json::to_value(&Holder::Agent(AgentId::new("a1").unwrap())).unwrap(),
        json!({"type": "agent", "agent": "a1"})
    );
    assert_eq!(
        json::to_value(&Mark::Cancel {
            kill: Some(Kill::Term)
        })
        .unwrap(),
        json!({"type": "cancel", "kill": {"type": "term"}})
    );
    // A tuple variant: its values as an array under the variant's name.
    let e = Expr::Binary(
        BinaryOp::Add,
        Box::new(Expr::Literal(Value::from(1))),
        Box::new(Expr::Var("x".into())),
    );
    let j = json::to_value(&e).unwrap();
    assert_eq!(
        j,
        json!({"type": "binary", "binary": [
            {"type": "add"},
            {"type": "literal", "literal": 1},
            {"type": "var", "var": "x"},
        ]})
    );
    assert_eq!(json::from_value::<Expr>(j).unwrap(), e);
    // Run ids are hex strings (JSON numbers do not hold 128 bits); snake_case becomes camelCase.
    assert_eq!(
        json::to_value(&Body::Agent {
            agent: AgentId::new("a1").unwrap(),
            run_id: u128::MAX,
            agent_event_id: 4,
            body: AgentEventBody::OutputTruncated {
                order_id: OrderId::new("o1").unwrap(),
                cap_bytes: 10,
            },
        })
        .unwrap(),
        json!({"type": "agent", "agent": "a1", "runId": "f".repeat(32), "agentEventId": 4,
               "body": {"type": "outputTruncated", "orderId": "o1", "capBytes": 10}})
    );
}

#[test]
fn readers_take_bare_unit_variants_and_refuse_unknown_types() {
    assert_eq!(
        json::from_value::<Stream>(json!("stderr")).unwrap(),
        Stream::Stderr
    );
    assert_eq!(
        json::from_value::<Stream>(json!({"type": "stdout"})).unwrap(),
        Stream::Stdout
    );
    let e = json::from_value::<Stream>(json!({"type": "stdin"})).unwrap_err();
    assert!(
        e.to_string().contains("stdin") && e.to_string().contains("stdout"),
        "{e}"
    );
    let e = json::from_value::<Stream>(json!({"kind": "stdout"})).unwrap_err();
    assert!(e.to_string().contains("\"type\""), "{e}");
    // `type` first streams; any other order is read too.
    let agent = Holder::Agent(AgentId::new("a1").unwrap());
    assert_eq!(
        json::from_str::<Holder>(r#"{"type":"agent","agent":"a1"}"#).unwrap(),
        agent
    );
    assert_eq!(
        json::from_str::<Holder>(r#"{"agent":"a1","type":"agent"}"#).unwrap(),
        agent
    );
    let e = json::from_str::<Holder>(r#"{"type":"agent","other":1,"agent":"a1"}"#).unwrap_err();
    assert!(e.to_string().contains("\"other\""), "{e}");
}

/// Events of a whole run of every instruction, their frames, and the state they fold to.
fn run() -> (Vec<(u64, Stored)>, State) {
    let yaml = include_str!("golden/every-instruction.yaml");
    let inv = parse_inventory(&[SourceFile::new("e.yaml", yaml)], &Limits::default()).unwrap();
    let mut state = State::new();
    let mut out = Vec::new();
    let mut id = 0u64;
    let mut push = |state: &mut State, body: Body| {
        id += 1 << 16;
        let stored = Stored {
            term: 2,
            ts: TimeMs(id as i64),
            body,
        };
        let _ = state.apply(id, &stored);
        out.push((id, stored));
    };
    for e in deploy(&state.world, &inv) {
        push(&mut state, Body::Event(e));
    }
    let o1 = OrderId::new("o1").unwrap();
    let add = Command::Add {
        id: o1.clone(),
        workflow: WorkflowName::new("every-instruction").unwrap(),
        vars: Vars::from([
            ("day".to_owned(), Value::from("2026-01-02")),
            (
                "plain".to_owned(),
                Value::List(vec![Value::from(-0.5), Value::Missing]),
            ),
        ]),
        scheduled_for: None,
    };
    for e in command(&state.world, add, TimeMs(0), &Default::default())
        .unwrap()
        .events
    {
        push(&mut state, Body::Event(e));
    }
    for _ in 0..10 {
        let events = step(&state.world, &o1, TimeMs(0));
        if events.is_empty() {
            break;
        }
        for e in events {
            push(&mut state, Body::Event(e));
        }
    }
    push(
        &mut state,
        Body::Agent {
            agent: AgentId::new("cluster").unwrap(),
            run_id: 5,
            agent_event_id: 1,
            body: AgentEventBody::Order(KeyedEvent::order(
                &o1,
                OrderEvent::Processed {
                    outcome: Outcome::Succeeded {
                        values: Vars::from([("returnCode".to_owned(), Value::from(0))]),
                    },
                },
            )),
        },
    );
    push(
        &mut state,
        Body::Agent {
            agent: AgentId::new("cluster").unwrap(),
            run_id: 5,
            agent_event_id: 2,
            body: AgentEventBody::Output {
                order_id: o1.clone(),
                stream: Stream::Stdout,
                chunk: vec![0, b'h', 0xff],
            },
        },
    );
    push(
        &mut state,
        order(OrderEvent::Moved {
            to: Position::start().enter(BlockKey::Then(0)),
        }),
    );
    (out, state)
}

#[test]
fn every_frame_and_the_state_read_back_exactly() {
    let (events, state) = run();
    assert!(events.len() > 10);
    for (id, stored) in &events {
        let text = EventFrame::of(*id, stored).to_json().unwrap();
        match parse_message(&text).unwrap() {
            StreamMessage::Event(frame) => {
                assert_eq!((*frame).into_stored(), (*id, stored.clone()))
            }
            other => panic!("{other:?}"),
        }
    }
    let mut bytes = Vec::new();
    ordo_api::frame::write_state_snapshot(&mut bytes, 99, &state).unwrap();
    let back = StateSnapshot::from_slice(&bytes).unwrap();
    assert_eq!(back.state, state);
    // Folding the read frames from nothing gives the same state.
    let mut folded = State::new();
    for (id, stored) in &events {
        let text = EventFrame::of(*id, stored).to_json().unwrap();
        if let StreamMessage::Event(frame) = parse_message(&text).unwrap() {
            let (id, stored) = frame.into_stored();
            let _ = folded.apply(id, &stored);
        }
    }
    assert_eq!(folded, state);
}
