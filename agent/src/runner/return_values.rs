//! Return values file: how a job hands named values back to its order.
//!
//! The runner sets `$ORDO_RETURN_VALUES` to the absolute path of a file in the job's work
//! directory whose name is unique to the runner instance and the job, so it does not exist
//! when the job starts. The job may write it; after the job has
//! ended the runner reads it and removes it.
//!
//! Format:
//! - UTF-8 text, one `key=value` per line, lines end with `\n` (a `\r` before it is removed;
//!   the last line needs no `\n`).
//! - `key`: 1 to [`KEY_BYTES_MAX`] ASCII letters, digits, `_`, `-` or `.`. No spaces around it.
//! - `value`: everything after the first `=`, possibly empty, possibly containing `=`.
//! - Empty lines and lines starting with `#` are skipped silently.
//! - Any other line (no `=`, bad key, not UTF-8) is ignored with a note naming its line number.
//! - A key given twice keeps its first position and takes the last value.
//! - Only the first `return_values_bytes_max` bytes are read; a longer file gets a note and
//!   its last, incomplete line is ignored.
//! - The file must be a regular file (a symlink, FIFO or directory is ignored with a note).
//!
//! Notes are capped at [`NOTES_MAX`]; one more note says how many were left out.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

/// Longest accepted key, in bytes.
pub const KEY_BYTES_MAX: usize = 256;

/// Most notes kept for one file.
pub const NOTES_MAX: usize = 16;

/// Parsed return values and the remarks about ignored input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReturnValues {
    pub values: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// Parses the content of a return values file (already cut to its size limit).
pub fn parse(bytes: &[u8]) -> ReturnValues {
    let mut out = ReturnValues::default();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    let mut notes = Notes::default();
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = number + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            notes.push(format!("return values line {line_no} ignored: not UTF-8"));
            continue;
        };
        let Some((key, value)) = line.split_once('=') else {
            notes.push(format!(
                "return values line {line_no} ignored: no '=' in it"
            ));
            continue;
        };
        if !valid_key(key) {
            notes.push(format!(
                "return values line {line_no} ignored: key {:?} must be 1 to {KEY_BYTES_MAX} \
                 ASCII letters, digits, '_', '-' or '.'",
                key.chars().take(64).collect::<String>()
            ));
            continue;
        }
        match index_of.get(key) {
            Some(&i) => out.values[i].1 = value.to_owned(),
            None => {
                index_of.insert(key.to_owned(), out.values.len());
                out.values.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    out.notes = notes.finish();
    out
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= KEY_BYTES_MAX
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Reads the file at `path` (at most `bytes_max` bytes), removes it and parses it. A missing
/// file gives no values and no notes.
pub(crate) fn read_and_remove(path: &Path, bytes_max: usize) -> ReturnValues {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return ReturnValues::default(),
        Err(e) => {
            let mut rv = ReturnValues::default();
            rv.notes.push(format!(
                "return values file {} ignored: cannot open it: {e}",
                path.display()
            ));
            remove(path, &mut rv.notes);
            return rv;
        }
    };
    let mut early_notes = Vec::new();
    let mut bytes = Vec::new();
    match file.metadata() {
        Ok(meta) if meta.is_file() => {
            let limit = u64::try_from(bytes_max)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            if let Err(e) = (&mut file).take(limit).read_to_end(&mut bytes) {
                early_notes.push(format!(
                    "return values file {} ignored: cannot read it: {e}",
                    path.display()
                ));
                bytes.clear();
            }
        }
        Ok(_) => early_notes.push(format!(
            "return values file {} ignored: not a regular file",
            path.display()
        )),
        Err(e) => early_notes.push(format!(
            "return values file {} ignored: cannot inspect it: {e}",
            path.display()
        )),
    }
    drop(file);
    if bytes.len() > bytes_max {
        bytes.truncate(bytes_max);
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(complete);
        early_notes.push(format!(
            "return values file is larger than {bytes_max} bytes; only its first {bytes_max} \
             bytes were read and the incomplete last line was ignored"
        ));
    }
    let mut rv = parse(&bytes);
    early_notes.append(&mut rv.notes);
    rv.notes = early_notes;
    remove(path, &mut rv.notes);
    rv
}

fn remove(path: &Path, notes: &mut Vec<String>) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => notes.push(format!(
            "cannot remove the return values file {}: {e}",
            path.display()
        )),
    }
}

/// Keeps the first [`NOTES_MAX`] notes and counts the rest.
#[derive(Default)]
struct Notes {
    kept: Vec<String>,
    left_out: usize,
}

impl Notes {
    fn push(&mut self, note: String) {
        if self.kept.len() < NOTES_MAX {
            self.kept.push(note);
        } else {
            self.left_out += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.left_out > 0 {
            self.kept.push(format!(
                "{} more ignored return values lines not listed",
                self.left_out
            ));
        }
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(rv: &ReturnValues) -> Vec<(&str, &str)> {
        rv.values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn parses_pairs_and_notes_bad_lines() {
        let rv = parse(b"a=1\r\nb=x=y\n\n# comment\nbad line\n c=2\nempty=\n\xff=1\nlast=9");
        assert_eq!(
            pairs(&rv),
            [("a", "1"), ("b", "x=y"), ("empty", ""), ("last", "9")]
        );
        assert_eq!(rv.notes.len(), 3, "{:?}", rv.notes);
        assert!(rv.notes[0].contains("line 5") && rv.notes[0].contains("no '='"));
        assert!(rv.notes[1].contains("line 6") && rv.notes[1].contains("key"));
        assert!(rv.notes[2].contains("line 8") && rv.notes[2].contains("UTF-8"));
    }

    #[test]
    fn repeated_key_keeps_position_and_last_value() {
        let rv = parse(b"a=1\nb=2\na=3\n");
        assert_eq!(pairs(&rv), [("a", "3"), ("b", "2")]);
    }

    #[test]
    fn notes_are_capped() {
        let text = "x\n".repeat(NOTES_MAX + 5);
        let rv = parse(text.as_bytes());
        assert_eq!(rv.notes.len(), NOTES_MAX + 1);
        assert!(rv.notes[NOTES_MAX].starts_with("5 more"));
    }

    #[test]
    fn key_rules() {
        assert!(valid_key("returnCode"));
        assert!(valid_key("a.b-c_1"));
        assert!(!valid_key(""));
        assert!(!valid_key("a b"));
        assert!(!valid_key(&"k".repeat(KEY_BYTES_MAX + 1)));
    }

    #[test]
    fn reads_limited_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rv");
        std::fs::write(&path, "a=1\nb=2\nc=3333333\n").unwrap();
        let rv = read_and_remove(&path, 10);
        assert_eq!(pairs(&rv), [("a", "1"), ("b", "2")]);
        assert_eq!(rv.notes.len(), 1, "{:?}", rv.notes);
        assert!(rv.notes[0].contains("larger than 10 bytes"));
        assert!(!path.exists());
        assert_eq!(read_and_remove(&path, 10), ReturnValues::default());
    }

    #[test]
    fn refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "a=1\n").unwrap();
        let path = dir.path().join("rv");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let rv = read_and_remove(&path, 100);
        assert!(rv.values.is_empty());
        assert_eq!(rv.notes.len(), 1, "{:?}", rv.notes);
        assert!(target.exists());
        assert!(!path.exists());
    }
}
