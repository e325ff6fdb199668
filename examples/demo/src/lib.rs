//! A local qos-elastic installation as processes, and the live view of its jobs: used by the
//! `demo` binary (`cargo run --release -p demo`) and by `study real`.
//!
//! - [`binaries`]: build (one `cargo build`) or find the component binaries;
//! - [`calib`]: LINPACK sized to this machine, the testbed's cgroups given their CPU;
//! - [`components`]: a component process (own process group, ready on its JSON line, stopped
//!   with SIGTERM then SIGKILL of the group);
//! - [`harness`]: testbed + supervisor + collector started together, jobs submitted with the
//!   launcher, everything stopped and swept;
//! - [`cleanup`]: what a run leaves behind (marked processes, cgroups), found and removed;
//! - [`watch`]: progress bars from the supervisor's API, resize and checkpoint lines;
//! - [`report`]: the summary table and report files;
//! - [`session`]: what every run shares: prepare, watch until done, summarise.

pub mod binaries;
pub mod calib;
pub mod cleanup;
pub mod components;
pub mod harness;
pub mod report;
pub mod session;
pub mod watch;
