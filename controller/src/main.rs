//! `ordo-controller`: runs an Ordo controller from a TOML configuration.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

/// Runs an Ordo controller.
#[derive(Parser, Debug)]
#[command(name = "ordo-controller", version, about)]
struct Args {
    /// The configuration file (see deploy/config/controller.toml).
    #[arg(long, env = "ORDO_CONTROLLER_CONFIG")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = ordo_controller::config::Config::load(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler works on Unix");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
        };
        ordo_controller::run(config, shutdown).await
    })?;
    Ok(())
}
