//! A real LINPACK: dense LU factorisation with partial pivoting, multithreaded, with the HPL
//! scaled-residual check, progress reporting to the qos-elastic supervisor and
//! application-assisted checkpointing.
//!
//! It stands in for the thesis' `linpack_openmp N` workload: `linpack N` generates a seeded
//! random `N × N` system `Ax = b`, factors `A` with a blocked right-looking LU (partial
//! pivoting) on `T` threads, solves, and reports GFLOP/s (`(2/3 n³ + 2 n²) / seconds`) and the
//! scaled residual `‖Ax−b‖∞ / (ε·‖A‖∞·‖x‖∞·n)`, PASSED when below 16 as in HPL.
//!
//! Two features make it a good citizen of an elastic cluster:
//! - **progress**: with `QOS_SUPERVISOR_URL` and `QOS_UUID` it reports its fraction done (by
//!   work, so roughly linear in time) to the supervisor, from a background thread;
//! - **checkpoint**: with `QOS_CHECKPOINT_DIR`, SIGTERM makes it stop at the next column
//!   boundary, save its whole state atomically and exit 0; started again, it resumes and
//!   produces bit-identical results — even with a different thread count, because every matrix
//!   element is updated by one thread in a fixed order (see [`lu`]).
//!
//! # Layout
//! | module | role |
//! |---|---|
//! | [`matrix`] | column-major [`Matrix`] and the counter-based generator (`entry(seed, i, j)`) |
//! | [`lu`] | blocked LU with partial pivoting, parallel trailing update, stop/resume state, solve |
//! | [`check`] | HPL scaled residual (regenerates `A`, no second copy) |
//! | [`run`] | one invocation: repeats, timing, stop → checkpoint, resume, [`Summary`] |
//! | [`checkpoint`] | versioned, checksummed, atomically written state file |
//! | [`progress`] | background reporter posting `{"fraction": f}` to the supervisor |
//! | [`cgroup`] | CPU quota of the process's cgroup (v1 and v2) for the default thread count |
//! | [`cli`] | command line, environment, signals, human and JSON output |
//!
//! `src/main.rs` only calls [`cli::main`]. `build-image.sh` builds the static binary and the
//! `qos-linpack:latest` Docker image without a registry.

pub mod cgroup;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod lu;
pub mod matrix;
pub mod progress;
pub mod run;

pub use check::{Residual, THRESHOLD, scaled_residual};
pub use lu::{Lu, LuError, Outcome};
pub use matrix::Matrix;
pub use run::{Finish, Problem, RunStats, Settings, Summary};
