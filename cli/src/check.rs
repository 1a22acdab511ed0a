//! `ordo check PATH...`: validates inventory YAML files and folders (searched recursively for
//! `*.yaml` and `*.yml`, hidden entries skipped) together, as one inventory.
//!
//! Prints one line per problem, `file:line:col: error: message` (or `warning:`), then a
//! summary; with `--json`, prints only a JSON array of `{file, line, col, severity, message}`.
//! Exits with 1 when there is an error, else 0 (warnings alone pass).

use anyhow::Context;
use ordo_model::inventory::Inventory;
use ordo_model::yaml::{
    CheckOptions, Diagnostic, Limits, Severity, SourceFile, check_inventory_with, file_too_large,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Deepest folder nesting searched below a path given on the command line.
const FOLDER_DEPTH_MAX: usize = 32;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and folders; folders are searched recursively for *.yaml and *.yml.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the diagnostics as a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// Check the files together with what the cluster has deployed (asks the API, as
    /// `deploy --dry-run` does): a workflow may name an agent, lock or board deployed
    /// earlier, and a changed lock or workflow must still fit the deployed workflows that use
    /// it. Needs the API URL and an admin token.
    #[arg(long)]
    pub cluster: bool,
}

/// Inventory files read from disk with every problem found reading and checking them.
pub struct Checked {
    pub files: Vec<SourceFile>,
    pub problems: Vec<Diagnostic>,
    /// The inventory, when every file was read and there is no error.
    pub inventory: Option<Inventory>,
}

impl Checked {
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// `checked N files: no problems` or `checked N files: E errors, W warnings`.
    pub fn summary(&self) -> String {
        let errors = self.errors();
        summary(self.files.len(), errors, self.problems.len() - errors)
    }
}

/// Reads the YAML files at `paths` (files, and folders searched recursively) and checks them
/// together as one inventory, at the current instant (a schedule with no date to fire on in
/// the next year is a warning).
pub fn check_paths(paths: &[PathBuf]) -> Checked {
    let limits = Limits::default();
    let (files, mut problems) = read_paths(paths);
    let options = CheckOptions {
        now: Some(jiff::Timestamp::now()),
        ..CheckOptions::default()
    };
    let checked = check_inventory_with(&files, &limits, &options);
    let read_all = problems.is_empty();
    problems.extend(checked.diagnostics);
    Checked {
        files,
        problems,
        inventory: checked.inventory.filter(|_| read_all),
    }
}

/// Reads the YAML files at `paths` (files, and folders searched recursively) without checking
/// them; the problems are the files that could not be read.
pub fn read_paths(paths: &[PathBuf]) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let limits = Limits::default();
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut found = Vec::new();
    for p in paths {
        let before = found.len();
        collect(p, 0, &limits, &mut found, &mut problems);
        if found.len() == before && p.is_dir() {
            problems.push(diagnostic(
                p,
                "no *.yaml or *.yml files in this folder".into(),
            ));
        }
    }
    let mut files = Vec::new();
    for p in &found {
        match read(p, &limits) {
            Ok(text) => files.push(SourceFile::new(p.display().to_string(), text)),
            Err(d) => problems.push(d),
        }
    }
    (files, problems)
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let checked = check_paths(&args.paths);
    print(args.json, &checked)
}

/// Prints the diagnostics and the summary (or the JSON array); exit 1 on an error.
pub(crate) fn print(json: bool, checked: &Checked) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &checked.problems)
            .context("writing the diagnostics")?;
        writeln!(out)?;
    } else {
        for d in &checked.problems {
            writeln!(out, "{d}")?;
        }
        writeln!(out, "{}", checked.summary())?;
    }
    out.flush()?;
    Ok(if checked.errors() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn summary(files: usize, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => format!("checked {}: no problems", plural(files, "file")),
        _ => format!(
            "checked {}: {}, {}",
            plural(files, "file"),
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
    }
}

fn diagnostic(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: path.display().to_string(),
        line: 1,
        col: 1,
        severity: Severity::Error,
        message,
    }
}

/// The YAML files at `path`: the path itself if it is a file, else the `*.yaml` and `*.yml`
/// files below it in name order. Symbolic links to folders are not followed.
fn collect(
    path: &Path,
    depth: usize,
    limits: &Limits,
    out: &mut Vec<PathBuf>,
    problems: &mut Vec<Diagnostic>,
) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            problems.push(diagnostic(path, format!("cannot read: {e}")));
            return;
        }
    };
    if !meta.is_dir() {
        out.push(path.to_owned());
        return;
    }
    if depth > FOLDER_DEPTH_MAX {
        problems.push(diagnostic(
            path,
            format!("folders nested more than {FOLDER_DEPTH_MAX} deep; not searched"),
        ));
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) => {
            problems.push(diagnostic(path, format!("cannot read the folder: {e}")));
            return;
        }
    };
    let mut children: Vec<(PathBuf, bool)> = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(diagnostic(path, format!("cannot read the folder: {e}")));
                continue;
            }
        };
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let child = entry.path();
        let yaml = child.extension().is_some_and(|x| x == "yaml" || x == "yml");
        if is_dir || yaml {
            children.push((child, is_dir));
        }
        if out.len() + children.len() > limits.files_max {
            break;
        }
    }
    children.sort();
    for (child, is_dir) in children {
        if is_dir {
            collect(&child, depth + 1, limits, out, problems);
        } else {
            out.push(child);
        }
    }
}

/// The file's text, refusing files above the byte limit without reading them whole.
fn read(path: &Path, limits: &Limits) -> Result<String, Diagnostic> {
    let file =
        std::fs::File::open(path).map_err(|e| diagnostic(path, format!("cannot read: {e}")))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let max = limits.file_bytes_max as u64;
    if len > max {
        return Err(file_too_large(&path.display().to_string(), len, limits));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| diagnostic(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(file_too_large(
            &path.display().to_string(),
            bytes.len() as u64,
            limits,
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        diagnostic(
            path,
            format!(
                "not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}
