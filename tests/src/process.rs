//! Server processes of this build: finding (and building) the executables of the same
//! profile, starting them with a configuration and a log file, stopping them with SIGTERM
//! (SIGKILL after a grace), killing them when dropped. Used by the process tests and the
//! benchmarks.

use anyhow::{Context, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time a server gets to end after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT_MS: u64 = 10_000;

/// The server executables.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub controller: PathBuf,
    pub agent: PathBuf,
}

impl Binaries {
    /// `ordo-controller` and `ordo-agent` of this build: in the directory of the running
    /// program (`target/<profile>`, or its parent for a test in `target/<profile>/deps`). With
    /// `build`, `cargo build` of that profile runs first so that they are current; when that
    /// fails, binaries already there are used with a warning. Missing ones are always built.
    pub fn of_this_build(build: bool) -> anyhow::Result<Binaries> {
        let exe = std::env::current_exe().context("finding the running program")?;
        let mut dir = exe
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir = dir
                .parent()
                .ok_or_else(|| anyhow!("{} has no parent directory", dir.display()))?;
        }
        let release = dir.file_name().is_some_and(|n| n == "release");
        let bins = Binaries {
            controller: dir.join("ordo-controller"),
            agent: dir.join("ordo-agent"),
        };
        let missing = !bins.controller.exists() || !bins.agent.exists();
        if build || missing {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut args = vec!["build", "-p", "ordo-controller", "-p", "ordo-agent"];
            if release {
                args.push("--release");
            }
            let status = Command::new(&cargo)
                .args(&args)
                .current_dir(&workspace)
                .stdout(Stdio::null())
                .status()
                .with_context(|| format!("running {cargo} build"))?;
            if !status.success() {
                if missing {
                    bail!("{cargo} {} failed", args.join(" "));
                }
                eprintln!(
                    "warning: {cargo} {} failed; using the binaries already in {}",
                    args.join(" "),
                    dir.display()
                );
            }
        }
        for path in [&bins.controller, &bins.agent] {
            if !path.exists() {
                bail!("{} is missing after the build", path.display());
            }
        }
        Ok(bins)
    }
}

/// A server process; killed when dropped.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    pid: u32,
    pub log: PathBuf,
}

impl Process {
    /// Starts `bin --config <config>` with its output appended to `log`.
    pub fn start(
        name: &str,
        bin: &Path,
        config: &Path,
        log: PathBuf,
        log_filter: &str,
    ) -> anyhow::Result<Process> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Process {
            name: name.to_owned(),
            pid: child.id(),
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGKILL, and wait until it is gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// How it ended, once it has (`None` while it runs, or after `stop`/`kill9`).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT_MS`]; true when it ended on SIGTERM.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The last `bytes` of its log.
    pub fn log_tail(&self, bytes: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(bytes);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
