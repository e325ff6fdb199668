//! Settings: the command line (clap, every flag also an environment variable), the optional TOML
//! file, and the resolved, validated [`Config`] the library runs with.
//!
//! Precedence: command line > environment > TOML file > defaults. Everything is validated
//! before anything starts; an error names the key (`cpu_min`, `--listen`, …) and says why.
//!
//! The TOML file holds every thesis constant at the top level, with the thesis' names:
//!
//! ```toml
//! policy = "thesis"            # or "predictive" (the default), or "static" (never resizes: a baseline)
//! resize_mode = "restart"      # or "in-place"
//! listen = "0.0.0.0:30000"
//! db = "/var/lib/qos/supervisor.db"
//! log_dir = "/var/log/qos"
//! cpu_max = 2.0
//! cpu_min = 0.1
//! cpu_increment = 0.4
//! cpu_decrement = 0.4
//! monitoring_period = 120      # thesis policy: seconds between checks of a Marathon job
//! deployment_time = 45         # Eq. 1 overhead per iteration (predictive: the prior)
//! sleeping_time = 0            # Eq. 1 term (the supervisor never sleeps on it)
//!
//! [thesis]                     # optional: the variants where the thesis text and code disagree
//! chronos_inf_band = "text"    # or "code"
//! marathon_under = "text"      # or "code" (0.95)
//!
//! [predictive]                 # optional: any field of qos_core::predictive::PredictiveConfig
//! cooldown = 60.0
//!
//! [control]                    # optional: see ControlConfig
//! period = 10.0
//!
//! [limits]                     # optional: see LimitsConfig
//! clock_skew = 5.0
//!
//! [storage]                    # optional: see StorageConfig
//! wal_max_bytes = 16777216
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use frameworks::{ChronosApiVersion, Credentials};
use qos_core::policy::Policy;
use qos_core::predictive::{PredictiveConfig, ResizeMode};
use qos_core::thesis::{ChronosInfBand, MarathonUnderThreshold, ThesisConfig};
use qos_core::{Controller, Cpus};
use serde::Deserialize;

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {message}")]
pub struct ConfigError {
    /// The offending key (TOML key, or the flag's long name).
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

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
            flush_interval: 1.0,
            sample_downsample: 10.0,
            default_cpus: 1.0,
            held_ttl: 3600.0,
            held_max_jobs: 10_000,
            drain_timeout: 10.0,
            request_timeout: 30.0,
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

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("control.period", self.period),
            ("control.framework_timeout", self.framework_timeout),
            ("control.backoff_base", self.backoff_base),
            ("control.backoff_max", self.backoff_max),
            ("control.node_timeout", self.node_timeout),
            ("control.flush_interval", self.flush_interval),
            ("control.drain_timeout", self.drain_timeout),
            ("control.request_timeout", self.request_timeout),
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
    fn validate(&self) -> Result<(), ConfigError> {
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
    /// The WAL is truncated (`PRAGMA wal_checkpoint(TRUNCATE)`, between two transactions) as soon
    /// as it passes this many bytes; it is also SQLite's `journal_size_limit`.
    pub wal_max_bytes: u64,
    /// ... and at least this often, seconds, when anything was written.
    pub checkpoint_interval: f64,
    /// Decisions and events kept per job in the database (the oldest go first).
    pub history_max_per_job: usize,
    /// Downsampled CPU samples kept per job in the database.
    pub samples_max_per_job: usize,
    /// `synchronous = FULL`: every acknowledged write also survives a power loss (slower);
    /// `NORMAL` (the default) survives a killed process.
    pub full_sync: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            wal_max_bytes: 16 << 20,
            checkpoint_interval: 10.0,
            history_max_per_job: 10_000,
            samples_max_per_job: 10_000,
            full_sync: false,
        }
    }
}

impl StorageConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.wal_max_bytes < 64 << 10 {
            return Err(err("storage.wal_max_bytes", "must be at least 65536"));
        }
        finite_pos("storage.checkpoint_interval", self.checkpoint_interval)?;
        for (key, v) in [
            ("storage.history_max_per_job", self.history_max_per_job),
            ("storage.samples_max_per_job", self.samples_max_per_job),
        ] {
            if v < 16 {
                return Err(err(key, format!("must be at least 16, got {v}")));
            }
        }
        Ok(())
    }
}

/// Who may call what.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// Bearer token for the administrative API (registration, samples, nodes, cancel). `None`:
    /// the API is open, which is refused on a non-loopback address unless `insecure`.
    pub admin_token: Option<String>,
    /// Allow an open API on any address, and leave the thesis routes open even when an admin
    /// token is set (the thesis' containers send no token).
    pub insecure: bool,
    /// Bearer token the node agents require on `POST /resize` (in-place mode).
    pub agent_token: Option<String>,
}

/// The resolved configuration the library runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// SQLite database file.
    pub db: PathBuf,
    /// Directory for a log file (`supervisor.log`), in addition to stderr.
    pub log_dir: Option<PathBuf>,
    /// The control policy with its constants.
    pub policy: Policy,
    /// How resizes are applied.
    pub resize_mode: ResizeMode,
    /// Control loop tunables.
    pub control: ControlConfig,
    /// What the API accepts from clients.
    pub limits: LimitsConfig,
    /// How the database is kept.
    pub storage: StorageConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Marathon credentials (`-m`); `None`: Marathon jobs are watched but not resized.
    pub marathon: Option<Credentials>,
    /// Chronos credentials (`-c`).
    pub chronos: Option<Credentials>,
    /// Chronos API generation (`v2` `/scheduler/*`, as the thesis; or `v3` `/v1/scheduler/*`).
    pub chronos_api: ChronosApiVersion,
}

impl std::fmt::Debug for AuthConfig {
    // Tokens never reach a log line, whoever prints the configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthConfig")
            .field("admin_token", &shown(&self.admin_token))
            .field("insecure", &self.insecure)
            .field("agent_token", &shown(&self.agent_token))
            .finish()
    }
}

impl Config {
    /// A configuration for tests and embedding: loopback, the given database, defaults for
    /// the rest, no framework credentials.
    #[must_use]
    pub fn for_tests(db: impl Into<PathBuf>, policy: Policy) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: db.into(),
            log_dir: None,
            policy,
            resize_mode: ResizeMode::Restart,
            control: ControlConfig::default(),
            limits: LimitsConfig::default(),
            storage: StorageConfig::default(),
            auth: AuthConfig::default(),
            marathon: None,
            chronos: None,
            chronos_api: ChronosApiVersion::V2,
        }
    }

    /// The evaluation period of continuous jobs (thesis: `monitoring_period`).
    #[must_use]
    pub fn continuous_period(&self) -> f64 {
        match &self.policy {
            Policy::Thesis(t) => t.monitoring_period,
            Policy::Predictive(_) | Policy::Static(_) => self.control.period,
        }
    }

    /// The controller: the policy, the resize mode and the staleness bound, as one value that
    /// decides for every job ([`qos_core::control`]).
    #[must_use]
    pub fn controller(&self) -> Controller {
        Controller {
            policy: self.policy,
            resize_mode: self.resize_mode,
            stale_after: self.control.stale_after,
        }
    }

    /// Whether the API requires tokens.
    #[must_use]
    pub fn auth_enabled(&self) -> bool {
        self.auth.admin_token.is_some()
    }

    /// Checks everything that can be checked before starting.
    ///
    /// # Errors
    /// The first problem found, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.control.validate()?;
        self.limits.validate()?;
        self.storage.validate()?;
        let (lo, hi) = self.policy.bounds();
        if lo == Cpus::ZERO {
            return Err(err("cpu_min", "must be greater than zero"));
        }
        if lo > hi {
            return Err(err(
                "cpu_min",
                format!("({lo}) must not exceed cpu_max ({hi})"),
            ));
        }
        match &self.policy {
            Policy::Thesis(t) => {
                if t.cpu_increment == Cpus::ZERO {
                    return Err(err("cpu_increment", "must be greater than zero"));
                }
                if t.cpu_decrement == Cpus::ZERO {
                    return Err(err("cpu_decrement", "must be greater than zero"));
                }
                finite_pos("monitoring_period", t.monitoring_period)?;
                finite_non_neg("deployment_time", t.deployment_time)?;
                finite_non_neg("sleeping_time", t.sleeping_time)?;
                if !(0.0..1.0).contains(&t.sup_margin) {
                    return Err(err("thesis.sup_margin", "must be a fraction in [0, 1)"));
                }
            }
            Policy::Predictive(p) | Policy::Static(p) => {
                finite_non_neg("deployment_time", p.deployment_time)?;
                finite_non_neg("predictive.cooldown", p.cooldown)?;
                finite_non_neg("predictive.restart_cost", p.restart_cost)?;
                finite_pos("predictive.stale_after", p.stale_after)?;
                if p.granularity == Cpus::ZERO {
                    return Err(err("predictive.granularity", "must be greater than zero"));
                }
                if !(0.0..1.0).contains(&p.safety_fraction) {
                    return Err(err(
                        "predictive.safety_fraction",
                        "must be a fraction in [0, 1)",
                    ));
                }
                if !(0.0..=1.0).contains(&p.parallel_fraction) {
                    return Err(err(
                        "predictive.parallel_fraction",
                        "must be a fraction in [0, 1]",
                    ));
                }
            }
        }
        if let Some(t) = &self.auth.admin_token {
            check_token("admin-token", t)?;
        }
        if let Some(t) = &self.auth.agent_token {
            check_token("agent-token", t)?;
        }
        if !self.listen.ip().is_loopback() && self.auth.admin_token.is_none() && !self.auth.insecure
        {
            return Err(err(
                "listen",
                format!(
                    "{} is not a loopback address and no --admin-token is set: anyone who can reach it could register jobs and drive resizes. Set --admin-token (or QOS_ADMIN_TOKEN), listen on 127.0.0.1, or pass --insecure to accept the risk",
                    self.listen
                ),
            ));
        }
        if self.resize_mode == ResizeMode::InPlace && self.auth.agent_token.is_none() {
            return Err(err(
                "agent-token",
                "resize_mode = \"in-place\" needs the node agents' resize token (--agent-token or QOS_AGENT_TOKEN)",
            ));
        }
        Ok(())
    }
}

fn check_token(key: &str, t: &str) -> Result<(), ConfigError> {
    if t.trim().is_empty() {
        return Err(err(key, "must not be empty"));
    }
    if t.len() < 16 {
        return Err(err(key, "must be at least 16 characters long"));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(key, "must be printable ASCII without spaces"));
    }
    Ok(())
}

fn finite_pos(key: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(err(key, format!("must be a positive number, got {v}")))
    }
}

fn finite_non_neg(key: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(err(key, format!("must be a number ≥ 0, got {v}")))
    }
}

/// The command line. Every flag can also be given as an environment variable.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "supervisor",
    version,
    about = "Keeps QoS jobs on Chronos and Marathon on their deadlines by resizing their CPUs.",
    after_help = "Examples:\n  supervisor --listen 127.0.0.1:0 --db /tmp/s.db\n  supervisor -m marathon.json -c chronos.json --admin-token-file /etc/qos/token --config supervisor.toml"
)]
pub struct Args {
    /// TOML configuration file (thesis constants, policy, resize mode, ...).
    #[arg(long, env = "QOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve on (default 0.0.0.0:30000; `127.0.0.1:0` picks a free port).
    #[arg(long, env = "QOS_LISTEN")]
    pub listen: Option<String>,
    /// SQLite database file (default ./supervisor.db).
    #[arg(long, env = "QOS_DB")]
    pub db: Option<PathBuf>,
    /// Directory for the log file (stderr always gets the log).
    #[arg(long, env = "QOS_LOG_DIR")]
    pub log_dir: Option<PathBuf>,
    /// Control policy: predictive (default), thesis, or static (every job keeps its filed size:
    /// the do-nothing baseline, still watched and classified).
    #[arg(long, env = "QOS_POLICY")]
    pub policy: Option<String>,
    /// How resizes are applied: restart (through the framework) or in-place (node agent).
    #[arg(long, env = "QOS_RESIZE_MODE")]
    pub resize_mode: Option<String>,
    /// Marathon credential file {"url","user","password"}.
    #[arg(short = 'm', long = "marathon", env = "QOS_MARATHON")]
    pub marathon: Option<PathBuf>,
    /// Chronos credential file {"url","user","password"}.
    #[arg(short = 'c', long = "chronos", env = "QOS_CHRONOS")]
    pub chronos: Option<PathBuf>,
    /// Chronos API generation: v2 (/scheduler, as the thesis) or v3 (/v1/scheduler).
    #[arg(long, env = "QOS_CHRONOS_API")]
    pub chronos_api: Option<String>,
    /// Admin bearer token for the mutating API routes.
    #[arg(long, env = "QOS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin token (first line).
    #[arg(long, env = "QOS_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// Bearer token of the node agents' POST /resize (in-place mode).
    #[arg(long, env = "QOS_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,
    /// Allow an open API on a non-loopback address, and leave the thesis routes open.
    #[arg(long, env = "QOS_INSECURE")]
    pub insecure: bool,
    /// Print, as JSON, the state the supervisor would resume from (every job with its reports,
    /// resizes and progress, the held reports, the nodes), read from --db, and exit: nothing is
    /// served or resized.
    #[arg(long, env = "QOS_DUMP_STATE")]
    pub dump_state: bool,
    /// Marathon apps whose task ended: delete (default) or scale-to-zero.
    #[arg(long, env = "QOS_MARATHON_COMPLETION", value_enum)]
    pub marathon_completion: Option<MarathonCompletion>,
    /// Period of Marathon jobs under the predictive policy, seconds (default 10).
    #[arg(long, env = "QOS_CONTROL_PERIOD")]
    pub control_period: Option<f64>,
}

/// The TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    policy: Option<String>,
    resize_mode: Option<String>,
    listen: Option<String>,
    db: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    marathon: Option<PathBuf>,
    chronos: Option<PathBuf>,
    chronos_api: Option<String>,
    admin_token_file: Option<PathBuf>,
    agent_token_file: Option<PathBuf>,
    insecure: Option<bool>,
    cpu_max: Option<f64>,
    cpu_min: Option<f64>,
    cpu_increment: Option<f64>,
    cpu_decrement: Option<f64>,
    monitoring_period: Option<f64>,
    deployment_time: Option<f64>,
    sleeping_time: Option<f64>,
    thesis: Option<ThesisExtra>,
    predictive: Option<toml::Table>,
    control: Option<ControlConfig>,
    limits: Option<LimitsConfig>,
    storage: Option<StorageConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThesisExtra {
    chronos_inf_band: Option<ChronosInfBand>,
    marathon_under: Option<MarathonUnderThreshold>,
    sup_margin: Option<f64>,
    missing_cpu_as_zero: Option<bool>,
}

fn cpus_key(key: &str, v: Option<f64>) -> Result<Option<Cpus>, ConfigError> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x > 0.0 && x <= 1_000_000.0 => Ok(Some(Cpus::from_f64(x))),
        Some(x) => Err(err(
            key,
            format!("must be a positive number of CPUs, got {x}"),
        )),
    }
}

fn read_token_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

fn load_credentials(key: &str, path: &Path) -> Result<Credentials, ConfigError> {
    Credentials::load(path).map_err(|e| err(key, e.to_string()))
}

impl Args {
    /// Resolves the command line, the environment and the TOML file into a validated
    /// [`Config`].
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
                parse_file(&text)?
            }
            None => FileConfig::default(),
        };
        resolve(self, &file)
    }
}

/// Parses a TOML configuration text (exposed for tests and tools).
///
/// # Errors
/// A [`ConfigError`] naming the key.
pub fn check_file(text: &str) -> Result<Config, ConfigError> {
    resolve(&Args::default(), &parse_file(text)?)
}

fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().to_owned();
        // toml names unknown keys in the message; point at the file otherwise.
        let key = msg
            .split('`')
            .nth(1)
            .filter(|k| !k.is_empty())
            .unwrap_or("config")
            .to_owned();
        ConfigError { key, message: msg }
    })
}

/// Flags over the file over the defaults, one setting after the other (long: a line or two a
/// setting, kept in one place so that the precedence is read once).
fn resolve(args: &Args, file: &FileConfig) -> Result<Config, ConfigError> {
    let policy_name = args
        .policy
        .clone()
        .or(file.policy.clone())
        .unwrap_or_else(|| "predictive".into());
    let mut policy = Policy::by_name(&policy_name).map_err(|m| err("policy", m))?;
    let resize_mode = match args.resize_mode.clone().or(file.resize_mode.clone()) {
        None => ResizeMode::Restart,
        Some(m) => match m.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "restart" => ResizeMode::Restart,
            "in-place" | "inplace" => ResizeMode::InPlace,
            other => {
                return Err(err(
                    "resize_mode",
                    format!("unknown mode {other:?} (expected restart or in-place)"),
                ));
            }
        },
    };
    let cpu_max = cpus_key("cpu_max", file.cpu_max)?;
    let cpu_min = cpus_key("cpu_min", file.cpu_min)?;
    let cpu_inc = cpus_key("cpu_increment", file.cpu_increment)?;
    let cpu_dec = cpus_key("cpu_decrement", file.cpu_decrement)?;
    match &mut policy {
        Policy::Thesis(t) => apply_thesis(t, file, cpu_min, cpu_max, cpu_inc, cpu_dec)?,
        Policy::Predictive(p) | Policy::Static(p) => {
            if let Some(table) = &file.predictive {
                *p = PredictiveConfig::deserialize(toml::Value::Table(table.clone())).map_err(
                    |e| {
                        let msg = e.to_string();
                        let key = msg.split('`').nth(1).unwrap_or("predictive").to_owned();
                        ConfigError {
                            key: format!("predictive.{key}"),
                            message: msg.trim().to_owned(),
                        }
                    },
                )?;
            }
            if let Some(v) = cpu_min {
                p.cpu_min = v;
            }
            if let Some(v) = cpu_max {
                p.cpu_max = v;
            }
            if let Some(v) = file.deployment_time {
                p.deployment_time = v;
            }
            p.resize_mode = resize_mode;
            for (key, v) in [
                ("monitoring_period", file.monitoring_period),
                ("sleeping_time", file.sleeping_time),
            ] {
                if let Some(v) = v {
                    finite_non_neg(key, v)?;
                }
            }
        }
    }
    let listen_text = args
        .listen
        .clone()
        .or(file.listen.clone())
        .unwrap_or_else(|| "0.0.0.0:30000".into());
    let listen: SocketAddr = listen_text.trim().parse().map_err(|e| {
        err(
            "listen",
            format!("{listen_text:?} is not an address like 0.0.0.0:30000: {e}"),
        )
    })?;
    let mut control = file.control.clone().unwrap_or_default();
    if let Some(p) = args.control_period {
        control.period = p;
    }
    if let Some(c) = args.marathon_completion {
        control.marathon_completion = c;
    }
    let admin_token = match (
        &args.admin_token,
        &args.admin_token_file,
        &file.admin_token_file,
    ) {
        (Some(t), _, _) => Some(t.trim().to_owned()),
        (None, Some(p), _) | (None, None, Some(p)) => Some(read_token_file("admin-token-file", p)?),
        (None, None, None) => None,
    };
    let agent_token = match (&args.agent_token, &file.agent_token_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(p)) => Some(read_token_file("agent_token_file", p)?),
        (None, None) => None,
    };
    let marathon = match args.marathon.as_ref().or(file.marathon.as_ref()) {
        Some(p) => Some(load_credentials("marathon", p)?),
        None => None,
    };
    let chronos = match args.chronos.as_ref().or(file.chronos.as_ref()) {
        Some(p) => Some(load_credentials("chronos", p)?),
        None => None,
    };
    let chronos_api = match args.chronos_api.clone().or(file.chronos_api.clone()) {
        Some(v) => v
            .parse::<ChronosApiVersion>()
            .map_err(|e| err("chronos_api", e.to_string()))?,
        None => ChronosApiVersion::V2,
    };
    let config = Config {
        listen,
        db: args
            .db
            .clone()
            .or(file.db.clone())
            .unwrap_or_else(|| PathBuf::from("supervisor.db")),
        log_dir: args.log_dir.clone().or(file.log_dir.clone()),
        policy,
        resize_mode,
        control,
        limits: file.limits.clone().unwrap_or_default(),
        storage: file.storage.clone().unwrap_or_default(),
        auth: AuthConfig {
            admin_token,
            insecure: args.insecure || file.insecure.unwrap_or(false),
            agent_token,
        },
        marathon,
        chronos,
        chronos_api,
    };
    config.validate()?;
    Ok(config)
}

fn apply_thesis(
    t: &mut ThesisConfig,
    file: &FileConfig,
    cpu_min: Option<Cpus>,
    cpu_max: Option<Cpus>,
    cpu_inc: Option<Cpus>,
    cpu_dec: Option<Cpus>,
) -> Result<(), ConfigError> {
    if let Some(v) = cpu_min {
        t.cpu_min = v;
    }
    if let Some(v) = cpu_max {
        t.cpu_max = v;
    }
    if let Some(v) = cpu_inc {
        t.cpu_increment = v;
    }
    if let Some(v) = cpu_dec {
        t.cpu_decrement = v;
    }
    if let Some(v) = file.monitoring_period {
        finite_pos("monitoring_period", v)?;
        t.monitoring_period = v;
    }
    if let Some(v) = file.deployment_time {
        finite_non_neg("deployment_time", v)?;
        t.deployment_time = v;
    }
    if let Some(v) = file.sleeping_time {
        finite_non_neg("sleeping_time", v)?;
        t.sleeping_time = v;
    }
    if let Some(x) = &file.thesis {
        if let Some(v) = x.chronos_inf_band {
            t.chronos_inf_band = v;
        }
        if let Some(v) = x.marathon_under {
            t.marathon_under = v;
        }
        if let Some(v) = x.sup_margin {
            t.sup_margin = v;
        }
        if let Some(v) = x.missing_cpu_as_zero {
            t.missing_cpu_as_zero = v;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_accepted() {
        let c = check_file(include_str!("../../examples/jobs/supervisor.toml")).unwrap();
        assert_eq!(c.policy.name(), "predictive");
        assert_eq!(c.continuous_period(), 5.0);
        assert_eq!(c.limits.deadline_horizon, 7.0 * 86_400.0);
        assert_eq!(c.limits.clock_skew, 5.0);
    }

    #[test]
    fn thesis_constants_from_the_file() {
        let c = check_file(
            r#"
policy = "thesis"
listen = "127.0.0.1:0"
cpu_max = 2.0
cpu_min = 0.1
cpu_increment = 0.3
cpu_decrement = 0.2
monitoring_period = 120
deployment_time = 45
sleeping_time = 5
[thesis]
chronos_inf_band = "code"
"#,
        )
        .unwrap();
        let Policy::Thesis(t) = c.policy else {
            panic!("thesis")
        };
        assert_eq!(t.cpu_increment, Cpus::from_milli(300));
        assert_eq!(t.cpu_decrement, Cpus::from_milli(200));
        assert_eq!(t.sleeping_time, 5.0);
        assert_eq!(t.chronos_inf_band, ChronosInfBand::Code);
        assert_eq!(c.continuous_period(), 120.0);
    }

    #[test]
    fn errors_name_the_key() {
        let e = check_file("listen = \"127.0.0.1:0\"\ncpu_min = -1").unwrap_err();
        assert_eq!(e.key, "cpu_min");
        let e = check_file("listen = \"127.0.0.1:0\"\ncpu_min = 3\ncpu_max = 2").unwrap_err();
        assert_eq!(e.key, "cpu_min");
        let e = check_file("listen = \"127.0.0.1:0\"\ncpu_mx = 3").unwrap_err();
        assert_eq!(e.key, "cpu_mx", "{e}");
        let e = check_file("listen = \"127.0.0.1:0\"\npolicy = \"vpa\"").unwrap_err();
        assert_eq!(e.key, "policy");
        let e = check_file("listen = \"127.0.0.1:0\"\n[control]\nperiod = 0").unwrap_err();
        assert_eq!(e.key, "control.period");
        let e = check_file("listen = \"127.0.0.1:0\"\n[predictive]\ncooldwn = 1").unwrap_err();
        assert!(e.key.starts_with("predictive."), "{e}");
        let e = check_file("listen = \"nowhere\"").unwrap_err();
        assert_eq!(e.key, "listen");
        let e = check_file("listen = \"127.0.0.1:0\"\n[limits]\nclock_skew = -1").unwrap_err();
        assert_eq!(e.key, "limits.clock_skew");
        let e = check_file("listen = \"127.0.0.1:0\"\n[limits]\nheld_max_bytes = 10").unwrap_err();
        assert_eq!(e.key, "limits.held_max_bytes");
        let e = check_file("listen = \"127.0.0.1:0\"\n[storage]\nwal_max_bytes = 1").unwrap_err();
        assert_eq!(e.key, "storage.wal_max_bytes");
        let e = check_file("listen = \"127.0.0.1:0\"\n[limits]\nskew = 1").unwrap_err();
        assert_eq!(e.key, "skew", "{e}");
    }

    #[test]
    fn open_api_on_a_public_address_is_refused() {
        let e = check_file("").unwrap_err();
        assert_eq!(e.key, "listen");
        assert!(e.message.contains("--insecure"), "{e}");
        assert!(check_file("insecure = true").is_ok());
        let args = Args {
            admin_token: Some("0123456789abcdef0123".into()),
            ..Args::default()
        };
        let c = resolve(&args, &FileConfig::default()).unwrap();
        assert!(c.auth_enabled());
        assert_eq!(c.listen.port(), 30000);
        let short = Args {
            admin_token: Some("short".into()),
            ..Args::default()
        };
        assert_eq!(
            resolve(&short, &FileConfig::default()).unwrap_err().key,
            "admin-token"
        );
    }

    #[test]
    fn tokens_are_never_printed() {
        let c = Config {
            auth: AuthConfig {
                admin_token: Some("admin-secret-0123456789".into()),
                agent_token: Some("agent-secret-0123456789".into()),
                insecure: false,
            },
            ..Config::for_tests("x.db", Policy::default())
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn in_place_needs_the_agent_token() {
        let e = check_file("listen = \"127.0.0.1:0\"\nresize_mode = \"in-place\"").unwrap_err();
        assert_eq!(e.key, "agent-token");
    }
}
