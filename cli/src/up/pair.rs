//! `ordo up --pair`: the replicated pair on this machine, each server its own process of this
//! executable — controller A (node 1), controller B (node 2), the watch (node 3), the agent
//! `local` and the cockpit (which knows the two controllers' APIs) — so that a person can
//! `kill -9` the active controller and watch the other one take over in the web UI.
//!
//! The voters listen on 127.0.0.1, each on its own API and raft port (kept in
//! `pair-ports.json`, so a second run finds the same servers); their certificates cover
//! 127.0.0.1 and name the cluster (`ordo_cli::local::setup_pair`). Each server's log goes to
//! `logs/<name>.log`. Once a controller is active and the cockpit follows it, the examples are
//! deployed through the cockpit and every process is printed with its PID and role; then
//! every role change and every process that ends is printed as it happens. A server that
//! ends is not restarted: Ctrl-C stops the others, and `ordo up --pair` again starts
//! everything on the same data.

use super::{Args, LOCAL_AGENT, deploy_examples, wait_healthy, write_profile};
use anyhow::{Context, Result, anyhow, bail};
use ordo_api::view::ControllerHealth;
use ordo_cli::local::{self, LocalPair, PairListen, PairOptions};
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Longest wait for a controller to become active after the start.
const ACTIVE_TIMEOUT_MS: u64 = 60_000;
/// How often roles and processes are looked at.
const WATCH_EVERY_MS: u64 = 250;
/// Longest wait for one voter's `/health`.
const HEALTH_TIMEOUT_MS: u64 = 1_000;
/// Time the servers get to stop after SIGTERM before they are killed.
const STOP_TIMEOUT_MS: u64 = 10_000;
/// Lines of a log shown when its server ended at the start.
const LOG_TAIL_LINES: usize = 20;

/// Ports chosen once and kept: `(api, raft)` of nodes 1, 2, 3, and the agent's.
#[derive(serde::Serialize, serde::Deserialize)]
struct PairPorts {
    nodes: [(u16, u16); 3],
    agent: u16,
}

fn pair_ports(dir: &Path) -> Result<PairPorts> {
    let path = dir.join("pair-ports.json");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(p) = serde_json::from_str::<PairPorts>(&text)
    {
        return Ok(p);
    }
    // Held together until all are chosen, so that no two are the same.
    let mut held = Vec::new();
    let mut port = || -> Result<u16> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("choosing a free port")?;
        let p = l.local_addr()?.port();
        held.push(l);
        Ok(p)
    };
    let p = PairPorts {
        nodes: [(port()?, port()?), (port()?, port()?), (port()?, port()?)],
        agent: port()?,
    };
    std::fs::write(&path, serde_json::to_string(&p)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(p)
}

/// One server process.
struct Server {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
    /// The API of a voter (its `/health` tells its role).
    api_url: Option<String>,
    /// What it is when it is no voter (`agent`, `cockpit`).
    kind: &'static str,
    url: String,
    /// Its role as last seen (voters), and whether its end was told.
    role: Option<String>,
    ended: bool,
}

/// Starts `ordo <command> --config <config>` with its stderr in `log`.
fn spawn(command: &str, config: &Path, log: &Path) -> Result<(Child, u32)> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let child = Command::new(exe)
        .arg(command)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        // Should `ordo up` itself fail, its servers do not outlive it.
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start ordo {command} --config {}", config.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("ordo {command} ended at once"))?;
    Ok((child, pid))
}

/// The last lines of a log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn client(local: &LocalPair, plain: bool) -> Result<HttpsClient> {
    let ca = ordo_net::tls::CaBundle::from_pem_file(&local.ca)?;
    let tls = ordo_net::tls::client_config(&ca, None)?;
    Ok(HttpsClient::new(
        tls,
        HttpsClientOptions {
            connect_timeout_ms: HEALTH_TIMEOUT_MS,
            request_timeout_ms: if plain { 30_000 } else { HEALTH_TIMEOUT_MS },
            body_bytes_max: 16 << 20,
            allow_plain_http: plain,
        },
    )
    .with_bearer(&local.admin_token)?)
}

/// Each voter's `/health`, read at once (`None`: it did not answer).
async fn healths(api: &HttpsClient, servers: &[Server]) -> Vec<Option<ControllerHealth>> {
    futures_util::future::join_all(servers.iter().map(|s| async move {
        let url = format!("{}/api/v1/health", s.api_url.as_deref()?);
        let read = api.get_json::<ControllerHealth>(&url);
        tokio::time::timeout(Duration::from_millis(HEALTH_TIMEOUT_MS), read)
            .await
            .ok()?
            .ok()
    }))
    .await
}

/// A role as shown: the voter's own word, with its term when it has one.
fn role_text(h: &Option<ControllerHealth>) -> String {
    match h {
        None => "unreachable".to_owned(),
        Some(h) => match &h.cluster {
            Some(c) => format!("{} (term {})", h.role, c.term),
            None => h.role.clone(),
        },
    }
}

fn now() -> String {
    jiff::Zoned::now().strftime("%H:%M:%S").to_string()
}

/// Tells of servers that ended (once each); gives the first that ended while `fatal`.
fn reap(servers: &mut [Server]) -> Option<String> {
    let mut first = None;
    for s in servers.iter_mut().filter(|s| !s.ended) {
        if let Ok(Some(status)) = s.child.try_wait() {
            s.ended = true;
            let what = format!("{} (pid {}) ended: {status}", s.name, s.pid);
            say!("{} {what}", now());
            first.get_or_insert(format!(
                "{what}; its log ({}):\n{}",
                s.log.display(),
                tail(&s.log)
            ));
        }
    }
    first
}

/// Sends SIGTERM to every server still running, waits for them, kills what is left.
async fn stop(servers: &mut [Server]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for s in servers.iter().filter(|s| !s.ended) {
        if let Ok(pid) = i32::try_from(s.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let all = futures_util::future::join_all(servers.iter_mut().map(|s| s.child.wait()));
    if tokio::time::timeout(Duration::from_millis(STOP_TIMEOUT_MS), all)
        .await
        .is_err()
    {
        for s in servers.iter_mut() {
            let _ = s.child.start_kill();
            let _ = s.child.wait().await;
        }
    }
}

pub async fn up_pair(args: &Args) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    if args.dir.join("controller").exists() {
        bail!(
            "{} holds the data of a single controller (controller/, from `ordo up`); a pair needs a directory of its own (--dir)",
            args.dir.display()
        );
    }
    ordo_net::tls::install_crypto_provider();
    let ports = pair_ports(&args.dir)?;
    let on = |port: u16| -> SocketAddr { ([127, 0, 0, 1], port).into() };
    let nodes = ports.nodes.map(|(api, raft)| PairListen {
        api: on(api),
        raft: on(raft),
    });
    let local = local::setup_pair(
        &args.dir,
        &PairOptions {
            cluster_id: "local".into(),
            nodes,
            agents: vec![(LOCAL_AGENT.into(), on(ports.agent))],
            journal_fsync: true,
            cockpit_listen: Some(on(args.port)),
        },
    )?;
    let (cockpit_config, cockpit_url) = local
        .cockpit
        .clone()
        .ok_or_else(|| anyhow!("no cockpit configured"))?;
    let (_, agent_config, agent_url) = local
        .agent_configs
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no agent configured"))?;
    let logs = local.dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;

    let mut servers = Vec::new();
    for node in &local.nodes {
        let log = logs.join(format!("{}.log", node.name));
        let (child, pid) = spawn("controller", &node.config, &log)?;
        servers.push(Server {
            name: node.name.clone(),
            child,
            pid,
            log,
            api_url: Some(node.api_url.clone()),
            kind: "voter",
            url: node.api_url.clone(),
            role: None,
            ended: false,
        });
    }
    for (name, kind, config, url) in [
        (
            format!("agent-{LOCAL_AGENT}"),
            "agent",
            &agent_config,
            &agent_url,
        ),
        (
            "cockpit".to_owned(),
            "cockpit",
            &cockpit_config,
            &cockpit_url,
        ),
    ] {
        let log = logs.join(format!("{name}.log"));
        let (child, pid) = spawn(kind, config, &log)?;
        servers.push(Server {
            name,
            child,
            pid,
            log,
            api_url: None,
            kind,
            url: url.clone(),
            role: None,
            ended: false,
        });
    }
    let result = serve(args, &local, &mut servers, &cockpit_url, &agent_url).await;
    say!("stopping");
    stop(&mut servers).await;
    result
}

/// From the start until Ctrl-C (or SIGTERM): waits for an active controller and the cockpit,
/// deploys the examples, prints the processes, then every change.
async fn serve(
    args: &Args,
    local: &LocalPair,
    servers: &mut [Server],
    cockpit_url: &str,
    agent_url: &str,
) -> Result<()> {
    let voters = client(local, false)?;
    let api = client(local, true)?;
    let stopped = ordo_net::process::shutdown_signal();
    tokio::pin!(stopped);

    // A controller becomes active.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ACTIVE_TIMEOUT_MS);
    loop {
        if let Some(why) = reap(servers) {
            bail!("{why}");
        }
        let hs = healths(&voters, servers).await;
        if hs.iter().flatten().any(|h| h.role == "active") {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let roles: Vec<String> = servers
                .iter()
                .zip(&hs)
                .filter(|(s, _)| s.kind == "voter")
                .map(|(s, h)| format!("{}: {}", s.name, role_text(h)))
                .collect();
            bail!(
                "no controller became active within {} s ({}); see the logs in {}",
                ACTIVE_TIMEOUT_MS / 1000,
                roles.join(", "),
                local.dir.join("logs").display()
            );
        }
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(WATCH_EVERY_MS)) => {}
        }
    }
    // The cockpit follows it.
    let cockpit_health = format!("{cockpit_url}/health");
    tokio::select! {
        r = wait_healthy(&api, &cockpit_health) => r?,
        _ = &mut stopped => return Ok(()),
    }
    if !args.no_examples {
        let agent_document = super::local_agent_document(agent_url, &[]);
        deploy_examples(
            &api,
            &format!("{cockpit_url}/api/v1"),
            &args.dir,
            &agent_document,
        )
        .await?;
    }
    let profile = write_profile(cockpit_url, &local.admin_token, None)?;
    let hs = healths(&voters, servers).await;
    for (s, h) in servers.iter_mut().zip(&hs) {
        s.role = Some(if s.kind == "voter" {
            role_text(h)
        } else {
            s.kind.to_owned()
        });
    }
    say!();
    say!(
        "Ordo is up: a replicated pair (two controllers and the watch), each server its own process."
    );
    say!("  web UI:       {cockpit_url}/");
    say!("  API:          {cockpit_url}/api/v1 (OpenAPI: {cockpit_url}/api/v1/openapi.json)");
    say!("  admin token:  {}", local.admin_token);
    say!("  data:         {}", local.dir.display());
    if let Some(p) = &profile {
        say!("  CLI profile:  {}", p.display());
    }
    say!();
    say!(
        "  {:<14} {:>8}  {:<18} {:<28} log",
        "process",
        "pid",
        "role",
        "url"
    );
    for s in servers.iter() {
        say!(
            "  {:<14} {:>8}  {:<18} {:<28} {}",
            s.name,
            s.pid,
            s.role.as_deref().unwrap_or(""),
            s.url,
            s.log.display()
        );
    }
    say!();
    if let Some(active) = servers
        .iter()
        .find(|s| s.role.as_deref().is_some_and(|r| r.starts_with("active")))
    {
        say!(
            "Try a failover: kill -9 {} ({}, the active controller); the other one takes over,",
            active.pid,
            active.name
        );
        say!("and the web UI and `ordo cluster status` show it.");
    }
    say!("Add an order in another terminal:");
    say!("  ordo order add hello --wait");
    say!();
    say!("Ctrl-C stops everything; `ordo up --pair` again resumes the same state.");

    // Every role change and every end, until stopped.
    loop {
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(WATCH_EVERY_MS)) => {}
        }
        reap(servers);
        let hs = healths(&voters, servers).await;
        for (s, h) in servers.iter_mut().zip(&hs) {
            if s.kind != "voter" || s.ended {
                continue;
            }
            let role = role_text(h);
            if s.role.as_deref() != Some(role.as_str()) {
                say!(
                    "{} {} (pid {}): {} -> {role}",
                    now(),
                    s.name,
                    s.pid,
                    s.role.as_deref().unwrap_or("?")
                );
                s.role = Some(role);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_chosen_once_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair_ports(dir.path()).unwrap();
        let b = pair_ports(dir.path()).unwrap();
        assert_eq!(a.nodes, b.nodes);
        assert_eq!(a.agent, b.agent);
        let mut all: Vec<u16> = a.nodes.iter().flat_map(|(x, y)| [*x, *y]).collect();
        all.push(a.agent);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(ordo_cli::local::PAIR_NAMES.len(), a.nodes.len());
    }
}
