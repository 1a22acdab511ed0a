//! `ordo check`: exit status, text and JSON output.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn ordo() -> Command {
    Command::cargo_bin("ordo").unwrap()
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A folder with one problem of each kind spread over files and a subfolder.
fn bad_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bad");
    write(
        &root,
        "agents.yaml",
        "agent: local\nurl: wss://127.0.0.1:4444\n",
    );
    write(
        &root,
        "etl.yaml",
        "workflow: etl\njobs:\n  a: { agent: locl, script: 'true', timout: 1m }\nsteps:\n  - run: b\n",
    );
    write(&root, "nested/broken.yml", "workflow: x\nsteps: [\n");
    write(&root, "nested/notes.txt", "not yaml, not read\n");
    write(&root, ".hidden.yaml", "this: is skipped\n");
    dir
}

#[test]
fn process_examples_pass() {
    ordo()
        .arg("check")
        .arg(examples())
        .assert()
        .success()
        .stdout(predicate::str::ends_with("checked 12 files: no problems\n"));
}

#[test]
fn process_a_bad_folder_fails_with_every_error() {
    let dir = bad_folder();
    let out = ordo()
        .current_dir(dir.path())
        .args(["check", "bad"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "bad/etl.yaml:3:15: error: unknown agent `locl`; did you mean `local`?\n\
         bad/etl.yaml:3:37: error: unknown field `timout` in job `a`; did you mean `timeout`?\n\
         bad/etl.yaml:5:10: error: unknown job `b` in workflow `etl`\n\
         bad/nested/broken.yml:2:8: error: unclosed bracket '['\n\
         checked 3 files: 4 errors, 0 warnings\n"
    );
}

#[test]
fn process_json_output_lists_the_diagnostics() {
    let dir = bad_folder();
    let out = ordo()
        .current_dir(dir.path())
        .args(["check", "--json", "bad/etl.yaml", "bad/agents.yaml"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1]["file"], "bad/etl.yaml");
    assert_eq!(list[1]["line"], 3);
    assert_eq!(list[1]["col"], 37);
    assert_eq!(list[1]["severity"], "error");
    assert!(list[1]["message"].as_str().unwrap().contains("timout"));
}

#[test]
fn process_json_output_of_valid_files_is_an_empty_list() {
    ordo()
        .args(["check", "--json"])
        .arg(examples())
        .assert()
        .success()
        .stdout("[]\n");
}

#[test]
fn process_warnings_alone_pass() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "w.yaml",
        "workflow: w\njobs:\n  a: { agent: l, script: 'true' }\n  spare: { agent: l, script: 'true' }\nsteps: [ run: a ]\n---\nagent: l\nurl: wss://h:1\n",
    );
    ordo()
        .current_dir(dir.path())
        .args(["check", "w.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "w.yaml:4:3: warning: job `spare` is never run in workflow `w`",
        ))
        .stdout(predicate::str::ends_with(
            "checked 1 file: 0 errors, 1 warning\n",
        ));
}

#[test]
fn process_missing_paths_and_empty_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    ordo()
        .current_dir(dir.path())
        .args(["check", "nothing-here.yaml", "empty"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "nothing-here.yaml:1:1: error: cannot read",
        ))
        .stdout(predicate::str::contains(
            "empty:1:1: error: no *.yaml or *.yml files in this folder",
        ));
}

#[test]
fn process_oversized_and_non_utf8_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.yaml"), vec![b'#'; 2 * 1024 * 1024]).unwrap();
    std::fs::write(dir.path().join("latin1.yaml"), b"board: caf\xe9\n").unwrap();
    ordo()
        .current_dir(dir.path())
        .args(["check", "big.yaml", "latin1.yaml"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "big.yaml:1:1: error: the file is 2097152 bytes long; at most 1048576 bytes are allowed",
        ))
        .stdout(predicate::str::contains(
            "latin1.yaml:1:1: error: not UTF-8 text (bad byte at offset 10)",
        ));
}

#[test]
fn process_check_needs_a_path() {
    ordo().arg("check").assert().code(2);
}
