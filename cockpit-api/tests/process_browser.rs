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
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let cockpit = Cockpit::start(&controller).await;
    cockpit
        .post(
            ADMIN,
            "/api/v1/deploy",
            json!({"files": [
                {"name": "test.yaml", "text": INVENTORY},
                {"name": "agent.yaml", "text": agent.inventory()},
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
    c.find(Locator::Id("token-save"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
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
    c.find(Locator::Id("add-open"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
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
    c.find(Locator::Id("add-submit"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
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
    c.find(Locator::Id("btn-answer"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    c.find(Locator::Id("answer-vars"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys("approved=true")
        .await
        .map_err(|e| e.to_string())?;
    c.find(Locator::Id("answer-submit"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
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
    screenshot(c, "cockpit-agents.png").await;
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
