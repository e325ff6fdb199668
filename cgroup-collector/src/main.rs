//! `cgroup-collector`: parse flags, then [`cgroup_collector::cli::main_with`]: a `--once`
//! snapshot, or the agent until SIGINT/SIGTERM.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid flags or settings.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cgroup_collector::cli::Args::parse();
    match cgroup_collector::cli::main_with(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cgroup-collector: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
