//! `ordo-controller`: runs an Ordo controller from a TOML configuration.

use clap::Parser;
use std::path::PathBuf;

/// Runs an Ordo controller. Every configuration key is documented in
/// deploy/config/controller.toml.
#[derive(Parser, Debug)]
#[command(name = "ordo-controller", version, about)]
struct Args {
    /// The configuration file.
    #[arg(long, env = "ORDO_CONTROLLER_CONFIG")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ordo_controller::main(&args.config)
}
