//! `qos-counter TARGET [--work W]`: a tiny deterministic workload with application-assisted
//! checkpoints, for shell-trap's acceptance tests and measurements.
//!
//! It counts from 0 to `TARGET`; each step mixes `W` rounds (default 1000) of a 64-bit hash into a
//! running digest, so the final digest proves that every step was done exactly once, in order.
//! It uses only `std` (plus two libc calls), so it also builds as a static binary for a Docker
//! image: `rustc --edition 2024 -O -C target-feature=+crt-static -W unsafe_code
//! src/bin/qos-counter/main.rs` (its modules beside it).
//!
//! - With `QOS_CHECKPOINT_DIR`: on start it resumes from `counter.state` there, if present and
//!   valid; on SIGTERM/SIGINT it writes its state atomically (temporary file, fsync, rename, fsync
//!   of the directory) and exits 0. When done it deletes the file.
//! - Without it: SIGTERM/SIGINT stops it with status 143/130 and the work is lost.
//! - Its own CPU time (`CLOCK_PROCESS_CPUTIME_ID`) is accumulated across incarnations.
//!
//! Output (stdout): `qos-counter: starting from 0/T …` or `qos-counter: resumed at N/T …`,
//! `qos-counter: checkpointed at N/T …`, and at the end one JSON line
//! `{"status":"done","target":T,"count":T,"digest":"…","cpu_seconds":…,"incarnations":K,"resumed":…}`.

use std::path::PathBuf;

mod counter;
#[expect(unsafe_code, reason = "two libc calls: signal(2) and clock_gettime(2)")]
mod sys;

fn main() {
    sys::install();
    let Some((target, work)) = counter::parse(std::env::args().skip(1)) else {
        eprintln!("usage: qos-counter TARGET [--work W]");
        std::process::exit(2);
    };
    let dir = std::env::var_os("QOS_CHECKPOINT_DIR").map(PathBuf::from);
    std::process::exit(counter::run(target, work, dir.as_deref()));
}
