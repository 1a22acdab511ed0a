//! `ordo`: the command-line interface of the Ordo workload orchestrator.
//!
//! Each command group lives in its own module with its arguments and a `run` that returns the
//! process exit code; `main` only dispatches. Commands that read or steer a cluster talk only
//! to the cockpit API ([`client`]), reached through `--api`/`--token`/`--ca`, their
//! environment variables or the profile file ([`profile`]). Exit codes: see [`exit`].

mod agents;
mod certs;
mod check;
mod client;
mod cluster;
mod deploy;
mod exit;
mod logs;
mod order;
mod orders;
mod output;
mod plan;
mod profile;
mod queues;
#[cfg(feature = "servers")]
mod servers;
#[cfg(feature = "servers")]
mod up;
mod watch;
mod workflows;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The connection options, given once here rather than in every command's help.
const CONNECTION_HELP: &str = "\
Connection (every command that talks to the cockpit API; before or after the command):
      --api <URL>      Cockpit API URL, e.g. https://ordo.example:4443 (http:// only for
                       127.0.0.1/localhost) [env: ORDO_API]
      --token <TOKEN>  API token [env: ORDO_TOKEN]
      --ca <PATH>      CA certificate (PEM) the API's certificate is checked against
                       (default: the system's) [env: ORDO_CA]
  Unset options come from the profile ($ORDO_CONFIG, else ~/.config/ordo/profile.toml),
  which `ordo up` writes.";

/// Ordo: a workload orchestrator.
#[derive(Parser, Debug)]
#[command(name = "ordo", version, about, after_help = CONNECTION_HELP)]
struct Cli {
    #[command(flatten)]
    global: profile::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a controller, an agent and the cockpit with the example workflows on 127.0.0.1.
    #[cfg(feature = "servers")]
    Up(up::Args),
    /// Check inventory YAML (files and folders) and print every problem; with `--cluster`,
    /// together with what is deployed.
    Check(check::Args),
    /// Make certificates and API tokens.
    #[command(subcommand)]
    Certs(certs::Command),
    /// Check and deploy inventory YAML (files and folders); shows what changes.
    Deploy(deploy::Args),
    /// Remove deployed workflows, agents, locks or boards (refused while something uses them).
    Undeploy(deploy::UndeployArgs),
    /// The daily plan: preview when schedules fire (offline), show it, skip, pause, resume, cancel a
    /// day, backfill, explain. `ordo plan [--date D] [--schedule S]` is `ordo plan show`.
    Plan(plan::Args),
    /// Add, steer or show one order.
    #[command(subcommand)]
    Order(order::Command),
    /// List orders.
    Orders(orders::Args),
    /// Orders by queue: waiting for a process, running, finished, failed.
    Queues(queues::Args),
    /// Print an order's job output.
    Logs(logs::Args),
    /// Follow the live event feed.
    Watch(watch::Args),
    /// List the deployed workflows, or show one with its versions.
    Workflows(workflows::Args),
    /// List agents and their links; make join tokens, remove subagents.
    Agents(agents::Args),
    /// The controller pair: status, switchover, add or remove a node.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Run a controller (as `ordo-controller`).
    #[cfg(feature = "servers")]
    #[command(hide = true)]
    Controller(servers::Args),
    /// Run an agent (as `ordo-agent`).
    #[cfg(feature = "servers")]
    #[command(hide = true)]
    Agent(servers::Args),
    /// Run the cockpit (as `ordo-cockpit`).
    #[cfg(feature = "servers")]
    #[command(hide = true)]
    Cockpit(servers::Args),
}

impl Command {
    /// Whether the command runs servers in this process.
    fn runs_servers(&self) -> bool {
        match self {
            #[cfg(feature = "servers")]
            Command::Up(_) | Command::Controller(_) | Command::Agent(_) | Command::Cockpit(_) => {
                true
            }
            _ => false,
        }
    }
}

/// Runs a command that talks to the API on a single-threaded runtime.
fn block_on<F: Future<Output = anyhow::Result<ExitCode>>>(f: F) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(f)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.runs_servers() {
        // Rust ignores SIGPIPE, so a closed pipe would make every `println!` panic; the
        // default action ends a client quietly, as `ls | head` ends. Never for the servers:
        // a peer that closes its socket would kill them.
        // SAFETY: no other thread runs yet, and the default action needs no handler state.
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        };
    }
    let g = &cli.global;
    let result = match &cli.command {
        #[cfg(feature = "servers")]
        Command::Up(args) => up::run(args),
        #[cfg(feature = "servers")]
        Command::Controller(args) => servers::controller(args),
        #[cfg(feature = "servers")]
        Command::Agent(args) => servers::agent(args),
        #[cfg(feature = "servers")]
        Command::Cockpit(args) => servers::cockpit(args),
        Command::Check(args) if args.cluster => block_on(deploy::check_cluster(args, g)),
        Command::Check(args) => check::run(args),
        Command::Certs(c) => certs::run(c),
        Command::Plan(a) if plan::offline(&a.command()) => plan::run(&a.command()),
        Command::Plan(a) => block_on(plan::run_online(&a.command(), g)),
        Command::Deploy(args) => block_on(deploy::run(args, g)),
        Command::Undeploy(args) => block_on(deploy::undeploy(args, g)),
        Command::Order(c) => block_on(order::run(c, g)),
        Command::Orders(args) => block_on(orders::run(args, g)),
        Command::Queues(args) => block_on(queues::run(args, g)),
        Command::Logs(args) => block_on(logs::run(args, g)),
        Command::Watch(args) => block_on(watch::run(args, g)),
        Command::Workflows(args) => block_on(workflows::run(args, g)),
        Command::Agents(args) => block_on(agents::run(args, g)),
        Command::Cluster(c) => block_on(cluster::run(c, g)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ordo: {e:#}");
            exit::code_of(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_without_a_command_shows_the_plan_with_its_filters() {
        let cli = Cli::try_parse_from(["ordo", "plan", "--date", "2026-12-08", "--schedule", "s"])
            .expect("parses");
        let Command::Plan(args) = cli.command else {
            panic!("not plan: {:?}", cli.command);
        };
        match args.command() {
            plan::Command::Show(show) => {
                assert_eq!(show.date.as_deref(), Some("2026-12-08"));
                assert_eq!(show.schedule.as_deref(), Some("s"));
            }
            other => panic!("not show: {other:?}"),
        }
        let cli = Cli::try_parse_from(["ordo", "plan", "explain", "s"]).expect("parses");
        let Command::Plan(args) = cli.command else {
            panic!("not plan");
        };
        assert!(matches!(args.command(), plan::Command::Explain { .. }));
        assert!(Cli::try_parse_from(["ordo", "plan", "--date", "d", "explain", "s"]).is_err());
    }
}
