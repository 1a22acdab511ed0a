//! Limits between the controller and the cockpit: an event larger than the cockpit takes
//! makes its health say so; released event positions get 410; conventions every route keeps
//! (the token scheme in any case, JSON errors).

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_an_event_over_the_frame_limit_makes_health_stuck_with_the_reason() {
    let controller = Controller::start().await;
    let config = cockpit_config(std::slice::from_ref(&controller.url), controller.ca(), "")
        .replace("[limits]\n", "[limits]\nframe_bytes_max = 32768\n");
    let cockpit = Cockpit::start_text(config, None).await;
    deploy(&cockpit).await;
    // The controller streams larger events than this cockpit takes: a warning at once.
    let health = cockpit.get("/api/v1/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(
        health["warning"]
            .as_str()
            .is_some_and(|w| w.contains("frame_bytes_max")),
        "{health}"
    );
    // An order whose Added event is about 40 KB (two values of 20,000 bytes, within the
    // controller's order-input limits), added at the controller directly.
    let big = "x".repeat(20_000);
    let added: Value = controller
        .client()
        .post_json(
            &format!("{}/api/v1/orders", controller.url),
            &json!({"id": "big", "workflow": "ask", "args": {"who": big, "what": big}}),
        )
        .await
        .expect("the controller takes the order");
    let at = added["lastEventId"].as_u64().expect("lastEventId");
    // The cockpit cannot take that event: its health turns 503 and says why.
    let http = cockpit.client(None);
    let url = cockpit.url("/health");
    let (status, health) = until("the cockpit to say it is stuck", 30_000, || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .request(axum::http::Method::GET, &url, None)
                .await
                .ok()?;
            let h: Value = serde_json::from_slice(&r.body).ok()?;
            (h["status"] == "stuck").then_some((r.status.as_u16(), h))
        }
    })
    .await;
    assert_eq!(status, 503, "{health}");
    let reason = health["reason"].as_str().unwrap_or_default();
    let view_at = health["lastEventId"].as_u64().expect("lastEventId");
    assert!(view_at < at, "{health}");
    assert!(
        reason.contains(&format!("the event after {view_at} is ")),
        "{health}"
    );
    assert!(reason.contains("frame_bytes_max (32768 bytes)"), "{health}");
    // The same through the API, with a token.
    let r = cockpit
        .call(Some(VIEWER), "GET", "/api/v1/health", None)
        .await;
    assert_eq!(r.status, 503, "{}", text(&r));

    // A cockpit that takes what the controller streams (the default) has the order.
    let fine = Cockpit::start(&controller).await;
    fine.order_in("big", "prompting").await;
    assert!(fine.get("/health").await["warning"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_any_token_scheme_case_and_json_errors_everywhere() {
    let controller = Controller::start().await;
    let cockpit = Cockpit::start(&controller).await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let http = cockpit
            .client(None)
            .with_authorization(&format!("{scheme} {VIEWER}"))
            .expect("header");
        let r = http
            .request(
                axum::http::Method::GET,
                &cockpit.url("/api/v1/whoami"),
                None,
            )
            .await
            .expect("whoami");
        assert_eq!(r.status, 200, "{scheme}: {}", text(&r));
    }
    // A method the route does not have, a query that does not parse: JSON errors.
    for (method, path, status) in [
        ("PUT", "/api/v1/orders", 405),
        ("DELETE", "/api/v1/whoami", 405),
        ("GET", "/api/v1/events?after=x", 400),
        ("GET", "/api/v1/workflows/w?version=-1", 400),
    ] {
        let r = cockpit.call(Some(ADMIN), method, path, None).await;
        assert_eq!(r.status, status, "{method} {path}: {}", text(&r));
        let j: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", text(&r)));
        assert!(j["error"].is_string(), "{method} {path}: {j}");
    }
    // An unknown state is refused by the cockpit and the controller alike.
    let r = cockpit
        .call(Some(VIEWER), "GET", "/api/v1/orders?state=bogus", None)
        .await;
    assert_eq!(r.status, 400, "{}", text(&r));
    let direct = controller
        .client()
        .request(
            axum::http::Method::GET,
            &format!("{}/api/v1/orders?state=bogus", controller.url),
            None,
        )
        .await
        .expect("controller");
    assert_eq!(direct.status, 400, "{}", text(&direct));
    assert_eq!(text(&r), text(&direct));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_released_positions_get_410_and_others_do_not() {
    // Small segments, frequent snapshots and a short event retention release old events.
    let controller = Controller::start_with_limits(
        "segment_bytes_max = 2048\nsnapshot_events = 20\n[retention]\nevents_ms = 300",
    )
    .await;
    let cockpit = Cockpit::start(&controller).await;
    deploy(&cockpit).await;
    let first = cockpit.last_event_id().await;
    let status = |r: &ordo_net::client::HttpResponse| r.status.as_u16();
    let mut answer = None;
    for round in 0..200 {
        let orders: Vec<Value> = (0..10)
            .map(|i| json!({"id": format!("r{round}-{i}"), "workflow": "ask"}))
            .collect();
        cockpit
            .post(OPERATOR, "/api/v1/orders", json!({ "orders": orders }))
            .await;
        let r = cockpit
            .call(
                Some(VIEWER),
                "GET",
                &format!("/api/v1/events?after={first}&timeout=10"),
                None,
            )
            .await;
        if status(&r) == 410 {
            answer = Some(text(&r));
            break;
        }
    }
    let answer = answer.expect("an old position is answered with 410 once released");
    assert!(answer.contains("reload the snapshot"), "{answer}");
    match ws(
        &cockpit,
        &format!("/api/v1/events/ws?after={first}"),
        Some(VIEWER),
    )
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 410),
        other => panic!("expected 410, got {:?}", other.map(|_| ())),
    }
    // The oldest kept position, and 0 (from the oldest kept), are served.
    let snapshot = cockpit.get("/api/v1/snapshot").await;
    let at = snapshot["eventId"].as_u64().expect("eventId");
    for after in [0, at] {
        let r = cockpit
            .call(
                Some(VIEWER),
                "GET",
                &format!("/api/v1/events?after={after}&timeout=10"),
                None,
            )
            .await;
        assert_eq!(status(&r), 200, "after={after}: {}", text(&r));
    }
}
