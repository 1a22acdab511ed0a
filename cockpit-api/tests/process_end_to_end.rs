//! With a real agent: an order runs its job, the cockpit streams the job's output live and
//! shows the agent connected with its metadata.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_an_order_runs_on_an_agent_and_its_output_streams_live() {
    let controller = Controller::start().await;
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&controller, agent_dir.path()).await;
    let cockpit = Cockpit::start(&controller).await;
    let inventory = agent.inventory();
    cockpit
        .post(
            ADMIN,
            "/api/v1/deploy",
            json!({"files": [{"name": "e2e.yaml", "text": inventory}]}),
        )
        .await;
    let agents = until("the agent link", 20_000, || async {
        let a = cockpit.get("/api/v1/agents").await;
        (a["agents"][0]["connected"] == true && a["agents"][0]["meta"].is_object()).then_some(a)
    })
    .await;
    assert_eq!(agents["agents"][0]["id"], "local");
    assert!(agents["agents"][0]["meta"]["cores"].as_u64().unwrap() > 0);

    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "h1", "workflow": "hello"}),
        )
        .await;
    let mut log = ws(&cockpit, "/api/v1/orders/h1/log/ws", Some(VIEWER))
        .await
        .unwrap();
    let mut frames: Vec<Value> = Vec::new();
    while let Some(f) = next_json(&mut log, 20_000).await {
        let end = f["type"] == "End";
        frames.push(f);
        if end {
            break;
        }
    }
    assert_eq!(
        frames.last().unwrap(),
        &json!({"type": "End", "state": "finished"}),
        "{frames:?}"
    );
    let out: String = frames
        .iter()
        .filter(|f| f["type"] == "Stdout")
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(out, "hello from the job\ndone\n");
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "Stderr" && f["text"] == "a warning\n")
    );
    // Event ids increase: nothing twice.
    let ids: Vec<u64> = frames
        .iter()
        .filter_map(|f| f["eventId"].as_u64())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // The whole log, from the controller; and replayed to a late stream.
    let text = cockpit
        .call(Some(VIEWER), "GET", "/api/v1/orders/h1/log", None)
        .await;
    assert_eq!(text.status, 200);
    let text = common::text(&text);
    assert!(
        text.contains("hello from the job") && text.contains("a warning") && text.contains("done")
    );
    let mut late = ws(&cockpit, "/api/v1/orders/h1/log/ws", Some(VIEWER))
        .await
        .unwrap();
    let mut replayed = Vec::new();
    while let Some(f) = next_json(&mut late, 10_000).await {
        let end = f["type"] == "End";
        replayed.push(f);
        if end {
            break;
        }
    }
    assert_eq!(replayed, frames);

    let order = cockpit.order_in("h1", "finished").await;
    let kinds: Vec<&str> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"ProcessingStarted") && kinds.contains(&"Processed"),
        "{kinds:?}"
    );
    assert_eq!(order["vars"]["returnCode"], 0);
    let metrics = common::text(&cockpit.call(None, "GET", "/metrics", None).await);
    until("the metrics to see the agent link", 10_000, || async {
        let m = common::text(&cockpit.call(None, "GET", "/metrics", None).await);
        m.contains("ordo_cockpit_agent_links_connected 1")
            .then_some(())
    })
    .await;
    assert!(
        metrics.contains("ordo_cockpit_orders{state=\"finished\"} 1"),
        "{metrics}"
    );
    agent.stop().await;
}
