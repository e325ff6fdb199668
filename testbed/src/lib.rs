//! testbed: a faithful local stand-in for a Mesos cluster — Marathon and Chronos REST emulators
//! and emulated agents that run tasks for real (local processes in cgroups, or Docker
//! containers). The demo, the tests and the real study run on it.
//!
//! This crate is filled in by the testbed work.
