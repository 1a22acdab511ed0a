//! The OpenAPI document against the routes served; a cockpit started (or restarted) in the
//! middle of a run builds the same view; following survives a controller restart and a
//! dead controller in the list; HTTPS serving.

mod common;

use common::*;
use serde_json::{Value, json};

/// Every route the cockpit serves, as the OpenAPI document must list it.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/whoami"),
    ("get", "/api/v1/overview"),
    ("post", "/api/v1/deploy"),
    ("post", "/api/v1/bulk/resume"),
    ("get", "/api/v1/orders"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders/{id}"),
    ("delete", "/api/v1/orders/{id}"),
    ("get", "/api/v1/orders/{id}/log"),
    ("get", "/api/v1/orders/{id}/log/ws"),
    ("post", "/api/v1/orders/{id}/cancel"),
    ("post", "/api/v1/orders/{id}/suspend"),
    ("post", "/api/v1/orders/{id}/resume"),
    ("post", "/api/v1/orders/{id}/answer"),
    ("post", "/api/v1/orders/{id}/go"),
    ("post", "/api/v1/notices/{board}"),
    ("get", "/api/v1/workflows"),
    ("get", "/api/v1/workflows/{name}"),
    ("get", "/api/v1/agents"),
    ("post", "/api/v1/agents/join-tokens"),
    ("post", "/api/v1/agents/{agent}/subagents/{subagent}/remove"),
    ("get", "/api/v1/queues"),
    ("get", "/api/v1/plan"),
    ("post", "/api/v1/plan/orders/{id}/skip"),
    ("post", "/api/v1/plan/schedules/{name}/pause"),
    ("post", "/api/v1/plan/schedules/{name}/resume"),
    ("get", "/api/v1/plan/explain"),
    ("post", "/api/v1/plan/dates/{date}/cancel"),
    ("post", "/api/v1/plan/schedules/{name}/backfill"),
    ("get", "/api/v1/locks"),
    ("get", "/api/v1/boards"),
    ("get", "/api/v1/snapshot"),
    ("get", "/api/v1/state"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/events/ws"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/cluster"),
    ("post", "/api/v1/cluster/switchover"),
    ("post", "/api/v1/cluster/nodes"),
    ("delete", "/api/v1/cluster/nodes/{id}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_openapi_documents_every_route() {
    let controller = Controller::start().await;
    let cockpit = Cockpit::start(&controller).await;
    deploy(&cockpit).await;
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "o1", "workflow": "ask"}),
        )
        .await;
    cockpit.order_in("o1", "prompting").await;

    let doc = cockpit
        .call(None, "GET", "/api/v1/openapi.json", None)
        .await;
    assert_eq!(doc.status, 200);
    let doc = json_of(&doc);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "delete", "put", "patch"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);

    // Every documented body schema resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "OrderView",
        "OrderDetail",
        "OrderList",
        "Health",
        "StepJson",
        "AgentList",
        "PlanView",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let text = doc.to_string();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("#/components/schemas/") {
        rest = &rest[i + 21..];
        let name: String = rest.chars().take_while(|c| *c != '"').collect();
        assert!(schemas.contains_key(&name), "dangling $ref {name}");
    }

    // Each documented route is served: without a token it is 401 (under /api/v1) or 200;
    // with the admin's token it is never "no such route" or 405.
    for (method, path) in &expected {
        let concrete = path
            .replace("{id}", "o1")
            .replace("{name}", "ask")
            .replace("{board}", "signals")
            .replace("{date}", "2026-06-01");
        let m = method.to_uppercase();
        let anon = cockpit.call(None, &m, &concrete, None).await;
        let public = !concrete.starts_with("/api/v1/") || concrete == "/api/v1/openapi.json";
        let want = if public { 200 } else { 401 };
        assert_eq!(
            anon.status,
            want,
            "{m} {concrete} without a token: {}",
            text_of(&anon)
        );
        let body = (m == "POST").then(|| json!({}));
        let r = cockpit.call(Some(ADMIN), &m, &concrete, body).await;
        assert_ne!(r.status, 405, "{m} {concrete}");
        assert!(
            !(r.status == 404 && text_of(&r).contains("no such route")),
            "{m} {concrete} is not served"
        );
        // Every JSON answer is plain JSON: unset fields left out, never `null`, and no
        // Rust enum shapes such as `{"String": "x"}`.
        if m == "GET"
            && concrete != "/api/v1/openapi.json"
            && r.status.is_success()
            && let Ok(v) = serde_json::from_slice::<Value>(&r.body)
        {
            plain_json(&v, &format!("{m} {concrete}"));
        }
        // Every JSON error body has the documented shape.
        if !r.status.is_success()
            && let Ok(v) = serde_json::from_slice::<Value>(&r.body)
        {
            assert!(v["error"].is_string(), "{m} {concrete}: {v}");
        }
    }
}

/// Panics at a `null` or at an object shaped like a Rust enum (`{"String": …}`).
fn plain_json(v: &Value, at: &str) {
    const RUST_SHAPES: &[&str] = &[
        "String",
        "Number",
        "Bool",
        "List",
        "Map",
        "Controller",
        "Agent",
        "Some",
        "None",
    ];
    match v {
        Value::Null => panic!("{at}: a null value"),
        Value::Array(items) => items.iter().for_each(|i| plain_json(i, at)),
        Value::Object(map) => {
            if map.len() == 1
                && let Some(k) = map.keys().next()
            {
                assert!(
                    !RUST_SHAPES.contains(&k.as_str()),
                    "{at}: a Rust enum shape {v}"
                );
            }
            for (k, value) in map {
                plain_json(value, &format!("{at} .{k}"));
            }
        }
        _ => {}
    }
}

fn text_of(r: &ordo_net::client::HttpResponse) -> String {
    text(r)
}

/// What a view shows, for comparison between cockpits.
async fn view_of(cockpit: &Cockpit) -> Value {
    let mut out = json!({});
    for path in [
        "/api/v1/state",
        "/api/v1/snapshot",
        "/api/v1/overview",
        "/api/v1/orders?limit=100",
        "/api/v1/orders?state=prompting",
        "/api/v1/workflows",
        "/api/v1/workflows/remote",
        "/api/v1/locks",
        "/api/v1/boards",
    ] {
        out[path] = cockpit.get(path).await;
    }
    let ids: Vec<String> = out["/api/v1/orders?limit=100"]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    for id in ids {
        let path = format!("/api/v1/orders/{}", id.replace('|', "%7C"));
        out[&path] = cockpit.get(&path).await;
    }
    out
}

async fn add(cockpit: &Cockpit, id: &str, workflow: &str) {
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": id, "workflow": workflow}),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_a_cockpit_started_mid_run_builds_the_same_view() {
    let controller = Controller::start().await;
    let first = Cockpit::start(&controller).await;
    deploy(&first).await;
    for i in 0..12 {
        add(
            &first,
            &format!("p{i}"),
            if i % 3 == 0 { "locked" } else { "ask" },
        )
        .await;
    }
    add(&first, "r1", "remote").await;
    add(&first, "w1", "waits").await;
    first.order_in("p11", "prompting").await;
    for i in [1, 2, 4] {
        first
            .post(OPERATOR, &format!("/api/v1/orders/p{i}/answer"), json!({}))
            .await;
    }
    first
        .post(OPERATOR, "/api/v1/orders/p5/cancel", json!({}))
        .await;
    first
        .post(OPERATOR, "/api/v1/orders/p0/answer", json!({}))
        .await;
    first.order_in("p5", "cancelled").await;

    // A second cockpit joins now; the run goes on.
    let second = Cockpit::start(&controller).await;
    first
        .post(OPERATOR, "/api/v1/notices/signals", json!({"key": "go"}))
        .await;
    first
        .post(OPERATOR, "/api/v1/orders/p7/suspend", json!({}))
        .await;
    first.order_in("p3", "prompting").await;
    first
        .post(OPERATOR, "/api/v1/orders/p3/answer", json!({}))
        .await;
    first
        .call(Some(OPERATOR), "DELETE", "/api/v1/orders/p1", None)
        .await;
    add(&first, "late", "ask").await;
    second.order_in("late", "prompting").await;
    first.caught_up(&controller).await;
    second.caught_up(&controller).await;
    let a = view_of(&first).await;
    let b = view_of(&second).await;
    assert_eq!(a, b, "the views differ");
    assert_eq!(a["/api/v1/orders/p2"]["historyComplete"], true);
    assert_eq!(a["/api/v1/orders/p2"]["history"][0]["type"], "Added");
    assert_eq!(a["/api/v1/orders/p2"]["state"], "finished");
    assert_eq!(a["/api/v1/state"], controller.get("/api/v1/state").await);

    // The first is restarted while orders move; it comes back to the same view.
    let mut first = first;
    first.stop().await;
    second.order_in("p6", "prompting").await;
    second
        .post(OPERATOR, "/api/v1/orders/p6/answer", json!({}))
        .await;
    add(&second, "during", "ask").await;
    let first = Cockpit::start(&controller).await;
    add(&second, "after", "locked").await;
    second
        .post(OPERATOR, "/api/v1/orders/p7/resume", json!({}))
        .await;
    first.order_in("after", "waiting").await;
    first.caught_up(&controller).await;
    second.caught_up(&controller).await;
    assert_eq!(
        view_of(&first).await,
        view_of(&second).await,
        "the restarted view differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_following_resumes_after_the_controller_restarts() {
    let mut controller = Controller::start().await;
    // The first URL of the list is dead: the cockpit goes on to the next (round robin).
    let dead = format!("https://127.0.0.1:{}", free_port());
    let cockpit = Cockpit::start_with(
        &[dead.clone(), controller.url.clone()],
        controller.ca(),
        "",
        None,
    )
    .await;
    let h = cockpit.get("/api/v1/health").await;
    assert_eq!(h["controller"], controller.url.as_str());
    deploy(&cockpit).await;
    for i in 0..5 {
        add(&cockpit, &format!("b{i}"), "ask").await;
    }
    cockpit.order_in("b4", "prompting").await;
    let before = cockpit.get("/api/v1/health").await;

    controller.stop().await;
    until(
        "the cockpit to notice the controller is gone",
        15_000,
        || async { (cockpit.get("/api/v1/health").await["following"] == false).then_some(()) },
    )
    .await;
    // While it is gone the view still answers.
    assert_eq!(cockpit.get("/api/v1/orders/b3").await["state"], "prompting");

    controller.restart().await;
    cockpit.wait_following().await;
    for i in 5..8 {
        add(&cockpit, &format!("b{i}"), "ask").await;
    }
    cockpit
        .post(OPERATOR, "/api/v1/orders/b0/answer", json!({}))
        .await;
    cockpit.order_in("b0", "finished").await;
    cockpit.order_in("b7", "prompting").await;
    cockpit.caught_up(&controller).await;
    let after = cockpit.get("/api/v1/health").await;
    assert!(after["reconnects"].as_u64().unwrap() > before["reconnects"].as_u64().unwrap());
    assert_eq!(after["duplicates"], 0);
    // No gap, no duplicate: the folded state is the controller's.
    assert_eq!(
        cockpit.get("/api/v1/state").await,
        controller.get("/api/v1/state").await
    );
    // And it is the same view a fresh cockpit builds.
    let fresh = Cockpit::start(&controller).await;
    fresh.caught_up(&controller).await;
    assert_eq!(view_of(&fresh).await, view_of(&cockpit).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_serves_https_when_configured() {
    let controller = Controller::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = ordo_net::certs::TestPki::new("main").unwrap();
    let pair = pki
        .issue(
            "cockpit",
            &ordo_net::certs::IssueSpec::local(Vec::<String>::new()),
        )
        .unwrap();
    std::fs::write(dir.path().join("cockpit.pem"), &pair.cert_pem).unwrap();
    std::fs::write(dir.path().join("cockpit.key"), &pair.key_pem).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    // [tls] has to come after the top-level keys, so it is appended by hand.
    let extra = "";
    let mut text = cockpit_config(
        std::slice::from_ref(&controller.url),
        controller.ca(),
        extra,
    );
    text.push_str(&format!(
        "[tls]\ncertificate = {:?}\nkey = {:?}\n",
        dir.path().join("cockpit.pem").display().to_string(),
        dir.path().join("cockpit.key").display().to_string()
    ));
    let config = ordo_cockpit_api::config::Config::parse(&text, dir.path()).unwrap();
    assert!(config.tls.is_some());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ordo_cockpit_api::run_on(listener, config, async {
        let _ = rx.await;
    }));
    let tls =
        ordo_net::tls::client_config(&ordo_net::tls::CaBundle::from_pem_file(&ca).unwrap(), None)
            .unwrap();
    let http = ordo_net::client::HttpsClient::new(tls, Default::default())
        .with_bearer(VIEWER)
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/api/v1/health");
    let h: Value = until("the cockpit over HTTPS", 20_000, || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let h: Value = http.get_json(&url).await.ok()?;
            (h["status"] == "ok").then_some(h)
        }
    })
    .await;
    assert_eq!(h["role"], "cockpit");
    // Plain HTTP is not answered on a TLS port.
    let plain = ordo_net::client::HttpsClient::new(
        ordo_net::tls::client_config(&ordo_net::tls::CaBundle::from_pem_file(&ca).unwrap(), None)
            .unwrap(),
        ordo_net::client::HttpsClientOptions {
            allow_plain_http: true,
            request_timeout_ms: 3000,
            ..Default::default()
        },
    );
    assert!(
        plain
            .get_json::<Value>(&format!("http://127.0.0.1:{port}/health"))
            .await
            .is_err()
    );
    let _ = tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(15), task).await;
}
