//! Slurm on this machine as a baseline: runs `bench/slurm.sh` (which installs Slurm from
//! Debian when missing, runs it privately under /var/tmp and stops it again) and reads the
//! JSON lines it prints. Its progress goes to this program's stderr.

use anyhow::Context;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Exit status of the script when Slurm cannot run here.
const SKIPPED_EXIT_CODE: i32 = 3;

/// `bench/slurm.sh` of this source tree.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("slurm.sh")
}

/// What a run of the script gave.
#[derive(Debug, Clone, PartialEq)]
pub enum SlurmRun {
    /// The result lines as printed (`{"name":"slurm_loop",…}`, …).
    Ran(Vec<String>),
    /// Slurm could not run here, and why.
    Skipped(String),
}

impl SlurmRun {
    /// The fastest end-to-end rate among the scenarios (its name and jobs per second).
    pub fn best(&self) -> Option<(String, f64)> {
        let SlurmRun::Ran(lines) = self else {
            return None;
        };
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .filter_map(|l| Some((l["name"].as_str()?.to_owned(), l["per_s"].as_f64()?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// Runs `script` for `n` jobs in each of `scenarios` (`"loop array"`).
pub fn run(script: &Path, n: usize, scenarios: &str) -> anyhow::Result<SlurmRun> {
    let out = Command::new("bash")
        .arg(script)
        .env("N", n.to_string())
        .env("SCENARIOS", scenarios)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| serde_json::from_str::<Json>(l).is_ok_and(|v| v.is_object()))
        .map(str::to_owned)
        .collect();
    Ok(interpret(out.status.code(), lines))
}

fn interpret(code: Option<i32>, lines: Vec<String>) -> SlurmRun {
    let skipped = lines.iter().find_map(|l| {
        let v: Json = serde_json::from_str(l).ok()?;
        v["skipped"].as_str().map(str::to_owned)
    });
    if let Some(why) = skipped {
        return SlurmRun::Skipped(why);
    }
    match code {
        Some(0) if !lines.is_empty() => SlurmRun::Ran(lines),
        Some(0) => SlurmRun::Skipped("the Slurm script printed no results".into()),
        Some(SKIPPED_EXIT_CODE) => SlurmRun::Skipped("Slurm cannot run here".into()),
        Some(c) => SlurmRun::Skipped(format!("the Slurm script failed with exit code {c}")),
        None => SlurmRun::Skipped("the Slurm script was killed by a signal".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn takes_the_fastest_scenario_and_reports_skips() {
        let ran = interpret(
            Some(0),
            lines(&[
                r#"{"name":"slurm_loop","per_s":40.5}"#,
                r#"{"name":"slurm_array","per_s":55.0}"#,
            ]),
        );
        assert_eq!(ran.best(), Some(("slurm_array".to_owned(), 55.0)));
        let skipped = interpret(Some(3), lines(&[r#"{"name":"slurm","skipped":"no root"}"#]));
        assert_eq!(skipped, SlurmRun::Skipped("no root".into()));
        assert_eq!(skipped.best(), None);
        assert!(matches!(interpret(Some(1), vec![]), SlurmRun::Skipped(_)));
        assert!(matches!(interpret(Some(0), vec![]), SlurmRun::Skipped(_)));
    }

    #[test]
    fn the_script_is_in_the_source_tree() {
        assert!(script().is_file(), "{}", script().display());
    }
}
