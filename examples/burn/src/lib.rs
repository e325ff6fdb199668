//! `burn`: the batch job most users have — CPU-bound, on a few threads, telling nobody how far it
//! is, and unable to save its state. It burns `--work` CPU-seconds in all (its own CPU time, as
//! the kernel counts it), on `--threads` threads, of which a `--serial` fraction runs on one
//! thread only (a job that barely speeds up past one CPU has a large one), then prints one JSON
//! line and exits 0. On SIGTERM or SIGINT it stops at once, prints what it had done, and exits
//! 143: the work is lost.
//!
//! ```text
//! burn --work 48 --threads 2             # 48 CPU-s: 24 s on 2 CPUs, 160 s at 0.3 CPU
//! burn --work 20 --threads 2 --serial 0.8
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::resource::{UsageWho, getrusage};

/// Burn CPU time: a CPU-bound job that reports nothing and cannot checkpoint.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// CPU-seconds of work in all (the process's user + system time).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub work: f64,
    /// Threads for the parallel part.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Fraction of the work done on one thread only, in [0, 1].
    #[arg(long, default_value_t = 0.0, value_parser = fraction, allow_hyphen_values = true)]
    pub serial: f64,
}

fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "expected a positive number of CPU-seconds, got {s:?}"
        )),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a fraction in [0, 1], got {s:?}")),
    }
}

/// The process's CPU time so far, seconds.
fn cpu_seconds() -> f64 {
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// Spins until `stop` is set, checking every few milliseconds of work.
fn spin(stop: &AtomicBool) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
    }
}

/// Burns until the process has used `until` CPU-seconds on `threads` threads, or `term` is set.
/// Returns whether it finished.
fn burn(until: f64, threads: u16, term: &Arc<AtomicBool>) -> bool {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || spin(&stop))
        })
        .collect();
    let done = loop {
        if term.load(Ordering::Relaxed) {
            break false;
        }
        if cpu_seconds() >= until {
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    done
}

/// Burns `args.work` CPU-seconds, prints its one JSON line and returns its exit status: 0 done,
/// 143 stopped by SIGTERM or SIGINT (the work is lost), 2 no signal handler.
#[must_use]
pub fn run(args: &Args) -> ExitCode {
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&term)) {
            eprintln!("burn: cannot handle signal {sig}: {e}");
            return ExitCode::from(2);
        }
    }
    let started = Instant::now();
    let base = cpu_seconds();
    let serial = args.work * args.serial;
    let done = burn(base + serial, 1, &term) && burn(base + args.work, args.threads, &term);
    let used = cpu_seconds() - base;
    let line = serde_json::json!({
        "status": if done { "completed" } else { "terminated" },
        "work": args.work,
        "cpu_seconds": (used * 1000.0).round() / 1000.0,
        "wall_seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    });
    println!("{line}");
    if done {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "burn: terminated after {used:.1} of {} CPU-s; the work is lost",
            args.work
        );
        ExitCode::from(143)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_refused_with_the_expected_range() {
        let err = |a: &[&str]| Args::try_parse_from(a).unwrap_err().to_string();
        assert!(err(&["burn", "--work", "-1"]).contains("expected a positive number"));
        assert!(err(&["burn", "--work", "lots"]).contains("expected a positive number"));
        assert!(err(&["burn", "--work", "1", "--serial", "1.5"]).contains("[0, 1]"));
        assert!(err(&["burn", "--work", "1", "--serial", "-0.1"]).contains("[0, 1]"));
        assert!(err(&["burn", "--work", "1", "--threads", "0"]).contains("--threads"));
        let ok = Args::try_parse_from(["burn", "--work", "2.5", "--serial", "0.8"]).unwrap();
        assert_eq!((ok.work, ok.threads, ok.serial), (2.5, 2, 0.8));
    }

    #[test]
    fn it_burns_its_work_in_cpu_time_and_stops_when_told() {
        let term = Arc::new(AtomicBool::new(false));
        let base = cpu_seconds();
        assert!(burn(base + 0.2, 2, &term), "it finished");
        assert!(cpu_seconds() - base >= 0.2);
        term.store(true, Ordering::Relaxed);
        assert!(!burn(cpu_seconds() + 60.0, 1, &term), "stopped at once");
    }
}
