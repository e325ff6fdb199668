//! Cheap repeated reads of kernel files: each file is opened once and re-read with `pread` at
//! offset 0, which makes kernfs (cgroupfs) and procfs regenerate its content. One syscall per
//! file per pass instead of five (`open`, `statx`, `read`, `read`, `close`), which is most of
//! the collector's cost with many containers (see the crate README's benchmark).
//!
//! Open descriptors are bounded by an [`FdBudget`]: past it, files are read the ordinary way
//! (open, read, close), so the agent never starves its own sockets of descriptors. A descriptor
//! whose file went away (`ENODEV`/`ESTALE`: the cgroup was removed, possibly re-created under
//! the same path by a container restart) is reopened once by path.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

/// How many descriptors the cached readers may hold, shared by all of them.
#[derive(Debug, Clone)]
pub struct FdBudget(Arc<AtomicIsize>);

impl FdBudget {
    /// A budget of `n` descriptors.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self(Arc::new(AtomicIsize::new(
            isize::try_from(n).unwrap_or(isize::MAX),
        )))
    }

    /// Descriptors the process may open: the soft `RLIMIT_NOFILE` raised to the hard limit
    /// where allowed, minus `reserve` kept for sockets and ordinary reads.
    #[must_use]
    pub fn from_rlimit(reserve: u64) -> Self {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) => {
                let want = hard.min(1 << 20);
                if want > soft && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
                    want
                } else {
                    soft
                }
            }
            Err(_) => 1024,
        };
        Self::new(usize::try_from(soft.saturating_sub(reserve)).unwrap_or(0))
    }

    /// Descriptors still available.
    #[must_use]
    pub fn available(&self) -> isize {
        self.0.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        if self.0.fetch_sub(1, Ordering::AcqRel) > 0 {
            true
        } else {
            self.0.fetch_add(1, Ordering::AcqRel);
            false
        }
    }

    fn give(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// One kernel file, kept open between reads when the budget allows.
#[derive(Debug)]
pub(crate) struct CachedFile {
    path: PathBuf,
    file: Option<File>,
    budget: FdBudget,
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        self.close();
    }
}

fn gone(e: &io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error()
        .is_some_and(|c| c == Errno::ENODEV as i32 || c == Errno::ESTALE as i32)
}

/// Read the whole file at offset 0 into `buf`; returns its length. `buf` is kept at its full,
/// initialised length between reads (so a read does not zero 4 KiB first) and grows by doubling
/// when a file does not fit.
fn pread_all(f: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        let n = f.read_at(&mut buf[len..], len as u64)?;
        len += n;
        // Kernel files answer whole in one read: a short read is the end.
        if n == 0 || len < buf.len() {
            return Ok(len);
        }
    }
}

impl CachedFile {
    /// A reader of `path` (nothing is opened yet).
    #[must_use]
    pub(crate) fn new(path: PathBuf, budget: FdBudget) -> Self {
        Self {
            path,
            file: None,
            budget,
        }
    }

    /// The file's path.
    #[must_use]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Close the descriptor (the next read reopens it).
    pub(crate) fn close(&mut self) {
        if self.file.take().is_some() {
            self.budget.give();
        }
    }

    /// The whole file into `buf`, as text.
    pub(crate) fn read<'b>(&mut self, buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
        let mut retried = false;
        loop {
            if self.file.is_none() {
                if !self.budget.take() {
                    buf.clear();
                    File::open(&self.path)?.read_to_end(buf)?;
                    break;
                }
                match File::open(&self.path) {
                    Ok(f) => self.file = Some(f),
                    Err(e) => {
                        self.budget.give();
                        return Err(e);
                    }
                }
            }
            let Some(f) = &self.file else { continue };
            match pread_all(f, buf) {
                Ok(n) => {
                    return std::str::from_utf8(&buf[..n])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
                }
                Err(e) if gone(&e) && !retried => {
                    retried = true;
                    self.close();
                }
                Err(e) => {
                    self.close();
                    return Err(e);
                }
            }
        }
        std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereads_in_place_and_respects_the_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, "one\n").unwrap();
        let budget = FdBudget::new(1);
        let mut a = CachedFile::new(p.clone(), budget.clone());
        let mut b = CachedFile::new(p.clone(), budget.clone());
        let mut buf = Vec::new();
        assert_eq!(a.read(&mut buf).unwrap(), "one\n");
        assert_eq!(budget.available(), 0);
        // Over budget: still reads, without keeping a descriptor.
        assert_eq!(b.read(&mut buf).unwrap(), "one\n");
        assert_eq!(budget.available(), 0);
        // Regular files rewritten in place are seen through the cached descriptor.
        std::fs::write(&p, "two, longer\n").unwrap();
        assert_eq!(a.read(&mut buf).unwrap(), "two, longer\n");
        let big = "x".repeat(10_000);
        std::fs::write(&p, &big).unwrap();
        assert_eq!(a.read(&mut buf).unwrap(), big);
        drop(a);
        assert_eq!(budget.available(), 1);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(
            b.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn procfs_rereads_fresh_content() {
        let budget = FdBudget::new(4);
        let mut f = CachedFile::new(PathBuf::from("/proc/self/schedstat"), budget);
        let mut buf = Vec::new();
        let Ok(first) = f.read(&mut buf).map(str::to_string) else {
            return;
        };
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let second = f.read(&mut buf).unwrap().to_string();
        assert!(!first.is_empty() && !second.is_empty());
    }
}
