//! `demo`: qos-elastic in one command.
//!
//! `cargo run --release --bin demo` builds the components, starts a testbed (Marathon and Chronos
//! emulators whose agents run tasks as real processes in cgroups), the supervisor and the node
//! collector on loopback ports, submits a few Chronos and Marathon LINPACK jobs with the
//! launcher, shows their progress and every resize with its reason, prints a summary table, writes
//! a report, and stops everything it started. `cli`: flags, `plan`: the jobs, `run`: the sequence.

mod cli;
mod plan;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(run::run(&args));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("demo: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
