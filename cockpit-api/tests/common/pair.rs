//! A real pair for the process tests: controller A (node 1), controller B (node 2) and the
//! watch (node 3), each an `ordo-controller` process with its `[cluster]` section, on
//! 127.0.0.1, with the cockpit's service token.

use super::{SERVICE, controller_executable, free_port};
use ordo_net::certs::{IssueSpec, TestPki};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// One voter process.
pub struct Node {
    pub id: u64,
    pub url: String,
    config: PathBuf,
    log: PathBuf,
    process: Option<std::process::Child>,
}

impl Node {
    pub fn start(&mut self) {
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

    pub fn kill(&mut self) {
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

pub struct Pair {
    dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
}

impl Pair {
    /// Controller A (node 1), controller B (node 2) and the watch (node 3), started.
    pub fn start() -> Pair {
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

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn client(&self) -> ordo_net::client::HttpsClient {
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
    pub async fn active(&self) -> usize {
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

    pub async fn get(&self, k: usize, path: &str) -> Value {
        self.client()
            .get_json(&format!("{}{path}", self.nodes[k].url))
            .await
            .unwrap_or_else(|e| panic!("GET {path} of node {}: {e}", self.nodes[k].id))
    }
}
