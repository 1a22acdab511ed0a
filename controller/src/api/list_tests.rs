//! Order lists against a real core and journal (no agents, no sockets): a long list is a large
//! answer with a place among `state_reads_max` and is written outside the core; short pages
//! need no place.

use super::orders::{LIST_ORDERS_UNBOUNDED_MAX, ListQuery, list};
use super::{Api, token_map};
use crate::core::{Core, Input, LinkMsg, Links};
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use ordo_api::view::order_view;
use ordo_model::ids::{AgentId, OrderId, WorkflowName};
use ordo_model::inventory::Agent;
use ordo_model::order::Command;
use ordo_model::time::TimeMs;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use serde_json::Value as Json;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Orders that wait for an answer on the controller: nothing moves them.
const PROMPT_WORKFLOW: &str = "workflow: p\nsteps:\n  - prompt: \"ok?\"\n";
const ANSWER_BYTES_MAX: usize = 64 << 20;

struct NoLinks;

impl Links for NoLinks {
    fn ensure(&mut self, _: &Agent, _: &ordo_model::inventory::ClusterSettings, _: Option<&str>) {}
    fn send(&self, _: &AgentId, _: LinkMsg) {}
    fn reconnect_all(&mut self) {}
    fn stop_all(&mut self) {}
}

/// A core on a fresh journal in `dir`, and the API's view of it with `places` large answers.
fn start(dir: &std::path::Path, places: usize) -> Api {
    let opened = ordo_journal::Journal::open(ordo_journal::Config::new(dir)).unwrap();
    let state = crate::recover(&opened).unwrap();
    let journal = opened.journal;
    let core = Core::new(
        journal.clone(),
        state,
        NoLinks,
        Box::new(|| TimeMs(1_000)),
        1_000_000,
        u64::MAX,
        u64::MAX,
    );
    let generation = core.generation_watch();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(core.run(rx));
    Api {
        core: tx,
        journal,
        generation,
        links: Arc::new(Mutex::new(Default::default())),
        tokens: Arc::new(token_map(&[])),
        orders_per_request_max: 10_000,
        order_limits: Default::default(),
        long_poll_ms_max: 1_000,
        event_bytes_max: crate::streamed::EVENT_BYTES_MAX_DEFAULT,
        state_reads: Arc::new(Semaphore::new(places)),
        state_reads_max: places,
        cluster_id: "test".into(),
        controller_id: "test".into(),
        cluster: None,
        register: None,
    }
}

async fn deploy_and_add(api: &Api, orders: usize) {
    let inventory = parse_inventory(
        &[SourceFile::new("p.yaml", PROMPT_WORKFLOW)],
        &Limits::default(),
    )
    .unwrap();
    let (reply, answer) = oneshot::channel();
    api.core
        .send(Input::Deploy {
            inventory: Box::new(inventory),
            reply,
        })
        .await
        .unwrap();
    answer.await.unwrap().unwrap();
    for i in 0..orders {
        let (reply, answer) = oneshot::channel();
        let command = Command::Add {
            id: OrderId::new(format!("o-{i:04}")).unwrap(),
            workflow: WorkflowName::new("p").unwrap(),
            vars: Default::default(),
            scheduled_for: None,
        };
        api.core
            .send(Input::Command { command, reply })
            .await
            .unwrap();
        answer.await.unwrap().unwrap();
    }
}

async fn get_list(api: &Api, query: &str) -> Response {
    let Query(q): Query<ListQuery> = Query::try_from_uri(
        &format!("http://controller/api/v1/orders?{query}")
            .parse()
            .unwrap(),
    )
    .unwrap();
    list(AxState(api.clone()), Query(q)).await
}

async fn body_json(answer: Response) -> Json {
    let bytes = axum::body::to_bytes(answer.into_body(), ANSWER_BYTES_MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn long_order_lists_take_a_place_and_short_pages_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path(), 2);
    let orders = LIST_ORDERS_UNBOUNDED_MAX * 2 + 7;
    deploy_and_add(&api, orders).await;

    // Every place is taken (two large answers are being written): a long list is refused at
    // once, like /state; a short page is answered.
    let held = api.state_reads.clone().acquire_many_owned(2).await.unwrap();
    let busy = get_list(&api, "").await;
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let error = body_json(busy).await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("state_reads_max")),
        "{error}"
    );
    let refused = get_list(&api, &format!("limit={}", LIST_ORDERS_UNBOUNDED_MAX + 1)).await;
    assert_eq!(refused.status().as_u16(), 503);
    let page = get_list(&api, &format!("limit={LIST_ORDERS_UNBOUNDED_MAX}")).await;
    assert_eq!(page.status().as_u16(), 200);
    let page = body_json(page).await;
    assert_eq!(
        page["orders"].as_array().map(Vec::len),
        Some(LIST_ORDERS_UNBOUNDED_MAX)
    );

    // With the places back, the long list is every order, as the API shows one.
    drop(held);
    let all = get_list(&api, "").await;
    assert_eq!(all.status().as_u16(), 200);
    assert_eq!(
        all.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let all = body_json(all).await;
    let expected: Vec<Json> = api
        .read(|s, _| {
            s.world
                .orders
                .values()
                .map(|o| serde_json::to_value(order_view(o)).unwrap())
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(expected.len(), orders);
    assert_eq!(all["orders"], Json::Array(expected));
    // The place went back once the answer was written.
    assert_eq!(api.state_reads.available_permits(), 2);

    // A filter that finds nothing gives an empty list.
    let none = body_json(get_list(&api, "state=finished").await).await;
    assert_eq!(none["orders"], Json::Array(Vec::new()));
}
