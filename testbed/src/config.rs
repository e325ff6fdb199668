//! The testbed's configuration: command-line flags and/or a TOML file (same keys).
//!
//! ```toml
//! agents = 2
//! cpus_per_agent = 1.0
//! mem_per_agent = 4096.0
//! runtime = "process"          # or "docker"
//! cgroup_prefix = "qos-testbed"
//! meta_dir = "/run/qos-testbed"
//! state_dir = "/var/lib/qos-testbed"   # recovery records (see the recovery module)
//! chronos_failure_retry_ms = 60000
//! sandbox_gc_delay_secs = 3600.0   # an ended task's sandbox is removed after this
//! max_connections = 256        # per server (Marathon + Chronos, each agent)
//! header_timeout_secs = 30.0   # a connection with no complete request head by then is closed
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How tasks run on the emulated agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Every task is a local process (`/bin/sh -c cmd`) in its own cgroup (the default). A
    /// task's `container` is ignored: its command runs on the host.
    #[default]
    Process,
    /// Tasks with a Docker image (`container.docker.image`, Chronos `container.image`) run as
    /// Docker containers through the Engine API; tasks without one run as processes (as a Mesos
    /// agent with `--containerizers=docker,mesos` does).
    Docker,
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "process" => Ok(Self::Process),
            "docker" => Ok(Self::Docker),
            other => Err(format!("unknown runtime {other:?}: use process or docker")),
        }
    }
}

/// Which Chronos the emulator is (`chronos_version`): the API prefix it serves, the job keys it
/// keeps and returns, and how it schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ChronosVersion {
    /// Chronos 2.5.1 only: `/scheduler/*` (POST or PUT), jobs with `epsilon` and `async`, a run
    /// later than `epsilon` is skipped.
    #[serde(rename = "2")]
    V2,
    /// Chronos 3.0.2 only: `/v1/scheduler/*` (POST), jobs with `concurrent` and the 3.x container
    /// fields (`networkInfos`, `networkName`, `volumes[].external`), no skipped runs.
    #[serde(rename = "3")]
    V3,
    /// Both, over one job store (the default, so clients of either generation share the jobs):
    /// each request is answered as its prefix's version would (keys, methods, errors), and each
    /// job is scheduled as the version it was last posted through schedules.
    #[default]
    #[serde(rename = "both")]
    Both,
}

impl std::str::FromStr for ChronosVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "2" | "2.x" | "v2" | "2.5.1" => Ok(Self::V2),
            "3" | "3.x" | "v3" | "3.0.2" => Ok(Self::V3),
            "both" => Ok(Self::Both),
            other => Err(format!(
                "unknown Chronos version {other:?}: use 2 (2.5.1, /scheduler), 3 (3.0.2, \
                 /v1/scheduler) or both"
            )),
        }
    }
}

/// Everything that shapes one testbed. `Default` is the embedded default: 2 agents × 1 CPU,
/// process runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Number of emulated agents.
    pub agents: usize,
    /// CPU capacity of each agent (enforced by the agent's parent cgroup quota).
    pub cpus_per_agent: f64,
    /// Memory of each agent, MiB (bookkeeping for placement; not enforced).
    pub mem_per_agent: f64,
    /// Disk of each agent, MiB (bookkeeping only).
    pub disk_per_agent: f64,
    /// How tasks run: processes in the agents' cgroups, or Docker containers.
    pub runtime: RuntimeKind,
    /// Host name the agents report (tasks' `HOST`, Marathon's task `host`).
    pub hostname: String,
    /// Directory under each cgroup controller root holding `<agent-id>/<task-id>` (the layout
    /// `cgroup-collector` discovers).
    pub cgroup_prefix: String,
    /// Where the cgroup hierarchies are mounted.
    pub cgroup_root: PathBuf,
    /// Do not use cgroups at all (CPU limits are then not enforced).
    pub no_cgroups: bool,
    /// Directory of the `<agent-id>/<task-id>/qos.json` metadata files read by `cgroup-collector`.
    pub meta_dir: PathBuf,
    /// Where each running testbed keeps, locked, what to clean should it die (its agents'
    /// cgroups, its process tasks, its containers); a testbed that starts cleans what dead ones
    /// left there, as a Mesos agent recovers on restart (see the `recovery` module). Several
    /// testbeds may share it.
    pub state_dir: PathBuf,
    /// Sandboxes (task working directories with `stdout`/`stderr`); a fresh temporary directory,
    /// removed at shutdown, when unset.
    pub work_dir: Option<PathBuf>,
    /// Seconds an ended task's sandbox is kept before it is removed, as a Mesos agent's
    /// `--gc_delay` (one week there; an hour here, where tasks come and go in minutes). 0 removes
    /// it as the task ends.
    pub sandbox_gc_delay_secs: f64,
    /// Kill grace (SIGTERM → SIGKILL) of process tasks without their own, seconds: Mesos' command
    /// executor uses 3 s.
    pub process_kill_grace_secs: f64,
    /// Kill grace of Docker tasks without their own, seconds: the Docker executor's default
    /// (`--executor_shutdown_grace_period`) is 5 s.
    pub docker_kill_grace_secs: f64,
    /// Chronos `--failure_retry`: delay before a failed run is retried, milliseconds.
    pub chronos_failure_retry_ms: u64,
    /// Chronos `--mesos_task_cpu`, used when a job has no (or zero) `cpus`.
    pub chronos_default_cpus: f64,
    /// Chronos `--mesos_task_mem`, MiB.
    pub chronos_default_mem: f64,
    /// Chronos `--mesos_task_disk`, MiB.
    pub chronos_default_disk: f64,
    /// Which Chronos the emulator is.
    pub chronos_version: ChronosVersion,
    /// Docker daemon address; `DOCKER_HOST` (or the local default socket) when unset.
    pub docker_host: Option<String>,
    /// Most connections each server (Marathon + Chronos, each agent) keeps open at once; past
    /// it, new ones wait in the listen backlog until one closes. Lowered to what the open-file
    /// limit leaves (with a warning).
    pub max_connections: usize,
    /// Longest wait for a complete request head, seconds, from a connection's opening or its
    /// last answer: a client that stalls (or an idle keep-alive connection) is closed after it.
    pub header_timeout_secs: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            agents: 2,
            cpus_per_agent: 1.0,
            mem_per_agent: 4096.0,
            disk_per_agent: 10_240.0,
            runtime: RuntimeKind::Process,
            hostname: "127.0.0.1".to_owned(),
            cgroup_prefix: "qos-testbed".to_owned(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            no_cgroups: false,
            meta_dir: PathBuf::from("/run/qos-testbed"),
            state_dir: PathBuf::from("/var/lib/qos-testbed"),
            work_dir: None,
            sandbox_gc_delay_secs: 3600.0,
            process_kill_grace_secs: 3.0,
            docker_kill_grace_secs: 5.0,
            chronos_failure_retry_ms: 60_000,
            chronos_default_cpus: 0.1,
            chronos_default_mem: 128.0,
            chronos_default_disk: 256.0,
            chronos_version: ChronosVersion::Both,
            docker_host: None,
            max_connections: 256,
            header_timeout_secs: 30.0,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file that could not be read.
        path: PathBuf,
        /// The I/O error that stopped the read.
        source: std::io::Error,
    },
    /// The TOML file does not parse or has unknown keys.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The config file that does not parse.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config value {field}: {message}")]
    Value {
        /// The TOML key of the value, e.g. `cpus_per_agent`.
        field: &'static str,
        /// What is wrong with it and what is accepted.
        message: String,
    },
}

impl Config {
    /// Reads a TOML file (keys as the fields of [`Config`]; missing keys take the defaults).
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read, parsed or validated.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigError::Value`] naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: &str| {
            Err(ConfigError::Value {
                field,
                message: message.to_owned(),
            })
        };
        if self.agents == 0 || self.agents > 64 {
            return bad("agents", "must be between 1 and 64");
        }
        if !(self.cpus_per_agent.is_finite() && self.cpus_per_agent >= 0.01) {
            return bad("cpus_per_agent", "must be a number of at least 0.01");
        }
        if !(self.mem_per_agent.is_finite() && self.mem_per_agent > 0.0) {
            return bad("mem_per_agent", "must be positive");
        }
        if self.cgroup_prefix.is_empty()
            || !self
                .cgroup_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad(
                "cgroup_prefix",
                "must be one directory name (letters, digits, '-', '_', '.')",
            );
        }
        for (field, v) in [
            ("process_kill_grace_secs", self.process_kill_grace_secs),
            ("docker_kill_grace_secs", self.docker_kill_grace_secs),
        ] {
            if !(v.is_finite() && (0.0..=3600.0).contains(&v)) {
                return bad(field, "must be between 0 and 3600 seconds");
            }
        }
        if !(self.sandbox_gc_delay_secs.is_finite()
            && (0.0..=604_800.0).contains(&self.sandbox_gc_delay_secs))
        {
            return bad(
                "sandbox_gc_delay_secs",
                "must be between 0 and 604800 seconds (one week)",
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if !(self.header_timeout_secs.is_finite()
            && (0.01..=3600.0).contains(&self.header_timeout_secs))
        {
            return bad(
                "header_timeout_secs",
                "must be between 0.01 and 3600 seconds",
            );
        }
        Ok(())
    }

    pub(crate) fn process_kill_grace(&self) -> Duration {
        Duration::from_secs_f64(self.process_kill_grace_secs)
    }

    pub(crate) fn docker_kill_grace(&self) -> Duration {
        Duration::from_secs_f64(self.docker_kill_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_defaults() {
        let cfg: Config = toml::from_str("agents = 3\nruntime = \"docker\"\n").unwrap();
        assert_eq!(cfg.agents, 3);
        assert_eq!(cfg.runtime, RuntimeKind::Docker);
        assert_eq!(cfg.cpus_per_agent, 1.0);
        cfg.validate().unwrap();
        assert!(toml::from_str::<Config>("agentz = 3\n").is_err());
        let bad = Config {
            cgroup_prefix: "a/b".into(),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }
}
