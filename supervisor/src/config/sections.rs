//! The TOML file's optional sections, each with its defaults and its own checks: `[control]`,
//! `[limits]`, `[storage]`; and what becomes of a finished Marathon app.

use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, err, finite_non_neg, finite_pos};

/// What to do with a Marathon app whose task has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MarathonCompletion {
    /// `DELETE /v2/apps/{id}` (default): nothing is relaunched.
    #[default]
    Delete,
    /// `PUT {"instances": 0}`: the app definition stays for inspection.
    ScaleToZero,
}

/// Tunables of the control loop.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Period of continuous (Marathon) jobs under the predictive policy, seconds (default 10;
    /// the thesis policy uses `monitoring_period`).
    pub period: f64,
    /// Most reconciles running at once.
    pub max_concurrency: usize,
    /// Bound on every framework or node-agent call, seconds.
    pub framework_timeout: f64,
    /// A Marathon deployment that has locked the app this long is considered stuck, and the
    /// resize is forced (`?force=true`), seconds.
    pub stuck_deployment_timeout: f64,
    /// First retry delay after a failed apply, seconds (doubles up to `backoff_max`).
    pub backoff_base: f64,
    /// Longest retry delay, seconds.
    pub backoff_max: f64,
    /// A node without a heartbeat for this long is dead, seconds.
    pub node_timeout: f64,
    /// What happens to a Marathon app when its task ends.
    pub marathon_completion: MarathonCompletion,
    /// A decision that changes nothing is stored at most this often per job, seconds (every
    /// resize, completion and class change is stored).
    pub history_hold_interval: f64,
    /// Series of finished jobs are removed from `/metrics` after this long, seconds.
    pub metrics_retention: f64,
    /// At most this many finished jobs keep their series in `/metrics` (about 1.8 kB each);
    /// past it the oldest finished leave first, whatever `metrics_retention`.
    pub metrics_max_finished: usize,
    /// Write-behind period for CPU samples, seconds (reports are written through).
    pub flush_interval: f64,
    /// One sample per job and container is kept in the database at most this often, seconds.
    pub sample_downsample: f64,
    /// Initial allocation of a job registered through the thesis' `/initTask` until the
    /// framework's value has been read, CPUs.
    pub default_cpus: f64,
    /// Reports for unknown jobs are held this long, seconds.
    pub held_ttl: f64,
    /// At most this many unknown job UUIDs are held at once.
    pub held_max_jobs: usize,
    /// Bounded drain on shutdown, seconds.
    pub drain_timeout: f64,
    /// Per-request timeout of the HTTP API, seconds.
    pub request_timeout: f64,
    /// A connection that has not sent a complete request head this long after it opened or
    /// after its last answer (an idle keep-alive connection, a client sending its headers a
    /// byte at a time) is closed, seconds.
    pub header_timeout: f64,
    /// Most client connections open at once; past it new ones wait in the listen backlog until
    /// one closes. Kept below the process' open-file limit (`ulimit -n`) less what the
    /// database and the framework clients need, whatever is configured.
    pub max_connections: usize,
    /// CPU data older than this is stale: a running Marathon job is then `NO_DATA` and never
    /// resized (the predictive policy has its own `stale_after`; this bound applies to the
    /// thesis policy, which had none), seconds.
    pub stale_after: f64,
    /// Downsampled samples older than this are pruned, and jobs finished this long ago are
    /// forgotten with everything recorded of them (memory and database), seconds.
    pub retention: f64,
    /// Largest accepted request body, bytes (sample batches may be 8× this).
    pub max_body_bytes: usize,
    /// A job whose framework answers "no such job/app" this many times in a row (to a resize or
    /// a read) is marked `LOST` and no longer tried.
    pub lost_after: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            period: qos_core::policy::DEFAULT_PREDICTIVE_PERIOD,
            max_concurrency: 64,
            framework_timeout: 15.0,
            stuck_deployment_timeout: 180.0,
            backoff_base: 1.0,
            backoff_max: 60.0,
            node_timeout: 15.0,
            marathon_completion: MarathonCompletion::Delete,
            history_hold_interval: 60.0,
            metrics_retention: 3600.0,
            metrics_max_finished: 10_000,
            flush_interval: 1.0,
            sample_downsample: 10.0,
            default_cpus: 1.0,
            held_ttl: 3600.0,
            held_max_jobs: 10_000,
            drain_timeout: 10.0,
            request_timeout: 30.0,
            header_timeout: 30.0,
            max_connections: 1024,
            stale_after: 30.0,
            retention: 7.0 * 86_400.0,
            max_body_bytes: 1 << 20,
            lost_after: 5,
        }
    }
}

impl ControlConfig {
    /// `secs` as a [`Duration`] (validated finite and non-negative beforehand).
    pub(crate) fn dur(secs: f64) -> Duration {
        if secs.is_finite() {
            Duration::from_secs_f64(secs.clamp(0.0, 1e9))
        } else {
            Duration::ZERO
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("control.period", self.period),
            ("control.framework_timeout", self.framework_timeout),
            ("control.backoff_base", self.backoff_base),
            ("control.backoff_max", self.backoff_max),
            ("control.node_timeout", self.node_timeout),
            ("control.flush_interval", self.flush_interval),
            ("control.drain_timeout", self.drain_timeout),
            ("control.request_timeout", self.request_timeout),
            ("control.header_timeout", self.header_timeout),
            ("control.stale_after", self.stale_after),
            ("control.retention", self.retention),
            ("control.default_cpus", self.default_cpus),
        ];
        for (key, v) in positive {
            if !v.is_finite() || v <= 0.0 {
                return Err(err(key, format!("must be a positive number, got {v}")));
            }
        }
        let non_negative = [
            (
                "control.stuck_deployment_timeout",
                self.stuck_deployment_timeout,
            ),
            ("control.history_hold_interval", self.history_hold_interval),
            ("control.metrics_retention", self.metrics_retention),
            ("control.sample_downsample", self.sample_downsample),
            ("control.held_ttl", self.held_ttl),
        ];
        for (key, v) in non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err(err(key, format!("must be a number ≥ 0, got {v}")));
            }
        }
        if self.backoff_max < self.backoff_base {
            return Err(err(
                "control.backoff_max",
                format!(
                    "must be at least control.backoff_base ({})",
                    self.backoff_base
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(err("control.max_connections", "must be at least 1"));
        }
        if self.max_concurrency == 0 {
            return Err(err("control.max_concurrency", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(err("control.max_body_bytes", "must be at least 1024"));
        }
        if self.lost_after == 0 {
            return Err(err("control.lost_after", "must be at least 1"));
        }
        Ok(())
    }
}

/// What the API accepts from clients: how far their clocks may run ahead, how far ahead a
/// deadline may lie, how much may be held for jobs not registered yet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// A client time (a report's `started_at`/`finished_at`, a sample's or heartbeat's `at`, a
    /// registration's `submitted_at`) more than this many seconds ahead of the supervisor's
    /// clock is refused (422 naming the field); within it, it is taken as sent.
    pub clock_skew: f64,
    /// A deadline at most this many seconds after submission is accepted (default 365 days).
    pub deadline_horizon: f64,
    /// Reports held for jobs not registered yet, in memory and in the database together, at most
    /// this many bytes (their JSON); past it, more are refused with 503 until some are applied or
    /// expire.
    pub held_max_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            clock_skew: 5.0,
            deadline_horizon: qos_core::spec::DEFAULT_HORIZON,
            held_max_bytes: 16 << 20,
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        finite_non_neg("limits.clock_skew", self.clock_skew)?;
        finite_pos("limits.deadline_horizon", self.deadline_horizon)?;
        if self.held_max_bytes < 64 << 10 {
            return Err(err(
                "limits.held_max_bytes",
                "must be at least 65536 (one held report can be 1 KiB or more)",
            ));
        }
        Ok(())
    }
}

/// How the database is kept: its write-ahead log bounded, its history bounded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The WAL's bound, bytes: at three quarters of it the writer copies the rest of the WAL into
    /// the database (a passive checkpoint between two transactions; the background copies the
    /// bulk of it beside the writes) and writes it again from its start, in place; past it, the
    /// writer waits for the copy. It is also SQLite's `journal_size_limit`.
    pub wal_max_bytes: u64,
    /// The WAL's file is truncated (`PRAGMA wal_checkpoint(TRUNCATE)`) once the writes pause, at
    /// most this often, seconds.
    pub checkpoint_interval: f64,
    /// Decisions and events kept per job in the database (the oldest go first).
    pub history_max_per_job: usize,
    /// Downsampled CPU samples kept per job in the database.
    pub samples_max_per_job: usize,
    /// Elements kept of each of a job's growing lists — iteration reports, resizes, progress
    /// segments, restart costs — in memory and in the database; past it (by an eighth, so that
    /// they go in batches) the oldest are forgotten. Forgotten reports still count as done; the
    /// forecasts then learn from the newest ones.
    pub items_max_per_job: usize,
    /// `synchronous = FULL`: every acknowledged write also survives a power loss (slower);
    /// `NORMAL` (the default) survives a killed process.
    pub full_sync: bool,
    /// The log file (`--log-dir`) is rotated past this many bytes: `supervisor.log` becomes
    /// `supervisor.log.1`, the older ones shift up.
    pub log_max_bytes: u64,
    /// Rotated log files kept beside `supervisor.log` (the log directory holds at most about
    /// `(log_keep + 1) × log_max_bytes`).
    pub log_keep: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            wal_max_bytes: 16 << 20,
            checkpoint_interval: 10.0,
            history_max_per_job: 10_000,
            samples_max_per_job: 10_000,
            items_max_per_job: 10_000,
            full_sync: false,
            log_max_bytes: 64 << 20,
            log_keep: 4,
        }
    }
}

impl StorageConfig {
    /// `checkpoint_interval` as a [`Duration`].
    pub(crate) fn checkpoint_every(&self) -> Duration {
        ControlConfig::dur(self.checkpoint_interval)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.wal_max_bytes < 64 << 10 {
            return Err(err("storage.wal_max_bytes", "must be at least 65536"));
        }
        finite_pos("storage.checkpoint_interval", self.checkpoint_interval)?;
        if self.log_max_bytes < 4096 {
            return Err(err("storage.log_max_bytes", "must be at least 4096"));
        }
        for (key, v) in [
            ("storage.history_max_per_job", self.history_max_per_job),
            ("storage.samples_max_per_job", self.samples_max_per_job),
            ("storage.items_max_per_job", self.items_max_per_job),
        ] {
            if v < 16 {
                return Err(err(key, format!("must be at least 16, got {v}")));
            }
        }
        Ok(())
    }
}
