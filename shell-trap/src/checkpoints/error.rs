//! What a checkpoint store call reports when it fails.

use std::io;
use std::path::{Path, PathBuf};

/// A store error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the job's lock.
    #[error("another shell-trap holds {0} (a live incarnation of this job on this host)")]
    Busy(PathBuf),
    /// An I/O error on a path.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A checkpoint is not what its manifest says, or has something that cannot be sealed.
    #[error("{0}")]
    Corrupt(String),
}

/// Maps an I/O error on `path` to [`StoreError::Io`].
pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}
