//! CPU time of a running process, read from `/proc/<pid>/stat`.
//!
//! Format (proc(5)): `pid (comm) state ppid …`; after the closing parenthesis of `comm` (which
//! may itself hold spaces and parentheses, so the *last* `)` counts), the fields are
//! space-separated and numbered from 3 (`state`). Field 14 is `utime`, 15 `stime` (the whole
//! thread group, including threads that ended), 16 `cutime`, 17 `cstime` (children waited
//! for), all in clock ticks (`getconf CLK_TCK`, 100 on Linux).

use anyhow::{Context, anyhow};

/// CPU time of one process, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTimes {
    pub user_ms: f64,
    pub system_ms: f64,
    /// User + system time of the children it waited for (the jobs of an agent).
    pub children_ms: f64,
}

impl CpuTimes {
    /// User + system time of the process itself.
    pub fn own_ms(&self) -> f64 {
        self.user_ms + self.system_ms
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user_ms: self.user_ms - earlier.user_ms,
            system_ms: self.system_ms - earlier.system_ms,
            children_ms: self.children_ms - earlier.children_ms,
        }
    }
}

/// Clock ticks per second of `/proc` times: `getconf CLK_TCK`, or 100 when it cannot be asked.
pub fn ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The CPU times of process `pid` now.
pub fn of_process(pid: u32, ticks_per_s: f64) -> anyhow::Result<CpuTimes> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&text, ticks_per_s).with_context(|| format!("parsing {path}"))
}

/// The CPU times in the text of a `/proc/<pid>/stat` file.
pub fn parse_stat(text: &str, ticks_per_s: f64) -> anyhow::Result<CpuTimes> {
    let close = text
        .rfind(')')
        .ok_or_else(|| anyhow!("no ')' after the command name"))?;
    // Field 3 (`state`) is the first one after the command name.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |number: usize| -> anyhow::Result<f64> {
        let text = fields
            .get(number - 3)
            .ok_or_else(|| anyhow!("only {} fields, field {number} needed", fields.len() + 2))?;
        let ticks: u64 = text
            .parse()
            .with_context(|| format!("field {number} is not a count of ticks: {text:?}"))?;
        Ok(ticks as f64 * 1000.0 / ticks_per_s)
    };
    Ok(CpuTimes {
        user_ms: field(14)?,
        system_ms: field(15)?,
        children_ms: field(16)? + field(17)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_after_a_command_name_with_spaces_and_parentheses() {
        let text = "4242 (tokio (x) 1) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 75 12 3 20 0 4 0 100 1000000 300 18446744073709551615";
        let t = parse_stat(text, 100.0).unwrap();
        assert_eq!(t.user_ms, 2500.0);
        assert_eq!(t.system_ms, 750.0);
        assert_eq!(t.children_ms, 150.0);
        assert_eq!(t.own_ms(), 3250.0);
    }

    #[test]
    fn refuses_a_short_or_broken_line() {
        assert!(parse_stat("12 (x) S 1 2", 100.0).is_err());
        assert!(parse_stat("no parenthesis", 100.0).is_err());
        let bad = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 lots 0 0 0";
        assert!(parse_stat(bad, 100.0).is_err());
    }

    #[test]
    fn reads_this_process() {
        let t = of_process(std::process::id(), ticks_per_s()).unwrap();
        assert!(t.user_ms >= 0.0 && t.system_ms >= 0.0);
        assert!(of_process(u32::MAX, 100.0).is_err());
    }
}
