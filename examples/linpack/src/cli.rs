//! The `linpack` command line: argument parsing, environment, signals and output.

use std::ffi::OsString;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::cgroup::{self, ThreadSource};
use crate::lu::{DEFAULT_BLOCK, MAX_BLOCK};
use crate::progress::{ProgressConfig, Reporter};
use crate::run::{self, Event, Finish, Problem, Settings, Summary};

/// Seed used when `--seed` is not given.
pub const DEFAULT_SEED: u64 = 1;

/// Exit statuses.
pub mod exit {
    /// All solves passed, or the run was checkpointed on request.
    pub const OK: u8 = 0;
    /// A residual check failed.
    pub const FAILED: u8 = 1;
    /// Bad command line or environment.
    pub const USAGE: u8 = 2;
    /// Runtime error: singular matrix, checkpoint I/O.
    pub const ERROR: u8 = 3;
    /// Stopped by SIGINT without a checkpoint directory.
    pub const SIGINT: u8 = 130;
    /// Stopped by SIGTERM without a checkpoint directory.
    pub const SIGTERM: u8 = 143;
}

const AFTER_HELP: &str = "\
Examples:
  linpack 2000                          one solve of a random 2000x2000 system
  linpack 1000 --repeat 10 --threads 2  ten solves on two threads
  linpack 3000 --output json            one JSON line: n, threads, seconds, gflops, residual, passed
  LINPACK_THREADS=4 linpack 4000        thread count from the environment
  QOS_CHECKPOINT_DIR=/ckpt linpack 5000 --repeat 3
                                        SIGTERM saves the state into /ckpt and exits 0;
                                        the same command run again resumes from it

Environment:
  LINPACK_THREADS        threads when --threads is not given (default: the CPU quota of this
                         process's cgroup rounded up, else the number of CPUs)
  QOS_CHECKPOINT_DIR     enables application-assisted checkpoints: on SIGTERM or SIGINT the run
                         stops at the next column boundary, saves its state there and exits 0; a
                         run of the same N, --seed and --repeat resumes from it (bit-identical
                         result, any thread count) and deletes it when done. A second SIGINT
                         exits at once
  QOS_SUPERVISOR_URL     supervisor base URL (http://host:port); with QOS_UUID, the fraction done
  QOS_UUID               is POSTed to <url>/api/v1/jobs/<uuid>/progress
  QOS_REPORT_TOKEN       sent as 'Authorization: Bearer <token>' with progress reports
  QOS_PROGRESS_INTERVAL  seconds between progress reports (default 2)

Exit status: 0 passed (or checkpointed on request), 1 residual check FAILED, 2 usage error,
3 runtime error (singular matrix, checkpoint I/O), 143/130 stopped by SIGTERM/SIGINT without
QOS_CHECKPOINT_DIR.";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table for people.
    Human,
    /// One JSON line on stdout at the end.
    Json,
}

/// A real LINPACK: solves a random dense N×N system by LU factorisation with partial pivoting
/// (blocked, multithreaded), reports GFLOP/s and checks the HPL scaled residual.
#[derive(Debug, Parser)]
#[command(name = "linpack", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Order of the matrix (as in the thesis' `linpack_openmp N`).
    #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub n: u32,
    /// Number of solves of the same system.
    #[arg(long, short = 'r', value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Seed of the random matrix and right-hand side.
    #[arg(long, short = 's', value_name = "S", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Worker threads [default: $LINPACK_THREADS, else the cgroup CPU quota rounded up, else
    /// the number of CPUs].
    #[arg(long, short = 't', value_name = "T")]
    pub threads: Option<NonZeroUsize>,
    /// Panel width of the blocked factorisation.
    #[arg(long, value_name = "NB", default_value_t = DEFAULT_BLOCK as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_BLOCK as u64))]
    pub block: u64,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// The stop flags set by signal handlers.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Set by SIGTERM and SIGINT: stop at the next column boundary.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGINT (to choose the exit status when nothing is saved).
    pub interrupt: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers: SIGTERM and SIGINT set `stop` (SIGINT also `interrupt`). A second
    /// SIGINT (an impatient Ctrl-C) terminates at once; repeated SIGTERMs (an orchestrator and a
    /// wrapper may both send one) are absorbed so that they cannot cut a checkpoint short.
    ///
    /// # Errors
    /// If a handler cannot be registered.
    pub fn install() -> io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let s = Self::default();
        // Registered before the flag, so that it only sees the flag set by an earlier signal.
        flag::register_conditional_shutdown(SIGINT, i32::from(exit::SIGINT), Arc::clone(&s.stop))?;
        flag::register(SIGINT, Arc::clone(&s.stop))?;
        flag::register(SIGINT, Arc::clone(&s.interrupt))?;
        flag::register(SIGTERM, Arc::clone(&s.stop))?;
        Ok(s)
    }
}

/// The process entry point used by `src/main.rs`.
#[must_use]
pub fn main() -> ExitCode {
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("linpack: cannot install signal handlers: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let code = run_cli(
        std::env::args_os(),
        &env,
        Path::new("/"),
        &signals,
        &mut io::stdout().lock(),
        &mut io::stderr(),
    );
    ExitCode::from(code)
}

/// Runs the command with explicit arguments, environment lookup, filesystem root (for the
/// cgroup files), signal flags and output streams; returns the exit status.
pub fn run_cli<I, T>(
    args: I,
    env: &dyn Fn(&str) -> Option<String>,
    root: &Path,
    signals: &Signals,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // `--help` and `--version` end with 0, a usage error with 2 (`exit::USAGE`).
    binkit::cli::run(args, out, err, |cli: Cli, out, err| {
        let (threads, source) = match resolve_threads(cli.threads, env, root) {
            Ok(t) => t,
            Err(msg) => {
                let _ = writeln!(err, "linpack: {msg}");
                return exit::USAGE;
            }
        };
        let checkpoint_dir = env("QOS_CHECKPOINT_DIR")
            .filter(|d| !d.trim().is_empty())
            .map(PathBuf::from);
        let (progress, warnings) = ProgressConfig::from_lookup(env);
        for w in warnings {
            let _ = writeln!(err, "linpack: {w}");
        }
        let settings = Settings {
            problem: Problem {
                n: cli.n as usize,
                seed: cli.seed,
                repeats: cli.repeat as usize,
            },
            block: usize::try_from(cli.block).unwrap_or(DEFAULT_BLOCK),
            threads,
            checkpoint_dir,
        };
        let human = cli.output == Output::Human;
        if human {
            let _ = writeln!(
                out,
                "LINPACK  n={}  seed={}  repeats={}  block={}  threads={} ({source})",
                cli.n, cli.seed, cli.repeat, cli.block, threads
            );
            let _ = writeln!(
                out,
                "{:>5} {:>12} {:>12} {:>12}  check",
                "run", "seconds", "GFLOP/s", "residual"
            );
        }
        let reporter = progress.map(Reporter::start);
        let sink = |f: f64| {
            if let Some(r) = &reporter {
                r.set(f);
            }
        };
        let n = settings.problem.n;
        let repeats = settings.problem.repeats;
        let mut on_event = |e: Event<'_>| match e {
            Event::Resumed {
                path,
                repeat,
                column,
            } => {
                let _ = writeln!(
                    err,
                    "linpack: resuming from {}: repeat {}/{repeats}, column {column}/{n}",
                    path.display(),
                    repeat + 1
                );
            }
            Event::CheckpointRefused(e) => {
                let _ = writeln!(
                    err,
                    "linpack: ignoring checkpoint: {e}; starting from scratch"
                );
            }
            Event::RunFinished { index, stats, .. } => {
                if human {
                    let _ = writeln!(
                        out,
                        "{:>5} {:>12.4} {:>12.3} {:>12.4e}  {}",
                        index + 1,
                        stats.seconds,
                        stats.gflops(n),
                        stats.residual,
                        verdict(stats.passed)
                    );
                }
            }
            Event::Warning(w) => {
                let _ = writeln!(err, "linpack: warning: {w}");
            }
        };
        let result = run::run(&settings, &signals.stop, &sink, &mut on_event);
        let (code, wait) = finish(result, &settings, human, signals, &sink, out, err);
        let _ = out.flush();
        if let Some(r) = reporter {
            r.finish(wait);
        }
        code
    })
}

/// How the run ended, told on stderr (and stdout for the JSON output); the exit status and how
/// long the progress reporter may take to send its last figure.
fn finish(
    result: Result<Finish, run::RunError>,
    settings: &Settings,
    human: bool,
    signals: &Signals,
    sink: &dyn Fn(f64),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> (u8, Duration) {
    let n = settings.problem.n;
    let repeats = settings.problem.repeats;
    match result {
        Ok(Finish::Completed(summary)) => {
            sink(1.0);
            print_summary(&summary, settings, human, out);
            let code = if summary.passed() {
                exit::OK
            } else {
                exit::FAILED
            };
            (code, Duration::from_secs(3))
        }
        Ok(Finish::Checkpointed {
            path,
            repeat,
            column,
            save_seconds,
        }) => {
            let _ = writeln!(
                err,
                "linpack: stopped at repeat {}/{repeats}, column {column}/{n}; state saved to {} \
                 in {save_seconds:.3} s",
                repeat + 1,
                path.display()
            );
            if !human {
                let line = serde_json::json!({
                    "status": "checkpointed",
                    "n": n,
                    "seed": settings.problem.seed,
                    "repeats": repeats,
                    "repeat": repeat,
                    "column": column,
                    "checkpoint": path,
                });
                let _ = writeln!(out, "{line}");
            }
            (exit::OK, Duration::from_millis(300))
        }
        Ok(Finish::Interrupted { repeat, column }) => {
            let _ = writeln!(
                err,
                "linpack: stopped by signal at repeat {}/{repeats}, column {column}/{n}; \
                 QOS_CHECKPOINT_DIR is not set, so nothing was saved",
                repeat + 1
            );
            let sigint = signals.interrupt.load(Ordering::Relaxed);
            let code = if sigint { exit::SIGINT } else { exit::SIGTERM };
            (code, Duration::from_millis(300))
        }
        Err(e) => {
            let _ = writeln!(err, "linpack: error: {e}");
            (exit::ERROR, Duration::from_millis(300))
        }
    }
}

fn verdict(passed: bool) -> &'static str {
    if passed { "PASSED" } else { "FAILED" }
}

fn print_summary(summary: &Summary, settings: &Settings, human: bool, out: &mut dyn Write) {
    let n = summary.problem.n;
    if human {
        let _ = writeln!(
            out,
            "{:>5} {:>12.4} {:>12.3} {:>12.4e}  {}",
            "all",
            summary.seconds(),
            summary.gflops(),
            summary.residual(),
            verdict(summary.passed())
        );
        let _ = writeln!(
            out,
            "residual = ||Ax-b||_oo / (eps * ||A||_oo * ||x||_oo * n), eps = 2^-53, PASSED if < 16"
        );
    } else {
        let line = serde_json::json!({
            "status": "completed",
            "n": n,
            "threads": summary.threads,
            "repeats": summary.problem.repeats,
            "seed": summary.problem.seed,
            "block": settings.block,
            "seconds": summary.seconds(),
            "gflops": summary.gflops(),
            "residual": summary.residual(),
            "passed": summary.passed(),
            "solution_crc32": summary.runs.last().map_or(0, |r| r.solution_crc32),
            "resumed": summary.resumed,
        });
        let _ = writeln!(out, "{line}");
    }
}

/// `--threads`, else `LINPACK_THREADS`, else the cgroup quota, else the CPU count.
///
/// # Errors
/// When `LINPACK_THREADS` is set but not a positive integer.
pub fn resolve_threads(
    flag: Option<NonZeroUsize>,
    env: &dyn Fn(&str) -> Option<String>,
    root: &Path,
) -> Result<(usize, ThreadSource), String> {
    if let Some(t) = flag {
        return Ok((t.get(), ThreadSource::Flag));
    }
    if let Some(v) = env("LINPACK_THREADS").filter(|v| !v.trim().is_empty()) {
        return match v.trim().parse::<NonZeroUsize>() {
            Ok(t) => Ok((t.get(), ThreadSource::Env)),
            Err(_) => Err(format!(
                "LINPACK_THREADS must be a positive integer, got {v:?}"
            )),
        };
    }
    Ok(cgroup::default_threads(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str], env: &[(&str, &str)]) -> (u8, String, String) {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(e, _)| e == k).map(|(_, v)| v.clone());
        let root = tempfile::tempdir().unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = std::iter::once("linpack").chain(args.iter().copied());
        let code = run_cli(
            args,
            &lookup,
            root.path(),
            &Signals::default(),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn human_output_and_exit_status() {
        let (code, out, err) = cli(&["60", "--repeat", "2", "--threads", "2"], &[]);
        assert_eq!(code, exit::OK, "{err}");
        assert!(
            out.contains("n=60") && out.contains("threads=2 (--threads)"),
            "{out}"
        );
        assert_eq!(
            out.lines().filter(|l| l.ends_with("PASSED")).count(),
            3,
            "{out}"
        );
    }

    #[test]
    fn json_output_is_one_line() {
        let (code, out, _) = cli(
            &["50", "-o", "json", "--seed", "7"],
            &[("LINPACK_THREADS", "3")],
        );
        assert_eq!(code, exit::OK);
        assert_eq!(out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["n"], 50);
        assert_eq!(v["threads"], 3);
        assert_eq!(v["seed"], 7);
        assert_eq!(v["passed"], true);
        assert!(v["residual"].as_f64().unwrap() < 16.0);
        assert!(v["gflops"].as_f64().unwrap() > 0.0);
        assert!(v["seconds"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn usage_errors() {
        assert_eq!(cli(&[], &[]).0, exit::USAGE);
        assert_eq!(cli(&["0"], &[]).0, exit::USAGE);
        assert_eq!(cli(&["10", "--repeat", "0"], &[]).0, exit::USAGE);
        assert_eq!(cli(&["10", "--threads", "0"], &[]).0, exit::USAGE);
        let (code, _, err) = cli(&["10"], &[("LINPACK_THREADS", "many")]);
        assert_eq!(code, exit::USAGE);
        assert!(err.contains("LINPACK_THREADS"), "{err}");
        let (code, out, _) = cli(&["--help"], &[]);
        assert_eq!(code, exit::OK);
        assert!(
            out.contains("Examples:") && out.contains("QOS_CHECKPOINT_DIR"),
            "{out}"
        );
    }

    #[test]
    fn thread_resolution_order() {
        let root = crate::cgroup::tests::fake_root(&[
            ("proc/self/cgroup", "0::/job\n"),
            ("sys/fs/cgroup/job/cpu.max", "120000 100000\n"),
        ]);
        let r = root.path();
        let none = |_: &str| None;
        let env = |k: &str| (k == "LINPACK_THREADS").then(|| "5".to_owned());
        let flag = NonZeroUsize::new(7);
        assert_eq!(
            resolve_threads(flag, &env, r).unwrap(),
            (7, ThreadSource::Flag)
        );
        assert_eq!(
            resolve_threads(None, &env, r).unwrap(),
            (5, ThreadSource::Env)
        );
        assert_eq!(
            resolve_threads(None, &none, r).unwrap(),
            (2, ThreadSource::CgroupQuota(1.2))
        );
    }

    #[test]
    fn stop_without_checkpoint_dir_exits_143() {
        let signals = Signals::default();
        signals.stop.store(true, Ordering::Relaxed);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_cli(
            ["linpack", "40"],
            &|_| None,
            Path::new("/nonexistent"),
            &signals,
            &mut out,
            &mut err,
        );
        assert_eq!(code, exit::SIGTERM);
        assert!(
            String::from_utf8(err)
                .unwrap()
                .contains("nothing was saved")
        );
    }
}
