//! The hidden `ordo controller` and `ordo agent` commands: the servers run from the `ordo`
//! executable itself, exactly as `ordo-controller` and `ordo-agent` do.

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
