//! Paths of the example jobs and test data, and the task sandboxes of a testbed as this suite
//! reads them (the recording servers standing in for the supervisor, Marathon or Chronos are
//! `testkit::wire::Scripted`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A file of `examples/jobs`.
pub(crate) fn example(rel: &str) -> PathBuf {
    testkit::bins::workspace_root()
        .join("examples/jobs")
        .join(rel)
}

/// A file of `launcher/tests/data`.
pub(crate) fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// `(stdout, stderr)` of every task sandbox under `work` (the testbed's work directory), oldest
/// first.
pub(crate) fn sandboxes(work: &Path) -> Vec<(String, String)> {
    testkit::sandbox::sandboxes(work)
        .into_iter()
        .map(|s| (s.stdout, s.stderr))
        .collect()
}

pub(crate) use testkit::CatchUnwind;

/// Reads a JSON file.
pub(crate) fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
