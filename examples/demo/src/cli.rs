//! The command line.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use demo::binaries::BuildOptions;

/// Control policy of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PolicyArg {
    /// The 2017 thesis controller (±0.4 CPU steps), the baseline.
    Thesis,
    /// qos-elastic's controller: computes the CPU each job needs.
    Predictive,
    /// Never resizes: every job keeps the size it was filed with (what happens without
    /// qos-elastic), the baseline the predictive policy must never do worse than.
    Static,
}

impl PolicyArg {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Thesis => "thesis",
            Self::Predictive => "predictive",
            Self::Static => "static",
        }
    }
}

const AFTER_HELP: &str = "\
What it does: builds the components (one `cargo build --release`), starts a testbed (Marathon and
Chronos emulators with agents that run tasks as real processes in cgroups), the supervisor and the
node collector on loopback ports, submits Chronos and Marathon LINPACK jobs with the launcher,
shows their progress and every resize with its reason, prints a summary and writes a report.
Everything it started is stopped at the end, on error and on Ctrl-C.

Examples:
  cargo run --release --bin demo                    # predictive policy, about 3 minutes
  cargo run --release --bin demo -- --policy thesis # the 2017 controller on the same jobs
  cargo run --release --bin demo -- --policy static # the same jobs left at their filed sizes
  cargo run --release --bin demo -- --quick         # one Chronos and one Marathon job, ~1 minute
  cargo run --release --bin demo -- --docker        # tasks in Docker containers (private daemon)
  cargo run --release --bin demo -- --keep          # leave the services up afterwards

Exit status: 0 every job completed, 1 the demo failed, 2 bad flags, 4 a job did not complete,
130 interrupted.";

/// The command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "demo",
    version,
    about = "qos-elastic in one command: real LINPACK jobs on a local Mesos stand-in, kept on \
             their deadlines by resizing their CPU.",
    after_help = AFTER_HELP
)]
pub(crate) struct Args {
    /// Control policy of the supervisor.
    #[arg(long, value_enum, default_value_t = PolicyArg::Predictive)]
    pub(crate) policy: PolicyArg,
    /// Run tasks as Docker containers (qos-linpack:latest, built with
    /// examples/linpack/build-image.sh) on the private daemon of scripts/docker-daemon.
    #[arg(long)]
    pub(crate) docker: bool,
    /// Leave the services running at the end and print how to reach and stop them.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Print the summary as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub(crate) json: bool,
    /// A shorter run: one Chronos and one Marathon job, about a minute.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Let the node collector resize containers in place (the supervisor and the collector
    /// share a token made for the run): a job that cannot checkpoint is then resized in place
    /// instead of by a restart that loses its work.
    #[arg(long)]
    pub(crate) in_place: bool,
    /// Where the component binaries come from.
    #[command(flatten)]
    pub(crate) build: BuildOptions,
    /// Directory for the report and the logs [default: target/demo/<time> in the workspace].
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Give up when the jobs have not finished after this many seconds.
    #[arg(long, default_value_t = 420, value_name = "SECS")]
    pub(crate) timeout: u64,
}
