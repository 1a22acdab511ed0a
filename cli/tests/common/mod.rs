//! A real controller in this process (its own runtime thread, a free 127.0.0.1 port, TLS from
//! a test CA, fsync off) and `ordo` commands pointed at it.

#![allow(dead_code)]

use assert_cmd::Command;
use ordo_net::certs::{IssueSpec, TestPki};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a controller may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `ordo` command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789abcdef";
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef0123456789abcdef";

/// Inventory whose orders need no agent: a prompt, a sleep, a failure.
pub const ASK_YAML: &str = "\
workflow: ask
parameters:
  who: { default: world }
allowUndeclared: true
steps:
  - prompt: \"May $who go on?\"
  - finish: { message: \"answered\" }
---
workflow: nap
steps:
  - sleep: 1s
---
workflow: broken
steps:
  - fail: { message: \"broken on purpose\" }
";

/// An agent nobody runs and a workflow with a job on it: its orders wait to attach.
pub fn absent_agent_yaml(port: u16) -> String {
    format!(
        "\
agent: far
url: wss://127.0.0.1:{port}
certificateName: localhost
---
workflow: remote
jobs:
  work: {{ agent: far, script: 'echo working', timeout: 1m }}
steps:
  - run: work
"
    )
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A controller running in this process until dropped.
pub struct Controller {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub ca: PathBuf,
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Controller {
    /// A controller with a fresh test CA and the admin and viewer tokens.
    pub fn start() -> Controller {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new("main").unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        write(&certs, "ca.pem", pki.ca_pem());
        let server = pki
            .issue("controller", &IssueSpec::local(["ordo:controller:main"]))
            .unwrap();
        write(&certs, "controller.pem", &server.cert_pem);
        write(&certs, "controller.key", &server.key_pem);
        let tokens = [
            ("admin", ADMIN_TOKEN, "admin"),
            ("viewer", VIEWER_TOKEN, "viewer"),
        ]
        .map(|(name, token, role)| token_entry(name, token, role))
        .join("\n");
        Controller::start_with(dir, &certs, "controller", &tokens)
    }

    /// Like [`Controller::start`], with `extra` configuration tables (`[retention]`, ...).
    pub fn start_extra(extra: &str) -> Controller {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new("main").unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        write(&certs, "ca.pem", pki.ca_pem());
        let server = pki
            .issue("controller", &IssueSpec::local(["ordo:controller:main"]))
            .unwrap();
        write(&certs, "controller.pem", &server.cert_pem);
        write(&certs, "controller.key", &server.key_pem);
        let tokens = [
            ("admin", ADMIN_TOKEN, "admin"),
            ("viewer", VIEWER_TOKEN, "viewer"),
        ]
        .map(|(name, token, role)| token_entry(name, token, role))
        .join("\n");
        Controller::start_with(dir, &certs, "controller", &format!("{tokens}\n{extra}\n"))
    }

    /// A cockpit following this controller (plain HTTP on 127.0.0.1), with `limits` lines in
    /// its `[limits]` table; `ordo --api <its url>` talks to it. Stops when dropped.
    pub fn cockpit(&self, limits: &str) -> Cockpit {
        let port = free_port();
        let text = format!(
            r#"
controllers = ["{url}"]
controller_ca = "{ca}"
controller_token = "{ADMIN_TOKEN}"
listen = "127.0.0.1:{port}"
[[users]]
name = "admin"
sha256 = "{admin}"
role = "admin"
[follow]
reconnect_min_ms = 50
reconnect_max_ms = 500
[limits]
{limits}
"#,
            url = self.url,
            ca = self.ca.display(),
            admin = ordo_api::auth::token_hash(ADMIN_TOKEN),
        );
        let config = ordo_cockpit_api::config::Config::parse(&text, self.dir.path()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = runtime.block_on(ordo_cockpit_api::run(config, shutdown)) {
                eprintln!("cockpit stopped: {e}");
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline && !thread.is_finished(),
                "the cockpit did not start listening on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Cockpit {
            url: format!("http://127.0.0.1:{port}"),
            dir: self.dir.path().to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A controller with the CA and `<name>.pem/.key` under `certs` and the given
    /// `[[tokens]]` entries.
    pub fn start_with(dir: tempfile::TempDir, certs: &Path, name: &str, tokens: &str) -> Self {
        let port = free_port();
        let c = |f: &str| certs.join(f).display().to_string();
        let text = format!(
            r#"
controller_id = "primary"
cluster_id = "main"
data_dir = "{data}"
listen = "127.0.0.1:{port}"

[tls]
certificate = "{cert}"
key = "{key}"
client_certificate = "{cert}"
client_key = "{key}"
ca = "{ca}"

{tokens}

[limits]
journal_fsync = false

[agents]
reconnect_min_ms = 200
reconnect_max_ms = 1000
"#,
            data = dir.path().join("data").display(),
            cert = c(&format!("{name}.pem")),
            key = c(&format!("{name}.key")),
            ca = c("ca.pem"),
        );
        let config = ordo_controller::config::Config::parse(&text, dir.path()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = runtime.block_on(ordo_controller::run(config, shutdown)) {
                eprintln!("controller stopped: {e}");
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline && !thread.is_finished(),
                "the controller did not start listening on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Controller {
            url: format!("https://127.0.0.1:{port}"),
            ca: certs.join("ca.pem"),
            port,
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `ordo` with no settings from the environment or a profile.
    pub fn bare(&self) -> Command {
        bare(self.dir.path())
    }

    /// `ordo --api URL --ca CA --token <admin>`.
    pub fn ordo(&self) -> Command {
        self.ordo_as(ADMIN_TOKEN)
    }

    pub fn ordo_as(&self, token: &str) -> Command {
        let mut cmd = Command::from_std(self.ordo_std(token));
        cmd.timeout(COMMAND_TIMEOUT);
        cmd
    }

    /// `ordo --api URL --ca CA --token TOKEN` as a plain command.
    pub fn ordo_std(&self, token: &str) -> std::process::Command {
        let mut cmd = bare_std(self.dir.path());
        cmd.arg("--api")
            .arg(&self.url)
            .arg("--ca")
            .arg(&self.ca)
            .arg("--token")
            .arg(token);
        cmd
    }

    /// Deploys `text` as one file through the CLI.
    pub fn deploy(&self, name: &str, text: &str) {
        let path = write(&self.dir.path().join("inventory"), name, text);
        self.ordo().arg("deploy").arg(path).assert().success();
    }

    /// `order show ID --json`.
    pub fn order(&self, id: &str) -> serde_json::Value {
        let out = self
            .ordo()
            .args(["order", "show", "--json", id])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }

    /// Waits until the order satisfies `f` (at most 20 s): looks at it again on each of its
    /// events, as `ordo watch --key ID` prints them.
    pub fn wait_for(&self, id: &str, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
        let mut watch = self.ordo_std(ADMIN_TOKEN);
        watch.args(["watch", "--json", "--after", "0", "--key", id]);
        let (mut child, events) = follow_lines(watch);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut o = self.order(id);
        while !f(&o) {
            let event = deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| events.recv_timeout(left).ok());
            if event.is_none() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("order {id} never {what}: {o}");
            }
            o = self.order(id);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cockpit running in this process until dropped.
pub struct Cockpit {
    pub url: String,
    dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Cockpit {
    /// `ordo --api <cockpit> --token <admin>`.
    pub fn ordo(&self) -> Command {
        let mut cmd = bare(&self.dir);
        cmd.arg("--api")
            .arg(&self.url)
            .arg("--token")
            .arg(ADMIN_TOKEN);
        cmd
    }
}

impl Drop for Cockpit {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `ordo` with ORDO_API/ORDO_TOKEN/ORDO_CA removed and the profile at `<dir>/no-profile.toml`.
pub fn bare(dir: &Path) -> Command {
    let mut cmd = Command::from_std(bare_std(dir));
    cmd.timeout(COMMAND_TIMEOUT);
    cmd
}

/// The same as a plain child-process command (for commands that run while the test acts).
pub fn bare_std(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("ordo"));
    cmd.env_remove("ORDO_API")
        .env_remove("ORDO_TOKEN")
        .env_remove("ORDO_CA")
        .env("ORDO_CONFIG", dir.join("no-profile.toml"));
    cmd
}

/// A child process that is killed if the test ends before it does.
pub struct Child(pub Option<std::process::Child>);

impl Child {
    pub fn spawn(mut cmd: std::process::Command) -> Child {
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Child(Some(cmd.spawn().unwrap()))
    }

    /// Waits for the process to end (at most [`COMMAND_TIMEOUT`], then it is killed) and
    /// returns the output.
    pub fn output(mut self) -> std::process::Output {
        let child = self.0.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                rx.recv().unwrap().unwrap()
            }
        }
    }
}

/// Starts `cmd` and returns it with the lines it prints on stdout, as they come.
pub fn follow_lines(
    mut cmd: std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn token_entry(name: &str, token: &str, role: &str) -> String {
    format!(
        "[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nrole = \"{role}\"\n",
        ordo_api::auth::token_hash(token)
    )
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
