//! The door for order input: `command` refuses bad ids, names, sizes and instants before any
//! event exists; `addOrder` checks the new order's arguments with the limits it is given; a
//! protected environment name never takes its value from variables, even in a workflow that
//! bypassed the YAML check.

use ordo_model::expr::parse_template;
use ordo_model::ids::{OrderId, WorkflowName};
use ordo_model::order::{
    Command, CommandError, InputError, OrderLimits, OrderState, Side, World, command, start_job,
    step_with,
};
use ordo_model::time::TimeMs;
use ordo_model::value::{Value, Vars};
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};

const INVENTORY: &str = r#"
workflow: w
jobs:
  j: { agent: a, script: "echo $FOO", env: { FOO: $foo, PATH: /opt/bin:/usr/bin } }
steps:
  - run: j
---
workflow: parent
parameters:
  v: {}
steps:
  - addOrder: w
    args: { doubled: "${$v ++ $v}" }
---
agent: a
url: wss://127.0.0.1:4444
"#;

fn world() -> World {
    let inventory = parse_inventory(
        &[SourceFile::new("inv.yaml", INVENTORY)],
        &Limits::default(),
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let mut world = World::new(Side::Controller);
    for e in ordo_model::order::deploy(&world, &inventory) {
        world.apply(&e).unwrap();
    }
    world
}

fn id(s: &str) -> OrderId {
    OrderId::new(s).unwrap()
}

fn add(id_: &str, workflow: &str, vars: Vars, scheduled_for: Option<TimeMs>) -> Command {
    Command::Add {
        id: id(id_),
        workflow: WorkflowName::new(workflow).unwrap(),
        vars,
        scheduled_for,
    }
}

fn vars(items: &[(&str, Value)]) -> Vars {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn refused(world: &World, cmd: Command, limits: &OrderLimits) -> InputError {
    match command(world, cmd, TimeMs(0), limits) {
        Err(CommandError::Input { error, .. }) => error,
        other => panic!("not refused at the door: {other:?}"),
    }
}

#[test]
fn add_refuses_bad_names_sizes_ids_and_instants() {
    let world = world();
    let limits = OrderLimits::default();
    for name in ["", "9bad", "a-b"] {
        let e = refused(
            &world,
            add("o", "w", vars(&[(name, Value::from("x"))]), None),
            &limits,
        );
        assert_eq!(
            e,
            InputError::BadName {
                name: name.to_owned()
            }
        );
    }
    for name in ["LD_PRELOAD", "PATH", "BASH_ENV"] {
        let e = refused(
            &world,
            add("o", "w", vars(&[(name, Value::from("x"))]), None),
            &limits,
        );
        assert!(matches!(e, InputError::Protected { .. }), "{e:?}");
    }
    // 9 MiB in one argument: the total limit answers first.
    let huge = Value::String("x".repeat(9 << 20));
    let e = refused(&world, add("o", "w", vars(&[("foo", huge)]), None), &limits);
    assert_eq!(e.limit(), Some(("order_args_bytes_max", 65_536)));
    for ms in [i64::MIN, -(1 << 62), 253_402_300_800_000, i64::MAX] {
        let e = refused(
            &world,
            add("o", "w", Vars::new(), Some(TimeMs(ms))),
            &limits,
        );
        assert_eq!(e, InputError::BadInstant { ms });
    }
    let short = OrderLimits {
        order_id_bytes_max: 4,
        ..OrderLimits::default()
    };
    let e = refused(&world, add("order", "w", Vars::new(), None), &short);
    assert_eq!(e.limit(), Some(("order_id_bytes_max", 4)));
    // The same order within the limits is added.
    let ok = command(
        &world,
        add(
            "o",
            "w",
            vars(&[("foo", Value::from("bar"))]),
            Some(TimeMs(0)),
        ),
        TimeMs(0),
        &limits,
    )
    .unwrap();
    assert_eq!(ok.events.len(), 1);
}

#[test]
fn resume_and_answer_variables_pass_the_same_door() {
    let mut world = world();
    let limits = OrderLimits::default();
    for e in command(&world, add("o", "w", Vars::new(), None), TimeMs(0), &limits)
        .unwrap()
        .events
    {
        world.apply(&e).unwrap();
    }
    let bad = vars(&[("LD_PRELOAD", Value::from("/tmp/x.so"))]);
    let e = refused(
        &world,
        Command::Resume {
            id: id("o"),
            position: None,
            vars: bad.clone(),
        },
        &limits,
    );
    assert!(matches!(e, InputError::Protected { .. }), "{e:?}");
    let e = refused(
        &world,
        Command::Answer {
            id: id("o"),
            vars: bad,
        },
        &limits,
    );
    assert!(matches!(e, InputError::Protected { .. }), "{e:?}");
}

/// Steps `id` with `limits` until it stops moving.
fn settle(world: &mut World, id_: &str, limits: &OrderLimits) {
    for _ in 0..100 {
        let events = step_with(world, &id(id_), TimeMs(0), limits);
        if events.is_empty() {
            return;
        }
        for e in &events {
            world.apply(e).unwrap();
        }
    }
    panic!("{id_} did not settle");
}

#[test]
fn add_order_checks_the_new_orders_arguments_with_the_given_limits() {
    let limits = OrderLimits {
        arg_value_bytes_max: 16,
        ..OrderLimits::default()
    };
    // "abcdef" doubled is 12 bytes of text, 14 encoded: within 16.
    let mut world = world();
    let v = vars(&[("v", Value::from("abcdef"))]);
    for e in command(&world, add("p", "parent", v, None), TimeMs(0), &limits)
        .unwrap()
        .events
    {
        world.apply(&e).unwrap();
    }
    settle(&mut world, "p", &limits);
    assert_eq!(world.order(&id("p")).unwrap().state, OrderState::Finished);
    assert!(world.order(&id("p@1")).is_some());
    // Longer: within the door's limits for "p" itself, too large once doubled.
    let mut world = self::world();
    let v = vars(&[("v", Value::from("abcdefghij"))]);
    for e in command(&world, add("p", "parent", v, None), TimeMs(0), &limits)
        .unwrap()
        .events
    {
        world.apply(&e).unwrap();
    }
    settle(&mut world, "p", &limits);
    let p = world.order(&id("p")).unwrap();
    assert_eq!(p.state, OrderState::Failed);
    let last = p.outcomes.last().map(|h| h.outcome.to_string());
    assert!(
        last.as_deref()
            .is_some_and(|m| m.contains("arg_value_bytes_max = 16")),
        "{last:?}"
    );
    assert!(world.order(&id("p@1")).is_none());
}

#[test]
fn a_protected_env_name_never_takes_its_value_from_variables() {
    let mut world = world();
    let limits = OrderLimits::default();
    for e in command(
        &world,
        add("o", "w", vars(&[("foo", Value::from("/tmp"))]), None),
        TimeMs(0),
        &limits,
    )
    .unwrap()
    .events
    {
        world.apply(&e).unwrap();
    }
    let o = world.order(&id("o")).unwrap().clone();
    let start = start_job(&world, &o).unwrap();
    assert_eq!(start.env["PATH"], "/opt/bin:/usr/bin");
    assert_eq!(start.env["FOO"], "/tmp");
    assert!(!start.env.contains_key("foo"));
    // A workflow built without the YAML check, whose PATH reads a variable, never starts.
    let mut w = world
        .latest(&WorkflowName::new("w").unwrap())
        .unwrap()
        .1
        .clone();
    let job = w.jobs.values_mut().next().unwrap();
    job.env
        .insert("PATH".into(), parse_template("$foo:/usr/bin").unwrap());
    world
        .workflows
        .get_mut(&WorkflowName::new("w").unwrap())
        .unwrap()
        .insert(o.version, w);
    let e = start_job(&world, &o).unwrap_err();
    assert!(e.contains("PATH") && e.contains("constant"), "{e}");
}
