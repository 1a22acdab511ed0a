//! `ordo-cockpit`: the cockpit API server.

use clap::Parser;
use std::path::PathBuf;

/// Serves the Ordo cockpit API and web UI, following the controller's event stream.
#[derive(Parser)]
#[command(name = "ordo-cockpit", version)]
struct Args {
    /// The cockpit configuration (see deploy/config/cockpit.toml).
    #[arg(long, env = "ORDO_COCKPIT_CONFIG")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ordo_cockpit_api::main(&args.config)
}
