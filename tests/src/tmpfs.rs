//! A small tmpfs for disk-full tests, unmounted when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on `dir` (which must exist). `None`, with the reason printed,
    /// when this process may not mount (it needs root or CAP_SYS_ADMIN).
    pub fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs on {} (needs root or CAP_SYS_ADMIN): {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the file system with `file`: writes until it is full. Returns the bytes written.
    pub fn fill(&self, file: &Path) -> std::io::Result<u64> {
        use std::io::Write;
        let mut f = std::fs::File::create(file)?;
        let chunk = vec![0u8; 64 << 10];
        let mut written = 0u64;
        // Bounded: a tmpfs of a size this test chose.
        for _ in 0..1_000_000 {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(e),
            }
        }
        // Smaller pieces take what the chunks left.
        for _ in 0..1_000_000 {
            match f.write(&chunk[..512]) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a process still has a file open): detach it now, it goes when unused.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
