//! A subagent's `priority` as an expression over its live metrics (`selection: priority`).
//!
//! `priority: "100 - $load * 100 / $cores"` is evaluated by the director each time it picks a
//! subagent for a job; the highest value among the available subagents wins. The expression
//! is the expression language of [`crate::expr`]; its variables are the [`Metric`]s below
//! (with JS7's names as aliases, so that JS7 users' expressions read unchanged), and nothing
//! else: the YAML reader refuses any other variable, and `variable()`/`argument()`, which read
//! an order ([`check`]).
//!
//! The [`Subagent`](crate::inventory::Subagent) record is positional (postcard) and keeps its
//! integer `priority` (0 for a subagent with an expression); the expressions travel beside it:
//! `Inventory::subagent_priorities`, the event `ItemEvent::AgentPriorities`, the world's
//! `extras.priorities` and the agent message `ToAgent::ClusterWithPriorities`.

use crate::expr::Expr;
use crate::ids::AgentId;
use std::collections::BTreeMap;

/// A cluster's priority expressions: subagent → expression (only the subagents that have one).
pub type Priorities = BTreeMap<AgentId, Expr>;

/// A figure of a subagent an expression may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Jobs the director runs on this subagent now.
    Processes,
    /// Jobs the director runs on all its subagents now.
    ClusterProcesses,
    /// The subagent's `processLimit`.
    ProcessLimit,
    /// Jobs the subagent ran to their end (since the director started).
    Processed,
    /// The subagent host's CPU cores (from its last report).
    Cores,
    /// The host's load average over 1 minute (from its last report).
    Load,
    /// The host's available memory, in bytes (from its last report).
    MemoryFree,
    /// The host's total memory, in bytes (from its last report).
    MemoryTotal,
}

/// Every variable name a priority expression may use, with the metric it reads: ours first,
/// then JS7's alias.
pub const VARIABLES: &[(&str, Metric)] = &[
    ("processes", Metric::Processes),
    ("js7SubagentProcessCount", Metric::Processes),
    ("clusterProcesses", Metric::ClusterProcesses),
    ("js7ClusterSubagentProcessCount", Metric::ClusterProcesses),
    ("processLimit", Metric::ProcessLimit),
    ("processed", Metric::Processed),
    ("cores", Metric::Cores),
    ("load", Metric::Load),
    ("js7CpuLoad", Metric::Load),
    ("memoryFree", Metric::MemoryFree),
    ("js7FreeMemorySize", Metric::MemoryFree),
    ("memoryTotal", Metric::MemoryTotal),
    ("js7TotalMemorySize", Metric::MemoryTotal),
];

impl Metric {
    /// The metric a variable name reads, if it is one.
    pub fn named(name: &str) -> Option<Metric> {
        VARIABLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, metric)| *metric)
    }
}

/// Whether `expr` reads only metrics: `Err` names the first variable (or `variable()`,
/// `argument()`) it may not use.
pub fn check(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::Literal(_) => Ok(()),
        Expr::Var(name) => match Metric::named(name) {
            Some(_) => Ok(()),
            None => Err(format!(
                "${name} is not a subagent metric; a priority may use {}",
                VARIABLES
                    .iter()
                    .map(|(n, _)| format!("${n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        Expr::Variable(_) => Err(
            "variable() and argument() read an order's variables; a priority reads subagent \
             metrics only"
                .to_owned(),
        ),
        Expr::List(items) | Expr::Call(_, items) => items.iter().try_for_each(check),
        Expr::Not(e) | Expr::Neg(e) | Expr::Field(e, _) => check(e),
        Expr::Binary(_, a, b) | Expr::Index(a, b) => {
            check(a)?;
            check(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse;

    #[test]
    fn every_name_and_alias_is_a_metric() {
        assert_eq!(Metric::named("processes"), Some(Metric::Processes));
        assert_eq!(
            Metric::named("js7SubagentProcessCount"),
            Some(Metric::Processes)
        );
        assert_eq!(Metric::named("js7CpuLoad"), Some(Metric::Load));
        assert_eq!(
            Metric::named("js7TotalMemorySize"),
            Some(Metric::MemoryTotal)
        );
        assert_eq!(Metric::named("returnCode"), None);
    }

    #[test]
    fn only_metrics_may_be_read() {
        for ok in [
            "10 - 10 * $processes",
            "100 - $load * 100 / $cores",
            "max($memoryFree / $memoryTotal, 0.1) - $js7ClusterSubagentProcessCount",
            "3",
        ] {
            assert_eq!(check(&parse(ok).unwrap()), Ok(()), "{ok}");
        }
        let unknown = check(&parse("10 - $jobs").unwrap()).unwrap_err();
        assert!(
            unknown.starts_with("$jobs is not a subagent metric"),
            "{unknown}"
        );
        assert!(unknown.contains("$js7CpuLoad"), "{unknown}");
        let order = check(&parse("variable(\"x\", default=1)").unwrap()).unwrap_err();
        assert!(order.contains("variable()"), "{order}");
        assert!(check(&parse("[$processes, $x][0]").unwrap()).is_err());
    }
}
