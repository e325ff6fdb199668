//! The files of a checkpoint: walked and hashed to seal them, copied and verified against the
//! manifest to restore them, fsynced so that a seal never refers to what the disk may lose.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::error::{StoreError, io_err};
use super::manifest::{FileEntry, Manifest};

/// Makes a directory's entries durable.
pub(super) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// A relative path of normal components only.
pub(super) fn safe_rel(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| p.to_owned())
}

/// Removes a file, symlink or directory tree, logging (not failing) when it cannot.
pub(super) fn remove_any(path: &Path) {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = r {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

/// A fresh, empty incarnation directory at `path` (what was there is removed).
pub(super) fn make_inc_dir(path: &Path) -> Result<(), StoreError> {
    remove_any(path);
    fs::create_dir(path).map_err(io_err(path))?;
    // World-writable so a container running as another user can write its checkpoint; the job
    // directory above it is 0700, so no other host user can reach it.
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).map_err(io_err(path))
}

/// Lists every file under `dir` with its size and CRC-32 (paths relative to `root`); refuses
/// what a checkpoint cannot hold (devices, sockets, FIFOs, non-UTF-8 names).
pub(super) fn walk(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<(), StoreError> {
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .ok_or_else(|| StoreError::Corrupt(format!("{} is not UTF-8", p.display())))?
            .to_owned();
        let md = fs::symlink_metadata(&p).map_err(io_err(&p))?;
        if md.is_dir() {
            walk(root, &p, out)?;
        } else if md.file_type().is_symlink() {
            let target = fs::read_link(&p).map_err(io_err(&p))?;
            let target = target
                .to_str()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("{} links to a non-UTF-8 path", p.display()))
                })?
                .to_owned();
            out.push(FileEntry {
                path: rel,
                size: 0,
                crc32: crc32fast::hash(target.as_bytes()),
                symlink: Some(target),
            });
        } else if md.is_file() {
            let (size, crc) = hash_file(&p, None)?;
            out.push(FileEntry {
                path: rel,
                size,
                crc32: crc,
                symlink: None,
            });
        } else {
            return Err(StoreError::Corrupt(format!(
                "{} is not a regular file, directory or symlink; a checkpoint cannot hold it",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Opens a file for reading, refusing a symlink in its place.
fn open_nofollow(p: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(p)
        .map_err(io_err(p))
}

/// Size and CRC-32 of a file; with `copy_to` (a file and its path), also writes the content there
/// (fsynced). A failed read names `p`, a failed write the copy (a full disk under the copy is
/// not a fault of the sealed source).
fn hash_file(p: &Path, mut copy_to: Option<(&mut File, &Path)>) -> Result<(u64, u32), StoreError> {
    let mut f = open_nofollow(p)?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(p))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
        if let Some((out, to)) = copy_to.as_mut() {
            out.write_all(&buf[..n]).map_err(io_err(to))?;
        }
    }
    if let Some((out, to)) = copy_to {
        out.sync_all().map_err(io_err(to))?;
    } else {
        // Make the job's own writes durable before the seal refers to them.
        f.sync_all().map_err(io_err(p))?;
    }
    Ok((size, h.finalize()))
}

/// Makes every directory under `dir` (and `dir`) durable.
pub(super) fn fsync_tree(dir: &Path) -> Result<(), StoreError> {
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let p = e.map_err(io_err(dir))?.path();
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            fsync_tree(&p)?;
        }
    }
    fsync_dir(dir)
}

/// How a sealed checkpoint's files reach the next incarnation's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Restore {
    /// Copied: the job may do anything to its files, the sealed ones stay as they were.
    Copy,
    /// Hard-linked (when a copy does not fit in the free space): no data is written, and the
    /// sealed files stay intact as long as the job replaces its files (new file, rename) rather
    /// than rewriting them in place.
    Link,
}

/// Restores the files `m` lists from `src` into `dst` (`how`: copied or hard-linked), checking
/// each against its size and CRC-32 (and each symlink against its target), then fsyncs `dst`.
pub(super) fn restore_verified(
    src: &Path,
    dst: &Path,
    m: &Manifest,
    how: Restore,
) -> Result<(), StoreError> {
    for f in &m.files {
        let rel = safe_rel(&f.path)
            .ok_or_else(|| StoreError::Corrupt(format!("unsafe path {:?}", f.path)))?;
        let from = src.join(&rel);
        let to = dst.join(&rel);
        if let Some(parent) = to.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o777)
                .create(parent)
                .map_err(io_err(parent))?;
        }
        if let Some(target) = &f.symlink {
            let actual = fs::read_link(&from).map_err(|_| {
                StoreError::Corrupt(format!("{} is not the symlink its manifest says", f.path))
            })?;
            if actual.to_str() != Some(target.as_str())
                || crc32fast::hash(target.as_bytes()) != f.crc32
            {
                return Err(StoreError::Corrupt(format!("symlink {} changed", f.path)));
            }
            std::os::unix::fs::symlink(target, &to).map_err(io_err(&to))?;
            continue;
        }
        let md = fs::symlink_metadata(&from)
            .map_err(|_| StoreError::Corrupt(format!("{} is missing", f.path)))?;
        if !md.is_file() {
            return Err(StoreError::Corrupt(format!(
                "{} is not a regular file",
                f.path
            )));
        }
        let (size, crc) = match how {
            Restore::Copy => {
                let mut out = OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .mode(md.permissions().mode() & 0o777)
                    .open(&to)
                    .map_err(io_err(&to))?;
                hash_file(&from, Some((&mut out, &to)))?
            }
            Restore::Link => {
                fs::hard_link(&from, &to).map_err(io_err(&to))?;
                hash_file(&to, None)?
            }
        };
        if size != f.size || crc != f.crc32 {
            return Err(StoreError::Corrupt(format!(
                "{}: {size} bytes with CRC-32 {crc:08x}, the manifest says {} bytes with {:08x}",
                f.path, f.size, f.crc32
            )));
        }
    }
    fsync_tree(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_copy_names_the_copy_not_the_sealed_source() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("state");
        fs::write(&src, b"some state").unwrap();
        // /dev/full: every write fails with ENOSPC, as on a full checkpoint disk.
        let mut full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let e = hash_file(&src, Some((&mut full, Path::new("/dev/full")))).unwrap_err();
        let StoreError::Io { path, source } = e else {
            panic!("{e}")
        };
        assert_eq!(source.raw_os_error(), Some(28), "{source}");
        assert_eq!(
            path,
            Path::new("/dev/full"),
            "the sealed source is intact; the copy failed"
        );
    }
}
