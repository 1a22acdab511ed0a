//! `ordo deploy PATH...`: checks the inventory YAML here first (the diagnostics of
//! `ordo check`), then sends all files in one `POST /deploy` and shows what changed.
//!
//! Exit 1 when a file has an error (nothing is sent) or the server refuses the inventory.
//! `--json` prints the server's answer `{changes: [text], lastEventId}`.

use crate::client::Api;
use crate::exit::Failure;
use crate::profile::Global;
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and folders; folders are searched recursively for *.yaml and *.yml.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the server's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let bar = crate::output::spinner("checking the inventory");
    let checked = crate::check::check_paths(&args.paths);
    bar.finish_and_clear();
    for d in &checked.problems {
        eprintln!("{d}");
    }
    if checked.errors() > 0 {
        return Err(Failure::failed(format!("{}; nothing deployed", checked.summary())).into());
    }
    let files: Vec<Json> = checked
        .files
        .iter()
        .map(|f| json!({"name": f.name, "text": f.text}))
        .collect();
    let n = files.len();
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} deploying {pos}/{len} files {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_position(n as u64);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let answer = api.post("/deploy", &json!({ "files": files })).await;
    bar.finish_and_clear();
    let answer = answer?;
    if args.json {
        crate::output::print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    let changes: Vec<&str> = answer
        .get("changes")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let plural = if n == 1 { "" } else { "s" };
    if changes.is_empty() {
        println!("deployed {n} file{plural}: nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = crate::output::table(["Change", "Object", "Detail"]);
    for c in &changes {
        let mut parts = c.splitn(3, ' ');
        let kind = parts.next().unwrap_or_default();
        let object = parts.next().unwrap_or_default();
        let detail = parts.next().unwrap_or_default();
        table.add_row([kind, object, detail]);
    }
    println!("{table}");
    println!(
        "deployed {n} file{plural}: {} change{}",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
