//! Resolved, validated settings (the binary's clap flags map onto these).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::collector::CollectorConfig;

/// Where and how to talk to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Base URL, e.g. `http://10.0.0.1:30000`.
    pub url: String,
    /// Bearer token for the supervisor API.
    pub token: Option<String>,
    /// Heartbeat period.
    pub heartbeat_every: Duration,
    /// Push buffer bound, samples.
    pub buffer_samples: usize,
    /// Largest batch, samples.
    pub max_batch: usize,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Node labels sent at registration.
    pub labels: BTreeMap<String, String>,
    /// URL the supervisor should use to reach this agent (default: derived from the listener).
    pub advertise_url: Option<String>,
    /// Push every container, not only those mapped to a job.
    pub push_all: bool,
}

/// Where container figures come from (`--source`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceConfig {
    /// The node's cgroups (discovery, `--cgroup`).
    #[default]
    Cgroups,
    /// A Mesos agent's `/monitor/statistics` (`--source mesos`).
    Mesos(MesosConfig),
}

/// The Mesos agent to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MesosConfig {
    /// The agent's base URL, e.g. `http://10.0.0.5:5051`.
    pub agent_url: String,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// Everything [`crate::run`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Node id (default: host name).
    pub node_id: String,
    /// Cgroups or a Mesos agent.
    pub source: SourceConfig,
    /// What to read (the cgroup source; `proc_root` and `clk_tck` serve both sources).
    pub collector: CollectorConfig,
    /// Collection (and push) period.
    pub period: Duration,
    /// Docker daemon address (`unix:///…` or `tcp://…`); `None` disables Docker mapping/resize.
    pub docker_host: Option<String>,
    /// Supervisor; `None` runs standalone (metrics and resize only).
    pub supervisor: Option<SupervisorConfig>,
    /// Bearer token required by `POST /resize`; `None` disables resizing.
    pub resize_token: Option<String>,
    /// Most HTTP connections open at once (lowered to what the open-file limit leaves).
    pub max_connections: usize,
    /// Longest wait for a connection's complete request head (idle keep-alive included).
    pub header_timeout: Duration,
}

/// A setting is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting `{field}`: {message}")]
pub struct ConfigError {
    /// The flag (or environment variable) at fault.
    pub field: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

/// `url` must be what the HTTP client accepts (the client's own rule, so nothing that passes here
/// is refused once the agent runs).
fn http_url(field: &'static str, url: &str, example: &str) -> Result<(), ConfigError> {
    frameworks::Credentials::new(url).map(drop).map_err(|e| {
        err(
            field,
            format!("must be an http(s) URL such as {example}: {e}"),
        )
    })
}

impl Config {
    /// Check everything before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id.trim().is_empty() || self.node_id.contains('/') {
            return Err(err("node-id", "must be non-empty and contain no `/`"));
        }
        if self.period < Duration::from_millis(10) || self.period > Duration::from_secs(3600) {
            return Err(err(
                "period",
                format!("must be between 10 ms and 1 h, got {:?}", self.period),
            ));
        }
        if self.max_connections == 0 {
            return Err(err("max-connections", "must be at least 1"));
        }
        if self.header_timeout.is_zero() {
            return Err(err("header-timeout", "must be > 0"));
        }
        let c = &self.collector;
        if let SourceConfig::Mesos(m) = &self.source {
            if m.agent_url.trim().is_empty() {
                return Err(err(
                    "mesos-agent",
                    "required with --source mesos: the agent's base URL, e.g. http://10.0.0.5:5051",
                ));
            }
            http_url("mesos-agent", &m.agent_url, "http://10.0.0.5:5051")?;
            if m.request_timeout.is_zero() {
                return Err(err("request-timeout", "must be > 0"));
            }
            if !c.named.is_empty() {
                return Err(err(
                    "cgroup",
                    "--cgroup reads a cgroup of this node; it cannot be combined with --source mesos",
                ));
            }
            if self.resize_token.is_some() {
                return Err(err(
                    "resize-token",
                    "in-place resize writes this node's cgroups and needs --source cgroups; with \
                     --source mesos, resize through the job's framework",
                ));
            }
        } else if c.roots.v1_cpuacct.is_none() && c.roots.v2.is_none() && c.named.is_empty() {
            return Err(err(
                "cgroup-root",
                "no cgroup hierarchy found (looked for cpuacct, cpu,cpuacct, unified, or a pure v2 mount)",
            ));
        }
        if c.testbed_prefix.is_empty() || c.testbed_prefix.contains('/') {
            return Err(err(
                "testbed-prefix",
                "must be one non-empty directory name",
            ));
        }
        if c.clk_tck == 0 {
            return Err(err("clk-tck", "must be > 0"));
        }
        if self
            .resize_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(err("resize-token", "must not be empty"));
        }
        if let Some(s) = &self.supervisor {
            http_url("supervisor", &s.url, "http://10.0.0.1:30000")?;
            if s.buffer_samples == 0 || s.max_batch == 0 {
                return Err(err("buffer-samples", "buffer and batch sizes must be ≥ 1"));
            }
            if s.heartbeat_every.is_zero() {
                return Err(err("heartbeat", "must be > 0"));
            }
            if s.backoff_base.is_zero() || s.backoff_max < s.backoff_base {
                return Err(err("backoff-max", "need 0 < backoff base ≤ backoff max"));
            }
            if s.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(err("token", "must not be empty"));
            }
        }
        Ok(())
    }
}
