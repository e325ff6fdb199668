//! The settings the command line and the TOML file both give, declared once.

use std::path::PathBuf;

use serde::Deserialize;

/// The settings the command line and the TOML file both give: clap reads them as flags (each
/// also an environment variable), serde as the file's top-level keys of the same names.
/// [`Settings::over`] lays the command line's over the file's.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default)]
pub struct Settings {
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
    /// Chronos API generation: auto (the default: the server is asked at the first request, as the
    /// launcher does), v2 (/scheduler, as the thesis) or v3 (/v1/scheduler).
    #[arg(long, env = "QOS_CHRONOS_API")]
    pub chronos_api: Option<String>,
    /// File holding the admin token (first line).
    #[arg(long, env = "QOS_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the node agents' token (first line).
    #[arg(long, env = "QOS_AGENT_TOKEN_FILE", conflicts_with = "agent_token")]
    pub agent_token_file: Option<PathBuf>,
    /// Allow an open API on a non-loopback address, and leave the thesis routes open.
    #[arg(long, env = "QOS_INSECURE")]
    pub insecure: bool,
}

impl Settings {
    /// These settings over `lower`'s (the command line's over the file's): each one given here
    /// wins; `insecure` holds when either sets it.
    #[must_use]
    pub fn over(&self, lower: &Self) -> Self {
        Self {
            listen: self.listen.clone().or_else(|| lower.listen.clone()),
            db: self.db.clone().or_else(|| lower.db.clone()),
            log_dir: self.log_dir.clone().or_else(|| lower.log_dir.clone()),
            policy: self.policy.clone().or_else(|| lower.policy.clone()),
            resize_mode: self
                .resize_mode
                .clone()
                .or_else(|| lower.resize_mode.clone()),
            marathon: self.marathon.clone().or_else(|| lower.marathon.clone()),
            chronos: self.chronos.clone().or_else(|| lower.chronos.clone()),
            chronos_api: self
                .chronos_api
                .clone()
                .or_else(|| lower.chronos_api.clone()),
            admin_token_file: self
                .admin_token_file
                .clone()
                .or_else(|| lower.admin_token_file.clone()),
            agent_token_file: self
                .agent_token_file
                .clone()
                .or_else(|| lower.agent_token_file.clone()),
            insecure: self.insecure || lower.insecure,
        }
    }
}
