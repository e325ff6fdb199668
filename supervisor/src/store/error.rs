//! What a failed storage call says.

use rusqlite::ErrorCode;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database's file system is full: nothing of the failed transaction was written.
    #[error("the database's disk is full: {0}")]
    Full(String),
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(String),
    /// The write queue is full.
    #[error("the database write queue is full")]
    Overloaded,
    /// A write this one depends on failed (retry: it is written again).
    #[error("an earlier database write failed")]
    Earlier,
    /// The database thread is gone (shutting down).
    #[error("the database is closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::Full(e.to_string()),
            _ => Self::Sqlite(e.to_string()),
        }
    }
}
