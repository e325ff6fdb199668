//! Settings: the command line (clap, every flag also an environment variable), the optional TOML
//! file, and the resolved, validated [`Config`] the library runs with.
//!
//! The settings both give ([`Settings`]: `listen`, `db`, `policy`, the framework credentials, …)
//! are declared once, read by clap as flags and by serde as the file's top-level keys.
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

mod args;
mod error;
mod file;
mod resolve;
mod resolved;
mod sections;
mod settings;

pub use args::Args;
pub use error::ConfigError;
pub use resolve::check_file;
pub use resolved::{AuthConfig, Config};
pub use sections::{ControlConfig, LimitsConfig, MarathonCompletion, StorageConfig};
pub use settings::Settings;
