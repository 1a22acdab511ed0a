//! The compose cluster of `deploy/compose` in a real Docker engine: the image built from the
//! `ordo` binary of this build on the local Debian base (`deploy/docker/base-image.sh` makes it
//! once and keeps it by its tag, `deploy/docker/Dockerfile.local` adds the binary), the cluster
//! brought up under a project name of its own with only the cockpit published on 127.0.0.1,
//! and the faults a server meets: `docker kill`, a network disconnect, `docker pause`, a
//! restart; and a rolling upgrade, each controller replaced in turn by a container of a second
//! image ([`build_next_image`]) with a switchover between. The containers talk to each other on the project's own network; the test reaches
//! them only through the cockpit's published port and the Docker CLI.
//!
//! [`engine`] tells whether an engine answers. [`Compose`] removes its containers, network,
//! volumes and image when dropped, on failure too; [`Compose::up`] first removes what an
//! earlier run that was killed left behind (projects `ordotest<pid>` of processes gone).

use crate::history::{self, EventJournal, History, Verdict};
use crate::pair::{Ledger, read_journal};
use anyhow::{Context, Result, anyhow, bail};
use axum::http::Method;
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use serde_json::{Value as Json, json};
use std::borrow::BorrowMut;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prefix of the compose projects (and images) of these tests; the process id follows.
const PROJECT_PREFIX: &str = "ordotest";
/// Longest wait for the cluster to be up (an active controller the cockpit follows).
const UP_TIMEOUT_MS: u64 = 120_000;
/// Longest wait for a failover, and for a node to be back as a passive one.
const ROLE_TIMEOUT_MS: u64 = 60_000;
/// How often the cockpit's cluster view is read.
const POLL_MS: u64 = 50;
/// Longest time for one docker or compose command.
const COMMAND_TIMEOUT_MS: u64 = 300_000;
/// Time for one order to be acknowledged, retries included.
const ADD_TIMEOUT_MS: u64 = 60_000;
/// Requests for one order at most.
const ADD_ATTEMPTS_MAX: u32 = 1_000;
/// Pause between two orders of the load: the load adds fewer orders a second than the agents
/// end (each runs one job of a second at a time), so that its backlog stays short.
const LOAD_PAUSE_MS: u64 = 500;

/// The repository's top folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command to its end within [`COMMAND_TIMEOUT_MS`] (killed after it), its output kept.
fn run(mut cmd: impl BorrowMut<Command>) -> Result<Output> {
    let cmd = cmd.borrow_mut();
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    // Read both pipes on threads so that a full pipe cannot stall the child.
    let mut out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut err = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut b);
        b
    });
    let deadline = Instant::now() + Duration::from_millis(COMMAND_TIMEOUT_MS);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} did not end within {COMMAND_TIMEOUT_MS} ms");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Runs a command that must succeed; its stdout, trimmed.
fn ok(mut cmd: impl BorrowMut<Command>) -> Result<String> {
    let cmd = cmd.borrow_mut();
    let shown = format!("{cmd:?}");
    let out = run(cmd)?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

/// Whether a Docker engine answers (the server's version, not only the client's).
pub fn engine() -> bool {
    let mut c = docker(&["version", "--format", "{{.Server.Version}}"]);
    matches!(run(&mut c), Ok(out) if out.status.success() && !out.stdout.trim_ascii().is_empty())
}

/// `true` when the Docker tests should run. Without an engine they say loudly that they did
/// not run and return `false`; under `CI=true` a missing engine fails them.
pub fn engine_or_skip(test: &str) -> bool {
    if engine() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: no Docker engine answers (`docker version`), and CI=true: the Docker tests must run in CI"
    );
    eprintln!(
        "\n==============================================================\n\
         SKIPPED {test}: no Docker engine answers (`docker version`).\n\
         The Docker tests did NOT run.\n\
         ==============================================================\n"
    );
    false
}

/// The compose command: `docker-compose`, or `docker compose` where that exists instead.
fn compose_program() -> Vec<String> {
    let standalone = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if standalone {
        vec!["docker-compose".into()]
    } else {
        vec!["docker".into(), "compose".into()]
    }
}

/// Makes the Debian base image unless its tag exists (`deploy/docker/base-image.sh`).
pub fn ensure_base_image() -> Result<()> {
    let script = repo().join("deploy/docker/base-image.sh");
    ok(Command::new("bash").arg(script)).map(|_| ())
}

/// `target/<profile>/ordo` of this build, built first so that it is current.
pub fn ordo_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().ok_or_else(|| anyhow!("no parent"))?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().ok_or_else(|| anyhow!("no parent"))?;
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut c = Command::new(cargo);
    c.args(["build", "-p", "ordo-cli", "--bin", "ordo"])
        .current_dir(repo());
    if release {
        c.arg("--release");
    }
    ok(&mut c)?;
    let ordo = dir.join("ordo");
    if !ordo.exists() {
        bail!("{} is missing after the build", ordo.display());
    }
    Ok(ordo)
}

/// Builds image `tag` with `Dockerfile.local` from the `ordo` binary of this build.
pub fn build_image(tag: &str) -> Result<()> {
    let ordo = ordo_binary()?;
    let context = tempfile::Builder::new().prefix("ordo-image-").tempdir()?;
    let docker_dir = repo().join("deploy/docker");
    // A hard link where the file system allows it: the debug binary is large.
    if std::fs::hard_link(&ordo, context.path().join("ordo")).is_err() {
        std::fs::copy(&ordo, context.path().join("ordo"))?;
    }
    std::fs::copy(
        docker_dir.join("healthcheck.sh"),
        context.path().join("healthcheck.sh"),
    )?;
    let dockerfile = docker_dir.join("Dockerfile.local");
    ok(docker(&["build", "-q", "-t", tag, "-f"])
        .arg(dockerfile)
        .arg(context.path()))?;
    Ok(())
}

/// Builds image `tag` from image `from` with `version` in a label and in `ORDO_IMAGE_VERSION`:
/// the same binary in an image of its own, what a rolling upgrade replaces a controller with.
pub fn build_next_image(from: &str, tag: &str, version: &str) -> Result<()> {
    let context = tempfile::Builder::new().prefix("ordo-image-").tempdir()?;
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {from}\nLABEL org.opencontainers.image.version=\"{version}\"\nENV ORDO_IMAGE_VERSION=\"{version}\"\n"
        ),
    )?;
    ok(docker(&["build", "-q", "-t", tag]).arg(context.path()))?;
    Ok(())
}

/// The second image of a test's project (see [`build_next_image`]).
pub fn next_image_of(project_image: &str) -> String {
    match project_image.rsplit_once(':') {
        Some((repo, _)) => format!("{repo}:next"),
        None => format!("{project_image}:next"),
    }
}

/// Removes what runs of these tests that were killed left behind: the projects of processes
/// that are gone, and their images.
fn remove_leftovers(program: &[String]) {
    let Ok(projects) = ok(docker(&[
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.Label \"com.docker.compose.project\"}}",
    ])) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for p in projects.lines() {
        let Some(pid) = p.strip_prefix(PROJECT_PREFIX) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if seen.insert(p.to_owned()) {
            eprintln!("removing compose project {p} left behind by an earlier run");
            let mut c = Command::new(&program[0]);
            c.args(&program[1..])
                .args(["-p", p, "down", "-v", "-t", "1"]);
            c.current_dir(repo().join("deploy/compose"));
            let _ = run(&mut c);
            for tag in ["next", "image"] {
                let _ = run(&mut docker(&["rmi", "-f", &format!("{p}:{tag}")]));
            }
        }
    }
}

/// The compose cluster under a project of its own.
pub struct Compose {
    program: Vec<String>,
    pub project: String,
    pub image: String,
    /// Images services were replaced with ([`Compose::replace`]), removed with the project.
    replaced_with: Vec<String>,
    pub cockpit_port: u16,
    dir: tempfile::TempDir,
    api: Option<HttpsClient>,
    removed: bool,
}

/// The services of the compose file that are controllers (the pair).
pub const CONTROLLERS: [&str; 2] = ["ctl-a", "ctl-b"];

impl Compose {
    /// Brings the cluster up from image `image` (built before) and waits until a controller
    /// is active and the cockpit follows it.
    pub async fn up(image: &str) -> Result<Compose> {
        ordo_net::tls::install_crypto_provider();
        let program = compose_program();
        remove_leftovers(&program);
        let project = format!("{PROJECT_PREFIX}{}", std::process::id());
        let cockpit_port = crate::listen_port([127, 0, 0, 1].into())?;
        let mut c = Compose {
            program,
            project,
            image: image.to_owned(),
            replaced_with: Vec::new(),
            cockpit_port,
            dir: tempfile::Builder::new().prefix("ordo-compose-").tempdir()?,
            api: None,
            removed: false,
        };
        c.compose(&["up", "-d"])?;
        let deadline = Instant::now() + Duration::from_millis(UP_TIMEOUT_MS);
        // The admin token, once the cockpit runs (init wrote it before anything started).
        let token = loop {
            match ok(docker(&[
                "exec",
                &c.container("cockpit")?,
                "cat",
                "/etc/ordo/admin.token",
            ])) {
                Ok(t) if !t.is_empty() => break t,
                _ if Instant::now() > deadline => {
                    bail!("no admin token from the cockpit\n{}", c.logs())
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let ca_path = c.dir.path().join("ca.pem");
        let ca = ok(docker(&[
            "exec",
            &c.container("cockpit")?,
            "cat",
            "/etc/ordo/certs/ca.pem",
        ]))?;
        std::fs::write(&ca_path, ca)?;
        let ca = ordo_net::tls::CaBundle::from_pem_file(&ca_path)?;
        let tls = ordo_net::tls::client_config(&ca, None)?;
        let options = HttpsClientOptions {
            connect_timeout_ms: 2_000,
            request_timeout_ms: 30_000,
            body_bytes_max: 64 << 20,
            allow_plain_http: true,
        };
        c.api = Some(HttpsClient::new(tls, options).with_bearer(&token)?);
        loop {
            if c.active().await.is_some() {
                return Ok(c);
            }
            if Instant::now() > deadline {
                bail!(
                    "no active controller within {UP_TIMEOUT_MS} ms\n{}",
                    c.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn compose_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..])
            .args(["-p", &self.project])
            .args(args)
            .current_dir(repo().join("deploy/compose"))
            .env("ORDO_IMAGE", &self.image)
            .env("ORDO_COCKPIT_PORT", self.cockpit_port.to_string());
        cmd
    }

    /// Runs a compose command of this project.
    pub fn compose(&self, args: &[&str]) -> Result<String> {
        ok(&mut self.compose_command(args))
    }

    /// The container id of a service.
    pub fn container(&self, service: &str) -> Result<String> {
        let id = self.compose(&["ps", "-q", service])?;
        if id.is_empty() {
            bail!("service {service} has no container");
        }
        Ok(id)
    }

    /// Runs `docker <verb> <the service's container> <extra>`.
    pub fn docker_on(&self, verb: &str, service: &str, extra: &[&str]) -> Result<()> {
        let id = self.container(service)?;
        ok(docker(&[verb, &id]).args(extra))?;
        Ok(())
    }

    /// The project's network, as compose names it.
    pub fn network(&self) -> String {
        format!("{}_ordo", self.project)
    }

    /// Cuts a service off the cluster's network.
    pub fn disconnect(&self, service: &str) -> Result<()> {
        let id = self.container(service)?;
        ok(docker(&["network", "disconnect", &self.network(), &id]))?;
        Ok(())
    }

    /// Joins a service to the cluster's network again, under its service name.
    pub fn connect(&self, service: &str) -> Result<()> {
        let id = self.container(service)?;
        ok(docker(&[
            "network",
            "connect",
            "--alias",
            service,
            &self.network(),
            &id,
        ]))?;
        Ok(())
    }

    /// Replaces `service`'s container by one of image `image`, with the same volumes, network
    /// and alias (`up -d --no-deps` with `ORDO_IMAGE` set to it): one step of a rolling upgrade.
    pub fn replace(&mut self, service: &str, image: &str) -> Result<()> {
        if !self.replaced_with.iter().any(|i| i == image) {
            self.replaced_with.push(image.to_owned());
        }
        ok(self
            .compose_command(&["up", "-d", "--no-deps", "-t", "5", service])
            .env("ORDO_IMAGE", image))?;
        let running = self.image_of(service)?;
        if running != image {
            bail!("{service} runs image {running} after its replacement by {image}");
        }
        Ok(())
    }

    /// The image `service`'s container was made from, as it was named.
    pub fn image_of(&self, service: &str) -> Result<String> {
        ok(docker(&[
            "inspect",
            "--format",
            "{{.Config.Image}}",
            &self.container(service)?,
        ]))
    }

    /// A planned switchover through the cockpit (`POST /api/v1/cluster/switchover`): the
    /// active controller hands its role to the other one.
    pub async fn switchover(&self) -> Result<Json> {
        let r = self
            .api()
            .request(Method::POST, &self.url("/api/v1/cluster/switchover"), None)
            .await?;
        if !r.status.is_success() {
            bail!(
                "switchover answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        Ok(serde_json::from_slice(&r.body).unwrap_or(Json::Null))
    }

    /// The last lines of every service's log.
    pub fn logs(&self) -> String {
        match run(&mut self.compose_command(&["logs", "--no-color", "--tail", "40"])) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => format!("no logs: {e:#}"),
        }
    }

    fn api(&self) -> &HttpsClient {
        self.api.as_ref().expect("the API client is made in up")
    }

    /// The cockpit's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.cockpit_port)
    }

    /// The cockpit's view of the cluster (`GET /api/v1/cluster`), `None` without an answer.
    pub async fn cluster(&self) -> Option<Json> {
        self.api()
            .get_json::<Json>(&self.url("/api/v1/cluster"))
            .await
            .ok()
    }

    /// The service of the active controller, as the cockpit sees it.
    pub async fn active(&self) -> Option<String> {
        let view = self.cluster().await?;
        let url = view["active"].as_str()?;
        CONTROLLERS
            .iter()
            .find(|s| url == format!("https://{s}:4443"))
            .map(|s| (*s).to_owned())
    }

    /// Waits until a controller other than `not` is active; the time it took from `since`.
    pub async fn wait_active_other(&self, not: &str, since: Instant) -> Result<(String, Duration)> {
        let deadline = Instant::now() + Duration::from_millis(ROLE_TIMEOUT_MS);
        loop {
            if let Some(a) = self.active().await
                && a != not
            {
                return Ok((a, since.elapsed()));
            }
            if Instant::now() > deadline {
                bail!(
                    "no controller but {not} became active within {ROLE_TIMEOUT_MS} ms\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// `service`'s own role, from its `/health` read inside its container (the health
    /// check's token); `None` when it does not answer.
    pub fn node_role(&self, service: &str) -> Option<String> {
        let id = self.container(service).ok()?;
        let out = ok(docker(&[
            "exec",
            &id,
            "bash",
            "-c",
            "ORDO_TOKEN=$(cat /etc/ordo/health.token) ordo --api https://localhost:4443 \
             --ca /etc/ordo/certs/ca.pem cluster status --json",
        ]))
        .ok()?;
        let view: Json = serde_json::from_str(&out).ok()?;
        view["members"][0]["health"]["role"]
            .as_str()
            .map(str::to_owned)
    }

    /// Waits until controller `service` says itself that it is active; the time from `since`.
    pub async fn wait_node_active(&self, service: &str, since: Instant) -> Result<Duration> {
        let deadline = Instant::now() + Duration::from_millis(ROLE_TIMEOUT_MS);
        loop {
            if self.node_role(service).as_deref() == Some("active") {
                return Ok(since.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "{service} did not become active within {ROLE_TIMEOUT_MS} ms\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Waits until `service` answers its health as the passive controller and has applied
    /// what the active one committed when the wait began.
    pub async fn wait_passive(&self, service: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(ROLE_TIMEOUT_MS);
        let url = format!("https://{service}:4443");
        loop {
            if let Some(view) = self.cluster().await {
                let members = view["members"].as_array().cloned().unwrap_or_default();
                let commit = members
                    .iter()
                    .find(|m| m["health"]["role"] == "active")
                    .and_then(|m| m["health"]["cluster"]["commit"].as_u64());
                let me = members.iter().find(|m| m["url"] == url.as_str());
                if let (Some(commit), Some(me)) = (commit, me)
                    && me["health"]["role"] == "passive"
                    && me["health"]["cluster"]["applied"].as_u64() >= Some(commit)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{service} was not back as the passive controller within {ROLE_TIMEOUT_MS} ms: {}\n{}",
                    self.cluster().await.unwrap_or_default(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(4 * POLL_MS)).await;
        }
    }

    /// Deploys inventory YAML through the cockpit.
    pub async fn deploy(&self, name: &str, yaml: &str) -> Result<Json> {
        let url = self.url(&format!("/api/v1/deploy?name={name}"));
        let r = self
            .api()
            .request(
                Method::POST,
                &url,
                Some((yaml.as_bytes().to_vec().into(), "application/yaml")),
            )
            .await?;
        if !r.status.is_success() {
            bail!(
                "deploy answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        Ok(serde_json::from_slice(&r.body)?)
    }

    /// Every order the cockpit lists.
    pub async fn orders(&self) -> Result<Vec<Json>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1_000 {
            let mut url = self.url("/api/v1/orders?limit=1000");
            if let Some(a) = &after {
                url.push_str(&format!("&after={a}"));
            }
            let page: Json = self.api().get_json(&url).await?;
            all.extend(page["orders"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_owned()),
                None => return Ok(all),
            }
        }
        bail!("more than 1000 pages of orders")
    }

    /// Waits until every order of `ids` ended.
    pub async fn wait_ended(&self, ids: &[String], within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(all) = self.orders().await {
                let (done, pending) = crate::pending_orders(&all, ids, crate::ENDED);
                if done == ids.len() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!(
                        "{done} of {} orders ended within {within:?}; e.g. {pending:?}\n{}",
                        ids.len(),
                        self.logs()
                    );
                }
            } else if Instant::now() > deadline {
                bail!("the cockpit did not list its orders\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The active controller's committed event id.
    pub async fn committed(&self) -> Result<u64> {
        let view = self
            .cluster()
            .await
            .ok_or_else(|| anyhow!("no cluster view"))?;
        view["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["health"]["role"] == "active")
            .and_then(|m| m["health"]["cluster"]["committedEventId"].as_u64())
            .ok_or_else(|| anyhow!("no active controller's committedEventId in {view}"))
    }

    /// Copies a stopped service's journal out of its container and reads it.
    pub fn journal(&self, service: &str) -> Result<Option<EventJournal>> {
        let id = self.container(service)?;
        let copy = self.dir.path().join(format!("journal-{service}"));
        ok(docker(&["cp", &format!("{id}:/var/lib/ordo/journal")]).arg(&copy))?;
        let read = self.dir.path().join(format!("journal-{service}-read"));
        Ok(read_journal(&copy, &read, service.to_owned())?.map(|j| j.events))
    }

    /// An orderer through the cockpit.
    pub fn orderer(&self) -> Orderer {
        Orderer {
            api: self.api().clone(),
            url: self.url("/api/v1/orders"),
            ledger: Arc::default(),
        }
    }

    /// Removes the project's containers, network and volumes and the image.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        if let Err(e) = self.compose(&["down", "-v", "--remove-orphans", "-t", "1"]) {
            eprintln!("removing compose project {}: {e:#}", self.project);
        }
        // The replacements first: they are built on top of the project's image.
        for image in self
            .replaced_with
            .iter()
            .chain(std::iter::once(&self.image))
        {
            let _ = run(&mut docker(&["rmi", "-f", image]));
        }
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Adds orders through the cockpit, retrying each with the same id until it is taken, and
/// keeps every request in a [`Ledger`].
#[derive(Clone)]
pub struct Orderer {
    api: HttpsClient,
    url: String,
    ledger: Arc<Mutex<Ledger>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Orderer {
    pub fn ledger(&self) -> Ledger {
        lock(&self.ledger).clone()
    }

    /// Adds order `id` of `workflow` until it is acknowledged (added, or a duplicate of one
    /// that was).
    pub async fn add(&self, id: &str, workflow: &str) -> Result<()> {
        let body = serde_json::to_vec(&json!({"orders": [{"id": id, "workflow": workflow}]}))?;
        let deadline = Instant::now() + Duration::from_millis(ADD_TIMEOUT_MS);
        let mut last = String::new();
        for _ in 0..ADD_ATTEMPTS_MAX {
            if Instant::now() > deadline {
                break;
            }
            lock(&self.ledger)
                .orders
                .entry(id.to_owned())
                .or_default()
                .attempts += 1;
            match self
                .api
                .request(
                    Method::POST,
                    &self.url,
                    Some((body.clone().into(), "application/json")),
                )
                .await
            {
                Ok(r) if r.status.is_success() => {
                    let a: Json = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
                    let result = &a["results"][0];
                    let mut ledger = lock(&self.ledger);
                    let sent = ledger.orders.entry(id.to_owned()).or_default();
                    if result["id"] == id
                        && (result["added"] == true || result["duplicate"] == true)
                    {
                        sent.acknowledged = true;
                        return Ok(());
                    }
                    sent.last_error = Some(a.to_string());
                    bail!("adding order {id}: {a}");
                }
                Ok(r) => last = format!("{}: {}", r.status, String::from_utf8_lossy(&r.body)),
                Err(e) => last = e.to_string(),
            }
            lock(&self.ledger)
                .orders
                .entry(id.to_owned())
                .or_default()
                .last_error = Some(last.clone());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("order {id} was not taken within {ADD_TIMEOUT_MS} ms; last: {last}")
    }
}

/// Orders `<prefix>-0`, `<prefix>-1`, ... added one after the other until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Load {
    pub fn start(orderer: &Orderer, workflow: &str, prefix: &str, orders_max: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, acknowledged) = tokio::sync::watch::channel(0);
        let (orderer, workflow, prefix) = (orderer.clone(), workflow.to_owned(), prefix.to_owned());
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            for i in 0..orders_max {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                orderer.add(&format!("{prefix}-{i}"), &workflow).await?;
                tx.send_replace(i + 1);
                tokio::time::sleep(Duration::from_millis(LOAD_PAUSE_MS)).await;
            }
            Ok(())
        });
        Load {
            stop,
            acknowledged,
            task,
        }
    }

    /// Waits until `more` further orders are acknowledged.
    pub async fn wait_more(&mut self, more: usize) -> Result<()> {
        let n = *self.acknowledged.borrow() + more;
        let wait = self.acknowledged.wait_for(|a| *a >= n);
        let waited = tokio::time::timeout(Duration::from_millis(2 * ADD_TIMEOUT_MS), wait)
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => Ok(()),
            Ok(false) => bail!("the load ended before {n} acknowledged orders"),
            Err(_) => bail!(
                "{} orders acknowledged, waiting for {n}",
                *self.acknowledged.borrow()
            ),
        }
    }

    /// Stops the load after the order being added; how many were acknowledged.
    pub async fn stop(self) -> Result<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .map_err(|e| anyhow!("the load's task failed: {e}"))??;
        Ok(*self.acknowledged.borrow())
    }
}

/// The history checker over the voters' journals: they must agree where they overlap, each
/// controller's must reach `committed`, and the verdict over their merged events.
pub fn check_journals(
    journals: &[(String, bool, EventJournal)],
    committed: u64,
    ledger: &Ledger,
    jobs: u32,
) -> Result<(Verdict, History)> {
    let only: Vec<EventJournal> = journals.iter().map(|(.., j)| j.clone()).collect();
    history::identical_prefixes(&only)
        .map_err(|e| anyhow!("the voters' committed journals disagree:\n{e}"))?;
    for (name, controller, j) in journals {
        if *controller && j.last_id().unwrap_or(0) < committed {
            bail!(
                "{name}'s journal ends at event {:?}, before the committed event {committed}",
                j.last_id()
            );
        }
    }
    let mut events = Vec::new();
    for (id, bytes) in history::merged(&only) {
        let stored = ordo_api::record::Record::decode(id, &bytes)?;
        let frame = ordo_api::frame::EventFrame::of(id, &stored);
        events.push(serde_json::to_value(&frame)?);
    }
    let history = History::from_events(&events);
    let verdict = history.verdict(&ledger.attempted(), &ledger.acknowledged(), jobs);
    Ok((verdict, history))
}
