//! One invocation: `repeats` times generate → factor → solve → check, stoppable and resumable
//! through [`crate::checkpoint`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::check::{self, Residual};
use crate::checkpoint::{self, Checkpoint, CheckpointError, InProgress};
use crate::lu::{Lu, LuError, Outcome};
use crate::matrix::{self, Matrix};

/// What is computed: the checkpoint key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Order of the matrix.
    pub n: usize,
    /// Generator seed (the same matrix and right-hand side for every repeat).
    pub seed: u64,
    /// Number of solves.
    pub repeats: usize,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} seed={} repeats={}",
            self.n, self.seed, self.repeats
        )
    }
}

/// The result of one solve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunStats {
    /// Seconds spent factoring and solving (accumulated across restarts).
    pub seconds: f64,
    /// HPL scaled residual.
    pub residual: f64,
    /// Whether the residual check passed.
    pub passed: bool,
    /// CRC-32 of the solution's bytes (little-endian `f64`s): equal bits, equal CRC.
    pub solution_crc32: u32,
}

impl RunStats {
    /// GFLOP/s of this solve for order `n`, by the LINPACK operation count.
    #[must_use]
    pub fn gflops(&self, n: usize) -> f64 {
        flops(n) / self.seconds / 1e9
    }
}

/// The LINPACK operation count of one solve: `2/3 n³ + 2 n²`.
#[must_use]
pub fn flops(n: usize) -> f64 {
    // `n` is far below 2^53.
    let n = n as f64;
    2.0 / 3.0 * n * n * n + 2.0 * n * n
}

/// CRC-32 of a vector's little-endian bytes.
#[must_use]
pub fn solution_crc32(x: &[f64]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for v in x {
        h.update(&v.to_le_bytes());
    }
    h.finalize()
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What to compute.
    pub problem: Problem,
    /// Panel width for a fresh factorisation (a resumed one keeps its own).
    pub block: usize,
    /// Worker threads.
    pub threads: usize,
    /// Where checkpoints live; `None` disables saving and resuming.
    pub checkpoint_dir: Option<PathBuf>,
}

/// Things worth telling the user while running.
#[derive(Debug)]
pub enum Event<'a> {
    /// Resuming from a checkpoint.
    Resumed {
        /// The checkpoint file.
        path: &'a Path,
        /// Repeat index (zero-based) resumed.
        repeat: usize,
        /// Columns already eliminated in that repeat.
        column: usize,
    },
    /// A checkpoint file was present but refused; the run starts from scratch.
    CheckpointRefused(&'a CheckpointError),
    /// A solve finished.
    RunFinished {
        /// Repeat index (zero-based).
        index: usize,
        /// Its result.
        stats: &'a RunStats,
        /// The residual details.
        residual: &'a Residual,
    },
    /// A non-fatal problem.
    Warning(String),
}

/// How a run ended.
#[derive(Debug)]
pub enum Finish {
    /// All repeats done.
    Completed(Summary),
    /// Stopped on request; the state was saved.
    Checkpointed {
        /// The checkpoint file.
        path: PathBuf,
        /// Repeat index (zero-based) in progress.
        repeat: usize,
        /// Columns eliminated in that repeat.
        column: usize,
        /// Seconds spent writing the checkpoint.
        save_seconds: f64,
    },
    /// Stopped on request with no checkpoint directory: nothing saved.
    Interrupted {
        /// Repeat index (zero-based) in progress.
        repeat: usize,
        /// Columns eliminated in that repeat.
        column: usize,
    },
}

/// The results of a completed run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// What was computed.
    pub problem: Problem,
    /// Threads used by this process (earlier, checkpointed parts may have used others).
    pub threads: usize,
    /// Every solve's result.
    pub runs: Vec<RunStats>,
    /// Whether this process resumed from a checkpoint.
    pub resumed: bool,
    /// The solution of the last solve.
    pub solution: Vec<f64>,
}

impl Summary {
    /// Total seconds of all solves.
    #[must_use]
    pub fn seconds(&self) -> f64 {
        self.runs.iter().map(|r| r.seconds).sum()
    }

    /// Overall GFLOP/s: all solves' operations over their total time.
    #[must_use]
    pub fn gflops(&self) -> f64 {
        // Repeat counts are small.
        let ops = flops(self.problem.n) * self.runs.len() as f64;
        ops / self.seconds() / 1e9
    }

    /// The largest scaled residual (NaN if any is NaN).
    #[must_use]
    pub fn residual(&self) -> f64 {
        self.runs.iter().map(|r| r.residual).fold(0.0, |m, r| {
            if r.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(r)
            }
        })
    }

    /// Whether every solve passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|r| r.passed)
    }
}

/// Fatal run errors.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The factorisation failed.
    #[error(transparent)]
    Lu(#[from] LuError),
    /// The problem is not runnable.
    #[error("{0}")]
    Invalid(String),
    /// The checkpoint could not be written.
    #[error("cannot write a checkpoint into {dir}: {source}")]
    Save {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs (or resumes) `settings.problem`.
///
/// `stop` requests a stop at the next column boundary; with a checkpoint directory the state is
/// then saved there. `progress` receives the fraction done of the whole invocation (all repeats,
/// weighted by work), from any thread. `events` receives messages for the user.
///
/// # Errors
/// A singular matrix, an invalid problem, or a checkpoint that cannot be written.
pub fn run(
    settings: &Settings,
    stop: &AtomicBool,
    progress: &(dyn Fn(f64) + Sync),
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Finish, RunError> {
    let pb = settings.problem;
    if pb.n == 0 || pb.repeats == 0 {
        return Err(RunError::Invalid("n and repeats must be at least 1".into()));
    }
    if pb.n > u32::MAX as usize - 1 {
        return Err(RunError::Invalid(format!("n={} is too large", pb.n)));
    }
    let mut repeat = 0;
    let mut completed = Vec::new();
    let mut current = None;
    let mut resumed = false;
    if let Some(dir) = &settings.checkpoint_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            events(Event::Warning(format!(
                "checkpoint directory {} is not usable ({e}): a stop request will fail to save",
                dir.display()
            )));
        }
        let path = dir.join(checkpoint::file_name(&pb));
        if path.exists() {
            match checkpoint::load(&path, &pb) {
                Ok(ck) => {
                    events(Event::Resumed {
                        path: &path,
                        repeat: ck.repeat,
                        column: ck.current.as_ref().map_or(0, |c| c.lu.columns_done()),
                    });
                    repeat = ck.repeat;
                    completed = ck.completed;
                    current = ck.current;
                    resumed = true;
                }
                Err(e) => events(Event::CheckpointRefused(&e)),
            }
        }
    }
    // Repeat counts are small.
    let fraction = |r: usize, part: f64| (r as f64 + part) / pb.repeats as f64;
    let mut solution = Vec::new();
    while repeat < pb.repeats {
        let mut cur = current.take().unwrap_or_else(|| InProgress {
            lu: Lu::new(Matrix::random(pb.n, pb.seed), settings.block),
            b: matrix::rhs(pb.n, pb.seed),
            elapsed: 0.0,
        });
        let total = cur.lu.work_total();
        let report = |w: f64| progress(fraction(repeat, if total > 0.0 { w / total } else { 1.0 }));
        report(cur.lu.work_done());
        let started = Instant::now();
        let outcome = cur.lu.factor(settings.threads, stop, &report)?;
        if outcome == Outcome::Stopped {
            cur.elapsed += started.elapsed().as_secs_f64();
            let column = cur.lu.columns_done();
            let ck = Checkpoint {
                problem: pb,
                repeat,
                completed,
                current: Some(cur),
            };
            return stop_here(settings, &ck, column);
        }
        let x = cur.lu.solve(&cur.b);
        cur.elapsed += started.elapsed().as_secs_f64();
        let residual = check::scaled_residual(
            |i, j| matrix::entry(pb.seed, i, j),
            &x,
            &cur.b,
            settings.threads,
        );
        let stats = RunStats {
            seconds: cur.elapsed,
            residual: residual.scaled,
            passed: residual.passed(),
            solution_crc32: solution_crc32(&x),
        };
        events(Event::RunFinished {
            index: repeat,
            stats: &stats,
            residual: &residual,
        });
        completed.push(stats);
        repeat += 1;
        solution = x;
        progress(fraction(repeat, 0.0));
        if repeat < pb.repeats && stop.load(Ordering::Relaxed) {
            let ck = Checkpoint {
                problem: pb,
                repeat,
                completed,
                current: None,
            };
            return stop_here(settings, &ck, 0);
        }
    }
    if let Some(dir) = &settings.checkpoint_dir
        && let Err(e) = checkpoint::remove(dir, &pb)
    {
        events(Event::Warning(format!(
            "finished, but cannot delete the checkpoint in {}: {e}",
            dir.display()
        )));
    }
    Ok(Finish::Completed(Summary {
        problem: pb,
        threads: settings.threads,
        runs: completed,
        resumed,
        solution,
    }))
}

fn stop_here(settings: &Settings, ck: &Checkpoint, column: usize) -> Result<Finish, RunError> {
    let Some(dir) = &settings.checkpoint_dir else {
        return Ok(Finish::Interrupted {
            repeat: ck.repeat,
            column,
        });
    };
    let started = Instant::now();
    let path = checkpoint::save(dir, ck).map_err(|source| RunError::Save {
        dir: dir.clone(),
        source,
    })?;
    Ok(Finish::Checkpointed {
        path,
        repeat: ck.repeat,
        column,
        save_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    fn settings(n: usize, repeats: usize, threads: usize, dir: Option<&Path>) -> Settings {
        Settings {
            problem: Problem {
                n,
                seed: 42,
                repeats,
            },
            block: 16,
            threads,
            checkpoint_dir: dir.map(Path::to_path_buf),
        }
    }

    fn quiet(_: Event<'_>) {}

    fn completed(f: Finish) -> Summary {
        match f {
            Finish::Completed(s) => s,
            other => panic!("expected completion, got {other:?}"),
        }
    }

    #[test]
    fn small_random_systems_pass_the_residual_check() {
        for n in [1, 2, 10, 100, 257] {
            let s = settings(n, 2, 2, None);
            let sum = completed(run(&s, &AtomicBool::new(false), &|_| {}, &mut quiet).unwrap());
            assert_eq!(sum.runs.len(), 2);
            assert!(sum.passed(), "n={n}: {:?}", sum.runs);
            assert!(sum.residual() < 1.0, "n={n}: {}", sum.residual());
            assert_eq!(sum.runs[0].solution_crc32, sum.runs[1].solution_crc32);
            assert_eq!(sum.solution.len(), n);
        }
    }

    #[test]
    fn progress_is_monotone_and_ends_at_one() {
        let seen = Mutex::new(Vec::new());
        let s = settings(90, 3, 2, None);
        let record = |f: f64| seen.lock().unwrap().push(f);
        completed(run(&s, &AtomicBool::new(false), &record, &mut quiet).unwrap());
        let seen = seen.into_inner().unwrap();
        assert!(seen.len() > 10);
        // Reports from different threads may arrive slightly out of order; the reporter keeps
        // the maximum. The values themselves cover [0, 1].
        let max = seen.iter().copied().fold(0.0, f64::max);
        assert_eq!(max, 1.0);
        assert!(seen.iter().all(|f| (0.0..=1.0).contains(f)));
        assert!(seen.iter().any(|f| (0.3..0.4).contains(f)), "{seen:?}");
    }

    #[test]
    fn stopped_and_resumed_run_is_bit_identical_with_other_thread_counts() {
        let n = 200;
        let want = completed(
            run(
                &settings(n, 2, 1, None),
                &AtomicBool::new(false),
                &|_| {},
                &mut quiet,
            )
            .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let mut stops = 0;
        let mut resumes = 0;
        let got = loop {
            let threads = 1 + stops % 3;
            let stop = AtomicBool::new(false);
            let calls = AtomicUsize::new(0);
            let stop_soon = |_: f64| {
                if calls.fetch_add(1, Ordering::Relaxed) == 7 {
                    stop.store(true, Ordering::Relaxed);
                }
            };
            let s = settings(n, 2, threads, Some(dir.path()));
            let mut events = |e: Event<'_>| match e {
                Event::Resumed { .. } => resumes += 1,
                Event::CheckpointRefused(e) => panic!("{e}"),
                _ => {}
            };
            match run(&s, &stop, &stop_soon, &mut events).unwrap() {
                Finish::Completed(sum) => break sum,
                Finish::Checkpointed { path, .. } => {
                    assert!(path.exists());
                    stops += 1;
                }
                Finish::Interrupted { .. } => unreachable!(),
            }
        };
        assert!(stops >= 3, "{stops}");
        assert_eq!(resumes, stops);
        assert!(got.resumed);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got.solution), bits(&want.solution));
        for (a, b) in got.runs.iter().zip(&want.runs) {
            assert_eq!(a.residual.to_bits(), b.residual.to_bits());
            assert_eq!(a.solution_crc32, b.solution_crc32);
        }
        // Completion deletes the checkpoint.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn stop_without_checkpoint_dir_saves_nothing() {
        let stop = AtomicBool::new(true);
        let f = run(&settings(50, 1, 1, None), &stop, &|_| {}, &mut quiet).unwrap();
        assert!(
            matches!(
                f,
                Finish::Interrupted {
                    repeat: 0,
                    column: 0
                }
            ),
            "{f:?}"
        );
    }

    #[test]
    fn refused_checkpoint_is_reported_and_the_run_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(30, 1, 1, Some(dir.path()));
        let path = dir.path().join(checkpoint::file_name(&s.problem));
        std::fs::write(&path, b"QOSLINPK garbage").unwrap();
        let mut refused = Vec::new();
        let mut events = |e: Event<'_>| {
            if let Event::CheckpointRefused(e) = e {
                refused.push(e.to_string());
            }
        };
        let sum = completed(run(&s, &AtomicBool::new(false), &|_| {}, &mut events).unwrap());
        assert!(sum.passed() && !sum.resumed);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(!path.exists());
    }

    #[test]
    fn invalid_problem_is_an_error() {
        let s = settings(0, 1, 1, None);
        assert!(run(&s, &AtomicBool::new(false), &|_| {}, &mut quiet).is_err());
    }
}
