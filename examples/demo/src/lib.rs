//! A local qos-elastic installation as processes, and the live view of its jobs: used by the
//! `demo` binary (`cargo run --release --bin demo`) and by `study real`.
//!
//! - [`binaries`]: build (one `cargo build`) or find the component binaries;
//! - [`workload`]: the LINPACK jobs: their order and image, a solve timed on this machine, the
//!   repeats for a given CPU time, the testbed's cgroups given their CPU;
//! - [`components`]: a component process (own process group, ready on its JSON line, stopped
//!   with SIGTERM then SIGKILL of the group);
//! - [`harness`]: a run's stamp and directory; testbed + supervisor + collector started
//!   together, jobs submitted with the launcher, everything stopped and swept;
//! - [`cleanup`]: what a run leaves behind (marked processes, cgroups), found and removed;
//! - [`watch`]: progress bars from the supervisor's API, resize and checkpoint lines;
//! - [`report`]: the summary table and report files;
//! - [`steps`]: what every run shares: prepare, watch until done, summarise.

pub mod binaries;
pub mod cleanup;
pub mod components;
pub mod harness;
pub mod report;
pub mod steps;
pub mod watch;
pub mod workload;
