//! `ordo`: the command-line interface of the Ordo workload orchestrator.
//!
//! Each subcommand lives in its own module with its arguments and a `run` that returns the
//! process exit code; `main` only dispatches.

mod check;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Ordo: a workload orchestrator.
#[derive(Parser, Debug)]
#[command(name = "ordo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check inventory YAML (files and folders) and print every problem.
    Check(check::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check(args) => check::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ordo: {e:#}");
            ExitCode::from(2)
        }
    }
}
