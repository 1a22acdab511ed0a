//! `ordo cluster status`: what `GET /health` says, one row per field (nested values as JSON).
//! Exits 1 when its `status` is not `ok`.

use crate::client::Api;
use crate::output::{cell, print_json, table};
use crate::profile::Global;
use serde_json::Value as Json;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show the health of the cluster as the API sees it.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: &Command, global: &Global) -> anyhow::Result<ExitCode> {
    let Command::Status(args) = command;
    let api = Api::new(&global.settings()?)?;
    let health = api.health().await?;
    let ok = health.get("status").and_then(Json::as_str) == Some("ok");
    if args.json {
        print_json(&health);
    } else {
        let mut t = table(["Field", "Value"]);
        match health.as_object() {
            Some(fields) => {
                for (k, v) in fields {
                    t.add_row([k.clone(), cell(Some(v))]);
                }
            }
            None => {
                t.add_row(["health".to_owned(), cell(Some(&health))]);
            }
        }
        println!("{t}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
