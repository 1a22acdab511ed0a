//! Reading a server's configuration file: size-limited, with errors that name the file.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest configuration file read, in bytes.
pub const CONFIG_BYTES_MAX: u64 = 1 << 20;

/// Why a configuration file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the configuration {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration {path} is larger than {CONFIG_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
}

/// Reads a configuration file as text, and the folder its relative paths are taken from.
pub fn read(path: &Path) -> Result<(String, PathBuf), ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    file.take(CONFIG_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > CONFIG_BYTES_MAX {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
        });
    }
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    Ok((text, base))
}
