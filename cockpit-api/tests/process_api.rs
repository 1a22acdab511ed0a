//! Every route of the cockpit API against a real controller, and every error code.

mod common;

use common::*;
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<String> {
    list["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_routes_answer_like_the_controller() {
    let controller = Controller::start().await;
    let cockpit = Cockpit::start(&controller).await;

    // Deploy (admin), as JSON files and as one YAML body.
    let d = deploy(&cockpit).await;
    assert!(!d["changes"].as_array().expect("changes").is_empty(), "{d}");
    let r = cockpit
        .client(Some(ADMIN))
        .request(
            "POST".parse().unwrap(),
            &cockpit.url("/api/v1/deploy?name=again.yaml"),
            Some((bytes::Bytes::from(INVENTORY), "application/yaml")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    let bad = cockpit
        .call(
            Some(ADMIN),
            "POST",
            "/api/v1/deploy",
            Some(json!({"files": [{"name": "bad.yaml", "text": "workflow: x\nsteps: [ { run: nope } ]\n"}]})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad = json_of(&bad);
    assert!(
        bad["details"][0].as_str().unwrap().contains("bad.yaml:"),
        "{bad}"
    );

    // Orders: one, and several at once.
    let added = cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "a1", "workflow": "ask", "args": {"who": "ops"}}),
        )
        .await;
    assert_eq!(added["results"][0]["added"], true);
    let again = cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "a1", "workflow": "ask"}),
        )
        .await;
    assert_eq!(again["results"][0]["duplicate"], true);
    let many: Vec<Value> = (2..=6)
        .map(|i| json!({"id": format!("a{i}"), "workflow": "ask"}))
        .chain([
            json!({"id": "l1", "workflow": "locked"}),
            json!({"id": "l2", "workflow": "locked"}),
            json!({"id": "w1", "workflow": "waits"}),
            json!({"id": "r1", "workflow": "remote"}),
            json!({"id": "later", "workflow": "ask", "scheduledFor": "2099-01-01T00:00:00Z"}),
        ])
        .collect();
    cockpit
        .post(ADMIN, "/api/v1/orders", json!({"orders": many}))
        .await;
    let a1 = cockpit.order_in("a1", "prompting").await;
    assert_eq!(a1["stateDetail"], "prompting \"Go on, ops?\"");
    cockpit.order_in("l1", "prompting").await;
    cockpit.order_in("l2", "waiting").await;
    cockpit.order_in("w1", "waiting").await;
    cockpit.caught_up(&controller).await;

    // The order as the controller shows it, plus history.
    let mine = cockpit.get("/api/v1/orders/a1").await;
    let theirs = controller.get("/api/v1/orders/a1").await;
    for (k, v) in theirs.as_object().unwrap() {
        assert_eq!(&mine[k], v, "field {k}");
    }
    assert_eq!(mine["history"][0]["type"], "Added");
    assert_eq!(mine["historyComplete"], true);
    assert!(mine["addedMs"].as_i64().unwrap() > 0);

    // Lists: filters and paging.
    let all = cockpit.get("/api/v1/orders").await;
    assert_eq!(ids(&all).len(), 11);
    assert_eq!(all["next"], Value::Null);
    let prompting = cockpit.get("/api/v1/orders?state=prompting").await;
    assert_eq!(ids(&prompting), ["a1", "a2", "a3", "a4", "a5", "a6", "l1"]);
    let ask = cockpit.get("/api/v1/orders?workflow=ask&limit=4").await;
    assert_eq!(ids(&ask), ["a1", "a2", "a3", "a4"]);
    assert_eq!(ask["next"], "a4");
    let rest = cockpit
        .get("/api/v1/orders?workflow=ask&limit=4&after=a4")
        .await;
    assert_eq!(ids(&rest), ["a5", "a6", "later"]);
    assert_eq!(rest["next"], Value::Null);
    let ghost = cockpit.get("/api/v1/orders?agent=ghost").await;
    assert_eq!(ids(&ghost), ["r1"]);
    let future = cockpit.get("/api/v1/orders?since=4102444800000").await;
    assert!(ids(&future).is_empty());
    let now = ordo_cockpit_api::follow::now_ms();
    let recent = cockpit
        .get(&format!(
            "/api/v1/orders?since={}&until={}",
            now - 600_000,
            now + 1000
        ))
        .await;
    assert_eq!(ids(&recent).len(), 11);
    let fresh = cockpit.get("/api/v1/orders?state=fresh").await;
    assert_eq!(ids(&fresh), ["later"]);

    // Commands.
    let r = cockpit
        .post(
            OPERATOR,
            "/api/v1/orders/a1/answer",
            json!({"vars": {"ok": true}}),
        )
        .await;
    assert_eq!(r["duplicate"], false);
    cockpit.order_in("a1", "finished").await;
    cockpit
        .post(OPERATOR, "/api/v1/orders/a2/suspend", json!({}))
        .await;
    cockpit.order_in("a2", "suspended").await;
    cockpit
        .post(OPERATOR, "/api/v1/orders/a2/resume", json!({}))
        .await;
    cockpit.order_in("a2", "prompting").await;
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders/a3/cancel",
            json!({"kill": "term"}),
        )
        .await;
    cockpit.order_in("a3", "cancelled").await;
    let r = cockpit
        .call(Some(OPERATOR), "DELETE", "/api/v1/orders/a3", None)
        .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    until("a3 to be removed", 10_000, || async {
        (cockpit
            .call(Some(VIEWER), "GET", "/api/v1/orders/a3", None)
            .await
            .status
            == 404)
            .then_some(())
    })
    .await;
    cockpit
        .post(OPERATOR, "/api/v1/orders/later/go", json!({}))
        .await;
    cockpit.order_in("later", "prompting").await;
    cockpit
        .post(OPERATOR, "/api/v1/notices/signals", json!({"key": "go"}))
        .await;
    cockpit.order_in("w1", "prompting").await;
    // Empty bodies are accepted for order commands.
    let r = cockpit
        .client(Some(OPERATOR))
        .request(
            "POST".parse().unwrap(),
            &cockpit.url("/api/v1/orders/l1/answer"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    cockpit.order_in("l1", "finished").await;
    cockpit.order_in("l2", "prompting").await;

    // Inventory views.
    cockpit.caught_up(&controller).await;
    let wfs = cockpit.get("/api/v1/workflows").await;
    let names: Vec<&str> = wfs["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ask", "locked", "remote", "waits"]);
    let remote = cockpit.get("/api/v1/workflows/remote").await;
    assert_eq!(remote["steps"][0]["kind"], "try");
    assert_eq!(
        remote["steps"][0]["blocks"][0]["steps"][0]["agent"],
        "ghost"
    );
    assert_eq!(remote["jobs"]["work"]["agent"], "ghost");
    assert_eq!(remote["jobs"]["work"]["restartable"], true, "{remote}");
    assert_eq!(remote["jobs"]["work"]["restartBudget"], 3, "{remote}");
    assert_eq!(remote["jobs"]["work"]["subagentSelection"], "priority");
    assert_eq!(remote["jobs"]["work"]["subagents"], json!(["g1 (2)", "g2"]));
    let v1 = cockpit.get("/api/v1/workflows/ask?version=1").await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["parameters"]["who"]["required"], false);
    assert_eq!(v1["allowUndeclared"], true, "{v1}");
    let agents = cockpit.get("/api/v1/agents").await;
    assert_eq!(agents["agents"][0]["id"], "ghost");
    assert_eq!(agents["agents"][0]["orders"], 1);
    assert_eq!(agents["agents"][0]["connected"], false);
    let locks = cockpit.get("/api/v1/locks").await;
    assert_eq!(locks["locks"][0]["name"], "gate");
    assert_eq!(locks["locks"][0]["holders"][0]["order"], "l2");
    let boards = cockpit.get("/api/v1/boards").await;
    assert_eq!(boards["boards"][0]["notices"][0]["key"], "go");
    let overview = cockpit.get("/api/v1/overview").await;
    assert_eq!(overview["counts"]["finished"], 2);
    assert_eq!(overview["total"], 10);

    // Snapshot and state are the controller's.
    let mine = cockpit.get("/api/v1/state").await;
    let theirs = controller.get("/api/v1/state").await;
    assert_eq!(mine, theirs);
    let mut mine = cockpit.get("/api/v1/snapshot").await;
    let mut theirs = controller.get("/api/v1/snapshot").await;
    assert_eq!(mine["eventId"], theirs["eventId"]);
    for k in ["orders", "workflows", "agents", "locks", "boards"] {
        assert_eq!(mine[k].take(), theirs[k].take(), "snapshot {k}");
    }

    // Log (proxied) and events (long poll, stream, WebSocket).
    let log = cockpit
        .call(Some(VIEWER), "GET", "/api/v1/orders/a1/log", None)
        .await;
    assert_eq!(log.status, 200);
    assert_eq!(text(&log), "");
    let events = cockpit
        .call(
            Some(VIEWER),
            "GET",
            "/api/v1/events?after=0&timeout=100",
            None,
        )
        .await;
    assert_eq!(events.status, 200);
    let lines: Vec<Value> = text(&events)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 20);
    let third = lines[2]["eventId"].as_u64().unwrap();
    let after = cockpit
        .call(
            Some(VIEWER),
            "GET",
            &format!("/api/v1/events?after={third}&timeout=100"),
            None,
        )
        .await;
    let first_after: Value = serde_json::from_str(text(&after).lines().next().unwrap()).unwrap();
    assert_eq!(first_after, lines[3]);
    let streamed = cockpit
        .call(
            Some(VIEWER),
            "GET",
            &format!("/api/v1/events?after={third}&timeout=300&stream=true"),
            None,
        )
        .await;
    assert_eq!(streamed.status, 200);
    assert_eq!(text(&streamed).lines().count(), lines.len() - 3);
    let mut ws = ws(
        &cockpit,
        &format!("/api/v1/events/ws?after={third}"),
        Some(VIEWER),
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws, 5000).await.unwrap(), lines[3]);
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "live1", "workflow": "ask"}),
        )
        .await;
    let mut saw = false;
    for _ in 0..200 {
        match next_json(&mut ws, 5000).await {
            Some(e) if e["key"] == "live1" => {
                saw = true;
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(saw, "the WebSocket did not carry the new order");
    let _ = ws.close(None).await;
    // A browser passes its token as access_token.
    let mut ws2 = common::ws(
        &cockpit,
        &format!("/api/v1/events/ws?after={third}&access_token={VIEWER}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws2, 5000).await.unwrap(), lines[3]);

    // The log stream of a finished order ends at once; of a live one it stays open.
    let mut lw = common::ws(&cockpit, "/api/v1/orders/a1/log/ws", Some(VIEWER))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut lw, 5000).await.unwrap(),
        json!({"type": "End", "state": "finished"})
    );
    let mut lw = common::ws(&cockpit, "/api/v1/orders/a4/log/ws", Some(VIEWER))
        .await
        .unwrap();
    cockpit
        .post(OPERATOR, "/api/v1/orders/a4/cancel", json!({}))
        .await;
    assert_eq!(
        next_json(&mut lw, 5000).await.unwrap(),
        json!({"type": "End", "state": "cancelled"})
    );

    // Health and metrics.
    let h: Value = cockpit
        .client(None)
        .get_json(&cockpit.url("/health"))
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["following"], true);
    assert_eq!(h["controller"], controller.url.as_str());
    assert_eq!(h["clusterId"], "main");
    assert!(h["lagMs"].as_i64().is_some());
    let me = cockpit.get("/api/v1/whoami").await;
    assert_eq!(me, json!({"name": "vera", "role": "viewer"}));
    let m = cockpit.call(None, "GET", "/metrics", None).await;
    assert_eq!(m.status, 200);
    let m = text(&m);
    for needle in [
        "ordo_cockpit_orders{state=\"prompting\"}",
        "ordo_cockpit_agent_links_connected 0",
        "ordo_cockpit_agents_deployed 1",
        "ordo_cockpit_following 1",
        "ordo_cockpit_event_lag_seconds_bucket",
        "ordo_cockpit_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/orders\",status=\"200\"}",
    ] {
        assert!(m.contains(needle), "{needle} not in metrics:\n{m}");
    }

    // The UI.
    let page = cockpit.call(None, "GET", "/", None).await;
    assert_eq!(page.status, 200);
    assert!(text(&page).contains("Ordo"));
    for asset in ["/ui/app.js", "/ui/app.css"] {
        assert_eq!(
            cockpit.call(None, "GET", asset, None).await.status,
            200,
            "{asset}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_every_error_code() {
    let mut controller = Controller::start().await;
    let cockpit = Cockpit::start(&controller).await;
    deploy(&cockpit).await;
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "e1", "workflow": "ask"}),
        )
        .await;
    cockpit.order_in("e1", "prompting").await;

    let status = |r: ordo_net::client::HttpResponse| {
        let body = json_of(&r);
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        (
            r.status.as_u16(),
            body["error"].as_str().unwrap().to_owned(),
        )
    };
    // 401: no token, unknown token, on reads, commands and WebSockets.
    for (method, path) in [
        ("GET", "/api/v1/orders"),
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/state"),
        ("POST", "/api/v1/deploy"),
    ] {
        let (s, e) = status(cockpit.call(None, method, path, Some(json!({}))).await);
        assert_eq!(s, 401, "{method} {path}");
        assert!(e.contains("missing token"), "{e}");
        let (s, e) = status(
            cockpit
                .call(Some("nope"), method, path, Some(json!({})))
                .await,
        );
        assert_eq!(s, 401);
        assert!(e.contains("unknown token"), "{e}");
    }
    match ws(&cockpit, "/api/v1/events/ws", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    match ws(&cockpit, "/api/v1/events/ws?access_token=nope", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // 403: a viewer may not act; an operator may not deploy.
    let (s, e) = status(
        cockpit
            .call(
                Some(VIEWER),
                "POST",
                "/api/v1/orders/e1/cancel",
                Some(json!({})),
            )
            .await,
    );
    assert_eq!(s, 403);
    assert!(e.contains("operator") && e.contains("vera"), "{e}");
    for (method, path) in [
        ("POST", "/api/v1/orders"),
        ("DELETE", "/api/v1/orders/e1"),
        ("POST", "/api/v1/notices/signals"),
        ("POST", "/api/v1/orders/e1/answer"),
    ] {
        assert_eq!(
            status(
                cockpit
                    .call(Some(VIEWER), method, path, Some(json!({})))
                    .await
            )
            .0,
            403,
            "{method} {path}"
        );
    }
    let (s, e) = status(
        cockpit
            .call(
                Some(OPERATOR),
                "POST",
                "/api/v1/deploy",
                Some(json!({"files": []})),
            )
            .await,
    );
    assert_eq!(s, 403);
    assert!(e.contains("admin"), "{e}");
    // 413: larger than request_bytes_max (64 KiB here).
    let big = json!({"id": "big", "workflow": "ask", "args": {"x": "y".repeat(70_000)}});
    let (s, e) = status(
        cockpit
            .call(Some(OPERATOR), "POST", "/api/v1/orders", Some(big))
            .await,
    );
    assert_eq!(s, 413);
    assert!(e.contains("65536"), "{e}");
    // 400: bodies and parameters that do not parse, with the reason.
    let r = cockpit
        .client(Some(OPERATOR))
        .request(
            "POST".parse().unwrap(),
            &cockpit.url("/api/v1/orders"),
            Some((bytes::Bytes::from_static(b"{\"id\": "), "application/json")),
        )
        .await
        .unwrap();
    let (s, e) = status(r);
    assert_eq!(s, 400);
    assert!(e.contains("bad JSON body"), "{e}");
    let (s, e) = status(
        cockpit
            .call(
                Some(OPERATOR),
                "POST",
                "/api/v1/orders",
                Some(json!({"id": "x y", "workflow": "ask"})),
            )
            .await,
    );
    assert_eq!(s, 400);
    assert!(e.contains("x y"), "{e}");
    // A bulk resume's filter is an object of named fields, with a resumable state.
    for (body, says) in [
        (json!([null, null]), "must be a JSON object"),
        (json!({"state": "finished"}), "cannot be resumed"),
        (json!({"workflow": 1}), "bad JSON body"),
        (json!({"sate": "failed"}), "unknown field"),
    ] {
        let (s, e) = status(
            cockpit
                .call(Some(OPERATOR), "POST", "/api/v1/bulk/resume", Some(body))
                .await,
        );
        assert_eq!(s, 400);
        assert!(e.contains(says), "{e}");
    }
    let (s, e) = status(
        cockpit
            .call(
                Some(OPERATOR),
                "POST",
                "/api/v1/orders/e1/cancel",
                Some(json!({"kill": "softly"})),
            )
            .await,
    );
    assert_eq!(s, 400);
    assert!(e.contains("softly"), "{e}");
    let (s, e) = status(
        cockpit
            .call(Some(VIEWER), "GET", "/api/v1/orders?state=happy", None)
            .await,
    );
    assert_eq!(s, 400);
    assert!(e.contains("happy") && e.contains("prompting"), "{e}");
    let (s, e) = status(
        cockpit
            .call(Some(VIEWER), "GET", "/api/v1/orders?limit=many", None)
            .await,
    );
    assert_eq!(s, 400);
    assert!(e.contains("limit"), "{e}");
    let (s, e) = status(
        cockpit
            .call(Some(VIEWER), "GET", "/api/v1/orders?colour=red", None)
            .await,
    );
    assert_eq!(s, 400);
    assert!(e.contains("colour"), "{e}");
    // An empty range is no error: nothing was added in it.
    let r = cockpit
        .call(Some(VIEWER), "GET", "/api/v1/orders?since=5&until=1", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["orders"], json!([]));
    let (s, e) = status(
        cockpit
            .call(Some(VIEWER), "GET", "/api/v1/orders/bad%20id", None)
            .await,
    );
    assert_eq!(s, 400);
    assert!(e.contains("bad id"), "{e}");
    let (s, e) = status(
        cockpit
            .call(Some(VIEWER), "GET", "/api/v1/events/ws", None)
            .await,
    );
    assert_eq!(s, 400);
    assert!(e.contains("WebSocket"), "{e}");
    // 404: unknown orders, workflows, versions and routes.
    assert_eq!(
        status(
            cockpit
                .call(Some(VIEWER), "GET", "/api/v1/orders/nope", None)
                .await
        )
        .0,
        404
    );
    assert_eq!(
        status(
            cockpit
                .call(
                    Some(OPERATOR),
                    "POST",
                    "/api/v1/orders/nope/cancel",
                    Some(json!({}))
                )
                .await
        )
        .0,
        404
    );
    assert_eq!(
        status(
            cockpit
                .call(Some(VIEWER), "GET", "/api/v1/workflows/nope", None)
                .await
        )
        .0,
        404
    );
    assert_eq!(
        status(
            cockpit
                .call(Some(VIEWER), "GET", "/api/v1/workflows/ask?version=9", None)
                .await
        )
        .0,
        404
    );
    assert_eq!(
        status(
            cockpit
                .call(Some(VIEWER), "GET", "/api/v1/nothing", None)
                .await
        )
        .0,
        404
    );
    assert_eq!(
        status(
            cockpit
                .call(
                    Some(OPERATOR),
                    "POST",
                    "/api/v1/orders/e1/explode",
                    Some(json!({}))
                )
                .await
        )
        .0,
        404
    );
    assert_eq!(
        status(cockpit.call(None, "GET", "/ui/other.js", None).await).0,
        404
    );
    match ws(&cockpit, "/api/v1/orders/nope/log/ws", Some(VIEWER)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
    // 409: the controller refuses a command the order's state does not allow.
    let (s, _) = status(
        cockpit
            .call(Some(OPERATOR), "DELETE", "/api/v1/orders/e1", None)
            .await,
    );
    assert_eq!(s, 409);
    // An id before the first event, with nothing released: every event follows it (410 for
    // released positions: process_limits.rs).
    let r = cockpit
        .call(
            Some(VIEWER),
            "GET",
            "/api/v1/events?after=1&timeout=10",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(text(&r).contains("\"eventId\":65536"), "{}", text(&r));

    // 502: the controller is gone; reads still answer from the view.
    controller.stop().await;
    let (s, e) = status(
        cockpit
            .call(
                Some(OPERATOR),
                "POST",
                "/api/v1/orders/e1/answer",
                Some(json!({})),
            )
            .await,
    );
    assert_eq!(s, 502);
    assert!(e.contains("cannot be reached"), "{e}");
    let (s, _) = status(
        cockpit
            .call(Some(VIEWER), "GET", "/api/v1/orders/e1/log", None)
            .await,
    );
    assert_eq!(s, 502);
    match ws(&cockpit, "/api/v1/events/ws", Some(VIEWER)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 502),
        other => panic!("expected 502, got {:?}", other.map(|_| ())),
    }
    assert_eq!(cockpit.get("/api/v1/orders/e1").await["state"], "prompting");
    let h = until("the cockpit to notice", 10_000, || async {
        let h = cockpit.get("/api/v1/health").await;
        (h["status"] == "degraded").then_some(h)
    })
    .await;
    assert_eq!(h["following"], false);
    assert!(h["lastError"].as_str().is_some());
    // Agents still answer, without link status.
    let agents = cockpit.get("/api/v1/agents").await;
    assert_eq!(agents["agents"][0]["id"], "ghost");
}
