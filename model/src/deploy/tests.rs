use super::*;
use crate::ids::OrderId;
use crate::order::{Command, Side, command, deploy, step};
use crate::time::TimeMs;
use crate::yaml::{
    CheckOptions, Checked, Deployed, Limits, SourceFile, check_against_deployed, parse_inventory,
};

const BASE: &str = "\
agent: a1
url: wss://127.0.0.1:4443
---
lock: l
limit: 3
---
board: b
---
workflow: w
jobs: { j: { agent: a1, script: 'true' } }
steps:
  - lock: l
    count: 2
    do:
      - prompt: ok?
  - run: j
";

fn inventory(text: &str) -> Inventory {
    parse_inventory(&[SourceFile::new("inv.yaml", text)], &Limits::default())
        .unwrap_or_else(|d| panic!("{d:?}"))
}

/// A world with BASE deployed and order `o1` standing at the prompt inside the lock.
fn world() -> World {
    let mut world = World::new(Side::Controller);
    for e in deploy(&world, &inventory(BASE)) {
        world.apply(&e).unwrap();
    }
    let id = OrderId::new("o1").unwrap();
    let add = Command::Add {
        id: id.clone(),
        workflow: WorkflowName::new("w").unwrap(),
        vars: Default::default(),
        scheduled_for: None,
    };
    for e in command(&world, add, TimeMs(0), &Default::default())
        .unwrap()
        .events
    {
        world.apply(&e).unwrap();
    }
    for _ in 0..20 {
        let es = step(&world, &id, TimeMs(0));
        if es.is_empty() {
            break;
        }
        for e in es {
            world.apply(&e).unwrap();
        }
    }
    assert_eq!(world.orders[&id].state.name(), "prompting");
    world
}

fn check(world: &World, text: &str, removed: &Removals) -> Checked {
    let deployed = deployed_inventory(world);
    check_against_deployed(
        &[SourceFile::new("new.yaml", text)],
        &Deployed {
            inventory: &deployed,
            removed,
        },
        &Limits::default(),
        &CheckOptions::default(),
    )
}

fn messages(c: &Checked) -> Vec<String> {
    c.diagnostics.iter().map(|d| d.to_string()).collect()
}

#[test]
fn a_workflow_may_name_objects_deployed_earlier() {
    let w = world();
    let text = "workflow: v\njobs: { j: { agent: a1, script: 'true' } }\nsteps:\n  - lock: l\n    count: 3\n    do: [ { run: j } ]\n  - post: { board: b, key: k }\n  - addOrder: w\n";
    let c = check(&w, text, &Removals::default());
    assert_eq!(c.error_count(), 0, "{:?}", messages(&c));
    let inv = c.inventory.unwrap();
    assert_eq!(
        inv.workflows.len(),
        1,
        "only the files' objects are deployed"
    );
    assert!(inv.locks.is_empty());
    // The same file alone does not check.
    let alone =
        crate::yaml::check_inventory(&[SourceFile::new("new.yaml", text)], &Limits::default());
    assert!(alone.error_count() >= 3, "{:?}", messages(&alone));
}

#[test]
fn a_lock_limit_below_a_deployed_workflows_count_is_refused_at_the_lock() {
    let w = world();
    let c = check(&w, "lock: l\nlimit: 1\n", &Removals::default());
    assert_eq!(
        messages(&c),
        vec![
            "new.yaml:1:7: error: limit 1 of lock `l` is less than the count 2 deployed workflow `w` takes; that step could never get the lock"
        ]
    );
    assert!(c.inventory.is_none());
    let c = check(&w, "lock: l\nlimit: 2\n", &Removals::default());
    assert_eq!(c.error_count(), 0, "{:?}", messages(&c));
}

#[test]
fn a_workflow_deployed_again_with_a_new_required_parameter_is_checked_against_deployed_callers() {
    let w = world();
    let text = "workflow: v\nsteps: [ { addOrder: w } ]\n";
    let c = check(&w, text, &Removals::default());
    assert_eq!(c.error_count(), 0);
    let mut world = w.clone();
    for e in deploy(&world, &c.inventory.unwrap()) {
        world.apply(&e).unwrap();
    }
    let c = check(
        &world,
        "workflow: w\nparameters: { day: {} }\nsteps: [ { prompt: x } ]\n",
        &Removals::default(),
    );
    assert_eq!(
        messages(&c),
        vec![
            "new.yaml:1:11: error: workflow `w` requires the parameter `day`, which deployed workflow `v` does not pass"
        ]
    );
}

/// Deploys `text` onto `world` after checking it against what is deployed.
fn deployed(world: &World, text: &str) -> World {
    let c = check(world, text, &Removals::default());
    assert_eq!(c.error_count(), 0, "{:?}", messages(&c));
    let mut world = world.clone();
    for e in deploy(&world, &c.inventory.unwrap()) {
        world.apply(&e).unwrap();
    }
    world
}

const DAY: &str = "workflow: d\nparameters: { day: {} }\nsteps: [ { prompt: x } ]\n";

#[test]
fn a_schedule_passing_an_undeclared_argument_is_refused_on_deploy() {
    let world = deployed(&world(), DAY);
    let c = check(
        &world,
        "schedule: s\nworkflow: d\nargs: { day: $date, dya: x }\ncron: \"0 3 * * *\"\n",
        &Removals::default(),
    );
    assert_eq!(
        messages(&c),
        vec!["new.yaml:2:11: error: unknown argument `dya`; workflow `d` declares: day"]
    );
    assert!(c.inventory.is_none());
    let c = check(
        &world,
        "schedule: s\nworkflow: d\nargs: { day: $date }\ncron: \"0 3 * * *\"\n",
        &Removals::default(),
    );
    assert_eq!(c.error_count(), 0, "{:?}", messages(&c));
}

#[test]
fn an_add_order_passing_an_undeclared_argument_is_refused_on_deploy() {
    let world = deployed(&world(), DAY);
    let c = check(
        &world,
        "workflow: v\nsteps: [ { addOrder: d, args: { day: x, extra: y } } ]\n",
        &Removals::default(),
    );
    assert_eq!(
        messages(&c),
        vec!["new.yaml:2:22: error: unknown argument `extra`; workflow `d` declares: day"]
    );
}

/// Checks `text` against `deployed` (an inventory with schedules, as the controller's plan
/// adds them).
fn check_with(deployed: &Inventory, text: &str) -> Checked {
    check_against_deployed(
        &[SourceFile::new("new.yaml", text)],
        &Deployed {
            inventory: deployed,
            removed: &Removals::default(),
        },
        &Limits::default(),
        &CheckOptions::default(),
    )
}

#[test]
fn a_workflow_deployed_again_without_a_parameter_deployed_callers_pass_is_refused() {
    let world = deployed(&world(), DAY);
    let mut inv = deployed_inventory(&world);
    inv.schedules = inventory(&format!(
        "{DAY}---\nschedule: s\nworkflow: d\nargs: {{ day: $date }}\ncron: \"0 3 * * *\"\n"
    ))
    .schedules;
    let c = check_with(
        &inv,
        "workflow: d\nparameters: { date: {} }\nsteps: [ { prompt: x } ]\n",
    );
    assert_eq!(
        messages(&c),
        vec![
            "new.yaml:1:11: error: workflow `d` requires the parameter `date`, which deployed schedule `s` does not pass",
            "new.yaml:1:11: error: deployed schedule `s` would be refused: unknown argument `day`; workflow `d` declares: date",
        ]
    );
    // Letting undeclared arguments through, or declaring none, takes the schedule's.
    let open = "workflow: d\nparameters: { date: { default: x } }\nallowUndeclared: true\nsteps: [ { prompt: x } ]\n";
    let c = check_with(&inv, open);
    assert_eq!(c.error_count(), 0, "{:?}", messages(&c));
    let c = check_with(&inv, "workflow: d\nsteps: [ { prompt: x } ]\n");
    assert_eq!(c.error_count(), 0, "{:?}", messages(&c));
    // A deployed workflow that allows undeclared arguments keeps taking them; once it no
    // longer does, the deployed `addOrder` that passes one refuses the change.
    let world = deployed(&world, open);
    let world = deployed(
        &world,
        "workflow: v\nsteps: [ { addOrder: d, args: { other: x } } ]\n",
    );
    let c = check(
        &world,
        "workflow: d\nparameters: { date: { default: x } }\nsteps: [ { prompt: x } ]\n",
        &Removals::default(),
    );
    assert_eq!(
        messages(&c),
        vec![
            "new.yaml:1:11: error: deployed workflow `v` would be refused: unknown argument `other`; workflow `d` declares: date"
        ]
    );
}

#[test]
fn a_new_workflow_naming_a_removed_object_is_refused_with_its_position() {
    let w = world();
    let removed = Removals {
        boards: vec![BoardName::new("b").unwrap()],
        ..Removals::default()
    };
    let c = check(
        &w,
        "workflow: v\nsteps: [ { post: { board: b, key: k } } ]\n",
        &removed,
    );
    assert_eq!(c.error_count(), 1, "{:?}", messages(&c));
    assert!(
        messages(&c)[0].starts_with("new.yaml:2:"),
        "{:?}",
        messages(&c)
    );
}

#[test]
fn defining_a_deployed_agent_as_a_subagent_is_a_duplicate() {
    let w = world();
    let text =
        "agent: c\nurl: wss://127.0.0.1:1\nsubagents: [ { id: a1, url: 'wss://127.0.0.1:2' } ]\n";
    let c = check(&w, text, &Removals::default());
    assert_eq!(c.error_count(), 1, "{:?}", messages(&c));
    assert!(
        messages(&c)[0].contains("as agent deployed"),
        "{:?}",
        messages(&c)
    );
}

#[test]
fn the_diff_names_added_changed_and_removed_objects_with_versions() {
    let w = world();
    let new = inventory(
        "lock: l\nlimit: 2\n---\nlock: m\n---\nagent: a1\nurl: wss://127.0.0.1:4443\n---\nworkflow: v\nsteps: [ { prompt: x } ]\n",
    );
    let removed = Removals {
        boards: vec![BoardName::new("b").unwrap()],
        ..Removals::default()
    };
    let d = diff(&w, &deployed_inventory(&w), &new, &removed);
    let names = |l: &[ItemChange]| -> Vec<String> {
        l.iter().map(|c| format!("{} {}", c.kind, c.name)).collect()
    };
    assert_eq!(names(&d.added), vec!["workflow v", "lock m"]);
    assert_eq!(names(&d.changed), vec!["lock l"]);
    assert_eq!(d.changed[0].detail.as_deref(), Some("limit 3 → 2"));
    assert_eq!(names(&d.removed), vec!["board b"]);
    assert!(d.affected.is_empty());
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(d.added[0].version, Some(VersionId(1)));
    let events = removal_events(&w, &removed);
    assert_eq!(
        events,
        vec![KeyedEvent::Item(ItemEvent::BoardRemoved(
            BoardName::new("b").unwrap()
        ))]
    );
}

#[test]
fn a_change_keeping_the_position_affects_the_order_without_stranding_it() {
    let w = world();
    let new = inventory(&BASE.replace("prompt: ok?", "prompt: sure?"));
    let d = diff(&w, &deployed_inventory(&w), &new, &Removals::default());
    assert_eq!(d.changed.len(), 1);
    assert_eq!(d.changed[0].from_version, Some(VersionId(1)));
    assert_eq!(d.changed[0].version, Some(VersionId(2)));
    assert_eq!(d.affected.len(), 1);
    let o = &d.affected[0];
    assert_eq!(
        (o.order.as_str(), o.position.as_str(), o.version),
        ("o1", "0/do/0", VersionId(1))
    );
    assert_eq!(o.stranded, None);
    assert_eq!(d.stranded().count(), 0);
}

#[test]
fn a_change_that_drops_or_replaces_the_orders_position_strands_it() {
    let w = world();
    let gone = inventory(&BASE.replace("      - prompt: ok?\n", "      - run: j\n"));
    let d = diff(&w, &deployed_inventory(&w), &gone, &Removals::default());
    let s: Vec<_> = d.stranded().collect();
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].stranded.as_deref(),
        Some("position 0/do/0 holds `run` in v2, not `prompt`")
    );
    let no_lock = inventory(
        "agent: a1\nurl: wss://127.0.0.1:4443\n---\nlock: l\nlimit: 3\n---\nboard: b\n---\nworkflow: w\nsteps: [ { prompt: ok? } ]\n",
    );
    let d = diff(&w, &deployed_inventory(&w), &no_lock, &Removals::default());
    assert_eq!(
        d.stranded().next().and_then(|o| o.stranded.as_deref()),
        Some("position 0/do/0 does not exist in v2")
    );
}

#[test]
fn removals_something_needs_are_refused() {
    let w = world();
    let rm = Removals {
        workflows: vec![WorkflowName::new("w").unwrap()],
        locks: vec![LockName::new("l").unwrap()],
        agents: vec![AgentId::new("a1").unwrap()],
        boards: vec![BoardName::new("nope").unwrap()],
        ..Removals::default()
    };
    let d = diff(&w, &deployed_inventory(&w), &Inventory::default(), &rm);
    assert_eq!(
        d.refused,
        vec![
            "workflow `w` has 1 live order(s); cancel them or let them end first",
            "lock `l` is held or awaited by 1 order(s)",
            "board `nope` is not deployed; nothing to remove",
        ]
    );
    assert_eq!(d.stranded().count(), 1);
    // Removing the lock alone: the deployed workflow that stays still names it.
    let rm = Removals {
        locks: vec![LockName::new("l").unwrap()],
        agents: vec![AgentId::new("a1").unwrap()],
        ..Removals::default()
    };
    let d = diff(&w, &deployed_inventory(&w), &Inventory::default(), &rm);
    assert_eq!(
        d.refused,
        vec![
            "agent `a1` is used by workflow `w`",
            "lock `l` is used by workflow `w`",
            "lock `l` is held or awaited by 1 order(s)",
        ]
    );
}

#[test]
fn a_removed_workflow_is_gone_and_may_be_deployed_again_from_version_one() {
    let mut world = World::new(Side::Controller);
    let inv = inventory("workflow: w\nsteps: [ { prompt: a } ]\n");
    for e in deploy(&world, &inv) {
        world.apply(&e).unwrap();
    }
    let rm = Removals {
        workflows: vec![WorkflowName::new("w").unwrap()],
        ..Removals::default()
    };
    let d = diff(
        &world,
        &deployed_inventory(&world),
        &Inventory::default(),
        &rm,
    );
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    // An agent keeps the workflows it was given: its world still has v1 after the removal.
    let mut agent = world.clone();
    for e in removal_events(&world, &rm) {
        world.apply(&e).unwrap();
    }
    assert!(world.workflows.is_empty());
    let again = inventory("workflow: w\nsteps: [ { prompt: b } ]\n");
    let events = deploy(&world, &again);
    assert_eq!(
        events[0].to_string().split_whitespace().last(),
        Some("v1"),
        "{}",
        events[0]
    );
    for e in &events {
        world.apply(e).unwrap();
        agent.apply(e).unwrap();
    }
    assert_eq!(
        agent
            .latest(&WorkflowName::new("w").unwrap())
            .map(|(_, w)| w),
        Some(&again.workflows[0])
    );
}

#[test]
fn removed_in_a_file_is_read_and_checked_with_the_files() {
    let w = world();
    let c = check(
        &w,
        "removed: { locks: [l], boards: [b, nope] }\n---\nworkflow: v\nsteps: [ { lock: l, do: [ { prompt: x } ] } ]\n",
        &Removals::default(),
    );
    assert_eq!(c.error_count(), 1, "{:?}", messages(&c));
    assert!(
        messages(&c)[0].starts_with("new.yaml:4:18: error: unknown lock `l`"),
        "{:?}",
        messages(&c)
    );
    let c = check(&w, "removed: { boards: [b, nope] }\n", &Removals::default());
    let inv = c
        .inventory
        .clone()
        .unwrap_or_else(|| panic!("{:?}", messages(&c)));
    assert_eq!(inv.removed.boards.len(), 2);
    // Only what is deployed is removed: the same file deploys again without change.
    let deployed_only = inv.removed.deployed_only(&deployed_inventory(&w));
    assert_eq!(deployed_only.boards, vec![BoardName::new("b").unwrap()]);
    let c = check(&w, "removed: { locks: [1bad!] }\n", &Removals::default());
    assert!(
        messages(&c)[0].starts_with("new.yaml:1:20: error: `removed.locks`"),
        "{:?}",
        messages(&c)
    );
}

const PLANNED: &str = "\
calendar: workdays
weekdays: MON-FRI
---
calendar: office
calendars: [workdays]
---
schedule: daily
workflow: w
cron: \"0 6 * * *\"
calendar: workdays
---
schedule: hourly
workflow: w
cron: \"0 * * * *\"
";

/// BASE and PLANNED as the controller holds them: the world's objects and the plan's.
fn planned() -> (World, Inventory) {
    let mut world = World::new(Side::Controller);
    for e in deploy(&world, &inventory(BASE)) {
        world.apply(&e).unwrap();
    }
    let plan = inventory(&format!("{BASE}---\n{PLANNED}"));
    let mut deployed = deployed_inventory(&world);
    deployed.schedules = plan.schedules;
    deployed.calendars = plan.calendars;
    (world, deployed)
}

fn schedules(names: &[&str]) -> Vec<ScheduleName> {
    names
        .iter()
        .map(|n| ScheduleName::new(*n).unwrap())
        .collect()
}

fn calendars(names: &[&str]) -> Vec<CalendarName> {
    names
        .iter()
        .map(|n| CalendarName::new(*n).unwrap())
        .collect()
}

#[test]
fn a_schedule_is_removed_and_its_calendar_only_once_nothing_that_stays_names_it() {
    let (world, deployed) = planned();
    let rm = Removals {
        schedules: schedules(&["daily", "nope"]),
        calendars: calendars(&["workdays", "gone"]),
        ..Removals::default()
    };
    let d = diff(&world, &deployed, &Inventory::default(), &rm);
    assert_eq!(
        d.refused,
        vec![
            "schedule `nope` is not deployed; nothing to remove",
            "calendar `workdays` is used by calendar `office`",
            "calendar `gone` is not deployed; nothing to remove",
        ]
    );
    // A schedule that stays still names the calendar.
    let rm = Removals {
        calendars: calendars(&["workdays", "office"]),
        ..Removals::default()
    };
    let d = diff(&world, &deployed, &Inventory::default(), &rm);
    assert_eq!(
        d.refused,
        vec!["calendar `workdays` is used by schedule `daily`"]
    );
    // ... also when it is deployed again in the same deployment.
    let mut again = inventory(&format!(
        "{BASE}---\ncalendar: workdays\n---\nschedule: daily\nworkflow: w\ncron: \"0 7 * * *\"\ncalendar: workdays\n"
    ));
    again.calendars.clear();
    let d = diff(&world, &deployed, &again, &rm);
    assert_eq!(
        d.refused,
        vec!["calendar `workdays` is used by schedule `daily`"]
    );
    // Everything that names it goes too: made.
    let rm = Removals {
        schedules: schedules(&["daily"]),
        calendars: calendars(&["workdays", "office"]),
        ..Removals::default()
    };
    let d = diff(&world, &deployed, &Inventory::default(), &rm);
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    let removed: Vec<String> = d
        .removed
        .iter()
        .map(|c| format!("{} {}", c.kind, c.name))
        .collect();
    assert_eq!(
        removed,
        vec!["schedule daily", "calendar workdays", "calendar office"]
    );
    assert!(
        removal_events(&world, &rm).is_empty(),
        "the plan's objects are removed by the planner"
    );
}

#[test]
fn a_schedule_both_deployed_and_removed_is_refused() {
    let (world, deployed) = planned();
    let new = inventory(&format!(
        "{BASE}---\nschedule: hourly\nworkflow: w\ncron: \"30 * * * *\"\n"
    ));
    let rm = Removals {
        schedules: schedules(&["hourly"]),
        ..Removals::default()
    };
    let d = diff(&world, &deployed, &new, &rm);
    assert_eq!(
        d.refused,
        vec!["schedule `hourly` is both deployed and removed"]
    );
}

#[test]
fn a_workflow_is_removed_only_with_every_schedule_that_names_it() {
    let mut world = World::new(Side::Controller);
    for e in deploy(&world, &inventory(BASE)) {
        world.apply(&e).unwrap();
    }
    let mut deployed = deployed_inventory(&world);
    deployed.schedules = inventory(&format!("{BASE}---\n{PLANNED}")).schedules;
    deployed.calendars = inventory(&format!("{BASE}---\n{PLANNED}")).calendars;
    // `world` has no orders: only the schedules stand in the way.
    let w = || WorkflowName::new("w").unwrap();
    let rm = Removals {
        workflows: vec![w()],
        schedules: schedules(&["hourly"]),
        ..Removals::default()
    };
    let d = diff(&world, &deployed, &Inventory::default(), &rm);
    assert_eq!(d.refused, vec!["workflow `w` is used by schedule `daily`"]);
    let rm = Removals {
        workflows: vec![w()],
        schedules: schedules(&["hourly", "daily"]),
        ..Removals::default()
    };
    let d = diff(&world, &deployed, &Inventory::default(), &rm);
    assert!(d.refused.is_empty(), "{:?}", d.refused);
}

#[test]
fn the_diff_of_a_removed_schedule_counts_the_planned_orders_it_cancels() {
    let (mut world, deployed) = planned();
    let hourly = ScheduleName::new("hourly").unwrap();
    for (i, scheduled) in [Some(TimeMs(3_600_000)), None].into_iter().enumerate() {
        let add = Command::Add {
            id: OrderId::new(format!("#2026-06-01#hourly@0{i}:00:00+00:00")).unwrap(),
            workflow: WorkflowName::new("w").unwrap(),
            vars: Default::default(),
            scheduled_for: scheduled,
        };
        let accepted = crate::order::missed::add_planned(
            &world,
            add,
            &hourly,
            crate::schedule::Missed::Skip,
            60_000,
            TimeMs(0),
            &Default::default(),
        )
        .unwrap();
        for e in accepted.events {
            world.apply(&e).unwrap();
        }
    }
    // An order of another kind is not counted.
    let add = Command::Add {
        id: OrderId::new("by-hand").unwrap(),
        workflow: WorkflowName::new("w").unwrap(),
        vars: Default::default(),
        scheduled_for: Some(TimeMs(3_600_000)),
    };
    for e in command(&world, add, TimeMs(0), &Default::default())
        .unwrap()
        .events
    {
        world.apply(&e).unwrap();
    }
    assert_eq!(planned_not_started(&world, &hourly).count(), 2);
    let rm = Removals {
        schedules: vec![hourly.clone()],
        ..Removals::default()
    };
    let d = diff(&world, &deployed, &Inventory::default(), &rm);
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(
        d.removed[0].detail.as_deref(),
        Some("2 planned order(s) not started are cancelled")
    );
}

#[test]
fn removed_schedules_and_calendars_are_read_and_checked_with_the_files() {
    let (world, deployed) = planned();
    let check_with = |text: &str| {
        check_against_deployed(
            &[SourceFile::new("new.yaml", text)],
            &Deployed {
                inventory: &deployed,
                removed: &Removals::default(),
            },
            &Limits::default(),
            &CheckOptions::default(),
        )
    };
    let c = check_with("removed: { schedules: [daily, nope], calendars: [office] }\n");
    let inv = c
        .inventory
        .clone()
        .unwrap_or_else(|| panic!("{:?}", messages(&c)));
    assert_eq!(inv.removed.schedules, schedules(&["daily", "nope"]));
    assert_eq!(inv.removed.calendars, calendars(&["office"]));
    let only = inv.removed.deployed_only(&deployed);
    assert_eq!(only.schedules, schedules(&["daily"]));
    assert_eq!(only.calendars, calendars(&["office"]));
    assert_eq!(only.len(), 2);
    // A new schedule may not name a calendar removed with it.
    let c = check_with(
        "removed: { calendars: [office] }\n---\nschedule: new\nworkflow: w\ncron: \"0 8 * * *\"\ncalendar: office\n",
    );
    assert!(
        messages(&c)
            .iter()
            .any(|m| m.contains("unknown calendar `office`")),
        "{:?}",
        messages(&c)
    );
    let c = check_with("removed: { schedules: [1bad!] }\n");
    assert!(
        messages(&c)[0].starts_with("new.yaml:1:24: error: `removed.schedules`"),
        "{:?}",
        messages(&c)
    );
    let _ = world;
}

/// A cluster's priority expressions are deployed as `AgentPriorities` when they differ from
/// the world's (added, changed, taken away), never when they are the same; the world keeps
/// them beside the object and the diff names the agent as changed.
#[test]
fn subagent_priority_expressions_are_deployed_only_when_they_change() {
    let cluster = |s1: &str| {
        inventory(&format!(
            "agent: c\nurl: wss://127.0.0.1:4443\nselection: priority\nsubagents:\n  \
             - {{ id: s1, url: \"wss://127.0.0.1:4444\", priority: {s1} }}\n"
        ))
    };
    let priorities = |events: &[KeyedEvent]| -> Vec<String> {
        events
            .iter()
            .filter(|e| matches!(e, KeyedEvent::Item(ItemEvent::AgentPriorities { .. })))
            .map(ToString::to_string)
            .collect()
    };
    let c = AgentId::new("c").unwrap();
    let mut w = World::new(Side::Controller);
    let first = cluster("\"10 - $processes\"");
    let events = deploy(&w, &first);
    assert_eq!(
        priorities(&events),
        ["AgentPriorities c s1: \"10 - $processes\""]
    );
    for e in &events {
        w.apply(e).unwrap();
    }
    assert_eq!(w.extras.priorities[&c].len(), 1);
    assert_eq!(
        deployed_inventory(&w).subagent_priorities,
        first.subagent_priorities
    );
    // The same again: nothing.
    assert!(priorities(&deploy(&w, &first)).is_empty());
    let d = diff(&w, &deployed_inventory(&w), &first, &Removals::default());
    assert!(d.changed.is_empty(), "{:?}", d.changed);
    // Changed: the agent object is the same, its priorities are not.
    let changed = cluster("\"20 - $processes\"");
    let d = diff(&w, &deployed_inventory(&w), &changed, &Removals::default());
    assert_eq!(d.changed.len(), 1);
    assert_eq!(d.changed[0].detail.as_deref(), Some("subagent priorities"));
    assert_eq!(
        priorities(&deploy(&w, &changed)),
        ["AgentPriorities c s1: \"20 - $processes\""]
    );
    // A whole number instead: the expressions go.
    let events = deploy(&w, &cluster("3"));
    assert_eq!(priorities(&events), ["AgentPriorities c none"]);
    for e in &events {
        w.apply(e).unwrap();
    }
    assert!(w.extras.priorities.is_empty());
    // A removed agent takes its expressions along.
    for e in deploy(&w, &first) {
        w.apply(&e).unwrap();
    }
    w.apply(&KeyedEvent::Item(ItemEvent::AgentRemoved(c)))
        .unwrap();
    assert!(w.extras.priorities.is_empty());
}
