//! shell-trap: the Marathon task command. It starts (or restores) the job's container or
//! process, bounds it by the task's CPUs, reports start and end to the supervisor, and on SIGTERM
//! checkpoints it within the kill grace period, so a restart to a new size loses no work.
//!
//! It replaces the thesis' `Executor.sh` (reference/thesis-code.md §5) and fixes its bugs (§8
//! items 21–28): the container is bounded by the task's CPUs (21); a live container of the same
//! UUID is never force-removed un-checkpointed (22, [`docker`]); a failed or interrupted
//! checkpoint is never fatal to later starts — the newest *complete* checkpoint is restored and
//! stale ones are cleaned up (23, [`checkpoints`]); the exit status comes from the Engine API's `wait`,
//! not from the log stream (24); the job's exit status is propagated and containers, cgroups and
//! checkpoints are removed on every path (25); no shell is involved anywhere (26); one API client,
//! no `sudo` (27); no `set -x` — the report token is never logged (28). Restores are reported to
//! the supervisor (`restored: true`), which the thesis did not do.
//!
//! # Layout
//! - [`cli`]: the command line and its validation into [`cli::Settings`].
//! - [`container_options`]: container options (`QOS_CONTAINER`, `--docker-opt`).
//! - [`strategy`]: CRIU detection and the choice of strategy.
//! - [`checkpoints`]: the checkpoint directory layout, sealing and restoring.
//! - [`report`]: `/initMarathonApp` and `/endMarathonApp` with retries under a deadline.
//! - [`signals`]: the signals handled and forwarded.
//! - [`process`], [`cgroup`]: the process runtime. [`docker`]: the Docker runtime. `job`: what
//!   the run loop needs from either.
//! - [`run()`]: one incarnation from start to exit.

pub mod cgroup;
pub mod checkpoints;
pub mod cli;
pub mod container_options;
pub mod docker;
pub mod error;
mod job;
pub mod process;
pub mod report;
mod run;
pub mod signals;
pub mod strategy;

pub use job::StopOutcome;
pub use run::run;

/// What the `shell-trap` binary does with its parsed command line: logs to stderr, installs the
/// signal handlers, validates the settings against the process' environment and runs the job;
/// returns the process' exit status (the job's, or [`error::EXIT_SETUP`] and the other codes of
/// [`error`] when it could not be started).
#[must_use]
pub fn main_with(args: cli::Args) -> i32 {
    if let Err(e) = binkit::init_tracing("shell_trap=info", None) {
        eprintln!("shell-trap: {e}");
        return error::EXIT_SETUP;
    }
    // One thread: the job is forked from the main thread, which lives as long as the process,
    // so its parent-death signal fires exactly when shell-trap dies.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return error::EXIT_SETUP;
        }
    };
    rt.block_on(async {
        // Handlers first, so that no SIGTERM is lost from here on.
        let mut signals = match signals::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return error::EXIT_SETUP;
            }
        };
        match args.resolve(&cli::Environment::from_process()) {
            Ok(settings) => run(settings, &mut signals).await,
            Err(e) => {
                tracing::error!("{e}");
                e.exit_code()
            }
        }
    })
}
