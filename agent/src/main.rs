//! `ordo-agent`: runs an Ordo agent from its TOML configuration until Ctrl-C or SIGTERM.

use clap::Parser;
use std::path::PathBuf;

/// The Ordo agent: runs jobs for the controller and keeps every order event until it is
/// released. Every configuration key is documented in deploy/config/agent.toml.
#[derive(Parser)]
#[command(name = "ordo-agent", version)]
struct Args {
    /// The agent's TOML configuration file.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ordo_agent::main(&args.config)
}
