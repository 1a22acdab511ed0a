//! The web UI in a real browser: headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/test` installs them). The page loads, orders appear
//! and move live, an order added through the form is answered with a click and finishes, and
//! screenshots land in `target/test-artifacts/`.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A chromedriver child process, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

async fn start_driver() -> Driver {
    let program = find_program(&["chromedriver"]).expect(
        "chromedriver is not installed: apt-get install chromium chromium-driver (bash .ci/test does it)",
    );
    let port = free_port();
    let child = Command::new(program)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    until("chromedriver to listen", 20_000, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    driver
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let binary = find_program(&["chromium", "chromium-browser"]).expect(
        "chromium is not installed: apt-get install chromium chromium-driver (bash .ci/test does it)",
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": binary.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1440,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session with chromium")
}

/// The text of the first element matching `css`, or `None`.
async fn text_of(c: &Client, css: &str) -> Option<String> {
    let e = c.find(Locator::Css(css)).await.ok()?;
    e.text().await.ok()
}

/// Waits until the element `css` has text (in lower case) satisfying `ok`.
/// Returns when the page changes (any DOM mutation), or after a second without one: a
/// condition on the page is checked again when something happened, not on a timer. The
/// second covers a change between the last check and the observer's start.
async fn next_change(c: &Client) {
    const NEXT_CHANGE: &str = "const done = arguments[arguments.length - 1];
        const o = new MutationObserver(() => { o.disconnect(); done(true); });
        o.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
        setTimeout(() => { o.disconnect(); done(false); }, 1000);";
    // A page navigating away ends the script with an error: the caller checks again.
    let _ = c.execute_async(NEXT_CHANGE, vec![]).await;
}

async fn wait_text(c: &Client, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Compared in lower case: CSS may show labels in capitals.
        if let Some(t) = text_of(c, css).await.map(|t| t.to_lowercase())
            && ok(&t)
        {
            return t;
        }
        if tokio::time::Instant::now() > deadline {
            let shown = text_of(c, css).await;
            panic!("timed out waiting for {what} ({css} shows {shown:?})");
        }
        next_change(c).await;
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(artifacts().join(name), png).expect("write screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_browser_sees_orders_live_and_answers_a_prompt() {
    let controller = Controller::start().await;
    let agent_dir = tempfile::tempdir().expect("agent dir");
    let agent = Agent::start(&controller, agent_dir.path()).await;
    // A director with one subagent, for the agents page.
    for d in ["dir", "s1"] {
        std::fs::create_dir_all(agent_dir.path().join(d)).expect("agent dir");
    }
    let sub = Agent::start_as(&controller, &agent_dir.path().join("s1"), "s1", Some("dir")).await;
    let director = Agent::start_as(&controller, &agent_dir.path().join("dir"), "dir", None).await;
    let cluster = format!(
        "agent: dir\nurl: wss://127.0.0.1:{}\nsubagents:\n  - id: s1\n    url: wss://127.0.0.1:{}\n",
        director.port, sub.port
    );
    let cockpit = Cockpit::start(&controller).await;
    cockpit
        .post(
            ADMIN,
            "/api/v1/deploy",
            json!({"files": [
                {"name": "test.yaml", "text": INVENTORY},
                {"name": "agent.yaml", "text": agent.inventory()},
                {"name": "cluster.yaml", "text": cluster},
            ]}),
        )
        .await;
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"orders": [
                {"id": "nightly-1", "workflow": "locked"},
                {"id": "nightly-2", "workflow": "locked"},
                {"id": "remote-1", "workflow": "remote"},
            ]}),
        )
        .await;
    cockpit.order_in("nightly-2", "waiting").await;

    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let c = browser(&driver, profile.path()).await;
    let result = run(&c, &cockpit).await;
    if result.is_err() {
        let _ = screenshot(&c, "cockpit-failure.png").await;
    }
    c.close().await.expect("close the browser");
    agent.stop().await;
    director.stop().await;
    sub.stop().await;
    result.expect("browser scenario");
}

async fn run(c: &Client, cockpit: &Cockpit) -> Result<(), String> {
    c.goto(&cockpit.base).await.map_err(|e| e.to_string())?;
    // No token yet: the token panel asks for one.
    let input = c
        .wait()
        .for_element(Locator::Id("token-input"))
        .await
        .map_err(|e| e.to_string())?;
    input.send_keys(OPERATOR).await.map_err(|e| e.to_string())?;
    click(c, "#token-save").await?;
    wait_text(c, "#who", "the user name", |t| {
        t.contains("otto · operator")
    })
    .await;
    wait_text(c, "#live-text", "the live stream", |t| t == "live").await;
    wait_text(
        c,
        ".count[data-state=waiting] .n",
        "one waiting order",
        |t| t == "1",
    )
    .await;

    // An order added elsewhere appears without a reload.
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "api-added", "workflow": "ask"}),
        )
        .await;
    wait_text(
        c,
        "#orders-table tr[data-id=api-added] .badge",
        "the new order",
        |t| t == "prompting",
    )
    .await;
    wait_text(
        c,
        ".count[data-state=prompting] .n",
        "two prompting orders",
        |t| t == "2",
    )
    .await;

    // Add an order with the form.
    click(c, "#add-open").await?;
    c.find(Locator::Id("add-workflow"))
        .await
        .map_err(|e| e.to_string())?
        .select_by_value("ask")
        .await
        .map_err(|e| e.to_string())?;
    let id = c
        .find(Locator::Id("add-id"))
        .await
        .map_err(|e| e.to_string())?;
    id.clear().await.map_err(|e| e.to_string())?;
    id.send_keys("release-42")
        .await
        .map_err(|e| e.to_string())?;
    c.find(Locator::Id("add-args"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys("who=the release team")
        .await
        .map_err(|e| e.to_string())?;
    click(c, "#add-submit").await?;
    // Its detail opens and shows it prompting, at the prompt step of the graph.
    wait_text(c, "#detail-id", "the order detail", |t| t == "release-42").await;
    wait_text(c, "#detail-state", "the prompt", |t| t == "prompting").await;
    wait_text(c, "#detail-prompt", "the question", |t| {
        t.contains("go on, the release team?")
    })
    .await;
    wait_text(
        c,
        "#graph g.node.current",
        "the position in the graph",
        |t| t.contains("prompt"),
    )
    .await;
    wait_text(c, "#history", "the history", |t| {
        t.contains("added") && t.contains("prompted")
    })
    .await;
    screenshot(c, "cockpit-prompting.png").await;

    // Answer it with clicks; it finishes, live.
    click(c, "#btn-answer").await?;
    c.find(Locator::Id("answer-vars"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys("approved=true")
        .await
        .map_err(|e| e.to_string())?;
    click(c, "#answer-submit").await?;
    wait_text(c, "#detail-state", "the order to finish", |t| {
        t == "finished"
    })
    .await;
    wait_text(c, "#log-state", "the log stream to end", |t| {
        t == "(finished)"
    })
    .await;
    wait_text(c, "#detail-vars", "the answer's variables", |t| {
        t.contains("\"approved\": true")
    })
    .await;
    wait_text(
        c,
        ".count[data-state=finished] .n",
        "one finished order",
        |t| t == "1",
    )
    .await;
    let row = wait_text(
        c,
        "#orders-table tr[data-id=release-42] .badge",
        "the list",
        |t| t == "finished",
    )
    .await;
    assert_eq!(row, "finished");

    // The lock's holder is answered through the API; the waiting order moves on, live.
    c.goto(&format!("{}/#/orders/nightly-2", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#detail-state", "nightly-2 waiting", |t| t == "waiting").await;
    cockpit
        .post(OPERATOR, "/api/v1/orders/nightly-1/answer", json!({}))
        .await;
    wait_text(c, "#detail-state", "nightly-2 to get the lock", |t| {
        t == "prompting"
    })
    .await;
    screenshot(c, "cockpit-lock.png").await;

    // A job on the agent: its output streams into the page while it runs.
    c.goto(&format!("{}/#/orders/hello-1", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "hello-1", "workflow": "hello"}),
        )
        .await;
    wait_text(c, "#detail-state", "the job to run", |t| t == "processing").await;
    wait_text(c, "#log", "the first output", |t| {
        t.contains("hello from the job")
    })
    .await;
    wait_text(c, "#detail-state", "the job to finish", |t| t == "finished").await;
    let log = wait_text(c, "#log", "the whole output", |t| t.contains("done")).await;
    assert_eq!(log.matches("hello from the job").count(), 1, "{log}");
    wait_text(c, "#graph g.end.current", "the end of the workflow", |_| {
        true
    })
    .await;
    screenshot(c, "cockpit-log.png").await;

    // The agents page.
    c.goto(&format!("{}/#/agents", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(
        c,
        "#agents-table tr[data-id=ghost]",
        "the unreachable agent",
        |t| t.contains("down"),
    )
    .await;
    wait_text(
        c,
        "#agents-table tr[data-id=local]",
        "the local agent",
        |t| t.contains("connected") && t.contains("cores"),
    )
    .await;
    // The director's subagent with its figures (its host once it reported it).
    wait_text(
        c,
        "#subagents-table tr[data-id=s1]",
        "the subagent with its figures",
        |t| t.contains("dir") && t.contains("live") && t.contains("cores") && t.contains("gib"),
    )
    .await;
    screenshot(c, "cockpit-agents.png").await;

    // The queues page: the order at the unreachable agent's job waits for a process.
    c.goto(&format!("{}/#/queues", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, ".queue[data-queue=waiting]", "the waiting queue", |t| {
        t.contains("remote-1")
    })
    .await;
    wait_text(
        c,
        ".queue[data-queue=running] .qcount",
        "nothing running",
        |t| t == "0",
    )
    .await;
    screenshot(c, "cockpit-queues.png").await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_browser_shows_which_controller_of_a_pair_is_active() {
    let mut pair = common::pair::Pair::start();
    let first = pair.active().await;
    let controllers = [pair.nodes[0].url.clone(), pair.nodes[1].url.clone()];
    let text = cockpit_config(&controllers, &pair.ca(), "")
        .replace("[follow]\n", "[follow]\ncluster_poll_ms = 200\n");
    let cockpit = Cockpit::start_text(text, None).await;

    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let c = browser(&driver, profile.path()).await;
    let result = async {
        c.goto(&cockpit.base).await.map_err(|e| e.to_string())?;
        // The header names the active controller's node, with no token needed.
        let ids: Vec<u64> = pair.nodes.iter().map(|n| n.id).collect();
        let node = |k: usize| format!("node {}", ids[k]);
        wait_text(&c, "#cluster .node.active", "the active node", |t| {
            t.contains(&node(first)) && t.contains("active")
        })
        .await;
        pair.nodes[first].kill();
        let second = pair.active().await;
        wait_text(&c, "#cluster .node.active", "the new active node", |t| {
            t.contains(&node(second)) && t.contains("active")
        })
        .await;
        wait_text(&c, "#cluster .node.down", "the killed node", |t| {
            t.contains(&node(first)) && t.contains("unreachable")
        })
        .await;
        wait_text(&c, "#toast", "the change told", |t| {
            t.contains("active controller")
        })
        .await;
        screenshot(&c, "cockpit-failover.png").await;
        Ok::<(), String>(())
    }
    .await;
    if result.is_err() {
        let _ = screenshot(&c, "cockpit-failover-failure.png").await;
    }
    c.close().await.expect("close the browser");
    result.expect("browser scenario");
}

/// Workflows for the orders page: a job that fails after a retry, and a fork.
const NEWCOMER_INVENTORY: &str = r#"
workflow: breaks
jobs:
  broken:
    agent: local
    script: |
      echo "about to fail"
      exit 3
    timeout: 30s
steps:
  - retry: { maxTries: 2, delays: [0s] }
    do:
      - run: broken
---
workflow: forkjob
jobs:
  left:
    agent: local
    script: echo "branch left says hi"
    timeout: 30s
  right:
    agent: local
    script: echo "branch right says hi"
    timeout: 30s
steps:
  - fork:
      left:
        - run: left
      right:
        - run: right
---
workflow: split
steps:
  - fork:
      left:
        - prompt: "Left done?"
      right:
        - prompt: "Right done?"
"#;

/// An order id longer than its column at 1400 px.
const LONG_ID: &str = "quarterly-reconciliation-of-the-eastern-region-accounts-2026-12-07";

/// A value the page's JavaScript computes.
async fn js(c: &Client, script: &str) -> Result<serde_json::Value, String> {
    c.execute(script, vec![]).await.map_err(|e| e.to_string())
}

/// Clicks the element `css` selects. The page re-renders lists from its event stream, so an
/// element found may be replaced before the click lands: then the new one is found and
/// clicked (a bounded number of times).
async fn click(c: &Client, css: &str) -> Result<(), String> {
    const STALE_TRIES_MAX: u32 = 20;
    for _ in 0..STALE_TRIES_MAX {
        let element = c
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("{css}: {e}"))?;
        match element.click().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_stale_element_reference() => continue,
            Err(e) => return Err(format!("{css}: {e}")),
        }
    }
    Err(format!(
        "{css}: the element was replaced before each of {STALE_TRIES_MAX} clicks"
    ))
}

/// Waits until the script gives `true`.
async fn wait_js(c: &Client, what: &str, script: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if js(c, script).await? == json!(true) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        next_change(c).await;
    }
}

/// The ids of the orders table's rows, top to bottom.
const ROW_IDS: &str =
    "return [...document.querySelectorAll('#orders-table tbody tr')].map(r => r.dataset.id)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_browser_orders_page_times_bulk_failed_forks_locks_boards() {
    let controller = Controller::start().await;
    let agent_dir = tempfile::tempdir().expect("agent dir");
    let agent = Agent::start(&controller, agent_dir.path()).await;
    let cockpit = Cockpit::start(&controller).await;
    cockpit
        .post(
            ADMIN,
            "/api/v1/deploy",
            json!({"files": [
                {"name": "test.yaml", "text": INVENTORY},
                {"name": "agent.yaml", "text": agent.inventory()},
                {"name": "newcomer.yaml", "text": NEWCOMER_INVENTORY},
            ]}),
        )
        .await;
    for id in [
        "ask-1", "ask-2", LONG_ID, "gate-1", "gate-2", "fail-1", "split-1",
    ] {
        let workflow = match id {
            "gate-1" | "gate-2" => "locked",
            "fail-1" => "breaks",
            "split-1" => "split",
            _ => "ask",
        };
        cockpit
            .post(
                OPERATOR,
                "/api/v1/orders",
                json!({"id": id, "workflow": workflow}),
            )
            .await;
        // One after the other, so that "newest first" is defined.
        cockpit
            .order_in(
                id,
                match workflow {
                    "breaks" => "failed",
                    "split" => "waiting",
                    "locked" if id == "gate-2" => "waiting",
                    _ => "prompting",
                },
            )
            .await;
    }

    // A joined child's log: the controller forgot the child, the cockpit reads it.
    cockpit
        .post(
            OPERATOR,
            "/api/v1/orders",
            json!({"id": "fj-1", "workflow": "forkjob"}),
        )
        .await;
    cockpit.order_in("fj-1", "finished").await;
    let log = cockpit
        .call(Some(VIEWER), "GET", "/api/v1/orders/fj-1%7Cleft/log", None)
        .await;
    assert_eq!(log.status, 200, "{}", String::from_utf8_lossy(&log.body));
    assert_eq!(String::from_utf8_lossy(&log.body), "branch left says hi\n");
    let detail = cockpit.order_in("fj-1|right", "finished").await;
    assert!(detail["endedMs"].is_i64(), "{detail}");

    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let c = browser(&driver, profile.path()).await;
    let result = newcomer(&c, &cockpit).await;
    if result.is_err() {
        let _ = screenshot(&c, "cockpit-newcomer-failure.png").await;
    }
    c.close().await.expect("close the browser");
    agent.stop().await;
    result.expect("browser scenario");
}

async fn newcomer(c: &Client, cockpit: &Cockpit) -> Result<(), String> {
    c.set_window_size(1400, 1000)
        .await
        .map_err(|e| e.to_string())?;
    c.goto(&cockpit.base).await.map_err(|e| e.to_string())?;
    c.wait()
        .for_element(Locator::Id("token-input"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys(OPERATOR)
        .await
        .map_err(|e| e.to_string())?;
    click(c, "#token-save").await?;
    wait_text(c, "#who", "the user name", |t| t.contains("operator")).await;
    wait_text(
        c,
        "#orders-table tr[data-id=split-1] .badge",
        "the fork",
        |t| t == "waiting",
    )
    .await;

    // Newest first, with times and durations.
    let added: Vec<i64> =
        serde_json::from_value(js(c, "return shownOrders().map(o => o.addedMs)").await?)
            .map_err(|e| e.to_string())?;
    assert_eq!(added.len(), 10, "{added:?}");
    assert!(added.windows(2).all(|w| w[0] >= w[1]), "{added:?}");
    let ids: Vec<String> =
        serde_json::from_value(js(c, ROW_IDS).await?).map_err(|e| e.to_string())?;
    let at = |id: &str| ids.iter().position(|i| i == id);
    assert!(at("fail-1") < at("ask-1"), "{ids:?}");
    let heads = js(
        c,
        "return [...document.querySelectorAll('#orders-table thead th')].map(t => t.textContent)",
    )
    .await?;
    for h in ["Added", "Started", "Ended", "Duration"] {
        assert!(
            heads.as_array().is_some_and(|a| a.contains(&json!(h))),
            "{heads}"
        );
    }
    let fail_row = wait_text(
        c,
        "#orders-table tr[data-id=fail-1]",
        "the failed row",
        |t| t.contains("failed") && (t.contains(" ms") || t.contains(" s")),
    )
    .await;
    assert!(!fail_row.is_empty());

    // At 1400 px with the order pane open, ids and states stay on one line (ellipsis, title).
    c.goto(&format!("{}/#/orders/ask-1", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#detail-state", "ask-1", |t| t == "prompting").await;
    let one_line = format!(
        "const r = document.querySelector('#orders-table tr[data-id=\"{LONG_ID}\"]');
         const id = r.children[1], st = r.children[3];
         return id.title === '{LONG_ID}' && id.scrollWidth > id.clientWidth
           && getComputedStyle(id).whiteSpace === 'nowrap'
           && r.getBoundingClientRect().height < 40
           && st.getBoundingClientRect().height < 40"
    );
    wait_js(c, "the long id on one line", &one_line).await?;
    screenshot(c, "cockpit-orders-1400.png").await;

    // Search by id or workflow.
    c.find(Locator::Id("search"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys("break")
        .await
        .map_err(|e| e.to_string())?;
    wait_js(
        c,
        "only the failed order",
        &format!(
            "const ids = ({})(); return ids.length === 1 && ids[0] === 'fail-1'",
            ROW_IDS.replace("return ", "() => ")
        ),
    )
    .await?;
    c.find(Locator::Id("search"))
        .await
        .map_err(|e| e.to_string())?
        .clear()
        .await
        .map_err(|e| e.to_string())?;
    js(
        c,
        "document.querySelector('#search').dispatchEvent(new Event('input')); return true",
    )
    .await?;

    // Sorting by a column: by id, A first.
    click(c, "#orders-table th[data-sort=id]").await?;
    let ids = js(c, ROW_IDS).await?;
    let mut sorted: Vec<String> = serde_json::from_value(ids.clone()).unwrap();
    sorted.sort();
    assert_eq!(ids, json!(sorted));

    // Bulk: suspend two prompting orders, then resume them.
    click(c, "#orders-table tr[data-id=ask-1] input.sel").await?;
    click(c, "#orders-table tr[data-id=ask-2] input.sel").await?;
    wait_text(c, "#bulk-count", "two selected", |t| t == "2 selected").await;
    click(c, "#bulk-suspend").await?;
    for id in ["ask-1", "ask-2"] {
        wait_text(
            c,
            &format!("#orders-table tr[data-id={id}] .badge"),
            "suspended",
            |t| t == "suspended",
        )
        .await;
    }
    wait_text(c, "#bulk-count", "the selection cleared", |t| {
        t == "none selected"
    })
    .await;
    click(c, "#orders-table tr[data-id=ask-1] input.sel").await?;
    click(c, "#orders-table tr[data-id=ask-2] input.sel").await?;
    click(c, "#bulk-resume").await?;
    for id in ["ask-1", "ask-2"] {
        wait_text(
            c,
            &format!("#orders-table tr[data-id={id}] .badge"),
            "prompting again",
            |t| t == "prompting",
        )
        .await;
    }

    // A failed order: its step red in the graph, its retry, its log not "live", resend.
    c.goto(&format!("{}/#/orders/fail-1", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#detail-state", "fail-1 failed", |t| t == "failed").await;
    wait_text(c, "#graph g.node.current.failed", "the failed step", |_| {
        true
    })
    .await;
    wait_text(c, "#retries", "the retry", |t| t.contains("retrying")).await;
    wait_text(c, "#log", "the job's output", |t| {
        t.contains("about to fail")
    })
    .await;
    let label = wait_text(c, "#log-state", "the log's label", |t| !t.is_empty()).await;
    assert_ne!(label, "(live)");
    wait_text(c, "#detail-times", "its times", |t| {
        t.contains("started") && t.contains("ended") && t.contains("took")
    })
    .await;
    assert!(
        c.find(Locator::Id("btn-resend"))
            .await
            .map_err(|e| e.to_string())?
            .is_displayed()
            .await
            .map_err(|e| e.to_string())?
    );
    screenshot(c, "cockpit-failed.png").await;

    // An unknown order after it: nothing of fail-1 stays.
    c.goto(&format!("{}/#/orders/no-such-order", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#detail-sub", "no such order", |t| {
        t.contains("no such order")
    })
    .await;
    wait_js(
        c,
        "the pane cleared",
        "return document.querySelector('#detail-id').textContent === 'no-such-order'
          && document.querySelector('#graph').children.length === 0
          && document.querySelector('#history').children.length === 0
          && [...document.querySelectorAll('#detail-actions button')].every(b => b.offsetParent === null)",
    )
    .await?;
    screenshot(c, "cockpit-unknown-order.png").await;

    // A fork: its children, linked.
    c.goto(&format!("{}/#/orders/split-1", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#children", "the fork's children", |t| {
        t.contains("split-1|left") && t.contains("split-1|right")
    })
    .await;
    click(c, "#children li[data-id='split-1|left'] a").await?;
    wait_text(c, "#detail-id", "the child", |t| t == "split-1|left").await;
    // Joined, the children stay listed and readable while the parent is there.
    for kid in ["split-1%7Cleft", "split-1%7Cright"] {
        cockpit
            .post(OPERATOR, &format!("/api/v1/orders/{kid}/answer"), json!({}))
            .await;
    }
    cockpit.order_in("split-1", "finished").await;
    c.goto(&format!("{}/#/orders/split-1", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#detail-state", "the joined fork", |t| t == "finished").await;
    wait_text(c, "#children", "the joined children", |t| {
        t.contains("split-1|left finished") && t.contains("split-1|right finished")
    })
    .await;
    click(c, "#children li[data-id='split-1|right'] a").await?;
    wait_text(c, "#detail-id", "the joined child", |t| {
        t == "split-1|right"
    })
    .await;
    wait_text(c, "#detail-state", "the joined child's state", |t| {
        t == "finished"
    })
    .await;
    wait_text(c, "#history", "the joined child's history", |t| {
        t.contains("promptanswered")
    })
    .await;
    wait_text(c, "#detail-sub", "the child joined", |t| {
        t.contains("joined")
    })
    .await;
    wait_js(
        c,
        "no commands for a joined child",
        "return [...document.querySelectorAll('#detail-actions button')].every(b => b.offsetParent === null)",
    )
    .await?;
    // Its log stream answers (the cockpit keeps the child) and ends at once.
    wait_text(c, "#log-state", "the joined child's log", |t| {
        t == "(finished)"
    })
    .await;
    screenshot(c, "cockpit-joined-child.png").await;

    // Locks and notice boards.
    c.goto(&format!("{}/#/locks", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#locks-table tr[data-id=gate]", "the lock", |t| {
        t.contains("1 of 1") && t.contains("gate-1") && t.contains("gate-2")
    })
    .await;
    screenshot(c, "cockpit-locks.png").await;
    cockpit
        .post(OPERATOR, "/api/v1/notices/signals", json!({"key": "go"}))
        .await;
    c.goto(&format!("{}/#/boards", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    wait_text(c, "#boards-table tr[data-id=signals]", "the board", |t| {
        t.contains("go") && t.contains("1 h")
    })
    .await;
    screenshot(c, "cockpit-boards.png").await;

    // A workflow's recent orders on a timeline.
    c.goto(&format!("{}/#/workflows", cockpit.base))
        .await
        .map_err(|e| e.to_string())?;
    c.wait()
        .for_element(Locator::Css("#workflows-table tr[data-id=ask]"))
        .await
        .map_err(|e| e.to_string())?;
    click(c, "#workflows-table tr[data-id=ask]").await?;
    wait_js(
        c,
        "three orders on the timeline",
        "return document.querySelectorAll('#wf-timeline g.lane').length === 3",
    )
    .await?;
    screenshot(c, "cockpit-timeline.png").await;

    // A job's restart budget and its own subagents show beside it.
    click(c, "#workflows-table tr[data-id=remote]").await?;
    wait_text(
        c,
        "#wf-jobs tr[data-id=work] .placement",
        "the job's placement",
        |t| t == "restartable, 3 restarts · on g1 (2), g2 by priority",
    )
    .await;
    Ok(())
}
