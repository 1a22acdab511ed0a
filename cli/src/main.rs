//! `ordo`: the command-line interface of the Ordo workload orchestrator.

use clap::Parser;

/// Ordo: a workload orchestrator.
#[derive(Parser, Debug)]
#[command(name = "ordo", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
