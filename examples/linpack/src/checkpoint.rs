//! Application-assisted checkpoints: the whole state of a run in one self-checking file.
//!
//! # File
//! `<dir>/linpack-n<N>-seed<S>-repeat<K>.ckpt`, written atomically: a temporary file in the same
//! directory is written, `fsync`ed and renamed over the final name, then the directory is
//! `fsync`ed. A reader therefore sees either the previous complete file or the new complete file.
//!
//! # Format (version 1, all integers and floats little-endian)
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `QOSLINPK` |
//! | 8 | 4 | format version, `u32` = 1 |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 8 | payload length `L`, `u64` |
//! | 24 | `L` | payload |
//! | 24+`L` | 4 | CRC-32 (IEEE) of bytes `0 .. 24+L` |
//!
//! Payload: `n`, `seed`, `repeats`, `repeat` (index of the current repeat), `c` (completed runs,
//! = `repeat`) as `u64`; `c` records of (`seconds` f64, `residual` f64, `passed` u8,
//! `solution_crc32` u32); `has_current` u8; when 1: `nb`, `k` as `u64`, `stage` u8 (0 = panel
//! next, 1 = trailing update in progress, 2 = the same with the next panel already factored by the
//! look-ahead), `upto` u64, `elapsed` f64 (seconds spent on this
//! repeat so far), then `ipiv` (`n` × u64), `b` (`n` × f64) and the column-major matrix
//! (`n²` × f64).
//!
//! A file with another magic, another version, a length that does not match, a bad checksum or
//! values that do not fit together is refused with a message saying which.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::lu::{Lu, Stage};
use crate::matrix::Matrix;
use crate::run::{Problem, RunStats};

/// File magic.
pub const MAGIC: &[u8; 8] = b"QOSLINPK";
/// Format version written by this build (the only one it reads).
pub const VERSION: u32 = 1;
const HEADER: usize = 24;
const TRAILER: usize = 4;
const RUN_RECORD: usize = 8 + 8 + 1 + 4;

/// The saved state of a run.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// What is being computed.
    pub problem: Problem,
    /// Index of the repeat in progress (= number of completed repeats).
    pub repeat: usize,
    /// Results of the completed repeats.
    pub completed: Vec<RunStats>,
    /// The factorisation in progress, if the current repeat has started.
    pub current: Option<InProgress>,
}

/// A repeat in progress.
#[derive(Debug, Clone)]
pub struct InProgress {
    /// The partly factored matrix, pivots and position.
    pub lu: Lu,
    /// The right-hand side.
    pub b: Vec<f64>,
    /// Seconds of factorisation spent on this repeat so far.
    pub elapsed: f64,
}

/// Why a checkpoint file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read.
    #[error("cannot read checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file refused.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file does not start with the checkpoint magic.
    #[error("{path} is not a LINPACK checkpoint (bad magic)")]
    NotACheckpoint {
        /// The checkpoint file refused.
        path: PathBuf,
    },
    /// The file was written by an incompatible version.
    #[error("{path} has checkpoint format version {found}; this build reads version {VERSION}")]
    Version {
        /// The checkpoint file refused.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The file is shorter or longer than its header says (a torn or truncated write).
    #[error("{path} is {actual} bytes but its header says {expected}: torn or truncated file")]
    Length {
        /// The checkpoint file refused.
        path: PathBuf,
        /// Size from the header.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The checksum does not match (a torn write or a modified file).
    #[error("{path} fails its checksum (stored {stored:08x}, computed {computed:08x}): corrupt")]
    Checksum {
        /// The checkpoint file refused.
        path: PathBuf,
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the contents.
        computed: u32,
    },
    /// The checkpoint is for another problem.
    #[error("{path} is for {found}, not for {expected}")]
    OtherProblem {
        /// The checkpoint file refused.
        path: PathBuf,
        /// The problem in the file.
        found: Problem,
        /// The problem of this run.
        expected: Problem,
    },
    /// The contents are well-formed but inconsistent.
    #[error("{path} has an inconsistent state: {reason}")]
    Inconsistent {
        /// The checkpoint file refused.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
}

/// The checkpoint file name of a problem.
#[must_use]
pub fn file_name(problem: &Problem) -> String {
    format!(
        "linpack-n{}-seed{}-repeat{}.ckpt",
        problem.n, problem.seed, problem.repeats
    )
}

fn payload_len(n: usize, completed: usize, current: bool) -> u64 {
    let fixed = 5 * 8 + completed * RUN_RECORD + 1;
    let cur = if current {
        8 + 8 + 1 + 8 + 8 + 16 * n + 8 * n * n
    } else {
        0
    };
    (fixed + cur) as u64
}

/// Writes `ckpt` atomically into `dir` (created if missing) and returns the file's path.
///
/// # Errors
/// Any I/O error; the temporary file is removed and a previous checkpoint is left intact.
pub fn save(dir: &Path, ckpt: &Checkpoint) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let name = file_name(&ckpt.problem);
    let path = dir.join(&name);
    remove_stale_temporaries(dir, &name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = write_file(&tmp, ckpt).and_then(|()| {
        fs::rename(&tmp, &path)?;
        sync_dir(dir)
    });
    match written {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Removes temporary files of `name` left by a process killed while saving.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn write_file(tmp: &Path, ckpt: &Checkpoint) -> io::Result<()> {
    let n = ckpt.problem.n;
    let mut w = Writer {
        out: BufWriter::with_capacity(1 << 20, File::create(tmp)?),
        crc: crc32fast::Hasher::new(),
        written: 0,
    };
    let len = payload_len(n, ckpt.completed.len(), ckpt.current.is_some());
    w.bytes(MAGIC)?;
    w.bytes(&VERSION.to_le_bytes())?;
    w.bytes(&0u32.to_le_bytes())?;
    w.u64(len)?;
    w.u64(n as u64)?;
    w.u64(ckpt.problem.seed)?;
    w.u64(ckpt.problem.repeats as u64)?;
    w.u64(ckpt.repeat as u64)?;
    w.u64(ckpt.completed.len() as u64)?;
    for r in &ckpt.completed {
        w.f64s(&[r.seconds, r.residual])?;
        w.bytes(&[u8::from(r.passed)])?;
        w.bytes(&r.solution_crc32.to_le_bytes())?;
    }
    match &ckpt.current {
        None => w.bytes(&[0])?,
        Some(cur) => {
            let lu = &cur.lu;
            w.bytes(&[1])?;
            w.u64(lu.block() as u64)?;
            w.u64(lu.column() as u64)?;
            let (tag, upto) = match lu.stage() {
                Stage::Panel => (0, 0),
                Stage::Update {
                    upto,
                    next_factored,
                } => (if next_factored { 2 } else { 1 }, upto),
            };
            w.bytes(&[tag])?;
            w.u64(upto as u64)?;
            w.f64s(&[cur.elapsed])?;
            let mut buf = Vec::with_capacity(8 * n);
            for &p in lu.pivots() {
                buf.extend_from_slice(&(p as u64).to_le_bytes());
            }
            w.bytes(&buf)?;
            w.f64s(&cur.b)?;
            w.f64s(lu.matrix())?;
        }
    }
    if w.written != HEADER as u64 + len {
        return Err(io::Error::other(
            "checkpoint writer: payload length mismatch",
        ));
    }
    let crc = w.crc.clone().finalize();
    w.out.write_all(&crc.to_le_bytes())?;
    let file = w.out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()
}

struct Writer {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    written: u64,
}

impl Writer {
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc.update(b);
        self.written += b.len() as u64;
        self.out.write_all(b)
    }

    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    fn f64s(&mut self, v: &[f64]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(8 * 8192);
        for block in v.chunks(8192) {
            buf.clear();
            for x in block {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            self.bytes(&buf)?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Deletes the checkpoint of `problem` in `dir`, if any.
///
/// # Errors
/// I/O errors other than the file not existing.
pub fn remove(dir: &Path, problem: &Problem) -> io::Result<()> {
    match fs::remove_file(dir.join(file_name(problem))) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads and verifies the checkpoint at `path`, which must be for `expected`.
///
/// # Errors
/// A [`CheckpointError`] saying why the file is refused.
pub fn load(path: &Path, expected: &Problem) -> Result<Checkpoint, CheckpointError> {
    let p = || path.to_path_buf();
    let data = fs::read(path).map_err(|source| CheckpointError::Io { path: p(), source })?;
    if data.len() < 8 || &data[..8] != MAGIC {
        return Err(CheckpointError::NotACheckpoint { path: p() });
    }
    if data.len() < HEADER {
        return Err(CheckpointError::Length {
            path: p(),
            expected: HEADER as u64,
            actual: data.len() as u64,
        });
    }
    let version = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(CheckpointError::Version {
            path: p(),
            found: version,
        });
    }
    let len = u64::from_le_bytes(data[16..24].try_into().expect("8 bytes"));
    let total = len.saturating_add((HEADER + TRAILER) as u64);
    if total != data.len() as u64 {
        return Err(CheckpointError::Length {
            path: p(),
            expected: total,
            actual: data.len() as u64,
        });
    }
    let body_end = data.len() - TRAILER;
    let stored = u32::from_le_bytes(data[body_end..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&data[..body_end]);
    if stored != computed {
        return Err(CheckpointError::Checksum {
            path: p(),
            stored,
            computed,
        });
    }
    parse(&data[HEADER..body_end], len, expected).map_err(|refusal| match refusal {
        Refusal::OtherProblem(found) => CheckpointError::OtherProblem {
            path: p(),
            found,
            expected: *expected,
        },
        Refusal::Inconsistent(reason) => CheckpointError::Inconsistent { path: p(), reason },
    })
}

/// Why a verified payload is refused (the caller adds the path).
enum Refusal {
    OtherProblem(Problem),
    Inconsistent(String),
}

fn parse(payload: &[u8], len: u64, expected: &Problem) -> Result<Checkpoint, Refusal> {
    let mut r = Reader { data: payload };
    let found = Problem {
        n: r.usize()?,
        seed: r.u64()?,
        repeats: r.usize()?,
    };
    if found != *expected {
        return Err(Refusal::OtherProblem(found));
    }
    let n = found.n;
    let repeat = r.usize()?;
    let count = r.usize()?;
    if repeat > found.repeats || count != repeat {
        return Err(Refusal::Inconsistent(format!(
            "repeat {repeat} with {count} completed runs of {}",
            found.repeats
        )));
    }
    let mut completed = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        completed.push(RunStats {
            seconds: r.f64()?,
            residual: r.f64()?,
            passed: r.u8()? != 0,
            solution_crc32: u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes")),
        });
    }
    let has_current = r.u8()?;
    if has_current > 1 || len != payload_len(n, count, has_current == 1) {
        return Err(Refusal::Inconsistent(format!(
            "payload of {len} bytes does not fit n={n}"
        )));
    }
    let current = if has_current == 1 {
        let nb = r.usize()?;
        let k = r.usize()?;
        let stage = match (r.u8()?, r.usize()?) {
            (0, _) => Stage::Panel,
            (tag @ (1 | 2), upto) => Stage::Update {
                upto,
                next_factored: tag == 2,
            },
            (s, _) => return Err(Refusal::Inconsistent(format!("unknown stage {s}"))),
        };
        let elapsed = r.f64()?;
        let mut ipiv = Vec::with_capacity(n);
        for _ in 0..n {
            ipiv.push(r.usize()?);
        }
        let b = r.f64s(n)?;
        let a = Matrix::from_column_major(n, r.f64s(n * n)?);
        let lu = Lu::from_parts(a, nb, ipiv, k, stage)
            .map_err(|e| Refusal::Inconsistent(e.to_string()))?;
        if !(elapsed.is_finite() && elapsed >= 0.0) {
            return Err(Refusal::Inconsistent(format!("elapsed time {elapsed}")));
        }
        if repeat >= found.repeats {
            return Err(Refusal::Inconsistent(
                "a repeat in progress after the last one".into(),
            ));
        }
        Some(InProgress { lu, b, elapsed })
    } else {
        None
    };
    Ok(Checkpoint {
        problem: found,
        repeat,
        completed,
        current,
    })
}

/// Cursor over the verified payload; running out of bytes means an inconsistent header.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Refusal> {
        if self.data.len() < len {
            return Err(Refusal::Inconsistent("payload ends early".into()));
        }
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, Refusal> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn usize(&mut self) -> Result<usize, Refusal> {
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| Refusal::Inconsistent(format!("value {v} out of range")))
    }

    fn f64(&mut self) -> Result<f64, Refusal> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn f64s(&mut self, count: usize) -> Result<Vec<f64>, Refusal> {
        let bytes = self.take(count.saturating_mul(8))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn problem() -> Problem {
        Problem {
            n: 40,
            seed: 9,
            repeats: 3,
        }
    }

    fn sample() -> Checkpoint {
        let pb = problem();
        let mut lu = Lu::new(Matrix::random(pb.n, pb.seed), 8);
        let stop = AtomicBool::new(false);
        let calls = AtomicUsize::new(0);
        let stop_after_two = |_: f64| {
            if calls.fetch_add(1, Ordering::Relaxed) == 2 {
                stop.store(true, Ordering::Relaxed);
            }
        };
        lu.factor(2, &stop, &stop_after_two).unwrap();
        assert!(!lu.is_finished());
        Checkpoint {
            problem: pb,
            repeat: 1,
            completed: vec![RunStats {
                seconds: 0.25,
                residual: 0.0123,
                passed: true,
                solution_crc32: 0xDEAD_BEEF,
            }],
            current: Some(InProgress {
                lu,
                b: matrix::rhs(pb.n, pb.seed),
                elapsed: 0.125,
            }),
        }
    }

    #[test]
    fn round_trip_is_exact_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let ck = sample();
        let stale = dir.path().join(".linpack-n40-seed9-repeat3.ckpt.tmp-99999");
        fs::write(&stale, "left by a killed save").unwrap();
        let path = save(dir.path(), &ck).unwrap();
        assert_eq!(path.file_name().unwrap(), "linpack-n40-seed9-repeat3.ckpt");
        assert!(!stale.exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let back = load(&path, &problem()).unwrap();
        assert_eq!(back.repeat, 1);
        assert_eq!(back.completed, ck.completed);
        let (a, b) = (back.current.unwrap(), ck.current.unwrap());
        assert_eq!(a.b, b.b);
        assert_eq!(a.elapsed, b.elapsed);
        assert_eq!(a.lu.matrix(), b.lu.matrix());
        assert_eq!(a.lu.pivots(), b.lu.pivots());
        assert_eq!((a.lu.column(), a.lu.stage()), (b.lu.column(), b.lu.stage()));
        remove(dir.path(), &problem()).unwrap();
        assert!(!path.exists());
        remove(dir.path(), &problem()).unwrap();
    }

    #[test]
    fn between_repeats_has_no_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint {
            problem: problem(),
            repeat: 0,
            completed: vec![],
            current: None,
        };
        let path = save(dir.path(), &ck).unwrap();
        assert!(fs::metadata(&path).unwrap().len() < 100);
        let back = load(&path, &problem()).unwrap();
        assert!(back.current.is_none());
    }

    #[test]
    fn torn_foreign_and_mismatched_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), &sample()).unwrap();
        let good = fs::read(&path).unwrap();
        let msg = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            load(&path, &problem()).unwrap_err().to_string()
        };
        assert!(msg(&good[..good.len() / 2]).contains("torn or truncated"));
        let mut flipped = good.clone();
        flipped[HEADER + 200] ^= 1;
        assert!(msg(&flipped).contains("checksum"));
        assert!(msg(b"#!/bin/sh\necho hello\n").contains("not a LINPACK checkpoint"));
        let mut v2 = good.clone();
        v2[8] = 2;
        assert!(msg(&v2).contains("version 2"));
        fs::write(&path, &good).unwrap();
        let other = Problem { n: 41, ..problem() };
        let err = load(&path, &other).unwrap_err().to_string();
        assert!(err.contains("not for"), "{err}");
        let missing = load(&dir.path().join("none.ckpt"), &problem()).unwrap_err();
        assert!(matches!(missing, CheckpointError::Io { .. }));
    }
}
