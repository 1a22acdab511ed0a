//! `ordo up`: a working all-in-one system on 127.0.0.1 from this one executable — a
//! controller, one agent (`local`) and the cockpit API with the web UI — with the example
//! workflows deployed. State lives under `--dir` (default `./ordo-data`); running it again
//! resumes the same state. Ctrl-C stops everything cleanly. `ordo up --pair` runs a replicated
//! pair instead, each server its own process ([`pair`]). `ordo up --subagents N` makes `local`
//! an agent cluster: its director and N subagents `local-1`..`local-N` (each an agent server of
//! its own in this process), so the examples' jobs run spread over them.

/// Prints a line to stdout; a reader that went away (a closed pipe) does not end the
/// supervision of the servers.
macro_rules! say {
    () => {
        say!("")
    };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod examples;
mod log;
mod pair;

use crate::profile::{self, Profile};
use anyhow::{Context, Result, anyhow, bail};
use ordo_cli::local::{self, Local, Options};
use ordo_net::client::{HttpsClient, HttpsClientOptions};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The example inventory, embedded so `ordo up` works outside the repository.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "agents.yaml",
        include_str!("../../deploy/examples/agents.yaml"),
    ),
    (
        "approval.yaml",
        include_str!("../../deploy/examples/approval.yaml"),
    ),
    (
        "batch.yaml",
        include_str!("../../deploy/examples/batch.yaml"),
    ),
    ("data.yaml", include_str!("../../deploy/examples/data.yaml")),
    ("etl.yaml", include_str!("../../deploy/examples/etl.yaml")),
    (
        "hello.yaml",
        include_str!("../../deploy/examples/hello.yaml"),
    ),
    (
        "inbox-poll.yaml",
        include_str!("../../deploy/examples/inbox-poll.yaml"),
    ),
    (
        "maintenance.yaml",
        include_str!("../../deploy/examples/maintenance.yaml"),
    ),
    (
        "month-close.yaml",
        include_str!("../../deploy/examples/month-close.yaml"),
    ),
    (
        "report.yaml",
        include_str!("../../deploy/examples/report.yaml"),
    ),
    (
        "retries.yaml",
        include_str!("../../deploy/examples/retries.yaml"),
    ),
    (
        "schedules.yaml",
        include_str!("../../deploy/examples/schedules.yaml"),
    ),
];

/// The id of the agent `ordo up` runs.
pub const LOCAL_AGENT: &str = "local";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where certificates, tokens, configurations and journals live.
    #[arg(long, default_value = "ordo-data")]
    pub dir: PathBuf,
    /// The port to open in a browser (the cockpit API and web UI).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Do not deploy the example workflows.
    #[arg(long)]
    pub no_examples: bool,
    /// Run a replicated pair: controller A, controller B and the watch, the agent and the
    /// cockpit, each its own process (kill -9 the active controller and watch the other one
    /// take over). Needs a directory of its own.
    #[arg(long, conflicts_with = "subagents")]
    pub pair: bool,
    /// Make the agent `local` the director of this many subagents (`local-1`, …), which run
    /// its jobs (round robin, 10 s leases); `ordo agents --subagents` shows them.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=SUBAGENTS_MAX as i64))]
    pub subagents: Option<u8>,
}

/// The most subagents `ordo up --subagents` runs.
pub const SUBAGENTS_MAX: u8 = 16;

/// Ports chosen once and kept, so a restart finds the same servers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Ports {
    controller: u16,
    agent: u16,
    /// The subagents' ports, by number (`local-1` first); grown as more are asked for.
    #[serde(default)]
    subagents: Vec<u16>,
}

/// The agent's port when it is free: the one `deploy/examples/agents.yaml` names, so that
/// deploying that file alongside a workflow of one's own keeps pointing at this agent.
pub const AGENT_PORT: u16 = 4444;
/// The controller's port when it is free.
pub const CONTROLLER_PORT: u16 = 4443;

/// `preferred` if nothing listens on it on 127.0.0.1, else a free port.
fn port_or_free(preferred: u16) -> Result<u16> {
    if std::net::TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return Ok(preferred);
    }
    Ok(local::free_port()?)
}

fn ports(dir: &Path, subagents: usize) -> Result<Ports> {
    let path = dir.join("ports.json");
    let kept = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Ports>(&text).ok());
    if let Some(p) = &kept
        && p.subagents.len() >= subagents
    {
        return Ok(Ports {
            subagents: p.subagents.clone(),
            ..*p
        });
    }
    let mut p = match kept {
        Some(p) => p,
        None => Ports {
            controller: port_or_free(CONTROLLER_PORT)?,
            agent: port_or_free(AGENT_PORT)?,
            subagents: Vec::new(),
        },
    };
    while p.subagents.len() < subagents {
        p.subagents.push(local::free_port()?);
    }
    std::fs::write(&path, serde_json::to_string(&p)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(p)
}

/// The id of `ordo up --subagents`' subagent number `n` (from 1).
pub fn subagent_id(n: usize) -> String {
    format!("{LOCAL_AGENT}-{n}")
}

/// The `local` agent's object: a plain agent, or the director of `subagents` (`(id, URL)`).
pub fn local_agent_document(agent_url: &str, subagents: &[(String, String)]) -> String {
    let mut text = format!("agent: {LOCAL_AGENT}\nurl: {agent_url}\n");
    if !subagents.is_empty() {
        text.push_str("selection: round-robin\nleaseTimeout: 10s\nsubagents:\n");
        for (id, url) in subagents {
            text.push_str(&format!("  - {{ id: {id}, url: \"{url}\" }}\n"));
        }
    }
    text
}

fn write_profile(api: &str, token: &str, ca: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(path) = profile::default_path() else {
        return Ok(None);
    };
    Profile {
        api: Some(api.to_owned()),
        token: Some(token.to_owned()),
        ca: ca.map(Path::to_owned),
    }
    .save(&path)
    .with_context(|| format!("cannot write the CLI profile {}", path.display()))?;
    Ok(Some(path))
}

/// The examples (file name, `{name, text}`) with the `local` agent's object
/// ([`local_agent_document`]) in place of `agents.yaml`.
pub fn examples(agent_document: &str) -> Vec<(&'static str, Json)> {
    EXAMPLES
        .iter()
        .map(|(name, text)| {
            let text = if *name == "agents.yaml" {
                agent_document.to_owned()
            } else {
                (*text).to_owned()
            };
            (*name, json!({"name": name, "text": text}))
        })
        .collect()
}

fn client(local: &Local) -> Result<HttpsClient> {
    let ca = ordo_net::tls::CaBundle::from_pem_file(&local.ca)?;
    let tls = ordo_net::tls::client_config(&ca, None)?;
    Ok(HttpsClient::new(
        tls,
        HttpsClientOptions {
            connect_timeout_ms: 2000,
            request_timeout_ms: 30_000,
            body_bytes_max: 16 << 20,
            allow_plain_http: true,
        },
    )
    .with_bearer(&local.admin_token)?)
}

/// Waits until `url` answers `{"status": "ok"}` (the cockpit says `loading` until it has the
/// controller's state); a cockpit that says it is `stuck` (503) fails at once with its reason.
async fn wait_healthy(api: &HttpsClient, url: &str) -> Result<()> {
    for _ in 0..300 {
        if let Ok(r) = api
            .request(tokio_tungstenite::tungstenite::http::Method::GET, url, None)
            .await
            && let Ok(health) = serde_json::from_slice::<Json>(&r.body)
        {
            if health["status"] == "ok" {
                return Ok(());
            }
            if let Some(reason) = health["reason"].as_str() {
                bail!("{url} says the cockpit is stuck: {reason}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not answer \"ok\" within 30 s")
}

/// The latest deployed version of every workflow, from the controller's `/snapshot`.
async fn deployed_versions(api: &HttpsClient, base: &str) -> Result<BTreeMap<String, u64>> {
    let snapshot: Json = api
        .get_json(&format!("{base}/snapshot"))
        .await
        .context("reading what is deployed")?;
    Ok(snapshot["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            let name = w["name"].as_str()?.to_owned();
            let latest = w["versions"]
                .as_array()?
                .iter()
                .filter_map(Json::as_u64)
                .max()?;
            Some((name, latest))
        })
        .collect())
}

/// Deploys the example files whose workflows the user has not deployed over
/// ([`examples`]), with the `local` agent pointed at its port, and records their versions.
async fn deploy_examples(
    api: &HttpsClient,
    base: &str,
    dir: &Path,
    agent_document: &str,
) -> Result<()> {
    let record = examples::read_record(dir);
    let deployed = deployed_versions(api, base).await?;
    let mut files = Vec::new();
    let mut names = Vec::new();
    for (file, text) in examples(agent_document) {
        let text = text["text"].as_str().unwrap_or_default().to_owned();
        let workflows = examples::workflow_names(&text);
        match examples::decide(&workflows, &deployed, &record) {
            Ok(()) => {
                names.extend(workflows);
                files.push(json!({"name": file, "text": text}));
            }
            Err(workflow) => {
                say!("kept your workflow `{workflow}`: the example {file} is not deployed over it")
            }
        }
    }
    match api
        .post_json::<_, Json>(&format!("{base}/deploy"), &json!({ "files": files }))
        .await
    {
        Ok(answer) => {
            let changes = answer["changes"].as_array().map(Vec::len).unwrap_or(0);
            say!("deployed the examples ({changes} changes)");
        }
        Err(e) => {
            say!("the examples were not deployed: {e}");
            return Ok(());
        }
    }
    let deployed = deployed_versions(api, base).await?;
    let mut record = record;
    for name in names {
        if let Some(v) = deployed.get(&name) {
            record.insert(name, *v);
        }
    }
    examples::write_record(dir, &record)
}

pub fn run(args: &Args) -> Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if args.pair {
        runtime.block_on(pair::up_pair(args))?;
    } else {
        runtime.block_on(up(args))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn up(args: &Args) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    if args.dir.join("pair-ports.json").exists() {
        bail!(
            "{} holds a replicated pair (from `ordo up --pair`): run `ordo up --pair`, or give another --dir",
            args.dir.display()
        );
    }
    ordo_net::tls::install_crypto_provider();
    let subagent_count = usize::from(args.subagents.unwrap_or(0));
    let ports = ports(&args.dir, subagent_count)?;
    let controller_listen: SocketAddr = ([127, 0, 0, 1], ports.controller).into();
    let cockpit_listen: SocketAddr = ([127, 0, 0, 1], args.port).into();
    let agent_listen: SocketAddr = ([127, 0, 0, 1], ports.agent).into();
    let mut agents = vec![(LOCAL_AGENT.to_owned(), agent_listen)];
    for (k, port) in ports.subagents.iter().take(subagent_count).enumerate() {
        agents.push((subagent_id(k + 1), ([127, 0, 0, 1], *port).into()));
    }
    let local = local::setup(
        &args.dir,
        &Options {
            cluster_id: "local".into(),
            controller_listen,
            agents,
            journal_fsync: true,
            cockpit_listen: Some(cockpit_listen),
        },
    )?;
    let (cockpit_config_path, cockpit_url) = local
        .cockpit
        .clone()
        .ok_or_else(|| anyhow!("no cockpit configured"))?;
    let cockpit_config = ordo_cockpit_api::config::Config::load(&cockpit_config_path)?;
    let controller_config = ordo_controller::config::Config::load(&local.controller_config)?;
    let (_, agent_config_path, agent_url) = local
        .agent_configs
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no agent configured"))?;
    let agent_config = ordo_agent::config::Config::load(&agent_config_path)?;
    let mut subagent_urls = Vec::new();
    let mut subagent_configs = Vec::new();
    for (id, path, url) in local.agent_configs.iter().skip(1) {
        local::edit_agent_config(path, |f| {
            f.subagent = Some(ordo_agent::config::SubagentSection {
                director: LOCAL_AGENT.to_owned(),
            });
        })?;
        subagent_configs.push(ordo_agent::config::Config::load(path)?);
        subagent_urls.push((id.clone(), url.clone()));
    }
    let agent_document = local_agent_document(&agent_url, &subagent_urls);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut controller = tokio::spawn(ordo_controller::run(
        controller_config,
        stopped(stop_rx.clone()),
    ));
    let mut agent = tokio::spawn(ordo_agent::run(agent_config, stopped(stop_rx.clone())));
    let mut subagents = tokio::task::JoinSet::new();
    for config in subagent_configs {
        let id = config.agent_id.to_string();
        let run = ordo_agent::run(config, stopped(stop_rx.clone()));
        subagents.spawn(async move { (id, run.await) });
    }
    let subagent_stopped =
        |joined: Option<Result<(String, _), tokio::task::JoinError>>| match joined {
            Some(Ok((id, r))) => anyhow!("the subagent {id} stopped: {r:?}"),
            Some(Err(e)) => anyhow!("a subagent stopped: {e}"),
            None => anyhow!("the subagents stopped"),
        };
    let mut cockpit = tokio::spawn(ordo_cockpit_api::run(
        cockpit_config,
        stopped(stop_rx.clone()),
    ));

    let api = client(&local)?;
    let base = format!("{}/api/v1", local.controller_url);
    let health = format!("{base}/health");
    tokio::select! {
        r = wait_healthy(&api, &health) => r?,
        r = &mut controller => bail!("the controller stopped: {:?}", r),
        r = &mut agent => bail!("the agent stopped: {:?}", r),
        r = &mut cockpit => bail!("the cockpit stopped: {:?}", r),
        r = subagents.join_next(), if !subagents.is_empty() => return Err(subagent_stopped(r)),
    }
    if !args.no_examples {
        deploy_examples(&api, &base, &args.dir, &agent_document).await?;
    } else if subagent_count > 0 {
        deploy_agent(&api, &base, &agent_document).await?;
    }
    if ports.agent != AGENT_PORT {
        say!(
            "note: the agent `{LOCAL_AGENT}` listens on port {} ({AGENT_PORT} was taken); deploy/examples/agents.yaml names {AGENT_PORT}, so leave that file out of your deployments",
            ports.agent
        );
    }
    let cockpit_health = format!("{cockpit_url}/health");
    tokio::select! {
        r = wait_healthy(&api, &cockpit_health) => r?,
        r = &mut cockpit => bail!("the cockpit stopped: {:?}", r),
    }
    let profile = write_profile(&cockpit_url, &local.admin_token, None)?;
    say!();
    say!("Ordo is up.");
    say!("  web UI:       {cockpit_url}/");
    say!("  API:          {cockpit_url}/api/v1 (OpenAPI: {cockpit_url}/api/v1/openapi.json)");
    say!("  admin token:  {}", local.admin_token);
    say!("  data:         {}", local.dir.display());
    if subagent_count > 0 {
        let ids: Vec<&str> = subagent_urls.iter().map(|(id, _)| id.as_str()).collect();
        say!(
            "  subagents:    {} (directed by `{LOCAL_AGENT}`; `ordo agents --subagents` shows them)",
            ids.join(", ")
        );
    }
    if let Some(p) = &profile {
        say!("  CLI profile:  {}", p.display());
    }
    say!();
    say!("Add an order in another terminal:");
    say!("  ordo order add hello --wait");
    say!("or with curl:");
    say!(
        "  curl -H 'Authorization: Bearer {}' -d '{{\"id\":\"hello-1\",\"workflow\":\"hello\"}}' {cockpit_url}/api/v1/orders",
        local.admin_token
    );
    say!();
    say!("Ctrl-C stops everything; `ordo up` again resumes the same state.");
    say!();
    say!("What happens from now on (deployments, orders, the agent's link):");
    let after = api
        .get_json::<Json>(&health)
        .await
        .ok()
        .and_then(|h| h["lastEventId"].as_u64())
        .unwrap_or(0);
    let follow = tokio::spawn(log::follow(
        client(&local)?,
        base.clone(),
        after,
        log::Printer::start(),
    ));

    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        r = &mut controller => Err(anyhow!("the controller stopped: {r:?}")),
        r = &mut agent => Err(anyhow!("the agent stopped: {r:?}")),
        r = &mut cockpit => Err(anyhow!("the cockpit stopped: {r:?}")),
        r = subagents.join_next(), if !subagents.is_empty() => Err(subagent_stopped(r)),
    };
    follow.abort();
    say!("stopping");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = cockpit.await;
        let _ = controller.await;
        let _ = agent.await;
        while subagents.join_next().await.is_some() {}
    })
    .await;
    result
}

/// Deploys the `local` agent's object alone (`--no-examples` with `--subagents`).
async fn deploy_agent(api: &HttpsClient, base: &str, agent_document: &str) -> Result<()> {
    let files = json!({ "files": [{"name": "agents.yaml", "text": agent_document}] });
    api.post_json::<_, Json>(&format!("{base}/deploy"), &files)
        .await
        .context("deploying the agent `local` with its subagents")?;
    say!("deployed the agent `{LOCAL_AGENT}` with its subagents");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = EXAMPLES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, embedded);
    }
}
