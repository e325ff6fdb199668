//! What only this crate's tests use: client settings for tests and the recorded payloads of
//! `tests/fixtures`. The servers the clients are tested against are `testkit::wire`'s.

use std::time::Duration;

use frameworks::{ClientConfig, Credentials, RetryPolicy};
use serde_json::Value;

/// Settings for tests: short timeout, fast retries.
pub(crate) fn fast_config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        ..ClientConfig::default()
    }
}

/// Credentials for `url` (panics when it is not a URL).
pub(crate) fn creds(url: &str) -> Credentials {
    Credentials::new(url).expect("valid url")
}

/// The text of a fixture file.
pub(crate) fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {full}: {e}"))
}

/// A fixture file as JSON.
pub(crate) fn fixture_json(path: &str) -> Value {
    serde_json::from_str(&fixture(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
