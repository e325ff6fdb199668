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
    /// The newest checkpoint was sealed by a newer shell-trap (a manifest format this one does
    /// not read): it is left untouched, and restoring is refused rather than losing it.
    #[error(
        "checkpoint {} was sealed by a newer shell-trap (its manifest {} has format {format}; \
         this shell-trap {} reads format {}): it is left untouched and the job is not started, \
         so that its work is not lost. Run the job with the newer shell-trap to restore it, or \
         to start it from scratch remove {} and its manifest",
        .dir.display(), .manifest.display(), env!("CARGO_PKG_VERSION"),
        super::manifest::MANIFEST_FORMAT, .dir.display()
    )]
    Newer {
        /// The checkpoint's directory.
        dir: PathBuf,
        /// Its manifest.
        manifest: PathBuf,
        /// The manifest's format.
        format: u32,
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
