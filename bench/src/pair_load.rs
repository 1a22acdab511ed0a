//! Orders added to whichever controller of a pair is active, at a steady rate, as a client
//! that knows every controller's URL would add them.
//!
//! [`RoutedAdder::add`] sends one order (the single-order body of `POST /api/v1/orders`) to
//! the controller it believes active and retries with the same order id until one
//! acknowledges it (a 2xx answer: the order is committed; `duplicate` when an earlier attempt
//! whose outcome was unknown had added it):
//! - 503 with `active` naming another known controller: asks that one next, at once the
//!   first time in a row, after `retry_pause` when redirected again;
//! - 503 without a known `active` (an election), a connection error or a timeout: asks the
//!   next controller of the list after `retry_pause`;
//! - any other answer is an error, and so is no acknowledgement within `give_up`.
//!
//! [`SteadyLoad`] makes order ids `<prefix>-<n>` at a fixed rate (an open loop: ids queue up
//! while no controller acknowledges, and are sent when one does) and adds them with
//! `senders` concurrent [`RoutedAdder`]s, recording every acknowledgement.

use anyhow::{anyhow, bail};
use axum::http::{Method, StatusCode};
use ordo_net::client::HttpsClient;
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// One acknowledged order.
#[derive(Clone, Debug)]
pub struct Acked {
    pub id: String,
    /// Index (in the adder's list) of the controller that acknowledged it.
    pub node: usize,
    /// When the order was made (its turn in the steady rate) or, for a single add, first
    /// sent.
    pub made: Instant,
    /// When the acknowledgement arrived.
    pub at: Instant,
    /// Requests sent for it.
    pub attempts: u32,
    /// The controller had it already (an earlier attempt's outcome was unknown).
    pub duplicate: bool,
}

/// What one attempt got.
enum Attempt {
    Acked {
        duplicate: bool,
    },
    /// 503 naming the active controller (its index), if known.
    NotActive(Option<usize>),
    /// No answer, or one that says to try again later.
    Unavailable,
}

/// Adds orders to the active controller of those at `urls`.
#[derive(Clone)]
pub struct RoutedAdder {
    http: HttpsClient,
    /// Base URLs (`https://host:port`) of the controllers.
    urls: Vec<String>,
    current: usize,
    retry_pause: Duration,
    give_up: Duration,
}

impl RoutedAdder {
    /// `http` carries the token (and its request timeout bounds one attempt).
    pub fn new(
        http: HttpsClient,
        urls: Vec<String>,
        retry_pause: Duration,
        give_up: Duration,
    ) -> RoutedAdder {
        assert!(!urls.is_empty(), "a controller to add orders to");
        RoutedAdder {
            http,
            urls: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            current: 0,
            retry_pause,
            give_up,
        }
    }

    /// Adds `order` (`{id, workflow, …}`), retrying as the module says; `made` is when the
    /// order was due.
    pub async fn add(&mut self, order: &Json, made: Instant) -> anyhow::Result<Acked> {
        let id = order["id"]
            .as_str()
            .ok_or_else(|| anyhow!("an order without an id: {order}"))?
            .to_owned();
        let body = serde_json::to_vec(order)?;
        let deadline = Instant::now() + self.give_up;
        let mut attempts = 0u32;
        let mut redirected = false;
        loop {
            attempts += 1;
            let node = self.current;
            match self.attempt(node, &body).await? {
                Attempt::Acked { duplicate } => {
                    return Ok(Acked {
                        id,
                        node,
                        made,
                        at: Instant::now(),
                        attempts,
                        duplicate,
                    });
                }
                Attempt::NotActive(Some(active)) if active != node => {
                    self.current = active;
                    if redirected {
                        tokio::time::sleep(self.retry_pause).await;
                    }
                    redirected = true;
                }
                Attempt::NotActive(_) | Attempt::Unavailable => {
                    self.current = (node + 1) % self.urls.len();
                    redirected = false;
                    tokio::time::sleep(self.retry_pause).await;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "order {id} was not acknowledged within {} ms ({attempts} attempts)",
                    self.give_up.as_millis()
                );
            }
        }
    }

    async fn attempt(&self, node: usize, body: &[u8]) -> anyhow::Result<Attempt> {
        let url = format!("{}/api/v1/orders", self.urls[node]);
        let answer = match self
            .http
            .request(
                Method::POST,
                &url,
                Some((body.to_vec().into(), "application/json")),
            )
            .await
        {
            Ok(answer) => answer,
            // Refused, reset or timed out: the outcome is unknown; the same id is retried.
            Err(_) => return Ok(Attempt::Unavailable),
        };
        let text = String::from_utf8_lossy(&answer.body);
        if answer.status.is_success() {
            let v: Json = serde_json::from_str(&text)
                .map_err(|e| anyhow!("POST {url} answered {}: {e}: {text}", answer.status))?;
            let duplicate = v["results"]
                .as_array()
                .and_then(|r| r.first())
                .is_some_and(|r| r["duplicate"] == true);
            return Ok(Attempt::Acked { duplicate });
        }
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            let active = serde_json::from_str::<Json>(&text)
                .ok()
                .and_then(|v| v["active"].as_str().map(str::to_owned))
                .and_then(|a| {
                    let a = a.trim_end_matches('/');
                    self.urls.iter().position(|u| u == a)
                });
            return Ok(match active {
                Some(_) => Attempt::NotActive(active),
                None => Attempt::Unavailable,
            });
        }
        bail!("POST {url} answered {}: {text}", answer.status)
    }
}

/// Orders added at a steady rate by concurrent [`RoutedAdder`]s.
pub struct SteadyLoad {
    acks: Arc<Mutex<Vec<Acked>>>,
    made: Arc<Mutex<usize>>,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
}

/// What a stopped load did.
pub struct LoadEnd {
    /// Orders made.
    pub made: usize,
    pub acked: Vec<Acked>,
}

impl SteadyLoad {
    /// Starts making orders of `workflow` (`<prefix>-<n>`) at `per_s` a second, added by
    /// `senders` copies of `adder`.
    pub fn start(
        adder: RoutedAdder,
        workflow: &str,
        prefix: &str,
        per_s: f64,
        senders: usize,
    ) -> SteadyLoad {
        assert!(per_s > 0.0 && senders > 0, "a rate and a sender");
        let acks = Arc::new(Mutex::new(Vec::new()));
        let made = Arc::new(Mutex::new(0usize));
        let (stop, mut stopped) = watch::channel(false);
        let (tx, rx) = mpsc::unbounded_channel::<(Json, Instant)>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut tasks = tokio::task::JoinSet::new();
        let (workflow, prefix) = (workflow.to_owned(), prefix.to_owned());
        let count = made.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s));
            let mut n = 0usize;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return Ok(()),
                }
                let order = json!({"id": format!("{prefix}-{n}"), "workflow": workflow});
                if tx.send((order, Instant::now())).is_err() {
                    return Ok(());
                }
                n += 1;
                *count.lock().expect("the count's lock") = n;
            }
        });
        for _ in 0..senders {
            let (mut adder, rx, acks) = (adder.clone(), rx.clone(), acks.clone());
            tasks.spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((order, made)) = next else {
                        return Ok(());
                    };
                    let acked = adder.add(&order, made).await?;
                    acks.lock().expect("the acks' lock").push(acked);
                }
            });
        }
        SteadyLoad {
            acks,
            made,
            stop,
            tasks,
        }
    }

    /// Acknowledgements so far.
    pub fn acked_count(&self) -> usize {
        self.acks.lock().expect("the acks' lock").len()
    }

    /// The first acknowledgement by controller `node` that arrived after `after`, looking
    /// at acknowledgements from the `from`-th on.
    pub fn first_ack_after(&self, from: usize, after: Instant, node: usize) -> Option<Instant> {
        let acks = self.acks.lock().expect("the acks' lock");
        acks.iter()
            .skip(from)
            .filter(|a| a.node == node && a.at > after)
            .map(|a| a.at)
            .min()
    }

    /// An error of a sender that gave up, if one did (the load then adds no more).
    pub async fn failure(&mut self) -> Option<anyhow::Error> {
        while let Some(done) = self.tasks.try_join_next() {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Some(e),
                Err(e) => return Some(anyhow!("a load task failed: {e}")),
            }
        }
        None
    }

    /// Stops making orders and waits (at most `within`) until every order made is
    /// acknowledged.
    pub async fn stop(mut self, within: Duration) -> anyhow::Result<LoadEnd> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(None) => break,
                Ok(Some(Ok(Ok(())))) => {}
                Ok(Some(Ok(Err(e)))) => return Err(e),
                Ok(Some(Err(e))) => bail!("a load task failed: {e}"),
                Err(_) => {
                    self.tasks.abort_all();
                    bail!(
                        "orders still unacknowledged {} ms after the load stopped",
                        within.as_millis()
                    );
                }
            }
        }
        let made = *self.made.lock().expect("the count's lock");
        let acked = std::mem::take(&mut *self.acks.lock().expect("the acks' lock"));
        Ok(LoadEnd { made, acked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use ordo_net::client::HttpsClientOptions;
    use std::collections::BTreeSet;

    /// A plain HTTP server on 127.0.0.1 answering `POST /api/v1/orders` with `status` and
    /// `body`; its base URL.
    async fn fake(status: StatusCode, body: Json) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route(
            "/api/v1/orders",
            post(move || {
                let body = body.clone();
                async move { (status, axum::Json(body)) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        url
    }

    fn adder(urls: Vec<String>, give_up_ms: u64) -> RoutedAdder {
        ordo_net::tls::install_crypto_provider();
        let ca = ordo_net::certs::TestPki::new("bench")
            .unwrap()
            .ca_bundle()
            .unwrap();
        let tls = ordo_net::tls::client_config(&ca, None).unwrap();
        let http = HttpsClient::new(
            tls,
            HttpsClientOptions {
                connect_timeout_ms: 1000,
                request_timeout_ms: 2000,
                body_bytes_max: 1 << 20,
                allow_plain_http: true,
            },
        );
        RoutedAdder::new(
            http,
            urls,
            Duration::from_millis(1),
            Duration::from_millis(give_up_ms),
        )
    }

    fn acked_body() -> Json {
        json!({"results": [{"id": "x", "added": true, "duplicate": false}], "lastEventId": 1})
    }

    #[tokio::test]
    async fn an_order_goes_past_a_dead_controller_and_a_passive_one_to_the_active() {
        let active = fake(StatusCode::OK, acked_body()).await;
        let passive = fake(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "not the active controller", "active": format!("{active}/")}),
        )
        .await;
        let mut a = adder(vec![closed_port(), passive, active], 10_000);
        let order = json!({"id": "o-1", "workflow": "w"});
        let acked = a.add(&order, Instant::now()).await.unwrap();
        assert_eq!((acked.id.as_str(), acked.node), ("o-1", 2));
        assert_eq!(acked.attempts, 3, "dead, passive, active");
        assert!(!acked.duplicate);
        // The next order goes straight to the active one.
        let again = a.add(&order, Instant::now()).await.unwrap();
        assert_eq!((again.node, again.attempts), (2, 1));
    }

    #[tokio::test]
    async fn an_election_is_waited_out_and_a_duplicate_is_an_acknowledgement() {
        let electing = fake(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "not the active controller", "active": null}),
        )
        .await;
        let duplicate = fake(
            StatusCode::OK,
            json!({"results": [{"id": "o-1", "added": false, "duplicate": true}]}),
        )
        .await;
        let mut a = adder(vec![electing, duplicate], 10_000);
        let acked = a
            .add(&json!({"id": "o-1", "workflow": "w"}), Instant::now())
            .await
            .unwrap();
        assert_eq!((acked.node, acked.attempts), (1, 2));
        assert!(acked.duplicate);
    }

    #[tokio::test]
    async fn a_refusal_is_an_error_and_so_is_no_controller_at_all() {
        let refusing = fake(StatusCode::BAD_REQUEST, json!({"error": "bad order"})).await;
        let mut a = adder(vec![refusing], 10_000);
        let e = a
            .add(&json!({"id": "o-1", "workflow": "w"}), Instant::now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("400"), "{e}");
        let mut none = adder(vec![closed_port()], 50);
        let e = none
            .add(&json!({"id": "o-1", "workflow": "w"}), Instant::now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not acknowledged"), "{e}");
    }

    #[tokio::test]
    async fn a_steady_load_acknowledges_every_order_it_made_once() {
        let active = fake(StatusCode::OK, acked_body()).await;
        let mut load = SteadyLoad::start(adder(vec![active], 10_000), "w", "s", 500.0, 2);
        let deadline = Instant::now() + Duration::from_secs(30);
        while load.acked_count() < 20 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(load.failure().await.is_none());
        assert!(load.first_ack_after(0, deadline, 0).is_none());
        let end = load.stop(Duration::from_secs(30)).await.unwrap();
        assert!(end.made >= 20);
        assert_eq!(end.acked.len(), end.made);
        let ids: BTreeSet<&str> = end.acked.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), end.made);
        assert!(ids.contains("s-0"));
    }
}
