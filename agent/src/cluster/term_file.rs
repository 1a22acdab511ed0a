//! `<data_dir>/director-term`: the highest director term a subagent has served, kept across
//! its restarts so that a director deposed before the restart stays refused after it.
//!
//! Format: the term in decimal ASCII, nothing else (at most [`TERM_FILE_BYTES_MAX`] bytes).
//! Written to `director-term.tmp`, fsynced, renamed over the file, the directory fsynced: a
//! crash leaves the old term or the new one. A missing file is term 0 (a subagent that never
//! served a director pair); an unreadable or malformed one stops the subagent at start, since
//! guessing a term could let an old director in.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

const NAME: &str = "director-term";
const TMP_NAME: &str = "director-term.tmp";

/// The largest term file read.
pub const TERM_FILE_BYTES_MAX: u64 = 32;

/// The term kept in `data_dir` (0 when there is none).
pub fn load(data_dir: &Path) -> Result<u64, String> {
    let path = data_dir.join(NAME);
    let text = match fs::metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
        Ok(m) if m.len() > TERM_FILE_BYTES_MAX => {
            return Err(format!(
                "{} holds {} bytes, more than a term ({TERM_FILE_BYTES_MAX} at most)",
                path.display(),
                m.len()
            ));
        }
        Ok(_) => {
            fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?
        }
    };
    text.trim()
        .parse()
        .map_err(|e| format!("{} does not hold a term: {e}", path.display()))
}

/// Keeps `term` in `data_dir`, durably, before it is served.
pub fn store(data_dir: &Path, term: u64) -> io::Result<()> {
    let tmp = data_dir.join(TMP_NAME);
    let mut file = File::create(&tmp)?;
    file.write_all(term.to_string().as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, data_dir.join(NAME))?;
    File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_survives_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(0));
        store(dir.path(), 7).unwrap();
        assert_eq!(load(dir.path()), Ok(7));
        store(dir.path(), 12).unwrap();
        assert_eq!(load(dir.path()), Ok(12));
        fs::write(dir.path().join(NAME), "twelve").unwrap();
        assert!(
            load(dir.path())
                .unwrap_err()
                .contains("does not hold a term")
        );
        fs::write(dir.path().join(NAME), "1".repeat(40)).unwrap();
        assert!(load(dir.path()).unwrap_err().contains("more than a term"));
    }
}
