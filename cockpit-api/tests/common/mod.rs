//! A real controller (the `ordo-controller` executable of this build, TLS, temp data dir) and
//! cockpits following it, for the process tests. Everything binds to 127.0.0.1. The cockpit
//! links only the controller's published API, so the controller runs as its own process, as
//! in production; build it first (`cargo build --workspace --bins`), else it is built here.

#![allow(dead_code)]

pub mod pair;

use ordo_cockpit_api::api::token_hash;
use ordo_net::certs::{IssueSpec, TestPki};
use ordo_net::client::{HttpResponse, HttpsClient, HttpsClientOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SERVICE: &str = "service-secret";
pub const ADMIN: &str = "admin-secret";
pub const OPERATOR: &str = "operator-secret";
pub const VIEWER: &str = "viewer-secret";

/// Workflows the controller runs alone (prompts, locks, notices) and one whose job waits for
/// an agent that is never there.
pub const INVENTORY: &str = r#"
workflow: ask
parameters:
  who: { default: world }
allowUndeclared: true
steps:
  - prompt: "Go on, $who?"
  - finish: { message: "answered" }
---
workflow: locked
steps:
  - lock: gate
    do:
      - prompt: "Release the gate?"
---
lock: gate
limit: 1
---
workflow: waits
steps:
  - expect: { boards: [signals], key: go }
  - prompt: "Signal seen; finish?"
---
board: signals
lifetime: 1h
---
workflow: remote
jobs:
  work:
    agent: ghost
    script: echo working
    restartBudget: 3
    subagentSelection: { selection: priority, subagents: [ { id: g1, priority: 2 }, { id: g2 } ] }
steps:
  - try:
      - run: work
    catch:
      - prompt: "Failed; accept?"
---
agent: ghost
url: wss://127.0.0.1:9
"#;

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Waits until `f` gives `Some`, at most `timeout_ms`, polling every 25 ms.
pub async fn until<T, F, Fut>(what: &str, timeout_ms: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout_ms} ms waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The `ordo-controller` executable of this build: beside the test's own folder.
pub fn controller_executable() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe.parent().expect("its folder").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("ordo-controller");
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "ordo-controller", "--bin", "ordo-controller"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .expect("cargo build runs");
        assert!(status.success(), "building ordo-controller failed");
    }
    path
}

/// A controller process with its certificates and data in a temp dir.
pub struct Controller {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
    process: Option<std::process::Child>,
    limits: String,
    pki_ca: PathBuf,
    /// The cluster CA, to issue more certificates (agents).
    pub pki: TestPki,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

impl Controller {
    pub async fn start() -> Controller {
        Controller::start_with_limits("").await
    }

    /// A controller with these lines added to its `[limits]` table (a `[retention]` table may
    /// follow them).
    pub async fn start_with_limits(limits: &str) -> Controller {
        ordo_net::tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = TestPki::new("main").expect("test pki");
        let server = pki
            .issue("controller", &IssueSpec::local(Vec::<String>::new()))
            .expect("issue");
        let client = pki
            .issue(
                "controller-client",
                &IssueSpec::local(["ordo:controller:main"]),
            )
            .expect("issue");
        let ca = write(dir.path(), "ca.pem", pki.ca_pem());
        write(dir.path(), "controller.pem", &server.cert_pem);
        write(dir.path(), "controller.key", &server.key_pem);
        write(dir.path(), "client.pem", &client.cert_pem);
        write(dir.path(), "client.key", &client.key_pem);
        let port = free_port();
        let mut c = Controller {
            url: format!("https://127.0.0.1:{port}"),
            dir,
            port,
            process: None,
            limits: limits.to_owned(),
            pki_ca: ca,
            pki,
        };
        c.restart().await;
        c
    }

    pub fn ca(&self) -> &Path {
        &self.pki_ca
    }

    fn config(&self) -> String {
        format!(
            r#"
controller_id = "primary"
cluster_id = "main"
data_dir = "data"
listen = "127.0.0.1:{port}"
[tls]
certificate = "controller.pem"
key = "controller.key"
client_certificate = "client.pem"
client_key = "client.key"
ca = "ca.pem"
[[tokens]]
name = "cockpit"
sha256 = "{service}"
role = "admin"
[limits]
journal_fsync = false
{limits}
"#,
            port = self.port,
            service = token_hash(SERVICE),
            limits = self.limits,
        )
    }

    /// The controller's log (its stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controller.log")).unwrap_or_default()
    }

    /// Starts (again) on the same port and data.
    pub async fn restart(&mut self) {
        let config = write(self.dir.path(), "controller.toml", &self.config());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("controller.log"))
            .expect("open the controller log");
        // The controller says it serves with systemd's READY=1 on this socket.
        let notify_path = self.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = tokio::net::UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        let child = std::process::Command::new(controller_executable())
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env(ordo_net::notify::NOTIFY_SOCKET, &notify_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ordo-controller");
        self.process = Some(child);
        let mut buf = [0u8; 64];
        let ready =
            tokio::time::timeout(Duration::from_millis(20_000), notify.recv(&mut buf)).await;
        if !matches!(ready, Ok(Ok(n)) if &buf[..n] == b"READY=1") {
            if let Some(Ok(Some(status))) = self.process.as_mut().map(|p| p.try_wait()) {
                panic!("the controller exited ({status}):\n{}", self.log());
            }
            panic!(
                "the controller did not say it serves in 20 s ({ready:?}):\n{}",
                self.log()
            );
        }
        let url = format!("{}/api/v1/health", self.url);
        if let Err(e) = self.client().get_json::<Value>(&url).await {
            panic!(
                "the controller serves but its health fails: {e}\n{}",
                self.log()
            );
        }
    }

    /// Stops it (SIGKILL: the journal keeps everything acknowledged) and waits until it is
    /// gone.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = tokio::task::spawn_blocking(move || p.wait()).await;
        }
    }

    /// A client of the controller's own API with the service token.
    pub fn client(&self) -> HttpsClient {
        let ca = ordo_net::tls::CaBundle::from_pem_file(&self.pki_ca).expect("ca");
        let tls = ordo_net::tls::client_config(&ca, None).expect("tls");
        HttpsClient::new(tls, HttpsClientOptions::default())
            .with_bearer(SERVICE)
            .expect("bearer")
    }

    pub async fn get(&self, path: &str) -> Value {
        self.client()
            .get_json(&format!("{}{path}", self.url))
            .await
            .unwrap_or_else(|e| panic!("controller GET {path}: {e}"))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// The cockpit configuration for `controllers`.
pub fn cockpit_config(controllers: &[String], ca: &Path, extra: &str) -> String {
    let list = controllers
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
controllers = [{list}]
controller_ca = {ca:?}
controller_token = "{SERVICE}"
listen = "127.0.0.1:0"
{extra}
[[users]]
name = "ada"
sha256 = "{admin}"
role = "admin"
[[users]]
name = "otto"
sha256 = "{operator}"
role = "operator"
[[users]]
name = "vera"
sha256 = "{viewer}"
role = "viewer"
[follow]
reconnect_min_ms = 50
reconnect_max_ms = 500
ping_interval_ms = 500
silence_timeout_ms = 3000
agents_poll_ms = 300
[limits]
request_bytes_max = 65536
orders_per_page_max = 100
history_events_per_order_max = 20
"#,
        ca = ca.display().to_string(),
        admin = token_hash(ADMIN),
        operator = token_hash(OPERATOR),
        viewer = token_hash(VIEWER),
    )
}

/// A running cockpit.
pub struct Cockpit {
    pub base: String,
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    tls_ca: Option<PathBuf>,
}

impl Cockpit {
    pub async fn start(controller: &Controller) -> Cockpit {
        Cockpit::start_with(
            std::slice::from_ref(&controller.url),
            controller.ca(),
            "",
            None,
        )
        .await
    }

    /// Starts a cockpit with the given config additions (`extra` goes before the tables);
    /// `tls_ca` makes the clients speak HTTPS with that CA.
    pub async fn start_with(
        controllers: &[String],
        ca: &Path,
        extra: &str,
        tls_ca: Option<PathBuf>,
    ) -> Cockpit {
        Cockpit::start_text(cockpit_config(controllers, ca, extra), tls_ca).await
    }

    /// Starts a cockpit with this configuration text and waits until it follows.
    pub async fn start_text(text: String, tls_ca: Option<PathBuf>) -> Cockpit {
        let c = Cockpit::spawn(text, tls_ca).await;
        c.wait_following().await;
        c
    }

    /// Starts a cockpit with this configuration text, without waiting for anything.
    pub async fn spawn(text: String, tls_ca: Option<PathBuf>) -> Cockpit {
        let config = ordo_cockpit_api::config::Config::parse(&text, Path::new("/"))
            .expect("cockpit config parses");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if let Err(e) = ordo_cockpit_api::run_on(listener, config, async {
                let _ = rx.await;
            })
            .await
            {
                eprintln!("cockpit stopped: {e}");
            }
        });
        let scheme = if tls_ca.is_some() { "https" } else { "http" };
        Cockpit {
            base: format!("{scheme}://127.0.0.1:{port}"),
            port,
            stop: Some(tx),
            task: Some(task),
            tls_ca,
        }
    }

    pub async fn wait_following(&self) {
        let http = self.client(None);
        let url = format!("{}/health", self.base);
        until("the cockpit to follow the controller", 20_000, || {
            let http = http.clone();
            let url = url.clone();
            async move {
                let h: Value = http.get_json(&url).await.ok()?;
                (h["status"] == "ok").then_some(())
            }
        })
        .await;
    }

    pub fn client(&self, token: Option<&str>) -> HttpsClient {
        let tls = match &self.tls_ca {
            Some(ca) => {
                let ca = ordo_net::tls::CaBundle::from_pem_file(ca).expect("ca");
                ordo_net::tls::client_config(&ca, None).expect("tls")
            }
            None => {
                let ca =
                    ordo_net::tls::CaBundle::from_pem(TestPki::new("x").expect("pki").ca_pem())
                        .expect("ca");
                ordo_net::tls::client_config(&ca, None).expect("tls")
            }
        };
        let c = HttpsClient::new(
            tls,
            HttpsClientOptions {
                allow_plain_http: true,
                ..HttpsClientOptions::default()
            },
        );
        match token {
            Some(t) => c.with_bearer(t).expect("bearer"),
            None => c,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `token`, any answer.
    pub async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> HttpResponse {
        let method = method.parse().expect("method");
        let body = body.map(|b| (bytes::Bytes::from(b.to_string()), "application/json"));
        self.client(token)
            .request(method, &self.url(path), body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// `GET path` as the viewer, expecting 200 and JSON.
    pub async fn get(&self, path: &str) -> Value {
        let r = self.call(Some(VIEWER), "GET", path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", text(&r));
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `POST path` with `token`, expecting 200 and JSON.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let r = self.call(Some(token), "POST", path, Some(body)).await;
        assert_eq!(r.status, 200, "POST {path}: {}", text(&r));
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn last_event_id(&self) -> u64 {
        self.get("/api/v1/health").await["lastEventId"]
            .as_u64()
            .expect("lastEventId")
    }

    /// Waits until the view has caught up with the controller.
    pub async fn caught_up(&self, controller: &Controller) {
        let target = controller.get("/api/v1/state").await["eventId"]
            .as_u64()
            .expect("eventId");
        until("the cockpit to catch up", 20_000, || async move {
            (self.last_event_id().await >= target).then_some(())
        })
        .await;
    }

    /// Waits until order `id` is in `state`.
    pub async fn order_in(&self, id: &str, state: &str) -> Value {
        let path = format!("/api/v1/orders/{}", id.replace('|', "%7C"));
        until(&format!("order {id} to be {state}"), 20_000, || {
            let path = path.clone();
            async move {
                let r = self.call(Some(VIEWER), "GET", &path, None).await;
                if r.status != 200 {
                    return None;
                }
                let o: Value = serde_json::from_slice(&r.body).ok()?;
                (o["state"] == state).then_some(o)
            }
        })
        .await
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for Cockpit {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub fn text(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

pub fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(r)))
}

/// Deploys [`INVENTORY`] through the cockpit as the admin.
pub async fn deploy(cockpit: &Cockpit) -> Value {
    cockpit
        .post(
            ADMIN,
            "/api/v1/deploy",
            json!({"files": [{"name": "test.yaml", "text": INVENTORY}]}),
        )
        .await
}

/// Opens a plain WebSocket to the cockpit (`path` with query), with an optional bearer.
pub async fn ws(
    cockpit: &Cockpit,
    path: &str,
    token: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{}{path}", cockpit.port)
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", cockpit.port))
        .await
        .expect("connect");
    tokio_tungstenite::client_async(request, tcp)
        .await
        .map(|(ws, _)| ws)
}

/// The next text frame of a WebSocket as JSON, within `timeout_ms`.
pub async fn next_json<S>(ws: &mut S, timeout_ms: u64) -> Option<Value>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                return serde_json::from_str(t.as_str()).ok();
            }
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) | Ok(None) => {
                return None;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Err(_) => return None,
        }
    }
}

/// A real agent `local` in-process, with a certificate of the controller's CA.
pub struct Agent {
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Agent {
    pub async fn start(controller: &Controller, dir: &Path) -> Agent {
        Agent::start_as(controller, dir, "local", None).await
    }

    /// Agent `id` in `dir` (its own folder); with `director`, a subagent of that director.
    pub async fn start_as(
        controller: &Controller,
        dir: &Path,
        id: &str,
        director: Option<&str>,
    ) -> Agent {
        let pair = controller
            .pki
            .issue(
                &format!("agent-{id}"),
                &IssueSpec::local([ordo_net::identity::agent_uri(id)]),
            )
            .expect("agent certificate");
        write(dir, "agent.pem", &pair.cert_pem);
        write(dir, "agent.key", &pair.key_pem);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut text = format!(
            "agent_id = \"{id}\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n[tls]\ncertificate = \"agent.pem\"\nkey = \"agent.key\"\ncontroller_ca = {ca:?}\n[limits]\njournal_fsync = false\n",
            ca = controller.ca().display().to_string(),
        );
        if let Some(director) = director {
            text.push_str(&format!("[subagent]\ndirector = \"{director}\"\n"));
        }
        let config = ordo_agent::config::Config::parse(&text, dir).expect("agent config");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if let Err(e) = ordo_agent::run_with_listener(config, listener, async {
                let _ = rx.await;
            })
            .await
            {
                eprintln!("agent stopped: {e}");
            }
        });
        Agent {
            port,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The inventory of this agent and a workflow `hello` whose job writes to stdout and
    /// stderr over a second.
    pub fn inventory(&self) -> String {
        format!(
            r#"
agent: local
url: wss://127.0.0.1:{port}
---
workflow: hello
jobs:
  greet:
    agent: local
    script: |
      echo "hello from the job"
      echo "a warning" >&2
      sleep 1
      echo "done"
    timeout: 30s
steps:
  - run: greet
"#,
            port = self.port
        )
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
