//! The cockpit in front of a real pair: two `ordo-controller` processes and the watch, each
//! with its `[cluster]` section, on 127.0.0.1. A kill -9 of the active controller: commands go
//! on through the cockpit at the other one, and the cockpit's view goes on without a gap or a
//! duplicate, ending equal to the new active controller's own state.

mod common;

use common::pair::Pair;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Adds order `id` through the cockpit, again while the answer says the pair is between
/// controllers (503, 502): adding an existing id changes nothing.
async fn add(cockpit: &Cockpit, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = cockpit
            .call(
                Some(OPERATOR),
                "POST",
                "/api/v1/orders",
                Some(json!({"id": id, "workflow": "ask"})),
            )
            .await;
        if r.status == 200 {
            return;
        }
        assert!(
            [502, 503].contains(&r.status.as_u16()) && tokio::time::Instant::now() < deadline,
            "adding {id}: {} {}",
            r.status,
            text(&r)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_the_cockpit_carries_on_after_a_kill_of_the_active_controller() {
    let mut pair = Pair::start();
    let first = pair.active().await;
    let controllers = [pair.nodes[0].url.clone(), pair.nodes[1].url.clone()];
    let text = cockpit_config(&controllers, &pair.ca(), "")
        .replace("[follow]\n", "[follow]\ncluster_poll_ms = 200\n");
    let cockpit = Cockpit::start_text(text, None).await;
    let h = cockpit.get("/api/v1/health").await;
    assert_eq!(h["activeController"], pair.nodes[first].url.as_str(), "{h}");
    deploy(&cockpit).await;
    for k in 0..5 {
        add(&cockpit, &format!("before-{k}")).await;
    }
    // The cluster route shows all three voters, the watch as one the controllers name.
    let view = cockpit.get("/api/v1/cluster").await;
    let members = view["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{view}");
    assert_eq!(members[2]["configured"], false, "{view}");
    assert_eq!(members[2]["health"]["role"], "watch", "{view}");

    pair.nodes[first].kill();
    let second = pair.active().await;
    assert_ne!(second, first);
    for k in 0..5 {
        add(&cockpit, &format!("after-{k}")).await;
    }
    let h = until(
        "the cockpit to follow the new active controller",
        20_000,
        || async {
            let h = cockpit.get("/api/v1/health").await;
            (h["activeController"] == pair.nodes[second].url.as_str()
                && h["controller"] == pair.nodes[second].url.as_str())
            .then_some(h)
        },
    )
    .await;
    assert_eq!(h["duplicates"], 0, "{h}");
    // The view is the new active controller's state, event for event.
    let theirs = pair.get(second, "/api/v1/state").await;
    let target = theirs["eventId"].as_u64().expect("eventId");
    until(
        "the view to reach the controller's event id",
        20_000,
        || async { (cockpit.last_event_id().await >= target).then_some(()) },
    )
    .await;
    let ours = cockpit.get("/api/v1/state").await;
    assert_eq!(ours["eventId"], theirs["eventId"]);
    assert_eq!(ours["state"], theirs["state"]);
    for k in 0..5 {
        cockpit.order_in(&format!("before-{k}"), "prompting").await;
        cockpit.order_in(&format!("after-{k}"), "prompting").await;
    }
    // The killed controller comes back as the passive one and catches up.
    pair.nodes[first].start();
    until(
        "the old active controller to be passive and caught up",
        30_000,
        || async {
            let h: Value = pair
                .client()
                .get_json(&format!("{}/api/v1/health", pair.nodes[first].url))
                .await
                .ok()?;
            (h["role"] == "passive" && h["lastEventId"].as_u64() >= Some(target)).then_some(())
        },
    )
    .await;
}
