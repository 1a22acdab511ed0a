//! The YAML inventory: the examples are valid, every broken file under `tests/bad/` yields its
//! diagnostics (insta snapshots), and hostile input is refused quickly.
//!
//! A bad file may start with `# limits: name=value ...` to check with smaller [`Limits`].

use ordo_model::inventory::{Executable, Instruction};
use ordo_model::yaml::{
    CheckOptions, Limits, Severity, SourceFile, check_inventory, check_inventory_with,
    parse_inventory,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

fn source(path: &Path, name: String) -> SourceFile {
    SourceFile::new(name, std::fs::read_to_string(path).unwrap())
}

#[test]
fn examples_are_valid_and_complete() {
    let dir = manifest_dir().join("../deploy/examples");
    let files: Vec<SourceFile> = yaml_files(&dir)
        .iter()
        .map(|p| source(p, p.file_name().unwrap().to_string_lossy().into_owned()))
        .collect();
    assert!(files.len() >= 5, "expected the example files");
    let checked = check_inventory(&files, &Limits::default());
    let printed: Vec<String> = checked.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(printed.is_empty(), "{printed:#?}");
    let inv = checked.inventory.expect("no inventory");
    let names: Vec<&str> = inv.workflows.iter().map(|w| w.name.as_str()).collect();
    for expected in [
        "hello",
        "nightly-etl",
        "daily-report",
        "release",
        "db-maintenance",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(inv.agents.len(), 1);
    assert_eq!(inv.agents[0].id.as_str(), "local");
    for w in &inv.workflows {
        for (name, job) in &w.jobs {
            assert_eq!(job.agent.as_str(), "local", "{}/{name}", w.name);
            assert!(job.timeout.is_some(), "{}/{name} has no timeout", w.name);
            if let Executable::Command(argv) = &job.executable {
                assert!(argv[0].starts_with('/'), "{}/{name}", w.name);
            }
        }
    }
    let etl = inv
        .workflows
        .iter()
        .find(|w| w.name.as_str() == "nightly-etl");
    let steps = &etl.unwrap().steps;
    assert!(steps.iter().any(|s| matches!(s, Instruction::Fork { .. })));
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Instruction::Retry { max_tries: 3, .. }))
    );
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Instruction::PostNotice { .. }))
    );
}

#[test]
fn every_instruction_reads_into_the_model() {
    let path = manifest_dir().join("tests/good/every-instruction.yaml");
    let files = [source(&path, "every-instruction.yaml".into())];
    let inv = match parse_inventory(&files, &Limits::default()) {
        Ok(inv) => inv,
        Err(d) => panic!("{}", d.iter().map(|d| format!("{d}\n")).collect::<String>()),
    };
    insta::assert_debug_snapshot!("every_instruction", inv);
}

/// `# limits: a=1 b=2` on the first line of a bad case.
fn limits_for(text: &str) -> Limits {
    let mut limits = Limits::default();
    let Some(spec) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# limits:"))
    else {
        return limits;
    };
    for pair in spec.split_whitespace() {
        let (k, v) = pair.split_once('=').expect("name=value");
        let v: usize = v.parse().expect("a number");
        match k {
            "file_bytes_max" => limits.file_bytes_max = v,
            "depth_max" => limits.depth_max = v,
            "nodes_per_file_max" => limits.nodes_per_file_max = v,
            "alias_nodes_max" => limits.alias_nodes_max = v,
            "steps_per_workflow_max" => limits.steps_per_workflow_max = v,
            "jobs_per_workflow_max" => limits.jobs_per_workflow_max = v,
            "name_bytes_max" => limits.name_bytes_max = v,
            "documents_per_file_max" => limits.documents_per_file_max = v,
            "diagnostics_max" => limits.diagnostics_max = v,
            other => panic!("unknown limit {other}"),
        }
    }
    limits
}

/// `# now: 2026-11-23T12:00:00Z` on a line of its own: the instant the check runs at.
fn now_for(text: &str) -> Option<jiff::Timestamp> {
    text.lines()
        .find_map(|l| l.strip_prefix("# now:"))
        .map(|t| t.trim().parse().expect("an RFC 3339 instant"))
}

#[test]
fn bad_files_yield_their_diagnostics() {
    let dir = manifest_dir().join("tests/bad");
    let files = yaml_files(&dir);
    assert!(files.len() >= 20, "expected the bad cases");
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let file = source(&path, format!("bad/{stem}.yaml"));
        let limits = limits_for(&file.text);
        let options = CheckOptions {
            now: now_for(&file.text),
            ..CheckOptions::default()
        };
        let checked = check_inventory_with(std::slice::from_ref(&file), &limits, &options);
        if stem.starts_with("warning-") {
            assert_eq!(
                checked.error_count(),
                0,
                "{stem}: {:?}",
                checked.diagnostics
            );
            assert!(checked.warning_count() > 0, "{stem}: no warning reported");
            assert!(checked.inventory.is_some(), "{stem}: warnings rejected it");
        } else {
            assert!(
                checked.error_count() > 0,
                "{stem}: no error reported: {:?}",
                checked.diagnostics
            );
            assert!(
                checked.inventory.is_none(),
                "{stem}: an inventory despite errors"
            );
        }
        let printed: String = checked
            .diagnostics
            .iter()
            .map(|d| format!("{d}\n"))
            .collect();
        insta::assert_snapshot!(format!("bad_{stem}"), printed);
    }
}

#[test]
fn problems_across_files_are_reported_in_each() {
    let a = SourceFile::new(
        "a.yaml",
        "workflow: w\njobs:\n  j: { agent: far, script: 'true' }\nsteps:\n  - run: j\n  - post: { board: b1, key: k }\n",
    );
    let b = SourceFile::new(
        "b.yaml",
        "- agent: near\n  url: wss://127.0.0.1:1\n- workflow: w\n  steps: [ { sleep: 1s } ]\n- board: b1\n",
    );
    let err = parse_inventory(&[a.clone(), b.clone()], &Limits::default()).unwrap_err();
    let printed: Vec<String> = err.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        printed,
        vec![
            "a.yaml:1:11: error: workflow `w` is defined twice: here and as workflow at b.yaml:3:13",
            "a.yaml:3:15: error: unknown agent `far`",
            "b.yaml:3:13: error: workflow `w` is defined twice: here and as workflow at a.yaml:1:11",
        ]
    );
    // The other file defines what the first one uses.
    let c = SourceFile::new("c.yaml", "agent: far\nurl: wss://h:1\n---\nboard: b1\n");
    let inv = parse_inventory(&[a, c], &Limits::default()).unwrap();
    assert_eq!(inv.workflows.len(), 1);
    assert_eq!(inv.boards.len(), 1);
}

#[test]
fn warnings_alone_keep_the_inventory() {
    let f = SourceFile::new(
        "w.yaml",
        "workflow: w\njobs:\n  used: { agent: a, script: 'true' }\n  spare: { agent: a, script: 'true' }\nsteps: [ { run: used } ]\n---\nagent: a\nurl: wss://h:1\n",
    );
    let checked = check_inventory(&[f], &Limits::default());
    assert!(checked.inventory.is_some());
    assert_eq!(checked.warning_count(), 1);
    assert_eq!(checked.diagnostics[0].severity, Severity::Warning);
    assert_eq!(
        checked.diagnostics[0].to_string(),
        "w.yaml:4:3: warning: job `spare` is never run in workflow `w`"
    );
}

#[test]
fn an_alias_bomb_is_refused_quickly() {
    let mut text = String::from(
        "workflow: w\nsteps: []\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let started = Instant::now();
    let err =
        parse_inventory(&[SourceFile::new("bomb.yaml", text)], &Limits::default()).unwrap_err();
    let took = started.elapsed();
    eprintln!("alias bomb refused in {took:?}");
    assert!(err.iter().any(|d| d.message.contains("alias")), "{err:?}");
}

#[test]
fn a_100_mb_scalar_is_refused_quickly() {
    let mut text = String::with_capacity(100 * 1024 * 1024 + 64);
    text.push_str("workflow: w\nsteps: []\nx: ");
    text.extend(std::iter::repeat_n('x', 100 * 1024 * 1024));
    let started = Instant::now();
    let err =
        parse_inventory(&[SourceFile::new("big.yaml", text)], &Limits::default()).unwrap_err();
    let took = started.elapsed();
    eprintln!("100 MB scalar refused in {took:?}");
    assert_eq!(err.len(), 1);
    assert!(err[0].message.contains("file_bytes_max"), "{err:?}");
}

#[test]
fn a_long_scalar_within_the_file_limit_is_bounded_by_the_scalar_budget() {
    let limits = Limits {
        file_bytes_max: 8 * 1024 * 1024,
        expanded_bytes_per_file_max: 1024 * 1024,
        ..Limits::default()
    };
    let mut text = String::from("workflow: w\nsteps: []\nx: ");
    text.extend(std::iter::repeat_n('x', 4 * 1024 * 1024));
    let started = Instant::now();
    let err = parse_inventory(&[SourceFile::new("long.yaml", text)], &limits).unwrap_err();
    eprintln!("refused in {:?}", started.elapsed());
    assert!(
        err.iter()
            .any(|d| d.message.contains("expanded_bytes_per_file_max")),
        "{err:?}"
    );
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    // Tests run on threads with small stacks; nesting right at the cap must still be safe.
    let limits = Limits {
        depth_max: ordo_model::yaml::DEPTH_MAX_CAP,
        ..Limits::default()
    };
    let depth = 10_000;
    let text = format!("x: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
    let err = parse_inventory(&[SourceFile::new("deep.yaml", text)], &limits).unwrap_err();
    assert!(err[0].message.contains("nested"), "{err:?}");
}
