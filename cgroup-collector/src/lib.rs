//! cgroup-collector: the node agent. Discovers containers (Docker, Mesos, testbed cgroups), reads
//! their cumulative CPU time (cgroup v1 `cpuacct`, v2 `cpu.stat`), maps them to job UUIDs, pushes
//! samples to the supervisor, serves node and container metrics with cAdvisor-compatible names,
//! heartbeats, and applies in-place CPU limits when asked.
//!
//! This crate is filled in by the collector work.
