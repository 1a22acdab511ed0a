//! `ordo-cockpit`: the cockpit API server.

use anyhow::Context;
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("stopping");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = ordo_cockpit_api::config::Config::load(&args.config)?;
    ordo_cockpit_api::run(config, shutdown_signal())
        .await
        .context("the cockpit stopped")
}
