//! How the database is kept: its sync mode, its WAL bound and its history bounds.

use std::time::Duration;

/// How the database is kept: sync mode, WAL bound, history bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoreOptions {
    /// `synchronous = FULL` (survives a power loss) instead of `NORMAL`.
    pub(crate) full_sync: bool,
    /// The WAL is truncated as soon as it passes this many bytes.
    pub(crate) wal_max_bytes: u64,
    /// ... and at least this often.
    pub(crate) checkpoint_interval: Duration,
    /// Decisions and events kept per job.
    pub(crate) history_max_per_job: usize,
    /// Downsampled samples kept per job.
    pub(crate) samples_max_per_job: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            full_sync: false,
            wal_max_bytes: 16 << 20,
            checkpoint_interval: Duration::from_secs(10),
            history_max_per_job: 10_000,
            samples_max_per_job: 10_000,
        }
    }
}
