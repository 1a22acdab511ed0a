//! Which example files `ordo up` deploys at a start, so that a restart never overwrites what
//! the user deployed.
//!
//! After deploying, `ordo up` records in `<dir>/examples.json` the version of every example
//! workflow as deployed. At the next start an example file is deployed again only when each of
//! its workflows is absent from the controller or still at the recorded version (the user did
//! not deploy a workflow of that name since); otherwise the whole file is left out and a line
//! says which workflow the user changed. The `local` agent is always deployed: `ordo up` owns
//! it and points it at the port its agent listens on.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The file that records the deployed versions of the example workflows.
pub const RECORD_FILE: &str = "examples.json";

/// Example workflow name → the version `ordo up` deployed last.
pub type Record = BTreeMap<String, u64>;

pub fn read_record(dir: &Path) -> Record {
    std::fs::read_to_string(dir.join(RECORD_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn write_record(dir: &Path, record: &Record) -> Result<()> {
    let path = dir.join(RECORD_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(record)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The names of the workflows an example file defines: the documents (separated by `---`)
/// whose first key is `workflow:` (a schedule's `workflow:` field comes after its first key).
pub fn workflow_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut first_key_seen = false;
    for line in text.lines() {
        if line.trim_end() == "---" {
            first_key_seen = false;
            continue;
        }
        let trimmed = line.trim_start();
        if first_key_seen || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        first_key_seen = true;
        if let Some(name) = trimmed.strip_prefix("workflow:") {
            let name = name.split('#').next().unwrap_or("").trim();
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Whether to deploy the example file whose workflows are `names`, given the deployed latest
/// versions and what was recorded; `Err(workflow)` names a workflow the user changed.
pub fn decide(
    names: &[String],
    deployed: &BTreeMap<String, u64>,
    record: &Record,
) -> Result<(), String> {
    for name in names {
        match (deployed.get(name), record.get(name)) {
            (None, _) => {}
            (Some(now), Some(ours)) if now == ours => {}
            _ => return Err(name.clone()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_the_user_deployed_keeps_its_file_out() {
        let names = vec!["hello".to_owned(), "etl".to_owned()];
        let record: Record = [("hello".to_owned(), 1), ("etl".to_owned(), 2)].into();
        // Nothing deployed yet (a fresh directory, or the user undeployed them): deploy.
        assert_eq!(decide(&names, &BTreeMap::new(), &record), Ok(()));
        // As recorded: deploy again (a newer build may bring a newer example).
        let same: BTreeMap<String, u64> = record.clone();
        assert_eq!(decide(&names, &same, &record), Ok(()));
        // The user deployed `etl` since: leave the file out.
        let changed: BTreeMap<String, u64> =
            [("hello".to_owned(), 1), ("etl".to_owned(), 3)].into();
        assert_eq!(decide(&names, &changed, &record), Err("etl".to_owned()));
        // Deployed but never recorded (a directory from before the record): the user's.
        assert_eq!(
            decide(&names, &same, &Record::new()),
            Err("hello".to_owned())
        );
    }

    #[test]
    fn the_workflows_of_a_file_are_the_documents_that_start_with_workflow() {
        let text = "# a comment\nworkflow: a\nsteps: []\n---\nschedule: s\nworkflow: a\n---\n\nworkflow: b # the second\n";
        assert_eq!(workflow_names(text), vec!["a".to_owned(), "b".to_owned()]);
        let (_, schedules) = super::super::EXAMPLES
            .iter()
            .find(|(n, _)| *n == "schedules.yaml")
            .unwrap();
        assert!(workflow_names(schedules).is_empty());
        let (_, hello) = super::super::EXAMPLES
            .iter()
            .find(|(n, _)| *n == "hello.yaml")
            .unwrap();
        assert_eq!(workflow_names(hello), vec!["hello".to_owned()]);
    }
}
