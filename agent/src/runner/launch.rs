//! The launcher: how every job process is created. Benchmarks use it to measure the raw spawn
//! rate of exactly this configuration.
//!
//! `tokio::process::Command` with the child leading its own process group
//! (`process_group(0)`, so pgid = pid), stdin `/dev/null`, stdout and stderr piped, the work
//! directory as current directory, and `kill_on_drop` (which reaches only the leader; the
//! runner kills the group). No `pre_exec` closure, so the standard library can use
//! `posix_spawn` (vfork-like) instead of `fork`.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::Executable;

/// Path of the shell that runs [`Executable::Script`].
pub const SHELL: &str = "/bin/sh";

/// A command for `executable` configured as the runner starts every job. The caller adds the
/// environment. `executable` must not be an empty argv (the runner checks this before).
pub fn command(executable: &Executable, work_dir: &Path) -> Command {
    let mut command = match executable {
        Executable::Script(script) => {
            let mut command = Command::new(SHELL);
            command.arg("-c").arg(script);
            command
        }
        Executable::Argv(argv) => {
            let (program, args) = match argv.split_first() {
                Some((program, args)) => (program.as_str(), args),
                None => ("", &[][..]),
            };
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    };
    command
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    command
}

/// The program name of `executable`, for error messages.
pub fn program_name(executable: &Executable) -> &str {
    match executable {
        Executable::Script(_) => SHELL,
        Executable::Argv(argv) => argv.first().map(String::as_str).unwrap_or(""),
    }
}
