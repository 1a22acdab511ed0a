//! End-to-end: a real controller and real agents, as separate processes of this build.

use anyhow::Result;
use ordo_tests::history::History;
use ordo_tests::{Cluster, ENDED};
use serde_json::{Value as Json, json};
use std::time::Duration;

fn one_job(name: &str, agent: &str, script: &str) -> String {
    format!(
        "workflow: {name}\njobs:\n  job: {{ agent: {agent}, script: {script:?}, restartable: false }}\nsteps:\n  - run: job\n"
    )
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn orders_of(workflow: &str, ids: &[String]) -> Vec<Json> {
    ids.iter()
        .map(|id| json!({"id": id, "workflow": workflow}))
        .collect()
}

async fn started(agents: &[&str]) -> Result<Cluster> {
    let mut c = Cluster::new(agents)?;
    c.start_controller().await?;
    for a in agents {
        c.start_agent(a)?;
    }
    Ok(c)
}

#[tokio::test]
async fn process_a_thousand_orders_of_a_one_job_workflow_finish() -> Result<()> {
    let c = started(&["a1"]).await?;
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("w.yaml", one_job("trivial", "a1", "true")),
    ])
    .await?;
    let ids = ids("o", 1000);
    let answer = c.add_orders(&orders_of("trivial", &ids)).await?;
    assert_eq!(answer["results"].as_array().map(Vec::len), Some(1000));
    let done = c.wait_states(&ids, ENDED, Duration::from_secs(120)).await?;
    assert!(done.iter().all(|o| o["state"] == "finished"), "{done:?}");
    let history = History::from_events(&c.events(0).await?);
    assert!(history.lost(&ids).is_empty());
    assert!(
        history.duplicated(1).is_empty(),
        "{:?}",
        history.duplicated(1)
    );
    assert!(history.unexpected.is_empty(), "{:?}", history.unexpected);
    // Re-adding the same ids is idempotent.
    let again = c.add_orders(&orders_of("trivial", &ids[..10])).await?;
    assert!(
        again["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["duplicate"] == true)
    );
    Ok(())
}

#[tokio::test]
async fn process_every_example_workflow_runs_to_its_end() -> Result<()> {
    let c = started(&["local", "second"]).await?;
    let mut files = vec![];
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples"))? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "agents.yaml" {
            continue;
        }
        files.push((
            Box::leak(name.into_boxed_str()) as &str,
            std::fs::read_to_string(&path)?,
        ));
    }
    files.push((
        "agents.yaml",
        format!("{}---\n{}", c.agent_yaml("local")?, c.agent_yaml("second")?),
    ));
    // A job on a second agent, between two jobs on the first.
    files.push((
        "two-agents.yaml",
        "workflow: two-agents\njobs:\n  a: { agent: local, script: 'echo one' }\n  b: { agent: second, script: 'echo two' }\nsteps:\n  - run: a\n  - run: b\n  - run: a\n".into(),
    ));
    c.deploy(&files).await?;
    let all: Vec<Json> = vec![
        json!({"id": "ex-hello", "workflow": "hello"}),
        json!({"id": "ex-report", "workflow": "daily-report", "args": {"day": "2026-11-23"}}),
        json!({"id": "ex-etl", "workflow": "nightly-etl", "args": {"day": "2026-11-23"}}),
        json!({"id": "ex-maintenance", "workflow": "db-maintenance"}),
        json!({"id": "ex-replica", "workflow": "replica-report"}),
        json!({"id": "ex-two-agents", "workflow": "two-agents"}),
        json!({"id": "ex-approval", "workflow": "release", "args": {"version": "1.4.2"}}),
        json!({"id": "ex-close", "workflow": "month-close", "args": {"month": "2026-11"}}),
        json!({"id": "ex-invoices", "workflow": "invoices-import", "args": {"month": "2026-11"}}),
        json!({"id": "ex-payments", "workflow": "payments-import", "args": {"month": "2026-11"}}),
        json!({"id": "ex-poll", "workflow": "inbox-poll"}),
        json!({"id": "ex-data", "workflow": "database-sizes"}),
        json!({"id": "ex-batch", "workflow": "nightly-batch", "args": {"day": "2026-11-23"}, "priority": 10}),
        json!({"id": "ex-retries", "workflow": "flaky-fetch"}),
    ];
    c.add_orders(&all).await?;
    let approval = vec!["ex-approval".to_owned()];
    let prompting = c
        .wait_states(&approval, &["prompting"], Duration::from_secs(60))
        .await?;
    assert_eq!(prompting[0]["state"], "prompting");
    c.post(
        "/orders/ex-approval/answer",
        &json!({"vars": {"approved": true}}),
    )
    .await?;
    let ids: Vec<String> = all
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    let done = c.wait_states(&ids, ENDED, Duration::from_secs(120)).await?;
    for o in &done {
        assert_eq!(o["state"], "finished", "{o}\n{}", c.logs());
    }
    let log = log_of(&c, "ex-two-agents").await?;
    assert!(log.contains("one") && log.contains("two"), "{log}");
    // The fork-list's results, in list order, and the labelled step's value reach the report.
    let data = log_of(&c, "ex-data").await?;
    assert!(
        data.contains("sizes 1000,2000 of app,billing; the first count saw 12 tables; ap..billing"),
        "{data}"
    );
    // The catch-retry ran `fetch` three times; the timed-out job's code reached the catch.
    let retries = log_of(&c, "ex-retries").await?;
    assert!(
        retries.contains("fetching, try 3") && retries.contains("cleaning up after try 2"),
        "{retries}"
    );
    assert!(
        retries.contains("the slow job timed out with return code 143"),
        "{retries}"
    );
    Ok(())
}

/// The log of order `id`, as the controller serves it.
async fn log_of(c: &Cluster, id: &str) -> Result<String> {
    let url = c.url(&format!("/orders/{id}/log"));
    let r = c.api.request(axum::http::Method::GET, &url, None).await?;
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

#[tokio::test]
async fn process_controller_killed_mid_run_loses_nothing_and_runs_nothing_twice() -> Result<()> {
    let mut c = started(&["a1"]).await?;
    let runs = c.dir.path().join("runs.txt");
    let script = format!("sleep 0.3; echo $ORDO_ORDER_ID >> {}", runs.display());
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("w.yaml", one_job("slow", "a1", &script)),
    ])
    .await?;
    let ids = ids("k", 60);
    c.add_orders(&orders_of("slow", &ids)).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    c.controller.as_mut().unwrap().kill9();
    // While the controller is down the agent goes on and keeps the events.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.start_controller().await?;
    c.wait_states(&ids, ENDED, Duration::from_secs(120)).await?;
    let text = std::fs::read_to_string(&runs)?;
    for id in &ids {
        let n = text.lines().filter(|l| *l == id).count();
        assert_eq!(n, 1, "order {id} ran {n} times");
    }
    let history = History::from_events(&c.events(0).await?);
    assert!(history.lost(&ids).is_empty());
    assert!(history.duplicated(1).is_empty());
    for id in &ids {
        assert_eq!(history.ended[id], vec!["Finished".to_owned()], "{id}");
    }
    Ok(())
}

#[tokio::test]
async fn process_orders_wait_for_a_stopped_agent_and_run_when_it_returns() -> Result<()> {
    let mut c = started(&["a1"]).await?;
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("w.yaml", one_job("w", "a1", "echo hi")),
    ])
    .await?;
    c.agent("a1").unwrap().stop();
    let ids = ids("s", 20);
    c.add_orders(&orders_of("w", &ids)).await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let agents: Json = c.api.get_json(&c.url("/agents")).await?;
    assert_eq!(agents["agents"][0]["connected"], false, "{agents}");
    for o in c.orders().await? {
        assert!(!ENDED.contains(&o["state"].as_str().unwrap_or("")), "{o}");
    }
    c.start_agent("a1")?;
    let done = c.wait_states(&ids, ENDED, Duration::from_secs(60)).await?;
    assert!(done.iter().all(|o| o["state"] == "finished"));
    Ok(())
}

#[tokio::test]
async fn process_bad_requests_get_clear_errors() -> Result<()> {
    let c = started(&[]).await?;
    let status = |r: Result<Json, ordo_net::client::ClientError>| match r {
        Err(ordo_net::client::ClientError::Status { status, body, .. }) => (status.as_u16(), body),
        other => (0, format!("{other:?}")),
    };
    // No token: 401.
    let (s, _) = status(c.anonymous().get_json(&c.url("/orders")).await);
    assert_eq!(s, 401);
    // A viewer may read but not act: 403.
    assert!(c.viewer().get_json::<Json>(&c.url("/orders")).await.is_ok());
    let (s, body) = status(
        c.viewer()
            .post_json(&c.url("/orders"), &json!({"id": "x", "workflow": "w"}))
            .await,
    );
    assert_eq!(s, 403, "{body}");
    // A bad body: 400 with the reason.
    let (s, body) = status(c.api.post_json(&c.url("/orders"), &json!({"idd": 1})).await);
    assert_eq!(s, 400);
    assert!(body.contains("error"), "{body}");
    // Bad YAML: 400 with every diagnostic.
    let (s, body) = status(
        c.api
            .post_json(
                &c.url("/deploy"),
                &json!({"files": [{"name": "bad.yaml", "text": "workflow: w\nsteps: [ { run: nope } ]\nbogus: 1\n"}]}),
            )
            .await,
    );
    assert_eq!(s, 400);
    assert!(
        body.contains("bad.yaml:") && body.contains("nope"),
        "{body}"
    );
    // An argument the workflow does not declare: 400 naming it and the declared ones.
    c.deploy(&[(
        "w.yaml",
        "workflow: w\nparameters: { day: {} }\nsteps: [ { prompt: ok? } ]\n".to_owned(),
    )])
    .await?;
    let (s, body) = status(
        c.api
            .post_json(
                &c.url("/orders"),
                &json!({"id": "typo", "workflow": "w", "args": {"day": "1", "dya": "2"}}),
            )
            .await,
    );
    assert_eq!(s, 400, "{body}");
    assert!(
        body.contains("unknown argument `dya`; workflow `w` declares: day"),
        "{body}"
    );
    // Unknown workflow and unknown order: 404.
    let (s, _) = status(
        c.api
            .post_json(&c.url("/orders"), &json!({"id": "x", "workflow": "none"}))
            .await,
    );
    assert_eq!(s, 404);
    let (s, _) = status(
        c.api
            .post_json(&c.url("/orders/none/cancel"), &json!({}))
            .await,
    );
    assert_eq!(s, 404);
    // A stream position that is not kept any more is answered clearly (nothing released yet:
    // any position is kept, so ask for one far ahead to see it wait and answer empty).
    let resp = c
        .api
        .request(
            axum::http::Method::GET,
            &c.url("/events?after=999999999&timeout=100"),
            None,
        )
        .await?;
    assert_eq!(resp.status.as_u16(), 200);
    // Oversized: 413 (last: the server closes that connection).
    let big = "x".repeat(17 << 20);
    let (s, _) = status(
        c.api
            .post_json(
                &c.url("/deploy"),
                &json!({"files": [{"name": "big.yaml", "text": big}]}),
            )
            .await,
    );
    assert_eq!(s, 413);
    Ok(())
}

/// The order-input limits of `[limits]` reach the model's door: too large is 413 naming the
/// configured limit and its value, a bad name or instant 400 naming it; a request with one bad
/// order adds none.
#[tokio::test]
async fn process_order_input_over_a_limit_gets_413_and_bad_names_and_instants_400() -> Result<()> {
    let mut c = Cluster::new(&[])?;
    c.edit_controller(|c| {
        c.limits.order_args_bytes_max = 1000;
        c.limits.order_id_bytes_max = 20;
    })?;
    c.start_controller().await?;
    c.deploy(&[(
        "w.yaml",
        "workflow: p\nsteps:\n  - prompt: \"ok?\"\n".to_owned(),
    )])
    .await?;
    let post = |body: Json| {
        let api = &c.api;
        let url = c.url("/orders");
        async move {
            match api.post_json::<Json, Json>(&url, &body).await {
                Err(ordo_net::client::ClientError::Status { status, body, .. }) => {
                    (status.as_u16(), body)
                }
                other => (0, format!("{other:?}")),
            }
        }
    };
    let order = |args: Json| json!({"id": "o1", "workflow": "p", "args": args});
    // Too large: 413 naming the configured limit and its value; an id too long: 400, with
    // the limit named the same way.
    for (body, status, limit, max) in [
        (
            order(json!({"big": "x".repeat(9 << 20)})),
            413,
            "order_args_bytes_max",
            1000,
        ),
        (
            order(json!({"big": "x".repeat(2000)})),
            413,
            "order_args_bytes_max",
            1000,
        ),
        (
            json!({"id": "an-order-id-of-21-byt", "workflow": "p"}),
            400,
            "order_id_bytes_max",
            20,
        ),
    ] {
        let (s, text) = post(body).await;
        assert_eq!(s, status, "{text}");
        let answer: Json = serde_json::from_str(&text)?;
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("{limit} = {max}")), "{text}");
        assert_eq!(
            answer["details"],
            json!({"limit": limit, "max": max}),
            "{text}"
        );
    }
    // Bad and protected names, instants out of range: 400 naming them.
    for (body, named) in [
        (order(json!({"": 1})), "\"\""),
        (order(json!({"9bad": 1})), "9bad"),
        (order(json!({"LD_PRELOAD": "/tmp/x.so"})), "LD_PRELOAD"),
        (order(json!({"PATH": "/tmp"})), "PATH"),
        (
            json!({"id": "o1", "workflow": "p", "scheduledFor": i64::MAX}),
            "scheduledFor",
        ),
        (
            json!({"id": "o1", "workflow": "p", "scheduledFor": i64::MIN}),
            "scheduledFor",
        ),
    ] {
        let (s, text) = post(body).await;
        assert_eq!(s, 400, "{text}");
        let answer: Json = serde_json::from_str(&text)?;
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(named)),
            "{text}"
        );
    }
    // One bad order refuses the whole request: the good one is not added either.
    let (s, text) = post(json!({"orders": [
        {"id": "good", "workflow": "p"},
        {"id": "bad", "workflow": "p", "args": {"a-b": 1}},
    ]}))
    .await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("bad") && text.contains("a-b"), "{text}");
    assert!(
        c.order("good").await.is_err(),
        "nothing of the request is added"
    );
    // Within the limits: added; the answer to its prompt passes the same door.
    let added = c
        .add_orders(&[order(json!({"FOO": "x".repeat(900), "n": 3}))])
        .await?;
    assert_eq!(added["results"][0]["added"], true, "{added}");
    c.wait_states(&["o1".to_owned()], &["prompting"], Duration::from_secs(30))
        .await?;
    let answer = c
        .api
        .post_json::<Json, Json>(
            &c.url("/orders/o1/answer"),
            &json!({"vars": {"LD_PRELOAD": "/tmp/x.so"}}),
        )
        .await;
    match answer {
        Err(ordo_net::client::ClientError::Status { status, body, .. }) => {
            assert_eq!(status.as_u16(), 400, "{body}");
            assert!(body.contains("LD_PRELOAD"), "{body}");
        }
        other => panic!("answer with LD_PRELOAD: {other:?}"),
    }
    assert_eq!(c.order("o1").await?["state"], "prompting");
    Ok(())
}

fn bytes_of(s: &str) -> axum::body::Bytes {
    axum::body::Bytes::from(s.to_owned())
}

/// One request with a raw `Authorization` value and body; the status and the JSON answer.
async fn raw(
    c: &Cluster,
    method: &str,
    path: &str,
    authorization: &str,
    body: Option<&str>,
) -> Result<(u16, Json)> {
    let ca = ordo_net::tls::CaBundle::from_pem_file(&c.local.ca)?;
    let client = ordo_net::client::HttpsClient::new(
        ordo_net::tls::client_config(&ca, None)?,
        ordo_net::client::HttpsClientOptions {
            body_bytes_max: 65 << 20,
            ..Default::default()
        },
    )
    .with_authorization(authorization)?;
    let body = body.map(|b| (bytes_of(b), "application/json"));
    let r = client.request(method.parse()?, &c.url(path), body).await?;
    if r.body.is_empty() {
        return Ok((r.status.as_u16(), Json::Null));
    }
    let json = serde_json::from_slice(&r.body).unwrap_or_else(|_| {
        json!({"notJson": String::from_utf8_lossy(&r.body).chars().take(300).collect::<String>()})
    });
    Ok((r.status.as_u16(), json))
}

#[tokio::test]
async fn process_the_api_answers_consistently() -> Result<()> {
    let mut c = Cluster::new(&[])?;
    // A small event and record limit, so that orders can pass them cheaply; order arguments
    // as large as those limits, so that those are what refuses.
    c.edit_controller(|c| {
        c.limits.event_bytes_max = 16 << 20;
        c.limits.frame_bytes_max = 64 << 10;
        c.limits.order_args_bytes_max = 32 << 20;
        c.limits.arg_value_bytes_max = 32 << 20;
    })?;
    c.start_controller().await?;
    c.deploy(&[(
        "w.yaml",
        "workflow: p\nsteps:\n  - prompt: \"ok?\"\n".to_owned(),
    )])
    .await?;
    let token = c.local.admin_token.clone();
    let error = |j: &Json| j["error"].as_str().unwrap_or_default().to_owned();

    // The scheme of Authorization is case-insensitive (RFC 7235).
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (s, j) = raw(&c, "GET", "/health", &format!("{scheme} {token}"), None).await?;
        assert_eq!(s, 200, "{scheme}: {j}");
        assert_eq!(j["eventBytesMax"], 16777216, "{j}");
    }
    let bearer = format!("Bearer {token}");

    // An unknown state filter is refused with the allowed names.
    let (s, j) = raw(&c, "GET", "/orders?state=bogus", &bearer, None).await?;
    assert_eq!(s, 400, "{j}");
    assert!(
        error(&j).contains("bogus") && error(&j).contains("prompting"),
        "{j}"
    );

    // Unknown fields are refused everywhere, saying which and where.
    let cases = [
        (
            r#"{"orders": [{"id": "a", "workflow": "p"}], "extra": 1}"#,
            r#"unknown field "extra" in the body; its fields are orders"#,
        ),
        (
            r#"{"id": "a", "workflow": "p", "extra": 1}"#,
            r#"unknown field "extra" in the body; its fields are id, workflow, args, scheduledFor"#,
        ),
        (
            r#"{"orders": [{"id": "a", "workflow": "p"}, {"id": "b", "workflo": "p"}]}"#,
            r#"unknown field "workflo" in orders[1]"#,
        ),
        (
            r#"{"orders": [{"id": 5, "workflow": "p"}]}"#,
            "orders[0].id must be a string, not a number",
        ),
        (r#"{"id": "a"}"#, r#"the body needs the field "workflow""#),
    ];
    for (body, expected) in cases {
        let (s, j) = raw(&c, "POST", "/orders", &bearer, Some(body)).await?;
        assert_eq!(s, 400, "{body}: {j}");
        assert!(error(&j).contains(expected), "{body}: {j}");
    }
    let (s, j) = raw(
        &c,
        "POST",
        "/orders/a/cancel",
        &bearer,
        Some(r#"{"kil": "term"}"#),
    )
    .await?;
    assert_eq!(s, 400, "{j}");
    assert!(error(&j).contains(r#"unknown field "kil""#), "{j}");

    // Errors the framework makes are JSON too: a query that does not parse, a method a
    // route lacks, a body over request_bytes_max.
    let (s, j) = raw(&c, "GET", "/events?after=x", &bearer, None).await?;
    assert_eq!(s, 400, "{j}");
    assert!(error(&j).contains("after"), "{j}");
    let (s, j) = raw(&c, "PUT", "/orders", &bearer, Some("{}")).await?;
    assert_eq!(s, 405, "{j}");
    assert!(error(&j).contains("PUT"), "{j}");

    // An `after` beyond the newest event waits like one at the newest: an empty answer.
    let (s, j) = raw(
        &c,
        "GET",
        "/events?after=18446744073709551615&timeout=50",
        &bearer,
        None,
    )
    .await?;
    assert_eq!((s, j.clone()), (200, Json::Null), "{j}");

    // An order whose event would pass event_bytes_max as JSON: 413, nothing journaled.
    let tiny = vec![json!(1e-300); 80_000];
    let (s, j) = raw(
        &c,
        "POST",
        "/orders",
        &bearer,
        Some(&json!({"id": "wide", "workflow": "p", "args": {"x": tiny}}).to_string()),
    )
    .await?;
    assert_eq!(s, 413, "{j}");
    assert!(error(&j).contains("event_bytes_max"), "{j}");
    // One that would pass the journal's record limit (2 × frame_bytes_max + 1 MiB): 413, and
    // the controller goes on.
    let many = vec![json!(1); 200_000];
    let (s, j) = raw(
        &c,
        "POST",
        "/orders",
        &bearer,
        Some(
            &json!({"orders": [{"id": "long", "workflow": "p", "args": {"x": many}}]}).to_string(),
        ),
    )
    .await?;
    assert_eq!(s, 413, "{j}");
    assert!(error(&j).contains("journal record"), "{j}");
    let (s, j) = raw(&c, "GET", "/orders", &bearer, None).await?;
    assert_eq!(
        (s, j["orders"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{j}"
    );
    c.add_orders(&[json!({"id": "fine", "workflow": "p"})])
        .await?;
    c.wait_states(
        &["fine".to_owned()],
        &["prompting"],
        Duration::from_secs(10),
    )
    .await?;

    // A body over request_bytes_max: 413 as JSON (last: the server closes that connection).
    let big = format!(
        r#"{{"id": "x", "workflow": "p", "args": {{"s": "{}"}}}}"#,
        "x".repeat(17 << 20)
    );
    let (s, j) = raw(&c, "POST", "/orders", &bearer, Some(&big)).await?;
    assert_eq!(s, 413, "{j}");
    assert!(error(&j).contains("request_bytes_max"), "{j}");
    Ok(())
}

#[tokio::test]
async fn process_released_event_positions_get_a_reload_the_snapshot_answer() -> Result<()> {
    let mut c = Cluster::new(&[])?;
    // Small segments, frequent snapshots and a short event retention.
    c.edit_controller(|c| {
        c.limits.segment_bytes_max = 2048;
        c.limits.snapshot_events = 20;
        c.retention.events_ms = 300;
    })?;
    c.start_controller().await?;
    c.deploy(&[(
        "w.yaml",
        "workflow: p\nsteps:\n  - prompt: \"ok?\"\n".to_owned(),
    )])
    .await?;
    for round in 0..20 {
        let ids = ids(&format!("r{round}"), 10);
        c.add_orders(&orders_of("p", &ids)).await?;
    }
    let mut answer = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let resp = c
            .api
            .request(
                axum::http::Method::GET,
                &c.url("/events?after=1&timeout=10"),
                None,
            )
            .await?;
        if resp.status.as_u16() == 410 {
            answer = Some(String::from_utf8_lossy(&resp.body).into_owned());
            break;
        }
    }
    let answer = answer.expect("an old position is answered with 410 once released");
    assert!(answer.contains("reload the snapshot"), "{answer}");
    // The snapshot names a position that can be followed.
    let snap: Json = c.api.get_json(&c.url("/snapshot")).await?;
    let id = snap["eventId"].as_u64().unwrap();
    let resp = c
        .api
        .request(
            axum::http::Method::GET,
            &c.url(&format!("/events?after={id}&timeout=10")),
            None,
        )
        .await?;
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(snap["orders"].as_array().map(Vec::len), Some(200));
    Ok(())
}

#[tokio::test]
async fn process_notices_expire_after_their_lifetime() -> Result<()> {
    let c = started(&[]).await?;
    c.deploy(&[("b.yaml", "board: short\nlifetime: 1s\n".to_owned())])
        .await?;
    c.post("/notices/short", &json!({"key": "2026-11-23"}))
        .await?;
    let notices = |snap: &Json| snap["boards"][0]["notices"].as_array().map(Vec::len);
    let snap: Json = c.api.get_json(&c.url("/snapshot")).await?;
    assert_eq!(notices(&snap), Some(1), "{snap}");
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let snap: Json = c.api.get_json(&c.url("/snapshot")).await?;
        if notices(&snap) == Some(0) {
            return Ok(());
        }
    }
    anyhow::bail!("the notice did not expire within 5 s")
}
