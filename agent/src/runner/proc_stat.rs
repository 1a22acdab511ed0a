//! `/proc/<pid>/stat`: process state, process group and start time, and the recovery of
//! process groups that outlived the agent.
//!
//! The line is `pid (comm) state ppid pgrp session … starttime …`; `comm` may contain spaces
//! and `)`, so fields are counted after the last `)`: the state is field 3, pgrp field 5 and
//! starttime (clock ticks since boot) field 22 (`proc(5)`).

use std::io::{ErrorKind, Read};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp};

use super::RunError;

/// The fields of `/proc/<pid>/stat` the runner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z`, …
    pub(crate) state: u8,
    /// Field 5: process group id.
    pub(crate) pgrp: i64,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_time_ticks: u64,
}

/// Parses one `/proc/<pid>/stat` line.
pub(crate) fn parse_stat(line: &[u8]) -> Result<ProcStat, String> {
    let close = line
        .iter()
        .rposition(|&b| b == b')')
        .ok_or("no ')' after the command name")?;
    let rest = std::str::from_utf8(&line[close + 1..]).map_err(|_| "fields are not UTF-8")?;
    // Field 3 is the first after ')'.
    let mut fields = rest.split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|s| s.bytes().next())
        .ok_or("no state field")?;
    let pgrp = fields
        .nth(1)
        .ok_or("no pgrp field")?
        .parse::<i64>()
        .map_err(|e| format!("bad pgrp field: {e}"))?;
    // Fields 6..=21 are skipped: 16 fields, then field 22.
    let start_time_ticks = fields
        .nth(16)
        .ok_or("no starttime field")?
        .parse::<u64>()
        .map_err(|e| format!("bad starttime field: {e}"))?;
    Ok(ProcStat {
        state,
        pgrp,
        start_time_ticks,
    })
}

/// Longest `/proc/<pid>/stat` line accepted (a real one is about 300 bytes).
const STAT_LINE_BYTES_MAX: usize = 1024;

/// Reads `/proc/<pid>/stat`; `None` when no such process exists. One `read` normally suffices
/// (the line ends with `\n`), which keeps this cheap enough for every job start.
pub(crate) fn read_stat(pid: u32) -> Result<Option<ProcStat>, RunError> {
    let fail = |reason: String| RunError::ProcStat { pid, reason };
    let mut buf = [0u8; STAT_LINE_BYTES_MAX];
    let mut len = 0;
    let read = std::fs::File::open(format!("/proc/{pid}/stat")).and_then(|mut file| {
        while len < buf.len() && !buf[..len].ends_with(b"\n") {
            match file.read(&mut buf[len..])? {
                0 => break,
                n => len += n,
            }
        }
        Ok(())
    });
    match read {
        Ok(()) if len == buf.len() => Err(fail(format!(
            "the line is longer than {STAT_LINE_BYTES_MAX} bytes"
        ))),
        Ok(()) => parse_stat(&buf[..len]).map(Some).map_err(fail),
        Err(e)
            if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(Errno::ESRCH as i32) =>
        {
            Ok(None)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot) of process `pid`,
/// or `None` if there is no such process.
pub fn process_start_time_ticks(pid: u32) -> Result<Option<u64>, RunError> {
    Ok(read_stat(pid)?.map(|stat| stat.start_time_ticks))
}

/// After a restart: kills (SIGKILL) the process group `pgid` of a job that was running, if it
/// is still that job's group. Returns whether a group was found and signalled.
///
/// - The leader `pgid` exists with the journaled start time: the group is killed (and the
///   leader too, if it moved to another group).
/// - The leader exists with another start time: its pid was reused, which the kernel allows
///   only once no process is left in the old group; nothing is killed.
/// - The leader is gone: members of the group may survive it. They are killed if every live
///   one started at or after the journaled start time (a group of another, later job would
///   need the pid to have been reused after the whole old group ended).
///
/// pgid 0 and 1, values beyond `i32::MAX` and the agent's own group are refused.
pub fn kill_stale_group(pgid: u32, start_time_ticks: u64) -> Result<bool, RunError> {
    let raw = i32::try_from(pgid).map_err(|_| RunError::NotAJobGroup { pgid })?;
    if raw <= 1 || Pid::from_raw(raw) == getpgrp() {
        return Err(RunError::NotAJobGroup { pgid });
    }
    match read_stat(pgid)? {
        Some(leader) if leader.start_time_ticks == start_time_ticks => {
            let killed = signal_group(pgid, Signal::SIGKILL)?;
            if leader.pgrp != i64::from(raw) {
                match kill(Pid::from_raw(raw), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(source) => return Err(RunError::Signal { pgid, source }),
                }
            }
            Ok(killed || leader.pgrp != i64::from(raw))
        }
        Some(_) => Ok(false),
        None => {
            let members = live_group_members(pgid)?;
            if members.is_empty()
                || members
                    .iter()
                    .any(|member| member.start_time_ticks < start_time_ticks)
            {
                return Ok(false);
            }
            signal_group(pgid, Signal::SIGKILL)
        }
    }
}

/// Sends `signal` to group `pgid`; `false` if the group does not exist.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> Result<bool, RunError> {
    let raw = i32::try_from(pgid).map_err(|_| RunError::NotAJobGroup { pgid })?;
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(source) => Err(RunError::Signal { pgid, source }),
    }
}

/// Processes (not zombies) whose process group is `pgid`, found by scanning `/proc`.
fn live_group_members(pgid: u32) -> Result<Vec<ProcStat>, RunError> {
    let entries = std::fs::read_dir("/proc").map_err(|e| RunError::ProcStat {
        pid: pgid,
        reason: format!("cannot list /proc: {e}"),
    })?;
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that ends while we look is simply not a member.
        if let Ok(Some(stat)) = read_stat(pid)
            && stat.pgrp == i64::from(pgid)
            && stat.state != b'Z'
        {
            members.push(stat);
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_spaces_and_parens_in_comm() {
        let line = b"4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                     987654 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
        assert_eq!(
            parse_stat(line),
            Ok(ProcStat {
                state: b'S',
                pgrp: 4242,
                start_time_ticks: 987654
            })
        );
    }

    #[test]
    fn rejects_short_lines() {
        assert!(parse_stat(b"1 (init) S 0 1").is_err());
        assert!(parse_stat(b"garbage").is_err());
    }

    #[test]
    fn reads_own_stat() {
        let me = std::process::id();
        let stat = read_stat(me).unwrap().unwrap();
        assert_eq!(stat.pgrp, i64::from(getpgrp().as_raw()));
        assert!(stat.start_time_ticks > 0);
        assert_eq!(
            process_start_time_ticks(me).unwrap(),
            Some(stat.start_time_ticks)
        );
    }

    #[test]
    fn refuses_special_groups() {
        for pgid in [0, 1, u32::MAX, getpgrp().as_raw() as u32] {
            assert!(matches!(
                kill_stale_group(pgid, 1),
                Err(RunError::NotAJobGroup { .. })
            ));
        }
    }
}
