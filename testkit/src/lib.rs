//! The one home for test fakes: recording fakes of every external-system trait, emulator
//! handles, cgroup-tree fixtures. Used only as a dev-dependency.
//!
//! Filled in as the crates that need fakes arrive.
