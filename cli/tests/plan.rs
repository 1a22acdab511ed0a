//! `ordo plan preview`: the fires of schedules, offline, as text and JSON.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn ordo() -> Command {
    Command::cargo_bin("ordo").unwrap()
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

const WORKFLOW: &str = "workflow: w\njobs: { j: { agent: a, script: 'true' } }\nsteps: [ { run: j } ]\n---\nagent: a\nurl: wss://127.0.0.1:4444\n";

fn folder(schedules: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.yaml"), WORKFLOW).unwrap();
    std::fs::write(dir.path().join("s.yaml"), schedules).unwrap();
    dir
}

fn stdout(dir: &Path, args: &[&str]) -> String {
    let out = ordo()
        .current_dir(dir)
        .args(["plan", "preview", "."])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn process_preview_prints_one_line_per_fire_across_a_dst_change() {
    let dir = folder(
        "schedule: nightly\nworkflow: w\ntimeZone: Europe/Berlin\ncron: \"30 2 * * *\"\n---\nschedule: hourly\nworkflow: w\ntimeZone: Europe/Berlin\ncron: \"0 * * * *\"\n",
    );
    let text = stdout(
        dir.path(),
        &[
            "--from",
            "2026-10-25T01:00:00+02:00",
            "--until",
            "2026-10-25T03:00:00+01:00",
        ],
    );
    assert_eq!(
        text,
        "2026-10-25T01:00:00+02:00 hourly #2026-10-25#hourly@01:00:00+02:00\n\
         2026-10-25T02:00:00+02:00 hourly #2026-10-25#hourly@02:00:00+02:00\n\
         2026-10-25T02:30:00+02:00 nightly #2026-10-25#nightly@02:30:00+02:00\n\
         2026-10-25T02:00:00+01:00 hourly #2026-10-25#hourly@02:00:00+01:00\n"
    );
    // Spring: 02:30 does not exist, the nightly fires at 03:00; the window is half-open.
    let text = stdout(
        dir.path(),
        &[
            "--from",
            "2026-03-29T02:00:00+01:00",
            "--until",
            "2026-03-29T04:00:00+02:00",
        ],
    );
    assert_eq!(
        text,
        "2026-03-29T03:00:00+02:00 hourly #2026-03-29#hourly@03:00:00+02:00\n\
         2026-03-29T03:00:00+02:00 nightly #2026-03-29#nightly@03:00:00+02:00\n"
    );
}

#[test]
fn process_preview_speaks_json_and_takes_six_fields_and_dates() {
    let dir = folder(
        "schedule: s6\nworkflow: w\ncron: \"15 0 12 * * MON\"\n---\nschedule: off\nworkflow: w\ntimes: [\"06:00\"]\npaused: true\n",
    );
    let out = ordo()
        .current_dir(dir.path())
        .args([
            "plan",
            "preview",
            ".",
            "--from",
            "2026-11-23",
            "--until",
            "2026-11-30",
            "--json",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("schedule off is paused"))
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{
            "schedule": "s6",
            "instant": "2026-11-23T12:00:15+00:00",
            "orderId": "#2026-11-23#s6@12:00:15+00:00",
            "workflow": "w",
        }])
    );
}

#[test]
fn process_preview_of_the_examples_follows_their_calendars() {
    let text = String::from_utf8(
        ordo()
            .args(["plan", "preview"])
            .arg(examples())
            .args([
                "--from",
                "2026-03-27T00:00:00Z",
                "--until",
                "2026-04-01T00:00:00Z",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    let nightly: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" nightly "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    // Friday, then Monday and Tuesday; no weekend.
    assert_eq!(
        nightly,
        vec![
            "2026-03-27T02:30:00+01:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00"
        ]
    );
    assert!(!text.contains("month-end-report"), "paused");
}

#[test]
fn process_preview_refuses_bad_input() {
    let dir = folder("schedule: s\nworkflow: w\ntimeZone: Mars/Olympus\ncron: \"0 0 * * *\"\n");
    ordo()
        .current_dir(dir.path())
        .args([
            "plan",
            "preview",
            ".",
            "--from",
            "2026-01-01",
            "--until",
            "2026-01-02",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "s.yaml:3:11: error: unknown time zone \"Mars/Olympus\"",
        ));
    let dir = folder("schedule: s\nworkflow: w\ncron: \"* * * * * *\"\n");
    let run = |from: &str, until: &str| {
        ordo()
            .current_dir(dir.path())
            .args(["plan", "preview", ".", "--from", from, "--until", until])
            .assert()
    };
    run("yesterday", "2026-01-02")
        .code(2)
        .stderr(predicate::str::contains(
            "--from \"yesterday\" is not an instant",
        ));
    run("2026-01-02", "2026-01-01")
        .code(2)
        .stderr(predicate::str::contains("is not after --from"));
    run("2026-01-01", "2027-01-03")
        .code(1)
        .stderr(predicate::str::contains("limit window_days_max"));
    run("2026-01-01", "2026-01-31")
        .code(1)
        .stderr(predicate::str::contains("limit fires_max"));
}
