//! The cockpit in front of a real pair: two `ordo-controller` processes and the watch, each
//! with its `[cluster]` section, on 127.0.0.1. A kill -9 of the active controller: commands go
//! on through the cockpit at the other one, and the cockpit's view goes on without a gap or a
//! duplicate, ending equal to the new active controller's own state.

mod common;

use common::*;
use ordo_net::certs::{IssueSpec, TestPki};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// One voter process.
struct Node {
    id: u64,
    url: String,
    config: PathBuf,
    log: PathBuf,
    process: Option<std::process::Child>,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the log");
        self.process = Some(
            std::process::Command::new(controller_executable())
                .arg("--config")
                .arg(&self.config)
                .env("RUST_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start ordo-controller"),
        );
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Pair {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl Pair {
    /// Controller A (node 1), controller B (node 2) and the watch (node 3), started.
    fn start() -> Pair {
        ordo_net::tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("a temp dir");
        let pki = TestPki::new("main").expect("a test CA");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        write("ca.pem", pki.ca_pem());
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let voters = ["controller", "controller", "watch"];
        let members: String = ports
            .iter()
            .zip(voters)
            .enumerate()
            .map(|(k, ((api, raft), voter))| {
                format!(
                    "[[cluster.nodes]]\nid = {}\nvoter = \"{voter}\"\nraft_address = \"127.0.0.1:{raft}\"\napi_url = \"https://127.0.0.1:{api}\"\n",
                    k + 1
                )
            })
            .collect();
        let mut nodes = Vec::new();
        for (k, (api, raft)) in ports.iter().enumerate() {
            let id = k as u64 + 1;
            let pair = pki
                .issue(
                    &format!("node-{id}"),
                    &IssueSpec::local([ordo_net::identity::controller_uri("main")]),
                )
                .expect("a certificate");
            write(&format!("node-{id}.pem"), &pair.cert_pem);
            write(&format!("node-{id}.key"), &pair.key_pem);
            let config = write(
                &format!("node-{id}.toml"),
                &format!(
                    r#"
controller_id = "node-{id}"
cluster_id = "main"
data_dir = "data-{id}"
listen = "127.0.0.1:{api}"
[tls]
certificate = "node-{id}.pem"
key = "node-{id}.key"
client_certificate = "node-{id}.pem"
client_key = "node-{id}.key"
ca = "ca.pem"
[[tokens]]
name = "cockpit"
sha256 = "{service}"
role = "admin"
[limits]
journal_fsync = false
[cluster]
node_id = {id}
raft_listen = "127.0.0.1:{raft}"
{members}"#,
                    service = ordo_cockpit_api::api::token_hash(SERVICE),
                ),
            );
            let mut node = Node {
                id,
                url: format!("https://127.0.0.1:{api}"),
                config,
                log: dir.path().join(format!("node-{id}.log")),
                process: None,
            };
            node.start();
            nodes.push(node);
        }
        Pair { dir, nodes }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn client(&self) -> ordo_net::client::HttpsClient {
        let ca = ordo_net::tls::CaBundle::from_pem_file(&self.ca()).expect("ca");
        let tls = ordo_net::tls::client_config(&ca, None).expect("tls");
        ordo_net::client::HttpsClient::new(
            tls,
            ordo_net::client::HttpsClientOptions {
                connect_timeout_ms: 1_000,
                request_timeout_ms: 5_000,
                ..Default::default()
            },
        )
        .with_bearer(SERVICE)
        .expect("bearer")
    }

    /// The index of the one controller whose `/health` says it is active (waits for it).
    async fn active(&self) -> usize {
        let http = self.client();
        let logs = || self.logs();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                for (k, n) in self.nodes.iter().enumerate() {
                    if n.process.is_none() {
                        continue;
                    }
                    let url = format!("{}/api/v1/health", n.url);
                    if let Ok(h) = http.get_json::<Value>(&url).await
                        && h["role"] == "active"
                    {
                        return k;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no controller became active in 30 s:\n{}", logs()))
    }

    async fn get(&self, k: usize, path: &str) -> Value {
        self.client()
            .get_json(&format!("{}{path}", self.nodes[k].url))
            .await
            .unwrap_or_else(|e| panic!("GET {path} of node {}: {e}", self.nodes[k].id))
    }
}

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
