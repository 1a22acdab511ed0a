//! The cockpit's in-memory view: the controller's [`State`] (the fold of its events) plus
//! what the API needs to answer quickly: orders indexed by state, and per order when it was
//! added and its recent history.
//!
//! The state changes only through [`View::apply`] with the controller's events in id order
//! (exactly as the controller folds its journal); [`View::load`] replaces it with a state the
//! controller sent. Histories: every order event (the controller's and the agents', not job
//! output) is kept per order, the newest `history_events_per_order_max`; after a load,
//! [`View::backfill`] fills them from the events the controller still keeps, so that a
//! cockpit started late shows the same histories as one that followed from the start.
//! An order whose earlier events are not known says `historyComplete: false`.

use ordo_api::record::Stored;
use ordo_api::state::{Skipped, State};
use ordo_api::view::{
    OrderView, affected, describe, order_event, order_view_in, order_view_waiting,
};
use ordo_model::ids::OrderId;
use ordo_model::order::{KeyedEvent, Order, OrderEvent, OrderState, Wait};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use utoipa::ToSchema;

/// Every state name an order can have, in the order the UI shows them (the published list).
pub use ordo_api::view::STATE_NAMES;

/// Longest event text kept in a history entry, in bytes.
pub const HISTORY_TEXT_BYTES_MAX: usize = 300;

/// One event of an order's history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub event_id: u64,
    /// When the controller made the event, ms since the epoch.
    pub ts: i64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: Box<str>,
}

/// What the view keeps per order besides the order itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderMeta {
    /// When the order was added (or forked off), ms since the epoch, if that event was seen.
    pub added_ms: Option<i64>,
    /// When it started (`Started`, or its first job's start), ms since the epoch.
    pub started_ms: Option<i64>,
    /// When it last became finished, failed or cancelled (cleared when resumed).
    pub ended_ms: Option<i64>,
    /// The state name it is indexed under.
    state: &'static str,
    pub history: VecDeque<HistoryEntry>,
    /// Whether every event of the order since it was added is in `history`.
    pub history_complete: bool,
}

/// A filter and page of orders.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub state: Option<String>,
    pub workflow: Option<String>,
    /// Orders held by (or being handed to or from) this agent.
    pub agent: Option<String>,
    /// Added at or after, ms since the epoch (orders whose addition is unknown do not match).
    pub since: Option<i64>,
    /// Added before, ms since the epoch.
    pub until: Option<i64>,
    /// Orders after this id (the `next` of the previous page).
    pub after: Option<String>,
    pub limit: usize,
}

/// The cockpit's view of the controller.
#[derive(Debug, Clone)]
pub struct View {
    pub state: State,
    meta: HashMap<OrderId, OrderMeta>,
    by_state: BTreeMap<&'static str, BTreeSet<OrderId>>,
    history_max: usize,
    /// Events applied that the state did not accept (as on the controller).
    pub skipped: u64,
    /// Fork children a join removed from the state, as they were then, kept (with their
    /// history and times) while their parent is in the state. A child that ended its
    /// branch shows as finished.
    kept: BTreeMap<OrderId, Order>,
    /// Each fork's children, from its `Forked` events, while the parent is in the state.
    children: HashMap<OrderId, Vec<OrderId>>,
}

impl View {
    pub fn new(history_max: usize) -> View {
        View {
            state: State::new(),
            meta: HashMap::new(),
            by_state: BTreeMap::new(),
            history_max: history_max.max(1),
            skipped: 0,
            kept: BTreeMap::new(),
            children: HashMap::new(),
        }
    }

    /// The view of a state the controller sent (histories empty until [`View::backfill`]).
    pub fn load(state: State, history_max: usize) -> View {
        let mut view = View::new(history_max);
        view.state = state;
        let ids: Vec<OrderId> = view.state.world.orders.keys().cloned().collect();
        for id in ids {
            view.reindex(&id);
        }
        view
    }

    /// Events kept per order's history.
    pub fn history_max(&self) -> usize {
        self.history_max
    }

    pub fn last_event_id(&self) -> u64 {
        self.state.last_event_id
    }

    /// Applies one event of the controller's stream; `Err` when the state did not accept it
    /// (the controller skipped it too).
    pub fn apply(&mut self, event_id: u64, stored: &Stored) -> Result<(), Skipped> {
        let mut touched = affected(&self.state, &stored.body);
        let joined = self.joining_children(&stored.body);
        let applied = self.state.apply(event_id, stored);
        if applied.is_err() {
            self.skipped += 1;
        }
        for mut child in joined {
            if self.state.world.orders.contains_key(&child.id) {
                continue;
            }
            if matches!(child.state, OrderState::Ready) {
                child.state = OrderState::Finished;
            }
            if let Some(m) = self.meta.get_mut(&child.id) {
                m.ended_ms.get_or_insert(stored.ts.0);
            }
            touched.push(child.id.clone());
            self.kept.insert(child.id.clone(), child);
        }
        for id in &touched {
            self.reindex(id);
        }
        self.record(event_id, stored);
        applied
    }

    /// Adds an event the controller journaled before the loaded state (`event_id` at most
    /// [`View::last_event_id`]) to the histories of the orders it concerns.
    pub fn backfill(&mut self, event_id: u64, stored: &Stored) {
        if event_id <= self.state.last_event_id {
            self.record(event_id, stored);
        }
    }

    /// The children a `Joined` event in `body` is about to remove from the state.
    fn joining_children(&self, body: &ordo_api::record::Body) -> Vec<Order> {
        let Some(KeyedEvent::Order {
            id,
            event: OrderEvent::Joined { .. },
        }) = order_event(body)
        else {
            return Vec::new();
        };
        let Some(OrderState::Waiting(Wait::Children { children })) =
            self.state.world.orders.get(id).map(|o| &o.state)
        else {
            return Vec::new();
        };
        children
            .iter()
            .filter_map(|c| self.state.world.orders.get(c).cloned())
            .collect()
    }

    fn record(&mut self, event_id: u64, stored: &Stored) {
        let Some(KeyedEvent::Order { id, event }) = order_event(&stored.body) else {
            return;
        };
        if let OrderEvent::Forked { children } = event {
            if self.meta.contains_key(id) {
                self.children
                    .entry(id.clone())
                    .or_default()
                    .extend(children.iter().map(|c| c.id.clone()));
            }
            for child in children {
                if let Some(m) = self.meta.get_mut(&child.id) {
                    m.added_ms = Some(stored.ts.0);
                    m.started_ms = Some(stored.ts.0);
                    m.ended_ms = None;
                    m.history.clear();
                    m.history_complete = true;
                }
            }
        }
        let history_max = self.history_max;
        let Some(m) = self.meta.get_mut(id) else {
            return;
        };
        let ts = stored.ts.0;
        match event {
            OrderEvent::Added { .. } => {
                m.added_ms = Some(ts);
                m.started_ms = None;
                m.ended_ms = None;
                m.history.clear();
                m.history_complete = true;
            }
            OrderEvent::Started | OrderEvent::ProcessingStarted { .. } => {
                m.started_ms.get_or_insert(ts);
            }
            OrderEvent::Finished { .. }
            | OrderEvent::Cancelled
            | OrderEvent::Failed
            | OrderEvent::FailedAt { .. }
            | OrderEvent::FailedInFork => m.ended_ms = Some(ts),
            OrderEvent::Resumed { .. } => m.ended_ms = None,
            _ => {}
        }
        let (_, kind, mut text) = describe(&stored.body);
        if text.len() > HISTORY_TEXT_BYTES_MAX {
            let mut cut = HISTORY_TEXT_BYTES_MAX;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        if m.history.len() >= history_max {
            m.history.pop_front();
            m.history_complete = false;
        }
        m.history.push_back(HistoryEntry {
            event_id,
            ts: stored.ts.0,
            kind,
            text: text.into_boxed_str(),
        });
    }

    /// Brings the indexes of one order up to date with the state.
    fn reindex(&mut self, id: &OrderId) {
        let now = self.state.world.orders.get(id).map(|o| o.state.name());
        let before = self.meta.get(id).map(|m| m.state);
        if now == before {
            return;
        }
        if let Some(old) = before
            && let Some(set) = self.by_state.get_mut(old)
        {
            set.remove(id);
        }
        match now {
            Some(name) => {
                self.by_state.entry(name).or_default().insert(id.clone());
                self.meta.entry(id.clone()).or_default().state = name;
            }
            None if self.kept.contains_key(id) => {
                if let Some(m) = self.meta.get_mut(id) {
                    m.state = "kept";
                }
            }
            None => {
                self.meta.remove(id);
                // A removed parent takes its kept children with it.
                for child in self.children.remove(id).unwrap_or_default() {
                    if self.kept.remove(&child).is_some() {
                        self.meta.remove(&child);
                    }
                }
            }
        }
    }

    /// The API's view of an order of this state.
    pub fn order_view(&self, o: &Order) -> OrderView {
        order_view_in(&self.state.world, o)
    }

    /// An order of the state, or a fork child a join removed while its parent is there.
    pub fn order(&self, id: &str) -> Option<&Order> {
        self.state
            .world
            .orders
            .get(id)
            .or_else(|| self.kept.get(id))
    }

    /// Whether `id` is a fork child a join removed from the state that the view keeps.
    pub fn is_kept(&self, id: &str) -> bool {
        self.kept.contains_key(id)
    }

    /// The children of an order's forks, with their states (kept ones included).
    pub fn children(&self, id: &str) -> Vec<ChildLink> {
        self.children
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|c| self.order(c.as_str()))
            .map(|c| ChildLink {
                id: c.id.to_string(),
                state: c.state.name().to_owned(),
            })
            .collect()
    }

    pub fn meta(&self, id: &str) -> Option<&OrderMeta> {
        self.meta.get(id)
    }

    /// How many orders are in each state (every state name present, zeros included).
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        STATE_NAMES
            .iter()
            .map(|s| (*s, self.by_state.get(s).map_or(0, BTreeSet::len)))
            .collect()
    }

    /// The ids of the orders in a state ([`STATE_NAMES`]), in id order.
    pub fn ids_in_state(&self, state: &str) -> impl Iterator<Item = &OrderId> {
        self.by_state.get(state).into_iter().flatten()
    }

    /// A page of orders matching `q`, in id order, and the cursor of the next page (when the
    /// page is full, or `scan_max` orders were looked at, and more orders follow).
    pub fn list(&self, q: &OrderQuery, scan_max: usize) -> (Vec<&Order>, Option<String>) {
        let lower = match &q.after {
            Some(a) => Bound::Excluded(a.as_str()),
            None => Bound::Unbounded,
        };
        let matches = |o: &Order| {
            q.workflow
                .as_deref()
                .is_none_or(|w| o.workflow.as_str() == w)
                && q.agent
                    .as_deref()
                    .is_none_or(|a| o.holder.agent().is_some_and(|h| h.as_str() == a))
                && (q.since.is_none() && q.until.is_none() || {
                    let added = self.meta.get(&o.id).and_then(|m| m.added_ms);
                    added.is_some_and(|t| {
                        q.since.is_none_or(|s| t >= s) && q.until.is_none_or(|u| t < u)
                    })
                })
        };
        let candidates: Box<dyn Iterator<Item = &Order>> = match &q.state {
            Some(state) => match self.by_state.get(state.as_str()) {
                Some(ids) => Box::new(
                    ids.range::<str, _>((lower, Bound::Unbounded))
                        .filter_map(|id| self.state.world.orders.get(id)),
                ),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(
                self.state
                    .world
                    .orders
                    .range::<str, _>((lower, Bound::Unbounded))
                    .map(|(_, o)| o),
            ),
        };
        let mut candidates = candidates.peekable();
        let mut page = Vec::new();
        let mut scanned = 0;
        let mut last = None;
        while page.len() < q.limit && scanned < scan_max {
            let Some(o) = candidates.next() else {
                return (page, None);
            };
            scanned += 1;
            last = Some(o);
            if matches(o) {
                page.push(o);
            }
        }
        let next = match (candidates.peek(), last) {
            (Some(_), Some(o)) => Some(o.id.to_string()),
            _ => None,
        };
        (page, next)
    }

    /// An order with its times, for `GET /api/v1/orders`.
    pub fn order_row(&self, o: &Order) -> OrderRow {
        let m = self.meta.get(&o.id);
        OrderRow {
            order: self.order_view(o),
            added_ms: m.and_then(|m| m.added_ms),
            started_ms: m.and_then(|m| m.started_ms),
            ended_ms: m.and_then(|m| m.ended_ms),
        }
    }

    /// An order with its history, for `GET /api/v1/orders/{id}`.
    pub fn order_detail(&self, id: &str) -> Option<OrderDetail> {
        let o = self.order(id)?;
        let m = self.meta.get(id);
        Some(OrderDetail {
            order: order_view_waiting(&self.state.world, o),
            added_ms: m.and_then(|m| m.added_ms),
            started_ms: m.and_then(|m| m.started_ms),
            ended_ms: m.and_then(|m| m.ended_ms),
            history: m
                .map(|m| m.history.iter().cloned().collect())
                .unwrap_or_default(),
            history_complete: m.is_some_and(|m| m.history_complete),
            children: self.children(id),
            joined: self.kept.contains_key(id),
            log_events: self.state.logs.get(id).map_or(0, Vec::len),
        })
    }
}

/// A fork child of an order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChildLink {
    pub id: String,
    /// Its state; a child that ended its branch and was joined is `finished`.
    pub state: String,
}

/// An order of a list, with its times.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderRow {
    #[serde(flatten)]
    pub order: OrderView,
    /// When the order was added, ms since the epoch; unknown when that event was not seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_ms: Option<i64>,
    /// When it started (`Started`, or its first job's start), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// When it became finished, failed or cancelled, ms since the epoch; left out while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
}

/// An order with its history.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderView,
    /// When the order was added, ms since the epoch (unknown for orders older than the events
    /// the controller still keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_ms: Option<i64>,
    /// When it started (`Started`, or its first job's start), ms since the epoch; unknown
    /// when that event was not seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// When it became finished, failed or cancelled, ms since the epoch; left out
    /// while it runs (a resumed order runs again) or when that event was not seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// Its events, oldest first (the newest `history_events_per_order_max`).
    pub history: Vec<HistoryEntry>,
    /// Whether `history` holds every event since the order was added.
    pub history_complete: bool,
    /// The children of its forks, oldest first; children a join removed stay listed (and
    /// readable here) while this order is in the state.
    pub children: Vec<ChildLink>,
    /// A fork child its join removed from the controller's state: shown while its parent is
    /// in the state; commands no longer reach it.
    pub joined: bool,
    /// How many chunks of job output the order has (read them at `/log`).
    pub log_events: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_api::record::Body;
    use ordo_model::ids::WorkflowName;
    use ordo_model::order::{Command, command, deploy, step};
    use ordo_model::time::TimeMs;
    use ordo_model::yaml::{Limits, SourceFile, parse_inventory};

    const YAML: &str =
        "workflow: w\nsteps: [ { prompt: ok? } ]\n---\nworkflow: v\nsteps: [ { prompt: ok? } ]\n";

    fn stored(ts: i64, e: KeyedEvent) -> Stored {
        Stored {
            term: 0,
            ts: TimeMs(ts),
            body: Body::Event(e),
        }
    }

    /// Folds a deployment and orders `o0..o{n}`, each stepped to its prompt; returns the
    /// events with their ids.
    fn events(n: usize) -> Vec<(u64, Stored)> {
        let inv = parse_inventory(&[SourceFile::new("w.yaml", YAML)], &Limits::default()).unwrap();
        let mut s = State::new();
        let mut out = Vec::new();
        let mut id = 0u64;
        let mut push = |s: &mut State, out: &mut Vec<(u64, Stored)>, e: KeyedEvent| {
            id += 1 << 16;
            let st = stored(id as i64, e);
            s.apply(id, &st).unwrap();
            out.push((id, st));
        };
        for e in deploy(&s.world, &inv) {
            push(&mut s, &mut out, e);
        }
        for i in 0..n {
            let oid = OrderId::new(format!("o{i}")).unwrap();
            let add = Command::Add {
                id: oid.clone(),
                workflow: WorkflowName::new(if i % 2 == 0 { "w" } else { "v" }).unwrap(),
                vars: Default::default(),
                scheduled_for: None,
            };
            for e in command(&s.world, add, TimeMs(0), &Default::default())
                .unwrap()
                .events
            {
                push(&mut s, &mut out, e);
            }
            loop {
                let es = step(&s.world, &oid, TimeMs(0));
                if es.is_empty() {
                    break;
                }
                for e in es {
                    push(&mut s, &mut out, e);
                }
            }
        }
        out
    }

    #[test]
    fn live_and_late_views_agree() {
        let all = events(10);
        let mut live = View::new(50);
        for (id, e) in &all {
            live.apply(*id, e).unwrap();
        }
        assert_eq!(live.counts()["prompting"], 10);
        // A view loaded from the state at the 20th event, backfilled, then following.
        let (cut, _) = all[20];
        let mut early = View::new(50);
        for (id, e) in all.iter().take(21) {
            early.apply(*id, e).unwrap();
        }
        assert_eq!(early.last_event_id(), cut);
        let mut late = View::load(early.state.clone(), 50);
        for (id, e) in all.iter().take(21) {
            late.backfill(*id, e);
        }
        for (id, e) in all.iter().skip(21) {
            late.apply(*id, e).unwrap();
        }
        assert_eq!(late.state, live.state);
        assert_eq!(late.meta, live.meta);
        assert_eq!(late.by_state, live.by_state);
        let d = late.order_detail("o1").unwrap();
        assert!(d.history_complete);
        assert_eq!(d.history[0].kind, "Added");
        assert_eq!(d.order.state, "prompting");
    }

    #[test]
    fn pages_filter_and_continue() {
        let mut v = View::new(5);
        for (id, e) in events(25) {
            v.apply(id, &e).unwrap();
        }
        let mut q = OrderQuery {
            workflow: Some("w".into()),
            limit: 4,
            ..Default::default()
        };
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (page, next) = v.list(&q, 1000);
            seen.extend(page.iter().map(|o| o.id.to_string()));
            match next {
                Some(n) => q.after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), 13);
        assert!(
            seen.iter()
                .all(|id| v.order(id).unwrap().workflow.as_str() == "w")
        );
        // A scan budget ends a page early, with a cursor.
        q.after = None;
        let (page, next) = v.list(&q, 3);
        assert!(page.len() <= 3);
        assert!(next.is_some());
        // State index and time filters.
        let q = OrderQuery {
            state: Some("prompting".into()),
            since: Some(0),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(v.list(&q, 1000).0.len(), 25);
        let q = OrderQuery {
            state: Some("finished".into()),
            limit: 100,
            ..Default::default()
        };
        assert!(v.list(&q, 1000).0.is_empty());
        // History is bounded.
        let d = v.order_detail("o3").unwrap();
        assert!(d.history.len() <= 5);
    }

    /// Runs `cmd` and then steps `id` on the view's state, applying every event at a
    /// timestamp one after the last.
    fn run(v: &mut View, cmd: Command, id: &str) {
        let oid = OrderId::new(id).unwrap();
        let mut es = command(&v.state.world, cmd, TimeMs(0), &Default::default())
            .unwrap()
            .events;
        for _ in 0..100 {
            if es.is_empty() {
                return;
            }
            for e in es {
                let next = v.last_event_id() + 1;
                v.apply(next, &stored(next as i64, e)).unwrap();
            }
            es = step(&v.state.world, &oid, TimeMs(0));
        }
        panic!("order {id} does not settle");
    }

    fn ts_of(v: &View, id: &str, kind: &str) -> Option<i64> {
        v.order_detail(id)?
            .history
            .iter()
            .find(|h| h.kind == kind)
            .map(|h| h.ts)
    }

    #[test]
    fn orders_have_added_started_and_ended_times() {
        let all = events(3);
        let mut v = View::new(50);
        for (id, e) in &all {
            v.apply(*id, e).unwrap();
        }
        let row = v.order_row(v.order("o0").unwrap());
        assert_eq!(row.added_ms, ts_of(&v, "o0", "Added"));
        assert_eq!(row.started_ms, ts_of(&v, "o0", "Started"));
        assert!(row.added_ms.is_some() && row.started_ms.is_some());
        assert_eq!(row.ended_ms, None);
        let json = serde_json::to_value(&row).unwrap();
        assert!(json.get("addedMs").is_some() && json.get("startedMs").is_some());
        assert!(json["endedMs"].is_null());
        let id = |s: &str| OrderId::new(s).unwrap();
        run(
            &mut v,
            Command::Answer {
                id: id("o0"),
                vars: Default::default(),
            },
            "o0",
        );
        run(
            &mut v,
            Command::Cancel {
                id: id("o1"),
                kill: None,
            },
            "o1",
        );
        let d = v.order_detail("o0").unwrap();
        assert_eq!(d.order.state, "finished");
        assert_eq!(d.ended_ms, ts_of(&v, "o0", "Finished"));
        assert!(d.ended_ms.is_some() && d.ended_ms >= d.started_ms);
        let d = v.order_detail("o1").unwrap();
        assert_eq!(d.order.state, "cancelled");
        assert_eq!(d.ended_ms, ts_of(&v, "o1", "Cancelled"));
        assert_eq!(v.order_detail("o2").unwrap().ended_ms, None);
        // A cockpit started later computes the same times from the retained events.
        let mut late = View::load(v.state.clone(), 50);
        for (id, e) in &all {
            late.backfill(*id, e);
        }
        assert_eq!(
            late.order_detail("o2").unwrap().started_ms,
            v.order_detail("o2").unwrap().started_ms
        );
        // An order whose events were not seen has no times.
        let unseen = View::load(v.state.clone(), 50);
        let d = unseen.order_detail("o0").unwrap();
        assert_eq!((d.added_ms, d.started_ms, d.ended_ms), (None, None, None));
    }

    /// Steps every order until none moves.
    fn settle(v: &mut View) {
        for _ in 0..100 {
            let ids: Vec<OrderId> = v.state.world.orders.keys().cloned().collect();
            let mut moved = false;
            for oid in ids {
                for e in step(&v.state.world, &oid, TimeMs(0)) {
                    let next = v.last_event_id() + 1;
                    v.apply(next, &stored(next as i64, e)).unwrap();
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the orders do not settle");
    }

    #[test]
    fn joined_children_stay_until_their_parent_is_removed() {
        let yaml = "workflow: f\nsteps:\n  - fork:\n      a: [ { prompt: a? } ]\n      b: [ { prompt: b? } ]\n";
        let inv = parse_inventory(&[SourceFile::new("f.yaml", yaml)], &Limits::default()).unwrap();
        let mut v = View::new(50);
        for e in deploy(&v.state.world, &inv) {
            let next = v.last_event_id() + 1;
            v.apply(next, &stored(next as i64, e)).unwrap();
        }
        let id = |s: &str| OrderId::new(s).unwrap();
        let add = Command::Add {
            id: id("p"),
            workflow: WorkflowName::new("f").unwrap(),
            vars: Default::default(),
            scheduled_for: None,
        };
        run(&mut v, add, "p");
        settle(&mut v);
        let kids: Vec<String> = v.children("p").into_iter().map(|c| c.id).collect();
        assert_eq!(kids, ["p|a", "p|b"]);
        for kid in ["p|a", "p|b"] {
            let answer = Command::Answer {
                id: id(kid),
                vars: Default::default(),
            };
            run(&mut v, answer, kid);
        }
        // The join: the children leave the state, not the view.
        settle(&mut v);
        let p = v.order_detail("p").unwrap();
        assert_eq!(p.order.state, "finished", "{:?}", p.history);
        assert!(!v.state.world.orders.contains_key("p|a"));
        let a = v.order_detail("p|a").unwrap();
        assert_eq!(a.order.state, "finished");
        assert!(a.joined && !p.joined);
        assert!(a.history.iter().any(|h| h.kind == "PromptAnswered"));
        assert!(a.ended_ms.is_some());
        assert_eq!(
            p.children
                .iter()
                .map(|c| c.state.as_str())
                .collect::<Vec<_>>(),
            ["finished", "finished"]
        );
        assert_eq!(v.counts().values().sum::<usize>(), 1);
        // The parent removed: its children go with it.
        run(&mut v, Command::Remove { id: id("p") }, "p");
        assert!(v.order_detail("p").is_none());
        assert!(v.order_detail("p|a").is_none());
        assert!(v.meta.is_empty() && v.kept.is_empty() && v.children.is_empty());
    }
}
