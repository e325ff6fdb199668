//! `burn`: a CPU-bound job that reports nothing and cannot checkpoint (see the library).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    burn::run(&burn::Args::parse())
}
