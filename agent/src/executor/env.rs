//! A job's environment: what its workflow declares plus Ordo's own `ORDO_*` variables
//! (design §7; the names and protected names are in [`ordo_model::env`]).
//!
//! From weakest to strongest:
//! 1. the agent's own environment, inherited: whoever runs the agent decides it (a job's
//!    `PATH`, `HOME`, locale, ...), and nothing of an order reaches it;
//! 2. `ORDO_ARG_<name>` for every variable the job sees (the order's arguments and variables,
//!    earlier jobs' return values, the job's and the step's `args`, `returnCode`) whose name is
//!    letters, digits and `_`; the value as text (a list joins its elements with `,`, a
//!    missing value is empty). The prefix keeps an argument off every name a program
//!    reads by itself, so an argument named `PATH` or `LD_PRELOAD` changes nothing;
//! 3. the job's `env:`, rendered: the workflow author's declarations, the only way an order
//!    variable reaches a name of the job's choosing (a protected name there is a constant,
//!    see [`ordo_model::order::start_job`]);
//! 4. `ORDO_ORDER_ID`, `ORDO_WORKFLOW`, `ORDO_JOB`, `ORDO_ATTEMPT`, `ORDO_POSITION`,
//!    `ORDO_WORK_DIR` (the order's work directory, which a job that wants one creates: it is
//!    kept while the order is on the agent, for the order's later jobs) and the recovery
//!    marker `ORDO_RUN` (see [`crate::survivors`]);
//! 5. `ORDO_RETURN_VALUES`, set by the runner.
//!
//! An order variable never becomes an environment variable under its own name.

use crate::survivors::RUN_MARKER_ENV;
use ordo_model::env::{ARG_ENV_PREFIX, is_env_name};
use ordo_model::order::StartJob;
use std::collections::BTreeMap;

/// The variables Ordo sets on top of the inherited environment for `start`; `run_marker` is
/// the value of `ORDO_RUN`.
pub(super) fn job_env(
    start: &StartJob,
    run_marker: String,
    work_dir: &std::path::Path,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &start.args {
        if is_env_name(name) {
            env.insert(format!("{ARG_ENV_PREFIX}{name}"), value.to_string());
        }
    }
    env.extend(start.env.clone());
    env.insert("ORDO_ORDER_ID".into(), start.order.to_string());
    env.insert("ORDO_WORKFLOW".into(), start.workflow.to_string());
    env.insert("ORDO_JOB".into(), start.job.to_string());
    env.insert("ORDO_ATTEMPT".into(), start.attempt.to_string());
    env.insert("ORDO_POSITION".into(), start.position.to_string());
    env.insert("ORDO_WORK_DIR".into(), work_dir.display().to_string());
    env.insert(RUN_MARKER_ENV.into(), run_marker);
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::ids::{AgentId, JobName, OrderId, VersionId, WorkflowName};
    use ordo_model::inventory::{Executable, ReturnCodes};
    use ordo_model::position::Position;
    use ordo_model::time::DurationMs;
    use ordo_model::value::{Value, Vars};

    fn start(args: Vars, env: &[(&str, &str)]) -> StartJob {
        StartJob {
            order: OrderId::new("o1").unwrap(),
            agent: AgentId::new("a1").unwrap(),
            subagent: None,
            workflow: WorkflowName::new("w").unwrap(),
            version: VersionId(1),
            position: Position::default(),
            job: JobName::new("j").unwrap(),
            attempt: 1,
            executable: Executable::Script("true".into()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            args,
            timeout: None,
            grace_timeout: DurationMs(0),
            return_codes: ReturnCodes::default(),
            subagent_selection: None,
        }
    }

    #[test]
    fn arguments_arrive_only_prefixed_or_declared() {
        let args: Vars = [
            ("LD_PRELOAD", Value::from("/tmp/evil.so")),
            ("PATH", Value::from("/tmp/evil")),
            ("FOO", Value::from("foo")),
            ("n", Value::from(3)),
            ("list", Value::List(vec![Value::from("a"), Value::from(1)])),
            ("a-b", Value::from("x")),
            ("ORDO_ORDER_ID", Value::from("forged")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let env: BTreeMap<String, String> = job_env(
            &start(args, &[("DECLARED", "d"), ("ORDO_ARG_FOO", "declared")]),
            "m".into(),
            std::path::Path::new("/w/o1"),
        )
        .into_iter()
        .collect();
        for name in [
            "LD_PRELOAD",
            "PATH",
            "FOO",
            "n",
            "list",
            "a-b",
            "ORDO_ARG_a-b",
        ] {
            assert!(!env.contains_key(name), "{name} in {env:?}");
        }
        assert_eq!(env["ORDO_ARG_LD_PRELOAD"], "/tmp/evil.so");
        assert_eq!(env["ORDO_ARG_PATH"], "/tmp/evil");
        assert_eq!(env["ORDO_ARG_n"], "3");
        assert_eq!(env["ORDO_ARG_list"], "a,1");
        // The job's `env:` is stronger than the prefixed arguments, Ordo's own the strongest.
        assert_eq!(env["ORDO_ARG_FOO"], "declared");
        assert_eq!(env["DECLARED"], "d");
        assert_eq!(env["ORDO_ORDER_ID"], "o1");
        assert_eq!(env["ORDO_ARG_ORDO_ORDER_ID"], "forged");
        assert_eq!(env[RUN_MARKER_ENV], "m");
        assert_eq!(env["ORDO_WORK_DIR"], "/w/o1");
    }
}
