//! The error every setting reports in, and the checks of one number that produce it.

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {message}")]
pub struct ConfigError {
    /// The offending key (TOML key, or the flag's long name).
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// The error for `key`.
pub(super) fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The key a configuration error names when it is about the file as a whole (text that is not
/// TOML, or an error with no path).
pub(super) const WHOLE_FILE: &str = "config";

/// The error of a TOML value that does not deserialize: the key is the path to the value
/// (`control.period`, or an unknown key itself: `limits.skew`), behind `prefix`, the table the
/// value was read from (`predictive`); [`WHOLE_FILE`] when there is no path at all.
pub(super) fn from_toml(
    prefix: Option<&str>,
    e: &serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let message = e.inner().message().trim().to_owned();
    let mut parts: Vec<String> = prefix.into_iter().map(str::to_owned).collect();
    parts.extend(
        e.path()
            .iter()
            .map(ToString::to_string)
            .filter(|s| !s.is_empty()),
    );
    let key = if parts.is_empty() {
        WHOLE_FILE.to_owned()
    } else {
        parts.join(".")
    };
    ConfigError { key, message }
}

/// `v` must be a finite number above zero.
pub(super) fn finite_pos(key: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(err(key, format!("must be a positive number, got {v}")))
    }
}

/// `v` must be a finite number, zero or above.
pub(super) fn finite_non_neg(key: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(err(key, format!("must be a number ≥ 0, got {v}")))
    }
}
