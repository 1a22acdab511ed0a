//! The hidden `ordo controller`, `ordo agent` and `ordo cockpit` commands: the servers run
//! from the `ordo` executable itself, exactly as `ordo-controller`, `ordo-agent` and
//! `ordo-cockpit` do.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server's configuration file.
    #[arg(long)]
    pub config: PathBuf,
}

pub fn controller(args: &Args) -> anyhow::Result<ExitCode> {
    ordo_controller::main(&args.config)?;
    Ok(ExitCode::SUCCESS)
}

pub fn agent(args: &Args) -> anyhow::Result<ExitCode> {
    ordo_agent::main(&args.config)?;
    Ok(ExitCode::SUCCESS)
}

pub fn cockpit(args: &Args) -> anyhow::Result<ExitCode> {
    ordo_cockpit_api::main(&args.config)?;
    Ok(ExitCode::SUCCESS)
}
