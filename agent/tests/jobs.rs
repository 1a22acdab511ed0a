//! Jobs through a real agent and a test controller: success with return values, failure,
//! timeout of a process tree, output streaming and its cap.

mod common;

use common::{Agent, Ctl, Setup};
use ordo_model::order::{Command, Kill, OrderEvent, OrderState, Outcome};
use ordo_model::value::{Value, Vars};

const WORKFLOWS: &str = r#"
workflow: hello
jobs:
  greet:
    agent: a1
    script: |
      echo "hello $WHO"
      echo "answer=42" >> "$ORDO_RETURN_VALUES"
      echo "attempt=$ORDO_ATTEMPT job=$ORDO_JOB workflow=$ORDO_WORKFLOW" >> "$ORDO_RETURN_VALUES"
    env: { WHO: $who }
parameters:
  who: { default: world }
steps:
  - run: greet
---
workflow: failing
jobs:
  bad: { agent: a1, script: "echo oops >&2; exit 3" }
steps:
  - run: bad
---
workflow: slow
jobs:
  tree:
    agent: a1
    timeout: 1s
    graceTimeout: 500ms
    script: |
      sh -c 'trap "" TERM; echo "grandchild $$"; exec sleep 30' &
      sleep 30
steps:
  - run: tree
---
workflow: chatty
jobs:
  talk:
    agent: a1
    script: |
      echo first
      sleep 1
      head -c 5000 /dev/zero | tr '\0' 'x'
steps:
  - run: talk
---
workflow: bashism
jobs:
  arrays:
    agent: a1
    script: |
      #!/bin/bash
      set -u
      arr=(one two three)
      if [[ ${#arr[@]} -eq 3 && "${arr[1]}" == two ]]; then
        echo "bash: ${arr[*]}"
        echo "shell=${BASH_VERSION%%.*}" >> "$ORDO_RETURN_VALUES"
      else
        exit 7
      fi
steps:
  - run: arrays
---
workflow: python
jobs:
  py:
    agent: a1
    script: |
      #!/usr/bin/env python3
      import os
      print("python", os.environ["ORDO_JOB"], [n * n for n in range(3)])
steps:
  - run: py
---
workflow: plain
jobs:
  sh:
    agent: a1
    script: |
      # a comment, no interpreter line: /bin/sh as before
      echo "plain $0"
steps:
  - run: sh
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_job_runs_and_its_events_arrive() {
    let setup = Setup::new("");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), WORKFLOWS);
    let coupled = ctl.couple().await.clone();
    assert!(coupled.attached_orders.is_empty());
    assert_eq!(coupled.meta.agent_id, "a1");

    let mut vars = Vars::new();
    vars.insert("who".into(), Value::String("ordo".into()));
    ctl.add_order("o1", "hello", vars, None).await;
    ctl.until(10_000, "o1 finished", |c| {
        c.state("o1") == Some(OrderState::Finished)
    })
    .await;
    assert_eq!(
        ctl.names("o1"),
        [
            "Attached",
            "ProcessingStarted",
            "Output",
            "Processed",
            "Moved",
            "Detachable",
            "Detached"
        ]
    );
    assert_eq!(ctl.output("o1"), b"hello ordo\n");
    let Some(OrderEvent::Processed {
        outcome: Outcome::Succeeded { values },
    }) = ctl.order_event("o1", "Processed")
    else {
        panic!("no success: {:?}", ctl.names("o1"));
    };
    assert_eq!(values.get("answer"), Some(&Value::String("42".into())));
    assert_eq!(
        values.get("attempt"),
        Some(&Value::String("1 job=greet workflow=hello".into()))
    );
    let o = ctl.world.order(&"o1".parse_id()).unwrap();
    assert_eq!(o.vars.get("answer"), Some(&Value::String("42".into())));
    assert_eq!(o.vars.get("returnCode"), Some(&Value::Number(0.0)));
    ctl.disconnect().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_failure_and_timeout_kill_of_a_process_tree() {
    let setup = Setup::new("");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), WORKFLOWS);
    ctl.couple().await;
    ctl.add_order("bad", "failing", Vars::new(), None).await;
    ctl.add_order("slow", "slow", Vars::new(), None).await;
    ctl.until(5_000, "slow started", |c| {
        c.has("slow", "ProcessingStarted")
    })
    .await;
    let pgid = common::job_pgid(ctl.run_id.unwrap(), "slow", 1, 5_000)
        .await
        .expect("the slow job's process");
    ctl.until(10_000, "both failed", |c| {
        c.state("bad") == Some(OrderState::Failed) && c.state("slow") == Some(OrderState::Failed)
    })
    .await;
    assert!(matches!(
        ctl.order_event("bad", "Processed"),
        Some(OrderEvent::Processed {
            outcome: Outcome::Failed {
                return_code: Some(3),
                ..
            }
        })
    ));
    assert_eq!(ctl.output("bad"), b"oops\n");
    assert!(matches!(
        ctl.order_event("slow", "Processed"),
        Some(OrderEvent::Processed {
            outcome: Outcome::TimedOut
        })
    ));
    // The grandchild ignored SIGTERM; the group got SIGKILL after the grace time.
    let text = String::from_utf8(ctl.output("slow")).unwrap();
    let pid: u32 = text
        .trim()
        .strip_prefix("grandchild ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("output {text:?}"));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the grandchild {pid} survived the timeout"
    );
    assert!(!common::group_alive(pgid));
    ctl.disconnect().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_output_streams_while_the_job_runs_and_is_capped() {
    let setup = Setup::new("log_bytes_max = 1000\nlog_chunk_bytes_max = 256");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), WORKFLOWS);
    ctl.couple().await;
    ctl.add_order("talk", "chatty", Vars::new(), None).await;
    ctl.until(5_000, "the first output", |c| c.has("talk", "Output"))
        .await;
    assert!(
        !ctl.has("talk", "Processed"),
        "output must arrive while the job runs"
    );
    ctl.until(10_000, "talk finished", |c| {
        c.state("talk") == Some(OrderState::Finished)
    })
    .await;
    let output = ctl.output("talk");
    assert_eq!(output.len(), 1000, "the cap counts both streams");
    assert!(output.starts_with(b"first\nxxx"));
    let chunks = ctl.names("talk").iter().filter(|n| *n == "Output").count();
    assert!(chunks >= 4, "chunks of at most 256 bytes: {chunks}");
    assert!(ctl.events.iter().all(|e| match &e.body {
        ordo_model::wire::AgentEventBody::Output { chunk, .. } => chunk.len() <= 256,
        _ => true,
    }));
    let names = ctl.names("talk");
    let truncated = names
        .iter()
        .position(|n| n == "OutputTruncated")
        .expect("truncation marked");
    let processed = names.iter().position(|n| n == "Processed").unwrap();
    assert!(truncated < processed);
    ctl.disconnect().await;
    agent.stop().await;
}

const SLEEPY: &str = r#"
workflow: sleepy
jobs:
  nap: { agent: a1, script: "sleep 5", parallelism: 10 }
steps:
  - run: nap
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_cancel_kills_a_running_job_and_withdraws_a_waiting_one() {
    let setup = Setup::new("processes_max = 1");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), SLEEPY);
    ctl.couple().await;
    ctl.add_order("running", "sleepy", Vars::new(), None).await;
    ctl.until(5_000, "running started", |c| {
        c.has("running", "ProcessingStarted")
    })
    .await;
    let pgid = common::job_pgid(ctl.run_id.unwrap(), "running", 1, 5_000)
        .await
        .expect("the running job's process");
    // One process slot: the second order's job is started (journaled) and waits for it.
    ctl.add_order("waiting", "sleepy", Vars::new(), None).await;
    ctl.until(3_000, "waiting started", |c| {
        c.has("waiting", "ProcessingStarted")
    })
    .await;
    ctl.operator(Command::Cancel {
        id: "waiting".parse_id(),
        kill: None,
    })
    .await;
    ctl.until(5_000, "waiting cancelled", |c| {
        c.state("waiting") == Some(OrderState::Cancelled)
    })
    .await;
    // Its start is taken back: it never ran.
    assert_eq!(
        ctl.names("waiting"),
        [
            "Attached",
            "ProcessingStarted",
            "MarkedOnAgent",
            "ProcessingWithdrawn",
            "Detachable",
            "Detached"
        ]
    );
    // The running job is killed on request.
    ctl.operator(Command::Cancel {
        id: "running".parse_id(),
        kill: Some(Kill::Term),
    })
    .await;
    ctl.until(5_000, "running cancelled", |c| {
        c.state("running") == Some(OrderState::Cancelled)
    })
    .await;
    assert!(matches!(
        ctl.order_event("running", "Processed"),
        Some(OrderEvent::Processed {
            outcome: Outcome::Killed
        })
    ));
    assert!(common::eventually(2_000, || !common::group_alive(pgid)).await);
    ctl.disconnect().await;
    agent.stop().await;
}

const ONE_AT_A_TIME: &str = r#"
workflow: single
jobs:
  only: { agent: a1, script: "sleep 0.1" }
steps:
  - run: only
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_parallelism_one_runs_waiting_orders_one_after_another_in_order() {
    let setup = Setup::new("");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), ONE_AT_A_TIME);
    ctl.couple().await;
    let ids = ["o1", "o2", "o3", "o4", "o5"];
    for id in ids {
        ctl.add_order(id, "single", Vars::new(), None).await;
    }
    ctl.until(10_000, "all finished", |c| {
        ids.iter()
            .all(|id| c.state(id) == Some(OrderState::Finished))
    })
    .await;
    // Starts and ends alternate: never two processes of the job at once, first come first.
    let sequence: Vec<String> = ctl
        .events
        .iter()
        .filter_map(|e| match &e.body {
            ordo_model::wire::AgentEventBody::Order(ordo_model::order::KeyedEvent::Order {
                id,
                event: event @ (OrderEvent::ProcessingStarted { .. } | OrderEvent::Processed { .. }),
            }) => Some(format!("{id} {}", event.name())),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = ids
        .iter()
        .flat_map(|id| [format!("{id} ProcessingStarted"), format!("{id} Processed")])
        .collect();
    assert_eq!(sequence, expected);
    ctl.disconnect().await;
    agent.stop().await;
}

const ENVIRONMENT: &str = r#"
workflow: environment
jobs:
  seed:
    agent: a1
    # Return values become order variables too: they must not reach the next job's
    # environment under their own names either.
    script: |
      echo "LD_LIBRARY_PATH=/nonexistent/lib" >> "$ORDO_RETURN_VALUES"
      echo "BASH_ENV=/nonexistent/rc" >> "$ORDO_RETURN_VALUES"
  show:
    agent: a1
    env: { DECLARED: $FOO }
    script: |
      echo "LD_PRELOAD=${LD_PRELOAD-unset}"
      echo "PATH=${PATH-unset}"
      echo "FOO=${FOO-unset}"
      echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}"
      echo "BASH_ENV=${BASH_ENV-unset}"
      echo "DECLARED=${DECLARED-unset}"
      echo "ORDO_ARG_FOO=${ORDO_ARG_FOO-unset}"
      echo "ORDO_ARG_PATH=${ORDO_ARG_PATH-unset}"
      echo "ORDO_ARG_BASH_ENV=${ORDO_ARG_BASH_ENV-unset}"
steps:
  - run: seed
  - run: show
"#;

/// Order variables (arguments and return values) reach a job only through its declared
/// `env:` and as `ORDO_ARG_<name>`; `LD_PRELOAD` and `PATH` among the arguments change
/// nothing. The order comes past the door that refuses such names today, as one journaled
/// before it would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_order_variables_reach_the_job_only_as_declared_or_prefixed() {
    let setup = Setup::new("");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), ENVIRONMENT);
    ctl.couple().await;
    let mut vars = Vars::new();
    vars.insert("LD_PRELOAD".into(), Value::from("/nonexistent/evil.so"));
    vars.insert("PATH".into(), Value::from("/nonexistent/bin"));
    vars.insert("FOO".into(), Value::from("foo"));
    ctl.add_order_unchecked("env", "environment", vars).await;
    ctl.until(10_000, "env finished", |c| {
        c.state("env") == Some(OrderState::Finished)
    })
    .await;
    let output = String::from_utf8(ctl.output("env")).unwrap();
    let seen: std::collections::BTreeMap<&str, &str> =
        output.lines().filter_map(|l| l.split_once('=')).collect();
    // These have what the agent's own environment has (cargo sets LD_LIBRARY_PATH for tests).
    let inherited: Vec<(&str, String)> =
        ["LD_PRELOAD", "PATH", "FOO", "LD_LIBRARY_PATH", "BASH_ENV"]
            .into_iter()
            .map(|n| (n, std::env::var(n).unwrap_or_else(|_| "unset".into())))
            .collect();
    for (name, value) in &inherited {
        assert!(
            !value.contains("nonexistent"),
            "the test's own {name} is {value}"
        );
        assert_eq!(
            seen.get(name).copied(),
            Some(value.as_str()),
            "{name} in {output}"
        );
    }
    let expected = [
        ("DECLARED", "foo"),
        ("ORDO_ARG_FOO", "foo"),
        ("ORDO_ARG_PATH", "/nonexistent/bin"),
        ("ORDO_ARG_BASH_ENV", "/nonexistent/rc"),
    ];
    for (name, value) in expected {
        assert_eq!(seen.get(name).copied(), Some(value), "{name} in {output}");
    }
    ctl.disconnect().await;
    agent.stop().await;
}

trait ParseId {
    fn parse_id(&self) -> ordo_model::ids::OrderId;
}

impl ParseId for str {
    fn parse_id(&self) -> ordo_model::ids::OrderId {
        ordo_model::ids::OrderId::new(self).unwrap()
    }
}

/// A script whose first line is `#!` runs under that interpreter: bash arrays and `[[ ]]`
/// work under `#!/bin/bash` (plain `/bin/sh` may not have them), `#!/usr/bin/env python3`
/// runs Python, and a script without it runs under `/bin/sh -c` as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_a_script_with_a_shebang_line_runs_under_its_interpreter() {
    let setup = Setup::new("");
    let agent = Agent::start(setup.config()).await;
    let mut ctl = Ctl::new(agent.addr, setup.controller_tls(), WORKFLOWS);
    ctl.couple().await;
    let python = std::path::Path::new("/usr/bin/python3").exists();
    ctl.add_order("b1", "bashism", Vars::new(), None).await;
    ctl.add_order("s1", "plain", Vars::new(), None).await;
    if python {
        ctl.add_order("p1", "python", Vars::new(), None).await;
    }
    ctl.until(20_000, "the orders ended", |c| {
        ["b1", "s1"]
            .iter()
            .chain(if python { &["p1"][..] } else { &[][..] })
            .all(|o| c.state(o).is_some_and(|s| s.is_terminal()))
    })
    .await;
    assert_eq!(
        ctl.state("b1"),
        Some(OrderState::Finished),
        "{:?}",
        ctl.order_event("b1", "Processed")
    );
    assert_eq!(ctl.output("b1"), b"bash: one two three\n");
    let o = ctl.world.order(&"b1".parse_id()).unwrap();
    assert!(
        matches!(o.vars.get("shell"), Some(Value::String(v)) if !v.is_empty()),
        "{:?}",
        o.vars
    );
    assert_eq!(ctl.state("s1"), Some(OrderState::Finished));
    assert_eq!(ctl.output("s1"), b"plain /bin/sh\n");
    if python {
        assert_eq!(ctl.state("p1"), Some(OrderState::Finished));
        assert_eq!(ctl.output("p1"), b"python py [0, 1, 4]\n");
    }
    ctl.disconnect().await;
    agent.stop().await;
}
