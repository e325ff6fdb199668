//! shell-trap: the Marathon task command. It starts (or restores) the job's container or
//! process, bounds it by the task's CPUs, reports start and end to the supervisor, and on SIGTERM
//! checkpoints it within the kill grace period, so a restart to a new size loses no work.
//!
//! It replaces the thesis' `Executor.sh` (reference/thesis-code.md §5) and fixes its bugs (§8
//! items 21–28): the container is bounded by the task's CPUs (21); a live container of the same
//! UUID is never force-removed un-checkpointed (22, [`docker`]); a failed or interrupted
//! checkpoint is never fatal to later starts — the newest *complete* checkpoint is restored and
//! stale ones are cleaned up (23, [`store`]); the exit status comes from the Engine API's `wait`,
//! not from the log stream (24); the job's exit status is propagated and containers, cgroups and
//! checkpoints are removed on every path (25); no shell is involved anywhere (26); one API client,
//! no `sudo` (27); no `set -x` — the report token is never logged (28). Restores are reported to
//! the supervisor (`restored: true`), which the thesis did not do.
//!
//! # Layout
//! - [`cli`]: the command line and its validation into [`cli::Settings`].
//! - [`opts`]: container options (`QOS_CONTAINER`, `--docker-opt`).
//! - [`strategy`]: CRIU detection and the choice of strategy.
//! - [`store`]: the checkpoint directory layout, sealing and restoring.
//! - [`report`]: `/initMarathonApp` and `/endMarathonApp` with retries under a deadline.
//! - [`signals`]: the signals handled and forwarded.
//! - [`process`], [`cgroup`]: the process runtime. [`docker`]: the Docker runtime.
//! - [`run()`]: one incarnation from start to exit.

pub mod cgroup;
pub mod cli;
pub mod docker;
pub mod error;
pub mod opts;
pub mod process;
pub mod report;
mod run;
mod runtime;
pub mod signals;
pub mod store;
pub mod strategy;

pub use run::run;
pub use runtime::StopOutcome;
