//! The checkpoint store of one job: per UUID and per incarnation, sealed by a manifest, never
//! restored half-written.
//!
//! # Layout
//! ```text
//! <checkpoint-dir>/<uuid>/                 mode 0700: one job
//!   lock                                   flock(2) of the shell-trap that owns the job here
//!   inc-000003/                            incarnation 3's directory: QOS_CHECKPOINT_DIR (`app`,
//!                                          bind-mounted at /qos-checkpoint in a container) or
//!                                          `criu/` (`docker checkpoint --checkpoint-dir`)
//!   inc-000003.manifest                    the seal: JSON {format, uuid, incarnation, strategy,
//!                                          sealed_at, restored_from, files: [{path, size, crc32
//!                                          | symlink}]}
//!   inc-000004.tmp/                        being prepared (a copy of the newest sealed one)
//! ```
//!
//! # Rules
//! - An incarnation is **complete** only when its manifest exists, parses, and every file it
//!   lists has the recorded size and CRC-32 (checked while copying). The manifest lives *next
//!   to* the directory, not in it, so a job that can write its checkpoint directory (a container
//!   with the bind mount) cannot forge a seal.
//! - Sealing (after the job checkpointed and stopped): every file is fsynced and hashed, the
//!   manifest is written to a temporary name, fsynced, renamed into place and the directory
//!   fsynced — a crash at any point leaves either no seal or a complete one.
//! - Starting an incarnation: the newest complete incarnation is **copied** (verified) into a new
//!   `inc-N.tmp/`, fsynced, and renamed to `inc-N/`; the job then works in `inc-N/`, so the
//!   sealed source stays intact until a newer seal replaces it (a job killed mid-checkpoint falls
//!   back to it). When a copy does not fit in the free space (or runs out of it), the files are
//!   hard-linked instead, with a warning: the seal stays intact while the job replaces its files
//!   rather than rewriting them in place (an in-place rewrite is caught by the CRC-32 at the next
//!   start: never restored wrong). Temporaries, unsealed directories and corrupt seals are deleted (stale); sealed
//!   ones older than the newest are deleted too. Only paths made of normal components are
//!   copied, and symlinks are copied as symlinks (never followed).
//! - One live owner: the `lock` is held for the whole run, so a second shell-trap of the same
//!   UUID on this host waits (up to the grace period, while the first one checkpoints) and then
//!   refuses rather than touching the first one's files or container.
//! - A seal of a newer manifest format (a newer shell-trap wrote it) is neither deleted nor
//!   restored: restoring refuses ([`StoreError::Newer`], naming it) when it is the newest seal,
//!   and a fresh incarnation (`prepare(None)`) leaves it in place.
//! - When the job ends by itself, the whole `<uuid>/` directory is removed.

mod error;
mod files;
mod manifest;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

pub use error::StoreError;
use error::io_err;
use files::{
    Restore, fsync_dir, fsync_tree, make_inc_dir, remove_any, restore_verified, safe_rel, walk,
};
use manifest::FormatOnly;
pub use manifest::{FileEntry, MANIFEST_FORMAT, Manifest};

const INC_PREFIX: &str = "inc-";
const MANIFEST_SUFFIX: &str = ".manifest";
const TMP_SUFFIX: &str = ".tmp";
const LOCK: &str = "lock";

/// The state of one incarnation found on disk.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// Sealed (manifest parsed and sizes match; CRCs are checked when it is copied).
    Sealed(Manifest),
    /// A directory without a (valid) manifest: unsealed or half-written.
    Unsealed(String),
    /// A temporary (`.tmp`) directory or manifest.
    Temporary,
    /// Sealed by a newer shell-trap: its manifest has a format this one does not read. Never
    /// deleted (but by [`Store::remove_all`] when the job is over) and never restored.
    Newer(u32),
}

/// An incarnation on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its incarnation number (the directory's name).
    pub seq: u64,
    /// Its directory under the job's.
    pub dir: PathBuf,
    /// What it is.
    pub found: Found,
}

/// The incarnation being run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incarnation {
    /// Its number (1 for the first).
    pub seq: u64,
    /// Its checkpoint directory.
    pub dir: PathBuf,
    /// The sealed incarnation it was restored from, when it was.
    pub restored_from: Option<u64>,
    /// Bytes restored.
    pub restored_bytes: u64,
}

/// The checkpoint store of one job, locked for the lifetime of this value.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    uuid: String,
    _lock: Flock<File>,
}

/// The space left on a file system for an unprivileged writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FreeSpace {
    /// Bytes available.
    bytes: u64,
    /// The fragment size files are allocated in.
    block: u64,
}

impl FreeSpace {
    /// Whether a copy of the files of `m` fits, each rounded up to whole blocks, with one block
    /// per file and 1 MiB to spare for directories and the manifest.
    fn fits(self, m: &Manifest) -> bool {
        let block = self.block.max(1);
        let need = m.files.iter().fold(1u64 << 20, |acc, f| {
            acc.saturating_add(
                f.size
                    .div_ceil(block)
                    .saturating_add(1)
                    .saturating_mul(block),
            )
        });
        need <= self.bytes
    }
}

/// The free space of the file system of `dir` (`statvfs`), `None` when it cannot be told.
fn free_space(dir: &Path) -> Option<FreeSpace> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let block = st.fragment_size();
    Some(FreeSpace {
        bytes: st.blocks_available().saturating_mul(block),
        block,
    })
}

/// ENOSPC or EDQUOT.
fn out_of_space(e: &StoreError) -> bool {
    use nix::errno::Errno;
    let StoreError::Io { source, .. } = e else {
        return false;
    };
    source
        .raw_os_error()
        .is_some_and(|n| n == Errno::ENOSPC as i32 || n == Errno::EDQUOT as i32)
}

/// Epoch seconds now.
#[must_use]
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn inc_name(seq: u64) -> String {
    format!("{INC_PREFIX}{seq:06}")
}

/// Incarnation numbers are below this (a billion restarts of one job are not coming); a name
/// with a larger number is not one of shell-trap's and is left alone — counting on from it
/// would overflow (`inc-18446744073709551615`).
const MAX_SEQ: u64 = 1_000_000_000;

/// Parses `inc-000012` → 12.
fn parse_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(INC_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n < MAX_SEQ)
}

impl Store {
    /// Creates (mode 0700) and locks `<checkpoint-dir>/<uuid>`, without waiting.
    ///
    /// # Errors
    /// [`StoreError::Busy`] when another process holds the lock; [`StoreError::Io`] otherwise.
    pub fn open(dir: &Path, uuid: &str) -> Result<Self, StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let meta = fs::symlink_metadata(dir).map_err(io_err(dir))?;
        if !meta.is_dir() {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let lock_path = dir.join(LOCK);
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&lock_path)
                .map_err(io_err(&lock_path))?;
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(StoreError::Busy(lock_path));
                }
                Err((_, e)) => {
                    return Err(StoreError::Io {
                        path: lock_path,
                        source: e.into(),
                    });
                }
            };
            // The file may have been unlinked by an owner that finished (remove_all) between
            // our open and lock: then lock the new one.
            let same = fs::metadata(&lock_path).is_ok_and(|m| {
                lock.metadata()
                    .is_ok_and(|l| l.ino() == m.ino() && l.dev() == m.dev())
            });
            if same {
                let mut l = lock;
                let _ = l.set_len(0);
                let _ = writeln!(&mut *l, "{}", std::process::id());
                return Ok(Self {
                    dir: dir.to_owned(),
                    uuid: uuid.to_owned(),
                    _lock: l,
                });
            }
        }
    }

    /// [`Store::open`], retrying every 100 ms for up to `wait` while another process holds the
    /// lock.
    ///
    /// # Errors
    /// As [`Store::open`], [`StoreError::Busy`] once `wait` has passed.
    pub async fn open_waiting(dir: &Path, uuid: &str, wait: Duration) -> Result<Self, StoreError> {
        let until = Instant::now() + wait;
        let mut logged = false;
        loop {
            match Self::open(dir, uuid) {
                Err(StoreError::Busy(p)) if Instant::now() < until => {
                    if !logged {
                        tracing::info!(
                            "{} is held by a live incarnation of this job; waiting up to {:.0} s \
                             for it to checkpoint and stop",
                            p.display(),
                            wait.as_secs_f64()
                        );
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// The job's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of incarnation `seq`.
    #[must_use]
    pub fn incarnation_dir(&self, seq: u64) -> PathBuf {
        self.dir.join(inc_name(seq))
    }

    fn manifest_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{}{MANIFEST_SUFFIX}", inc_name(seq)))
    }

    /// Every incarnation on disk, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be read.
    pub fn scan(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let mut temporaries = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let e = e.map_err(io_err(&self.dir))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = name.strip_suffix(TMP_SUFFIX) {
                let base = base.strip_suffix(MANIFEST_SUFFIX).unwrap_or(base);
                if let Some(seq) = parse_seq(base) {
                    temporaries.push(Entry {
                        seq,
                        dir: e.path(),
                        found: Found::Temporary,
                    });
                }
                continue;
            }
            let Some(seq) = parse_seq(name) else { continue };
            let found = self.check_sealed(seq);
            out.push(Entry {
                seq,
                dir: e.path(),
                found,
            });
        }
        out.extend(temporaries);
        out.sort_by_key(|e| (e.seq, matches!(e.found, Found::Temporary)));
        Ok(out)
    }

    fn check_sealed(&self, seq: u64) -> Found {
        let mpath = self.manifest_path(seq);
        let text = match fs::read(&mpath) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Found::Unsealed("no manifest (not sealed)".into());
            }
            Err(e) => return Found::Unsealed(format!("manifest unreadable: {e}")),
        };
        let m = match serde_json::from_slice::<Manifest>(&text) {
            Ok(m) if m.format > MANIFEST_FORMAT => return Found::Newer(m.format),
            Ok(m) => m,
            // Only a manifest this shell-trap cannot read is read again, for its format alone.
            Err(e) => {
                return match serde_json::from_slice::<FormatOnly>(&text) {
                    Ok(head) if head.format > MANIFEST_FORMAT => Found::Newer(head.format),
                    _ => Found::Unsealed(format!("manifest unparsable: {e}")),
                };
            }
        };
        if m.format != MANIFEST_FORMAT || m.incarnation != seq || m.uuid != self.uuid {
            return Found::Unsealed(format!(
                "manifest is for another job/incarnation/format ({} #{} v{})",
                m.uuid, m.incarnation, m.format
            ));
        }
        let dir = self.dir.join(inc_name(seq));
        for f in &m.files {
            let Some(rel) = safe_rel(&f.path) else {
                return Found::Unsealed(format!("manifest lists an unsafe path {:?}", f.path));
            };
            let p = dir.join(rel);
            match (fs::symlink_metadata(&p), &f.symlink) {
                (Ok(md), None) if md.is_file() && md.len() == f.size => {}
                (Ok(md), Some(_)) if md.file_type().is_symlink() => {}
                (Ok(_), _) => {
                    return Found::Unsealed(format!("{} differs from its manifest", f.path));
                }
                (Err(_), _) => return Found::Unsealed(format!("{} is missing", f.path)),
            }
        }
        Found::Sealed(m)
    }

    /// Removes every incarnation but those in `keep` (and the lock).
    fn prune(&self, keep: &[u64]) -> Result<(), StoreError> {
        self.prune_where(|e| !keep.contains(&e.seq) || e.found == Found::Temporary)
    }

    /// Removes the incarnations `doomed` picks.
    fn prune_where(&self, doomed: impl Fn(&Entry) -> bool) -> Result<(), StoreError> {
        for e in self.scan()? {
            if !doomed(&e) {
                continue;
            }
            match &e.found {
                // Written by a newer shell-trap: never removed here.
                Found::Newer(_) => continue,
                Found::Unsealed(why) => {
                    tracing::info!("removing stale checkpoint {} ({why})", e.dir.display());
                }
                Found::Temporary => {
                    tracing::info!("removing leftover temporary {}", e.dir.display());
                }
                Found::Sealed(_) => {
                    tracing::debug!("removing superseded checkpoint {}", e.dir.display());
                }
            }
            remove_any(&e.dir);
            if e.found != Found::Temporary {
                remove_any(&self.manifest_path(e.seq));
            }
        }
        fsync_dir(&self.dir)
    }

    /// Prepares the next incarnation's directory. With `restore = Some(strategy)`, the newest
    /// incarnation sealed with that strategy whose files verify is copied into it (a corrupt one is
    /// deleted and the next older tried); with `None`, every earlier checkpoint is deleted. Stale
    /// directories are deleted either way.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created or written.
    pub fn prepare(&self, restore: Option<&str>) -> Result<Incarnation, StoreError> {
        self.prepare_with(restore, free_space)
    }

    /// [`Store::prepare`] with `free` telling the free space of a directory.
    fn prepare_with(
        &self,
        restore: Option<&str>,
        free: impl Fn(&Path) -> Option<FreeSpace>,
    ) -> Result<Incarnation, StoreError> {
        let entries = self.scan()?;
        let seq = entries.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
        let newest_seal = entries
            .iter()
            .filter(|e| matches!(e.found, Found::Sealed(_) | Found::Newer(_)))
            .max_by_key(|e| e.seq);
        if let Some(Entry {
            seq: newer,
            dir,
            found: Found::Newer(format),
        }) = newest_seal
        {
            let manifest = self.manifest_path(*newer);
            if restore.is_some() {
                return Err(StoreError::Newer {
                    dir: dir.clone(),
                    manifest,
                    format: *format,
                });
            }
            tracing::warn!(
                "checkpoint {} was sealed by a newer shell-trap (manifest format {format}): \
                 strategy none does not restore it, and it is left untouched for a newer \
                 shell-trap to restore",
                dir.display()
            );
        }
        let mut sealed: Vec<Manifest> = Vec::new();
        for e in entries {
            if let Found::Sealed(m) = e.found {
                match restore {
                    Some(s) if s == m.strategy => sealed.push(m),
                    Some(s) => tracing::warn!(
                        "checkpoint {} was made with strategy {}, not {s}: it cannot be restored \
                         and is deleted",
                        e.dir.display(),
                        m.strategy
                    ),
                    None => {}
                }
            }
        }
        let name = inc_name(seq);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let dir = self.dir.join(&name);
        // Stale first: unsealed directories and temporaries.
        self.prune_where(|e| !matches!(e.found, Found::Sealed(_)))?;
        while let Some(m) = sealed.pop() {
            make_inc_dir(&tmp)?;
            let src = self.dir.join(inc_name(m.incarnation));
            let space = free(&self.dir);
            let mut how = match space {
                Some(space) if !space.fits(&m) => {
                    self.linking(&m, seq, &format!("{} bytes free", space.bytes));
                    Restore::Link
                }
                _ => Restore::Copy,
            };
            let mut restored = restore_verified(&src, &tmp, &m, how);
            if how == Restore::Copy && restored.as_ref().is_err_and(out_of_space) {
                // The space went while copying (or the estimate was wrong): link instead.
                self.linking(&m, seq, "the copy ran out of space");
                make_inc_dir(&tmp)?;
                how = Restore::Link;
                restored = restore_verified(&src, &tmp, &m, how);
            }
            match restored {
                Ok(()) => {
                    fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
                    fsync_dir(&self.dir)?;
                    // Older seals are superseded; the source stays until this one is sealed.
                    self.prune(&[m.incarnation, seq])?;
                    return Ok(Incarnation {
                        seq,
                        dir,
                        restored_from: Some(m.incarnation),
                        restored_bytes: m.bytes(),
                    });
                }
                Err(StoreError::Corrupt(why)) => {
                    tracing::warn!(
                        "checkpoint {} is corrupt ({why}); it is deleted and not restored",
                        src.display()
                    );
                    remove_any(&tmp);
                    remove_any(&self.manifest_path(m.incarnation));
                    remove_any(&src);
                }
                Err(e) => {
                    remove_any(&tmp);
                    return Err(e);
                }
            }
        }
        self.prune(&[])?;
        make_inc_dir(&tmp)?;
        fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        fsync_dir(&self.dir)?;
        Ok(Incarnation {
            seq,
            dir,
            restored_from: None,
            restored_bytes: 0,
        })
    }

    /// Says why and with what risk seal `m` is hard-linked into incarnation `seq`.
    fn linking(&self, m: &Manifest, seq: u64, why: &str) {
        tracing::warn!(
            "the checkpoint of incarnation {} ({} bytes) does not fit beside itself on {} ({why}): \
             its files are hard-linked into incarnation {seq} instead of copied. The sealed \
             checkpoint stays intact while the job replaces its checkpoint files (writes a new \
             file and renames it over the old); a file rewritten in place changes the sealed \
             checkpoint too, and should the job then die before its next checkpoint is sealed, \
             the sealed one no longer verifies and the job starts from scratch",
            m.incarnation,
            m.bytes(),
            self.dir.display()
        );
    }

    /// Seals `inc` after its job checkpointed and stopped: hashes and fsyncs every file, writes
    /// the manifest atomically, then deletes every other incarnation.
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`] (a special file in the directory).
    pub fn seal(&self, inc: &Incarnation, strategy: &str) -> Result<Manifest, StoreError> {
        let mut files = Vec::new();
        walk(&inc.dir, &inc.dir, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        fsync_tree(&inc.dir)?;
        let m = Manifest {
            format: MANIFEST_FORMAT,
            uuid: self.uuid.clone(),
            incarnation: inc.seq,
            strategy: strategy.to_owned(),
            sealed_at: epoch_now(),
            restored_from: inc.restored_from,
            files,
        };
        let path = self.manifest_path(inc.seq);
        let tmp = path.with_extension(format!("manifest{TMP_SUFFIX}"));
        let body = serde_json::to_vec_pretty(&m)
            .map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?;
        {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            f.write_all(&body).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        fsync_dir(&self.dir)?;
        self.prune(&[inc.seq])?;
        Ok(m)
    }

    /// Deletes `inc` (unsealed) right away, e.g. when the job never started.
    pub fn discard(&self, inc: &Incarnation) {
        remove_any(&inc.dir);
        let _ = fsync_dir(&self.dir);
    }

    /// The job is over: deletes every checkpoint and the job's directory (the lock goes with
    /// it).
    pub fn remove_all(self) {
        match self.scan() {
            Ok(entries) => {
                for e in entries {
                    remove_any(&e.dir);
                    remove_any(&self.manifest_path(e.seq));
                }
            }
            Err(e) => tracing::warn!("cleaning {}: {e}", self.dir.display()),
        }
        let _ = fs::remove_file(self.dir.join(LOCK));
        if let Err(e) = fs::remove_dir(&self.dir) {
            tracing::warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0123456789abcdef0123456789abcdef";

    fn store() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join(U), U).unwrap();
        (t, s)
    }

    fn write(dir: &Path, rel: &str, body: &[u8]) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    /// The next incarnation (restoring the last seal), its `state` file then set to `body`.
    fn next_with_state(s: &Store, body: &[u8]) -> Incarnation {
        let i = s.prepare(Some("app")).unwrap();
        write(&i.dir, "state", body);
        i
    }

    /// The next incarnation with `state` = `body`, sealed.
    fn sealed_with_state(s: &Store, body: &[u8]) -> Incarnation {
        let i = next_with_state(s, body);
        s.seal(&i, "app").unwrap();
        i
    }

    #[test]
    fn first_start_then_seal_then_restore() {
        let (_t, s) = store();
        let i1 = s.prepare(Some("app")).unwrap();
        assert_eq!((i1.seq, i1.restored_from), (1, None));
        assert!(i1.dir.ends_with("inc-000001"));
        write(&i1.dir, "state.bin", b"hello");
        write(&i1.dir, "sub/more", b"world");
        std::os::unix::fs::symlink("state.bin", i1.dir.join("latest")).unwrap();
        let m = s.seal(&i1, "app").unwrap();
        assert_eq!(m.files.len(), 3);
        assert_eq!(m.bytes(), 10);

        let i2 = s.prepare(Some("app")).unwrap();
        assert_eq!(
            (i2.seq, i2.restored_from, i2.restored_bytes),
            (2, Some(1), 10)
        );
        assert_eq!(fs::read(i2.dir.join("state.bin")).unwrap(), b"hello");
        assert_eq!(fs::read(i2.dir.join("sub/more")).unwrap(), b"world");
        assert_eq!(
            fs::read_link(i2.dir.join("latest")).unwrap(),
            Path::new("state.bin")
        );
        // The sealed source stays until a newer seal.
        assert!(i1.dir.exists());
        write(&i2.dir, "state.bin", b"hello2");
        s.seal(&i2, "app").unwrap();
        assert!(!i1.dir.exists());
        assert!(!s.manifest_path(1).exists());
        let i3 = s.prepare(Some("app")).unwrap();
        assert_eq!(i3.restored_from, Some(2));
        assert_eq!(fs::read(i3.dir.join("state.bin")).unwrap(), b"hello2");
    }

    #[test]
    fn unsealed_and_temporary_are_never_restored_and_are_cleaned() {
        let (_t, s) = store();
        sealed_with_state(&s, b"good");
        // Incarnation 2 was killed while checkpointing: no seal.
        let i2 = next_with_state(&s, b"half-writ");
        // A leftover temporary from a crash while preparing incarnation 3.
        fs::create_dir(s.dir().join("inc-000003.tmp")).unwrap();
        fs::write(s.dir().join("inc-000003.manifest.tmp"), b"{").unwrap();
        let i4 = s.prepare(Some("app")).unwrap();
        assert_eq!((i4.seq, i4.restored_from), (4, Some(1)));
        assert_eq!(fs::read(i4.dir.join("state")).unwrap(), b"good");
        assert!(!i2.dir.exists());
        assert!(!s.dir().join("inc-000003.tmp").exists());
        assert!(!s.dir().join("inc-000003.manifest.tmp").exists());
    }

    #[test]
    fn a_corrupt_seal_falls_back_to_an_older_one_or_to_scratch() {
        let (_t, s) = store();
        sealed_with_state(&s, b"one");
        let i2 = next_with_state(&s, b"two");
        // Seal 2 without pruning 1, as if the prune had not happened yet.
        let m2 = Manifest {
            format: MANIFEST_FORMAT,
            uuid: U.into(),
            incarnation: 2,
            strategy: "app".into(),
            sealed_at: 0.0,
            restored_from: Some(1),
            files: vec![FileEntry {
                path: "state".into(),
                size: 3,
                crc32: crc32fast::hash(b"two"),
                symlink: None,
            }],
        };
        fs::write(s.manifest_path(2), serde_json::to_vec(&m2).unwrap()).unwrap();
        // Same size, different bytes: found only by the CRC while copying.
        write(&i2.dir, "state", b"TWO");
        let i3 = s.prepare(Some("app")).unwrap();
        assert_eq!(i3.restored_from, Some(1));
        assert_eq!(fs::read(i3.dir.join("state")).unwrap(), b"one");
        assert!(!i2.dir.exists());

        // A truncated manifest of the only seal: start from scratch.
        s.seal(&i3, "app").unwrap();
        fs::write(s.manifest_path(3), b"{\"format\":1,").unwrap();
        let i4 = s.prepare(Some("app")).unwrap();
        assert_eq!(i4.restored_from, None);
        assert_eq!(fs::read_dir(&i4.dir).unwrap().count(), 0);
    }

    /// A newer format whose manifest happens to read as this one's is still a newer seal, not
    /// this format's (the manifest is read once; its format decides).
    #[test]
    fn a_newer_manifest_that_reads_as_this_format_is_still_newer() {
        let (_t, s) = store();
        let i1 = sealed_with_state(&s, b"work");
        let mpath = s.manifest_path(i1.seq);
        let mut m: Manifest = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
        assert!(matches!(s.check_sealed(i1.seq), Found::Sealed(ref got) if *got == m));
        m.format = MANIFEST_FORMAT + 1;
        fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(s.check_sealed(i1.seq), Found::Newer(MANIFEST_FORMAT + 1));
    }

    /// A checkpoint sealed by a newer shell-trap (manifest format 2, perhaps not even parsable
    /// as format 1) after a rollback: restoring refuses, naming it and what to do, and leaves
    /// every byte of it; strategy `none` runs fresh beside it and leaves it too; a seal of this
    /// incarnation does not prune it; only the end of the job removes it.
    #[test]
    fn a_checkpoint_of_a_newer_format_is_never_deleted_nor_restored() {
        let (_t, s) = store();
        let i1 = sealed_with_state(&s, b"old work");
        let i2 = next_with_state(&s, b"newer work");
        let newer = serde_json::json!({
            "format": 2, "uuid": U, "incarnation": 2, "strategy": "app",
            "files": {"state": {"size": 10, "xxh3": "0123"}},
        });
        let mpath = s.manifest_path(2);
        fs::write(&mpath, serde_json::to_vec(&newer).unwrap()).unwrap();
        let manifest_before = fs::read(&mpath).unwrap();
        assert_eq!(s.check_sealed(2), Found::Newer(2));

        let e = s.prepare(Some("app")).unwrap_err();
        assert!(matches!(e, StoreError::Newer { format: 2, .. }), "{e}");
        let text = e.to_string();
        for want in [
            &i2.dir.display().to_string(),
            &mpath.display().to_string(),
            "format 2",
            "newer shell-trap",
            "left untouched",
            "remove",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
        assert_eq!(fs::read(i2.dir.join("state")).unwrap(), b"newer work");
        assert_eq!(fs::read(&mpath).unwrap(), manifest_before);
        // The older seal is not touched by a refused restore either.
        assert!(i1.dir.exists());

        // Strategy none: a fresh incarnation beside it; it stays, through a seal too.
        let i3 = s.prepare(None).unwrap();
        assert_eq!((i3.seq, i3.restored_from), (3, None));
        assert_eq!(fs::read(i2.dir.join("state")).unwrap(), b"newer work");
        assert_eq!(fs::read(&mpath).unwrap(), manifest_before);
        s.seal(&i3, "app").unwrap();
        assert_eq!(fs::read(i2.dir.join("state")).unwrap(), b"newer work");
        assert_eq!(fs::read(&mpath).unwrap(), manifest_before);

        // A manifest of format 1 that does not parse is still a torn one (removed as stale).
        fs::write(s.manifest_path(3), b"{\"format\":1,").unwrap();
        assert!(matches!(s.check_sealed(3), Found::Unsealed(_)));

        let dir = s.dir().to_owned();
        s.remove_all();
        assert!(!dir.exists(), "the end of the job removes everything");
    }

    fn ino(p: &Path) -> u64 {
        fs::metadata(p).unwrap().ino()
    }

    /// A crash in the middle of a restore by hard links: the temporary holds links to some of
    /// the sealed files. Nothing of the seal is lost: the next start deletes the temporary (only
    /// names go) and restores the whole seal.
    fn crash_mid_link_restores_the_seal(s: &Store, sealed: &Incarnation, next: u64, big: &[u8]) {
        let tmp = s.dir().join(format!("{}.tmp", inc_name(next)));
        fs::create_dir(&tmp).unwrap();
        fs::hard_link(sealed.dir.join("big"), tmp.join("big")).unwrap();
        let i = s.prepare_with(Some("app"), |_| Some(NONE_FREE)).unwrap();
        assert_eq!((i.seq, i.restored_from), (next + 1, Some(sealed.seq)));
        assert_eq!(fs::read(i.dir.join("big")).unwrap(), big);
        assert_eq!(fs::read(i.dir.join("small")).unwrap(), b"meta");
        assert!(!tmp.exists());
        assert!(matches!(s.check_sealed(sealed.seq), Found::Sealed(_)));
        s.discard(&i);
    }

    const NONE_FREE: FreeSpace = FreeSpace {
        bytes: 0,
        block: 4096,
    };

    /// A checkpoint that does not fit twice in the free space is hard-linked, not copied: it
    /// restores, the sealed checkpoint stays intact while the job replaces its files (a crash
    /// before the next seal falls back to it), and a crash mid-restore loses nothing. A file
    /// rewritten in place is caught by its CRC: never restored wrong.
    #[test]
    fn a_checkpoint_that_does_not_fit_twice_is_linked_and_still_kept_intact() {
        let (_t, s) = store();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let i1 = s.prepare(Some("app")).unwrap();
        write(&i1.dir, "big", &big);
        write(&i1.dir, "small", b"meta");
        s.seal(&i1, "app").unwrap();

        // Enough room: copied, as before.
        let room = FreeSpace {
            bytes: 1 << 30,
            block: 4096,
        };
        let copied = s.prepare_with(Some("app"), |_| Some(room)).unwrap();
        assert_ne!(ino(&copied.dir.join("big")), ino(&i1.dir.join("big")));
        s.discard(&copied);

        // No room: linked, same inode, same bytes.
        let i2 = s.prepare_with(Some("app"), |_| Some(NONE_FREE)).unwrap();
        assert_eq!(i2.restored_from, Some(1));
        assert_eq!(ino(&i2.dir.join("big")), ino(&i1.dir.join("big")));
        assert_eq!(fs::read(i2.dir.join("big")).unwrap(), big);
        // The job replaces its state (new file, rename) and dies before a seal: seal 1 is intact
        // and restored.
        write(&i2.dir, "big.new", b"half of a new state");
        fs::rename(i2.dir.join("big.new"), i2.dir.join("big")).unwrap();
        assert_eq!(fs::read(i1.dir.join("big")).unwrap(), big);
        crash_mid_link_restores_the_seal(&s, &i1, 4, &big);

        // A file rewritten in place changes the seal too: its CRC says so, it is not restored.
        let i6 = s.prepare_with(Some("app"), |_| Some(NONE_FREE)).unwrap();
        fs::write(i6.dir.join("big"), vec![0u8; big.len()]).unwrap();
        let i7 = s.prepare_with(Some("app"), |_| Some(NONE_FREE)).unwrap();
        assert_eq!(i7.restored_from, None, "never restored wrong");
    }

    /// The same on a real file system with little room (a 4 MiB tmpfs; root, else skipped with
    /// a notice unless `QOS_REQUIRE_ROOT`): a 2.5 MiB checkpoint — more than half the free
    /// space — restores, by the free-space estimate and, when the estimate is wrong, after the
    /// copy runs out of space; a crash mid-restore loses nothing.
    #[test]
    fn a_checkpoint_bigger_than_half_the_free_space_restores_on_a_small_tmpfs() {
        let fs_ = match testkit::tmpfs::Tmpfs::mount("4m") {
            Ok(fs_) => fs_,
            Err(why) => {
                assert!(!testkit::root_or_skip(
                    Err(why),
                    "shell-trap checkpoints: a checkpoint bigger than half the free space"
                ));
                return;
            }
        };
        let s = Store::open(&fs_.path().join(U), U).unwrap();
        let big: Vec<u8> = (0..(5u32 << 19)).map(|i| (i % 253) as u8).collect();
        let i1 = s.prepare(Some("app")).unwrap();
        write(&i1.dir, "big", &big);
        write(&i1.dir, "small", b"meta");
        s.seal(&i1, "app").unwrap();
        let free = free_space(s.dir()).unwrap();
        assert!(
            2 * big.len() as u64 > free.bytes,
            "{} bytes free: the checkpoint must be more than half",
            free.bytes
        );

        let i2 = s.prepare(Some("app")).unwrap();
        assert_eq!(i2.restored_from, Some(1));
        assert_eq!(fs::read(i2.dir.join("big")).unwrap(), big);
        s.discard(&i2);

        // The estimate says it fits: the copy runs out of space, and the restore links.
        let lie = FreeSpace {
            bytes: 1 << 30,
            block: 4096,
        };
        let i3 = s.prepare_with(Some("app"), |_| Some(lie)).unwrap();
        assert_eq!(i3.restored_from, Some(1));
        assert_eq!(fs::read(i3.dir.join("big")).unwrap(), big);
        assert_eq!(ino(&i3.dir.join("big")), ino(&i1.dir.join("big")));
        assert!(!s.dir().join(format!("{}.tmp", inc_name(i3.seq))).exists());
        s.discard(&i3);

        crash_mid_link_restores_the_seal(&s, &i1, 4, &big);
        // The restored incarnation checkpoints (a new file) and seals: the next one restores it.
        let i6 = s.prepare(Some("app")).unwrap();
        fs::remove_file(i6.dir.join("big")).unwrap();
        write(&i6.dir, "big", &big[..1000]);
        s.seal(&i6, "app").unwrap();
        let i7 = s.prepare(Some("app")).unwrap();
        assert_eq!(i7.restored_from, Some(i6.seq));
        assert_eq!(fs::read(i7.dir.join("big")).unwrap(), &big[..1000]);
    }

    #[test]
    fn a_forged_or_foreign_manifest_is_refused() {
        let (_t, s) = store();
        let i1 = s.prepare(Some("app")).unwrap();
        let mut m = s.seal(&i1, "app").unwrap();
        m.files.push(FileEntry {
            path: "../../etc/passwd".into(),
            size: 0,
            crc32: 0,
            symlink: None,
        });
        fs::write(s.manifest_path(1), serde_json::to_vec(&m).unwrap()).unwrap();
        assert!(matches!(s.check_sealed(1), Found::Unsealed(w) if w.contains("unsafe")));
        m.files.pop();
        m.uuid = "other".into();
        fs::write(s.manifest_path(1), serde_json::to_vec(&m).unwrap()).unwrap();
        assert!(matches!(s.check_sealed(1), Found::Unsealed(w) if w.contains("another")));
    }

    /// A directory named with the largest incarnation number (hostile or corrupted content of
    /// the job's directory) made the next number overflow: a panic while preparing (exit 125).
    /// It is not one of shell-trap's names: left alone, and counting starts at 1.
    #[test]
    fn an_incarnation_number_out_of_range_is_not_counted_on() {
        let (_t, s) = store();
        let odd = s.dir().join(format!("{INC_PREFIX}{}", u64::MAX));
        fs::create_dir(&odd).unwrap();
        fs::create_dir(s.dir().join(format!("{INC_PREFIX}{MAX_SEQ}"))).unwrap();
        let i = s.prepare(Some("app")).unwrap();
        assert_eq!(i.seq, 1);
        assert!(odd.exists());
        assert_eq!(parse_seq("inc-000999999999"), Some(999_999_999));
    }

    #[test]
    fn without_restore_everything_earlier_goes() {
        let (_t, s) = store();
        let i1 = sealed_with_state(&s, b"x");
        let i2 = s.prepare(None).unwrap();
        assert_eq!((i2.seq, i2.restored_from), (2, None));
        assert!(!i1.dir.exists());
    }

    #[test]
    fn special_files_cannot_be_sealed() {
        let (_t, s) = store();
        let i1 = s.prepare(Some("app")).unwrap();
        nix::unistd::mkfifo(&i1.dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(s.seal(&i1, "app"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn one_owner_at_a_time_and_remove_all() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(U);
        let s = Store::open(&dir, U).unwrap();
        assert!(matches!(Store::open(&dir, U), Err(StoreError::Busy(_))));
        let i = s.prepare(Some("app")).unwrap();
        write(&i.dir, "x", b"1");
        s.remove_all();
        assert!(!dir.exists());
        let again = Store::open(&dir, U).unwrap();
        drop(again);
        Store::open(&dir, U).unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn open_waiting_gets_the_lock_once_released() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(U);
        let first = Store::open(&dir, U).unwrap();
        let d2 = dir.clone();
        let waiter = tokio::spawn(async move {
            Store::open_waiting(&d2, U, Duration::from_secs(5))
                .await
                .map(drop)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(first);
        waiter.await.unwrap().unwrap();
        let _held = Store::open(&dir, U).unwrap();
        let e = Store::open_waiting(&dir, U, Duration::from_millis(200)).await;
        assert!(matches!(e, Err(StoreError::Busy(_))));
    }
}
