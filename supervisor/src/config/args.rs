//! The command line: every flag, each also an environment variable.

use std::path::PathBuf;

use clap::Parser;

use super::sections::MarathonCompletion;

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
