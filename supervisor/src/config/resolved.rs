//! The resolved configuration the library runs with ([`Config`]), with the checks across its
//! settings that run before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use frameworks::{ChronosApiVersion, Credentials};
use qos_core::policy::Policy;
use qos_core::predictive::ResizeMode;
use qos_core::{Controller, Cpus};

use super::error::{ConfigError, err, finite_non_neg, finite_pos};
use super::sections::{ControlConfig, LimitsConfig, StorageConfig};

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
    /// Tokens and whether an open API is accepted.
    pub auth: AuthConfig,
    /// Marathon credentials (`-m`); `None`: Marathon jobs are watched but not resized.
    pub marathon: Option<Credentials>,
    /// Chronos credentials (`-c`).
    pub chronos: Option<Credentials>,
    /// Chronos API generation (`v2` `/scheduler/*`, as the thesis; or `v3` `/v1/scheduler/*`);
    /// `None`: found out from the server at the first request (the default, like the launcher).
    pub chronos_api: Option<ChronosApiVersion>,
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
            chronos_api: None,
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
