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

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

type Labels = Vec<(String, String)>;

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

    /// The text exposition, with the gauges that come from the view set first.
    pub fn render(
        &self,
        counts: &BTreeMap<&'static str, usize>,
        agents_deployed: usize,
        agent_links: Option<usize>,
    ) -> String {
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
        let text = m.render(&counts, 3, Some(1));
        for needle in [
            "ordo_cockpit_orders{state=\"failed\"} 2",
            "ordo_cockpit_agents_deployed 3",
            "ordo_cockpit_agent_links_connected 1",
            "ordo_cockpit_last_event_id 7",
            "ordo_cockpit_event_lag_seconds_count 1",
            "ordo_cockpit_events_applied_total 1",
            "ordo_cockpit_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/orders\",status=\"200\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}
