//! The command line: every flag, each also an environment variable; the settings the TOML file
//! gives as well are [`Settings`], declared once for both.

use std::path::PathBuf;

use clap::Parser;

use super::sections::MarathonCompletion;
use super::settings::Settings;

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
    /// The settings the TOML file gives as well.
    #[command(flatten)]
    pub settings: Settings,
    /// Admin bearer token for the mutating API routes.
    #[arg(long, env = "QOS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Bearer token of the node agents' POST /resize (in-place mode).
    #[arg(long, env = "QOS_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,
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
