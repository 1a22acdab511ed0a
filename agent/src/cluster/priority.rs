//! A subagent's priority as the director computes it at each pick (`selection: priority`).
//!
//! A subagent's `priority` is a whole number, or an expression over its live metrics
//! ([`ordo_model::priority`]: the names, the check at deployment). The director evaluates the
//! expression each time it lists its candidates ([`super::director`]'s `Inner::candidates`)
//! with a [`Metrics`] scope: the jobs it runs there and on the whole cluster, the subagent's
//! process limit and jobs ended, and its host as its last `FromSubagent::Report` gave it. A
//! metric of the report is not set before the first report.
//!
//! An expression that fails (a metric not set yet, a division by zero, a wrong type) or gives
//! no finite number makes the subagent's priority [`FAILED`], below every other: it gets a job
//! only when no other subagent is available. Its error is logged at `warn` once per change of
//! its text ([`Warned`]), not at every pick.

use ordo_model::expr::{self, Expr, Scope};
use ordo_model::ids::AgentId;
use ordo_model::priority::Metric;
use ordo_model::value::Value;
use ordo_model::wire::HostFigures;

/// The priority of a subagent whose expression failed: the lowest of all.
pub const FAILED: f64 = f64::NEG_INFINITY;

/// One subagent's figures at the moment of a pick: the variables of its priority expression.
#[derive(Debug, Clone, Copy)]
pub struct Metrics<'a> {
    /// `$processes`: jobs the director runs on it now.
    pub processes: u32,
    /// `$clusterProcesses`: jobs the director runs on all its subagents now.
    pub cluster_processes: u32,
    /// `$processLimit`.
    pub process_limit: u32,
    /// `$processed`: jobs it ran to their end since the director started.
    pub processed: u64,
    /// Its last report: `$cores`, `$load` (1-minute load average), `$memoryFree` and
    /// `$memoryTotal` (bytes); `None` before the first.
    pub host: Option<&'a HostFigures>,
}

impl Scope for Metrics<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        let n = match Metric::named(name)? {
            Metric::Processes => f64::from(self.processes),
            Metric::ClusterProcesses => f64::from(self.cluster_processes),
            Metric::ProcessLimit => f64::from(self.process_limit),
            Metric::Processed => self.processed as f64,
            Metric::Cores => f64::from(self.host?.cores),
            Metric::Load => self.host?.load[0],
            Metric::MemoryFree => self.host?.memory_available_bytes as f64,
            Metric::MemoryTotal => self.host?.memory_total_bytes as f64,
        };
        Some(Value::Number(n))
    }

    /// A priority reads no order: `argument()` is refused at deployment.
    fn argument(&self, _key: &str) -> Option<Value> {
        None
    }
}

/// The value of `expr` over `metrics`: a finite number, else why not.
pub fn evaluate(expr: &Expr, metrics: &Metrics<'_>) -> Result<f64, String> {
    match expr::eval(expr, metrics) {
        Ok(Value::Number(n)) if n.is_finite() => Ok(n),
        Ok(Value::Number(n)) => Err(format!("it gave {n}, not a finite number")),
        Ok(v) => Err(format!("it gave {}, not a number", v.type_name())),
        Err(e) => Err(e.to_string()),
    }
}

/// The error last logged for one subagent's expression, so that each is logged once per
/// change of its text.
#[derive(Debug, Default)]
pub struct Warned(Option<String>);

impl Warned {
    /// The priority of `subagent` by `expr`: its value, or [`FAILED`] (logged when its error
    /// differs from the last one logged).
    pub fn priority(&mut self, subagent: &AgentId, expr: &Expr, metrics: &Metrics<'_>) -> f64 {
        match evaluate(expr, metrics) {
            Ok(p) => {
                self.0 = None;
                p
            }
            Err(e) => {
                if self.0.as_deref() != Some(e.as_str()) {
                    tracing::warn!(
                        subagent = %subagent,
                        priority = %expr,
                        "the priority expression failed: {e}; the subagent has the lowest priority"
                    );
                    self.0 = Some(e);
                }
                FAILED
            }
        }
    }

    /// The error last logged, while the expression keeps failing with it.
    pub fn last(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_model::expr::parse;

    fn host() -> HostFigures {
        HostFigures {
            cores: 4,
            load: [2.0, 1.0, 0.5],
            memory_total_bytes: 8 << 30,
            memory_available_bytes: 2 << 30,
            reported_ms: 1,
        }
    }

    fn metrics(host: Option<&HostFigures>) -> Metrics<'_> {
        Metrics {
            processes: 1,
            cluster_processes: 3,
            process_limit: 8,
            processed: 12,
            host,
        }
    }

    fn eval(src: &str, m: &Metrics<'_>) -> Result<f64, String> {
        evaluate(&parse(src).unwrap(), m)
    }

    #[test]
    fn every_metric_and_alias_is_in_the_scope() {
        let h = host();
        let m = metrics(Some(&h));
        for (src, want) in [
            ("$processes", 1.0),
            ("$js7SubagentProcessCount", 1.0),
            ("$clusterProcesses", 3.0),
            ("$js7ClusterSubagentProcessCount", 3.0),
            ("$processLimit", 8.0),
            ("$processed", 12.0),
            ("$cores", 4.0),
            ("$load", 2.0),
            ("$js7CpuLoad", 2.0),
            ("$memoryFree", (2u64 << 30) as f64),
            ("$js7FreeMemorySize", (2u64 << 30) as f64),
            ("$memoryTotal", (8u64 << 30) as f64),
            ("$js7TotalMemorySize", (8u64 << 30) as f64),
            ("10 - 10 * $processes", 0.0),
            ("100 - $load * 100 / $cores", 50.0),
        ] {
            assert_eq!(eval(src, &m), Ok(want), "{src}");
        }
        assert_eq!(m.get("returnCode"), None);
    }

    #[test]
    fn no_report_a_division_by_zero_or_no_number_fails() {
        let m = metrics(None);
        let unset = eval("100 - $load", &m).unwrap_err();
        assert!(unset.contains("$load is not set"), "{unset}");
        assert_eq!(eval("$processes + 1", &m), Ok(2.0));
        assert!(
            eval("1 / ($processes - 1)", &m)
                .unwrap_err()
                .contains("division by zero")
        );
        assert!(
            eval("$processes > 0", &m)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(eval("'high'", &m).unwrap_err().contains("not a number"));
    }

    #[test]
    fn a_failure_is_the_lowest_priority_and_logged_once_per_error() {
        let s1 = AgentId::new("s1").unwrap();
        let mut warned = Warned::default();
        let load = parse("100 - $load").unwrap();
        assert_eq!(warned.priority(&s1, &load, &metrics(None)), FAILED);
        let first = warned.last().map(str::to_owned);
        assert!(first.as_deref().is_some_and(|e| e.contains("$load")));
        const { assert!(FAILED < -1_000_000.0) };
        // The same error again: kept, not logged anew; a number clears it.
        assert_eq!(warned.priority(&s1, &load, &metrics(None)), FAILED);
        assert_eq!(warned.last().map(str::to_owned), first);
        let h = host();
        assert_eq!(warned.priority(&s1, &load, &metrics(Some(&h))), 98.0);
        assert_eq!(warned.last(), None);
    }
}
