//! Clients of the pair: the [`Orderer`] sends commands to whichever controller is active and
//! counts every request in a [`Ledger`]; a [`Load`] adds orders one after the other until it
//! is stopped.

use super::{POLL_MS, lock, role};
use anyhow::{Result, anyhow, bail};
use axum::http::{Method, StatusCode};
use ordo_net::client::HttpsClient;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Time for one command to be acknowledged, retries included.
const COMMAND_WAIT_MS: u64 = 60_000;
/// Requests sent for one command at most.
const COMMAND_ATTEMPTS_MAX: u32 = 2_000;

/// Every order a client sent: how often, and whether a controller acknowledged it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub orders: BTreeMap<String, Sent>,
}

/// One order's requests.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Requests sent (the first and every retry).
    pub attempts: u32,
    pub acknowledged: bool,
    /// What the last request that was not acknowledged got.
    pub last_error: Option<String>,
}

impl Ledger {
    pub fn attempted(&self) -> BTreeSet<String> {
        self.orders.keys().cloned().collect()
    }

    pub fn acknowledged(&self) -> BTreeSet<String> {
        self.orders
            .iter()
            .filter(|(_, s)| s.acknowledged)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Requests sent in all.
    pub fn attempts(&self) -> u64 {
        self.orders.values().map(|s| u64::from(s.attempts)).sum()
    }
}

/// Sends commands to whichever controller is active: follows a 503's `active`, asks every
/// node's `/health` after a connection error, sends an unacknowledged command again.
#[derive(Clone)]
pub struct Orderer {
    api: HttpsClient,
    health: HttpsClient,
    /// Every node: id, API URL, whether it is a controller.
    voters: Vec<(u64, String, bool)>,
    /// The controller believed active.
    hint: Arc<Mutex<Option<String>>>,
    ledger: Arc<Mutex<Ledger>>,
}

/// How one request went.
enum Answer {
    Done(Json),
    /// Not the active controller, or the outcome is unknown: the active one, if named.
    Elsewhere(Option<String>),
    Unreachable(String),
}

impl Orderer {
    /// An orderer over these nodes (id, API URL, whether it is a controller).
    pub(super) fn new(
        api: HttpsClient,
        health: HttpsClient,
        voters: Vec<(u64, String, bool)>,
    ) -> Orderer {
        Orderer {
            api,
            health,
            voters,
            hint: Arc::default(),
            ledger: Arc::default(),
        }
    }

    /// A copy of the ledger as it is now.
    pub fn ledger(&self) -> Ledger {
        lock(&self.ledger).clone()
    }

    /// The controller an answer or `/health` named as active, if any.
    async fn discover(&self) -> Option<String> {
        let mut named = None;
        for (_, url, _) in &self.voters {
            let Ok(h) = self
                .health
                .get_json::<Json>(&format!("{url}/api/v1/health"))
                .await
            else {
                continue;
            };
            if role(&h) == "active" {
                return Some(url.clone());
            }
            if named.is_none() {
                named = h["cluster"]["activeApiUrl"].as_str().map(str::to_owned);
            }
        }
        named.filter(|u| self.is_controller(u))
    }

    fn is_controller(&self, url: &str) -> bool {
        self.voters.iter().any(|(_, u, controller)| {
            *controller && u.trim_end_matches('/') == url.trim_end_matches('/')
        })
    }

    async fn send_once(&self, base: &str, method: &Method, path: &str, body: &Json) -> Answer {
        let url = format!("{}/api/v1{path}", base.trim_end_matches('/'));
        let bytes = match serde_json::to_vec(body) {
            Ok(b) => b,
            Err(e) => return Answer::Unreachable(format!("encoding the body: {e}")),
        };
        match self
            .api
            .request(
                method.clone(),
                &url,
                Some((bytes.into(), "application/json")),
            )
            .await
        {
            Ok(r) if r.status.is_success() => {
                Answer::Done(serde_json::from_slice(&r.body).unwrap_or(Json::Null))
            }
            Ok(r) if r.status == StatusCode::SERVICE_UNAVAILABLE => {
                let answer: Json = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
                Answer::Elsewhere(answer["active"].as_str().map(str::to_owned))
            }
            Ok(r) => Answer::Done(json!({
                "refused": r.status.as_u16(),
                "body": String::from_utf8_lossy(&r.body),
            })),
            Err(e) => Answer::Unreachable(e.to_string()),
        }
    }

    /// Sends a command until a controller takes it (2xx); `on_attempt` is called before each
    /// request. Answers other than 2xx, 503 and no answer end it with an error.
    pub async fn command(
        &self,
        method: Method,
        path: &str,
        body: &Json,
        mut on_attempt: impl FnMut(),
    ) -> Result<Json> {
        let deadline = Instant::now() + Duration::from_millis(COMMAND_WAIT_MS);
        let mut last = String::from("no request sent");
        for _ in 0..COMMAND_ATTEMPTS_MAX {
            if Instant::now() > deadline {
                break;
            }
            let hint = lock(&self.hint).clone();
            let base = match hint {
                Some(url) => url,
                None => match self.discover().await {
                    Some(url) => {
                        *lock(&self.hint) = Some(url.clone());
                        url
                    }
                    None => {
                        last = "no node names an active controller".into();
                        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                        continue;
                    }
                },
            };
            on_attempt();
            match self.send_once(&base, &method, path, body).await {
                Answer::Done(answer) => {
                    if let Some(status) = answer.get("refused") {
                        bail!(
                            "{method} {path} at {base} answered {status}: {}",
                            answer["body"]
                        );
                    }
                    return Ok(answer);
                }
                Answer::Elsewhere(active) => {
                    last = format!("{base} answered 503 (active: {active:?})");
                    let next = active.filter(|a| self.is_controller(a) && *a != base);
                    let pause = next.is_none();
                    *lock(&self.hint) = next;
                    if pause {
                        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                    }
                }
                Answer::Unreachable(e) => {
                    last = e;
                    *lock(&self.hint) = None;
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
            }
        }
        bail!("{method} {path}: no controller took it in {COMMAND_WAIT_MS} ms; last: {last}")
    }

    /// Adds order `id` of `workflow`, retrying with the same id until a controller
    /// acknowledges it; every request is counted in the ledger.
    pub async fn add_order(&self, id: &str, workflow: &str) -> Result<()> {
        let body = json!({"orders": [{"id": id, "workflow": workflow}]});
        let ledger = self.ledger.clone();
        let answer = self
            .command(Method::POST, "/orders", &body, || {
                lock(&ledger)
                    .orders
                    .entry(id.to_owned())
                    .or_default()
                    .attempts += 1;
            })
            .await;
        let mut ledger = lock(&self.ledger);
        let sent = ledger.orders.entry(id.to_owned()).or_default();
        match answer {
            Ok(a) => {
                let result = &a["results"][0];
                if result["id"] == id && (result["added"] == true || result["duplicate"] == true) {
                    sent.acknowledged = true;
                    Ok(())
                } else {
                    sent.last_error = Some(a.to_string());
                    bail!("adding order {id}: {a}")
                }
            }
            Err(e) => {
                sent.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Sends order `id` to the controller at `base` once, without following anyone;
    /// counted in the ledger. Returns the HTTP status, or `None` when there was no answer.
    pub async fn add_order_at(&self, base: &str, id: &str, workflow: &str) -> Option<u16> {
        let body = json!({"orders": [{"id": id, "workflow": workflow}]});
        lock(&self.ledger)
            .orders
            .entry(id.to_owned())
            .or_default()
            .attempts += 1;
        let url = format!("{base}/api/v1/orders");
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let answer = self
            .api
            .request(Method::POST, &url, Some((bytes.into(), "application/json")))
            .await;
        let mut ledger = lock(&self.ledger);
        let sent = ledger.orders.entry(id.to_owned()).or_default();
        match answer {
            Ok(r) => {
                if r.status.is_success() {
                    sent.acknowledged = true;
                } else {
                    sent.last_error = Some(format!("{}", r.status));
                }
                Some(r.status.as_u16())
            }
            Err(e) => {
                sent.last_error = Some(e.to_string());
                None
            }
        }
    }
}

/// A steady load: orders `<prefix>-0`, `<prefix>-1`, ... added one after the other through
/// the [`Orderer`], each retried until acknowledged, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: watch::Receiver<usize>,
    /// `None` once its end was read.
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

/// Time for the load to reach a number of acknowledged orders.
const LOAD_WAIT_MS: u64 = 120_000;

impl Load {
    /// Starts adding orders of `workflow`, at most `orders_max`.
    pub fn start(orderer: &Orderer, workflow: &str, prefix: &str, orders_max: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, acknowledged) = watch::channel(0);
        let (orderer, workflow, prefix) = (orderer.clone(), workflow.to_owned(), prefix.to_owned());
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            for i in 0..orders_max {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                orderer
                    .add_order(&format!("{prefix}-{i}"), &workflow)
                    .await?;
                tx.send_replace(i + 1);
            }
            Ok(())
        });
        Load {
            stop,
            acknowledged,
            task: Some(task),
        }
    }

    /// Orders acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        *self.acknowledged.borrow()
    }

    /// Waits until `n` orders are acknowledged in all.
    pub async fn wait_acknowledged(&mut self, n: usize) -> Result<()> {
        let wait = self.acknowledged.wait_for(|a| *a >= n);
        let waited = tokio::time::timeout(Duration::from_millis(LOAD_WAIT_MS), wait)
            .await
            .map(|r| r.map(|_| ()));
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                // The load ended: say why.
                let reached = self.acknowledged();
                let why = match self.task.take() {
                    Some(task) => match task.await {
                        Ok(Ok(())) => "it sent all its orders".to_owned(),
                        Ok(Err(e)) => format!("{e:#}"),
                        Err(e) => format!("its task failed: {e}"),
                    },
                    None => "it ended before".to_owned(),
                };
                bail!("the load ended at {reached} acknowledged orders, before {n}: {why}")
            }
            Err(_) => bail!(
                "{} orders acknowledged in {LOAD_WAIT_MS} ms, waiting for {n}",
                self.acknowledged()
            ),
        }
    }

    /// Waits until `more` further orders are acknowledged.
    pub async fn wait_more(&mut self, more: usize) -> Result<()> {
        let n = self.acknowledged() + more;
        self.wait_acknowledged(n).await
    }

    /// Stops adding orders (the one being added is finished first) and says how the load
    /// ended.
    pub async fn stop(self) -> Result<usize> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task {
            task.await
                .map_err(|e| anyhow!("the load's task failed: {e}"))??;
        }
        Ok(*self.acknowledged.borrow())
    }
}
