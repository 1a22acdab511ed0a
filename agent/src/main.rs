//! `ordo-agent`: runs an Ordo agent from its TOML configuration until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use ordo_agent::Config;
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let config = Config::load(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        ordo_agent::run(config, shutdown_signal())
            .await
            .context("the agent stopped")
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM ({e}); only Ctrl-C stops the agent");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
