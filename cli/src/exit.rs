//! Exit codes that scripts can trust, and the error that carries one.
//!
//! | Code | Meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the request failed or the server said no (its message is printed); local validation failed; `order add --wait` ended in another state than `finished` |
//! | 2 | usage: bad flags or arguments, no API URL, an unreadable profile or CA file |
//! | 3 | cannot connect to the API (refused, TLS, timeout), the API cannot reach the controller (502–504), or the token is missing, unknown or lacks the role |

use std::fmt;
use std::process::ExitCode;

/// Why the command failed, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Failed = 1,
    Usage = 2,
    Unreachable = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error with the exit code it gives.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Failed,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    pub fn unreachable(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Unreachable,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code of a command's error: a [`Failure`]'s own, else 1.
pub fn code_of(error: &anyhow::Error) -> ExitCode {
    match error.downcast_ref::<Failure>() {
        Some(f) => f.exit.into(),
        None => ExitCode::FAILURE,
    }
}
