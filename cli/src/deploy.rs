//! `ordo deploy PATH...`: sends all files in one `POST /deploy`; the controller checks them
//! together with what is deployed (the diagnostics `ordo check --cluster` prints) and answers
//! what changed. `ordo undeploy KIND NAME...` removes objects through the same request.
//!
//! `--dry-run` deploys nothing and prints the diff: the objects added, changed and removed
//! (workflows with their versions) and the live orders of changed or removed workflows with
//! the positions they stand at. A deployment that would strand orders (their position is gone
//! from the new version, or holds another kind of instruction) is refused with the list of
//! them unless `--force`: the orders then keep running on their version. A removal something
//! still needs (a deployed workflow names it, a live order uses it) is refused, forced or not.
//!
//! Exit 1 when a file cannot be read or has an error (nothing is deployed) or the server
//! refuses the deployment. `--json` prints the server's answer
//! `{changes: [text], lastEventId, diff, dryRun, warnings}`.

use crate::check::{Checked, read_paths, summary};
use crate::client::{Api, status_failure};
use crate::exit::Failure;
use crate::profile::Global;
use ordo_model::yaml::{Diagnostic, Severity, SourceFile};
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_tungstenite::tungstenite::http::StatusCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and folders; folders are searched recursively for *.yaml and *.yml.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the server's answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// Deploy nothing; print what would be added, changed and removed, and the running
    /// orders a change affects (with the positions they stand at).
    #[arg(long)]
    pub dry_run: bool,
    /// Deploy even though orders stand at positions a changed workflow no longer has (or
    /// where it has another instruction); they keep running on their version.
    #[arg(long)]
    pub force: bool,
}

/// The kinds of objects `ordo undeploy` removes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Workflow,
    Agent,
    Lock,
    Board,
    /// Its planned orders that have not started are cancelled.
    Schedule,
    Calendar,
}

#[derive(clap::Args, Debug)]
pub struct UndeployArgs {
    /// What kind of object to remove.
    pub kind: Kind,
    /// Their names.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove nothing; print what would be removed, or why it cannot be.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the server's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let (files, problems) = read_paths(&args.paths);
    for d in &problems {
        eprintln!("{d}");
    }
    if !problems.is_empty() {
        let n = problems.len();
        return Err(
            Failure::failed(format!("{} file(s) could not be read; nothing deployed", n)).into(),
        );
    }
    let body = json!({ "files": files_json(&files) });
    let what = Sent::Files(files.len());
    send(&api, &body, &what, args.dry_run, args.force, args.json).await
}

pub async fn undeploy(args: &UndeployArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let kind = match args.kind {
        Kind::Workflow => "workflows",
        Kind::Agent => "agents",
        Kind::Lock => "locks",
        Kind::Board => "boards",
        Kind::Schedule => "schedules",
        Kind::Calendar => "calendars",
    };
    let body = json!({ "files": [], "removed": { kind: args.names } });
    let what = Sent::Removals(args.names.len());
    send(&api, &body, &what, args.dry_run, false, args.json).await
}

/// `ordo check --cluster`: the files checked by the controller together with what is
/// deployed (a dry run of their deployment), printed as `ordo check` prints.
pub async fn check_cluster(args: &crate::check::Args, global: &Global) -> anyhow::Result<ExitCode> {
    let api = Api::new(&global.settings()?)?;
    let (files, mut problems) = read_paths(&args.paths);
    let body = json!({ "files": files_json(&files) });
    let (status, answer) = api.post_any("/deploy?dryRun=true", &body).await?;
    let lines: Vec<&str> = match status {
        StatusCode::OK => answer.get("warnings"),
        StatusCode::BAD_REQUEST => answer.get("details"),
        _ => None,
    }
    .and_then(Json::as_array)
    .map(|a| a.iter().filter_map(Json::as_str).collect())
    .unwrap_or_default();
    if !status.is_success() && lines.is_empty() {
        return Err(status_failure(status, answer.to_string().as_bytes()).into());
    }
    problems.extend(lines.iter().map(|l| parse_diagnostic(l, &files)));
    let checked = Checked {
        files,
        problems,
        inventory: None,
    };
    crate::check::print(args.json, &checked)
}

fn files_json(files: &[SourceFile]) -> Vec<Json> {
    files
        .iter()
        .map(|f| json!({"name": f.name, "text": f.text}))
        .collect()
}

/// A diagnostic as the server writes it, `file:line:col: severity: message`, read back with
/// the names of the files sent (a name may hold `:`).
fn parse_diagnostic(line: &str, files: &[SourceFile]) -> Diagnostic {
    let parsed = files.iter().find_map(|f| {
        let rest = line.strip_prefix(f.name.as_str())?.strip_prefix(':')?;
        let mut parts = rest.splitn(3, ':');
        let l = parts.next()?.parse().ok()?;
        let c = parts.next()?.parse().ok()?;
        let rest = parts.next()?.trim_start();
        let (severity, message) = if let Some(m) = rest.strip_prefix("error: ") {
            (Severity::Error, m)
        } else {
            (Severity::Warning, rest.strip_prefix("warning: ")?)
        };
        Some(Diagnostic {
            file: f.name.clone(),
            line: l,
            col: c,
            severity,
            message: message.to_owned(),
        })
    });
    parsed.unwrap_or_else(|| Diagnostic {
        file: String::new(),
        line: 1,
        col: 1,
        severity: Severity::Error,
        message: line.to_owned(),
    })
}

/// What a request sends, for the summary line.
enum Sent {
    Files(usize),
    Removals(usize),
}

impl Sent {
    fn describe(&self) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match self {
            Sent::Files(n) => format!("{n} file{}", plural(*n)),
            Sent::Removals(n) => format!("{n} object{}", plural(*n)),
        }
    }
}

async fn send(
    api: &Api,
    body: &Json,
    what: &Sent,
    dry_run: bool,
    force: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!("/deploy?dryRun={dry_run}&force={force}");
    let bar = crate::output::spinner(if dry_run {
        "checking against what is deployed"
    } else {
        "deploying"
    });
    let answer = api.post_any(&path, body).await;
    bar.finish_and_clear();
    let (status, answer) = answer?;
    let verb = if matches!(what, Sent::Removals(_)) {
        "removed"
    } else {
        "deployed"
    };
    if status == StatusCode::CONFLICT {
        if json {
            crate::output::print_json(&answer);
        } else if let Some(diff) = answer.get("details") {
            print_orders(diff, &mut std::io::stderr());
        }
        let message = answer
            .get("error")
            .and_then(Json::as_str)
            .unwrap_or("the deployment was refused");
        return Err(Failure::failed(format!("{message}; nothing {verb}")).into());
    }
    if status == StatusCode::BAD_REQUEST
        && let Some(details) = answer.get("details").and_then(Json::as_array)
    {
        if json {
            crate::output::print_json(&answer);
        } else {
            for d in details.iter().filter_map(Json::as_str) {
                eprintln!("{d}");
            }
        }
        let errors = details
            .iter()
            .filter_map(Json::as_str)
            .filter(|d| d.contains(": error: "))
            .count();
        let n = match what {
            Sent::Files(n) => *n,
            Sent::Removals(_) => 0,
        };
        let warnings = details.len() - errors;
        return Err(
            Failure::failed(format!("{}; nothing {verb}", summary(n, errors, warnings))).into(),
        );
    }
    if !status.is_success() {
        return Err(status_failure(status, answer.to_string().as_bytes()).into());
    }
    if json {
        crate::output::print_json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    for w in answer
        .get("warnings")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
    {
        eprintln!("{w}");
    }
    if dry_run {
        let diff = answer.get("diff").cloned().unwrap_or(Json::Null);
        print_diff(&diff);
        return Ok(ExitCode::SUCCESS);
    }
    let changes: Vec<&str> = answer
        .get("changes")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    if changes.is_empty() {
        println!("{verb} {}: nothing changed", what.describe());
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
    if let Some(diff) = answer.get("diff") {
        print_orders(diff, &mut std::io::stdout());
    }
    println!(
        "{verb} {}: {} change{}",
        what.describe(),
        changes.len(),
        if changes.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

fn text<'a>(j: &'a Json, key: &str) -> &'a str {
    j.get(key).and_then(Json::as_str).unwrap_or_default()
}

fn version(j: &Json, key: &str) -> Option<String> {
    j.get(key).and_then(Json::as_u64).map(|v| format!("v{v}"))
}

/// The diff of a dry run: one row per object, then the affected orders, then a summary.
fn print_diff(diff: &Json) {
    let mut table = crate::output::table(["Change", "Object", "Detail"]);
    let mut n = 0;
    for (key, word) in [
        ("added", "add"),
        ("changed", "change"),
        ("removed", "remove"),
    ] {
        for c in diff.get(key).and_then(Json::as_array).into_iter().flatten() {
            let detail = match (version(c, "fromVersion"), version(c, "version")) {
                (Some(a), Some(b)) => format!("{a} → {b}"),
                (None, Some(b)) => b,
                (Some(a), None) => a,
                (None, None) => text(c, "detail").to_owned(),
            };
            table.add_row([
                word.to_owned(),
                format!("{} {}", text(c, "kind"), text(c, "name")),
                detail,
            ]);
            n += 1;
        }
    }
    if n == 0 {
        println!("dry run: nothing would change");
        return;
    }
    println!("{table}");
    let affected = print_orders(diff, &mut std::io::stdout());
    println!(
        "dry run: {n} change{}, {affected} running order{} affected; nothing deployed",
        if n == 1 { "" } else { "s" },
        if affected == 1 { "" } else { "s" }
    );
}

/// The affected orders of a diff (and why any is stranded); how many there are.
fn print_orders(diff: &Json, out: &mut dyn std::io::Write) -> usize {
    let orders: Vec<&Json> = diff
        .get("affected")
        .and_then(Json::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for r in diff
        .get("refused")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
    {
        let _ = writeln!(out, "refused: {r}");
    }
    if orders.is_empty() {
        return 0;
    }
    let mut table = crate::output::table([
        "Order", "Workflow", "Version", "Position", "State", "Stranded",
    ]);
    for o in &orders {
        table.add_row([
            text(o, "order").to_owned(),
            text(o, "workflow").to_owned(),
            version(o, "version").unwrap_or_default(),
            text(o, "position").to_owned(),
            text(o, "state").to_owned(),
            text(o, "stranded").to_owned(),
        ]);
    }
    let _ = writeln!(
        out,
        "running orders of changed or removed workflows:\n{table}"
    );
    orders.len()
}
