//! Following the controller: load its state, then apply every later event in order.
//!
//! 1. `GET /api/v1/state` gives `{formatVersion, eventId, state}`; the histories are filled from the events
//!    the controller still keeps up to `eventId` (long-poll pages from the oldest, at most
//!    `history_backfill_events_max`), then the view is replaced in one step.
//! 2. `GET /api/v1/events/ws?after=<last applied id>` streams every later event. Each must
//!    have a greater id than the last applied one: a repeated id is dropped (counted as a
//!    duplicate), never applied twice. Since the stream is gapless from any retained id,
//!    resuming at the last applied id loses nothing.
//! 3. When the stream ends (controller gone, error frame, silence longer than
//!    `silence_timeout_ms` despite pings), the follower reconnects after a backoff that starts
//!    at `reconnect_min_ms` and doubles up to `reconnect_max_ms`, again at the last applied
//!    id: to the active controller of a pair when another one is known active
//!    ([`crate::cluster`]), else to the next controller of the list (round robin). A
//!    controller that answers 410 ("reload the snapshot") makes it load the state again.
//!    Both controllers of a pair give every event the same id (raft index and offset), so the
//!    stream goes on at the other one without a gap or a duplicate.
//! 4. The follower prefers the active controller: at start it follows the one whose
//!    `/health` says `active`; while it follows another one (a passive one serves the same
//!    committed events, a little later), a change of the active controller makes it move
//!    there at once, at the last applied id.
//! 5. A follower that cannot advance says so: after [`STUCK_AFTER_FAILURES`] sessions in a row
//!    that applied nothing while a controller answered its `/health` with a newer event id
//!    than the view's (or the view was never loaded), the status names why (`stuck`), and the
//!    cockpit's `/health` answers 503 with that reason, e.g. "the event after 123 is 9000000
//!    bytes, larger than limits.frame_bytes_max (65536 bytes)" or "no progress for 5000 ms
//!    while the controller is at event X". The first session that applies an event clears it.
//!    A controller whose `eventBytesMax` is larger than this cockpit's `frame_bytes_max`
//!    gets a `warning` at once, before any such event arrives.
//!
//! Every applied event is also broadcast (under the view's write lock, so a subscriber that
//! reads the view's event id under the read lock and subscribes misses nothing) for the live
//! log streams.

use crate::metrics::Metrics;
use crate::upstream::{Event, Message, Upstream, UpstreamError, parse_message};
use crate::view::View;
use futures_util::{SinkExt, StreamExt};
use ordo_api::record::Stored;
use ordo_model::order::KeyedEvent;
use serde::Serialize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use utoipa::ToSchema;

pub use ordo_net::clock::now_ms;

/// An applied event, as the live streams see it.
#[derive(Debug, Clone)]
pub struct Live {
    pub event_id: u64,
    pub stored: Stored,
    /// The order it concerns ended (finished, cancelled or removed) with it.
    pub ended: Option<String>,
}

/// How the follower is doing.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowStatus {
    /// The controller whose stream is followed (or was, last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// Whether the event stream is open now.
    pub following: bool,
    /// Whether a state was loaded (the view answers queries).
    pub loaded: bool,
    /// When the current stream was opened, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub following_since_ms: Option<i64>,
    /// Apply time minus the controller's time of the last applied event, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<i64>,
    pub reconnects: u64,
    /// Events dropped because their id was not above the last applied one.
    pub duplicates: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_id: Option<String>,
    /// The controller's newest event id, as its `/health` said before the last stream opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_last_event_id: Option<u64>,
    /// Sessions in a row that ended without applying an event or loading the state.
    pub failures_without_progress: u32,
    /// When the view last advanced (or the first of those sessions began), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_progress_since_ms: Option<i64>,
    /// Why the view cannot advance although the controller is ahead; `/health` is 503 then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<String>,
    /// A mismatch that will stop the view when it matters (the controller may stream events
    /// larger than this cockpit takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Sessions in a row without progress, against a controller that is ahead, before the
/// follower reports itself stuck.
pub const STUCK_AFTER_FAILURES: u32 = 3;

/// What the follower, the API and the metrics share.
pub struct Shared {
    pub view: RwLock<View>,
    pub status: Mutex<FollowStatus>,
    pub live: broadcast::Sender<Arc<Live>>,
    pub metrics: Metrics,
    /// The last `GET /api/v1/agents` answer of a controller and when it came.
    pub agents: Mutex<Option<(i64, ordo_api::view::AgentLinks)>>,
    /// What the controllers' `/health` said last ([`crate::cluster`]).
    pub cluster: Mutex<crate::cluster::Seen>,
}

impl Shared {
    pub fn new(history_max: usize, live_buffered_max: usize) -> Shared {
        let (live, _) = broadcast::channel(live_buffered_max.max(1));
        Shared {
            view: RwLock::new(View::new(history_max)),
            status: Mutex::new(FollowStatus::default()),
            live,
            metrics: Metrics::new(),
            agents: Mutex::new(None),
            cluster: Mutex::new(Default::default()),
        }
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> FollowStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut FollowStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Applies events in order (dropping any whose id is not above the last applied one),
    /// broadcasts them, and records lag. Returns how many were applied.
    pub fn apply(&self, events: impl IntoIterator<Item = Event>) -> usize {
        let now = now_ms();
        let mut applied = 0;
        let mut duplicates = 0;
        let mut lag = None;
        {
            let mut view = self.write();
            for e in events {
                if e.event_id <= view.last_event_id() {
                    duplicates += 1;
                    continue;
                }
                let _ = view.apply(e.event_id, &e.stored);
                applied += 1;
                let l = now - e.stored.ts.0;
                lag = Some(l);
                self.metrics.event_applied(e.event_id, l);
                let ended = ordo_api::view::order_event(&e.stored.body).and_then(|k| match k {
                    KeyedEvent::Order { id, .. } => match view.order(id.as_str()) {
                        Some(o) if !o.state.is_terminal() => None,
                        _ => Some(id.to_string()),
                    },
                    _ => None,
                });
                if self.live.receiver_count() > 0 {
                    let _ = self.live.send(Arc::new(Live {
                        event_id: e.event_id,
                        stored: e.stored,
                        ended,
                    }));
                }
            }
        }
        if duplicates > 0 {
            tracing::warn!(duplicates, "events at or below the last applied id dropped");
        }
        if applied > 0 || duplicates > 0 {
            self.update(|s| {
                s.duplicates += duplicates;
                if lag.is_some() {
                    s.lag_ms = lag;
                }
            });
        }
        applied
    }
}

/// Timing of the follower.
#[derive(Debug, Clone, Copy)]
pub struct FollowTiming {
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    pub ping_interval_ms: u64,
    pub silence_timeout_ms: u64,
    pub backfill_events_max: u64,
    /// Bound of the health request made before each stream.
    pub connect_timeout_ms: u64,
}

/// Follows the controllers until the task is dropped.
pub async fn follow(shared: Arc<Shared>, upstream: Arc<Upstream>, timing: FollowTiming) {
    let n = upstream.urls().len();
    if n > 1 {
        crate::cluster::probe_all(&shared, &upstream, timing.connect_timeout_ms, false).await;
    }
    let mut i = upstream.active().unwrap_or(0);
    let mut backoff = timing.reconnect_min_ms;
    let mut must_load = true;
    loop {
        let url = upstream.urls()[i % n].clone();
        let mut opened = false;
        let mut controller_at = None;
        let before = (shared.read().last_event_id(), shared.status().loaded);
        let started_ms = now_ms();
        let result = session(
            &shared,
            &upstream,
            i,
            timing,
            &mut must_load,
            &mut opened,
            &mut controller_at,
        )
        .await;
        let reason = match &result {
            Ok(Ended::Closed) => "the controller closed the event stream".to_owned(),
            Ok(Ended::Moved(j)) => format!(
                "{} is the active controller now; following it",
                upstream.urls()[*j % n]
            ),
            Err(e) => e.to_string(),
        };
        let moved = match result {
            Ok(Ended::Moved(j)) => Some(j % n),
            _ => None,
        };
        if !opened && upstream.active() == Some(i) {
            upstream.set_active(None);
        }
        let after = (shared.read().last_event_id(), shared.status().loaded);
        let progressed = after != before;
        shared.update(|s| {
            if moved.is_some() && !progressed {
                // Not a failure: the active controller changed.
                return;
            }
            if progressed {
                s.failures_without_progress = 0;
                s.no_progress_since_ms = None;
                s.stuck = None;
                return;
            }
            s.failures_without_progress += 1;
            let since = *s.no_progress_since_ms.get_or_insert(started_ms);
            let ahead = controller_at.is_some_and(|x| x > after.0 || !after.1);
            s.stuck = (s.failures_without_progress >= STUCK_AFTER_FAILURES && ahead).then(|| {
                match &result {
                    Err(e @ UpstreamError::FrameTooLarge { .. }) => format!(
                        "{e}; raise it to the controller's eventBytesMax (GET /api/v1/health of the controller)"
                    ),
                    _ => format!(
                        "no progress for {} ms while the controller is at event {} and the view at {}: {reason}",
                        now_ms() - since,
                        controller_at.unwrap_or_default(),
                        after.0,
                    ),
                }
            });
        });
        if let Some(stuck) = shared.status().stuck {
            tracing::error!(controller = %url, "the view cannot advance: {stuck}");
        }
        if let Err(UpstreamError::Gone { .. }) = &result {
            must_load = true;
        }
        tracing::warn!(controller = %url, %reason, "not following the controller; reconnecting");
        shared.update(|s| {
            s.following = false;
            s.following_since_ms = None;
            s.last_error = Some(format!("{url}: {reason}"));
            s.reconnects += 1;
        });
        shared.metrics.set_following(false);
        shared.metrics.reconnected();
        if opened {
            backoff = timing.reconnect_min_ms;
        }
        i = match (moved, upstream.active()) {
            (Some(j), _) => j,
            (None, Some(a)) if a != i => a,
            _ => (i + 1) % n,
        };
        if moved.is_some() {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(backoff)).await;
        if !opened {
            backoff = (backoff * 2).min(timing.reconnect_max_ms);
        }
    }
}

/// How a session that did not fail ended.
enum Ended {
    /// The controller closed the stream.
    Closed,
    /// Another controller (this index) became the active one.
    Moved(usize),
}

/// Loads (when needed) and follows controller `i` until its stream ends; `opened` tells
/// whether the stream was open, `controller_at` the controller's newest event id when its
/// `/health` answered.
async fn session(
    shared: &Shared,
    upstream: &Upstream,
    i: usize,
    timing: FollowTiming,
    must_load: &mut bool,
    opened: &mut bool,
    controller_at: &mut Option<u64>,
) -> Result<Ended, UpstreamError> {
    let url = upstream.urls()[i].clone();
    let mut active = upstream.watch_active();
    active.borrow_and_update();
    let health = tokio::time::timeout(
        Duration::from_millis(timing.connect_timeout_ms),
        upstream.health(i),
    );
    if let Ok(Ok(h)) = health.await {
        upstream.note_health(i, &h);
        *controller_at = Some(h.last_event_id);
        let frame_bytes_max = upstream.frame_bytes_max();
        let warning = (h.event_bytes_max > frame_bytes_max)
            .then_some(h.event_bytes_max)
            .map(|n| {
                format!(
                    "controller {url} streams events of up to {n} bytes (its limits.event_bytes_max), more than this cockpit's limits.frame_bytes_max ({frame_bytes_max} bytes)"
                )
            });
        if let Some(w) = &warning {
            tracing::warn!("{w}");
        }
        shared.update(|s| {
            s.cluster_id = Some(h.cluster_id);
            s.controller_id = Some(h.controller_id);
            s.controller_last_event_id = *controller_at;
            s.warning = warning;
        });
    }
    if *must_load {
        load(shared, upstream, i, timing.backfill_events_max).await?;
        *must_load = false;
    }
    let after = shared.read().last_event_id();
    let mut ws = upstream.events_ws(i, after).await?;
    *opened = true;
    upstream.set_current(i);
    tracing::info!(controller = %url, after, "following the controller's events");
    shared.update(|s| {
        s.controller = Some(url.clone());
        s.following = true;
        s.following_since_ms = Some(now_ms());
    });
    shared.metrics.set_following(true);
    let silence = Duration::from_millis(timing.silence_timeout_ms);
    let ping_every = Duration::from_millis(timing.ping_interval_ms);
    let mut last_heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut watching = true;
    loop {
        let next = tokio::select! {
            next = ws.next() => next,
            changed = active.changed(), if watching => {
                watching = changed.is_ok();
                match *active.borrow_and_update() {
                    Some(j) if j != i => return Ok(Ended::Moved(j)),
                    _ => continue,
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= silence {
                    return Err(UpstreamError::BadEvent {
                        url,
                        reason: format!("nothing heard for {} ms", timing.silence_timeout_ms),
                    });
                }
                if last_heard.elapsed() >= ping_every {
                    let _ = ws.send(WsMessage::Ping(Vec::new().into())).await;
                }
                continue;
            }
        };
        last_heard = tokio::time::Instant::now();
        let text = match next {
            None | Some(Ok(WsMessage::Close(_))) => return Ok(Ended::Closed),
            Some(Err(e)) => return Err(stream_error(shared, &url, e)),
            Some(Ok(WsMessage::Text(t))) => t,
            Some(Ok(_)) => continue,
        };
        // Take whatever else is already there, to apply a burst under one lock.
        let mut batch = vec![text];
        let mut broke = None;
        while batch.len() < 1024 {
            match futures_util::FutureExt::now_or_never(ws.next()) {
                Some(Some(Ok(WsMessage::Text(t)))) => batch.push(t),
                Some(Some(Ok(WsMessage::Close(_)))) | Some(None) => break,
                Some(Some(Ok(_))) => {}
                Some(Some(Err(e))) => {
                    broke = Some(e);
                    break;
                }
                None => break,
            }
        }
        let mut events = Vec::with_capacity(batch.len());
        for text in &batch {
            match parse_message(text) {
                Ok(Message::Event(e)) => events.push(e),
                Ok(Message::Error(reason)) => {
                    shared.apply(events);
                    if reason.contains("reload the snapshot") {
                        return Err(UpstreamError::Gone {
                            after,
                            message: reason,
                        });
                    }
                    return Err(UpstreamError::BadEvent { url, reason });
                }
                Err(reason) => {
                    shared.apply(events);
                    return Err(UpstreamError::BadEvent { url, reason });
                }
            }
        }
        shared.apply(events);
        if let Some(e) = broke {
            return Err(stream_error(shared, &url, e));
        }
    }
}

/// Why the event stream broke; a frame over the limit is named as such.
fn stream_error(
    shared: &Shared,
    url: &str,
    e: tokio_tungstenite::tungstenite::Error,
) -> UpstreamError {
    use tokio_tungstenite::tungstenite::{Error, error::CapacityError};
    match e {
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            UpstreamError::FrameTooLarge {
                after: shared.read().last_event_id(),
                bytes: size,
                frame_bytes_max: max_size,
            }
        }
        e => UpstreamError::BadEvent {
            url: url.to_owned(),
            reason: format!("the event stream broke: {e}"),
        },
    }
}

/// Loads the state of controller `i`, fills the histories, and replaces the view.
async fn load(
    shared: &Shared,
    upstream: &Upstream,
    i: usize,
    backfill_events_max: u64,
) -> Result<(), UpstreamError> {
    let (event_id, state) = upstream.state(i).await?;
    let history_max = shared.read().history_max();
    let mut view = View::load(state, history_max);
    debug_assert_eq!(view.last_event_id(), event_id);
    let mut cursor = 0;
    let mut read = 0u64;
    while cursor < event_id && read < backfill_events_max {
        let page = match upstream.events_page(i, cursor, 1000).await {
            Ok(p) => p,
            // Nothing older is kept: the histories start later.
            Err(UpstreamError::Gone { .. }) => break,
            Err(e) => return Err(e),
        };
        let Some(last) = page.last() else { break };
        cursor = last.event_id;
        for e in page {
            if e.event_id > event_id || read >= backfill_events_max {
                cursor = event_id;
                break;
            }
            view.backfill(e.event_id, &e.stored);
            read += 1;
        }
    }
    let orders = view.state.world.orders.len();
    *shared.write() = view;
    shared.update(|s| s.loaded = true);
    shared.metrics.set_last_event_id(event_id);
    tracing::info!(
        event_id,
        orders,
        history_events = read,
        "controller state loaded"
    );
    Ok(())
}
