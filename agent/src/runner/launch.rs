//! The launcher: how every job process is created. Benchmarks use it to measure the raw spawn
//! rate of exactly this configuration.
//!
//! `tokio::process::Command` with the child leading its own process group
//! (`process_group(0)`, so pgid = pid), stdin `/dev/null`, stdout and stderr piped, the work
//! directory as current directory, and `kill_on_drop` (which reaches only the leader; the
//! runner kills the group), and without the agent's `NOTIFY_SOCKET` (a job is not the service
//! that systemd waits for, [`ordo_net::notify`]). No `pre_exec` closure, so the standard library can use
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
        .kill_on_drop(true)
        .env_remove(ordo_net::notify::NOTIFY_SOCKET);
    command
}

/// The program name of `executable`, for error messages.
pub fn program_name(executable: &Executable) -> &str {
    match executable {
        Executable::Script(script) => match shebang(script) {
            Some((interpreter, _)) => interpreter,
            None => SHELL,
        },
        Executable::Argv(argv) => argv.first().map(String::as_str).unwrap_or(""),
    }
}

/// The interpreter (and its one optional argument) of a script whose first line is `#!`, as
/// the kernel reads it: the line after `#!`, blanks around it dropped, split at its first
/// blank into the interpreter and the rest as one argument. `None` without `#!` or without an
/// interpreter.
pub fn shebang(script: &str) -> Option<(&str, Option<&str>)> {
    let line = script.strip_prefix("#!")?.lines().next()?;
    let line = line.trim_matches([' ', '\t', '\r']);
    if line.is_empty() {
        return None;
    }
    Some(match line.split_once([' ', '\t']) {
        Some((interpreter, rest)) => {
            let rest = rest.trim_matches([' ', '\t']);
            (interpreter, (!rest.is_empty()).then_some(rest))
        }
        None => (line, None),
    })
}

/// The command for a script with a `#!` line, written to `script_file`: its interpreter with
/// its argument and the file's path, as the kernel would run an executable script (the file
/// need not be executable, and no process has it open for writing when it starts), configured
/// like [`command`].
pub fn interpreted(
    interpreter: &str,
    arg: Option<&str>,
    script_file: &Path,
    work_dir: &Path,
) -> Command {
    let mut command = command(&Executable::Argv(vec![interpreter.to_owned()]), work_dir);
    if let Some(arg) = arg {
        command.arg(arg);
    }
    command.arg(script_file);
    command
}

#[cfg(test)]
mod tests {
    use super::shebang;

    #[test]
    fn shebang_lines_are_read_like_the_kernel_does() {
        assert_eq!(shebang("#!/bin/bash\necho"), Some(("/bin/bash", None)));
        assert_eq!(
            shebang("#! /usr/bin/env python3 \nprint(1)"),
            Some(("/usr/bin/env", Some("python3")))
        );
        assert_eq!(
            shebang("#!/bin/sh -e -u\n"),
            Some(("/bin/sh", Some("-e -u")))
        );
        assert_eq!(shebang("#!/bin/bash\r\necho"), Some(("/bin/bash", None)));
        assert_eq!(shebang("#!\necho"), None);
        assert_eq!(shebang("echo '#!/bin/bash'"), None);
        assert_eq!(shebang(" #!/bin/bash"), None);
    }
}
