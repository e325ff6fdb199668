//! testbed: a faithful local stand-in for a Mesos cluster — Marathon and Chronos REST emulators
//! and emulated agents that run tasks for real (local processes in cgroups, or Docker
//! containers). The demo, the tests and the real study run on it.
//!
//! # What runs where
//! One [`serve`] call starts:
//! - one HTTP server (the `listener` given) for **Marathon** (`/v2/apps`, `/v2/tasks`, `/v2/queue`,
//!   `/v2/deployments`, `/v2/info`, `/ping`) and **Chronos** (`/scheduler/*` as 2.5.1 and/or
//!   `/v1/scheduler/*` as 3.0.2: [`ChronosVersion`], `--chronos-version 2|3|both`);
//! - one HTTP server per **agent** (`/monitor/statistics`, `/state`), on the same IP.
//!
//! # Agents and cgroups
//! Agent `n` has the Mesos-style id `<cluster uuid>-S<n>` and the cgroup
//! `<root>/<cgroup_prefix>/<agent id>` (prefix default `qos-testbed`) whose CPU quota equals its
//! capacity; each task of the process runtime runs as `/bin/sh -c <cmd>` in the child cgroup
//! `<root>/<cgroup_prefix>/<agent id>/<task id>` with quota = the task's `cpus` × period — the
//! layout `cgroup-collector` discovers. On a cgroup v1/v2 hybrid the cgroup exists under `cpu`,
//! `cpuacct`, `memory` and `unified`. Each task also gets `<meta_dir>/<agent id>/<task id>/qos.json`
//! (`{"uuid", "task_id", "name", …}`, uuid from the job's `QOS_UUID` env or `qos.uuid` label).
//! Without root (or with `no_cgroups`) tasks still run, and the testbed warns that CPU limits
//! are not enforced (`/state` says so too).
//!
//! Each task runs in its sandbox `<work_dir>/agents/<agent id>/tasks/<task>/` (its `stdout` and
//! `stderr` there), removed `sandbox_gc_delay_secs` (default an hour) after the task ended, as a
//! Mesos agent removes it after `--gc_delay`: the work directory holds the sandboxes of the
//! running tasks and of the last hour's, not of every task that ever ran.
//!
//! # Recovery after a crash
//! Each testbed keeps a locked record of what to clean in `state_dir`; one that starts kills the
//! tasks and removes the cgroups, containers and metadata of every testbed that died (`kill -9`)
//! without stopping them, as a Mesos agent started with `--recover=cleanup` does (the emulated
//! frameworks keep no state across a restart, so nothing could reconnect to those tasks). See
//! the `recovery` module.
//!
//! # Faithfulness
//! See the module docs of [`marathon`](crate::marathon) and [`chronos`](crate::chronos) for the
//! behaviour reproduced and the documented simplifications. The emulators read what they are
//! sent with their own readers, after the servers' source (Marathon's RAML types and
//! `AppValidation`, Chronos' `JobDeserializer` and `Iso8601Expressions`), never with the
//! `frameworks` client's tolerant readers, so a parsing bug the client has cannot be hidden by
//! the same bug in the emulator.

mod agent;
mod cgroups;
pub mod chronos;
pub mod cli;
mod cluster;
pub mod config;
mod docker;
mod formats;
mod framework;
#[cfg(test)]
mod kernel_tests;
pub mod marathon;
mod recovery;
mod server;
mod task;

pub use config::{ChronosVersion, Config, ConfigError, RuntimeKind};
pub use server::{Testbed, Urls, serve};
