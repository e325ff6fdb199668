//! The seal of a complete incarnation: its manifest, listing every file with its size and
//! CRC-32 (or its link target).

use serde::{Deserialize, Serialize};

/// Manifest format version.
pub const MANIFEST_FORMAT: u32 = 1;

/// The one field every manifest format has, read before the rest: a manifest of a newer format
/// (written by a newer shell-trap) may not parse as this one, and must not be taken for a torn
/// or forged one.
#[derive(Debug, Deserialize)]
pub(super) struct FormatOnly {
    /// The manifest's format.
    pub(super) format: u32,
}

/// One file of a sealed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the incarnation directory, `/`-separated.
    pub path: String,
    /// Size in bytes (regular files).
    #[serde(default)]
    pub size: u64,
    /// CRC-32 of the content (regular files) or of the link target (symlinks).
    pub crc32: u32,
    /// The link target, for a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
}

/// The seal of a complete incarnation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The job's UUID (its directory's name).
    pub uuid: String,
    /// Incarnation number.
    pub incarnation: u64,
    /// `app` or `criu`.
    pub strategy: String,
    /// Epoch seconds.
    pub sealed_at: f64,
    /// The incarnation it was restored from, if any.
    pub restored_from: Option<u64>,
    /// Every file (directories are implied).
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Total bytes of the regular files.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
