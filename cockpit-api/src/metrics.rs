//! `/metrics`: Prometheus (OpenMetrics) text from prometheus-client.
//!
//! | Metric | Type | Labels | Meaning |
//! |---|---|---|---|
//! | `ordo_cockpit_orders` | gauge | `state` | orders in the view, by state |
//! | `ordo_cockpit_agents_deployed` | gauge | | agents in the inventory |
//! | `ordo_cockpit_agent_links_connected` | gauge | | agents the controller has a link to (as last read) |
//! | `ordo_cockpit_following` | gauge | | 1 while the event stream is open |
//! | `ordo_cockpit_last_event_id` | gauge | | id of the last applied event |
//! | `ordo_cockpit_event_lag_seconds` | histogram | | apply time minus the controller's event time |
//! | `ordo_cockpit_events_applied_total` | counter | | events applied |
//! | `ordo_cockpit_reconnects_total` | counter | | event streams that ended |
//! | `ordo_cockpit_request_duration_seconds` | histogram | `method`, `route`, `status` | API requests |
//! | `ordo_cockpit_subagent_live` | gauge | `agent`, `subagent` | 1 while the director's session with it is up, else 0 |
//! | `ordo_cockpit_subagent_running_processes` | gauge | `agent`, `subagent` | jobs it runs now |
//! | `ordo_cockpit_subagent_processed` | gauge | `agent`, `subagent` | jobs it ran to their end since its director started |
//! | `ordo_cockpit_subagent_average_job_duration_seconds` | gauge | `agent`, `subagent` | their average duration, as its director measured it |
//! | `ordo_cockpit_subagent_cores` | gauge | `agent`, `subagent` | its cores, as it last reported |
//! | `ordo_cockpit_subagent_load1` | gauge | `agent`, `subagent` | its 1-minute load average, as it last reported |
//! | `ordo_cockpit_subagent_memory_total_bytes` | gauge | `agent`, `subagent` | its memory, as it last reported |
//! | `ordo_cockpit_subagent_memory_available_bytes` | gauge | `agent`, `subagent` | its available memory, as it last reported |
//!
//! The subagent series come from the controller's link status (`GET /agents`, read every
//! `follow.agents_poll_ms`); a subagent no longer listed loses its series, and host figures
//! appear once it has reported them.

use ordo_api::view::SubagentView;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;

/// A gauge of a fractional value.
type FloatGauge = Gauge<f64, AtomicU64>;

/// The per-subagent gauges, labelled `agent`, `subagent`.
#[derive(Default)]
struct SubagentGauges {
    live: Family<Labels, Gauge>,
    running: Family<Labels, Gauge>,
    processed: Family<Labels, Gauge>,
    average_job_duration: Family<Labels, FloatGauge>,
    cores: Family<Labels, Gauge>,
    load1: Family<Labels, FloatGauge>,
    memory_total: Family<Labels, Gauge>,
    memory_available: Family<Labels, Gauge>,
}

impl SubagentGauges {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "subagent_live",
            "1 while the director's session with the subagent is up",
            self.live.clone(),
        );
        registry.register(
            "subagent_running_processes",
            "Jobs the subagent runs now",
            self.running.clone(),
        );
        registry.register(
            "subagent_processed",
            "Jobs the subagent ran to their end since its director started",
            self.processed.clone(),
        );
        registry.register(
            "subagent_average_job_duration_seconds",
            "Average duration of the subagent's jobs, as its director measured it",
            self.average_job_duration.clone(),
        );
        registry.register(
            "subagent_cores",
            "Cores of the subagent's host, as it last reported",
            self.cores.clone(),
        );
        registry.register(
            "subagent_load1",
            "1-minute load average of the subagent's host, as it last reported",
            self.load1.clone(),
        );
        registry.register(
            "subagent_memory_total_bytes",
            "Memory of the subagent's host, as it last reported",
            self.memory_total.clone(),
        );
        registry.register(
            "subagent_memory_available_bytes",
            "Available memory of the subagent's host, as it last reported",
            self.memory_available.clone(),
        );
    }

    /// Replaces every series with those of `subagents` (`(director, subagent)`).
    fn set(&self, subagents: &[(&str, &SubagentView)]) {
        self.live.clear();
        self.running.clear();
        self.processed.clear();
        self.average_job_duration.clear();
        self.cores.clear();
        self.load1.clear();
        self.memory_total.clear();
        self.memory_available.clear();
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (agent, s) in subagents {
            let labels = vec![
                ("agent".to_owned(), (*agent).to_owned()),
                ("subagent".to_owned(), s.id.clone()),
            ];
            self.live
                .get_or_create(&labels)
                .set(i64::from(s.state == "live"));
            self.running
                .get_or_create(&labels)
                .set(int(s.running_processes));
            self.processed.get_or_create(&labels).set(int(s.processed));
            self.average_job_duration
                .get_or_create(&labels)
                .set(s.average_job_duration_ms as f64 / 1000.0);
            if let Some(cores) = s.cores {
                self.cores.get_or_create(&labels).set(i64::from(cores));
            }
            if let Some(load) = s.load {
                self.load1.get_or_create(&labels).set(load[0]);
            }
            if let Some(total) = s.memory_total_bytes {
                self.memory_total.get_or_create(&labels).set(int(total));
            }
            if let Some(available) = s.memory_available_bytes {
                self.memory_available
                    .get_or_create(&labels)
                    .set(int(available));
            }
        }
    }
}

fn request_histogram() -> Histogram {
    // 0.1 ms .. ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The cockpit's metrics.
pub struct Metrics {
    registry: Registry,
    orders: Family<Labels, Gauge>,
    agents_deployed: Gauge,
    agent_links: Gauge,
    following: Gauge,
    last_event_id: Gauge,
    event_lag: Histogram,
    events_applied: Counter,
    reconnects: Counter,
    requests: Family<Labels, Histogram, fn() -> Histogram>,
    subagents: SubagentGauges,
    /// One render at a time: the subagent series are cleared and set again for each.
    rendering: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ordo_cockpit");
        let orders = Family::<Labels, Gauge>::default();
        let agents_deployed = Gauge::default();
        let agent_links = Gauge::default();
        let following = Gauge::default();
        let last_event_id = Gauge::default();
        // 1 ms .. ~65 s
        let event_lag = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let events_applied = Counter::default();
        let reconnects = Counter::default();
        let requests =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(request_histogram);
        registry.register("orders", "Orders in the view, by state", orders.clone());
        registry.register(
            "agents_deployed",
            "Agents in the deployed inventory",
            agents_deployed.clone(),
        );
        registry.register(
            "agent_links_connected",
            "Agents the controller has a link to",
            agent_links.clone(),
        );
        registry.register(
            "following",
            "1 while the controller's event stream is open",
            following.clone(),
        );
        registry.register(
            "last_event_id",
            "Id of the last applied event",
            last_event_id.clone(),
        );
        registry.register(
            "event_lag_seconds",
            "Time from the controller's event time to its application in the view",
            event_lag.clone(),
        );
        registry.register(
            "events_applied",
            "Events applied to the view",
            events_applied.clone(),
        );
        registry.register(
            "reconnects",
            "Event streams that ended and were reconnected",
            reconnects.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "API request latency",
            requests.clone(),
        );
        let subagents = SubagentGauges::default();
        subagents.register(&mut registry);
        Metrics {
            registry,
            orders,
            agents_deployed,
            agent_links,
            following,
            last_event_id,
            event_lag,
            events_applied,
            reconnects,
            requests,
            subagents,
            rendering: Mutex::new(()),
        }
    }

    pub fn event_applied(&self, event_id: u64, lag_ms: i64) {
        self.events_applied.inc();
        self.set_last_event_id(event_id);
        self.event_lag.observe(lag_ms.max(0) as f64 / 1000.0);
    }

    pub fn set_last_event_id(&self, event_id: u64) {
        self.last_event_id
            .set(i64::try_from(event_id).unwrap_or(i64::MAX));
    }

    pub fn set_following(&self, on: bool) {
        self.following.set(i64::from(on));
    }

    pub fn reconnected(&self) {
        self.reconnects.inc();
    }

    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("method".to_owned(), method.to_owned()),
                ("route".to_owned(), route.to_owned()),
                ("status".to_owned(), status.to_string()),
            ])
            .observe(seconds);
    }

    /// The text exposition, with the gauges that come from the view and the link status
    /// (`subagents`: each director's subagents) set first.
    pub fn render(
        &self,
        counts: &BTreeMap<&'static str, usize>,
        agents_deployed: usize,
        agent_links: Option<usize>,
        subagents: &[(&str, &SubagentView)],
    ) -> String {
        let _one = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        self.subagents.set(subagents);
        for (state, n) in counts {
            self.orders
                .get_or_create(&vec![("state".to_owned(), (*state).to_owned())])
                .set(*n as i64);
        }
        self.agents_deployed.set(agents_deployed as i64);
        self.agent_links.set(agent_links.map_or(-1, |n| n as i64));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let m = Metrics::new();
        m.event_applied(7, 12);
        m.request("GET", "/api/v1/orders", 200, 0.002);
        let counts = BTreeMap::from([("failed", 2), ("finished", 5)]);
        let sub = SubagentView {
            id: "s1".into(),
            url: "wss://127.0.0.1:1".into(),
            state: "live".into(),
            running_processes: 2,
            processed: 7,
            average_job_duration_ms: 1500,
            connected_since_ms: Some(1),
            ring_position: None,
            token: false,
            last_error: None,
            cores: Some(4),
            load: Some([0.5, 0.25, 0.0]),
            memory_total_bytes: Some(1024),
            memory_available_bytes: Some(512),
            reported_ms: Some(2),
        };
        let text = m.render(&counts, 3, Some(1), &[("dir", &sub)]);
        for needle in [
            "ordo_cockpit_orders{state=\"failed\"} 2",
            "ordo_cockpit_agents_deployed 3",
            "ordo_cockpit_agent_links_connected 1",
            "ordo_cockpit_last_event_id 7",
            "ordo_cockpit_event_lag_seconds_count 1",
            "ordo_cockpit_events_applied_total 1",
            "ordo_cockpit_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/orders\",status=\"200\"} 1",
            "ordo_cockpit_subagent_live{agent=\"dir\",subagent=\"s1\"} 1",
            "ordo_cockpit_subagent_running_processes{agent=\"dir\",subagent=\"s1\"} 2",
            "ordo_cockpit_subagent_processed{agent=\"dir\",subagent=\"s1\"} 7",
            "ordo_cockpit_subagent_average_job_duration_seconds{agent=\"dir\",subagent=\"s1\"} 1.5",
            "ordo_cockpit_subagent_cores{agent=\"dir\",subagent=\"s1\"} 4",
            "ordo_cockpit_subagent_load1{agent=\"dir\",subagent=\"s1\"} 0.5",
            "ordo_cockpit_subagent_memory_total_bytes{agent=\"dir\",subagent=\"s1\"} 1024",
            "ordo_cockpit_subagent_memory_available_bytes{agent=\"dir\",subagent=\"s1\"} 512",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
        // A subagent no longer listed loses its series.
        let text = m.render(&counts, 3, Some(1), &[]);
        assert!(!text.contains("subagent=\"s1\""), "{text}");
    }
}
