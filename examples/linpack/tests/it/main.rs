//! The one integration test binary of linpack: the built binary as a process, its progress
//! reports, and (ignored by default) the static build.

mod common;
mod process;
mod progress;
mod static_build;
