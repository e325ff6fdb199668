//! The TOML file as written: every key optional, unknown keys refused.

use std::path::PathBuf;

use qos_core::thesis::{ChronosInfBand, MarathonUnderThreshold};
use serde::Deserialize;

use super::error::{ConfigError, WHOLE_FILE, from_toml};
use super::sections::{ControlConfig, LimitsConfig, StorageConfig};

/// The file: the thesis constants at the top level, the optional sections below.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) policy: Option<String>,
    pub(super) resize_mode: Option<String>,
    pub(super) listen: Option<String>,
    pub(super) db: Option<PathBuf>,
    pub(super) log_dir: Option<PathBuf>,
    pub(super) marathon: Option<PathBuf>,
    pub(super) chronos: Option<PathBuf>,
    pub(super) chronos_api: Option<String>,
    pub(super) admin_token_file: Option<PathBuf>,
    pub(super) agent_token_file: Option<PathBuf>,
    pub(super) insecure: Option<bool>,
    pub(super) cpu_max: Option<f64>,
    pub(super) cpu_min: Option<f64>,
    pub(super) cpu_increment: Option<f64>,
    pub(super) cpu_decrement: Option<f64>,
    pub(super) monitoring_period: Option<f64>,
    pub(super) deployment_time: Option<f64>,
    pub(super) sleeping_time: Option<f64>,
    pub(super) thesis: Option<ThesisExtra>,
    pub(super) predictive: Option<toml::Table>,
    pub(super) control: Option<ControlConfig>,
    pub(super) limits: Option<LimitsConfig>,
    pub(super) storage: Option<StorageConfig>,
}

/// The `[thesis]` section: the variants where the thesis text and code disagree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ThesisExtra {
    pub(super) chronos_inf_band: Option<ChronosInfBand>,
    pub(super) marathon_under: Option<MarathonUnderThreshold>,
    pub(super) sup_margin: Option<f64>,
    pub(super) missing_cpu_as_zero: Option<bool>,
}

/// Parses the file; an error names the key it is about (`listen`, `control.period`, an unknown
/// `limits.skew`), or `config` for text that is not TOML.
pub(super) fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
        key: WHOLE_FILE.to_owned(),
        message: e.message().trim().to_owned(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| from_toml(None, &e))
}
