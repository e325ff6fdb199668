//! Errors that keep shell-trap from running the job, and the exit statuses it uses.

/// Exit status: shell-trap could not run the job (as `docker run` uses 125).
pub const EXIT_SETUP: i32 = 125;
/// Exit status: the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit status: the command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status: stopped by SIGTERM/SIGINT and checkpointed as planned (or stopped, `none`).
pub const EXIT_STOPPED: i32 = 0;
/// Exit status: stopped by SIGTERM/SIGINT but the checkpoint failed (the previous complete
/// checkpoint, if any, is what the next start restores).
pub const EXIT_CHECKPOINT_FAILED: i32 = 1;

/// Why the job could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An argument or environment value is invalid.
    #[error("{flag}: {reason}")]
    Invalid {
        /// The flag (or variable) at fault.
        flag: String,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint strategy cannot be used here.
    #[error("{0}")]
    Strategy(String),
    /// The checkpoint directory cannot be used.
    #[error("checkpoint directory {path}: {reason}")]
    Store {
        /// The checkpoint directory, as given.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Another live incarnation owns this UUID.
    #[error("{0}")]
    Busy(String),
    /// The container runtime failed.
    #[error("{0}")]
    Runtime(String),
    /// The command cannot be executed (`exit 126`) or was not found (`exit 127`).
    #[error("{message}")]
    Exec {
        /// 126 or 127.
        code: i32,
        /// What happened.
        message: String,
    },
}

impl SetupError {
    /// An invalid value.
    pub fn invalid(flag: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            flag: flag.into(),
            reason: reason.into(),
        }
    }

    /// A checkpoint-directory failure.
    pub fn store(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Self::Store {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The exit status for this error.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Exec { code, .. } => *code,
            _ => EXIT_SETUP,
        }
    }
}
